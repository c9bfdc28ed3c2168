"""RSA and EC private keys in backups, on SoftHSM: wrapped inside the token as PKCS#8
(RFC 5649), recorded with their public key's fingerprint; the drill signs with a session copy
and verifies under the recorded public key; a restore onto a fresh token and workstation gives
keys that sign; docs/recover_backup.py yields PKCS#8 that cryptography loads, and a signature
made on the token before the backup verifies under the recovered key's public half.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from app.domain.algorithms import Algorithm, Purpose
from app.domain.lifecycle import Action
from app.paths import Home
from app.services.backup import KekSecret
from app.services.executor import CoreExecutor
from tests.hsm.kit import PIN, SO_PIN, TOKEN, Clock, Station

pytestmark = pytest.mark.hsm

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "recover_backup.py"
MESSAGE = b"SENTINEL signed before the backup"


@pytest.fixture
def second(tmp_path: Path, core: CoreExecutor) -> Iterator[Station]:
    station = Station(Home(tmp_path / "home-b"), core, Clock())
    yield station
    station.close()


def verify(spki: bytes, signature: bytes, message: bytes) -> None:
    """cryptography's check of Keystead's default signatures (ECDSA DER, RSA-PSS SHA-256)."""
    public = serialization.load_der_public_key(spki)
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        public.verify(signature, message, pss, hashes.SHA256())


def test_private_keys_round_trip_and_recover(
    station: Station, second: Station, tmp_path: Path
) -> None:
    ws = station.ws
    gen = ws.keys.generate
    ec_key = station(gen, TOKEN, Algorithm.EC_P256, "ec-signer", Purpose.SIGNING, True)
    rsa_key = station(gen, TOKEN, Algorithm.RSA_2048, "rsa-signer", Purpose.SIGNING, True)
    # Ed25519 cannot be made backup-able any more; a record from before that rule (extractable)
    # is still planned honestly: left out, with the reason.
    ed_key = station(gen, TOKEN, Algorithm.ED25519, "ed-signer", Purpose.SIGNING)

    def mark_extractable() -> None:
        with ws.db.transaction():
            ws.db.execute("UPDATE keys SET extractable = 1 WHERE id = :id", {"id": ed_key.id})

    station(mark_extractable)
    assert station(ws.keys.resolve, ed_key.id).extractable
    (tmp_path / "msg").write_bytes(MESSAGE)
    spkis = station(ws.keys.repo.spkis)
    for key in (ec_key, rsa_key):
        station(ws.lifecycle.transition, key.id, Action.ACTIVATE)
        station(ws.use.sign_file, key.id, tmp_path / "msg", tmp_path / f"{key.name}.sig")
        verify(spkis[key.id], (tmp_path / f"{key.name}.sig").read_bytes(), MESSAGE)

    stick = tmp_path / "stick"
    stick.mkdir()
    created = station(
        ws.backup.create,
        stick,
        TOKEN,
        SO_PIN,
        PIN,
        threshold=2,
        custodians=("alice", "bob", "carol"),
        deliver=lambda card: None,
    )
    entries = {e.name: e for e in created.manifest.keys}
    assert set(entries) == {"ec-signer", "rsa-signer"}
    for key in (ec_key, rsa_key):
        entry = entries[key.name]
        assert entry.value_len == 0 and entry.kcv is None
        assert entry.fingerprint == key.fingerprint
    assert "Ed25519" in {r.name: r.reason for r in created.refused}["ed-signer"]
    assert ed_key.id not in entries

    shares = created.share_set.mnemonics
    secret = KekSecret(mnemonics=(shares[0], shares[2]))
    report = station(ws.backup.verify, created.directory, secret, TOKEN)
    assert report.drilled == 2

    # Restore onto a fresh token and workstation: the keys sign there, under the same SPKI.
    station.lock()  # one SoftHSM configuration per process
    second.initialize()
    restored = second(second.ws.backup.restore, created.directory, secret, TOKEN)
    assert sorted(r.name for r in restored.restored) == ["ec-signer", "rsa-signer"]
    for key in (ec_key, rsa_key):
        back = second(second.ws.keys.resolve, key.id)
        assert back.state.value == "ACTIVE" and back.fingerprint == key.fingerprint
        second(second.ws.use.sign_file, key.id, tmp_path / "msg", tmp_path / f"{key.name}.b")
        verify(spkis[key.id], (tmp_path / f"{key.name}.b").read_bytes(), MESSAGE)
        second(
            second.ws.use.verify_file, key.id, tmp_path / "msg", tmp_path / f"{key.name}.sig"
        )

    # Recovery without Keystead: PKCS#8 that cryptography loads; the token's signature made
    # before the backup verifies under the recovered key's public half.
    two = tmp_path / "two.json"
    two.write_text(json.dumps([shares[1], shares[2]]))
    out = tmp_path / "recovered"
    command = [sys.executable, str(SCRIPT), str(created.directory), "--out", str(out)]
    result = subprocess.run(
        [*command, "--shares-file", str(two)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for key in (ec_key, rsa_key):
        private = serialization.load_der_private_key((out / f"{key.id}.key").read_bytes(), None)
        spki = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert spki == spkis[key.id]
        verify(spki, (tmp_path / f"{key.name}.sig").read_bytes(), MESSAGE)
