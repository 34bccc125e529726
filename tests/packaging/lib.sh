# shellcheck shell=bash
# Shared steps of tests/packaging/run: tools, cached Debian roots, the Docker
# daemon, chroots. Sourced by run; uses its log/fail/ok and cleanup arrays.

# packaging/sbom's library; jsonschema (without its format extras, whose
# IRI parser took 50 s over 450 crates) validates the document.
CYCLONEDX_LIB_VERSION=11.12.0
JSONSCHEMA_VERSION=4.26.0
KUBERNETES_VALIDATE_VERSION=1.37.0
# The Kubernetes version the manifests are validated against.
KUBERNETES_VERSION=1.32.0

apt_install() {
    log "apt-get install $*"
    # One apt-get at a time (tests/run takes the same lock when both run).
    flock /tmp/aiworklab-apt.lock sh -c 'apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null' apt_install "$@"
}

install_tools() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v rpm >/dev/null || missing+=(rpm)
    command -v cpio >/dev/null || missing+=(cpio)
    command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v curl >/dev/null || missing+=(curl)
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
    command -v node >/dev/null || missing+=(nodejs npm)
    # kubectl (with its built-in kustomize) comes from the Kubernetes or
    # Google Cloud apt repository where one is configured.
    command -v kubectl >/dev/null || missing+=(kubectl)
    if [ ${#missing[@]} -gt 0 ]; then
        apt_install "${missing[@]}" || fail "could not install ${missing[*]} with apt-get"
    fi

    # The venv: kubernetes-validate for the manifests, the CycloneDX
    # library for packaging/sbom. Remade when the pinned list changes.
    local want="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION cyclonedx-python-lib==$CYCLONEDX_LIB_VERSION jsonschema==$JSONSCHEMA_VERSION"
    if [ "$(cat "$CACHE/venv/.aiworklab-pins" 2>/dev/null)" != "$want" ]; then
        log "pip install $want (cached in $CACHE/venv)"
        rm -rf "$CACHE/venv"
        python3 -m venv "$CACHE/venv"
        # shellcheck disable=SC2086 # the list is words
        "$CACHE/venv/bin/pip" install --quiet $want
        echo "$want" >"$CACHE/venv/.aiworklab-pins"
    fi

    # Not while preparing: tests/run, running meanwhile, installs these.
    [ -n "${PREPARE:-}" ] || [ -d tests/idp/node_modules/oidc-provider ] ||
        (cd tests/idp && npm ci --no-audit --no-fund --silent)
}

# debootstrap_root INCLUDES: prints the path of a cached minbase bookworm
# root with those extra packages, making it first when missing. The cache is
# only ever copied from, never used in place.
debootstrap_root() {
    local root="$CACHE/debootstrap/$SUITE-$1"
    if ! [ -f "$root/.complete" ]; then
        log "debootstrap $SUITE with $1 into $root (cached for later runs)"
        rm -rf "$root.tmp"
        mkdir -p "$CACHE/debootstrap"
        debootstrap --variant=minbase --include="$1" "$SUITE" "$root.tmp" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap $SUITE failed"; }
        rm -rf "$root"
        mv "$root.tmp" "$root"
        touch "$root/.complete"
    fi
    echo "$root"
}

# fresh_chroot CACHED_ROOT DEST: a private copy with /proc mounted.
fresh_chroot() {
    cp -a "$1" "$2"
    rm -f "$2/.complete"
    mount -t proc proc "$2/proc"
    MOUNTS+=("$2/proc")
    # Name resolution for localhost only; the chroot talks to nothing else.
    printf '127.0.0.1 localhost\n::1 localhost\n' >"$2/etc/hosts"
}

# leave_chroot DEST: unmounts what fresh_chroot mounted.
leave_chroot() {
    umount "$1/proc"
    local keep=()
    for m in "${MOUNTS[@]}"; do [ "$m" = "$1/proc" ] || keep+=("$m"); done
    MOUNTS=("${keep[@]}")
}

start_docker() {
    if docker info >/dev/null 2>&1; then
        log "using the running Docker daemon"
        return
    fi
    log "starting dockerd (stopped again at exit)"
    dockerd --pidfile "$WORK/dockerd.pid" >"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    STARTED_DOCKERD=1
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        sleep 1
    done
    tail -20 "$WORK/dockerd.log" >&2
    fail "dockerd did not come up"
}

# free_port: an unused TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for_url URL SECONDS [CURL OPTIONS...]: until it answers 200.
wait_for_url() {
    local url=$1 secs=$2
    shift 2
    for _ in $(seq 1 $((secs * 5))); do
        curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

# A test CA and a server certificate from it: make_cert DIR NAME SAN.
make_ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=aiworklab packaging test CA" -keyout "$1/ca.key" -out "$1/ca.pem" 2>/dev/null
}
make_cert() {
    local dir=$1 name=$2 san=$3
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
        -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" >"$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 2 -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
}

# start_idp HOST DIR REDIRECT_URI: the test OpenID Provider over TLS on
# HOST; sets IDP_ISSUER.
start_idp() {
    local host=$1 dir=$2 redirect=$3
    make_cert "$dir" idp "IP:$host"
    cat >"$dir/idp.json" <<EOF
{"port": 0, "clients": [{"client_id": "aiworklab-ci", "client_secret": "$(cat "$dir/oidc.secret")",
  "redirect_uris": ["$redirect"]}]}
EOF
    mkfifo "$dir/idp.out"
    node tests/idp/server.mjs --config "$dir/idp.json" --quiet --host "$host" \
        --tls-cert "$dir/idp.pem" --tls-key "$dir/idp.key" >"$dir/idp.out" 2>"$dir/idp.log" &
    PIDS+=($!)
    local line
    read -r -t 30 line <"$dir/idp.out" || { cat "$dir/idp.log" >&2; fail "the test IdP did not start"; }
    IDP_ISSUER=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["issuer"])' "$line")
    log "test IdP at $IDP_ISSUER"
}
