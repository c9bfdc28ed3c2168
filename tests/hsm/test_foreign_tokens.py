"""Tokens written by other tools (DESIGN.md "Keys and tokens"): objects made with pkcs11-tool the
way other software makes them are each listed honestly, one odd object never breaks a listing,
and no action on one key touches an object that was not adopted as part of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, KeyType

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyState, ObjectKind, Presence, TokenObject
from app.domain.lifecycle import Action
from app.errors import AmbiguousKey, NotFoundError, PolicyError, TokenError, ValidationError
from tests.hsm.kit import TOKEN, Station, peer_keys, peer_public_key, pkcs11_tool, spki

pytestmark = pytest.mark.hsm


def p11(station: Station, *args: str | bytes) -> str:
    """pkcs11-tool on the test token (arguments may be raw bytes, as a shell passes them)."""
    return pkcs11_tool(station.home, "--token-label", TOKEN, *args)


def unmanaged(station: Station) -> list[TokenObject]:
    return [
        i.token_object
        for i in station(station.ws.keys.inventory)
        if i.presence is Presence.UNMANAGED and i.token_object is not None
    ]


# --- 3. token data is untrusted -------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "shown"),
    [
        (b"bad\xff\xfelabel", "bad\\xff\\xfelabel"),  # the reproduction
        (b"cut\xc3", "cut\\xc3"),
        ("rtl\u202eabc".encode(), "rtl\\u202eabc"),
        (b"esc\x1b[2Jclear", "esc\\x1b[2Jclear"),
    ],
)
def test_a_label_that_is_not_plain_text_is_listed_escaped(
    station: Station, label: bytes, shown: str
) -> None:
    p11(station, "--keygen", "--key-type", "AES:32", "--label", label, "--id", "32")
    p11(station, "--keygen", "--key-type", "AES:32", "--label", "fine", "--id", "33")
    labels = sorted(o.label for o in unmanaged(station))
    assert labels == sorted([shown, "fine"])  # the odd one is listed, the other still is


def test_a_label_that_is_not_utf8_can_be_adopted_under_a_typed_name(station: Station) -> None:
    """The issue's label: listing works, adoption asks for a name, the audit entry is safe."""
    p11(station, "--keygen", "--key-type", "AES:32", "--label", b"bad\xff\xfelabel", "--id", "32")
    with pytest.raises(ValidationError, match="give it a name"):
        station(
            station.ws.keys.adopt, TOKEN, "32", purpose=Purpose.ENCRYPTION, accept_exposure=True
        )
    key = station(
        station.ws.keys.adopt,
        TOKEN,
        "32",
        "bad-label-key",
        purpose=Purpose.ENCRYPTION,
        accept_exposure=True,
    )
    [entry] = [e for e in station.events("key.adopt") if e.outcome == "success"]
    assert entry.subject == f"key:{key.id}"
    assert "bad\\xff\\xfelabel" in entry.details["objects"][0]
    assert station(station.ws.audit.verify).ok


# --- 1. identity is class + CKA_ID + key type; pairs by public values ------------------------


def usage_of(station: Station, cka_id: str) -> dict[tuple[str, str, str], frozenset[str]]:
    """pkcs11-tool's view of the objects with ``cka_id``: (kind, type, label) -> usage."""
    return {
        (k.kind, k.key_type, k.label): k.usage
        for k in peer_keys(station.home)
        if k.cka_id == cka_id
    }


def two_rsa_pairs_under_one_id(station: Station) -> list[TokenObject]:
    for _ in range(2):
        p11(station, "--keypairgen", "--key-type", "rsa:2048", "--label", "testl", "--id", "788908")
    return [o for o in unmanaged(station) if o.cka_id == "788908"]


