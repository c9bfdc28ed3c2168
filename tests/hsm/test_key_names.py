"""Key names that read as another key's are refused, as operators' names are.

Outside tester (attack2 A8): 'pay', 'раy' (Cyrillic р and а) and 'PAY' were three keys side by
side, and the destroy approval of 'раy' showed "Key : раy", which reads as the live 'pay'."""

from __future__ import annotations

import pytest

from app.domain.algorithms import Algorithm
from app.errors import ValidationError
from tests.hsm.kit import TOKEN, Station

pytestmark = pytest.mark.hsm


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("\u0440\u0430y", "mixes Latin, Cyrillic or Greek"),  # Cyrillic р, а + Latin y
        ("PAY", "reads as the key 'pay'"),
        ("Pay", "reads as the key 'pay'"),
        ("\uff50\uff41\uff59", "compatibility characters"),  # full-width ｐａｙ
        ("pa\u03bd", "mixes Latin, Cyrillic or Greek"),  # Greek nu for v? (mixed either way)
    ],
)
def test_a_name_that_reads_as_another_key_is_refused(station: Station, name: str, why: str) -> None:
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "pay")
    before = station.key_count()
    with pytest.raises(ValidationError, match=why):
        station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, name)
    assert station.key_count() == before  # nothing made, on the token or in the records


def test_names_that_only_share_letters_are_kept_apart(station: Station) -> None:
    for name in ("pay", "pay-2", "payroll", "Zahlung-ä", "ключ-1"):  # one script each
        station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, name)
    assert station.key_count() == 5


def test_renaming_follows_the_same_rule(station: Station) -> None:
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "pay")
    other = station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "other")
    with pytest.raises(ValidationError, match="reads as the key 'pay'"):
        station(station.ws.lifecycle.edit, other.id, name="PAY")
    assert station(station.ws.keys.resolve, other.id).name == "other"
