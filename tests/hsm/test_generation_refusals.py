"""Generation that must not leave a key behind: refused names, an algorithm the token lacks, a
token that ignores the template, and a database that fails after the token made the key.

Fakes wrap the real adapter (the real python-pkcs11 session and module on SoftHSM) and change
only what SoftHSM cannot be made to do.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pkcs11 import Attribute

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyRecord, KeyState
from app.errors import (
    DatabaseDamaged,
    DiskFull,
    StorageError,
    TemplateMismatch,
    TokenNotLoggedIn,
    UnsupportedAlgorithm,
    ValidationError,
)
from app.hsm.session import TokenSession
from app.storage.repository import KeyRepository
from tests.hsm.kit import TOKEN, Station, peer_keys

pytestmark = pytest.mark.hsm


class SessionSpy:
    """The real python-pkcs11 session; records the CKA_ID of every key generation it passes on
    to the token."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.generated: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def generate_key(self, *args: Any, template: dict[Attribute, Any], **kwargs: Any) -> Any:
        self.generated.append(template[Attribute.ID].hex())
        return self._real.generate_key(*args, template=template, **kwargs)

    def generate_keypair(
        self,
        *args: Any,
        public_template: dict[Attribute, Any],
        private_template: dict[Attribute, Any],
        **kwargs: Any,
    ) -> Any:
        self.generated.append(private_template[Attribute.ID].hex())
        return self._real.generate_keypair(
            *args, public_template=public_template, private_template=private_template, **kwargs
        )


class SloppyToken(SessionSpy):
    """A token that does not honour one attribute of the template: the real SoftHSM session is
    handed a copy of Keystead's template with that attribute flipped. ``seen_on_token`` is what
    pkcs11-tool listed right after the token made the key."""

    def __init__(self, real: Any, station: Station, part: str, attribute: Attribute) -> None:
        super().__init__(real)
        self.station, self.part, self.attribute = station, part, attribute
        self.seen_on_token: list[str] = []

    def _flip(self, template: dict[Attribute, Any]) -> dict[Attribute, Any]:
        changed = dict(template)  # Keystead's own dict stays as it asked
        changed[self.attribute] = not changed[self.attribute]
        return changed

    def _look(self) -> None:
        self.seen_on_token = [o.cka_id for o in peer_keys(self.station.home)]

    def generate_key(self, *args: Any, template: dict[Attribute, Any], **kwargs: Any) -> Any:
        key = super().generate_key(*args, template=self._flip(template), **kwargs)
        self._look()
        return key

    def generate_keypair(
        self,
        *args: Any,
        public_template: dict[Attribute, Any],
        private_template: dict[Attribute, Any],
        **kwargs: Any,
    ) -> Any:
        if self.part == "public":
            public_template = self._flip(public_template)
        else:
            private_template = self._flip(private_template)
        pair = super().generate_keypair(
            *args, public_template=public_template, private_template=private_template, **kwargs
        )
        self._look()
        return pair


def token_session(station: Station) -> TokenSession:
    session: TokenSession = station(station.ws.tokens.session, TOKEN)
    return session


def spy_on(station: Station, monkeypatch: pytest.MonkeyPatch) -> SessionSpy:
    session = token_session(station)
    spy = SessionSpy(session._session)
    monkeypatch.setattr(session, "_session", spy)
    return spy


def assert_failed_event(station: Station, name: str, *words: str) -> dict[str, Any]:
    event = station.events("key.generate")[-1]
    assert (event.outcome, event.subject) == ("failed", f"key:{name}")
    for word in words:
        assert word in event.details["error"], event.details
    return event.details


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", "   ", "n" * 65, "bad\x00name", "new\nline", "rtl\u202eoverride", "zero\u200bwidth"],
)
def test_bad_names_are_refused_before_the_token_is_touched(
    station: Station, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    before = peer_keys(station.home)
    spy = spy_on(station, monkeypatch)
    with pytest.raises(ValidationError):
        station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, name)
    assert spy.generated == []
    assert peer_keys(station.home) == before
    assert station.key_count() == 0