def test_two_pairs_with_one_label_and_id_are_two_rows_and_adoption_is_refused(
    station: Station,
) -> None:
    rows = two_rsa_pairs_under_one_id(station)
    assert len(rows) == 2  # four objects, two keys: not one row
    assert {r.kind for r in rows} == {ObjectKind.PAIR}
    assert all(r.shared_id and r.needs_new_id for r in rows)
    assert len({r.identifier for r in rows}) == 2  # told apart by their public keys
    with pytest.raises(ValidationError, match=r"2 keys .* share ID 788908"):
        station(station.ws.keys.adopt, TOKEN, "788908", "one", purpose=Purpose.SIGNING)
    with pytest.raises(ValidationError, match=r"shares CKA_ID 788908.*--new-id"):
        station(
            station.ws.keys.adopt,
            TOKEN,
            "788908",
            "one",
            purpose=Purpose.SIGNING,
            identifier=rows[0].identifier[:16],
        )
    assert station.key_count() == 0
    assert {e.outcome for e in station.events("key.adopt")} == {"denied"}


def test_a_pair_under_a_shared_id_gets_a_fresh_id_and_actions_touch_only_it(
    station: Station,
) -> None:
    rows = two_rsa_pairs_under_one_id(station)
    chosen, other = rows
    key = station(
        station.ws.keys.adopt,
        TOKEN,
        "788908",
        "one",
        purpose=Purpose.SIGNING,
        identifier=chosen.identifier,
        new_id=True,
    )
    assert key.cka_id != "788908" and len(key.cka_id) == 32
    assert key.fingerprint == chosen.identifier
    [entry] = [e for e in station.events("key.adopt") if e.outcome == "success"]
    assert (entry.details["cka_id_before"], entry.details["cka_id_assigned"]) == (
        "788908",
        key.cka_id,
    )
    assert len(entry.details["objects"]) == 2  # the private and the public key, named
    untouched = usage_of(station, "788908")
    assert len(untouched) == 2  # the other pair kept the old ID: two objects
    moved = usage_of(station, key.cka_id)
    assert len(moved) == 2

    station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    assert usage_of(station, "788908") == untouched  # the other pair's flags did not change
    assert usage_of(station, key.cka_id)[("Private", "RSA", "testl")] == {"sign"}
    station(station.ws.lifecycle.transition, key.id, Action.DEACTIVATE, "test")
    station(station.ws.lifecycle.transition, key.id, Action.DESTROY, confirm_name="one")
    assert usage_of(station, key.cka_id) == {}
    assert usage_of(station, "788908") == untouched  # the other pair is still whole
    [destroyed] = [e for e in station.events("key.destroy") if e.outcome == "success"]
    assert len(destroyed.details["token_objects"]) == 2
    assert all(key.cka_id in line for line in destroyed.details["token_objects"])
    remaining = [o for o in unmanaged(station) if o.cka_id == "788908"]
    assert [(o.kind, o.identifier, o.shared_id) for o in remaining] == [
        (ObjectKind.PAIR, other.identifier, False)
    ]


def test_a_managed_key_whose_id_another_tool_reused_is_not_acted_on(station: Station) -> None:
    """Sibling: a second secret key written later under a managed key's CKA_ID (another
    tool reusing it). Activation and destroy refuse instead of touching both."""
    key = station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "mine")
    p11(station, "--keygen", "--key-type", "AES:32", "--label", "intruder", "--id", key.cka_id)
    items = {i.name: i for i in station(station.ws.keys.inventory)}
    assert items["mine"].presence is Presence.PRESENT
    assert items["intruder"].presence is Presence.UNMANAGED  # told apart by the KCV
    station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    flags = usage_of(station, key.cka_id)
    assert flags[("Secret", "AES", "mine")] == {"encrypt", "decrypt"}
    assert flags[("Secret", "AES", "intruder")] == {
        "encrypt",
        "decrypt",
        "verify",
        "wrap",
        "unwrap",
    }


