"""Sessions that survive real faults, on real SoftHSM tokens: a token pulled mid-session (its
directory moved away), an operation in flight when it goes, re-insertion, a session handle the
module forgot, a login left over from before, slot ids that change, and two tokens at once."""

from __future__ import annotations

import ctypes
import shutil
from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm
from app.domain.keys import KeyState, Presence
from app.domain.lifecycle import Action
from app.errors import TokenNotLoggedIn, TokenNotPresent, TokenRemoved, WrongPin
from app.hsm.module import _function_list
from tests.hsm.kit import PIN, TOKEN, WRONG_PIN, Station

pytestmark = pytest.mark.hsm

OTHER = "Second"
OTHER_SO = "SENTINEL-so2-4d4d"
OTHER_PIN = "SENTINEL-pin2-6e6e"


def token_dir(station: Station, serial: str) -> Path:
    """SoftHSM names a token's directory after its serial (the uuid's last 16 hex digits)."""
    found = [
        p for p in station.home.softhsm_tokens.iterdir() if p.name.replace("-", "").endswith(serial)
    ]
    assert len(found) == 1, found
    return found[0]


def pull(station: Station, serial: str) -> tuple[Path, Path]:
    """Take the token out: move its directory where SoftHSM does not look."""
    where = token_dir(station, serial)
    away = station.home.root / "pulled" / where.name
    away.parent.mkdir(exist_ok=True)
    shutil.move(str(where), str(away))
    return away, where


def close_handle_behind_its_back(station: Station) -> None:
    """C_CloseSession on the workstation's session handle, as a module that dropped it."""
    session = station.ws.tokens.session(TOKEN)
    raw = session._session  # the python-pkcs11 session inside the adapter
    functions = _function_list(session.module.path)
    close = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong)(functions.C_CloseSession)
    assert close(raw.handle) == 0


def session_events(station: Station) -> list[str]:
    return [str(e.details["why"]) for e in station.events("token.session-lost")]


def test_a_pulled_token_is_noticed_its_session_ends_and_it_comes_back_whole(
    station: Station,
) -> None:
    ws = station.ws
    key = station(ws.keys.generate, TOKEN, Algorithm.AES_256, "vault-kek")
    assert station(ws.tokens.poll) is False  # the first look sets what is normal
    away, where = pull(station, station.serial)

    assert station(ws.tokens.poll) is True
    assert station.serial not in {t.serial for t in station(ws.tokens.present)}
    assert not station(ws.tokens.logged_in)
    assert session_events(station) == ["token removed"]
    with pytest.raises(TokenNotPresent, match="Insert it"):
        station(ws.tokens.session, station.serial)

    shutil.move(str(away), str(where))  # re-inserted
    assert station(ws.tokens.poll) is True
    assert station.serial in {t.serial for t in station(ws.tokens.present)}
    station(ws.tokens.login, TOKEN, PIN)
    items = station(ws.keys.inventory)
    managed = [i for i in items if i.record is not None]
    assert [i.record.id for i in managed] == [key.id]
    assert all(i.presence is Presence.PRESENT for i in managed)
    assert not [i for i in items if i.record is None]  # nothing orphaned
    report = station(ws.audit.verify)
    assert report.ok, report


def test_an_operation_in_flight_when_the_token_goes_fails_as_removed_and_changes_nothing(
    station: Station,
) -> None:
    ws = station.ws
    key = station(ws.keys.generate, TOKEN, Algorithm.AES_256, "vault-kek")
    station(ws.lifecycle.transition, key.id, Action.ACTIVATE)
    before = len(station.events())
    pull(station, station.serial)  # the workstation has not polled yet: it thinks all is well

    with pytest.raises(TokenRemoved):
        station(ws.lifecycle.transition, key.id, Action.SUSPEND, "audit")
    assert station(ws.keys.repo.get, key.id).state is KeyState.ACTIVE
    failed = [e for e in station.events()[before:] if not e.action.startswith("intent.")]
    # TESTING.md: a token removed mid-operation leaves an "aborted" entry; the write-ahead
    # intent stays pending until the token is back (the flags may have changed).
    assert [(e.action, e.outcome) for e in failed] == [("key.suspend", "aborted")]
    assert [i.action for i in station(ws.tokens.intents.pending)] == ["key.transition"]

    with pytest.raises(TokenNotPresent):  # the slot list no longer shows it
        station(ws.keys.generate, TOKEN, Algorithm.AES_128, "never-made")
    assert station(ws.keys.repo.by_name, "never-made") is None


