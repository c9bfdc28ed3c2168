"""``keystead certs …`` and ``keystead keys export-public`` as subprocesses: the issue's
"Done when" path — a root CA, an intermediate from a CSR and a CRL made by Keystead verify with
``openssl verify -crl_check`` — plus public-key export in every format."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.e2e.test_cli import Cli, bare_cli, cli, generate, with_witness  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e


def openssl(*args: str) -> tuple[int, str]:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    return result.returncode, (result.stdout + result.stderr).strip()


def test_root_intermediate_crl_with_openssl(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    with_witness(cli)
    root = generate(cli, "EC-P384", "root-ca-key")
    issuing = generate(cli, "RSA-2048", "issuing-ca-key")
    for key in (root, issuing):
        cli.run("keys", "activate", key["id"])
    cli.run(
        "certs",
        "self-sign",
        "root-ca-key",
        "--profile",
        "root-ca",
        "--subject",
        "CN=Keystead Root CA,O=Example,C=DE",
        "--days",
        "3650",
        "--out",
        str(tmp_path / "root.pem"),
    )
    cli.run(
        "certs",
        "csr",
        "issuing-ca-key",
        "--subject",
        "CN=Keystead Issuing CA,O=Example,C=DE",
        "--out",
        str(tmp_path / "issuing.csr"),
    )
    row = cli.json(
        "certs",
        "sign-csr",
        "root-ca-key",
        "--csr",
        str(tmp_path / "issuing.csr"),
        "--profile",
        "intermediate-ca",
        "--days",
        "1825",
        "--out",
        str(tmp_path / "issuing.pem"),
    )
    assert row["lint"] == [] or all(not x.startswith(("ERROR", "FATAL")) for x in row["lint"])
    cli.run("certs", "crl", "root-ca-key", "--out", str(tmp_path / "root.crl"))
    code, text = openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        str(tmp_path / "root.pem"),
        "-CRLfile",
        str(tmp_path / "root.crl"),
        str(tmp_path / "issuing.pem"),
    )
    assert code == 0 and text.endswith(": OK"), text

    cli.run("certs", "revoke", row["serial"], "--reason", "superseded")
    crl2 = cli.json("certs", "crl", "root-ca-key", "--out", str(tmp_path / "root2.crl"))
    assert crl2["number"] == 2
    code, text = openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        str(tmp_path / "root.pem"),
        "-CRLfile",
        str(tmp_path / "root2.crl"),
        str(tmp_path / "issuing.pem"),
    )
    assert code == 2 and "certificate revoked" in text, text
    listed = cli.json("certs", "list")
    assert [(c["profile"], c["revocation_reason"]) for c in listed] == [
        ("root-ca", None),
        ("intermediate-ca", "superseded"),
    ]
    # A key without a CA certificate cannot issue.
    error = cli.error("certs", "crl", "issuing-ca-key", "--out", str(tmp_path / "x.crl"))
    assert "KS-PKI-ISSUER-NOT-CA" in error and not (tmp_path / "x.crl").exists()


def test_export_public_in_every_format(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    key = generate(cli, "EC-P256", "ec-signer")
    spki_pem = tmp_path / "k.pem"
    shown = cli.run("keys", "export-public", "ec-signer", "--out", str(spki_pem)).stdout
    public = serialization.load_pem_public_key(spki_pem.read_bytes())
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert hashlib.sha256(der).hexdigest() == key["fingerprint"]
    assert key["fingerprint"] in shown and "Read aloud:" in shown
    cli.run(
        "keys", "export-public", "ec-signer", "--format", "der", "--out", str(tmp_path / "k.der")
    )
    assert (tmp_path / "k.der").read_bytes() == der
    code, text = openssl(
        "pkey", "-pubin", "-inform", "DER", "-in", str(tmp_path / "k.der"), "-noout", "-text"
    )
    assert code == 0 and "NIST CURVE: P-256" in text, text
    ssh = cli.run("keys", "export-public", "ec-signer", "--format", "ssh").stdout
    assert ssh.startswith("ecdsa-sha2-nistp256 ") and ssh.rstrip().endswith(" ec-signer")
    assert (
        serialization.load_ssh_public_key(ssh.encode()).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == der
    )
    jwk = json.loads(cli.run("keys", "export-public", "ec-signer", "--format", "jwk").stdout)
    assert (jwk["kty"], jwk["crv"], jwk["kid"]) == ("EC", "P-256", key["fingerprint"])
    error = cli.error("keys", "export-public", "ec-signer", "--out", str(spki_pem))
    assert "already exists" in error
    aes = generate(cli, "AES-128", "secret")
    assert "has no public key" in cli.error("keys", "export-public", aes["id"])