def test_an_rsa_and_an_ec_pair_under_one_id_are_listed_the_same_every_time(
    station: Station,
) -> None:
    p11(station, "--keypairgen", "--key-type", "rsa:2048", "--label", "mixed", "--id", "4242")
    p11(station, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "mixed", "--id", "4242")

    def listing() -> list[tuple[str, str, str, bool]]:
        return sorted(
            (str(o.algorithm and o.algorithm.value), o.kind.value, o.identifier, o.shared_id)
            for o in unmanaged(station)
        )

    first = listing()
    assert first == sorted(
        [
            ("EC-P256", ObjectKind.PAIR.value, first[0][2], True),
            ("RSA-2048", ObjectKind.PAIR.value, first[1][2], True),
        ]
    )
    for _ in range(3):
        assert listing() == first
    ec = next(o for o in unmanaged(station) if o.algorithm is Algorithm.EC_P256)
    key = station(
        station.ws.keys.adopt,
        TOKEN,
        "4242",
        "mixed-ec",
        purpose=Purpose.SIGNING,
        identifier=ec.identifier,
        new_id=True,
    )
    assert key.algorithm is Algorithm.EC_P256 and key.fingerprint == ec.identifier


def test_keys_without_an_id_are_each_listed_and_adopted_with_a_fresh_id(station: Station) -> None:
    p11(station, "--keypairgen", "--key-type", "rsa:2048", "--label", "a")
    p11(station, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "b")
    p11(station, "--keygen", "--key-type", "AES:32", "--label", "c")
    rows = {o.label: o for o in unmanaged(station)}
    assert set(rows) == {"a", "b", "c"}  # five objects, three keys: every one listed
    assert (rows["a"].kind, rows["b"].kind, rows["c"].kind) == (
        ObjectKind.PAIR,
        ObjectKind.PAIR,
        ObjectKind.SECRET,
    )
    assert all(r.cka_id == "" and r.needs_new_id for r in rows.values())
    with pytest.raises(ValidationError, match="has no CKA_ID"):
        station(
            station.ws.keys.adopt,
            TOKEN,
            None,
            purpose=Purpose.ENCRYPTION,
            accept_exposure=True,
            identifier=rows["c"].identifier,
        )
    aes = station(
        station.ws.keys.adopt,
        TOKEN,
        None,
        purpose=Purpose.ENCRYPTION,
        accept_exposure=True,
        identifier=rows["c"].identifier,
        new_id=True,
    )
    assert aes.name == "c" and aes.kcv == rows["c"].identifier and aes.cka_id
    ec = station(
        station.ws.keys.adopt,
        TOKEN,
        None,
        purpose=Purpose.SIGNING,
        identifier=rows["b"].identifier,
        new_id=True,
    )
    assert set(usage_of(station, ec.cka_id)) == {("Private", "EC", "b"), ("Public", "EC", "b")}
    names = {i.name: i.presence for i in station(station.ws.keys.inventory)}
    assert names == {"a": Presence.UNMANAGED, "b": Presence.PRESENT, "c": Presence.PRESENT}


def test_a_certificate_under_a_keys_id_is_related_and_kept_at_destroy(
    station: Station, tmp_path: Path
) -> None:
    p11(station, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "web", "--id", "61")
    cert = tmp_path / "cert.der"
    cert.write_bytes(self_signed_der())
    p11(station, "--write-object", str(cert), "--type", "cert", "--id", "61", "--label", "web")
    rows = {o.kind: o for o in unmanaged(station) if o.cka_id == "61"}
    assert set(rows) == {ObjectKind.PAIR, ObjectKind.CERTIFICATE}
    pair = rows[ObjectKind.PAIR]
    assert len(pair.related) == 1 and not pair.shared_id  # related, not a second key
    key = station(station.ws.keys.adopt, TOKEN, "61", "web", purpose=Purpose.SIGNING)
    [adopted] = [e for e in station.events("key.adopt") if e.outcome == "success"]
    assert adopted.details["related_objects"] == list(pair.related)
    station(station.ws.lifecycle.transition, key.id, Action.DESTROY, confirm_name="web")
    assert "Certificate Object" in p11(station, "--list-objects", "--type", "cert")
    assert [o.kind for o in unmanaged(station) if o.cka_id == "61"] == [ObjectKind.CERTIFICATE]
    [entry] = [e for e in station.events("key.destroy") if e.outcome == "success"]
    assert len(entry.details["token_objects"]) == 2
    assert entry.details["kept_related"] == [pair.related[0]]


