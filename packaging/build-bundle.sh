#!/usr/bin/env bash
# Build Keystead's offline bundle on a connected Debian 12 (amd64) machine, as root:
#
#   bash packaging/build-bundle.sh [OUT_DIR]        (default dist/keystead-offline-VERSION)
#
# The bundle holds everything an air-gapped Debian 12 machine needs, and install.sh to install it
# with no network:
#   wheels/     every Python distribution of packaging/requirements.lock for CPython 3.11 on this
#               platform (pip download --require-hashes: the lock's hashes are checked), and
#               Keystead's own wheel
#   debs/       the Debian packages of packaging/debian-packages.txt and their whole dependency
#               closure (resolved by apt against an empty package status, so nothing is assumed
#               installed), with a Packages index (dpkg-scanpackages): a local apt repository
#   install.sh, install_desktop.py, requirements.lock, debian-packages.txt, icons/, resources/
#   SHA256SUMS  the SHA-256 of every file above; install.sh refuses the bundle on any mismatch
#   SHA256SUMS.asc  a detached gpg signature, when KEYSTEAD_BUNDLE_GPG_KEY names a secret key
# Also writes OUT_DIR.tar. Prints the bundle's size and the SHA-256 of SHA256SUMS to record.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
[ "$(id -u)" -eq 0 ] || { echo "build-bundle.sh: error: run as root (apt downloads into the bundle)" >&2; exit 1; }
bash scripts/setup.sh
python=.venv/bin/python
version=$("$python" -c 'import importlib.metadata as m; print(m.version("keystead"))')
"$python" - <<'PY' || { echo "build-bundle.sh: error: build with CPython 3.11 (Debian 12's python3)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info[:2] == (3, 11) and sys.implementation.name == "cpython" else 1)
PY
out=$(realpath -m "${1:-dist/keystead-offline-$version}")
rm -rf "$out" "$out.tar"
mkdir -p "$out/wheels" "$out/debs" "$out/icons" "$out/resources"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "Downloading the Python wheels of packaging/requirements.lock"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
  -r packaging/requirements.lock -d "$out/wheels" >"$work/pip.log" 2>&1 \
  || { tail -n 20 "$work/pip.log" >&2; echo "build-bundle.sh: error: pip download failed" >&2; exit 1; }
echo "Building Keystead's wheel"
"$python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$out/wheels" "$repo" \
  >"$work/wheel.log" 2>&1 \
  || { tail -n 20 "$work/wheel.log" >&2; echo "build-bundle.sh: error: building the wheel failed" >&2; exit 1; }
rm -rf "$repo/build"

echo "Downloading the Debian packages and their dependency closure"
command -v dpkg-scanpackages >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
mapfile -t packages < <(sed -e 's/#.*//' packaging/debian-packages.txt | tr -s ' \t' '\n' | sed '/^$/d')
mkdir -p "$work/archives/partial" "$work/state"
: >"$work/state/status"
apt-get -qq update
# An empty status file: apt resolves the closure as for a machine with nothing installed.
DEBIAN_FRONTEND=noninteractive apt-get -qq -y --download-only --no-install-recommends \
  -o "Dir::State::status=$work/state/status" -o "Dir::Cache::Archives=$work/archives" \
  -o "Debug::NoLocking=1" install "${packages[@]}" >"$work/apt.log" 2>&1 \
  || { tail -n 20 "$work/apt.log" >&2; echo "build-bundle.sh: error: apt could not download" >&2; exit 1; }
mv "$work"/archives/*.deb "$out/debs/"
(cd "$out/debs" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages)

cp packaging/install.sh packaging/install_desktop.py packaging/requirements.lock \
  packaging/debian-packages.txt "$out/"
cp icons/keystead.svg "$out/icons/"
cp resources/org.keystead.Keystead.desktop resources/org.keystead.Keystead.metainfo.xml "$out/resources/"
(cd "$out" && find . -type f ! -name SHA256SUMS ! -name SHA256SUMS.asc -printf '%P\n' | LC_ALL=C sort \
  | xargs -d '\n' sha256sum >SHA256SUMS)
if [ -n "${KEYSTEAD_BUNDLE_GPG_KEY:-}" ]; then
  gpg --batch --yes --armor --local-user "$KEYSTEAD_BUNDLE_GPG_KEY" --detach-sign \
    --output "$out/SHA256SUMS.asc" "$out/SHA256SUMS"
  echo "Signed SHA256SUMS with $KEYSTEAD_BUNDLE_GPG_KEY"
fi
tar -C "$(dirname "$out")" -cf "$out.tar" "$(basename "$out")"
echo "Bundle: $out ($(du -sh "$out" | cut -f1); $(ls "$out/wheels" | wc -l) wheels, $(ls "$out/debs" | grep -c '\.deb$') Debian packages)"
echo "Archive: $out.tar ($(du -h "$out.tar" | cut -f1))"
echo "Record this: sha256 of SHA256SUMS = $(sha256sum "$out/SHA256SUMS" | cut -c1-64)"
