#!/bin/sh
# Install the Debian bookworm packages that building and testing need, when
# they are missing. Called by `make test` (and `make bench`, with "bench").
set -eu

# nginx-light, python3-yaml, gettext-base (envsubst), util-linux (unshare),
# iproute2: tests/deploy renders Dify's nginx templates and runs real nginx
PKGS="build-essential pkg-config libevent-dev libpq-dev libyaml-dev libssl-dev libjwt-dev
      libcmocka-dev postgresql-15 python3 curl
      nginx-light python3-yaml gettext-base util-linux iproute2"
if [ "${1:-}" = "bench" ]; then
    PKGS="$PKGS wrk haproxy"
fi
if [ "${1:-}" = "fuzz" ]; then
    PKGS="$PKGS clang libclang-rt-14-dev"
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != "0" ]; then
    echo "deps: missing packages:$missing (run as root, or install them)" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# nginx and haproxy start a system service on install; ours run on their own
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
apt-get install -y -qq --no-install-recommends $missing
rm -f /usr/sbin/policy-rc.d
