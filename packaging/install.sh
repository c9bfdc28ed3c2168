#!/usr/bin/env bash
# Install Keystead from this offline bundle on a Debian 12 (amd64) machine, with no network.
#
#   sudo bash install.sh [--keyring FILE] [--verify-only]
#
# 1. Verifies the bundle before using any of it: every file is listed in SHA256SUMS with the
#    right SHA-256 and nothing unlisted is present; if SHA256SUMS.asc exists, its detached
#    signature is checked with gpgv against --keyring FILE (required then). The SHA-256 of
#    SHA256SUMS itself is printed, to compare with the value the bundle's builder recorded.
# 2. Installs the Debian packages from the bundle's own repository (debs/, apt with only that
#    source; apt checks each .deb against the hash-checked Packages index).
# 3. Makes a virtual environment in $KEYSTEAD_PREFIX (default /opt/keystead) and installs the
#    wheels with pip --no-index --require-hashes (requirements.lock), then Keystead's wheel.
# 4. Links keystead and keystead-gui into /usr/local/bin, installs the desktop entry, AppStream
#    metainfo and icons under /usr/local/share, and runs `keystead selftest`.
# Any failure stops the installation with one line saying which step failed.
set -euo pipefail
bundle=$(cd "$(dirname "$0")" && pwd)
prefix=${KEYSTEAD_PREFIX:-/opt/keystead}
keyring=""
verify_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --keyring) keyring=${2:?--keyring needs a file}; shift 2 ;;
    --verify-only) verify_only=1; shift ;;
    *) echo "install.sh: error: unknown argument $1 (usage: install.sh [--keyring FILE] [--verify-only])" >&2; exit 2 ;;
  esac
done
fail() { echo "install.sh: error: $*" >&2; exit 1; }
started=$(date +%s)

# --- 1. verify ------------------------------------------------------------------------------
cd "$bundle"
[ -f SHA256SUMS ] || fail "SHA256SUMS is missing: this is not a complete Keystead bundle"
if [ -f SHA256SUMS.asc ]; then
  [ -n "$keyring" ] || fail "the bundle is signed: give the signer's public keyring with --keyring FILE"
  gpgv --keyring "$(realpath "$keyring")" SHA256SUMS.asc SHA256SUMS >/dev/null 2>&1 \
    || fail "the signature SHA256SUMS.asc does not verify with $keyring: do not install this bundle"
  echo "Signature of SHA256SUMS verified with $keyring"
elif [ -n "$keyring" ]; then
  fail "--keyring was given but the bundle has no SHA256SUMS.asc signature"
fi
listed=$(sed -E 's/^[0-9a-f]{64}  (\.\/)?//' SHA256SUMS | sort)
present=$(find . -type f ! -name SHA256SUMS ! -name SHA256SUMS.asc -printf '%P\n' | sort)
unlisted=$(comm -13 <(echo "$listed") <(echo "$present") | head -n 3 | tr '\n' ' ')
[ -z "$unlisted" ] || fail "files not in SHA256SUMS: ${unlisted}— the bundle was changed; do not install it"
if ! bad=$(sha256sum --check --strict --quiet SHA256SUMS 2>&1); then
  fail "bundle damaged or changed: $(echo "$bad" | grep -v '^sha256sum: WARNING' | head -n 3 | tr '\n' ' ')"
fi
echo "Bundle verified: $(echo "$listed" | wc -l) files match SHA256SUMS (sha256 of SHA256SUMS: $(sha256sum SHA256SUMS | cut -c1-64))"
[ "$verify_only" -eq 0 ] || exit 0
[ "$(id -u)" -eq 0 ] || fail "run as root (sudo bash install.sh): it installs Debian packages"

# --- 2. Debian packages from the bundle's own repository ------------------------------------
apt_dir=$(mktemp -d)
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
echo "deb [trusted=yes] file:$bundle/debs ./" >"$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
  -o "Acquire::Languages=none" -o "APT::Sandbox::User=root" -qq)
mapfile -t packages < <(sed -e 's/#.*//' debian-packages.txt | tr -s ' \t' '\n' | sed '/^$/d')
echo "Installing ${#packages[@]} Debian packages and what they need from debs/"
apt-get "${apt_opts[@]}" update >"$apt_dir/apt.log" 2>&1 || { cat "$apt_dir/apt.log" >&2; fail "apt could not read the bundle's repository"; }
DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y --no-install-recommends \
  "${packages[@]}" >"$apt_dir/apt.log" 2>&1 || { tail -n 20 "$apt_dir/apt.log" >&2; fail "installing the Debian packages failed"; }

# --- 3. Python environment, no index ----------------------------------------------------------
echo "Installing Keystead and its Python packages in $prefix/venv"
rm -rf "$prefix/venv"
mkdir -p "$prefix"
python3 -m venv "$prefix/venv" || fail "python3 -m venv failed"
pip=("$prefix/venv/bin/python" -m pip --disable-pip-version-check --no-input --isolated install
  --no-index --find-links "$bundle/wheels" --no-deps --quiet)
"${pip[@]}" --require-hashes -r requirements.lock 2>"$apt_dir/pip.log" \
  || { tail -n 20 "$apt_dir/pip.log" >&2; fail "installing the locked wheels failed"; }
"${pip[@]}" "$bundle"/wheels/keystead-*.whl 2>"$apt_dir/pip.log" \
  || { tail -n 20 "$apt_dir/pip.log" >&2; fail "installing Keystead's wheel failed"; }

# --- 4. commands, desktop, self-test ----------------------------------------------------------
mkdir -p /usr/local/bin
ln -sf "$prefix/venv/bin/keystead" /usr/local/bin/keystead
ln -sf "$prefix/venv/bin/keystead-gui" /usr/local/bin/keystead-gui
"$prefix/venv/bin/python" install_desktop.py --assets "$bundle" --prefix /usr/local \
  --exec /usr/local/bin/keystead-gui >/dev/null || fail "installing the desktop entry failed"
echo "Desktop entry and icons installed under /usr/local/share"
echo "Running keystead selftest"
/usr/local/bin/keystead selftest || fail "the self-test failed: Keystead is installed but not working"
echo "Keystead $("$prefix/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("keystead"))') installed in $(( $(date +%s) - started )) s: /usr/local/bin/keystead, /usr/local/bin/keystead-gui"
