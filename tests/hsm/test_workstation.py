"""Initialising, unlocking and locking a workstation; operators with their own keyslots."""

from __future__ import annotations

import os

import pytest

from app.domain.algorithms import Algorithm
from app.errors import ValidationError, WorkstationExists, WrongPassphrase
from app.hsm.module import _LIBRARIES
from app.services.workstation import SoftTokenRequest, Workstation
from tests.hsm.kit import (
    FAST_KDF,
    MODULE,
    OPERATOR,
    PASSPHRASE,
    PIN,
    SO_PIN,
    TOKEN,
    Station,
    files_under,
)

pytestmark = pytest.mark.hsm

SECOND = "second officer"
SECOND_PASSPHRASE = "SENTINEL-second-passphrase-55"


def test_initialize_creates_the_home_the_token_and_the_record(station: Station) -> None:
    home = station.home
    assert home.exists() and home.database.is_file() and home.keyslots.is_file()
    conf = home.softhsm_conf.read_text()
    assert f"directories.tokendir = {home.softhsm_tokens}" in conf
    assert "objectstore.backend = file" in conf
    assert os.environ["SOFTHSM2_CONF"] == str(home.softhsm_conf)
    assert Workstation.operators(home) == [OPERATOR]
    [token] = station(station.ws.tokens.present)
    assert (token.label, token.serial, token.module_path) == (TOKEN, station.serial, MODULE)
    assert "user PIN initialised" in token.flag_words
    assert station(station.ws.settings.modules) == [(MODULE, True)]
    first = station.events()[0]
    assert (first.action, first.outcome, first.operators) == (
        "workstation.initialize",
        "success",
        (OPERATOR,),
    )
    [created] = station.events("token.create-soft")
    assert (created.outcome, created.subject, created.details) == (
        "success",
        station.serial,
        {"label": TOKEN},
    )


def test_initialize_twice_is_refused_and_changes_nothing(station: Station) -> None:
    station.lock()
    before = {p: p.read_bytes() for p in files_under(station.home.root)}
    with pytest.raises(WorkstationExists, match="already exists"):
        station(
            Workstation.initialize,
            station.home,
            "another",
            "another passphrase",
            "another passphrase",
            cost=FAST_KDF,
        )
    assert {p: p.read_bytes() for p in files_under(station.home.root)} == before
    station.unlock()


@pytest.mark.parametrize(
    ("operator", "passphrase", "confirmation", "error"),
    [
        ("", PASSPHRASE, PASSPHRASE, "Operator name is empty"),
        ("bad\nname", PASSPHRASE, PASSPHRASE, "control"),
        (OPERATOR, "too short", "too short", "at least 12"),
        (OPERATOR, PASSPHRASE, PASSPHRASE + "!", "differ"),
    ],
    ids=["empty operator", "control in operator", "short passphrase", "unconfirmed"],
)
def test_initialize_refuses_bad_input_before_creating_anything(
    bare_station: Station, operator: str, passphrase: str, confirmation: str, error: str
) -> None:
    with pytest.raises(ValidationError, match=error):
        bare_station(
            Workstation.initialize,
            bare_station.home,
            operator,
            passphrase,
            confirmation,
            SoftTokenRequest(TOKEN, SO_PIN, PIN),
            cost=FAST_KDF,
        )
    assert not bare_station.home.exists()


@pytest.mark.parametrize(
    ("label", "so_pin", "pin", "error"),
    [
        (TOKEN, "123", PIN, "SO PIN"),
        (TOKEN, SO_PIN, "12", "user PIN"),
        (TOKEN, SO_PIN, "p" * 256, "user PIN"),
        ("L" * 33, SO_PIN, PIN, "32 bytes"),
    ],
    ids=["short SO PIN", "short user PIN", "long user PIN", "long label"],
)
def test_a_refused_soft_token_leaves_no_half_made_workstation(
    bare_station: Station, label: str, so_pin: str, pin: str, error: str
) -> None:
    """Refused before anything is written: the same home can be initialised right after, and
    no module is left initialised (the autouse guard would fail this test)."""
    with pytest.raises(ValidationError, match=error):
        bare_station(
            Workstation.initialize,
            bare_station.home,
            OPERATOR,
            PASSPHRASE,
            PASSPHRASE,
            SoftTokenRequest(label, so_pin, pin),
            cost=FAST_KDF,
        )
    assert not bare_station.home.exists()
    assert not any(lib.initialized for lib in _LIBRARIES.values())
    bare_station.initialize()
    assert station_token_labels(bare_station) == [TOKEN]


