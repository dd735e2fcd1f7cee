#!/bin/bash
# make image-test: build the container image and check it end to end.
#
#   1. podman (set up by ../shared/tools/container-env.sh when it is not yet)
#   2. podman build --format docker --isolation=chroot -t $IMAGE .
#   3. what the image holds, read from its file tree (podman image mount):
#      its size (<= SIZE_LIMIT_MB), no shell or package manager, no program
#      but portcullis, exactly the shared objects the image's own loader
#      resolves for the binary (plus plugin directories and NSS modules, whose
#      dependencies must resolve too), the default config, the invalidation
#      SQL, passwd/group/nsswitch.conf and the CA bundle; and that
#      --entrypoint /bin/sh (or busybox) cannot run; deploy/ (compose, k8s,
#      systemd) runs it with the restrictions below
#   4. a throwaway PostgreSQL (Dify's schema, tests/fixtures/dify-*-main.pg.sql;
#      TLS with a throwaway CA), a Dify-routed test upstream and a DNS server
#      on the host (tests/image/fixtures.py)
#   5. the image on --network=host, read-only root, all capabilities dropped,
#      no-new-privileges, configured only by environment variables as
#      rules/dify.yaml reads them, then: /healthz, /readyz, one denial and one
#      allow on a log route, non-root uid, no capabilities, the image's
#      HEALTHCHECK, and SIGTERM via podman stop exiting 0 promptly
#   6. the same hardening as compose runs it: the database by a DNS name
#      (fixtures' DNS server, --dns), the upstream by an --add-host name,
#      sslmode=verify-full against the throwaway CA, and the signing key only
#      from /app/api/storage/.dify_secret_key (SECRET_KEY empty)
#   7. verify-full against the image's own CA bundle: the throwaway CA is not
#      in it, so the certificate is refused (the bundle is read)
#
# Exits non-zero when anything failed; always removes the containers and stops
# PostgreSQL, the upstream and the DNS server.
#
# Environment: IMAGE (default localhost/portcullis), CONTAINER_ENV (path of
# container-env.sh), STOP_LIMIT (seconds podman stop may take, default 5),
# SIZE_LIMIT_MB (default 25, in podman's units: 10^6 bytes), SKIP_BUILD=1
# (test an image already built).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
IMAGE=${IMAGE:-localhost/portcullis}
CONTAINER_ENV=${CONTAINER_ENV:-$ROOT/../shared/tools/container-env.sh}
STOP_LIMIT=${STOP_LIMIT:-5}
SIZE_LIMIT_MB=${SIZE_LIMIT_MB:-25}
BASE_SLIM=docker.io/library/debian:bookworm-slim
BASE_FULL=docker.io/library/debian:bookworm
NAME=pc-image-test-$$
NAME2=$NAME-compose
NAME3=$NAME-cabundle
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)

TMP=$(mktemp -d /tmp/pc-image-test.XXXXXX)
FX_PID=""
PASSED=0
FAILED=0
FAILURES=()

