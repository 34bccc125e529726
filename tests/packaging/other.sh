# shellcheck shell=bash
# The .rpm, the Kubernetes manifests and the offline bundle (sourced by
# tests/packaging/run).

test_rpm() {
    # rpmbuild around the release binary (packaging/rpm/aiworklab.spec).
    RPM=$(packaging/rpm/build --out "$WORK/rpm")
    log "built $(basename "$RPM") ($(($(stat -c %s "$RPM") / 1000000)) MB)"
    q() { rpm -qp "$@" "$RPM" 2>/dev/null; }

    expect_eq "$(q --qf '%{NAME} %{VERSION}-%{RELEASE} %{ARCH}')" "aiworklab $VERSION-1 x86_64" "rpm name, version, arch"
    # mode, owner, group and flags of every file the package owns.
    # (An empty flags field is shown as "-".)
    q --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} f=%{FILEFLAGS:fflags} %{FILENAMES}\n]' |
        sed -e 's/ f= / - /' -e 's/ f=/ /' | sort -k5 >"$WORK/rpm-files"
    local want
    want=$(
        cat <<'EOF'
drwxr-xr-x root root - /etc/aiworklab
-rw-r----- root aiworklab cn /etc/aiworklab/aiworklab.toml
-rwxr-xr-x root root - /usr/bin/aiworklab
-rw-r--r-- root root - /usr/lib/systemd/system/aiworklab.service
drwxr-xr-x root root - /usr/share/doc/aiworklab
-rw-r--r-- root root d /usr/share/doc/aiworklab/BUILDINFO
-rw-r--r-- root root d /usr/share/doc/aiworklab/CHANGELOG.md
-rw-r--r-- root root d /usr/share/doc/aiworklab/README.md
-rw-r--r-- root root d /usr/share/doc/aiworklab/SECURITY.md
-rw-r--r-- root root d /usr/share/doc/aiworklab/aiworklab.example.toml
EOF
    )
    if [ "$(cat "$WORK/rpm-files")" != "$want" ]; then
        diff <(echo "$want") "$WORK/rpm-files" >&2
        fail "rpm file list, modes, owners or flags differ (c = config, n = noreplace, d = doc)"
    fi
    ok "rpm files, modes and owners; the configuration is %config(noreplace)"

    q --scripts >"$WORK/rpm-scripts"
    grep -q 'useradd --system' "$WORK/rpm-scripts" || fail "rpm pre-install does not create the service user"
    grep -q 'install -d -m 0700 -o aiworklab -g aiworklab /var/lib/aiworklab' "$WORK/rpm-scripts" ||
        fail "rpm post-install does not create the 0700 state directory"
    grep -q 'systemctl enable aiworklab.service' "$WORK/rpm-scripts" || fail "rpm post-install does not enable the unit"
    if grep -Eq 'systemctl (--now )?start|enable --now' "$WORK/rpm-scripts"; then
        fail "rpm scripts start the service on install"
    fi
    grep -q 'try-restart aiworklab.service' "$WORK/rpm-scripts" || fail "rpm upgrade does not restart a running service"
    ok "rpm scripts: user, 0700 state directory, enabled not started, restart on upgrade"

    q --requires >"$WORK/rpm-requires"
    for dep in /usr/sbin/useradd /usr/sbin/groupadd systemd; do
        grep -q "^$dep" "$WORK/rpm-requires" || fail "rpm does not require $dep"
    done
    ok "rpm requires useradd, groupadd, systemd"
    # The binary is static apart from glibc: no libssl or libsqlite.
    if grep -Eq 'libssl|libcrypto|libsqlite' "$WORK/rpm-requires"; then
        fail "rpm requires a system TLS or SQLite library"
    fi
    # The unpacked binary, against the package's own digest and the build.
    mkdir -p "$WORK/rpm-root"
    rpm2cpio "$RPM" | (cd "$WORK/rpm-root" && cpio -idm --quiet)
    local digest
    digest=$(q --qf '[%{FILEDIGESTS} %{FILENAMES}\n]' | awk '$2 == "/usr/bin/aiworklab" {print $1}')
    expect_eq "$(sha256sum <"$WORK/rpm-root/usr/bin/aiworklab" | cut -d' ' -f1)" "$digest" "the unpacked binary matches the rpm's digest"
    expect_eq "$digest" "$(sha256sum <"$BIN" | cut -d' ' -f1)" "the rpm carries the release build"
    expect_eq "$("$WORK/rpm-root/usr/bin/aiworklab" --version)" "$VERSION_LINE" "aiworklab --version from the rpm"
    expect_eq "$(cat "$WORK/rpm-root/usr/share/doc/aiworklab/BUILDINFO")" "$VERSION_LINE" "BUILDINFO in the rpm"
}

