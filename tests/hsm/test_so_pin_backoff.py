"""Wrong SO PINs are counted and throttled by Keystead like user PINs (SoftHSM never locks
either), with an injected clock; a right SO PIN clears the count."""

from __future__ import annotations

import json

import pytest

from app.errors import PinBackoff, WrongPin
from app.services.token_admin import so_counter
from app.services.tokens import FREE_ATTEMPTS
from tests.hsm.kit import SO_PIN, TOKEN, Station

pytestmark = pytest.mark.hsm

WRONG_SO = "SENTINEL-wrong-so-4040"
NEW_SO = "SENTINEL-new-so-5050"


def test_wrong_so_pins_back_off_and_a_right_one_clears(station: Station) -> None:
    admin = station.ws.admin
    serial = station.serial
    counter = so_counter(serial)
    for n in range(1, FREE_ATTEMPTS + 1):
        with pytest.raises(WrongPin, match=f"{n} wrong SO PIN"):
            station(admin.change_so_pin, TOKEN, WRONG_SO, NEW_SO)
    assert station(station.ws.tokens.tokens.pin_failures, counter)[0] == FREE_ATTEMPTS
    with pytest.raises(PinBackoff, match="wrong SO PINs in a row") as caught:
        station(admin.change_so_pin, TOKEN, SO_PIN, NEW_SO)  # refused untried, even if right
    assert caught.value.retry_after == 5
    station.clock.advance(seconds=5)
    station(admin.change_so_pin, TOKEN, SO_PIN, NEW_SO)
    assert station(station.ws.tokens.tokens.pin_failures, counter)[0] == 0
    outcomes = [
        (e.outcome, json.loads(e.details_json).get("failures"))
        for e in station.events("token.change-so-pin")
    ]
    assert outcomes == [
        ("failed", 1),
        ("failed", 2),
        ("failed", 3),
        ("denied", None),
        ("success", None),
    ]
    # The user PIN's own count is separate.
    assert station(station.ws.tokens.tokens.pin_failures, serial)[0] == 0