say() { printf 'image-test: %s\n' "$*"; }
ok() { PASSED=$((PASSED + 1)); printf 'ok   - %s\n' "$1"; }
fail() {
    FAILED=$((FAILED + 1)); FAILURES+=("$1")
    printf 'FAIL - %s\n' "$1"
    [ $# -gt 1 ] && printf '       %s\n' "${@:2}"
    return 0
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local c
    for c in "$NAME" "$NAME2" "$NAME3"; do
        if podman container exists "$c" 2>/dev/null; then
            "${PODMAN[@]}" rm -f "$c" >>"$TMP/podman.log" 2>&1 || true
        fi
    done
    if [ -n "$FX_PID" ] && kill -0 "$FX_PID" 2>/dev/null; then
        kill -TERM "$FX_PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$FX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$FX_PID" 2>/dev/null || true
        wait "$FX_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
    say "cleaned up (containers $NAME*, PostgreSQL, upstream, DNS server)"
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

finish() {
    echo
    if ((FAILED)); then
        say "failed:"
        printf '  - %s\n' "${FAILURES[@]}"
    fi
    echo "image-test: $PASSED passed, $FAILED failed"
    ((FAILED == 0))
    exit $?
}

abort() {
    fail "$@"
    finish
}

# ---- 1. podman and a base image -------------------------------------------

# container-env.sh's recipe, for when it could not make the base itself:
# debian:bookworm-slim built locally by debootstrap from apt's own mirror
# (no image registry is reachable from the machines this runs on).
local_base() {
    local mirror root
    mirror=$( (cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true) |
              grep -oE '^(URIs:|deb) +[^ ]+/debian/?( |$)' | awk '{print $2}' | head -n1)
    mirror=${mirror:-http://deb.debian.org/debian}
    command -v debootstrap >/dev/null || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    } || return 1
    root=$(mktemp -d)
    say "building $BASE_SLIM locally: debootstrap --variant=minbase bookworm from $mirror"
    if debootstrap --variant=minbase bookworm "$root" "$mirror" >"$TMP/debootstrap.log" 2>&1 &&
       tar -C "$root" -c . | podman import - "$BASE_SLIM" >/dev/null 2>>"$TMP/debootstrap.log"; then
        rm -rf "$root"
        return 0
    fi
    tail -n 20 "$TMP/debootstrap.log"
    rm -rf "$root"
    return 1
}

if ! command -v podman >/dev/null || ! command -v runc >/dev/null ||
   ! grep -qs '^default_ulimits' /etc/containers/containers.conf ||
   ! podman image exists "$BASE_SLIM"; then
    if [ -f "$CONTAINER_ENV" ]; then
        say "podman is not set up yet: running $CONTAINER_ENV"
        bash "$CONTAINER_ENV" || say "$CONTAINER_ENV exited $? (going on with what it set up)"
    else
        say "no $CONTAINER_ENV; set CONTAINER_ENV to it"
    fi
fi
command -v podman >/dev/null || abort "podman is not installed"
if ! podman image exists "$BASE_SLIM"; then
    local_base || abort "no base image $BASE_SLIM and it could not be built locally"
fi
say "$(podman --version), $(runc --version | head -n1)"

# ---- 2. build ---------------------------------------------------------------

BUILD_ARGS=()
if ! podman image exists "$BASE_FULL"; then
    # the build stage's debian:bookworm cannot be pulled here: build on the
    # local bookworm-slim (the same release; the compiler comes from apt)
    BUILD_ARGS+=(--build-arg "BUILD_IMAGE=$BASE_SLIM")
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    # --format docker: the OCI format would drop HEALTHCHECK
    say "podman build --format docker --isolation=chroot ${BUILD_ARGS[*]} -t $IMAGE ."
    start=$(date +%s)
    if podman build --format docker --isolation=chroot "${BUILD_ARGS[@]}" -t "$IMAGE" . >"$TMP/build.log" 2>&1; then
        ok "image builds ($(( $(date +%s) - start )) s)"
    else
        tail -n 40 "$TMP/build.log"
        abort "podman build failed (last lines above)"
    fi
fi
podman image exists "$IMAGE" || abort "no image $IMAGE"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "image $IMAGE: $size bytes ($(( (size + 500000) / 1000000 )) MB); base $BASE_SLIM: $(podman image inspect --format '{{.Size}}' "$BASE_SLIM") bytes"
if [[ "$size" =~ ^[0-9]+$ ]] && ((size <= SIZE_LIMIT_MB * 1000000)); then
    ok "image size $size bytes <= $SIZE_LIMIT_MB MB"
else
    fail "image size <= $SIZE_LIMIT_MB MB" "podman reports '$size' bytes"
fi

cfg=$(podman image inspect --format '{{.Config.User}}|{{.Config.StopSignal}}|{{json .Config.ExposedPorts}}|{{json .HealthCheck}}' "$IMAGE")
IFS='|' read -r img_user img_stop img_ports img_health <<<"$cfg"
case "$img_user" in
    ""|0|0:*|root|root:*) fail "image USER is non-root" "USER is '$img_user'" ;;
    *) ok "image USER is non-root ($img_user)" ;;