test_kubernetes() {
    local k=$WORK/kubernetes v=$CACHE/venv/bin/kubernetes-validate
    mkdir -p "$k"
    kubectl kustomize packaging/kubernetes/base >"$k/base.yaml"
    kubectl kustomize packaging/kubernetes/overlays/ingress >"$k/ingress.yaml"
    ok "kubectl kustomize renders the base and the ingress overlay"
    for version in 1.30.0 "$KUBERNETES_VERSION" 1.37.0; do
        "$v" --strict --quiet -k "$version" "$k/base.yaml" "$k/ingress.yaml" ||
            fail "kubernetes-validate --strict against Kubernetes $version"
        ok "schema-valid for Kubernetes $version (kubernetes-validate --strict)"
    done
    "$CACHE/venv/bin/python" tests/packaging/k8s_check.py "$k/base.yaml" "$k/ingress.yaml" || fail "manifest policy check"
    ok "restricted Pod Security profile, probes, one replica with a PVC, NetworkPolicy, secrets referenced"
    # Each rendered Pod, run in the image as Kubernetes would: the Secrets
    # mounted read-only, root-owned and group-readable (defaultMode 0440,
    # fsGroup), the init container copies them to 0400 files, and the
    # appliance accepts the ConfigMap's configuration with them.
    local f
    for f in base ingress; do
        check_k8s_pod "$k/$f.yaml" "$k/$f" || fail "the $f Pod's init container and config check"
        ok "$f Pod: init container copies the Secrets 0400; aiworklab config check passes in the image"
    done
}

