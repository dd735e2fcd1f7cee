#!/bin/sh
# tools/image-rootfs.sh BINARY ROOTFS
#
# Fills ROOTFS with what BINARY needs to run on an empty (FROM scratch) image,
# computed from the build system itself, so that a new dependency is picked
# up without editing a list:
#
#   - BINARY at /usr/local/bin/portcullis;
#   - every shared object ldd reports for it, the ELF interpreter included,
#     each as a regular file under its soname, in its canonical directory
#     (/lib and /lib64 become symlinks into /usr, as on Debian);
#   - plugin directories of those libraries: shared objects that the Debian
#     package owning a loaded library ships under a directory named "plugin"
#     or "plugins" (MariaDB Connector/C's auth plugins in
#     libmariadb3/plugin/, krb5's plugins/), with their own ldd closure;
#     modules that are loaded only when a config asks for them (glibc's gconv
#     iconv modules, OpenSSL's engines-3/ and ossl-modules/) are left out;
#   - glibc's NSS modules for "files" and "dns" (libnss_files.so.2,
#     libnss_dns.so.2; since glibc 2.34 their code is in libc itself, the
#     files stay for programs that dlopen them by name) and /etc/nsswitch.conf;
#   - /etc/passwd and /etc/group with root and portcullis (10001:10001),
#     a fallback /etc/hosts (container runtimes mount their own over it),
#     /etc/os-release, the CA bundle /etc/ssl/certs/ca-certificates.crt (with
#     OpenSSL's default-path links in /usr/lib/ssl), an empty /tmp;
#   - /var/lib/dpkg/status.d/<package>: the status stanza of every Debian
#     package a file was copied from (as distroless images do), so that a
#     vulnerability scanner reports exactly what the image carries. No dpkg,
#     no apt.
#
# Prints what it copied. Fails when a dependency cannot be resolved.
set -eu

bin=$1
root=$2
[ -x "$bin" ] || { echo "image-rootfs: $bin is not an executable" >&2; exit 1; }
mkdir -p "$root"
pkgs=$(mktemp)
seen=$(mktemp)
trap 'rm -f "$pkgs" "$seen"' EXIT

# the Debian package that owns PATH (dpkg may know it by its /lib or its
# /usr/lib spelling); nothing when no package does
owner() {
    for p in "$1" "$(readlink -f "$1")" "/usr$1" "${1#/usr}"; do
        o=$(dpkg-query -S "$p" 2>/dev/null | head -n1 | cut -d: -f1) || true
        [ -n "$o" ] && { echo "$o"; return 0; }
    done
    return 0
}

# copy PATH (following symlinks) to ROOTFS at its canonical directory under
# its own name, once; record its package
put() {
    src=$1
    dir=$(readlink -f "$(dirname "$src")")
    dst=$root$dir/$(basename "$src")
    grep -qxF "$dst" "$seen" && return 0
    echo "$dst" >>"$seen"
    mkdir -p "$root$dir"
    cp -L "$src" "$dst"
    chmod go-w "$dst"
    o=$(owner "$src")
    if [ -n "$o" ]; then
        echo "$o" >>"$pkgs"
    else
        echo "image-rootfs: warning: no Debian package owns $src (its plugins cannot be found)" >&2
    fi
    echo "  $dir/$(basename "$src")${o:+  ($o)}"
}

# the shared objects ldd resolves for ELF FILE, one path a line; fails on any
# "not found"
deps() {
    out=$(ldd "$1") || { echo "image-rootfs: ldd $1 failed" >&2; return 1; }
    if echo "$out" | grep -q 'not found'; then
        echo "image-rootfs: unresolved dependencies of $1:" >&2
        echo "$out" | grep 'not found' >&2
        return 1
    fi
    echo "$out" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
}

# FILE and its whole closure (ldd lists transitive dependencies itself)
put_with_deps() {
    put "$1"
    list=$(deps "$1") || exit 1
    for lib in $list; do put "$lib"; done
}

echo "image-rootfs: the binary and the libraries it loads"
mkdir -p "$root/usr/local/bin"
cp "$bin" "$root/usr/local/bin/portcullis"
chmod 0755 "$root/usr/local/bin/portcullis"
list=$(deps "$bin") || exit 1
for lib in $list; do put "$lib"; done

libc=$(echo "$list" | grep '/libc\.so\.6$' | head -n1)
[ -n "$libc" ] || { echo "image-rootfs: $bin does not load libc.so.6?" >&2; exit 1; }
libdir=$(readlink -f "$(dirname "$libc")")

echo "image-rootfs: plugin directories of those libraries"
for pkg in $(sort -u "$pkgs"); do
    dpkg-query -L "$pkg" | while IFS= read -r f; do
        case "$f" in
            */plugin/*.so | */plugins/*.so | */plugin/*/*.so | */plugins/*/*.so) ;;
            *) continue ;;
        esac
        [ -f "$f" ] || continue
        case "$(readlink -f "$f")" in /usr/lib/* | /lib/*) ;; *) continue ;; esac
        put_with_deps "$f"
    done
done

echo "image-rootfs: name service modules"
for m in libnss_files.so.2 libnss_dns.so.2; do
    if [ -e "$libdir/$m" ]; then
        put_with_deps "$libdir/$m"
    else
        echo "image-rootfs: no $libdir/$m (this glibc has it built in)"
    fi
done

# merged /usr: /lib -> usr/lib, /lib64 -> usr/lib64, as on the build system
for l in /lib /lib32 /lib64 /libx32; do
    if [ -L "$l" ] && [ -d "$root$(readlink -f "$l")" ]; then
        ln -sfn "$(readlink "$l")" "$root$l"
    fi
done

echo "image-rootfs: /etc, CA certificates, package status"
mkdir -p "$root/etc/ssl/certs" "$root/usr/lib/ssl" "$root/tmp" "$root/var/lib/dpkg/status.d"
chmod 1777 "$root/tmp"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
portcullis:x:10001:10001:portcullis:/nonexistent:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
portcullis:x:10001:
EOF
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd:   files
group:    files
shadow:   files
hosts:    files dns
networks: files
protocols: files
services: files
EOF
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF
cp -L /etc/os-release "$root/etc/os-release"
bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$bundle" ] || { echo "image-rootfs: no $bundle (install ca-certificates)" >&2; exit 1; }
cp -L "$bundle" "$root$bundle"
echo ca-certificates >>"$pkgs"
ln -sfn /etc/ssl/certs "$root/usr/lib/ssl/certs"
ln -sfn /etc/ssl/certs/ca-certificates.crt "$root/usr/lib/ssl/cert.pem"
chmod -R go-w "$root/etc"
for pkg in $(sort -u "$pkgs"); do
    dpkg-query -s "$pkg" >"$root/var/lib/dpkg/status.d/${pkg%%:*}"
done
echo "  packages: $(sort -u "$pkgs" | tr '\n' ' ')"
echo "image-rootfs: $(du -sk "$root" | cut -f1) KiB in $root"
