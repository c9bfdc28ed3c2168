"""Recovery without Keystead: docs/recover_backup.py (cryptography + shamir-mnemonic only) on
a backup made by the ``keystead`` CLI recovers the AES key, which decrypts ciphertext made on
the token; the shares also combine with shamir-mnemonic's own ``shamir`` command."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.backup import format as fmt
from app.paths import Home
from tests.backup.test_round_trip import cipher
from tests.e2e.test_cli import PIN as CLI_PIN
from tests.e2e.test_cli import TOKEN, Cli, bare_cli, cli, with_witness  # noqa: F401

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "recover_backup.py"
SHAMIR = Path(sys.executable).with_name("shamir")
MESSAGE = "meet at the old mill"


@pytest.fixture(autouse=True)
def _second_person(request: pytest.FixtureRequest) -> None:
    """Backup and restore need an approver under the shipped policy: the witness."""
    if "cli" in request.fixturenames:
        with_witness(request.getfixturevalue("cli"))


def test_the_script_imports_only_the_standard_library_cryptography_and_shamir() -> None:
    tree = ast.parse(SCRIPT.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    third_party = roots - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"cryptography", "shamir_mnemonic"}


def _backup_with_ciphertext(cli: Cli, tmp_path: Path) -> tuple[dict, dict, str, str]:  # noqa: F811
    cli.run(
        *["keys", "generate", "--token", TOKEN, "--algorithm", "AES-256", "--name", "vault-key"],
        "--backup-able",
    )
    key = cli.json("keys", "show", "vault-key")
    ciphertext = cipher(Home(cli.home), "enc", key["cka_id"], MESSAGE, TOKEN, CLI_PIN)
    shares_file = tmp_path / "shares.json"
    created = cli.json(
        *["backup", "create", "--to", str(tmp_path), "--shares", "2-of-3"],
        *["--custodians", "alice,bob,carol", "--shares-out", str(shares_file)],
    )
    return created, json.loads(shares_file.read_text()), key["cka_id"], ciphertext


def test_recovery_script_recovers_a_working_key(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    created, shares, _cka_id, ciphertext = _backup_with_ciphertext(cli, tmp_path)
    two = tmp_path / "two.json"
    two.write_text(json.dumps([shares["shares"][0]["words"], shares["shares"][2]["words"]]))
    out = tmp_path / "recovered"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            created["directory"],
            "--out",
            str(out),
            "--shares-file",
            str(two),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert created["signer_fingerprint"] in result.stdout
    manifest = json.loads((Path(created["directory"]) / fmt.MANIFEST).read_bytes())
    (entry,) = manifest["keys"]
    value = (out / f"{entry['id']}.key").read_bytes()
    assert len(value) == 32
    decryptor = Cipher(algorithms.AES(value), modes.CBC(bytes(16))).decryptor()
    padded = decryptor.update(bytes.fromhex(ciphertext)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    assert unpadder.update(padded) + unpadder.finalize() == MESSAGE.encode()
    metadata = json.loads((out / "metadata.json").read_bytes())
    assert [k["name"] for k in metadata["keys"]] == ["vault-key"]
    audit = json.loads((out / "audit.json").read_bytes())
    assert audit["format"] == "keystead-audit-export" and audit["entries"]

    # A damaged backup: the script refuses, and writes nothing.
    keys_bin = Path(created["directory"]) / fmt.KEYS
    data = bytearray(keys_bin.read_bytes())
    data[3] ^= 1
    keys_bin.write_bytes(bytes(data))
    again = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            created["directory"],
            "--out",
            str(tmp_path / "o2"),
            "--shares-file",
            str(two),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert again.returncode == 1 and "keys.bin does not match" in again.stderr
    assert not (tmp_path / "o2").exists()


def test_shares_combine_with_the_shamir_command(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    created, shares, _cka_id, _ciphertext = _backup_with_ciphertext(cli, tmp_path)
    words = [shares["shares"][1]["words"], shares["shares"][0]["words"]]
    result = subprocess.run(
        [str(SHAMIR), "recover"],
        input="\n".join(words) + "\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    secret = bytes.fromhex(result.stdout.split("Your master secret is:")[1].split()[0])
    assert fmt.kek_check_value(secret) == created["kek_check_value"]