def test_duplicate_names_are_refused_before_the_token_is_touched(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "Caf\u00e9")
    before = peer_keys(station.home)
    spy = spy_on(station, monkeypatch)
    for again in ("Caf\u00e9", "  Caf\u00e9 ", "Cafe\u0301"):  # trimmed and NFC are the same
        with pytest.raises(ValidationError, match="already exists"):
            station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, again)
    assert spy.generated == []
    assert peer_keys(station.home) == before
    assert station.key_count() == 1


def test_generation_needs_a_logged_in_token(station: Station) -> None:
    station(station.ws.tokens.logout, station.serial)
    with pytest.raises(TokenNotLoggedIn, match="Log in"):
        station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "k")
    assert station.key_count() == 0


# --- the token's abilities --------------------------------------------------------------------


def test_an_algorithm_the_token_lacks_is_refused_and_nothing_is_created(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real module, except that its mechanism list omits EdDSA key generation."""
    session = token_session(station)
    module = session.module
    real = module.mechanisms
    assert "EC_EDWARDS_KEY_PAIR_GEN" in station(real, station.serial)  # SoftHSM has it
    asked: list[str] = []

    def without_eddsa(serial: str) -> set[str]:
        asked.append(serial)
        return real(serial) - {"EC_EDWARDS_KEY_PAIR_GEN"}

    monkeypatch.setattr(module, "mechanisms", without_eddsa)
    spy = spy_on(station, monkeypatch)
    before = peer_keys(station.home)
    with pytest.raises(UnsupportedAlgorithm, match="EC_EDWARDS_KEY_PAIR_GEN"):
        station(station.ws.keys.generate, TOKEN, Algorithm.ED25519, "ed")
    assert asked == [station.serial]
    assert spy.generated == []
    assert peer_keys(station.home) == before
    assert station.key_count() == 0
    assert_failed_event(station, "ed", "EC_EDWARDS_KEY_PAIR_GEN")
    # Everything else about the wrapped module is real: other algorithms still generate.
    key = station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "ec")
    assert spy.generated == [key.cka_id]


def test_an_rsa_size_outside_the_tokens_range_is_refused(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = token_session(station).module
    low, high = station(module.mechanism_range, station.serial, "RSA_PKCS_KEY_PAIR_GEN")
    assert low is not None and high is not None and low <= 2048 and high >= 4096  # SoftHSM
    monkeypatch.setattr(module, "mechanism_range", lambda serial, mechanism: (1024, 2048))
    spy = spy_on(station, monkeypatch)
    with pytest.raises(UnsupportedAlgorithm, match="1024-2048 bits"):
        station(station.ws.keys.generate, TOKEN, Algorithm.RSA_3072, "big")
    assert spy.generated == []
    assert station.key_count() == 0


# --- a token that does not do what the template says --------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "purpose", "part", "attribute"),
    [
        (Algorithm.AES_256, Purpose.ENCRYPTION, "secret", Attribute.WRAP),  # gains a use
        (Algorithm.AES_128, Purpose.MAC, "secret", Attribute.EXTRACTABLE),  # becomes exportable
        (Algorithm.EC_P256, Purpose.SIGNING, "private", Attribute.SIGN),  # loses its use
        (Algorithm.RSA_2048, Purpose.SIGNING, "public", Attribute.ENCRYPT),  # public gains one
    ],
    ids=["AES gains WRAP", "AES becomes EXTRACTABLE", "EC loses SIGN", "RSA public ENCRYPT"],
)
def test_a_key_unlike_its_template_is_destroyed(
    station: Station,
    monkeypatch: pytest.MonkeyPatch,
    algorithm: Algorithm,
    purpose: Purpose,
    part: str,
    attribute: Attribute,
) -> None:
    session = token_session(station)
    sloppy = SloppyToken(session._session, station, part, attribute)
    monkeypatch.setattr(session, "_session", sloppy)
    before = peer_keys(station.home)
    with pytest.raises(TemplateMismatch, match=attribute.name) as caught:
        station(station.ws.keys.generate, TOKEN, algorithm, "sloppy", purpose)
    assert "destroyed" in caught.value.message
    [cka_id] = sloppy.generated
    assert cka_id in sloppy.seen_on_token  # the token really made it...
    after = peer_keys(station.home)
    assert cka_id not in {o.cka_id for o in after}  # ...and it is gone again
    assert "sloppy" not in {o.label for o in after}
    assert after == before
    assert station.key_count() == 0
    assert_failed_event(station, "sloppy", attribute.name)


# --- the database fails after the token made the key ----------------------------------------


def test_a_failed_insert_destroys_the_new_token_object(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on(station, monkeypatch)
    repo = station.ws.keys.repo

    def disk_full(key: KeyRecord, spki: bytes | None) -> None:
        raise DiskFull("The disk is full; the change was not saved.")

    monkeypatch.setattr(repo, "insert", disk_full)
    before = peer_keys(station.home)
    with pytest.raises(DiskFull):
        station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "orphan")
    [cka_id] = spy.generated
    assert cka_id not in {o.cka_id for o in peer_keys(station.home)}
    assert peer_keys(station.home) == before
    monkeypatch.undo()
    assert station.key_count() == 0
    details = assert_failed_event(station, "orphan", "disk is full")
    assert details["token_object"] == "destroyed"


def test_a_name_taken_between_check_and_insert_destroys_the_new_token_object(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer records the same name while the token generates: the database's UNIQUE
    constraint refuses the insert. That is a refused change, not a damaged database."""
    session = token_session(station)
    spy = SessionSpy(session._session)
    monkeypatch.setattr(session, "_session", spy)
    real_generate = session.generate
    db = station.ws.db
    rival = KeyRecord(
        id=str(uuid.uuid4()),
        name="contested",
        algorithm=Algorithm.AES_128,
        purpose=Purpose.ENCRYPTION,
        state=KeyState.PRE_ACTIVE,
        token_serial=station.serial,
        token_label=TOKEN,
        cka_id="ff" * 16,
        extractable=False,
        kcv="000000",
        fingerprint=None,
        created_at=station.clock.now,
        created_by="someone else",
    )

    def generate_then_race(spec: Any) -> Any:
        generated = real_generate(spec)
        with db.transaction():
            KeyRepository(db).insert(rival, None)
        return generated

    monkeypatch.setattr(session, "generate", generate_then_race)
    before = peer_keys(station.home)
    with pytest.raises(StorageError) as caught:
        station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "contested")
    assert not isinstance(caught.value, DatabaseDamaged), caught.value.message
    [cka_id] = spy.generated
    assert cka_id not in {o.cka_id for o in peer_keys(station.home)}
    assert peer_keys(station.home) == before
    monkeypatch.undo()
    assert station(station.ws.keys.resolve, "contested") == rival  # the rival's record stays
    assert station.key_count() == 1
    assert assert_failed_event(station, "contested")["token_object"] == "destroyed"
    # The database is fine: the next generation works.
    station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "next")
    assert station.key_count() == 2


