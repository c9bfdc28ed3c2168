"""``keystead keys sign|verify|encrypt|decrypt`` as a subprocess: the documented commands,
openssl as the peer for the signature, one-line refusals that write nothing."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from app.paths import Home
from tests.e2e.test_cli import PIN, TOKEN, Cli, bare_cli, cli, generate, with_witness  # noqa: F401 (fixtures)
from tests.hsm.kit import pkcs11_tool

pytestmark = pytest.mark.e2e


def test_sign_verify_encrypt_decrypt(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    with_witness(cli)
    signer = generate(cli, "RSA-2048", "release-signer")
    cli.run("keys", "activate", signer["id"])
    data = tmp_path / "release.tar"
    data.write_bytes(b"release bytes\n" * 10_000)
    sig = tmp_path / "release.sig"
    row = cli.json(
        "keys",
        "sign",
        "release-signer",
        "--in",
        str(data),
        "--out",
        str(sig),
        "--mechanism",
        "RSA-PKCS1-SHA384",
    )
    assert row["input_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert row["output_sha256"] == hashlib.sha256(sig.read_bytes()).hexdigest()

    # pkcs11-tool reads the public key off the token: openssl checks the signature with it.
    der = tmp_path / "pub.der"
    pkcs11_tool(
        Home(cli.home),
        "--token-label",
        TOKEN,
        "--read-object",
        "--type",
        "pubkey",
        "--id",
        signer["cka_id"],
        "--output-file",
        str(der),
        pin=PIN,
    )
    pem = tmp_path / "pub.pem"
    pem.write_bytes(
        serialization.load_der_public_key(der.read_bytes()).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    checked = subprocess.run(
        ["openssl", "dgst", "-sha384", "-verify", str(pem), "-signature", str(sig), str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0 and "Verified OK" in checked.stdout, checked

    out = cli.run(
        "keys",
        "verify",
        "release-signer",
        "--in",
        str(data),
        "--sig",
        str(sig),
        "--mechanism",
        "RSA-PKCS1-SHA384",
    ).stdout
    assert out.startswith("Signature OK")
    error = cli.error("keys", "verify", "release-signer", "--in", str(data), "--sig", str(sig))
    assert "does not match" in error  # default mechanism is PSS: not what signed it

    error = cli.error("keys", "sign", "release-signer", "--in", str(data), "--out", str(sig))
    assert "already exists" in error

    aes = generate(cli, "AES-256", "file-key")
    error = cli.error(
        "keys", "encrypt", "file-key", "--in", str(data), "--out", str(tmp_path / "x")
    )
    assert "PRE_ACTIVE key cannot encrypt" in error and "[KS-USE-STATE]" in error
    assert not (tmp_path / "x").exists()
    cli.run("keys", "activate", aes["id"])
    cli.run("keys", "encrypt", "file-key", "--in", str(data), "--out", str(tmp_path / "x"))
    cli.run(
        "keys", "decrypt", "file-key", "--in", str(tmp_path / "x"), "--out", str(tmp_path / "y")
    )
    assert (tmp_path / "y").read_bytes() == data.read_bytes()

    actions = [
        (e["action"], e["outcome"])
        for e in cli.json("audit", "list")
        if e["action"].startswith("key.") and e["action"] not in ("key.generate",)
    ]
    assert ("key.sign", "success") in actions and ("key.encrypt", "denied") in actions
    assert ("key.verify", "failed") in actions and ("key.decrypt", "success") in actions