def test_a_data_object_is_listed_and_never_destroyed_with_a_key(
    station: Station, tmp_path: Path
) -> None:
    """Sibling: pkcs11-tool writes a data object (PKCS#11 gives data objects no CKA_ID, so it
    cannot share one): it is listed as what it is and outlives the key's destruction."""
    p11(station, "--keygen", "--key-type", "AES:32", "--label", "dek", "--id", "62")
    blob = tmp_path / "blob"
    blob.write_bytes(b"application data")
    p11(station, "--write-object", str(blob), "--type", "data", "--label", "dek", "--private")
    kinds = sorted(o.kind.value for o in unmanaged(station))
    assert kinds == sorted([ObjectKind.SECRET.value, ObjectKind.DATA.value])
    key = station(
        station.ws.keys.adopt, TOKEN, "62", purpose=Purpose.ENCRYPTION, accept_exposure=True
    )
    station(station.ws.lifecycle.transition, key.id, Action.DESTROY, confirm_name="dek")
    assert [o.kind for o in unmanaged(station)] == [ObjectKind.DATA]


def self_signed_der() -> bytes:
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web")])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


# --- 2. a lone public key is not a key ---------------------------------------------------------


def test_a_lone_public_key_is_listed_as_such_and_not_adopted(
    station: Station, tmp_path: Path
) -> None:
    pub = tmp_path / "pub.der"
    pub.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    p11(
        station,
        "--write-object",
        str(pub),
        "--type",
        "pubkey",
        "--id",
        "51",
        "--label",
        "pubonly-ec",
    )
    [row] = unmanaged(station)
    assert (row.kind, row.algorithm, row.classes) == (
        ObjectKind.PUBLIC_ONLY,
        Algorithm.EC_P256,
        ("PUBLIC_KEY",),
    )
    with pytest.raises(TokenError, match="No private key with this ID"):
        station(station.ws.keys.adopt, TOKEN, "51", purpose=Purpose.SIGNING)
    assert station.key_count() == 0
    [denied] = station.events("key.adopt")
    assert denied.outcome == "denied"


def test_a_private_key_left_without_its_public_key_is_not_adopted_when_ec(
    station: Station,
) -> None:
    """Sibling: only the private half (EC carries no public value on the private object)."""
    p11(station, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "half", "--id", "52")
    p11(station, "--delete-object", "--type", "pubkey", "--id", "52")
    [row] = unmanaged(station)
    assert row.kind is ObjectKind.PRIVATE_ONLY and row.identifier == ""
    with pytest.raises(TokenError, match="public key is not on the token"):
        station(station.ws.keys.adopt, TOKEN, "52", purpose=Purpose.SIGNING)


# --- 4. adoption keeps what the key is --------------------------------------------------------


def test_a_signing_key_is_not_adopted_for_another_purpose_without_asking(
    station: Station,
) -> None:
    p11(
        station,
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--usage-sign",
        "--label",
        "signer",
        "--id",
        "0a",
    )
    [candidate] = station(station.ws.keys.adoption_candidates, TOKEN)
    assert Purpose.SIGNING in candidate.inferred
    with pytest.raises(ValidationError, match="--purpose"):
        station(station.ws.keys.adopt, TOKEN, "0a")
    key = station(station.ws.keys.adopt, TOKEN, "0a", purpose=Purpose.SIGNING)
    assert key.purpose is Purpose.SIGNING
    [entry] = [e for e in station.events("key.adopt") if e.outcome == "success"]
    assert entry.details["purpose_chosen"] == "explicit"
    assert entry.details["cleared_on_activation"] == list(
        candidate.cleared_on_activation[Purpose.SIGNING]
    )
    station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    flags = usage_of(station, "0a")
    assert "sign" in flags[("Private", "RSA", "signer")]  # signing stays with a signing key


