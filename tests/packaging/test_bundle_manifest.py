"""The offline bundle's install.sh verifies the bundle before using any of it: a flipped byte, a
missing file, an unlisted file and a bad or unchecked signature each stop it with one line.

A small bundle is made here with the real packaging/install.sh and a SHA256SUMS written as
build-bundle.sh writes it; ``--verify-only`` stops after the check.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def write_manifest(bundle: Path) -> None:
    lines = []
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        name = path.relative_to(bundle).as_posix()
        if name.startswith("SHA256SUMS"):
            continue
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n")
    (bundle / "SHA256SUMS").write_text("".join(lines))


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "keystead-offline"
    (root / "wheels").mkdir(parents=True)
    (root / "debs").mkdir()
    shutil.copy(REPO / "packaging" / "install.sh", root / "install.sh")
    (root / "wheels" / "demo-1.0-py3-none-any.whl").write_bytes(bytes(range(256)) * 64)
    (root / "debs" / "Packages").write_text("Package: demo\n")
    (root / "requirements.lock").write_text("demo==1.0 --hash=sha256:00\n")
    write_manifest(root)
    return root


def verify(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(bundle / "install.sh"), "--verify-only", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_intact_bundle_verifies(bundle: Path) -> None:
    result = verify(bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Bundle verified: 4 files match SHA256SUMS")
    digest = hashlib.sha256((bundle / "SHA256SUMS").read_bytes()).hexdigest()
    assert digest in result.stdout  # to compare with the value the builder recorded


def test_one_flipped_byte_is_refused(bundle: Path) -> None:
    wheel = bundle / "wheels" / "demo-1.0-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    data[5000] ^= 0x01
    wheel.write_bytes(bytes(data))
    result = verify(bundle)
    assert result.returncode == 1
    assert result.stderr.startswith("install.sh: error: bundle damaged or changed: ")
    assert "wheels/demo-1.0-py3-none-any.whl: FAILED" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "Bundle verified" not in result.stdout


def test_missing_file_is_refused(bundle: Path) -> None:
    (bundle / "debs" / "Packages").unlink()
    result = verify(bundle)
    assert result.returncode == 1
    assert "bundle damaged or changed" in result.stderr and "debs/Packages" in result.stderr


def test_unlisted_file_is_refused(bundle: Path) -> None:
    (bundle / "debs" / "extra_1.0_amd64.deb").write_bytes(b"not in the manifest")
    result = verify(bundle)
    assert result.returncode == 1
    assert "files not in SHA256SUMS: debs/extra_1.0_amd64.deb" in result.stderr


def test_changed_manifest_line_is_refused(bundle: Path) -> None:
    manifest = bundle / "SHA256SUMS"
    manifest.write_text(manifest.read_text().replace("0", "1", 1))
    assert verify(bundle).returncode == 1


@pytest.fixture
def signer(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A throw-away gpg key (no passphrase: test only) and its public keyring file."""
    if shutil.which("gpg") is None or shutil.which("gpgv") is None:
        pytest.skip("gpg/gpgv are not installed")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "bundle-test", "ed25519"],
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    keyring = tmp_path / "signer.gpg"
    keyring.write_bytes(
        subprocess.run(
            ["gpg", "--batch", "--export", "bundle-test"], env=env, capture_output=True, check=True
        ).stdout
    )
    yield env, keyring
    subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, check=False)


def sign(bundle: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--yes",
            "--armor",
            "--detach-sign",
            "--local-user",
            "bundle-test",
            "--output",
            str(bundle / "SHA256SUMS.asc"),
            str(bundle / "SHA256SUMS"),
        ],
        env=env,
        capture_output=True,
        check=True,
    )


def test_signed_bundle_needs_and_checks_the_keyring(bundle: Path, signer) -> None:  # type: ignore[no-untyped-def]
    env, keyring = signer
    sign(bundle, env)
    unchecked = verify(bundle)
    assert unchecked.returncode == 1
    assert (
        "the bundle is signed: give the signer's public keyring with --keyring" in unchecked.stderr
    )
    checked = verify(bundle, "--keyring", str(keyring))
    assert checked.returncode == 0, checked.stderr
    assert "Signature of SHA256SUMS verified" in checked.stdout

    # A manifest re-written to match a changed file no longer matches its signature.
    (bundle / "debs" / "Packages").write_text("Package: evil\n")
    write_manifest(bundle)
    forged = verify(bundle, "--keyring", str(keyring))
    assert forged.returncode == 1
    assert "does not verify" in forged.stderr


def test_keyring_without_signature_is_refused(bundle: Path, tmp_path: Path) -> None:
    keyring = tmp_path / "k.gpg"
    keyring.write_bytes(b"")
    result = verify(bundle, "--keyring", str(keyring))
    assert result.returncode == 1
    assert "no SHA256SUMS.asc signature" in result.stderr
