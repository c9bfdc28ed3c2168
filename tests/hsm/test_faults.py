"""Token faults at every step of generate, destroy and user PIN change, and the PIN states
SoftHSM never reaches, through the fault-injecting wrapper (tests/hsm/faults.py) around the real
python-pkcs11 objects on SoftHSM.

After every injected fault: a Keystead error with words for a person (never a raw PKCS#11
exception, never "Unmapped error code"); the database as it was; no object on the token that
was not there before (checked through a fresh session outside the wrappers); a failed entry for
the operation; and an audit log that still verifies. A stale session handle
(CKR_SESSION_HANDLE_INVALID) is recovered once and the operation then succeeds exactly once.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.domain.algorithms import Algorithm
from app.domain.keys import KeyRecord, KeyState, Presence
from app.domain.lifecycle import Action
from app.errors import (
    KeysteadError,
    PinLocked,
    TokenError,
    TokenNotLoggedIn,
    TokenRemoved,
    WrongPin,
)
from app.hsm.module import _serial_text
from app.hsm.session import PinState
from app.storage.events import StoredEvent
from tests.hsm.faults import (
    AFTER,
    BEFORE,
    CKF_USER_PIN_COUNT_LOW,
    CKF_USER_PIN_FINAL_TRY,
    CKF_USER_PIN_LOCKED,
    CKF_USER_PIN_TO_BE_CHANGED,
    LOST_HANDLE,
    Faults,
    install,
    token_objects,
    uninstall,
)
from tests.hsm.kit import MODULE, PIN, TOKEN, WRONG_PIN, Station
from tests.support import enrol_witness

pytestmark = pytest.mark.hsm

NEW_PIN = "SENTINEL-newpin-5b5b"
# Codes after which the session is reopened once and the call tried again (the token is still
# there here, and the login is kept by the module): the operation must then succeed once.
RECOVERED = ("CKR_SESSION_HANDLE_INVALID", "CKR_DEVICE_REMOVED")
Objects = Counter[tuple[str, str, str]]

# What each injected CKR code must become, and words its message must carry.
EXPECTED: dict[str, tuple[type[KeysteadError], str]] = {
    "CKR_DEVICE_REMOVED": (TokenRemoved, "removed"),  # where it is not recovered (PIN change)
    "CKR_TOKEN_NOT_PRESENT": (TokenRemoved, "removed"),
    "CKR_DEVICE_ERROR": (TokenRemoved, "stopped answering"),
    "CKR_GENERAL_ERROR": (TokenError, "CKR_GENERAL_ERROR"),
    "CKR_DEVICE_MEMORY": (TokenError, "out of memory"),
    "CKR_USER_NOT_LOGGED_IN": (TokenNotLoggedIn, "Log in"),
    "CKR_FUNCTION_FAILED": (TokenError, "CKR_FUNCTION_FAILED"),
    "CKR_ACTION_PROHIBITED": (TokenError, "CKR_ACTION_PROHIBITED"),
}
CODES = [*EXPECTED, *(c for c in RECOVERED if c not in EXPECTED)]

# The PKCS#11 calls of each operation, in order (test_each_operation_makes_the_calls_in_the_table
# proves these are all of them, so every step below is a step that happens).
# Every token write first seals its write-ahead intent (app/services/intents.py).
GENERATE_STEPS = {
    Algorithm.AES_256: ["sign", "generate_key", "get_attributes", "sign"],
    # read back private, read back public, read the public point for the SPKI, seal the entry
    Algorithm.EC_P256: [
        "sign",
        "generate_keypair",
        "get_attributes",
        "get_attributes",
        "get_attributes",
        "sign",
    ],
}
# Destroy first reads what it will destroy (for its entry; an ambiguous key is refused before
# anything is written), seals its write-ahead intent, seals the entry inside the transaction,
# then finds exactly the key's objects again and destroys them (the public half first, the key
# itself last).
DESTROY_STEPS = {
    Algorithm.AES_256: [
        "get_objects",
        "get_attributes",
        "sign",
        "sign",
        "get_objects",
        "get_attributes",
        "destroy",
    ],
    Algorithm.EC_P256: [
        "get_objects",
        "get_attributes",
        "get_attributes",
        "sign",
        "sign",
        "get_objects",
        "get_attributes",
        "get_attributes",
        "destroy",
        "destroy",
    ],
}
CHANGE_PIN_STEPS = ["sign", "sign", "set_pin"]


def numbered(calls: list[str]) -> list[tuple[str, int]]:
    """['a', 'b', 'a'] -> [('a', 1), ('b', 1), ('a', 2)]: each call by name and its count.
    The first ``sign``, sealing the write-ahead intent, is left out: a fault there leaves the
    marker unsealed and the operation goes on (``test_a_fault_sealing_the_intent_...``). It is
    the first step of most operations; destroy reads the key's objects before it."""
    steps = [(call, calls[: i + 1].count(call)) for i, call in enumerate(calls)]
    return [step for step in steps if step != ("sign", 1)]


