#!/bin/sh
# Install the Debian bookworm packages that building and testing need, when
# they are missing. Called by `make test` (and `make bench` with "bench",
# `make fuzz` with "fuzz", `make faults` with "faults").
#
# It leaves the machine as it found it, apart from the packages themselves:
# - dpkg's output goes to build/deps.log (named when a step fails);
# - an existing /usr/sbin/policy-rc.d is left alone; when there is none, one
#   that stops packages from starting services is put in place for the
#   install and removed afterwards, whatever happens;
# - Debian's postgresql-15 creates a system cluster (15/main) that the tests
#   never use; when this install created it, it is dropped again;
# - Debian's prometheus (for promtool) enables a prometheus service: the
#   policy-rc.d above keeps it from starting;
# - mariadb-server-core and mariadb-client-core (mariadbd,
#   mariadb-install-db and the mariadb client: the throwaway servers of
#   tests/lib/harness.py class MariaDB) and libmariadb-dev (MariaDB
#   Connector/C, which the mysql policy driver is built on). Not
#   mariadb-server: it would create a system datadir (/var/lib/mysql), a
#   mysql user and a service that the tests never use; they run their own
#   mariadbd with --no-defaults in a temporary directory.
set -eu

# nginx-light, python3-yaml, gettext-base (envsubst), util-linux (unshare),
# iproute2: tests/deploy renders Dify's nginx templates and runs real nginx;
# python3-flask, python3-werkzeug, gunicorn: Dify's own routing stack, the
# upstream of the Dify pack's tests; openssl: tests/image makes a throwaway
# CA and reads the image's CA bundle; prometheus: promtool for
# tests/observability; strace: test_db_descriptors records the proxy's
# failed epoll_ctl calls
PKGS="build-essential pkg-config libevent-dev libpq-dev libyaml-dev libssl-dev libjwt-dev
      libcmocka-dev postgresql-15 mariadb-server-core mariadb-client-core libmariadb-dev python3 curl openssl
      nginx-light python3-yaml gettext-base util-linux iproute2
      python3-flask python3-werkzeug gunicorn prometheus strace"
case "${1:-}" in
    bench) PKGS="$PKGS wrk haproxy" ;;
    fuzz) PKGS="$PKGS clang libclang-rt-14-dev" ;;
    # tests/faults: nft rules in a router namespace (iproute2 and util-linux
    # are in the base list: ip netns, unshare)
    faults) PKGS="$PKGS nftables" ;;
esac

echo "== dependencies"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "deps: every package is installed"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "deps: missing packages:$missing (run as root, or install them)" >&2
    exit 1
fi

mkdir -p build
LOG="$(pwd)/build/deps.log"
: > "$LOG"
export DEBIAN_FRONTEND=noninteractive

ours=""
cleanup() {
    if [ -n "$ours" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ ! -e /usr/sbin/policy-rc.d ]; then
    # packages such as nginx and haproxy start a system service on install;
    # ours run on their own
    ours=1
    printf '#!/bin/sh\n# portcullis tests/deps.sh: no services during the install\nexit 101\n' \
        > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
fi

had_cluster=""
[ -e /etc/postgresql/15/main ] && had_cluster=1

step() {
    msg="$1"
    shift
    echo "deps: $msg"
    if ! "$@" >>"$LOG" 2>&1; then
        echo "deps: FAILED: $msg (see $LOG)" >&2
        tail -n 20 "$LOG" >&2
        exit 1
    fi
}

step "apt-get update (package lists; this can take a while)" apt-get -q -o Dpkg::Use-Pty=0 update
step "installing$missing" apt-get -q -y -o Dpkg::Use-Pty=0 install --no-install-recommends $missing
if [ -z "$had_cluster" ] && [ -e /etc/postgresql/15/main ]; then
    step "dropping the system cluster 15/main that postgresql-15 created (the tests run their own)" \
        pg_dropcluster --stop 15 main
fi
echo "deps: done ($LOG)"