esac
[ "$img_stop" = SIGTERM ] && ok "image STOPSIGNAL is SIGTERM" || fail "image STOPSIGNAL is SIGTERM" "got '$img_stop'"
[[ "$img_ports" == *'"8080/tcp"'* ]] && ok "image EXPOSEs 8080" || fail "image EXPOSEs 8080" "got $img_ports"
[[ "$img_health" == *portcullis*healthcheck* ]] && ok "image HEALTHCHECK is portcullis healthcheck" ||
    fail "image HEALTHCHECK is portcullis healthcheck" "got $img_health"

# ---- 3. what the image holds ------------------------------------------------

# a copy of the image's file tree (the mount is released at once)
ROOTFS=$TMP/rootfs
mkdir -p "$ROOTFS"
if mnt=$(podman image mount "$IMAGE" 2>"$TMP/mount.err") && [ -d "$mnt" ]; then
    tar -C "$mnt" -cf - . | tar -C "$ROOTFS" -xf -
    podman image unmount "$IMAGE" >/dev/null 2>&1
else
    abort "podman image mount $IMAGE" "$(cat "$TMP/mount.err")"
fi
# every file and symlink (directories aside), as /path
(cd "$ROOTFS" && find . -mindepth 1 ! -type d | sed 's|^\.||' | sort) >"$TMP/files"
say "the image holds $(wc -l <"$TMP/files") files and symlinks"

# no shell, no package manager, no interpreter, by name, anywhere
bad=$(awk -F/ '{print $NF "\t" $0}' "$TMP/files" |
      grep -E '^(sh|bash|dash|ash|ksh|mksh|zsh|csh|tcsh|fish|busybox|toybox|apt|apt-get|apt-cache|dpkg|dpkg-deb|rpm|yum|dnf|microdnf|apk|python[0-9.]*|perl|env|su|sudo|login)'$'\t' |
      cut -f2)
[ -z "$bad" ] && ok "no shell, package manager or interpreter in the image (by name)" ||
    fail "no shell, package manager or interpreter in the image" $bad
# no program but portcullis: every other ELF file is a shared object
python3 tests/image/fixtures.py elf "$ROOTFS" >"$TMP/elf" || abort "listing the image's ELF files failed"
programs=$(cut -f1 "$TMP/elf" | grep -vE '\.so(\.[0-9][0-9a-z.]*)?$')
[ "$programs" = /usr/local/bin/portcullis ] && ok "the only program in the image is /usr/local/bin/portcullis" ||
    fail "the only program in the image is /usr/local/bin/portcullis" "ELF files not named as shared objects: $(echo $programs)"
for sh in /bin/sh /bin/busybox; do
    if out=$("${PODMAN[@]}" run --rm --network=host --entrypoint "$sh" "$IMAGE" -c 'echo shell-ran' 2>&1); then
        fail "--entrypoint $sh cannot run" "it ran: $out"
    elif grep -q shell-ran <<<"$out"; then
        fail "--entrypoint $sh cannot run" "it ran (then failed): $out"
    elif grep -qiE 'no such file|not found' <<<"$out"; then
        ok "--entrypoint $sh cannot run: no such file in the image"
    else
        fail "--entrypoint $sh fails because it does not exist" "$(grep -v systemd <<<"$out" | tail -n 3)"
    fi
done

# exactly the shared objects the binary loads, as the image's own loader
# resolves them (ld.so --list: ldd without a shell)
canon() { # a path inside the image, symlinks resolved inside the copy
    local p
    p=$(readlink -f "$ROOTFS$1") || return 1
    echo "${p#"$ROOTFS"}"
}
interp=$(awk -F'\t' '$1 == "/usr/local/bin/portcullis" {print $2}' "$TMP/elf")
loader_list() { # FILE -> resolved paths, one a line, or "NOT FOUND: ..." lines
    local out
    out=$("${PODMAN[@]}" run --rm --network=host --entrypoint "$interp" "$IMAGE" --list "$1" 2>&1) ||
        { echo "LOADER FAILED: $(grep -v systemd <<<"$out" | tail -n 2)"; return 0; }
    awk '/not found/ {print "NOT FOUND: " $1; next}
         $2 == "=>" && $3 ~ /^\// {print $3; next}
         $1 ~ /^\// {print $1}' <<<"$out"
}
if [ -z "$interp" ] || [ "$interp" = - ]; then
    fail "the binary names a program interpreter" "got '$interp'"