def cases(steps: dict[Algorithm, list[str]]) -> list[tuple[Algorithm, str, int]]:
    return [(a, call, nth) for a, calls in steps.items() for call, nth in numbered(calls)]


def case_id(value: object) -> str:
    return value.value if isinstance(value, Algorithm) else str(value)


# --- the harness -------------------------------------------------------------------------------


@pytest.fixture
def faults(station: Station) -> Iterator[Faults]:
    """The wrappers under the logged-in session of the test token and under its module."""
    station(enrol_witness, station.ws)  # dual control's second person, before calls count
    session = station(station.ws.tokens.session, TOKEN)
    installed: Faults = station(install, session)
    yield installed
    station(uninstall, installed)


@dataclass(frozen=True)
class Snapshot:
    records: dict[str, KeyRecord]  # key id -> the whole record (state, dates, token sync...)
    objects: Objects  # (class, CKA_ID hex, label) on the token, counted
    events: int


def snapshot(station: Station, faults: Faults) -> Snapshot:
    records = {k.id: k for k in station(station.ws.keys.repo.all)}
    return Snapshot(records, objects(station, faults), len(station.events()))


def objects(station: Station, faults: Faults) -> Objects:
    found: Objects = station(token_objects, faults, station.serial)
    return found


def of_key(found: Objects, cka_id: str) -> list[str]:
    """The classes of the objects with this CKA_ID, one entry per object."""
    return sorted(cls for (cls, oid, _label), n in found.items() if oid == cka_id for _ in range(n))


def without_key(found: Objects, cka_id: str) -> Objects:
    return Counter({o: n for o, n in found.items() if o[1] != cka_id})


def new_events(station: Station, before: Snapshot) -> list[StoredEvent]:
    return station.events()[before.events :]


def assert_clear_error(error: BaseException, code: str) -> None:
    kind, words = EXPECTED[code]
    assert isinstance(error, kind), (type(error), error)
    text = str(error)
    assert "Unmapped" not in text and words in text, text
    assert not type(error).__module__.startswith("pkcs11")


def assert_verifies(station: Station) -> None:
    report = station(station.ws.audit.verify)
    assert report.ok, report


def assert_failed_cleanly(
    station: Station,
    faults: Faults,
    before: Snapshot,
    error: BaseException,
    code: str,
    action: str,
) -> None:
    """The error is Keystead's, the database and the token are as before, the try is recorded
    as failed and the log verifies."""
    assert faults.fired, "the planned fault never fired: the step is not in the operation"
    assert_clear_error(error, code)
    after = snapshot(station, faults)
    assert after.records == before.records
    assert after.objects == before.objects, (
        after.objects - before.objects,
        before.objects - after.objects,
    )
    outcomes = [e.outcome for e in new_events(station, before) if e.action == action]
    assert outcomes and outcomes[-1] in ("failed", "aborted"), outcomes
    assert "success" not in outcomes
    assert_verifies(station)
    if code == "CKR_USER_NOT_LOGGED_IN":  # the token says the login is gone: ask for the PIN
        with pytest.raises(TokenNotLoggedIn):
            station(station.ws.tokens.session, TOKEN)
        assert station.events("token.session-lost")


