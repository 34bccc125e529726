# shellcheck shell=bash
# The Docker image and docker/compose.yaml (sourced by tests/packaging/run).

# build_image: the runtime stage of docker/Dockerfile, byte for byte except
# two lines: its base is the debootstrap'd root imported with `docker import`
# (no registry is reachable), and the binary is the release build instead of
# the builder stage's. Sets IMAGE.
build_image() {
    local base="aiworklab-ci/debian:$SUITE-$RUN_ID" extra=$WORK/base-extra
    # What Debian's official images add: apt keeps no caches in the image.
    mkdir -p "$extra/etc/apt/apt.conf.d"
    cat >"$extra/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
    tar --exclude=./.complete --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        --exclude='./var/lib/apt/lists/*' --exclude='./var/cache/apt/*' --exclude='./usr/share/man/*' \
        --exclude='./usr/share/info/*' --exclude='./usr/share/locale/*' \
        -c -C "$BASE_ROOT" . -C "$extra" ./etc/apt/apt.conf.d/docker-clean |
        docker import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
    IMAGES+=("$base")
    ok "base image $base imported from the debootstrap root"

    local ctx=$WORK/image from='^FROM debian:bookworm-slim$' copy='^COPY --from=builder /out/aiworklab /usr/local/bin/aiworklab$'
    mkdir -p "$ctx"
    cp "$BIN" "$ctx/aiworklab"
    [ "$(grep -c "$from" docker/Dockerfile)" = 1 ] || fail "docker/Dockerfile: no single runtime stage '$from'"
    [ "$(grep -c "$copy" docker/Dockerfile)" = 1 ] || fail "docker/Dockerfile: no single '$copy'"
    sed -n "/$from/,\$p" docker/Dockerfile |
        sed -e "s|$from|FROM $base|" -e "s|$copy|COPY aiworklab /usr/local/bin/aiworklab|" >"$ctx/Dockerfile"

    IMAGE="aiworklab:$VERSION-$RUN_ID"
    IMAGES+=("$IMAGE")
    docker build --force-rm -q -t "$IMAGE" \
        --build-arg "VERSION=$VERSION" --build-arg "REVISION=$COMMIT" --build-arg "CREATED=$BUILT" \
        "$ctx" >/dev/null || fail "docker build of the runtime stage failed"
    label() { docker image inspect -f "{{index .Config.Labels \"org.opencontainers.image.$1\"}}" "$IMAGE"; }
    expect_eq "$(label version)" "$VERSION" "image label version"
    expect_eq "$(label revision)" "$COMMIT" "image label revision"
    expect_eq "$(label created)" "$BUILT" "image label created"
    expect_eq "$(docker run --rm --network none "$IMAGE" --version)" "$VERSION_LINE" "aiworklab --version in the image"
    IMAGE_SIZE_MB=$(($(docker image inspect -f '{{.Size}}' "$IMAGE") / 1000000))
    log "image $IMAGE: $IMAGE_SIZE_MB MB"
}

