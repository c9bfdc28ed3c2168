"""Key generation on a real SoftHSM token: every algorithm and purpose, read back through
Keystead and, independently, through pkcs11-tool."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from app.domain.algorithms import Algorithm, Purpose, allowed_purposes
from app.domain.backup_rules import unwrappable_reason
from app.domain.fingerprints import pgp_words
from app.domain.keys import KeyState, Presence
from tests.hsm.kit import (
    CURVE_OID_DER,
    OPERATOR,
    TOKEN,
    Station,
    peer_keys,
    peer_public_key,
    public_key_from_point,
    spki,
)

pytestmark = pytest.mark.hsm

# Written out from DESIGN.md: the usage flags each purpose grants, per object class.
USAGE = {
    Purpose.ENCRYPTION: {"SECRET_KEY": {"ENCRYPT", "DECRYPT"}, "PRIVATE_KEY": {"DECRYPT"}},
    Purpose.SIGNING: {"PRIVATE_KEY": {"SIGN"}},
    Purpose.KEY_WRAPPING: {"SECRET_KEY": {"WRAP", "UNWRAP"}, "PRIVATE_KEY": {"UNWRAP"}},
    Purpose.MAC: {"SECRET_KEY": {"SIGN", "VERIFY"}},
}
PUBLIC_USAGE = {
    Purpose.ENCRYPTION: {"ENCRYPT"},
    Purpose.SIGNING: {"VERIFY"},
    Purpose.KEY_WRAPPING: {"WRAP"},
}
ALL_FLAGS = ("ENCRYPT", "DECRYPT", "SIGN", "VERIFY", "WRAP", "UNWRAP", "DERIVE")
# The usage flags each object class carries at all (PKCS#11: a private key cannot encrypt...).
CLASS_FLAGS = {
    "SECRET_KEY": set(ALL_FLAGS),
    "PRIVATE_KEY": {"DECRYPT", "SIGN", "UNWRAP", "DERIVE"},
    "PUBLIC_KEY": {"ENCRYPT", "VERIFY", "WRAP", "DERIVE"},
}
# What pkcs11-tool 0.23 prints in "Usage:" per kind of object (it never prints "sign" for a
# secret key, nor "derive" for a public key), so expectations are cut down to what it can show.
PEER_VISIBLE = {
    "Secret": {"encrypt", "decrypt", "verify", "wrap", "unwrap", "derive"},
    "Private": {"decrypt", "sign", "unwrap", "derive"},
    "Public": {"encrypt", "verify", "wrap"},
}
PEER_KIND = {"SECRET_KEY": "Secret", "PRIVATE_KEY": "Private", "PUBLIC_KEY": "Public"}
PEER_TYPE = {"AES": "AES", "RSA": "RSA", "EC": "EC", "EdDSA": "EC_EDWARDS"}


def expected_flags(purpose: Purpose) -> dict[str, set[str]]:
    granted = dict(USAGE[purpose])
    if purpose in PUBLIC_USAGE:
        granted["PUBLIC_KEY"] = PUBLIC_USAGE[purpose]
    return granted


def cases() -> list[tuple[Algorithm, Purpose, bool]]:
    """Every algorithm with every purpose it allows (RSA-4096, at ~3 s, only once), with and
    without backup across the list (never backup-able where no backup can hold the key:
    Ed25519, refused at generation by app.domain.backup_rules)."""
    out = []
    for i, algorithm in enumerate(Algorithm):
        for j, purpose in enumerate(allowed_purposes(algorithm)):
            if algorithm is Algorithm.RSA_4096 and j:
                continue
            backup = (i + j) % 2 == 0 and unwrappable_reason(algorithm) is None
            out.append((algorithm, purpose, backup))
    return out


def test_the_cases_cover_every_algorithm_both_ways() -> None:
    assert {a for a, _, _ in cases()} == set(Algorithm)
    assert {(a.symmetric, b) for a, _, b in cases()} == {(s, b) for s in (0, 1) for b in (0, 1)}


@pytest.mark.parametrize(("algorithm", "purpose", "backup"), cases())
def test_generated_key_is_exactly_what_its_purpose_needs(
    station: Station, algorithm: Algorithm, purpose: Purpose, backup: bool
) -> None:
    name = f"{algorithm.value}-{purpose.value}"
    key = station(station.ws.keys.generate, TOKEN, algorithm, name, purpose, backup)
    assert (key.name, key.algorithm, key.purpose) == (name, algorithm, purpose)
    assert key.state is KeyState.PRE_ACTIVE
    assert key.extractable is backup
    assert (key.token_label, key.token_serial) == (TOKEN, station.serial)
    assert key.created_by == OPERATOR and key.created_at == station.clock.now
    assert len(bytes.fromhex(key.cka_id)) == 16

    # What Keystead reads back from the token.
    details = station(station.ws.keys.details, key.id)
    assert details.presence is Presence.PRESENT
    live = details.token_attributes
    granted = expected_flags(purpose)
    classes = {"SECRET_KEY"} if algorithm.symmetric else {"PRIVATE_KEY", "PUBLIC_KEY"}
    assert set(live) == classes
    for cls, attrs in live.items():
        assert attrs["CLASS"] == cls
        assert attrs["LABEL"] == name and attrs["ID"] == key.cka_id
        assert attrs["TOKEN"] is True and attrs["PRIVATE"] is True
        shown = {flag for flag in ALL_FLAGS if attrs.get(flag)}
        assert shown == granted.get(cls, set()), (cls, shown)
        for flag in CLASS_FLAGS[cls]:
            assert attrs[flag] is (flag in granted.get(cls, set())), (cls, flag)
        if cls == "PUBLIC_KEY":
            continue
        assert attrs["SENSITIVE"] is True
        assert attrs["ALWAYS_SENSITIVE"] is True
        assert attrs["EXTRACTABLE"] is backup
        assert attrs["NEVER_EXTRACTABLE"] is (not backup)
        assert attrs["LOCAL"] is True  # generated on the token, not imported

    # What pkcs11-tool, another PKCS#11 client, sees.
    seen = [o for o in peer_keys(station.home) if o.cka_id == key.cka_id]
    assert sorted(o.kind for o in seen) == sorted(PEER_KIND[c] for c in classes)
    for obj in seen:
        cls = next(c for c, kind in PEER_KIND.items() if kind == obj.kind)
        assert obj.label == name
        assert obj.key_type == PEER_TYPE[algorithm.family.value]
        words = {flag.lower() for flag in granted.get(cls, set())}
        assert obj.usage == words & PEER_VISIBLE[obj.kind], (obj.kind, obj.usage)
        if obj.kind == "Public":
            assert obj.access == {"local"}
        else:
            extract = "extractable" if backup else "never extractable"
            assert obj.access == {"sensitive", "always sensitive", extract, "local"}
    by_kind = {o.kind: o for o in seen}
    if algorithm.symmetric:
        assert by_kind["Secret"].header == f"AES length {algorithm.spec.bits // 8}"
    elif algorithm.spec.curve:
        public = by_kind["Public"]
        assert public.ec_params == CURVE_OID_DER[algorithm.spec.curve]
        assert public.header.endswith(f"EC_POINT {algorithm.spec.bits} bits")
    else:
        assert by_kind["Public"].header == f"RSA {algorithm.spec.bits} bits"


@pytest.mark.parametrize("algorithm", [Algorithm.AES_128, Algorithm.AES_256])
def test_symmetric_identifier_is_the_token_kcv(station: Station, algorithm: Algorithm) -> None:
    key = station(station.ws.keys.generate, TOKEN, algorithm, "kcv")
    assert key.fingerprint is None
    assert key.kcv is not None and len(key.kcv) == 6 and key.kcv == key.kcv.upper()
    assert key.identifier == key.kcv
    words = station(station.ws.keys.details, key.id).identifier_words
    assert words == pgp_words(bytes.fromhex(key.kcv)) and len(words) == 3


@pytest.mark.parametrize(
    ("algorithm", "kind"),
    [
        (Algorithm.EC_P256, ec.EllipticCurvePublicKey),
        (Algorithm.EC_P384, ec.EllipticCurvePublicKey),
        (Algorithm.ED25519, ed25519.Ed25519PublicKey),
        (Algorithm.RSA_2048, rsa.RSAPublicKey),
    ],
)
def test_fingerprint_is_sha256_of_the_public_key_pkcs11_tool_sees(
    station: Station, tmp_path: Path, algorithm: Algorithm, kind: type
) -> None:
    """The SubjectPublicKeyInfo is rebuilt with `cryptography` from what pkcs11-tool exports
    (--read-object) and, for curves, from the EC_POINT it lists."""
    key = station(station.ws.keys.generate, TOKEN, algorithm, "fp")
    candidates = []
    if algorithm is not Algorithm.EC_P384:  # pkcs11-tool 0.23 cannot export P-384 keys
        candidates.append(peer_public_key(station.home, key.cka_id, tmp_path / "pub"))
    curve = algorithm.spec.curve
    if curve:
        [public_obj] = [
            o for o in peer_keys(station.home) if o.cka_id == key.cka_id and o.kind == "Public"
        ]
        candidates.append(public_key_from_point(public_obj, curve))
    for public in candidates:
        assert isinstance(public, kind)
        if isinstance(public, ec.EllipticCurvePublicKey):
            assert public.curve.key_size == algorithm.spec.bits
        if isinstance(public, rsa.RSAPublicKey):
            assert public.key_size == 2048 and public.public_numbers().e == 65537
        assert key.fingerprint == hashlib.sha256(spki(public)).hexdigest()
    assert candidates
    assert key.kcv is None and key.identifier == key.fingerprint
    words = station(station.ws.keys.details, key.id).identifier_words
    assert words == pgp_words(bytes.fromhex(key.fingerprint or "")) and len(words) == 32


def test_generation_is_recorded_with_its_audit_event(station: Station) -> None:
    key = station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "audited")
    [event] = station.events("key.generate")
    assert (event.outcome, event.subject, event.operators) == (
        "success",
        f"key:{key.id}",
        (OPERATOR,),
    )
    assert event.details["name"] == "audited"
    assert event.details["algorithm"] == "EC-P256"
    assert event.details["cka_id"] == key.cka_id
    assert event.details["identifier"] == key.fingerprint
    assert station(station.ws.keys.resolve, "audited") == key
    assert station(station.ws.keys.resolve, key.id) == key


def test_keys_survive_lock_and_unlock(station: Station) -> None:
    made = [
        station(station.ws.keys.generate, TOKEN, Algorithm.AES_192, "a", Purpose.MAC),
        station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "b", None, True),
    ]
    station.unlock()
    items = station(station.ws.keys.inventory)
    assert sorted((i.record.name, i.presence) for i in items if i.record) == [
        ("a", Presence.PRESENT),
        ("b", Presence.PRESENT),
    ]
    assert [station(station.ws.keys.resolve, k.id) for k in made] == made