def generated_once(station: Station, faults: Faults, before: Snapshot, key: KeyRecord) -> None:
    """One new record, one new key on the token (with its public half), one success entry."""
    after = snapshot(station, faults)
    assert set(after.records) - set(before.records) == {key.id}
    assert without_key(after.objects, key.cka_id) == before.objects
    expected = ["SECRET_KEY"] if key.algorithm.symmetric else ["PRIVATE_KEY", "PUBLIC_KEY"]
    assert of_key(after.objects, key.cka_id) == expected  # one key, not two with one CKA_ID
    outcomes = [e.outcome for e in new_events(station, before) if e.action == "key.generate"]
    assert outcomes == ["success"]
    assert_verifies(station)


# --- the table is the whole operation ----------------------------------------------------------


def test_each_operation_makes_the_calls_in_the_table(station: Station, faults: Faults) -> None:
    ws = station.ws
    made = {}
    for algorithm, steps in GENERATE_STEPS.items():
        faults.reset()
        made[algorithm] = station(ws.keys.generate, TOKEN, algorithm, f"k-{algorithm.value}")
        assert faults.calls == steps
    for algorithm, steps in DESTROY_STEPS.items():
        key = made[algorithm]
        station(ws.lifecycle.transition, key.id, Action.ACTIVATE)
        station(ws.lifecycle.transition, key.id, Action.DEACTIVATE, "retired")
        faults.reset()
        station(ws.lifecycle.transition, key.id, Action.DESTROY, confirm_name=key.name)
        assert faults.calls == steps
    faults.reset()
    station(ws.admin.change_pin, TOKEN, PIN, NEW_PIN)
    assert faults.calls == CHANGE_PIN_STEPS


# --- generate ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize(("algorithm", "call", "nth"), cases(GENERATE_STEPS), ids=case_id)
def test_generate_fault_before_each_step(
    station: Station, faults: Faults, algorithm: Algorithm, call: str, nth: int, code: str
) -> None:
    before = snapshot(station, faults)
    faults.arm(call, code, nth, BEFORE)
    if code in RECOVERED:
        key = station(station.ws.keys.generate, TOKEN, algorithm, "vault-kek")
        assert faults.fired
        generated_once(station, faults, before, key)
        return
    with pytest.raises(KeysteadError) as caught:
        station(station.ws.keys.generate, TOKEN, algorithm, "vault-kek")
    assert_failed_cleanly(station, faults, before, caught.value, code, "key.generate")


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("algorithm", list(GENERATE_STEPS), ids=case_id)
def test_generate_answer_lost_after_the_token_made_the_key(
    station: Station, faults: Faults, algorithm: Algorithm, code: str
) -> None:
    """The token made the key and the answer was lost: Keystead finds the new objects by the
    CKA_ID it chose and destroys them (or, on a stale handle, does so and generates again)."""
    before = snapshot(station, faults)
    faults.arm(GENERATE_STEPS[algorithm][1], code, 1, AFTER)  # [0] seals the intent
    if code in RECOVERED:
        key = station(station.ws.keys.generate, TOKEN, algorithm, "vault-kek")
        generated_once(station, faults, before, key)
        return
    with pytest.raises(KeysteadError) as caught:
        station(station.ws.keys.generate, TOKEN, algorithm, "vault-kek")
    assert_failed_cleanly(station, faults, before, caught.value, code, "key.generate")
    failed = station.events("key.generate")[-1]
    assert failed.details["token_object"] == "none left"


@pytest.fixture
def keeper(station: Station, faults: Faults) -> Iterator[None]:
    """A second session of this process, as a backup job or a second window would hold: it
    keeps the login alive when the workstation's own session handle is really closed."""
    serial = station.serial

    def open_keeper() -> Any:
        for slot in faults.real_lib.get_slots(token_present=True):
            token = slot.get_token()
            if _serial_text(token.serial) == serial:
                return token.open(rw=True)
        raise AssertionError("no token")

    session = station(open_keeper)
    yield
    station(session.close)