# check_k8s_pod RENDERED DIR: the Pod's init container script, then
# `aiworklab config check`, in one container of the image with the Pod's
# mounts (configuration, Secrets, emptyDirs) and environment.
check_k8s_pod() {
    local rendered=$1 d=$2
    "$CACHE/venv/bin/python" tests/packaging/k8s_check.py pod "$rendered" "$d"
    mkdir -p "$d/config" "$d/pki"
    cp "$d/aiworklab.toml" "$d/config/aiworklab.toml"
    make_ca "$d/pki"
    make_cert "$d/pki" pod "DNS:skills.example.com"
    local args=() mount secret keys key src
    while read -r mount secret keys; do
        src=$d/secret-sources/$secret
        mkdir -p "$src"
        for key in $keys; do
            case $key in
                tls.crt) cp "$d/pki/pod.pem" "$src/$key" ;;
                tls.key) cp "$d/pki/pod.key" "$src/$key" ;;
                master.key) openssl rand -hex 32 >"$src/$key" ;;
                *) openssl rand -hex 24 >"$src/$key" ;;
            esac
        done
        chown -R 0:10001 "$src"
        chmod 0440 "$src"/*
        args+=(-v "$src:$mount:ro")
    done <"$d/secrets"
    while read -r env; do args+=(-e "$env"); done <"$d/env"
    docker run --rm --network none --read-only --cap-drop ALL --security-opt no-new-privileges \
        --user 10001:10001 \
        --tmpfs /var/lib/aiworklab:uid=10001,gid=10001,mode=2770 \
        --tmpfs /run/aiworklab/secrets:mode=1777 --tmpfs /tmp:mode=1777 \
        -v "$d/config:/etc/aiworklab:ro" "${args[@]}" \
        --entrypoint /bin/sh "$IMAGE" -c "$(cat "$d/init.sh")
stat -c '%a %u %n' /run/aiworklab/secrets/*
exec aiworklab config check" >"$d/run.log" 2>&1 || { cat "$d/run.log" >&2; return 1; }
    if grep -v '^400 10001 ' "$d/run.log" | grep -q '^[0-7]\{3\} [0-9]* /run/aiworklab/secrets/'; then
        cat "$d/run.log" >&2
        return 1
    fi
}

test_bundle() {
    # The bundle's image carries the release tag.
    local tag=aiworklab:$VERSION
    if docker image inspect "$tag" >/dev/null 2>&1; then
        fail "an image $tag exists already; remove it (docker image rm $tag) and run again"
    fi
    docker tag "$IMAGE" "$tag"
    IMAGES+=("$tag")
    local id
    id=$(docker image inspect -f '{{.Id}}' "$IMAGE")
    local bundle
    bundle=$(PYTHON="$CACHE/venv/bin/python" packaging/bundle --image "$tag" --deb "$DEB" --rpm "$RPM" --out "$WORK/bundle-out")
    BUNDLE_SIZE_MB=$(($(stat -c %s "$bundle") / 1000000))
    log "bundle $(basename "$bundle"): $BUNDLE_SIZE_MB MB"

    # A new directory, as on the air-gapped machine.
    local u=$WORK/unpacked
    mkdir -p "$u"
    tar -C "$u" -xzf "$bundle"
    local b=$u/aiworklab-$VERSION-offline
    (cd "$b" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not match"
    ok "bundle unpacked; sha256sum -c SHA256SUMS passes"
    for f in INSTALL.md BUILDINFO "packages/$(basename "$DEB")" "packages/$(basename "$RPM")" \
        kubernetes/base/kustomization.yaml kubernetes/overlays/ingress/kustomization.yaml compose/compose.yaml; do
        [ -f "$b/$f" ] || fail "bundle lacks $f"
    done
    ! grep -q '@[A-Z]*@' "$b/INSTALL.md" || fail "INSTALL.md has unfilled placeholders"
    expect_eq "$(cat "$b/BUILDINFO")" "$VERSION_LINE" "BUILDINFO in the bundle"
    python3 - "$b/sbom/aiworklab-$VERSION.cdx.json" <<'EOF' || fail "the SBOM is not a CycloneDX document listing the dependencies"
import json, sys
sbom = json.load(open(sys.argv[1]))
assert sbom["bomFormat"] == "CycloneDX", sbom.get("bomFormat")
names = {c["name"] for c in sbom.get("components", [])}
for dep in ("rusqlite", "axum", "rustls", "openidconnect"):
    assert dep in names, f"{dep} missing from the SBOM"
assert "proptest" not in names, "dev-dependencies are not in the binary"
assert sbom["specVersion"] == "1.6", sbom["specVersion"]
pinned = [c for c in sbom["components"] if c["name"] == "rusqlite"][0]
assert pinned["purl"].startswith("pkg:cargo/rusqlite@"), pinned["purl"]
assert pinned["hashes"][0]["alg"] == "SHA-256", "no Cargo.lock checksum"
refs = {d["ref"] for d in sbom["dependencies"]}
assert sbom["metadata"]["component"]["bom-ref"] in refs, "no dependency graph from the root"
print(f"SBOM: {len(names)} components", file=sys.stderr)
EOF
    ok "CycloneDX SBOM lists the linked dependencies and no dev-dependencies"
    kubectl kustomize "$b/kubernetes/overlays/ingress" >/dev/null || fail "the bundle's manifests do not render"

    # Load the image from the bundle into a daemon that does not have it.
    docker image rm "$tag" "$IMAGE" >/dev/null
    docker load -i "$b/image/aiworklab-$VERSION-image.tar.gz" >/dev/null || fail "docker load"
    expect_eq "$(docker image inspect -f '{{.Id}}' "$tag")" "$id" "docker load gives back the same image"
    expect_eq "$(docker run --rm --network none "$tag" --version)" "$VERSION_LINE" "the loaded image runs"

    # Install the .deb from the bundle into a fresh Debian root.
    local r=$WORK/bundleroot
    fresh_chroot "$DEB_ROOT" "$r"
    cp "$b/packages/$(basename "$DEB")" "$r/tmp/"
    chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg -i "/tmp/$(basename "$DEB")" >"$WORK/dpkg.log" 2>&1 ||
        { cat "$WORK/dpkg.log" >&2; fail "dpkg -i from the bundle"; }
    expect_eq "$(chroot "$r" /usr/bin/aiworklab --version)" "$VERSION_LINE" "the .deb from the bundle installs and runs"
    leave_chroot "$r"
}