else
    loader_list /usr/local/bin/portcullis >"$TMP/loaded.raw"
    if grep -qE '^(NOT FOUND|LOADER FAILED)' "$TMP/loaded.raw"; then
        fail "every shared object of the binary resolves in the image" "$(grep -E '^(NOT FOUND|LOADER FAILED)' "$TMP/loaded.raw")"
    else
        ok "every shared object of the binary resolves in the image ($(wc -l <"$TMP/loaded.raw") with the loader)"
    fi
    { echo "$interp"; grep -vE '^(NOT FOUND|LOADER FAILED)' "$TMP/loaded.raw"; } |
        while read -r p; do canon "$p"; done | sort -u >"$TMP/loaded"
    # every shared object in the image that is not a plugin or an NSS module
    cut -f1 "$TMP/elf" | grep -E '\.so(\.[0-9][0-9a-z.]*)?$' |
        grep -vE '/plugins?/|/libnss_(files|dns)\.so\.2$' | sort -u >"$TMP/shipped"
    extra=$(comm -13 "$TMP/loaded" "$TMP/shipped")
    missing=$(comm -23 "$TMP/loaded" "$TMP/shipped")
    if [ -z "$extra" ] && [ -z "$missing" ]; then
        ok "the image's shared objects are exactly those the binary loads ($(wc -l <"$TMP/shipped"))"
    else
        fail "the image's shared objects are exactly those the binary loads" \
             "in the image, not loaded: $(echo $extra)" "loaded, not a regular file in the image: $(echo $missing)"
    fi
fi
# plugin directories and NSS modules: loadable, their dependencies in the image
plugins=$(cut -f1 "$TMP/elf" | grep -E '/plugins?/.*\.so$|/libnss_(files|dns)\.so\.2$')
for f in $plugins; do
    out=$(loader_list "$f")
    if grep -qE '^(NOT FOUND|LOADER FAILED)' <<<"$out"; then
        fail "$f: its dependencies resolve in the image" "$(grep -E '^(NOT FOUND|LOADER FAILED)' <<<"$out")"
    else
        ok "$f: its dependencies resolve in the image"
    fi
done
for m in libnss_files.so.2 libnss_dns.so.2; do
    grep -q "/$m\$" <<<"$plugins" && ok "NSS module $m is in the image" || fail "NSS module $m is in the image"
done

# files the product reads
if cmp -s rules/dify.yaml "$ROOTFS/etc/portcullis/portcullis.yaml"; then
    ok "/etc/portcullis/portcullis.yaml is rules/dify.yaml"
else
    fail "/etc/portcullis/portcullis.yaml is rules/dify.yaml"
fi
want_sql=$(cd policies && ls invalidate*.sql 2>/dev/null | sort)
have_sql=$(cd "$ROOTFS/usr/share/portcullis" 2>/dev/null && ls | sort)
sql_ok=1
[ -n "$want_sql" ] && [ "$want_sql" = "$have_sql" ] || sql_ok=0
for f in $want_sql; do cmp -s "policies/$f" "$ROOTFS/usr/share/portcullis/$f" || sql_ok=0; done
((sql_ok)) && ok "/usr/share/portcullis holds policies/invalidate*.sql: $(echo $want_sql)" ||
    fail "/usr/share/portcullis holds exactly policies/invalidate*.sql" "want: $(echo $want_sql)" "have: $(echo $have_sql)"
