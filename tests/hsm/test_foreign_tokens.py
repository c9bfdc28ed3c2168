"""Tokens written by other tools (DESIGN.md "Keys and tokens"): objects made with pkcs11-tool the
way other software makes them are each listed honestly, one odd object never breaks a listing,
and no action on one key touches an object that was not adopted as part of it."""

from __future__ import annotations

import pytest

from app.domain.keys import Presence
from tests.hsm.kit import TOKEN, Station, pkcs11_tool

pytestmark = pytest.mark.hsm


def p11(station: Station, *args: str | bytes) -> str:
    """pkcs11-tool on the test token (arguments may be raw bytes, as a shell passes them)."""
    return pkcs11_tool(station.home, "--token-label", TOKEN, *args)


def unmanaged(station: Station) -> list:  # type: ignore[type-arg]
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
