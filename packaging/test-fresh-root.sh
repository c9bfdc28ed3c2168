#!/usr/bin/env bash
# Install the offline bundle into a fresh Debian 12 root with the network cut, and run its
# self-test there. Needs root, debootstrap and unshare; the tests skip it when they are missing.
#
#   bash packaging/test-fresh-root.sh BUNDLE_DIR [ROOT_TEMPLATE]
#
# ROOT_TEMPLATE is a pristine `debootstrap --variant=minbase bookworm` tree to copy (made with the
# Debian mirror from the machine's apt sources when not given; that step needs the network). The
# copy is made in a temporary directory, the bundle is copied into it, and then
# `unshare --net chroot ROOT bash /bundle/install.sh` runs with /proc and /dev mounted: a new
# network namespace has only `lo`, so nothing can be downloaded. Prints the install time and
# `keystead selftest`'s output; exits with install.sh's status. The root is removed afterwards
# unless KEEP_ROOT=1 (its path is printed).
set -euo pipefail
bundle=$(realpath "${1:?usage: test-fresh-root.sh BUNDLE_DIR [ROOT_TEMPLATE]}")
template=${2:-}
for tool in debootstrap unshare chroot; do
  command -v "$tool" >/dev/null || { echo "test-fresh-root.sh: $tool is not installed" >&2; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "test-fresh-root.sh: needs root" >&2; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/keystead-fresh-root.XXXXXX")
root="$work/root"
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  umount "$root/dev" 2>/dev/null || true
  if [ "${KEEP_ROOT:-0}" = 1 ]; then echo "Root kept: $root"; else rm -rf "$work"; fi
}
trap cleanup EXIT
if [ -n "$template" ]; then
  cp -a "$template" "$root"
else
  mirror=$(grep -rhoE 'https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -n 1)
  debootstrap --variant=minbase bookworm "$root" "${mirror:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1
fi
cp -a "$bundle" "$root/bundle"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
started=$(date +%s.%N)
status=0
unshare --net chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 bash /bundle/install.sh || status=$?
elapsed=$(echo "$(date +%s.%N) - $started" | bc 2>/dev/null || python3 -c "print(round($(date +%s.%N) - $started, 1))")
echo "install.sh exited $status after ${elapsed} s in a fresh root with no network"
if [ "$status" -eq 0 ]; then
  unshare --net chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root \
    sh -c 'ip -br link 2>/dev/null || cat /proc/net/dev | tail -n +3 | cut -d: -f1' | sed 's/^/interfaces in the namespace: /'
fi
exit "$status"