uid=${img_user%%:*}
gid=${img_user#*:}; [ "$gid" = "$img_user" ] && gid=$uid
grep -qE "^[^:]+:x:$uid:$gid:" "$ROOTFS/etc/passwd" 2>/dev/null && grep -qE "^[^:]+:x:$gid:" "$ROOTFS/etc/group" 2>/dev/null &&
    ok "/etc/passwd and /etc/group name uid $uid and gid $gid" ||
    fail "/etc/passwd and /etc/group name uid $uid and gid $gid" "$(cat "$ROOTFS/etc/passwd" "$ROOTFS/etc/group" 2>&1)"
hosts_line=$(grep -E '^hosts:' "$ROOTFS/etc/nsswitch.conf" 2>/dev/null)
[[ "$hosts_line" =~ [[:space:]]files([[:space:]]|$) && "$hosts_line" =~ [[:space:]]dns([[:space:]]|$) ]] &&
    ok "/etc/nsswitch.conf resolves hosts by files and dns" ||
    fail "/etc/nsswitch.conf resolves hosts by files and dns" "hosts line: '$hosts_line'"
bundle=$ROOTFS/etc/ssl/certs/ca-certificates.crt
certs=$(openssl crl2pkcs7 -nocrl -certfile "$bundle" 2>/dev/null | openssl pkcs7 -print_certs -noout 2>/dev/null | grep -c '^subject=')
((certs >= 100)) && ok "CA bundle /etc/ssl/certs/ca-certificates.crt parses: $certs certificates" ||
    fail "CA bundle /etc/ssl/certs/ca-certificates.crt holds the public CAs" "$certs certificates parsed"

# deploy/ runs the image under the restrictions this test runs it with
if [[ "$img_user" == *:* ]]; then
    while IFS=$'\t' read -r file verdict; do
        [ "$verdict" = ok ] && ok "$file runs the image as $img_user, read-only, without capabilities" ||
            fail "$file runs the image as $img_user, read-only, without capabilities" "$verdict"
    done < <(python3 tests/image/deploy_settings.py "$img_user" 2>&1)
else
    fail "image USER is uid:gid" "got '$img_user'"
fi

# ---- 4. PostgreSQL, upstream and DNS on the host ----------------------------

python3 tests/image/fixtures.py serve >"$TMP/fixtures.env" 2>"$TMP/fixtures.err" &
FX_PID=$!
for _ in $(seq 1 600); do
    grep -qx READY "$TMP/fixtures.env" && break
    kill -0 "$FX_PID" 2>/dev/null || break
    sleep 0.1
done
if ! grep -qx READY "$TMP/fixtures.env"; then
    cat "$TMP/fixtures.err"
    abort "PostgreSQL, the test upstream and the DNS server did not start"
fi
PG_PORT= UPSTREAM_PORT= PROXY_PORT= ADMIN_PORT= SECRET_KEY= APP_ID= OWNER_TOKEN= MEMBER_TOKEN=
DB_NAME= TLS_CA_DIR= DNS_ADDR= STORAGE_DIR= FILE_OWNER_TOKEN= FILE_MEMBER_TOKEN=
while IFS='=' read -r k v; do
    case "$k" in
        PG_PORT|UPSTREAM_PORT|PROXY_PORT|ADMIN_PORT|SECRET_KEY|APP_ID|OWNER_TOKEN|MEMBER_TOKEN) printf -v "$k" '%s' "$v" ;;
        DB_NAME|TLS_CA_DIR|DNS_ADDR|STORAGE_DIR|FILE_OWNER_TOKEN|FILE_MEMBER_TOKEN) printf -v "$k" '%s' "$v" ;;
    esac
done <"$TMP/fixtures.env"
say "PostgreSQL on 127.0.0.1:$PG_PORT (dify fixture, TLS as $DB_NAME), upstream on 127.0.0.1:$UPSTREAM_PORT, DNS on $DNS_ADDR:53"

# ---- 5. the container: read-only, no capabilities ---------------------------

HARDEN=(--read-only --cap-drop=ALL --security-opt=no-new-privileges)
status() { python3 tests/image/fixtures.py get "$PROXY_PORT" "$@"; }
running() { [ "$(podman inspect --format '{{.State.Running}}' "${1:-$NAME}" 2>/dev/null)" = true ]; }
show_logs() { echo "------ container log (${1:-$NAME})"; podman logs "${1:-$NAME}" 2>&1 | tail -n 30; echo "------"; }
psql_q() { PGSSLMODE=disable psql -X -At -h 127.0.0.1 -p "$PG_PORT" -U postgres -d dify -c "$1" 2>&1; }

# wait until GET PATH answers CODE (10 s), the container still running
wait_status() { # NAME PATH CODE
    local c=000
    for _ in $(seq 1 100); do
        running "$1" || break
        c=$(status "$2")
        [ "$c" = "$3" ] && break
        sleep 0.1
    done
    echo "$c"
}