@pytest.mark.parametrize(("algorithm", "call", "nth"), cases(GENERATE_STEPS), ids=case_id)
def test_generate_when_the_session_handle_really_goes_at_each_step(
    station: Station, faults: Faults, keeper: None, algorithm: Algorithm, call: str, nth: int
) -> None:
    """C_CloseSession behind Keystead's back just before the step: SoftHSM itself answers
    CKR_SESSION_HANDLE_INVALID, and nothing can be cleaned up through that handle. The retry on
    the reopened session first removes what the lost session made."""
    before = snapshot(station, faults)
    faults.arm(call, LOST_HANDLE, nth, BEFORE)
    key = station(station.ws.keys.generate, TOKEN, algorithm, "vault-kek")
    assert faults.fired
    generated_once(station, faults, before, key)


def test_a_key_made_just_before_the_login_went_is_removed_after_the_next_login(
    station: Station, faults: Faults
) -> None:
    """The only session's handle really goes after the token made the key: the login goes with
    it, so nothing can be looked for or destroyed. Keystead says to log in again, keeps the
    CKA_ID, and removes the object at the next look at the token after the login."""
    before = snapshot(station, faults)
    faults.arm("get_attributes", LOST_HANDLE, 1, BEFORE)  # the read-back
    with pytest.raises(TokenNotLoggedIn, match="Log in again"):
        station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "vault-kek")
    failed = station.events("key.generate")[-1]
    assert failed.outcome == "failed" and failed.details["token_object"] == "unknown"
    assert station.key_count() == 0
    with pytest.raises(TokenNotLoggedIn):
        station(station.ws.tokens.session, TOKEN)

    station(station.ws.tokens.login, TOKEN, PIN)  # the login itself settles what was left
    assert objects(station, faults) == before.objects
    items = station(station.ws.keys.inventory)
    assert not [i for i in items if i.presence is Presence.UNMANAGED]
    settled = station.events("key.generate")[-1]
    assert settled.outcome == "aborted" and settled.details["token_object"] == "destroyed"
    assert settled.details["cka_id"] == failed.details["cka_id"]
    assert_verifies(station)


def test_a_key_left_by_a_token_that_stopped_answering_is_removed_when_it_answers_again(
    station: Station, faults: Faults
) -> None:
    """The token made the key and then stopped answering (the cleanup's search fails too): the
    CKA_ID is remembered, and the object is destroyed when Keystead next sees the token."""
    before = snapshot(station, faults)
    faults.arm("generate_key", "CKR_DEVICE_ERROR", 1, AFTER)
    faults.arm("get_objects", "CKR_DEVICE_ERROR", 1, BEFORE)  # the search for the leftover
    with pytest.raises(TokenRemoved):
        station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "vault-kek")
    failed = station.events("key.generate")[-1]
    # TESTING.md: a token gone mid-operation leaves an "aborted" entry.
    assert failed.outcome == "aborted" and failed.details["token_object"] == "unknown"
    leftover = objects(station, faults) - before.objects
    assert {oid for _c, oid, _l in leftover} == {failed.details["cka_id"]}
    assert not before.objects - objects(station, faults)

    items = station(station.ws.keys.inventory)  # the token answers again
    assert not [i for i in items if i.presence is Presence.UNMANAGED]
    assert objects(station, faults) == before.objects
    settled = station.events("key.generate")[-1]
    assert settled.outcome == "aborted"
    assert settled.details["cka_id"] == failed.details["cka_id"]
    assert settled.details["token_object"] == "destroyed"
    assert station.key_count() == 0
    assert_verifies(station)


# --- destroy -----------------------------------------------------------------------------------


def deactivated(station: Station, algorithm: Algorithm) -> KeyRecord:
    ws = station.ws
    key: KeyRecord = station(ws.keys.generate, TOKEN, algorithm, "old-kek")
    station(ws.lifecycle.transition, key.id, Action.ACTIVATE)
    done: KeyRecord = station(ws.lifecycle.transition, key.id, Action.DEACTIVATE, "retired")
    return done


