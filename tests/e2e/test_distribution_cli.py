"""``keystead keys wrap-for|import-wrapped|import-public`` as subprocesses on two workstations,
each a separate home with its own SoftHSM token: the key wrapped on workstation 1 arrives on
workstation 2's token with the same KCV, and both sides show the distribution record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.domain import transfer
from tests.e2e.test_cli import TOKEN, Cli, bare_cli, cli, generate, with_witness  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e


def test_wrap_for_a_fresh_workstation_and_import(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    # Workstation 2 (its own home and token): a key-wrapping key whose public key goes out.
    second = Cli(tmp_path / "home-2")
    second.run("init", "--operator", "officer", "--soft-token", TOKEN)
    with_witness(second)
    incoming = generate(second, "RSA-2048", "incoming", "--purpose", "key-wrapping")
    second.run("keys", "activate", "incoming")
    pub = tmp_path / "incoming.pem"
    second.run("keys", "export-public", "incoming", "--format", "pem", "--out", str(pub))

    # Workstation 1 wraps an extractable AES key for it.
    with_witness(cli)
    key = generate(cli, "AES-256", "payments-zmk", "--backup-able")
    out = tmp_path / "zmk.transfer"
    text = cli.run(
        "keys", "wrap-for", "payments-zmk", "--recipient", str(pub), "--out", str(out)
    ).stdout
    assert key["kcv"] in text and "SHA-1" in text and incoming["fingerprint"] in text
    assert f"--expect-kcv {key['kcv']} --expect-purpose encryption" in text  # what to read out
    doc = json.loads(out.read_text())
    assert doc["key"]["kcv"] == key["kcv"]
    shown = cli.json("keys", "show", "payments-zmk")
    assert [(d["direction"], d["recipient"]) for d in shown["distribution"]] == [
        ("sent", incoming["fingerprint"])
    ]
    assert "distribution:" in cli.run("keys", "show", "payments-zmk").stdout
    # The same file again: the output exists, nothing is overwritten.
    assert "already exists" in cli.error(
        "keys", "wrap-for", "payments-zmk", "--recipient", str(pub), "--out", str(out)
    )

    # Outside testers: the purpose is covered by no check value, so a re-sealed file could
    # change it. Without the purpose the sender read out, or with a file saying another one,
    # the import is refused before anything is asked or written.
    importing = ("keys", "import-wrapped", "--token", TOKEN, "--name", "zmk")
    unconfirmed = second.error(*importing, "--in", str(out), "--expect-kcv", key["kcv"])
    assert "--expect-purpose" in unconfirmed and "'encryption'" in unconfirmed
    body = json.loads(out.read_text())
    body.pop("sha256")
    body["key"]["purpose"] = "key-wrapping"
    resealed = tmp_path / "resealed.transfer"
    resealed.write_bytes(
        transfer._canonical({**body, "sha256": transfer._digest(body)}) + b"\n"
    )
    checked = ("--expect-kcv", key["kcv"], "--expect-purpose", "encryption")
    refusal = second.error(*importing, "--in", str(resealed), *checked)
    assert "'key-wrapping'" in refusal and "may have been altered" in refusal
    assert "KS-TRANSFER-PURPOSE" in refusal
    assert second.json("keys", "list")[0]["name"] == "incoming"
    assert len(second.json("keys", "list")) == 1

    # Workstation 2 imports it: PRE_ACTIVE, same KCV.
    row = second.json(
        "keys",
        "import-wrapped",
        "--token",
        TOKEN,
        "--in",
        str(out),
        "--name",
        "zmk",
        "--expect-kcv",
        key["kcv"],
        "--expect-purpose",
        "encryption",
    )
    assert row["kcv"] == key["kcv"] and row["state"] == "PRE_ACTIVE"
    listed = {k["name"]: k for k in second.json("keys", "list")}
    assert listed["zmk"]["kcv"] == key["kcv"]
    received = second.json("keys", "show", "zmk")["distribution"]
    assert [d["direction"] for d in received] == ["received"]
    # A truncated copy: one line, nothing new on the token.
    cut = tmp_path / "cut.transfer"
    cut.write_bytes(out.read_bytes()[:100])
    before = len(second.json("keys", "list"))
    assert (
        "nothing was imported"
        in second.error(
            "keys", "import-wrapped", "--token", TOKEN, "--in", str(cut), "--name", "cut"
        ).lower()
    )
    assert len(second.json("keys", "list")) == before

    # import-public: a peer's certificate-less public key, verify-only.
    peer = ec.generate_private_key(ec.SECP384R1())
    peer_pem = tmp_path / "peer.pem"
    peer_pem.write_bytes(
        peer.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    imported = second.json("keys", "import-public", "--in", str(peer_pem), "--name", "peer")
    assert imported["state"] == "PRE_ACTIVE" and imported["algorithm"] == "EC-P384"
    second.run("keys", "activate", "peer")
    message = tmp_path / "m"
    message.write_bytes(b"from the peer")
    sig = tmp_path / "m.sig"
    sig.write_bytes(peer.sign(b"from the peer", ec.ECDSA(hashes.SHA384())))
    assert (
        "Signature OK"
        in second.run("keys", "verify", "peer", "--in", str(message), "--sig", str(sig)).stdout
    )
    second.assert_no_secret_printed()