# the proxy process: non-root, no capability at all, no new privileges, and
# the root filesystem mounted read-only
check_process() { # NAME
    local pid st uid caps nnp rootopts
    pid=$(podman inspect --format '{{.State.Pid}}' "$1")
    st=$(cat "/proc/$pid/status" 2>/dev/null)
    uid=$(awk '/^Uid:/ {print $2}' <<<"$st")
    if [ -n "$uid" ] && [ "$uid" != 0 ]; then
        ok "$1: the proxy process runs as uid $uid (non-root)"
    else
        fail "$1: the proxy process runs as a non-root uid" "uid '${uid}'"
    fi
    caps=$(awk '/^Cap(Inh|Prm|Eff|Bnd|Amb):/ {printf "%s%s ", $1, $2}' <<<"$st")
    if [ -n "$caps" ] && ! grep -qE ':0*[1-9a-f]' <<<"$caps"; then
        ok "$1: no capabilities (effective, permitted, bounding, ambient all 0)"
    else
        fail "$1: no capabilities" "$caps"
    fi
    nnp=$(awk '/^NoNewPrivs:/ {print $2}' <<<"$st")
    [ "$nnp" = 1 ] && ok "$1: no_new_privs is set" || fail "$1: no_new_privs is set" "NoNewPrivs: '$nnp'"
    # mountinfo: field 5 is the mount point, field 6 its per-mount options
    rootopts=$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" 2>/dev/null | tail -n1)
    [[ ",$rootopts," == *,ro,* ]] && ok "$1: the root filesystem is mounted read-only ($rootopts)" ||
        fail "$1: the root filesystem is mounted read-only" "options '$rootopts'"
}

say "starting $NAME (${HARDEN[*]}): proxy 127.0.0.1:$PROXY_PORT, admin 127.0.0.1:$ADMIN_PORT"
# PGSSLMODE=disable: this run is today's plain setup; TLS is checked below
if ! "${PODMAN[@]}" run -d --name "$NAME" --network=host "${HARDEN[@]}" \
        -e PORTCULLIS_LISTEN="127.0.0.1:$PROXY_PORT" \
        -e PORTCULLIS_UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT" \
        -e PORTCULLIS_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" \
        -e DB_HOST=127.0.0.1 -e DB_PORT="$PG_PORT" -e DB_USERNAME=postgres -e DB_PASSWORD= \
        -e DB_DATABASE=dify -e SECRET_KEY="$SECRET_KEY" -e PGSSLMODE=disable \
        "$IMAGE" >"$TMP/run.out" 2>"$TMP/run.err"; then
    cat "$TMP/run.err"
    abort "podman run failed"
fi
# (without systemd, podman logs that it cannot schedule the periodic health
# check; podman healthcheck run below still runs it)

code=$(wait_status "$NAME" /healthz 200)
if [ "$code" = 200 ]; then
    ok "GET /healthz is 200"
else
    show_logs
    abort "GET /healthz is 200" "got $code; container running: $(podman inspect --format '{{.State.Status}} exit {{.State.ExitCode}}' "$NAME" 2>&1)"
fi
# decisions need the database: wait until the proxy says it is ready
code=$(wait_status "$NAME" /readyz 200)
[ "$code" = 200 ] && ok "GET /readyz is 200 (database and upstream reachable)" ||
    fail "GET /readyz is 200" "got $code"

route=/console/api/apps/$APP_ID/chat-conversations
code=$(status "$route" "$MEMBER_TOKEN")
[ "$code" = 403 ] && ok "plain member (normal_a) on $route: 403" ||
    fail "plain member (normal_a) on $route: 403" "got $code"
code=$(status "$route" "$OWNER_TOKEN")
[ "$code" = 200 ] && ok "workspace owner (owner_a) on $route: 200" ||
    fail "workspace owner (owner_a) on $route: 200" "got $code"
code=$(status "$route")
[ "$code" = 401 ] && ok "no token on $route: 401" || fail "no token on $route: 401" "got $code"

check_process "$NAME"

