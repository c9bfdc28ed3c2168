"""The inventory reconciles the database with the token: keys another client made are
unmanaged and can be adopted; records whose key is gone are missing and are kept."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyState, Presence
from app.errors import NotFoundError, TokenError, ValidationError
from tests.hsm.kit import (
    OPERATOR,
    TOKEN,
    Station,
    peer_keys,
    peer_public_key,
    pkcs11_tool,
    public_key_from_point,
    spki,
)

pytestmark = pytest.mark.hsm


def on_token(station: Station, command: str, *more: str) -> str:
    """pkcs11-tool on the test token: ``command`` is split on spaces, ``more`` is kept whole."""
    return pkcs11_tool(station.home, "--token-label", TOKEN, *command.split(), *more)


def presence(station: Station) -> dict[str, Presence]:
    return {item.name: item.presence for item in station(station.ws.keys.inventory)}


def peer_kcv(station: Station, cka_id: str, tmp_path: Path) -> str:
    """The KCV computed by pkcs11-tool: AES-ECB of a zero block with the key, first 3 bytes."""
    zeros, out = tmp_path / "zeros", tmp_path / "kcv"
    zeros.write_bytes(bytes(16))
    on_token(
        station,
        "--encrypt",
        "--mechanism",
        "AES-ECB",
        "--id",
        cka_id,
        "--input-file",
        str(zeros),
        "--output-file",
        str(out),
    )
    return out.read_bytes()[:3].hex().upper()


def test_keys_made_by_pkcs11_tool_are_unmanaged_then_adopted(
    station: Station, tmp_path: Path
) -> None:
    on_token(station, "--keypairgen --key-type EC:prime256v1 --id 0a0b --label peer-key")
    on_token(station, "--keygen --key-type AES:32 --id 0c0d --label peer-aes")
    known = bytes(range(32))  # an AES key of known value, for a KCV known answer
    (tmp_path / "known.key").write_bytes(known)
    on_token(
        station,
        "--type secrkey --key-type AES:32 --id 0e0f --label known-aes --private --sensitive",
        *["--write-object", str(tmp_path / "known.key")],
    )
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "managed")

    items = {item.name: item for item in station(station.ws.keys.inventory)}
    assert set(items) == {"peer-key", "peer-aes", "known-aes", "managed"}
    assert items["managed"].presence is Presence.PRESENT
    for name, cka_id, algorithm, classes in (
        ("peer-key", "0a0b", Algorithm.EC_P256, ("PRIVATE_KEY", "PUBLIC_KEY")),
        ("peer-aes", "0c0d", Algorithm.AES_256, ("SECRET_KEY",)),
        ("known-aes", "0e0f", Algorithm.AES_256, ("SECRET_KEY",)),
    ):
        item = items[name]
        assert item.presence is Presence.UNMANAGED and item.record is None
        assert item.token_object is not None
        assert (item.token_object.cka_id, item.token_object.algorithm) == (cka_id, algorithm)
        assert item.token_object.classes == classes
        assert item.token_label == TOKEN

    # pkcs11-tool's EC pair can also derive: activating it for signing clears that, so the
    # purpose is confirmed explicitly.
    ec_key = station(station.ws.keys.adopt, TOKEN, "0a0b", purpose=Purpose.SIGNING)
    assert (ec_key.name, ec_key.algorithm, ec_key.purpose) == (
        "peer-key",
        Algorithm.EC_P256,
        Purpose.SIGNING,
    )
    assert (ec_key.cka_id, ec_key.state, ec_key.created_by) == (
        "0a0b",
        KeyState.PRE_ACTIVE,
        OPERATOR,
    )
    assert ec_key.kcv is None
    peer = {(o.kind, o.cka_id): o for o in peer_keys(station.home)}
    from_export = peer_public_key(station.home, "0a0b", tmp_path / "peer.der")
    from_point = public_key_from_point(peer[("Public", "0a0b")], "P-256")
    assert spki(from_export) == spki(from_point)
    assert ec_key.fingerprint == hashlib.sha256(spki(from_export)).hexdigest()
    assert ec_key.extractable is ("extractable" in peer[("Private", "0a0b")].access)

    # pkcs11-tool makes AES keys without CKA_SENSITIVE: exposed, adopted only when accepted.
    aes = station(
        station.ws.keys.adopt,
        TOKEN,
        "0c0d",
        "renamed-aes",
        purpose=Purpose.ENCRYPTION,
        accept_exposure=True,
    )
    assert (aes.name, aes.algorithm, aes.fingerprint) == ("renamed-aes", Algorithm.AES_256, None)
    assert aes.kcv == peer_kcv(station, "0c0d", tmp_path)

    known_aes = station(  # colons and case are fine
        station.ws.keys.adopt, TOKEN, "0E:0F", purpose=Purpose.ENCRYPTION, accept_exposure=True
    )
    encryptor = Cipher(algorithms.AES(known), modes.ECB()).encryptor()  # noqa: S305 (KCV)
    expected = (encryptor.update(bytes(16)) + encryptor.finalize())[:3].hex().upper()
    assert known_aes.cka_id == "0e0f" and known_aes.kcv == expected

    assert presence(station) == {
        "peer-key": Presence.PRESENT,
        "renamed-aes": Presence.PRESENT,
        "known-aes": Presence.PRESENT,
        "managed": Presence.PRESENT,
    }
    for key in (ec_key, aes, known_aes):
        [event] = station.events(subject=f"key:{key.id}")
        assert (event.action, event.outcome, event.operators) == (
            "key.adopt",
            "success",
            (OPERATOR,),
        )
        assert event.details["algorithm"] == key.algorithm.value
        assert event.details["identifier"] == key.identifier
    assert station(station.ws.keys.resolve, "renamed-aes") == aes
    # Adopted keys stay managed after a restart.
    station.unlock()
    assert set(presence(station).values()) == {Presence.PRESENT}


def test_adoption_refusals(station: Station) -> None:
    on_token(station, "--keypairgen --key-type EC:secp256k1 --id 0b0b --label odd-curve")
    key = station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "mine")
    [odd] = [i for i in station(station.ws.keys.inventory) if i.name == "odd-curve"]
    assert odd.presence is Presence.UNMANAGED
    assert odd.token_object is not None and odd.token_object.algorithm is None
    with pytest.raises(TokenError, match="cannot manage"):
        station(station.ws.keys.adopt, TOKEN, "0b0b")
    with pytest.raises(ValidationError, match="already managed as key 'mine'"):
        station(station.ws.keys.adopt, TOKEN, key.cka_id, "again")
    with pytest.raises(NotFoundError, match="No key with ID abcdef"):
        station(station.ws.keys.adopt, TOKEN, "abcdef")
    for bad in ("xyz", "abc", ""):
        with pytest.raises(ValidationError):
            station(station.ws.keys.adopt, TOKEN, bad)
    assert station.key_count() == 1
    # Refusals of a key that is there are recorded as denied; nothing was adopted.
    assert {e.outcome for e in station.events("key.adopt")} == {"denied"}


def test_a_record_whose_key_was_destroyed_elsewhere_is_missing_and_kept(station: Station) -> None:
    gone = station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "vanishing")
    stays = station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "stays")
    events_before = station.events()
    on_token(station, "--delete-object", "--type", "secrkey", "--id", gone.cka_id)
    assert gone.cka_id not in {o.cka_id for o in peer_keys(station.home)}

    assert presence(station) == {"vanishing": Presence.MISSING, "stays": Presence.PRESENT}
    details = station(station.ws.keys.details, gone.id)
    assert details.presence is Presence.MISSING and details.token_attributes == {}
    # Nothing was deleted or changed in the database, and nothing was recorded.
    assert station(station.ws.keys.resolve, gone.id) == gone
    assert station(station.ws.keys.resolve, stays.id) == stays
    assert station.key_count() == 2
    assert station.events() == events_before
    station.unlock()
    assert presence(station) == {"vanishing": Presence.MISSING, "stays": Presence.PRESENT}


def test_a_key_pair_without_its_private_key_is_missing(station: Station) -> None:
    """Only the public half left on the token: the key itself is gone."""
    key = station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "half")
    on_token(station, "--delete-object", "--type", "privkey", "--id", key.cka_id)
    assert [o.kind for o in peer_keys(station.home) if o.cka_id == key.cka_id] == ["Public"]
    items = station(station.ws.keys.inventory)
    assert [(i.name, i.presence) for i in items] == [("half", Presence.MISSING)]
    assert station(station.ws.keys.details, key.id).presence is Presence.MISSING
    assert station(station.ws.keys.resolve, key.id) == key


def test_without_a_login_nothing_is_checked(station: Station) -> None:
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "k")
    station(station.ws.tokens.logout, station.serial)
    assert presence(station) == {"k": Presence.UNCHECKED}
    details = station(station.ws.keys.details, "k")
    assert details.presence is Presence.UNCHECKED and details.token_attributes == {}
