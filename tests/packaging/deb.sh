# shellcheck shell=bash
# The .deb in a debootstrap'd Debian root, and the systemd unit (sourced by
# tests/packaging/run).

# in_root CMD...: runs CMD in the chroot $R with a clean environment.
in_root() {
    chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

# as_service CMD...: runs CMD in the chroot as the service user, with the
# unit's environment, working directory and umask.
as_service() {
    chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        AIWORKLAB_STORAGE__DATA_DIR=/var/lib/aiworklab \
        /bin/sh -c 'umask 0077; cd /var/lib/aiworklab && exec setpriv --reuid=aiworklab --regid=aiworklab --init-groups "$@"' \
        sh "$@"
}

# start_server: `aiworklab serve` as the unit runs it; sets SERVER_PID.
start_server() {
    # A simple command, not the function: $! is then the server itself
    # (chroot, env, sh and setpriv each exec the next).
    chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        AIWORKLAB_STORAGE__DATA_DIR=/var/lib/aiworklab \
        /bin/sh -c 'umask 0077; cd /var/lib/aiworklab && exec setpriv --reuid=aiworklab --regid=aiworklab --init-groups "$@"' \
        sh /usr/bin/aiworklab serve --config /etc/aiworklab/aiworklab.toml >>"$WORK/deb-serve.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    if ! wait_for_url "http://127.0.0.1:$DEB_PORT/readyz" 60; then
        tail -30 "$WORK/deb-serve.log" >&2
        fail "the packaged server did not answer /readyz"
    fi
}

stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
}