if hc=$("${PODMAN[@]}" healthcheck run "$NAME" 2>&1); then
    ok "podman healthcheck run (the image's HEALTHCHECK) succeeds"
else
    fail "podman healthcheck run succeeds" "$hc"
fi
health=$(podman inspect --format '{{.State.Health.Status}}' "$NAME" 2>/dev/null)
[ "$health" = healthy ] && ok "container health is healthy" || fail "container health is healthy" "got '$health'"
if out=$("${PODMAN[@]}" exec "$NAME" portcullis healthcheck 2>&1); then
    ok "portcullis healthcheck inside the container succeeds"
else
    fail "portcullis healthcheck inside the container succeeds" "$out"
fi

running || { show_logs; fail "container still running before stop"; }
start=$(date +%s%N)
"${PODMAN[@]}" stop -t 10 "$NAME" >>"$TMP/podman.log" 2>&1
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME" 2>/dev/null)
if [ "$exit_code" = 0 ] && ((took_ms <= STOP_LIMIT * 1000)); then
    ok "podman stop (SIGTERM): exit 0 after $took_ms ms"
else
    show_logs
    fail "podman stop (SIGTERM) exits 0 within ${STOP_LIMIT}s" "exit code '$exit_code' after $took_ms ms"
fi
podman logs "$NAME" 2>&1 | grep -q '"msg":"stopped"' && ok "the proxy logged a clean stop" ||
    fail "the proxy logged a clean stop" "no \"stopped\" line in its log"
