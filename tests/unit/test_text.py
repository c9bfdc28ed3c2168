"""Text from tokens: decoded without failing, controls and bidi characters shown escaped."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.text import is_plain_text, safe_token_text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"bad\xff\xfelabel", "bad\\xff\\xfelabel"),  # the label: not UTF-8
        (b"caf\xc3\xa9", "café"),
        (b"cut\xc3", "cut\\xc3"),  # a sequence cut short at the end
        (b"\xed\xa0\x80x", "\\xed\\xa0\\x80x"),  # an encoded surrogate is not UTF-8
        ("evil\u202egnp.exe".encode(), "evil\\u202egnp.exe"),  # right-to-left override
        ("a\u2066b\u2069".encode(), "a\\u2066b\\u2069"),  # bidi isolates
        ("zero\u200bwidth".encode(), "zero\\u200bwidth"),
        (b"bell\x07\x1b[31mred", "bell\\x07\\x1b[31mred"),  # terminal escape sequence
        (b"two\nlines\r", "two\\x0alines\\x0d"),
        ("c1\x9bx".encode(), "c1\\x9bx"),  # a C1 control (CSI) encoded as UTF-8
        (b"back\\slash", "back\\\\slash"),
        ("no\u00a0break".encode(), "no\\xa0break"),
        ("", ""),
        (None, ""),
    ],
)
def test_token_text_is_decoded_and_escaped(raw: bytes | None, shown: str) -> None:
    assert safe_token_text(raw) == shown


def test_plain_text_is_left_alone() -> None:
    assert is_plain_text(b"my key 1") and safe_token_text("my key 1") == "my key 1"
    assert not is_plain_text(b"bad\xff")
    assert not is_plain_text("rtl\u202e")
    assert not is_plain_text("a\\b")


@given(st.binary(max_size=64))
def test_any_bytes_give_printable_single_line_text(raw: bytes) -> None:
    shown = safe_token_text(raw)
    assert shown.isprintable() or shown == ""
    json.dumps(shown).encode("utf-8")  # JSON- and UTF-8-safe (no lone surrogates)
    assert safe_token_text(raw) == shown  # the same on every run


@given(st.text(max_size=32))
def test_escaping_is_unambiguous(text: str) -> None:
    """Two different texts never look the same once escaped."""
    assert safe_token_text(text + "x") != safe_token_text(text + "\\x")


def _documented(text: str) -> str:
    """The module docstring's rule, character by character (the oracle for the fast path)."""
    out = []
    for char in text:
        category = unicodedata.category(char)
        if char == "\\":
            out.append("\\\\")
        elif category in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"} or (
            category == "Zs" and char != " "
        ):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


@pytest.mark.parametrize("code", range(128))
def test_each_ascii_character_is_escaped_by_the_documented_rule(code: int) -> None:
    # Printable ASCII takes a fast path (returned as it is): the same answer as the rule.
    text = f"label {chr(code)} end"
    assert safe_token_text(text) == _documented(text)
    assert safe_token_text(text.encode()) == _documented(text)


@given(st.text(alphabet=st.characters(max_codepoint=0x2100), max_size=40))
def test_text_is_escaped_by_the_documented_rule(text: str) -> None:
    assert safe_token_text(text) == _documented(text)