test_deb() {
    local debs=$WORK/debs
    mkdir -p "$debs"
    # The same binary packaged twice: once as an older build to upgrade from
    # (compressed fast; only the real package gets xz).
    mv "$(packaging/debian/build --fast --deb-version "$VERSION~ci0-1" --out "$debs")" "$debs/old.deb"
    DEB=$(packaging/debian/build --out "$debs")
    log "built $(basename "$DEB") ($(($(stat -c %s "$DEB") / 1000000)) MB)"

    R=$WORK/debroot
    fresh_chroot "$DEB_ROOT" "$R"
    cp "$debs/old.deb" "$DEB" "$R/tmp/"
    in_root dpkg -i /tmp/old.deb >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; fail "dpkg -i"; }
    ok "dpkg -i installs it"

    expect_eq "$(in_root getent passwd aiworklab | cut -d: -f6,7)" "/var/lib/aiworklab:/usr/sbin/nologin" "service user home and shell"
    in_root getent group aiworklab >/dev/null || fail "no aiworklab group"
    ok "service group exists"
    expect_eq "$(stat -c '%a %u %g' "$R/etc/aiworklab/aiworklab.toml")" \
        "640 0 $(in_root getent group aiworklab | cut -d: -f3)" "configuration mode, owner root, group aiworklab"
    grep -qx /etc/aiworklab/aiworklab.toml "$R/var/lib/dpkg/info/aiworklab.conffiles" || fail "configuration is not a conffile"
    ok "/etc/aiworklab/aiworklab.toml is a conffile"
    expect_eq "$(stat -c '%a %u' "$R/var/lib/aiworklab")" "700 $(in_root id -u aiworklab)" "state directory mode and owner"
    expect_eq "$(in_root cat /usr/share/doc/aiworklab/BUILDINFO)" "$VERSION_LINE" "BUILDINFO in the package"
    [ -f "$R/lib/systemd/system/aiworklab.service" ] || fail "unit not installed"
    expect_eq "$(systemctl --root="$R" is-enabled aiworklab.service)" enabled "unit enabled"
    if grep -Eq 'deb-systemd-invoke (re)?start|systemctl (re)?start' "$R/var/lib/dpkg/info/aiworklab.postinst"; then
        fail "postinst starts the service"
    fi
    ok "postinst does not start the service"

    # The administrator's edit that upgrades must keep: a port of its own.
    DEB_PORT=$(free_port)
    sed -i "s/^bind = \"127.0.0.1:8080\"$/bind = \"127.0.0.1:$DEB_PORT\"/" "$R/etc/aiworklab/aiworklab.toml"
    grep -q "127.0.0.1:$DEB_PORT" "$R/etc/aiworklab/aiworklab.toml" || fail "could not edit the configuration"
    as_service /usr/bin/aiworklab config check --config /etc/aiworklab/aiworklab.toml >"$WORK/check.log" 2>&1 ||
        { cat "$WORK/check.log" >&2; fail "config check as the service user"; }
    ok "aiworklab config check passes as the service user"

    start_server
    expect_eq "$(stat -c %u "/proc/$SERVER_PID")" "$(in_root id -u aiworklab)" "server runs as the service user"
    ok "the packaged server answers /readyz"
    local token_id
    as_service /usr/bin/aiworklab token create --org default --kind mcp --name upgrade-check >/dev/null 2>"$WORK/token.log" ||
        { cat "$WORK/token.log" >&2; fail "token create as the service user"; }
    token_id=$(as_service /usr/bin/aiworklab token list --org default | grep upgrade-check | awk '{print $1}')
    [ -n "$token_id" ] || fail "the token is not listed"
    stop_server
    expect_eq "$(stat -c %a "$R/var/lib/aiworklab/system.db")" 600 "database file mode"

    in_root dpkg -i "/tmp/$(basename "$DEB")" >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; fail "dpkg -i (upgrade)"; }
    expect_eq "$(in_root dpkg-query -W -f '${Version}' aiworklab)" "$VERSION-1" "upgraded version"
    grep -q "127.0.0.1:$DEB_PORT" "$R/etc/aiworklab/aiworklab.toml" || fail "upgrade replaced the edited configuration"
    ok "upgrade kept the edited configuration"
    expect_eq "$(sha256sum <"$R/usr/bin/aiworklab" | cut -d' ' -f1)" "$(sha256sum <"$BIN" | cut -d' ' -f1)" "the .deb carries the release build"
    in_root sh -c 'cd / && md5sum --quiet -c /var/lib/dpkg/info/aiworklab.md5sums' >"$WORK/md5.log" 2>&1 ||
        { cat "$WORK/md5.log" >&2; fail "the installed files do not match the package's md5sums"; }
    ok "the installed files match the package's md5sums (dpkg --verify's list)"
    expect_eq "$(stat -c '%a' "$R/etc/aiworklab/aiworklab.toml")" 640 "configuration mode after upgrade"
    start_server
    as_service /usr/bin/aiworklab token list --org default | grep -q "$token_id" || fail "upgrade lost the data"
    ok "upgrade kept the data; the server starts, migrates and answers /readyz"
    stop_server

    test_unit

    in_root dpkg --remove aiworklab >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; fail "dpkg --remove"; }
    [ ! -e "$R/usr/bin/aiworklab" ] || fail "remove left the binary"
    [ -f "$R/etc/aiworklab/aiworklab.toml" ] || fail "remove deleted the configuration"
    [ -f "$R/var/lib/aiworklab/system.db" ] || fail "remove deleted the data"
    in_root getent passwd aiworklab >/dev/null || fail "remove deleted the service user"
    ok "dpkg --remove: binary gone; configuration, data and user kept"

    in_root dpkg --purge aiworklab >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; fail "dpkg --purge"; }
    [ ! -e "$R/etc/aiworklab/aiworklab.toml" ] || fail "purge kept the configuration"
    ! in_root getent passwd aiworklab >/dev/null || fail "purge kept the service user"
    ! in_root getent group aiworklab >/dev/null || fail "purge kept the service group"
    [ -f "$R/var/lib/aiworklab/system.db" ] || fail "purge deleted the data directory"
    grep -q "/var/lib/aiworklab was kept" "$WORK/dpkg.log" || fail "purge did not say the data was kept"
    [ ! -e "$R/etc/systemd/system/multi-user.target.wants/aiworklab.service" ] || fail "purge left the unit enabled"
    ok "dpkg --purge: configuration, user, group and enablement gone; data kept, as docs/operations.md says"
    leave_chroot "$R"
}

# test_unit: systemd-analyze on the unit as installed in the chroot.
test_unit() {
    systemd-analyze verify --root="$R" aiworklab.service >"$WORK/verify.log" 2>&1 ||
        { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify"; }
    [ ! -s "$WORK/verify.log" ] || { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify warned"; }
    ok "systemd-analyze verify accepts the unit"
    systemd-analyze security --offline=true --root="$R" --no-pager aiworklab.service >"$WORK/security.log" 2>&1 || true
    UNIT_EXPOSURE=$(sed -n 's/.*Overall exposure level for aiworklab.service: \(.*\)$/\1/p' "$WORK/security.log")
    [ -n "$UNIT_EXPOSURE" ] || { cat "$WORK/security.log" >&2; fail "systemd-analyze security gave no score"; }
    log "systemd-analyze security: $UNIT_EXPOSURE"
    grep '✗' "$WORK/security.log" | sed 's/  */ /g' | cut -c1-100 >&2 || true
    case "$UNIT_EXPOSURE" in
        *\ OK* | *\ SAFE* | *\ PERFECT*) ok "exposure $UNIT_EXPOSURE (OK or better)" ;;
        *) fail "exposure $UNIT_EXPOSURE is worse than OK" ;;
    esac
}
