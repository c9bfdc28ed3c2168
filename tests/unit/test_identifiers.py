"""Identifiers people compare aloud: the PGP word list and hex groups; the PIN throttle."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.fingerprints import _EVEN, _ODD, hex_groups, pgp_words
from app.services.tokens import BACKOFF_BASE, BACKOFF_MAX, FREE_ATTEMPTS, backoff_seconds


def test_pgp_words_known_vectors() -> None:
    assert " ".join(pgp_words(bytes([0xE5, 0x82]))) == "topmost Istanbul"
    # The word list's published example fingerprint (E582 94F2 E9A2 2748 6E8B ...).
    assert pgp_words(bytes.fromhex("E58294F2E9A227486E8B")) == [
        "topmost",
        "Istanbul",
        "Pluto",
        "vagabond",
        "treadmill",
        "Pacific",
        "brackish",
        "dictator",
        "goldfish",
        "Medusa",
    ]
    # The ends of both lists, and the same byte read at an even and at an odd position.
    assert pgp_words(bytes([0x00, 0x00, 0xFF, 0xFF])) == [
        "aardvark",
        "adroitness",
        "Zulu",
        "Yucatan",
    ]
    assert pgp_words(b"") == []


def test_the_two_lists_have_256_distinct_words_each_and_share_none() -> None:
    assert len(_EVEN) == len(set(_EVEN)) == 256
    assert len(_ODD) == len(set(_ODD)) == 256
    assert not set(_EVEN) & set(_ODD)
    assert not {w.lower() for w in _EVEN} & {w.lower() for w in _ODD}
    assert all(w.isalpha() for w in _EVEN + _ODD)


DECODE = {**{(0, w): i for i, w in enumerate(_EVEN)}, **{(1, w): i for i, w in enumerate(_ODD)}}


@given(st.binary(max_size=40))
def test_pgp_words_read_back_to_the_bytes(data: bytes) -> None:
    """Each word decodes to one byte at its parity: a swapped pair of bytes sounds different."""
    words = pgp_words(data)
    assert len(words) == len(data)
    assert bytes(DECODE[(i % 2, w)] for i, w in enumerate(words)) == data


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (bytes.fromhex("c0ffee"), "C0FF:EE"),
        (bytes.fromhex("00112233"), "0011:2233"),
        (b"", ""),
    ],
)
def test_hex_groups(data: bytes, text: str) -> None:
    assert hex_groups(data) == text


def test_hex_groups_of_another_size() -> None:
    assert hex_groups(bytes(range(5)), group=1) == "00:01:02:03:04"


# --- Keystead's own wrong-PIN throttle (SoftHSM never locks) ----------------------------------


def test_backoff_schedule() -> None:
    assert (FREE_ATTEMPTS, BACKOFF_BASE, BACKOFF_MAX) == (3, 5.0, 300.0)
    assert [backoff_seconds(n) for n in range(10)] == [0, 0, 0, 5, 10, 20, 40, 80, 160, 300]
    assert backoff_seconds(10) == backoff_seconds(1000) == 300


@given(st.integers(min_value=0, max_value=10_000))
def test_backoff_never_shrinks_and_is_capped(failures: int) -> None:
    wait = backoff_seconds(failures)
    assert 0 <= wait <= BACKOFF_MAX
    assert backoff_seconds(failures + 1) >= wait
    assert (wait == 0) is (failures < FREE_ATTEMPTS)


def test_one_display_for_identifiers_everywhere() -> None:
    """Outside testers: the ceremony showed a KCV as 'ABC1:23' while keys show printed
    'ABC123'. One formatter: a KCV in one piece, longer values in 2-byte groups; the ceremony
    (CLI, GUI page, PDF) and keys show both use it."""
    from app.ceremony.words import grouped
    from app.domain.fingerprints import identifier_text

    assert identifier_text(bytes.fromhex("6af1ec")) == "6AF1EC"
    assert grouped("6af1ec") == "6AF1EC"
    fingerprint = bytes(range(32))
    assert identifier_text(fingerprint) == hex_groups(fingerprint)
    assert grouped(fingerprint.hex()) == hex_groups(fingerprint)
    assert grouped("not hex") == "not hex"
