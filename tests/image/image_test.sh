#!/bin/bash
# make image-test: build the container image and check it end to end.
#
#   1. podman (set up by ../shared/tools/container-env.sh when it is not yet)
#   2. podman build --format docker --isolation=chroot -t $IMAGE .
#   3. a throwaway PostgreSQL (Dify's schema, tests/fixtures/dify-*-main.pg.sql) and a Dify-routed test
#      upstream on the host (tests/image/fixtures.py)
#   4. the image on --network=host, configured only by environment variables
#      as rules/dify.yaml reads them, then: /healthz, one denial and one allow
#      on a log route, non-root uid, the image's HEALTHCHECK, and SIGTERM via
#      podman stop exiting 0 promptly.
#
# Exits non-zero when anything failed; always removes the container and stops
# PostgreSQL and the upstream.
#
# Environment: IMAGE (default localhost/portcullis), CONTAINER_ENV (path of
# container-env.sh), STOP_LIMIT (seconds podman stop may take, default 5),
# SKIP_BUILD=1 (test an image already built).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
IMAGE=${IMAGE:-localhost/portcullis}
CONTAINER_ENV=${CONTAINER_ENV:-$ROOT/../shared/tools/container-env.sh}
STOP_LIMIT=${STOP_LIMIT:-5}
BASE_SLIM=docker.io/library/debian:bookworm-slim
BASE_FULL=docker.io/library/debian:bookworm
NAME=pc-image-test-$$
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
    if podman container exists "$NAME" 2>/dev/null; then
        "${PODMAN[@]}" rm -f "$NAME" >>"$TMP/podman.log" 2>&1 || true
    fi
    if [ -n "$FX_PID" ] && kill -0 "$FX_PID" 2>/dev/null; then
        kill -TERM "$FX_PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$FX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$FX_PID" 2>/dev/null || true
        wait "$FX_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
    say "cleaned up (container $NAME, PostgreSQL, upstream)"
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

# ---- 3. PostgreSQL and upstream on the host ---------------------------------

python3 tests/image/fixtures.py serve >"$TMP/fixtures.env" 2>"$TMP/fixtures.err" &
FX_PID=$!
for _ in $(seq 1 300); do
    grep -qx READY "$TMP/fixtures.env" && break
    kill -0 "$FX_PID" 2>/dev/null || break
    sleep 0.1
done
if ! grep -qx READY "$TMP/fixtures.env"; then
    cat "$TMP/fixtures.err"
    abort "PostgreSQL and the test upstream did not start"
fi
PG_PORT= UPSTREAM_PORT= PROXY_PORT= ADMIN_PORT= SECRET_KEY= APP_ID= OWNER_TOKEN= MEMBER_TOKEN=
while IFS='=' read -r k v; do
    case "$k" in
        PG_PORT|UPSTREAM_PORT|PROXY_PORT|ADMIN_PORT|SECRET_KEY|APP_ID|OWNER_TOKEN|MEMBER_TOKEN) printf -v "$k" '%s' "$v" ;;
    esac
done <"$TMP/fixtures.env"
say "PostgreSQL on 127.0.0.1:$PG_PORT (dify fixture), upstream on 127.0.0.1:$UPSTREAM_PORT"

# ---- 4. the container --------------------------------------------------------

say "starting $NAME: proxy 127.0.0.1:$PROXY_PORT, admin 127.0.0.1:$ADMIN_PORT"
if ! "${PODMAN[@]}" run -d --name "$NAME" --network=host \
        -e PORTCULLIS_LISTEN="127.0.0.1:$PROXY_PORT" \
        -e PORTCULLIS_UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT" \
        -e PORTCULLIS_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" \
        -e DB_HOST=127.0.0.1 -e DB_PORT="$PG_PORT" -e DB_USERNAME=postgres -e DB_PASSWORD= \
        -e DB_DATABASE=dify -e SECRET_KEY="$SECRET_KEY" \
        "$IMAGE" >"$TMP/run.out" 2>"$TMP/run.err"; then
    cat "$TMP/run.err"
    abort "podman run failed"
fi
# (without systemd, podman logs that it cannot schedule the periodic health
# check; podman healthcheck run below still runs it)

status() { python3 tests/image/fixtures.py get "$PROXY_PORT" "$@"; }
running() { [ "$(podman inspect --format '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ]; }
show_logs() { echo "------ container log"; podman logs "$NAME" 2>&1 | tail -n 30; echo "------"; }

code=000
for _ in $(seq 1 100); do
    running || break
    code=$(status /healthz)
    [ "$code" = 200 ] && break
    sleep 0.1
done
if [ "$code" = 200 ]; then
    ok "GET /healthz is 200"
else
    show_logs
    abort "GET /healthz is 200" "got $code; container running: $(podman inspect --format '{{.State.Status}} exit {{.State.ExitCode}}' "$NAME" 2>&1)"
fi
# decisions need the database: wait until the proxy says it is ready
for _ in $(seq 1 100); do
    [ "$(status /readyz)" = 200 ] && break
    sleep 0.1
done
[ "$(status /readyz)" = 200 ] && ok "GET /readyz is 200 (database and upstream reachable)" ||
    fail "GET /readyz is 200" "got $(status /readyz)"

route=/console/api/apps/$APP_ID/chat-conversations
code=$(status "$route" "$MEMBER_TOKEN")
[ "$code" = 403 ] && ok "plain member (normal_a) on $route: 403" ||
    fail "plain member (normal_a) on $route: 403" "got $code"
code=$(status "$route" "$OWNER_TOKEN")
[ "$code" = 200 ] && ok "workspace owner (owner_a) on $route: 200" ||
    fail "workspace owner (owner_a) on $route: 200" "got $code"
code=$(status "$route")
[ "$code" = 401 ] && ok "no token on $route: 401" || fail "no token on $route: 401" "got $code"

pid=$(podman inspect --format '{{.State.Pid}}' "$NAME")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
[ -n "$uid" ] || uid=$("${PODMAN[@]}" exec "$NAME" id -u 2>/dev/null)
if [ -n "$uid" ] && [ "$uid" != 0 ]; then
    ok "the proxy process runs as uid $uid (non-root)"
else
    fail "the proxy process runs as a non-root uid" "uid '${uid}'"
fi

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

finish
