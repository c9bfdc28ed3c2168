"""Tokens and logins on a real SoftHSM token: Keystead's own count of wrong PINs (SoftHSM never
locks), its throttle with an injected clock, the audit of every try, and choosing tokens by
label or serial."""

from __future__ import annotations

import subprocess

import pytest

from app.errors import PinBackoff, TokenNotPresent, ValidationError, WrongPin
from app.hsm.session import TokenSession
from tests.hsm.kit import (
    MODULE,
    OPERATOR,
    PIN,
    SECRETS,
    TOKEN,
    WRONG_PIN,
    Station,
    peer_keys,
)

pytestmark = pytest.mark.hsm


def logins(station: Station) -> list[tuple[str, int | None]]:
    """(outcome, failures) of every recorded login to the test token."""
    return [
        (e.outcome, e.details.get("failures"))
        for e in station.events("token.login")
        if e.subject == station.serial
    ]


def test_wrong_pins_are_counted_throttled_audited_and_survive_a_restart(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = station.clock
    station(station.ws.tokens.logout, station.serial)
    assert logins(station) == [("success", None)]  # the login at initialisation
    tries: list[str] = []
    real_login = TokenSession.login.__func__  # type: ignore[attr-defined]

    def counted(cls: type[TokenSession], module: object, info: object, pin: str) -> TokenSession:
        tries.append(pin)
        return real_login(cls, module, info, pin)  # type: ignore[no-any-return]

    monkeypatch.setattr(TokenSession, "login", classmethod(counted))

    for expected in (1, 2, 3):
        with pytest.raises(WrongPin) as caught:
            station(station.ws.tokens.login, TOKEN, WRONG_PIN)
        assert caught.value.failures == expected
        assert f"{expected} failure" in caught.value.message
    assert "waits 5 s" in caught.value.message
    assert len(tries) == 3  # each wrong PIN really went to the token

    # Throttled: even the right PIN is not tried, the clock has not moved.
    with pytest.raises(PinBackoff) as backoff:
        station(station.ws.tokens.login, TOKEN, PIN)
    assert backoff.value.retry_after == 5.0
    clock.advance(seconds=2)
    with pytest.raises(PinBackoff) as backoff:
        station(station.ws.tokens.login, TOKEN, PIN)
    assert backoff.value.retry_after == 3.0
    assert len(tries) == 3  # not sent to the token while throttled
    assert station(station.ws.tokens.logged_in) == []

    # The count lives in the database: it survives lock and unlock.
    station.unlock(login=False)
    [status] = station(station.ws.tokens.statuses)
    assert (status.info.serial, status.pin_failures, status.logged_in) == (station.serial, 3, False)
    with pytest.raises(PinBackoff):
        station(station.ws.tokens.login, TOKEN, PIN)

    clock.advance(seconds=3)  # 5 s after the third failure: one more try, and it is wrong
    with pytest.raises(WrongPin) as fourth:
        station(station.ws.tokens.login, TOKEN, WRONG_PIN)
    assert fourth.value.failures == 4 and "10 s" in fourth.value.message
    clock.advance(seconds=9)
    with pytest.raises(PinBackoff) as backoff:
        station(station.ws.tokens.login, TOKEN, PIN)
    assert backoff.value.retry_after == 1.0
    clock.advance(seconds=1)
    station(station.ws.tokens.login, TOKEN, PIN)  # the right PIN clears the count
    assert station(station.ws.tokens.statuses)[0].pin_failures == 0
    assert len(tries) == 5

    assert logins(station) == [
        ("success", None),
        ("failed", 1),
        ("failed", 2),
        ("failed", 3),
        ("denied", 3),
        ("denied", 3),
        ("denied", 3),
        ("failed", 4),
        ("denied", 4),
        ("success", None),
    ]
    for event in station.events("token.login"):
        assert event.operators == (OPERATOR,)
        for secret in SECRETS:
            assert secret not in repr(event.details)


def test_a_successful_login_resets_the_count(station: Station) -> None:
    station(station.ws.tokens.logout, station.serial)
    for _ in range(2):
        with pytest.raises(WrongPin):
            station(station.ws.tokens.login, TOKEN, WRONG_PIN)
    station(station.ws.tokens.login, TOKEN, PIN)
    station(station.ws.tokens.logout, station.serial)
    with pytest.raises(WrongPin) as caught:
        station(station.ws.tokens.login, TOKEN, WRONG_PIN)
    assert caught.value.failures == 1 and "2 more tries" in caught.value.message


def test_softhsm_itself_never_locks_the_pin(station: Station) -> None:
    """Why Keystead counts: after many wrong PINs SoftHSM still accepts the right one."""
    for _ in range(12):
        result = subprocess.run(
            [
                "pkcs11-tool",
                "--module",
                MODULE,
                "--token-label",
                TOKEN,
                "--login",
                "--pin",
                WRONG_PIN,
                "--list-objects",
            ],
            env={"SOFTHSM2_CONF": str(station.home.softhsm_conf), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            check=False,
        )
        assert result.returncode != 0
    assert peer_keys(station.home)  # the right PIN still logs in


def test_tokens_are_chosen_by_label_or_serial(station: Station) -> None:
    info = station(station.ws.tokens.find, TOKEN)
    assert info.serial == station.serial and info.label == TOKEN
    assert station(station.ws.tokens.find, station.serial) == info
    assert "token initialised" in info.flag_words and "login required" in info.flag_words
    with pytest.raises(TokenNotPresent, match="Insert it"):
        station(station.ws.tokens.find, "No Such Token")


def test_two_tokens_with_one_label_need_a_serial(station: Station) -> None:
    station(station.ws.tokens.create_soft_token, "Other", "87654321", "123456")
    with pytest.raises(ValidationError, match="already exists"):
        station(station.ws.tokens.create_soft_token, "Other", "87654321", "123456")
    # Another tool makes a second token with the test token's label (Keystead refuses to).
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--pin",
            "1111",
            "--so-pin",
            "22222222",
        ],
        env={"SOFTHSM2_CONF": str(station.home.softhsm_conf), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    station.unlock(login=False)
    tokens = station(station.ws.tokens.present)
    assert sorted(t.label for t in tokens) == sorted([TOKEN, TOKEN, "Other"])
    with pytest.raises(ValidationError, match=f"Several tokens are labelled '{TOKEN}'"):
        station(station.ws.tokens.find, TOKEN)
    for token in tokens:  # by serial, each one is unambiguous
        assert station(station.ws.tokens.find, token.serial) == token
    station(station.ws.tokens.login, station.serial, PIN)