def test_a_forgotten_session_handle_is_reopened_once_and_objects_found_again(
    station: Station,
) -> None:
    ws = station.ws
    key = station(ws.keys.generate, TOKEN, Algorithm.EC_P256, "signer")
    module = station(lambda: ws.tokens.session(TOKEN).module)
    # Another session of this process keeps the login alive (PKCS#11 logins belong to the
    # application, not the session), as a second window or a backup job would.
    keeper = station(lambda: module.token(station.serial).open(rw=True))
    try:
        station(close_handle_behind_its_back, station)
        objects = station(lambda: ws.tokens.session(TOKEN).key_objects())
        assert key.cka_id in {o.cka_id for o in objects}
        # Audit sealing uses the reopened session too (its cached handles were dropped).
        station(ws.lifecycle.transition, key.id, Action.ACTIVATE)
        assert station.events("key.activate")[-1].mac is not None
    finally:
        station(keeper.close)


def test_a_session_whose_login_went_with_it_asks_for_the_pin_again(station: Station) -> None:
    ws = station.ws
    station(close_handle_behind_its_back, station)  # the only session: the login ends too
    with pytest.raises(TokenNotLoggedIn, match="forgot the login"):
        station(lambda: ws.tokens.session(TOKEN).key_objects())
    with pytest.raises(TokenNotLoggedIn):
        station(ws.tokens.session, TOKEN)
    assert session_events(station) == ["the token forgot the login"]
    station(ws.tokens.login, TOKEN, PIN)
    assert station(lambda: ws.tokens.session(TOKEN).key_objects()) == []


def test_a_login_left_over_from_before_is_ended_and_the_pin_checked_again(
    station: Station,
) -> None:
    ws = station.ws
    module = station(lambda: ws.tokens.session(TOKEN).module)
    station(ws.tokens.logout, station.serial)
    # A login the workstation does not know of (as after a suspend/resume with a stale
    # session): the module answers C_Login with USER_ALREADY_LOGGED_IN.
    stale = station(lambda: module.token(station.serial).open(rw=True, user_pin=PIN))
    with pytest.raises(WrongPin):  # the PIN is still checked
        station(ws.tokens.login, TOKEN, WRONG_PIN)
    station(ws.tokens.login, TOKEN, PIN)
    assert station(lambda: ws.tokens.session(TOKEN).key_objects()) == []
    del stale


def test_two_tokens_at_once_and_slot_ids_that_change(station: Station) -> None:
    ws = station.ws
    second = station(ws.tokens.create_soft_token, OTHER, OTHER_SO, OTHER_PIN)
    station(ws.tokens.login, OTHER, OTHER_PIN)
    a = station(ws.keys.generate, TOKEN, Algorithm.AES_256, "on-first")
    b = station(ws.keys.generate, OTHER, Algorithm.AES_256, "on-second")
    items = {i.record.name: i for i in station(ws.keys.inventory) if i.record is not None}
    assert items["on-first"].record.token_serial == station.serial
    assert items["on-second"].record.token_serial == second.serial
    assert all(i.presence is Presence.PRESENT for i in items.values())

    slots_before = {t.serial: t.slot_id for t in station(ws.tokens.present)}
    station(ws.tokens.rescan)  # the module starts afresh; SoftHSM numbers its slots again
    slots_after = {t.serial: t.slot_id for t in station(ws.tokens.present)}
    assert set(slots_before) == set(slots_after)
    assert slots_before != slots_after, "SoftHSM kept the slot ids: the test proves nothing"
    station(ws.tokens.login, OTHER, OTHER_PIN)
    station(ws.tokens.login, TOKEN, PIN)
    items = {i.record.name: i for i in station(ws.keys.inventory) if i.record is not None}
    assert items["on-first"].presence is Presence.PRESENT
    assert items["on-second"].presence is Presence.PRESENT
    assert {a.id, b.id} == {i.record.id for i in items.values()}