"${PODMAN[@]}" rm -f "$NAME" >>"$TMP/podman.log" 2>&1
# its database sessions end with it (and are not counted as the next run's)
left=""
for _ in $(seq 1 100); do
    left=$(psql_q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'portcullis'")
    [ "$left" = 0 ] && break
    sleep 0.1
done
[ "$left" = 0 ] && ok "$NAME's database sessions are gone after the stop" ||
    fail "$NAME's database sessions are gone after the stop" "still: '$left'"

# ---- 6. as compose runs it: names, verify-full, the generated key file -------

UP_NAME=pc-upstream.test
say "starting $NAME2: database $DB_NAME by DNS ($DNS_ADDR), upstream $UP_NAME by --add-host," \
    "sslmode=verify-full, key from /app/api/storage/.dify_secret_key"
if ! "${PODMAN[@]}" run -d --name "$NAME2" --network=host "${HARDEN[@]}" \
        --dns "$DNS_ADDR" --add-host "$UP_NAME:127.0.0.1" \
        -v "$TLS_CA_DIR:/run/pc-ca:ro" -v "$STORAGE_DIR:/app/api/storage:ro" \
        -e PORTCULLIS_LISTEN="127.0.0.1:$PROXY_PORT" \
        -e PORTCULLIS_UPSTREAM="http://$UP_NAME:$UPSTREAM_PORT" \
        -e PORTCULLIS_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" \
        -e DB_HOST="$DB_NAME" -e DB_PORT="$PG_PORT" -e DB_USERNAME=postgres -e DB_PASSWORD= \
        -e DB_DATABASE=dify -e SECRET_KEY= \
        -e PGSSLMODE=verify-full -e PGSSLROOTCERT=/run/pc-ca/ca.crt \
        "$IMAGE" >"$TMP/run2.out" 2>"$TMP/run2.err"; then
    cat "$TMP/run2.err"
    fail "podman run $NAME2 failed"
else
    code=$(wait_status "$NAME2" /readyz 200)
    if [ "$code" = 200 ]; then
        ok "$NAME2: GET /readyz is 200 (database by name over verify-full TLS, upstream by name)"
    else
        show_logs "$NAME2"
        fail "$NAME2: GET /readyz is 200" "got $code"
    fi
    grep -q "^dns: $DB_NAME type 1 -> 127.0.0.1" "$TMP/fixtures.err" &&
        ok "$NAME2: $DB_NAME was resolved by DNS (the fixtures' server answered the container)" ||
        fail "$NAME2: $DB_NAME was resolved by DNS" "the DNS server logged no query for it"
    # the upstream is configured only by its name, which the DNS server
    # does not know: /readyz (upstream reachable) and the owner's 200 below
    # (the upstream's answer) come through /etc/hosts
    if grep -q "^dns: $UP_NAME type 1 -> 127" "$TMP/fixtures.err"; then
        fail "$NAME2: $UP_NAME is resolved from /etc/hosts" "the DNS server answered it"
    elif [ "$code" = 200 ]; then
        ok "$NAME2: $UP_NAME was resolved from /etc/hosts (--add-host; the DNS server does not know it)"
    else
        fail "$NAME2: $UP_NAME was resolved from /etc/hosts" "not ready"
    fi
    tls=$(psql_q "SELECT count(*) FILTER (WHERE s.ssl) || ' ' || count(*) FROM pg_stat_activity a
                  JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'portcullis'")
    read -r tls_n all_n <<<"$tls"
    [[ "$tls_n" =~ ^[0-9]+$ ]] && ((tls_n >= 1 && tls_n == all_n)) &&
        ok "$NAME2: its $tls_n database connections use TLS (pg_stat_ssl)" ||
        fail "$NAME2: its database connections use TLS" "pg_stat_ssl: '$tls' (TLS, all)"
    code=$(status "$route" "$FILE_OWNER_TOKEN")
    [ "$code" = 200 ] && ok "$NAME2: owner's token signed with the key file's key: 200" ||
        fail "$NAME2: owner's token signed with the key file's key: 200" "got $code"
    code=$(status "$route" "$FILE_MEMBER_TOKEN")
    [ "$code" = 403 ] && ok "$NAME2: plain member's token signed with the key file's key: 403" ||
        fail "$NAME2: plain member's token signed with the key file's key: 403" "got $code"
    code=$(status "$route" "$OWNER_TOKEN")
    [ "$code" = 401 ] && ok "$NAME2: owner's token signed with another key: 401" ||
        fail "$NAME2: owner's token signed with another key: 401" "got $code"
    check_process "$NAME2"
    "${PODMAN[@]}" rm -f -t 10 "$NAME2" >>"$TMP/podman.log" 2>&1
fi

# ---- 7. verify-full against the image's CA bundle ----------------------------

say "starting $NAME3: sslmode=verify-full with sslrootcert=/etc/ssl/certs/ca-certificates.crt"
if ! "${PODMAN[@]}" run -d --name "$NAME3" --network=host "${HARDEN[@]}" --dns "$DNS_ADDR" \
        -e PORTCULLIS_LISTEN="127.0.0.1:$PROXY_PORT" \
        -e PORTCULLIS_UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT" \
        -e PORTCULLIS_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" \
        -e DB_HOST="$DB_NAME" -e DB_PORT="$PG_PORT" -e DB_USERNAME=postgres -e DB_PASSWORD= \
        -e DB_DATABASE=dify -e SECRET_KEY="$SECRET_KEY" \
        -e PGSSLMODE=verify-full -e PGSSLROOTCERT=/etc/ssl/certs/ca-certificates.crt \
        "$IMAGE" >"$TMP/run3.out" 2>"$TMP/run3.err"; then
    cat "$TMP/run3.err"
    fail "podman run $NAME3 failed"
else
    # the throwaway CA is not a public one: libpq reads the bundle and
    # refuses the certificate (a missing bundle says "does not exist")
    why=""
    for _ in $(seq 1 100); do
        why=$(podman logs "$NAME3" 2>&1 | grep -oE 'database connection [0-9]+ down: [^"]*' | head -n1)
        [ -n "$why" ] && break
        running "$NAME3" || break
        sleep 0.1
    done
    if [[ "$why" == *"certificate verify failed"* ]]; then
        ok "$NAME3: the image's CA bundle is read and does not vouch for a private CA ($why)"
    else
        show_logs "$NAME3"
        fail "$NAME3: verify-full with the image's CA bundle refuses a private CA's certificate" "got '${why}'"
    fi
    code=$(status /readyz)
    [ "$code" = 503 ] && ok "$NAME3: GET /readyz is 503 (no database connection)" ||
        fail "$NAME3: GET /readyz is 503" "got $code"
    "${PODMAN[@]}" rm -f -t 10 "$NAME3" >>"$TMP/podman.log" 2>&1
fi

finish