def test_a_key_whose_flags_name_one_purpose_is_adopted_for_it(station: Station) -> None:
    """Sibling: flags that fit exactly one purpose and lose nothing need no --purpose."""
    session = station.ws.tokens.logged_in()[0]

    def make() -> None:
        session._session.generate_key(  # python-pkcs11, as another program would call it
            KeyType.AES,
            256,
            id=b"\x0b",
            label="wrapper",
            store=True,
            template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.PRIVATE: True,
                Attribute.WRAP: True,
                Attribute.UNWRAP: True,
                Attribute.ENCRYPT: False,
                Attribute.DECRYPT: False,
                Attribute.SIGN: False,
                Attribute.VERIFY: False,
            },
        )

    station(make)
    key = station(station.ws.keys.adopt, TOKEN, "0b")
    assert key.purpose is Purpose.KEY_WRAPPING and key.exposure == ()


def make_exposed_aes(station: Station, cka_id: bytes, sensitive: bool, extractable: bool) -> None:
    session = station.ws.tokens.logged_in()[0]

    def make() -> None:
        session._session.generate_key(
            KeyType.AES,
            256,
            id=cka_id,
            label=f"exposed-{cka_id.hex()}",
            store=True,
            template={
                Attribute.SENSITIVE: sensitive,
                Attribute.EXTRACTABLE: extractable,
                Attribute.PRIVATE: True,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.WRAP: True,
                Attribute.UNWRAP: True,
                Attribute.SIGN: False,
                Attribute.VERIFY: False,
            },
        )

    station(make)


def test_a_key_readable_in_clear_needs_acknowledgement_and_is_not_activated_for_wrapping(
    station: Station,
) -> None:
    make_exposed_aes(station, b"\x0e", sensitive=False, extractable=True)
    [row] = unmanaged(station)
    assert set(row.exposure) == {"not-sensitive", "was-not-sensitive", "extractable"}
    with pytest.raises(ValidationError, match=r"exposed.*--accept-exposed"):
        station(station.ws.keys.adopt, TOKEN, "0e", purpose=Purpose.KEY_WRAPPING)
    key = station(
        station.ws.keys.adopt, TOKEN, "0e", purpose=Purpose.KEY_WRAPPING, accept_exposure=True
    )
    assert set(key.exposure) == {"not-sensitive", "was-not-sensitive", "extractable"}
    [item] = [i for i in station(station.ws.keys.inventory) if i.record is not None]
    assert item.record is not None and item.record.exposure == key.exposure  # stays marked
    with pytest.raises(PolicyError, match=r"exposed.*KS-EXPOSED-KEY-USE"):
        station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    assert station(station.ws.keys.resolve, key.id).state is KeyState.PRE_ACTIVE
    [denied] = station.events("key.activate")
    assert denied.outcome == "denied" and denied.details["rule"] == "KS-EXPOSED-KEY-USE"


@pytest.mark.parametrize(
    ("sensitive", "extractable", "exposure", "activates"),
    [
        (True, True, {"extractable"}, True),  # extractable under any wrapping key: warned
        (False, False, {"not-sensitive", "was-not-sensitive"}, True),
    ],
)
def test_exposed_keys_for_encryption_are_marked_and_may_be_activated(
    station: Station, sensitive: bool, extractable: bool, exposure: set[str], activates: bool
) -> None:
    """Siblings: other ways a value may be outside the token. Encryption keys are allowed by
    the default policy, marked exposed."""
    make_exposed_aes(station, b"\x0f", sensitive=sensitive, extractable=extractable)
    key = station(
        station.ws.keys.adopt, TOKEN, "0f", purpose=Purpose.ENCRYPTION, accept_exposure=True
    )
    assert set(key.exposure) == exposure
    done = station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    assert (done.state is KeyState.ACTIVE) is activates


