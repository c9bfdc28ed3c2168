"""Pure domain rules: algorithms and purposes, names, passphrases, identifiers, PIN throttle."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.algorithms import (
    Algorithm,
    Purpose,
    Usage,
    allowed_purposes,
    default_purpose,
    parse_algorithm,
    parse_purpose,
    usage_for,
)
from app.domain.fingerprints import _EVEN, _ODD, hex_groups, pgp_words
from app.domain.names import MAX_NAME_LENGTH, validate_name, validate_new_passphrase
from app.errors import ValidationError
from app.services.tokens import backoff_seconds

U = Usage


@pytest.mark.parametrize(
    ("algorithm", "purpose", "private", "public"),
    [
        (Algorithm.AES_256, Purpose.ENCRYPTION, {U.DECRYPT}, {U.ENCRYPT}),
        (Algorithm.AES_128, Purpose.KEY_WRAPPING, {U.UNWRAP}, {U.WRAP}),
        (Algorithm.AES_192, Purpose.MAC, {U.SIGN}, {U.VERIFY}),
        (Algorithm.RSA_2048, Purpose.SIGNING, {U.SIGN}, {U.VERIFY}),
        (Algorithm.RSA_3072, Purpose.ENCRYPTION, {U.DECRYPT}, {U.ENCRYPT}),
        (Algorithm.RSA_4096, Purpose.KEY_WRAPPING, {U.UNWRAP}, {U.WRAP}),
        (Algorithm.EC_P256, Purpose.SIGNING, {U.SIGN}, {U.VERIFY}),
        (Algorithm.EC_P384, Purpose.SIGNING, {U.SIGN}, {U.VERIFY}),
        (Algorithm.ED25519, Purpose.SIGNING, {U.SIGN}, {U.VERIFY}),
    ],
)
def test_purpose_decides_exact_usage(
    algorithm: Algorithm, purpose: Purpose, private: set[Usage], public: set[Usage]
) -> None:
    plan = usage_for(algorithm, purpose)
    assert plan.private == private and plan.public == public
    assert U.DERIVE not in plan.secret


@pytest.mark.parametrize(
    ("algorithm", "purpose"),
    [
        (Algorithm.AES_256, Purpose.SIGNING),
        (Algorithm.EC_P256, Purpose.ENCRYPTION),
        (Algorithm.ED25519, Purpose.KEY_WRAPPING),
        (Algorithm.RSA_2048, Purpose.MAC),
        (Algorithm.EC_P384, Purpose.MAC),
    ],
)
def test_nonsense_pairs_are_refused(algorithm: Algorithm, purpose: Purpose) -> None:
    with pytest.raises(ValidationError, match="cannot be used for"):
        usage_for(algorithm, purpose)


def test_defaults_and_sizes() -> None:
    assert default_purpose(Algorithm.AES_128) is Purpose.ENCRYPTION
    assert default_purpose(Algorithm.RSA_4096) is Purpose.SIGNING
    assert allowed_purposes(Algorithm.ED25519) == (Purpose.SIGNING,)
    assert Algorithm.EC_P384.spec.size_label == "P-384"
    assert Algorithm.AES_192.spec.size_label == "192 bits"
    assert Algorithm.RSA_4096.spec.slow and not Algorithm.EC_P256.spec.slow


@given(st.sampled_from(list(Algorithm)), st.sampled_from(["lower", "upper", "pad"]))
def test_parse_algorithm_round_trip(algorithm: Algorithm, style: str) -> None:
    text = {
        "lower": algorithm.value.lower(),
        "upper": algorithm.value.upper(),
        "pad": f"  {algorithm.value} ",
    }[style]
    assert parse_algorithm(text) is algorithm


def test_parse_errors_list_the_choices() -> None:
    with pytest.raises(ValidationError, match="AES-128, AES-192"):
        parse_algorithm("DES3")
    with pytest.raises(ValidationError, match="key-wrapping"):
        parse_purpose("wrapping")
    assert parse_purpose("Key Wrapping") is Purpose.KEY_WRAPPING


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "x" * (MAX_NAME_LENGTH + 1),
        "a\x00b",
        "line\nbreak",
        "tab\there",
        "evil\u202eflip",
        "zero\u200bwidth",
    ],
)
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        validate_name(bad)


def test_names_are_trimmed_and_normalised() -> None:
    assert validate_name("  root-2026  ") == "root-2026"
    assert validate_name("Cafe\u0301") == "Caf\u00e9"
    assert validate_name("x" * MAX_NAME_LENGTH) == "x" * MAX_NAME_LENGTH


@given(st.text(max_size=80))
def test_validated_names_never_hold_control_characters(text: str) -> None:
    try:
        name = validate_name(text)
    except ValidationError:
        return
    assert name and len(name) <= MAX_NAME_LENGTH
    assert not any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in name)


def test_passphrase_rules() -> None:
    with pytest.raises(ValidationError, match="at least 12"):
        validate_new_passphrase("short", "short")
    with pytest.raises(ValidationError, match="differ"):
        validate_new_passphrase("long enough passphrase", "long enough passphrasE")
    with pytest.raises(ValidationError, match="at most 1024"):
        validate_new_passphrase("p" * 1025, "p" * 1025)
    validate_new_passphrase("p" * 1024, "p" * 1024)


def test_pgp_words_known_vector_and_lists() -> None:
    # The PGP word list's published example: E582 94F2 E9A2 2748 6E8B ...
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
    assert len(_EVEN) == len(_ODD) == 256
    assert not set(_EVEN) & set(_ODD)
    assert hex_groups(bytes.fromhex("c0ffee")) == "C0FF:EE"


def test_pin_backoff_grows_and_caps() -> None:
    assert [backoff_seconds(n) for n in range(6)] == [0, 0, 0, 5, 10, 20]
    assert backoff_seconds(30) == 300