def test_a_backup_able_key_no_backup_can_wrap_is_refused_probed_or_not(station: Station) -> None:
    """Outside testers: ``--backup-able`` on Ed25519 was accepted although the backup can never
    wrap it (SoftHSM answers CKR_KEY_NOT_WRAPPABLE). The backup's own rule refuses it at
    generation, before the token is asked, with or without a capability probe."""
    ws = station.ws
    count = station.key_count()
    before = peer_keys(station.home)
    with pytest.raises(UnsupportedAlgorithm, match="An ED25519 key cannot be made backup-able"):
        station(ws.keys.generate, TOKEN, Algorithm.ED25519, "ed-early", None, True)
    caps = station(ws.inspect.capabilities, TOKEN)
    assert caps.private_key_wrap["Ed25519"] is False  # SoftHSM 2.6.1 (DESIGN.md)
    with pytest.raises(UnsupportedAlgorithm, match="cannot be made backup-able"):
        station(ws.keys.generate, TOKEN, Algorithm.ED25519, "ed-backup", None, True)
    assert station.key_count() == count
    assert peer_keys(station.home) == before  # nothing was made on the token
    # Not backed up, or a family the backup can wrap: both fine.
    station(ws.keys.generate, TOKEN, Algorithm.ED25519, "ed-local")
    station(ws.keys.generate, TOKEN, Algorithm.EC_P256, "ec-backup", None, True)
    assert station.key_count() == count + 2