def destroy(station: Station, key: KeyRecord) -> KeyRecord:
    done: KeyRecord = station(
        station.ws.lifecycle.transition, key.id, Action.DESTROY, confirm_name=key.name
    )
    return done


def key_part(key: KeyRecord) -> str:
    return "SECRET_KEY" if key.algorithm.symmetric else "PRIVATE_KEY"


def expected_outcome(error: BaseException) -> str:
    """TESTING.md: a token gone mid-operation is recorded "aborted"; other failures "failed"."""
    return "aborted" if isinstance(error, TokenRemoved) else "failed"


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize(("algorithm", "call", "nth"), cases(DESTROY_STEPS), ids=case_id)
def test_destroy_fault_before_each_step(
    station: Station, faults: Faults, algorithm: Algorithm, call: str, nth: int, code: str
) -> None:
    key = deactivated(station, algorithm)
    before = snapshot(station, faults)
    faults.reset()
    faults.arm(call, code, nth, BEFORE)
    if code in RECOVERED:
        done = destroy(station, key)
        assert faults.fired
        assert done.state is KeyState.DESTROYED
        assert objects(station, faults) == without_key(before.objects, key.cka_id)
        outcomes = [e.outcome for e in new_events(station, before) if e.action == "key.destroy"]
        assert outcomes == ["success"]
        assert_verifies(station)
        return
    with pytest.raises(KeysteadError) as caught:
        destroy(station, key)
    assert faults.fired
    assert_clear_error(caught.value, code)
    after = snapshot(station, faults)
    assert after.records == before.records  # still deactivated
    # Nothing new on the token; the key itself is still there (only a public half may have
    # gone before the fault), so the record does not point at nothing.
    assert not after.objects - before.objects
    assert key_part(key) in of_key(after.objects, key.cka_id)
    outcomes = [e.outcome for e in new_events(station, before) if e.action == "key.destroy"]
    assert outcomes == [expected_outcome(caught.value)]
    assert_verifies(station)
    # Once the token answers, destroying again finishes the job.
    faults.disarm()
    assert destroy(station, key).state is KeyState.DESTROYED
    assert not of_key(objects(station, faults), key.cka_id)


@pytest.mark.parametrize("code", list(EXPECTED))
@pytest.mark.parametrize("algorithm", list(DESTROY_STEPS), ids=case_id)
def test_destroy_answer_lost_after_the_token_destroyed_the_key(
    station: Station, faults: Faults, algorithm: Algorithm, code: str
) -> None:
    """The last C_DestroyObject happened and its answer was lost: the key is gone from the
    token, so the record must say destroyed (noting the token's answer), not stay deactivated
    and point at nothing."""
    key = deactivated(station, algorithm)
    before = snapshot(station, faults)
    faults.reset()
    faults.arm("destroy", code, DESTROY_STEPS[algorithm].count("destroy"), AFTER)
    done = destroy(station, key)
    assert faults.fired
    assert done.state is KeyState.DESTROYED
    assert not of_key(objects(station, faults), key.cka_id)
    entry = [e for e in new_events(station, before) if e.action == "key.destroy"][-1]
    assert entry.outcome == "success"
    if code not in RECOVERED:  # else the reopened session's retry found the key already gone
        assert entry.details["token_answer"]
    assert_verifies(station)


@pytest.mark.parametrize(("algorithm", "call", "nth"), cases(DESTROY_STEPS), ids=case_id)
def test_destroy_when_the_session_handle_really_goes_at_each_step(
    station: Station, faults: Faults, keeper: None, algorithm: Algorithm, call: str, nth: int
) -> None:
    key = deactivated(station, algorithm)
    before = snapshot(station, faults)
    faults.reset()
    faults.arm(call, LOST_HANDLE, nth, BEFORE)
    assert destroy(station, key).state is KeyState.DESTROYED
    assert faults.fired
    assert objects(station, faults) == without_key(before.objects, key.cka_id)
    outcomes = [e.outcome for e in new_events(station, before) if e.action == "key.destroy"]
    assert outcomes == ["success"]
    assert_verifies(station)