def test_a_missing_key_is_not_rebound_to_a_lone_public_key(
    station: Station, tmp_path: Path
) -> None:
    """Item 2, ``keys rebind``: the only twin on the token is the public half (same SPKI, the
    private key is gone): it is not offered, and rebinding is refused."""
    key = station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "signer")
    exported = tmp_path / "pub.der"
    exported.write_bytes(spki(peer_public_key(station.home, key.cka_id, tmp_path / "x.der")))
    p11(station, "--delete-object", "--type", "privkey", "--id", key.cka_id)
    p11(station, "--delete-object", "--type", "pubkey", "--id", key.cka_id)
    p11(
        station,
        "--write-object",
        str(exported),
        "--type",
        "pubkey",
        "--id",
        "77",
        "--label",
        "twin",
    )
    items = {i.name: i for i in station(station.ws.keys.inventory)}
    assert items["signer"].presence is Presence.MISSING
    twin = items["twin"].token_object
    assert twin is not None and twin.kind is ObjectKind.PUBLIC_ONLY
    assert twin.identifier == key.fingerprint  # same public key: only the half is there
    assert station(station.ws.rebind.candidates) == []
    with pytest.raises(NotFoundError, match="holds no unmanaged key"):
        station(station.ws.rebind.rebind, key.id, TOKEN)


# --- a fresh CKA_ID is a token write: it goes through its write-ahead intent ----------------


def test_a_fresh_id_is_written_through_its_intent(station: Station) -> None:
    p11(station, "--keygen", "--key-type", "AES:32", "--label", "no-id")
    (row,) = unmanaged(station)
    key = station(
        station.ws.keys.adopt,
        TOKEN,
        None,
        purpose=Purpose.ENCRYPTION,
        accept_exposure=True,
        identifier=row.identifier,
        new_id=True,
    )
    (begun,) = [e for e in station.events("intent.begin") if e.details["action"] == "key.adopt-id"]
    assert begun.details["cka_id_assigned"] == key.cka_id and begun.details["cka_id_before"] == ""
    assert station(station.ws.tokens.intents.pending) == []  # resolved with the adoption


def test_an_adoption_killed_after_the_fresh_id_is_rolled_back_at_the_next_login(
    station: Station,
) -> None:
    p11(station, "--keygen", "--key-type", "AES:32", "--label", "no-id")
    ws = station.ws
    (row,) = unmanaged(station)
    candidate = station(ws.keys.adoption_candidate, TOKEN, None, row.identifier)
    fresh = bytes(range(16))
    station(
        ws.tokens.intents.begin,
        "key.adopt-id",
        station.serial,
        "key:never-recorded",
        {
            "subject": "key:never-recorded",
            "key": "never-recorded",
            "cka_id_before": "",
            "cka_id_assigned": fresh.hex(),
            "objects": [e.describe for e in candidate.objects],
        },
    )
    # killed after the token took the new ID, before the adoption was committed
    station(lambda: ws.tokens.session(TOKEN).assign_id(list(candidate.objects), fresh))
    assert [r.cka_id for r in unmanaged(station)] == [fresh.hex()]
    station.unlock()  # the next login reconciles
    assert [r.cka_id for r in unmanaged(station)] == [""]  # as the officer left it
    assert station(station.ws.tokens.intents.pending) == []
    (resolved,) = [dict(e.details) for e in station.events("intent.resolve")]
    assert resolved["resolution"] == "rolled-back" and resolved["cka_id_restored"] == ""


# --- key use finds the key by its full identity ---------------------------------------------


