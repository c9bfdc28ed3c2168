"""A replacement token holding the same keys: records bound to the old token's serial are
matched by KCV or public-key fingerprint (never by label or ID), re-bound only when asked, and
the re-binding is recorded. The same key material is put on both tokens with pkcs11-tool."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.domain.algorithms import Purpose
from app.domain.keys import Presence
from app.errors import NotFoundError
from tests.hsm.kit import Station, pkcs11_tool

pytestmark = pytest.mark.hsm

OLD, NEW = "Old HSM", "New HSM"
SO, OLD_PIN, NEW_PIN = "SENTINEL-so-rb-1111", "SENTINEL-old-2222", "SENTINEL-new-3333"


def key_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    private = ec.generate_private_key(ec.SECP256R1())
    files = (tmp_path / "priv.der", tmp_path / "pub.der", tmp_path / "aes.bin")
    files[0].write_bytes(
        private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files[1].write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    files[2].write_bytes(bytes(range(32)))
    return files


def load(station: Station, label: str, pin: str, files: tuple[Path, Path, Path], ids: str) -> None:
    """Put the EC pair (CKA_ID ids+'01') and the AES key (ids+'02') on a token."""
    priv, pub, aes = files
    for path, kind, cka_id, extra in (
        (priv, "privkey", ids + "01", []),
        (pub, "pubkey", ids + "01", []),
        (aes, "secrkey", ids + "02", ["--key-type", "AES:32"]),
    ):
        pkcs11_tool(
            station.home,
            "--token-label", label,
            "--write-object", str(path), "--type", kind, "--id", cka_id,
            "--label", f"restored-{kind}", *extra,
            pin=pin,
        )  # fmt: skip


def test_a_replacement_token_is_matched_by_identity_and_rebound_on_request(
    station: Station, tmp_path: Path
) -> None:
    ws = station.ws
    old = station(ws.tokens.create_soft_token, OLD, SO, OLD_PIN)
    new = station(ws.tokens.create_soft_token, NEW, SO, NEW_PIN)
    files = key_files(tmp_path)
    load(station, OLD, OLD_PIN, files, "aa")
    load(station, NEW, NEW_PIN, files, "bb")  # other CKA_IDs: identity is not the ID
    station(ws.tokens.login, OLD, OLD_PIN)
    # Imported keys were not always sensitive: adopted with the exposure acknowledged.
    signer = station(
        ws.keys.adopt, OLD, "aa01", "root-signer", purpose=Purpose.SIGNING, accept_exposure=True
    )
    kek = station(
        ws.keys.adopt, OLD, "aa02", "vault-kek", purpose=Purpose.KEY_WRAPPING, accept_exposure=True
    )
    assert signer.fingerprint and signer.token_serial == old.serial

    # The old HSM fails and is taken away; its replacement holds the restored keys.
    store = next(
        p
        for p in station.home.softhsm_tokens.iterdir()
        if p.name.replace("-", "").endswith(old.serial)
    )
    shutil.move(str(store), str(tmp_path / "old-hsm"))
    station(ws.tokens.poll)
    station(ws.tokens.login, NEW, NEW_PIN)
    assert station(ws.keys.repo.get, signer.id).token_serial == old.serial  # nothing automatic

    found = {c.key.name: c for c in station(ws.rebind.candidates)}
    assert found["root-signer"].token_serial == new.serial
    assert found["root-signer"].cka_id == "bb01"
    assert found["root-signer"].matched_by.startswith("public key SHA-256")
    # SoftHSM fills CKA_CHECK_VALUE for a secret key created from its value.
    assert kek.kcv == "F29000"  # AES-256 of bytes 0..31 encrypting a zero block, first 3 bytes
    assert found["vault-kek"].matched_by == f"KCV {kek.kcv}"
    assert found["vault-kek"].cka_id == "bb02"

    rebound = station(ws.rebind.rebind, "root-signer", NEW)
    assert (rebound.token_serial, rebound.cka_id) == (new.serial, "bb01")
    stored = station(ws.keys.repo.get, signer.id)
    assert (stored.token_serial, stored.token_label, stored.cka_id) == (new.serial, NEW, "bb01")
    items = {i.record.name: i for i in station(ws.keys.inventory) if i.record is not None}
    assert items["root-signer"].presence is Presence.PRESENT
    entry = station.events("key.rebind")[-1]
    assert entry.outcome == "success" and entry.mac is not None
    assert entry.details["from"] == {"token": old.serial, "cka_id": "aa01"}
    assert entry.details["to"] == {"token": new.serial, "cka_id": "bb01"}


def test_no_twin_no_rebinding(station: Station, tmp_path: Path) -> None:
    ws = station.ws
    station(ws.tokens.create_soft_token, OLD, SO, OLD_PIN)
    station(ws.tokens.create_soft_token, NEW, SO, NEW_PIN)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    load(station, OLD, OLD_PIN, key_files(tmp_path / "a"), "aa")
    load(station, NEW, NEW_PIN, key_files(tmp_path / "b"), "aa")  # same IDs and labels, other keys
    station(ws.tokens.login, OLD, OLD_PIN)
    station(
        ws.keys.adopt, OLD, "aa01", "root-signer", purpose=Purpose.SIGNING, accept_exposure=True
    )
    station(ws.tokens.login, NEW, NEW_PIN)
    assert station(ws.rebind.candidates) == []  # same label and CKA_ID prove nothing
    with pytest.raises(NotFoundError, match="holds no unmanaged key"):
        station(ws.rebind.rebind, "root-signer", NEW)
    assert [e.outcome for e in station.events("key.rebind")] == ["denied"]