# test_docker: docker/compose.yaml as written, with an override file that
# only adds what the test needs (the image just built, the test IdP's CA, a
# configuration file with SSO and backups, a host directory for backups).
test_docker() {
    local d=$WORK/compose s=$WORK/compose/secrets
    mkdir -p "$s" "$d/backups"
    chmod 0700 "$s"
    # Debian's docker-compose (1.29) predates the top-level `name:` key; the
    # project name is given with -p instead. Everything else is unchanged.
    sed '/^name: aiworklab$/d' docker/compose.yaml >"$d/compose.yaml"
    [ "$(diff docker/compose.yaml "$d/compose.yaml" | grep -c '^<')" = 1 ] || fail "compose.yaml has no single 'name: aiworklab' line"

    make_ca "$s"
    make_cert "$s" appliance "DNS:localhost,IP:127.0.0.1"
    mv "$s/appliance.pem" "$s/tls_cert.pem"
    mv "$s/appliance.key" "$s/tls_key.pem"
    openssl rand -hex 32 >"$s/master.key"
    openssl rand -hex 24 >"$s/oidc.secret"
    local recipient
    recipient=$("$BIN" backup keygen --out "$WORK/backup.key" 2>/dev/null | grep -o 'age1[0-9a-z]*' | head -1)
    [ -n "$recipient" ] || fail "aiworklab backup keygen printed no public key"
    # Archives are signed (docs/backup.md): the signing key is a secret file
    # like the master key; the verification key is kept for `backup verify`.
    BACKUP_VERIFY_KEY=$("$BIN" backup keygen --signing --out "$s/backup-signing.key" 2>/dev/null | grep -o 'aiwl_bkv_[0-9A-Za-z_-]*' | head -1)
    [ -n "$BACKUP_VERIFY_KEY" ] || fail "aiworklab backup keygen --signing printed no verification key"

    local host
    host=$(ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1)
    [ -n "$host" ] || fail "no docker0 address for the test IdP to listen on"
    start_idp "$host" "$s" "https://localhost:8443/o/default/oidc/callback"

    cat >"$d/aiworklab.toml" <<EOF
[backup]
recipients = ["$recipient"]
dir = "/backups"
signing_key_file = "/run/secrets/backup_signing"

[[orgs]]
slug = "default"
name = "Packaging test"
provisioning = "jit"
admin_groups = ["aiwl-admins"]

[orgs.oidc]
issuer = "$IDP_ISSUER"
client_id = "aiworklab-ci"
client_secret_file = "/run/secrets/oidc_secret"
# The test IdP sends groups only for this scope.
scopes = ["openid", "profile", "email", "groups"]
EOF
    cat >"$d/compose.ci.yaml" <<EOF
services:
  aiworklab:
    image: $IMAGE
    # The image's health check as it is, run every 2 s instead of 30 s so
    # that the test need not wait half a minute for each verdict.
    healthcheck:
      interval: 2s
    environment:
      SSL_CERT_FILE: /run/secrets/idp_ca
    secrets:
      - idp_ca
      - oidc_secret
      - backup_signing
    volumes:
      - ./aiworklab.toml:/etc/aiworklab/aiworklab.toml:ro
      - ./backups:/backups
secrets:
  idp_ca:
    file: ./secrets/ca.pem
  oidc_secret:
    file: ./secrets/oidc.secret
  backup_signing:
    file: ./secrets/backup-signing.key
EOF
    # As the comments in compose.yaml say: the key files belong to uid 10001.
    chown 10001:10001 "$s/master.key" "$s/tls_key.pem" "$s/oidc.secret" "$s/backup-signing.key" "$d/backups"
    chmod 0400 "$s/master.key" "$s/tls_key.pem" "$s/oidc.secret" "$s/backup-signing.key"
    chmod 0444 "$s/tls_cert.pem" "$s/ca.pem" "$d/aiworklab.toml"
    chmod 0700 "$d/backups"

    (cd "$d" && docker-compose -p "$RUN_ID" -f compose.yaml config -q) || fail "docker-compose config rejects compose.yaml"
    ok "docker-compose config accepts compose.yaml"

    COMPOSE=(docker-compose -p "$RUN_ID" --project-directory "$d" -f "$d/compose.yaml" -f "$d/compose.ci.yaml")
    local t0 url=https://localhost:8443
    local tls=(--cacert "$s/ca.pem")
    t0=$(date +%s.%N)
    "${COMPOSE[@]}" up -d --no-build 2>"$WORK/compose-up.log" || { cat "$WORK/compose-up.log" >&2; fail "docker-compose up"; }
    if ! wait_for_url "$url/readyz" 120 "${tls[@]}"; then
        "${COMPOSE[@]}" logs >&2
        fail "/readyz never answered 200"
    fi
    STARTUP_SECS=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
    log "container start-up (docker-compose up to /readyz 200): ${STARTUP_SECS}s"

    local c
    c=$("${COMPOSE[@]}" ps -q aiworklab)
    inspect() { docker inspect -f "$1" "$c"; }
    expect_eq "$(inspect '{{.HostConfig.ReadonlyRootfs}}')" true "read-only root file system"
    expect_eq "$(inspect '{{json .HostConfig.CapDrop}}')" '["ALL"]' "capabilities dropped"
    expect_eq "$(inspect '{{json .HostConfig.SecurityOpt}}')" '["no-new-privileges:true"]' "no-new-privileges"
    expect_eq "$(docker exec "$c" id -u)" 10001 "runs as uid"
    expect_eq "$(inspect '{{range .Mounts}}{{if eq .Destination "/var/lib/aiworklab"}}{{.Type}} {{.Name}}{{end}}{{end}}')" \
        "volume ${RUN_ID}_data" "data in the named volume"
    wait_healthy "$c"

    NODE_EXTRA_CA_CERTS="$s/ca.pem" node tests/packaging/signin.mjs "$url" default alice ||
        { "${COMPOSE[@]}" logs --tail 50 >&2; fail "admin sign-in through the IdP"; }
    ok "admin signed in through the test IdP over TLS"

    local token
    token=$(docker exec "$c" aiworklab token create --org default --kind scim --name packaging-ci --expires 90d 2>/dev/null)
    [[ $token == *[A-Za-z0-9]* ]] || fail "docker exec ... token create printed no secret"
    ok "SCIM token minted with docker exec"
    local scim=(-fsS "${tls[@]}" -H "Authorization: Bearer $token" -H 'Content-Type: application/scim+json')
    curl "${scim[@]}" -o /dev/null -X POST "$url/scim/v2/Users" \
        -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dana@acme.test","externalId":"dana-1","active":true,"emails":[{"value":"dana@acme.test","primary":true}]}' ||
        fail "SCIM POST /Users with the minted token"
    scim_has_dana() {
        curl "${scim[@]}" "$url/scim/v2/Users?filter=userName%20eq%20%22dana@acme.test%22" | grep -q '"totalResults":1'
    }
    scim_has_dana || fail "the SCIM user is not listed"
    ok "SCIM user created with the token"

    local out archive
    out=$(docker exec "$c" aiworklab backup create) || fail "docker exec ... backup create"
    archive=$(ls "$d"/backups/*.age 2>/dev/null | head -1)
    [ -n "$archive" ] || fail "no backup archive in the mounted directory (said: $out)"
    ok "backup landed in the mounted directory: $(basename "$archive")"
    (cd "$WORK" && "$BIN" backup verify "$archive" --identity "$WORK/backup.key" --verify-key "$BACKUP_VERIFY_KEY") >"$WORK/verify.out" ||
        fail "aiworklab backup verify"
    grep -q ': OK' "$WORK/verify.out" || fail "backup verify did not say OK"
    ok "backup verifies (signature and contents) with the offline identity and verification key"

    "${COMPOSE[@]}" stop 2>/dev/null
    expect_eq "$(inspect '{{.State.Running}}')" false "stopped"
    "${COMPOSE[@]}" start 2>/dev/null
    wait_for_url "$url/readyz" 120 "${tls[@]}" || fail "/readyz after restart"
    wait_healthy "$c"
    scim_has_dana || fail "the SCIM user is gone after stop and start"
    ok "stop and start kept the data (SCIM user and token)"

    "${COMPOSE[@]}" down --volumes 2>/dev/null
    COMPOSE=()
    ok "docker-compose down"
}

wait_healthy() {
    local status
    for _ in $(seq 1 120); do
        status=$(docker inspect -f '{{.State.Health.Status}}' "$1")
        [ "$status" = healthy ] && { ok "container healthy (aiworklab healthcheck)"; return; }
        [ "$status" = unhealthy ] && break
        sleep 1
    done
    docker inspect -f '{{json .State.Health}}' "$1" >&2
    fail "the container never turned healthy (last: $status)"
}
