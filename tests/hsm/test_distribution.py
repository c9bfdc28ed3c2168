"""Wrapped key transfer between two workstations, each with its own home and SoftHSM token:
workstation 2's RSA key-wrapping key receives an AES key wrapped on workstation 1's token, and
it arrives with the same KCV (and decrypts what token A encrypted). Every bad input is refused
with nothing left on the token; imports start PRE_ACTIVE; the distribution record is kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from app.domain import transfer
from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyState
from app.domain.lifecycle import Action
from app.domain.public_formats import PublicFormat
from app.errors import NotAuthentic, NotFoundError, PolicyError, ValidationError
from app.paths import Home
from app.services.distribution import RULE_KNOWN_KEY, RULE_PURPOSE
from app.services.executor import CoreExecutor
from app.services.keys import identity_of
from tests.backup.test_round_trip import cipher
from tests.hsm.kit import PIN, SO_PIN, TOKEN, Clock, Station, peer_keys

pytestmark = pytest.mark.hsm


@pytest.fixture
def second(tmp_path: Path, core: CoreExecutor) -> Iterator[Station]:
    station = Station(Home(tmp_path / "home-2"), core, Clock())
    try:
        yield station
    finally:
        station.close()


def _active(station: Station, algorithm: Algorithm, name: str, purpose: Purpose, **kw: object):  # type: ignore[no-untyped-def]
    key = station(station.ws.keys.generate, TOKEN, algorithm, name, purpose, **kw)
    return station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)


def _object_ids(station: Station) -> set[str]:
    return {k.cka_id for k in peer_keys(station.home)}


@pytest.fixture
def recipient(station: Station, second: Station, tmp_path: Path) -> dict[str, object]:
    """Workstation 2: an active RSA-2048 key-wrapping key, its public key exported; both
    workstations locked (one PKCS#11 module per process: one workstation open at a time)."""
    station.lock()
    second.initialize()
    kek = _active(second, Algorithm.RSA_2048, "incoming", Purpose.KEY_WRAPPING)
    pub = tmp_path / "recipient.pem"
    second(second.ws.use.export_public, kek.id, PublicFormat.PEM, pub)
    second.lock()
    return {"key": kek, "pem": pub}


def test_wrapped_on_token_a_imports_on_fresh_token_b_with_the_same_kcv(
    station: Station, second: Station, recipient: dict[str, object], tmp_path: Path
) -> None:
    station.unlock()
    key = _active(station, Algorithm.AES_256, "shared-data", Purpose.ENCRYPTION, backup_able=True)
    before = cipher(station.home, "enc", key.cka_id, "attack at dawn")
    out = tmp_path / "shared-data.transfer"
    made = station(
        station.ws.distribution.wrap_for,
        key.id,
        out,
        recipient=recipient["pem"],
        so_pin=SO_PIN,
        user_pin=PIN,
    )
    assert made.kcv == key.kcv
    assert "SHA-1" in made.note
    doc = json.loads(out.read_text())
    assert doc["key"]["kcv"] == key.kcv
    assert doc["wrapping"]["mechanism"] == "RSA-OAEP-SHA1"
    assert "SHA-1" in doc["wrapping"]["note"]
    assert doc["wrapping"]["recipient"] == recipient["key"].fingerprint  # type: ignore[attr-defined]
    sent = station(station.ws.distribution.records, key.id)
    assert [(d.direction, d.recipient, d.kcv) for d in sent] == [
        ("sent", recipient["key"].fingerprint, key.kcv)  # type: ignore[attr-defined]
    ]
    assert sent[0].operators[1:]  # an approver stood behind it
    entry = station.events("key.distribute", f"key:{key.id}")[-1]
    assert entry.outcome == "success" and entry.details["approval"]["approvers"]
    assert entry.details["output_sha256"] == sent[0].file_sha256
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"for the other workstation\n" * 100)
    sealed = tmp_path / "plain.enc"
    station(station.ws.use.encrypt_file, key.id, plain, sealed)  # Keystead's own file format
    station.lock()

    second.unlock()
    imported = second(
        second.ws.distribution.import_wrapped,
        TOKEN,
        out,
        "shared-data-copy",
        expect_kcv=key.kcv,
        expect_purpose=Purpose.ENCRYPTION,
    )
    assert imported.key.kcv == key.kcv
    assert imported.key.state is KeyState.PRE_ACTIVE
    attrs = second(lambda: second.ws.tokens.session(TOKEN).read_key(identity_of(imported.key)))
    secret = attrs["SECRET_KEY"]
    assert secret["TOKEN"] and secret["PRIVATE"] and secret["SENSITIVE"]
    assert not secret["EXTRACTABLE"]
    assert secret["ENCRYPT"] and secret["DECRYPT"] and not secret["WRAP"] and not secret["SIGN"]
    # The same key: token B decrypts what token A encrypted.
    assert cipher(second.home, "dec", imported.key.cka_id, before) == "attack at dawn"
    received = second(second.ws.distribution.records, imported.key.id)
    assert [(d.direction, d.kcv) for d in received] == [("received", key.kcv)]
    assert second.events("key.import", f"key:{imported.key.id}")[-1].details["kcv_checked"]

    # Keystead decrypts the sender's file with the imported copy when it is named (the header
    # names the sender's key id, which this workstation does not hold).
    second(second.ws.lifecycle.transition, imported.key.id, Action.ACTIVATE)
    with pytest.raises(NotFoundError, match="does not hold"):
        second(second.ws.use.decrypt_file, None, sealed, tmp_path / "unnamed.txt")
    second(second.ws.use.decrypt_file, imported.key.id, sealed, tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_bytes() == plain.read_bytes()
    # The same file again is a replay: refused, whether the key is live or retired here.
    objects = len(peer_keys(second.home))
    importing = second.ws.distribution.import_wrapped
    again = _bad(second, importing, TOKEN, out, "again", expect_purpose=Purpose.ENCRYPTION)
    assert isinstance(again, PolicyError) and again.rule == RULE_KNOWN_KEY
    assert "already holds" in again.message
    second(second.ws.lifecycle.transition, imported.key.id, Action.COMPROMISE, reason="leaked")
    retired = _bad(
        second, importing, TOKEN, out, "resurrect", expect_purpose=Purpose.ENCRYPTION
    )
    assert isinstance(retired, PolicyError) and retired.rule == RULE_KNOWN_KEY
    assert "never brought back" in retired.message
    assert len(peer_keys(second.home)) == objects  # nothing was unwrapped
    denied = [e for e in second.events("key.import") if e.outcome == "denied"]
    assert len(denied) == 2


def _bad(station: Station, fn: object, *args: object, **kwargs: object) -> Exception:
    with pytest.raises((NotAuthentic, ValidationError, PolicyError)) as caught:
        station(fn, *args, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_bad_transfer_files_leave_nothing_on_the_token(
    station: Station, second: Station, recipient: dict[str, object], tmp_path: Path
) -> None:
    station.unlock()
    key = _active(station, Algorithm.AES_128, "k", Purpose.ENCRYPTION, backup_able=True)
    good = tmp_path / "good.transfer"
    station(
        station.ws.distribution.wrap_for,
        key.id,
        good,
        recipient=recipient["pem"],
        so_pin=SO_PIN,
        user_pin=PIN,
    )
    station.lock()
    second.unlock()
    other = _active(second, Algorithm.RSA_2048, "other-kek", Purpose.KEY_WRAPPING)
    before = _object_ids(second)
    data = good.read_bytes()
    doc = json.loads(data)

    def variant(name: str, content: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path

    def resealed(mutate: object) -> bytes:
        body = json.loads(data)
        body.pop("sha256")
        mutate(body)  # type: ignore[operator]
        return transfer._canonical({**body, "sha256": transfer._digest(body)}) + b"\n"

    flipped = bytearray(transfer.base64.b64decode(doc["wrapped"]))
    flipped[10] ^= 1
    cases = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "kcv-edited": data.replace(key.kcv.encode(), b"000000"),  # hash no longer matches
        "not-json": b"\x00\xff garbage",
        "pem-instead": recipient["pem"].read_bytes(),  # type: ignore[attr-defined]
        # Re-sealed by someone who edits fields: the token or the KCV check refuses it.
        "wrapped-flipped": resealed(
            lambda b: b.update(wrapped=transfer.base64.b64encode(bytes(flipped)).decode())
        ),
        "kcv-lie": resealed(lambda b: b["key"].update(kcv="ABCDEF")),
        "other-recipient": resealed(lambda b: b["wrapping"].update(recipient=other.fingerprint)),
        "aes-192-claim": resealed(lambda b: b["key"].update(algorithm="AES-192", value_len=24)),
        "rsa-claim": resealed(lambda b: b["key"].update(algorithm="RSA-2048")),
    }
    for name, content in cases.items():
        path = variant(name, content)
        error = _bad(
            second,
            second.ws.distribution.import_wrapped,
            TOKEN,
            path,
            f"in-{name}",
            unwrapping_key="incoming",
            expect_purpose=Purpose.ENCRYPTION,
        )
        assert "othing" in error.message, (name, error.message)
        assert _object_ids(second) == before, name
        assert second(second.ws.keys.repo.by_name, f"in-{name}") is None, name
    # The right file, but given another unwrapping key: the recipient check refuses it.
    importing = second.ws.distribution.import_wrapped
    enc = Purpose.ENCRYPTION
    _bad(second, importing, TOKEN, good, "x", unwrapping_key="other-kek", expect_purpose=enc)
    # A wrong expected KCV.
    wrong = _bad(second, importing, TOKEN, good, "y", expect_kcv="123456", expect_purpose=enc)
    # New-user trial F8: the refusal printed the file's KCV, inviting a hurried retype of it.
    assert key.kcv not in str(wrong) and "another channel" in str(wrong)
    assert _object_ids(second) == before
    # Outside testers: the purpose is covered by no check value, so a re-sealed file could
    # change it (an encryption key arriving as a key-wrapping or MAC key). The import needs the
    # purpose the sender read out, and refuses a file that says another, before anything.
    for new_purpose in ("key-wrapping", "mac"):
        content = resealed(lambda b, p=new_purpose: b["key"].update(purpose=p))
        changed = variant(f"purpose-{new_purpose}", content)
        error = _bad(
            second, importing, TOKEN, changed, "p", expect_kcv=key.kcv, expect_purpose=enc
        )
        assert RULE_PURPOSE in error.message and "may have been altered" in error.message
        assert f"'{new_purpose}'" in error.message
    unconfirmed = _bad(second, importing, TOKEN, good, "z", expect_kcv=key.kcv)
    assert RULE_PURPOSE in unconfirmed.message and "'encryption'" in unconfirmed.message
    assert _object_ids(second) == before
    assert second(second.ws.keys.repo.by_name, "p") is None
    assert [e for e in second.events("key.import") if e.subject in {"key:p", "key:z"}] == []
    # And the good file still imports afterwards (found by its recipient).
    done = second(importing, TOKEN, good, "finally", expect_purpose=enc)
    assert done.key.kcv == key.kcv and done.key.purpose is enc


def test_bad_recipients_and_keys_are_refused_before_the_token(
    station: Station, tmp_path: Path
) -> None:
    weak = rsa.generate_private_key(65537, 1024)  # noqa: S505 (the weak input under test)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    strong = rsa.generate_private_key(65537, 2048)
    files = {
        "weak.pem": weak.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "ec.pem": ec_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "private.pem": strong.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "text.txt": b"hello",
    }
    key = _active(station, Algorithm.AES_256, "k", Purpose.ENCRYPTION, backup_able=True)
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        out = tmp_path / f"{name}.transfer"
        error = _bad(
            station,
            station.ws.distribution.wrap_for,
            key.id,
            out,
            recipient=path,
            so_pin=SO_PIN,
            user_pin=PIN,
        )
        assert not out.exists(), name
        if name == "weak.pem":
            assert "2048" in error.message
        if name == "private.pem":
            assert "PRIVATE" in error.message
    # A certificate works as the recipient (its RSA key).
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "HSM B")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(strong.public_key())
        .serial_number(1)
        .not_valid_before(station.clock() - __import__("datetime").timedelta(days=1))
        .not_valid_after(station.clock() + __import__("datetime").timedelta(days=30))
        .sign(strong, hashes.SHA256())
    )
    cert_path = tmp_path / "b.der"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    made = station(
        station.ws.distribution.wrap_for,
        key.id,
        tmp_path / "ok.transfer",
        recipient=cert_path,
        so_pin=SO_PIN,
        user_pin=PIN,
    )
    assert made.recipient_name == "CN=HSM B"
    # An existing output is never overwritten.
    _bad(
        station,
        station.ws.distribution.wrap_for,
        key.id,
        tmp_path / "ok.transfer",
        recipient=cert_path,
        so_pin=SO_PIN,
        user_pin=PIN,
    )
    # Nor is the recipient's own file, even with overwrite (the output is the input).
    kept = cert_path.read_bytes()
    same = _bad(
        station,
        station.ws.distribution.wrap_for,
        key.id,
        cert_path,
        recipient=cert_path,
        overwrite=True,
        so_pin=SO_PIN,
        user_pin=PIN,
    )
    assert "input file" in same.message and cert_path.read_bytes() == kept
    # A certificate out of its validity, or certified for signatures only, is no recipient.
    days = __import__("datetime").timedelta

    def certificate(start: object, end: object, usage: x509.KeyUsage | None) -> Path:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(strong.public_key())
            .serial_number(2)
            .not_valid_before(start)  # type: ignore[arg-type]
            .not_valid_after(end)  # type: ignore[arg-type]
        )
        if usage is not None:
            builder = builder.add_extension(usage, critical=True)
        path = tmp_path / f"cert-{len(list(tmp_path.iterdir()))}.pem"
        path.write_bytes(
            builder.sign(strong, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        )
        return path

    sign_only = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    now = station.clock()
    for path, words in (
        (certificate(now - days(800), now - days(400), None), "not now"),
        (certificate(now + days(10), now + days(400), None), "not now"),
        (certificate(now - days(1), now + days(30), sign_only), "key encipherment"),
    ):
        out = tmp_path / f"{path.stem}.transfer"
        error = _bad(
            station,
            station.ws.distribution.wrap_for,
            key.id,
            out,
            recipient=path,
            so_pin=SO_PIN,
            user_pin=PIN,
        )
        assert words in error.message and not out.exists()


@pytest.mark.parametrize(
    ("state", "allowed"),
    [
        ("PRE_ACTIVE", True),
        ("ACTIVE", True),
        ("SUSPENDED", False),
        ("DEACTIVATED", True),
        ("COMPROMISED", False),
        ("DESTROYED", False),
    ],
)
def test_state_decides_whether_a_key_is_distributed(
    station: Station, tmp_path: Path, state: str, allowed: bool
) -> None:
    strong = rsa.generate_private_key(65537, 2048)
    pem = tmp_path / "r.pem"
    pem.write_bytes(
        strong.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    key = station(
        station.ws.keys.generate,
        TOKEN,
        Algorithm.AES_256,
        "k",
        Purpose.ENCRYPTION,
        backup_able=True,
    )
    path = {
        "PRE_ACTIVE": [],
        "ACTIVE": [Action.ACTIVATE],
        "SUSPENDED": [Action.ACTIVATE, Action.SUSPEND],
        "DEACTIVATED": [Action.ACTIVATE, Action.DEACTIVATE],
        "COMPROMISED": [Action.ACTIVATE, Action.COMPROMISE],
        "DESTROYED": [Action.DESTROY],
    }[state]
    for action in path:
        key = station(
            station.ws.lifecycle.transition, key.id, action, reason="test", confirm_name="k"
        )
    assert key.state.value == state
    out = tmp_path / "k.transfer"
    if allowed:
        station(
            station.ws.distribution.wrap_for,
            key.id,
            out,
            recipient=pem,
            so_pin=SO_PIN,
            user_pin=PIN,
        )
        assert out.exists()
    else:
        error = _bad(
            station,
            station.ws.distribution.wrap_for,
            key.id,
            out,
            recipient=pem,
            so_pin=SO_PIN,
            user_pin=PIN,
        )
        assert isinstance(error, PolicyError) and not out.exists()
        assert station.events("key.distribute", f"key:{key.id}")[-1].outcome == "denied"


def test_non_extractable_and_key_pairs_are_not_wrapped_and_approval_is_needed(
    station: Station, tmp_path: Path
) -> None:
    strong = rsa.generate_private_key(65537, 2048)
    pem = tmp_path / "r.pem"
    pem.write_bytes(
        strong.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    fixed = _active(station, Algorithm.AES_256, "fixed", Purpose.ENCRYPTION)
    error = _bad(
        station,
        station.ws.distribution.wrap_for,
        fixed.id,
        tmp_path / "a",
        recipient=pem,
        so_pin=SO_PIN,
        user_pin=PIN,
    )
    assert "extractable" in error.message
    pair = _active(station, Algorithm.EC_P256, "signer", Purpose.SIGNING)
    error = _bad(
        station,
        station.ws.distribution.wrap_for,
        pair.id,
        tmp_path / "b",
        recipient=pem,
        so_pin=SO_PIN,
        user_pin=PIN,
    )
    assert "export-public" in error.message
    movable = _active(station, Algorithm.AES_256, "movable", Purpose.ENCRYPTION, backup_able=True)
    station.ws.approvals.source = None  # nobody else is here
    error = _bad(
        station,
        station.ws.distribution.wrap_for,
        movable.id,
        tmp_path / "c",
        recipient=pem,
        so_pin=SO_PIN,
        user_pin=PIN,
    )
    assert isinstance(error, PolicyError) and not (tmp_path / "c").exists()
    assert station(station.ws.distribution.records, movable.id) == []


def test_import_public_key_or_certificate_as_verify_only(station: Station, tmp_path: Path) -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "peer.pem"
    pem.write_bytes(
        signer.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    done = station(station.ws.distribution.import_public, pem, "peer-signer")
    assert done.key.state is KeyState.PRE_ACTIVE and done.key.purpose is Purpose.SIGNING
    assert done.key.algorithm is Algorithm.EC_P256 and done.key.token_serial == ""
    entry = station.events("key.import", f"key:{done.key.id}")[-1]
    assert entry.details["verify_only"] and entry.details["approval"]["approvers"]
    # The same key twice, a private key, a weak key: refused, nothing recorded.
    count = station.key_count()
    _bad(station, station.ws.distribution.import_public, pem, "again")
    private = tmp_path / "private.pem"
    private.write_bytes(
        signer.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert "PRIVATE" in _bad(station, station.ws.distribution.import_public, private, "p").message
    weak = tmp_path / "weak.der"
    weak.write_bytes(
        rsa.generate_private_key(65537, 1024)  # noqa: S505 (the weak input under test)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert "2048" in _bad(station, station.ws.distribution.import_public, weak, "w").message
    assert station.key_count() == count
    # It is never wrapped for anyone: there is no private half to send.
    refused = _bad(
        station,
        station.ws.distribution.wrap_for,
        done.key.id,
        tmp_path / "never.transfer",
        recipient=pem,
        so_pin=SO_PIN,
        user_pin=PIN,
    )
    assert "verify-only" in refused.message and not (tmp_path / "never.transfer").exists()
    # Activated, it verifies a signature made by the peer.
    key = station(station.ws.lifecycle.transition, done.key.id, Action.ACTIVATE)
    message = tmp_path / "m.txt"
    message.write_bytes(b"signed elsewhere")
    sig = tmp_path / "m.sig"
    sig.write_bytes(signer.sign(b"signed elsewhere", ec.ECDSA(hashes.SHA256())))
    result = station(station.ws.use.verify_file, key.id, message, sig)
    assert result.operation.value == "verify"
    assert key.token_sync.value == "recorded"
    item = next(i for i in station(station.ws.keys.inventory) if i.record and i.record.id == key.id)
    assert item.presence.value == "public key only"
    # It is retired like any key, with no token to touch.
    key = station(station.ws.lifecycle.transition, key.id, Action.DEACTIVATE, "peer rotated")
    key = station(
        station.ws.lifecycle.transition, key.id, Action.DESTROY, confirm_name="peer-signer"
    )
    assert key.state is KeyState.DESTROYED


def test_aes_kwp_file_from_an_independent_peer_imports_under_the_shared_kek(
    station: Station, tmp_path: Path
) -> None:
    import os

    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

    kek_value, key_value = os.urandom(32), os.urandom(16)

    def kcv(value: bytes) -> str:
        enc = Cipher(algorithms.AES(value), modes.ECB()).encryptor()  # noqa: S305 (KCV)
        return (enc.update(bytes(16)) + enc.finalize())[:3].hex().upper()

    # The shared KEK arrives as a peer would send it: RSA-OAEP (SHA-1) by `cryptography`
    # under this token's key-wrapping key, in a transfer file; imported, then activated.
    incoming = _active(station, Algorithm.RSA_2048, "incoming", Purpose.KEY_WRAPPING)
    spki = station(station.ws.keys.repo.spki, incoming.id)
    recipient = serialization.load_der_public_key(spki)
    assert isinstance(recipient, rsa.RSAPublicKey)
    oaep = padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)  # noqa: S303
    kek_file = transfer.TransferFile(
        key_id="peer-kek",
        key_name="peer-kek",
        algorithm=Algorithm.AES_256,
        purpose=Purpose.KEY_WRAPPING,
        value_len=32,
        kcv=kcv(kek_value),
        mechanism=transfer.WrapMechanism.RSA_OAEP_SHA1,
        recipient=incoming.fingerprint or "",
        wrapped=recipient.encrypt(kek_value, oaep),
        workstation="peer",
        operators=("peer",),
        created_at="2026-11-30T12:00:00+00:00",
    )
    kek_path = tmp_path / "kek.transfer"
    kek_path.write_bytes(kek_file.encode())
    kek = station(
        station.ws.distribution.import_wrapped,
        TOKEN,
        kek_path,
        "shared-kek",
        expect_purpose=Purpose.KEY_WRAPPING,
    ).key
    assert kek.purpose is Purpose.KEY_WRAPPING and kek.kcv == kcv(kek_value)
    kek = station(station.ws.lifecycle.transition, kek.id, Action.ACTIVATE)
    made = transfer.TransferFile(
        key_id="peer-key",
        key_name="peer-key",
        algorithm=Algorithm.AES_128,
        purpose=Purpose.ENCRYPTION,
        value_len=16,
        kcv=kcv(key_value),
        mechanism=transfer.WrapMechanism.AES_KWP,
        recipient=kcv(kek_value),
        wrapped=aes_key_wrap_with_padding(kek_value, key_value),
        workstation="peer",
        operators=("peer",),
        created_at="2026-11-30T12:00:00+00:00",
    )
    path = tmp_path / "kwp.transfer"
    path.write_bytes(made.encode())
    done = station(
        station.ws.distribution.import_wrapped,
        TOKEN,
        path,
        "from-peer",
        expect_purpose=Purpose.ENCRYPTION,
    )
    assert done.key.kcv == kcv(key_value) and done.key.state is KeyState.PRE_ACTIVE
    enc = Cipher(algorithms.AES(key_value), modes.CBC(bytes(16))).encryptor()
    padded = b"attack at dawn" + bytes([2]) * 2
    ciphertext = (enc.update(padded) + enc.finalize()).hex()
    assert cipher(station.home, "dec", done.key.cka_id, ciphertext) == "attack at dawn"

    # Wrapping a Keystead key under this (untrusted) KEK: SoftHSM refuses a key that only a
    # CKA_TRUSTED KEK may wrap; the refusal says what to do and nothing is written.
    key = _active(station, Algorithm.AES_256, "local", Purpose.ENCRYPTION, backup_able=True)
    out = tmp_path / "local.transfer"
    with pytest.raises(Exception) as caught:
        station(station.ws.distribution.wrap_for, key.id, out, kek_ref="shared-kek")
    assert "CKA_TRUSTED" in str(caught.value) and not out.exists()
    assert station(station.ws.distribution.records, key.id) == []
    assert station.events("key.distribute", f"key:{key.id}")[-1].outcome == "failed"