def signed_by(station: Station, key_id: str, data: bytes, signature: bytes) -> bool:
    """True if the record's own public key (the SPKI Keystead stored) verifies ``signature``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    der = station(station.ws.keys.repo.spki, key_id)
    public = serialization.load_der_public_key(der)
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def adopted_signer(station: Station, key_type: str, cka_id: str, label: str) -> str:
    """A pair made by pkcs11-tool, adopted for signing and activated; returns the key id."""
    p11(station, "--keypairgen", "--key-type", key_type, "--usage-sign", "--label", label,
        "--id", cka_id)  # fmt: skip
    key = station(station.ws.keys.adopt, TOKEN, cka_id, label, purpose=Purpose.SIGNING)
    station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    return str(key.id)


@pytest.mark.parametrize(
    ("key_type", "mechanism"), [("rsa:2048", "RSA-PKCS1-SHA256"), ("EC:prime256v1", "ECDSA-SHA256")]
)
def test_two_pairs_under_one_id_sign_with_the_adopted_one_only(
    station: Station, tmp_path: Path, key_type: str, mechanism: str
) -> None:
    """Issue 9 rule applied to key use: pkcs11-tool writes a second pair with the adopted key's
    label and CKA_ID. Signing uses exactly the adopted key (told apart by its public values,
    an EC key by signing a challenge), proven by the record's own public key; the old lookup by
    CKA_ID and class refused a key it could tell apart, or could pick the other pair."""
    key_id = adopted_signer(station, key_type, "7788", "pair")
    p11(station, "--keypairgen", "--key-type", key_type, "--usage-sign", "--label", "pair",
        "--id", "7788")  # fmt: skip
    assert len([k for k in peer_keys(station.home) if k.cka_id == "7788"]) == 4
    source = tmp_path / "message.txt"
    source.write_bytes(b"sign me with the adopted key only\n" * 100)
    for attempt in range(3):  # the same object every time, whatever order the token lists
        target = tmp_path / f"message.{attempt}.sig"
        station(station.ws.use.sign_file, key_id, source, target, mechanism)
        assert signed_by(station, key_id, source.read_bytes(), target.read_bytes())


def test_a_replaced_private_key_under_a_managed_id_is_never_used(
    station: Station, tmp_path: Path
) -> None:
    """Another tool deleted the managed RSA private key and made a new pair under its CKA_ID:
    one private key with that ID and class is still there, and the old lookup signed with it
    (a signature the key's public key does not verify, recorded as a success). Now refused,
    recorded as failed, and no signature file is written."""
    key = station(station.ws.keys.generate, TOKEN, Algorithm.RSA_2048, "ca-key", Purpose.SIGNING)
    station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    p11(station, "--delete-object", "--type", "privkey", "--id", key.cka_id)
    p11(station, "--keypairgen", "--key-type", "rsa:2048", "--usage-sign", "--label", "swap",
        "--id", key.cka_id)  # fmt: skip
    source = tmp_path / "tbs.bin"
    source.write_bytes(b"to be signed")
    target = tmp_path / "tbs.sig"
    with pytest.raises(TokenError, match="not on token"):
        station(station.ws.use.sign_file, key.id, source, target, "RSA-PKCS1-SHA256")
    assert not target.exists()
    (failed,) = [e for e in station.events("key.sign") if e.subject == f"key:{key.id}"]
    assert failed.outcome == "failed"


def test_a_replaced_aes_key_under_a_managed_id_never_encrypts(
    station: Station, tmp_path: Path
) -> None:
    """Sibling for secret keys: the managed AES key is gone and pkcs11-tool made another one
    under its CKA_ID; encrypting with it would hand the data to a key the record is not (told
    apart by the KCV). Refused; no output."""
    key = station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "files", Purpose.ENCRYPTION)
    station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    p11(station, "--delete-object", "--type", "secrkey", "--id", key.cka_id)
    p11(station, "--keygen", "--key-type", "AES:32", "--label", "swap", "--id", key.cka_id)
    source = tmp_path / "plain.txt"
    source.write_bytes(b"secret")
    target = tmp_path / "plain.enc"
    with pytest.raises(TokenError, match="not on token"):
        station(station.ws.use.encrypt_file, key.id, source, target)
    assert not target.exists()


def test_a_second_ec_private_key_under_a_managed_id_is_ambiguous_and_nothing_is_signed(
    station: Station, tmp_path: Path
) -> None:
    """A foreign EC private key without its public half under the managed key's CKA_ID cannot
    be told apart from the managed one (an EC private key carries no public value, and it has
    no public key to prove itself against): signing is refused with the way out, not guessed."""
    key = station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "ec-key", Purpose.SIGNING)
    station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    p11(station, "--keypairgen", "--key-type", "EC:prime256v1", "--usage-sign", "--label",
        "stray", "--id", key.cka_id)  # fmt: skip
    p11(station, "--delete-object", "--type", "pubkey", "--label", "stray", "--id", key.cka_id)
    source = tmp_path / "data"
    source.write_bytes(b"data")
    target = tmp_path / "data.sig"
    with pytest.raises(AmbiguousKey, match="will not guess"):
        station(station.ws.use.sign_file, key.id, source, target, "ECDSA-SHA256")
    assert not target.exists()