def station_token_labels(station: Station) -> list[str]:
    return [t.label for t in station(station.ws.tokens.present)]


def test_a_workstation_without_an_embedded_token(bare_station: Station) -> None:
    ws = bare_station.initialize(soft_token=False)
    assert bare_station(ws.tokens.present) == []
    assert bare_station(ws.settings.modules) == [(MODULE, True)]  # the module is there
    bare_station.unlock(login=False)


def test_two_operators_each_open_with_their_own_passphrase(station: Station) -> None:
    key = station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "shared")
    station(station.ws.add_operator, SECOND, SECOND_PASSPHRASE, SECOND_PASSPHRASE, cost=FAST_KDF)
    [added] = station.events("operator.add", subject=f"operator:{SECOND}")
    assert (added.subject, added.operators, added.outcome) == (
        f"operator:{SECOND}",
        (OPERATOR,),
        "success",
    )
    with pytest.raises(ValidationError, match="already exists"):
        station(station.ws.add_operator, SECOND, "another passphrase", "another passphrase")
    assert Workstation.operators(station.home) == [OPERATOR, SECOND]

    ws = station.unlock(SECOND, SECOND_PASSPHRASE)
    assert ws.operator == SECOND
    assert station(ws.keys.resolve, "shared") == key  # the same database
    unlocked = station.events("workstation.unlock")[-1]
    assert unlocked.operators == (SECOND,)

    station.lock()
    with pytest.raises(WrongPassphrase):
        station(Workstation.unlock, station.home, SECOND, PASSPHRASE)
    with pytest.raises(WrongPassphrase):
        station(Workstation.unlock, station.home, OPERATOR, SECOND_PASSPHRASE)
    assert station.unlock(OPERATOR, PASSPHRASE).operator == OPERATOR


def test_a_new_operator_is_refused_a_weak_passphrase(station: Station) -> None:
    with pytest.raises(ValidationError, match="at least 12"):
        station(station.ws.add_operator, SECOND, "short", "short", cost=FAST_KDF)
    with pytest.raises(ValidationError, match="differ"):
        station(station.ws.add_operator, SECOND, SECOND_PASSPHRASE, "other", cost=FAST_KDF)
    assert Workstation.operators(station.home) == [OPERATOR]
    # Refused (and recorded as denied, naming the rule), never added.
    assert [e.outcome for e in station.events("operator.add", f"operator:{SECOND}")] == [
        "denied",
        "denied",
    ]


@pytest.mark.parametrize(
    "passphrase",
    [
        "quote \" and ' both, twice ''",
        "back\\slash\\es\\ and \\x00",
        "x'); DROP TABLE keys; PRAGMA key = 'y",
        "üñíçødé pässphrase ✓ 鍵 🔑",
        "k" * 1024,
    ],
)
def test_any_passphrase_opens_the_real_database(bare_station: Station, passphrase: str) -> None:
    """Quotes, backslashes, unicode and 1 KB: the passphrase never reaches SQL."""
    bare_station.initialize(soft_token=False, passphrase=passphrase)
    ws = bare_station.unlock(passphrase=passphrase, login=False)
    assert ws.operator == OPERATOR
    assert bare_station(ws.db.scalar, "SELECT count(*) FROM operators") == 1
    bare_station.lock()
    with pytest.raises(WrongPassphrase):
        bare_station(Workstation.unlock, bare_station.home, OPERATOR, passphrase[:-1])


def test_lock_closes_everything_and_records_it(station: Station) -> None:
    ws = station.ws
    station.lock()
    assert not any(lib.initialized for lib in _LIBRARIES.values())
    assert ws.tokens.logged_in() == [] and ws.tokens.modules == {}
    ws = station.unlock(login=False)
    assert station.events("workstation.lock")[-1].operators == (OPERATOR,)
    assert [e.action for e in station.events()][-1] == "workstation.unlock"