# --- user PIN change ---------------------------------------------------------------------------


def peer_login(station: Station, pin: str) -> bool:
    """Does the token take this user PIN? Asked of pkcs11-tool, another process."""
    result = subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            MODULE,
            "--token-label",
            TOKEN,
            "--login",
            "--pin",
            pin,
            "--list-objects",
        ],
        env={"SOFTHSM2_CONF": str(station.home.softhsm_conf), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result.returncode == 0


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize(("call", "nth"), numbered(CHANGE_PIN_STEPS))
def test_change_pin_fault_at_each_step(
    station: Station, faults: Faults, call: str, nth: int, code: str
) -> None:
    before = snapshot(station, faults)
    faults.arm(call, code, nth, BEFORE)
    # A PIN change is retried only when the call cannot have reached the token; the audit
    # seal after it (sign) is retried like any repeatable call.
    if code == "CKR_SESSION_HANDLE_INVALID" or (code in RECOVERED and call != "set_pin"):
        station(station.ws.admin.change_pin, TOKEN, PIN, NEW_PIN)
        assert faults.fired
        assert peer_login(station, NEW_PIN) and not peer_login(station, PIN)
        outcomes = [
            e.outcome for e in new_events(station, before) if e.action == "token.change-pin"
        ]
        assert outcomes == ["success"]
        assert_verifies(station)
        return
    with pytest.raises(KeysteadError) as caught:
        station(station.ws.admin.change_pin, TOKEN, PIN, NEW_PIN)
    assert_failed_cleanly(station, faults, before, caught.value, code, "token.change-pin")
    assert peer_login(station, PIN) and not peer_login(station, NEW_PIN)


@pytest.mark.parametrize(("call", "nth"), numbered(CHANGE_PIN_STEPS))
def test_change_pin_when_the_session_handle_really_goes(
    station: Station, faults: Faults, keeper: None, call: str, nth: int
) -> None:
    """SoftHSM refuses C_SetPIN on the closed handle before doing anything, so the one retry
    on a reopened session changes the PIN exactly once."""
    before = snapshot(station, faults)
    faults.arm(call, LOST_HANDLE, nth, BEFORE)
    station(station.ws.admin.change_pin, TOKEN, PIN, NEW_PIN)
    assert faults.fired
    assert peer_login(station, NEW_PIN) and not peer_login(station, PIN)
    outcomes = [e.outcome for e in new_events(station, before) if e.action == "token.change-pin"]
    assert outcomes == ["success"]
    assert_verifies(station)


def test_change_pin_answer_lost_says_the_new_pin_may_be_in_force(
    station: Station, faults: Faults
) -> None:
    before = snapshot(station, faults)
    faults.arm("set_pin", "CKR_DEVICE_REMOVED", 1, AFTER)
    with pytest.raises(TokenRemoved, match="may have changed the PIN") as caught:
        station(station.ws.admin.change_pin, TOKEN, PIN, NEW_PIN)
    assert_failed_cleanly(
        station, faults, before, caught.value, "CKR_DEVICE_REMOVED", "token.change-pin"
    )
    assert peer_login(station, NEW_PIN)  # the token did change it


# --- PIN states SoftHSM never reaches ----------------------------------------------------------


@pytest.fixture
def logged_out(station: Station, faults: Faults) -> Faults:
    station(station.ws.tokens.logout, station.serial)
    faults.reset()
    return faults


def login_events(station: Station) -> list[StoredEvent]:
    return station.events("token.login")


def test_a_locked_pin_is_refused_before_c_login_and_recorded(
    station: Station, logged_out: Faults
) -> None:
    logged_out.flags_set = CKF_USER_PIN_LOCKED
    info = station(station.ws.tokens.find, TOKEN)
    assert PinState.of(info).locked and "user PIN locked" in info.flag_words
    with pytest.raises(PinLocked) as caught:
        station(station.ws.tokens.login, TOKEN, PIN)
    text = str(caught.value)
    assert "locked its user PIN" in text and "security officer" in text
    assert "keystead tokens init-pin" in text and "Set user PIN (SO)" in text
    assert logged_out.count("login") == 0  # C_Login was not called
    last = login_events(station)[-1]
    assert (last.outcome, last.details["reason"]) == ("denied", "user PIN locked")
    assert station(station.ws.tokens.tokens.pin_failures, station.serial)[0] == 0
    assert not station(station.ws.tokens.logged_in)


def test_the_token_answering_pin_locked_at_c_login_is_pin_locked(
    station: Station, logged_out: Faults
) -> None:
    logged_out.arm("login", "CKR_PIN_LOCKED")
    with pytest.raises(PinLocked, match="security officer must reset it"):
        station(station.ws.tokens.login, TOKEN, PIN)
    assert logged_out.fired
    last = login_events(station)[-1]
    assert (last.outcome, last.details["reason"]) == ("failed", "user PIN locked")
    assert station(station.ws.tokens.tokens.pin_failures, station.serial)[0] == 0
    assert not station(station.ws.tokens.logged_in)


def test_final_try_warns_that_one_more_wrong_pin_locks_and_the_login_goes_ahead(
    station: Station, logged_out: Faults
) -> None:
    logged_out.flags_set = CKF_USER_PIN_FINAL_TRY
    with pytest.raises(WrongPin, match="one more wrong PIN") as caught:
        station(station.ws.tokens.login, TOKEN, WRONG_PIN)
    assert caught.value.failures == 1
    assert logged_out.count("login") == 1  # the token was asked
    assert login_events(station)[-1].outcome == "failed"
    station(station.ws.tokens.login, TOKEN, PIN)
    assert station(station.ws.tokens.logged_in)


def test_count_low_is_mentioned_after_a_wrong_pin(station: Station, logged_out: Faults) -> None:
    logged_out.flags_set = CKF_USER_PIN_COUNT_LOW
    with pytest.raises(WrongPin, match="few user PIN tries left \\(user PIN count low\\)"):
        station(station.ws.tokens.login, TOKEN, WRONG_PIN)
    assert logged_out.count("login") == 1


def test_a_wrong_pin_that_makes_the_token_lock_says_so(
    station: Station, logged_out: Faults
) -> None:
    def lock() -> None:
        logged_out.flags_set = CKF_USER_PIN_LOCKED

    logged_out.flags_set = CKF_USER_PIN_FINAL_TRY
    logged_out.when_called("login", lock)
    with pytest.raises(PinLocked, match="locked its user PIN"):
        station(station.ws.tokens.login, TOKEN, WRONG_PIN)
    last = login_events(station)[-1]
    assert last.outcome == "failed" and last.details["failures"] == 1


def test_must_change_pin_logs_in_and_says_the_pin_must_be_changed(
    station: Station, logged_out: Faults
) -> None:
    logged_out.flags_set = CKF_USER_PIN_TO_BE_CHANGED
    info = station(station.ws.tokens.login, TOKEN, PIN)
    assert PinState.of(info).must_change
    assert "user PIN to be changed" in info.flag_words
    assert station(station.ws.tokens.logged_in)
    last = login_events(station)[-1]
    assert last.outcome == "success" and last.details["must_change_pin"] is True
    # And changing it works from here.
    station(station.ws.admin.change_pin, TOKEN, PIN, NEW_PIN)
    assert peer_login(station, NEW_PIN)


def test_a_fault_sealing_the_intent_leaves_the_marker_unsealed_and_goes_on(
    station: Station, faults: Faults
) -> None:
    """The intent's entry is a marker, allowed unsealed (as failures are): a fault while it is
    sealed does not stop the operation, and the generation itself is sealed as always."""
    before = snapshot(station, faults)
    faults.arm("sign", "CKR_DEVICE_ERROR", 1, BEFORE)
    key = station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "vault-kek")
    assert faults.fired
    generated_once(station, faults, before, key)
    begun = [e for e in new_events(station, before) if e.action == "intent.begin"]
    assert len(begun) == 1 and begun[0].mac is None
