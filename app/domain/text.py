"""Text that came from a token (or any other untrusted source), made safe to show and store.

PKCS#11 says labels and token strings are UTF-8, but tokens written by other tools hold any
bytes. Everything Keystead reads from a token goes through ``safe_token_text`` once, where it
is read (``app/hsm``), so no later step can fail on it or be fooled by it:

- bytes that are not UTF-8 become ``\\xNN`` (never an exception, never a silent U+FFFD);
- control characters (C0, DEL, C1) and Unicode format characters that reorder or hide text
  (bidi embeddings/overrides/isolates U+202A-202E and U+2066-2069, marks U+200E/U+200F/U+061C,
  zero-width characters, everything of category Cf) become ``\\xNN``/``\\uNNNN``/``\\UNNNNNNNN``;
- a backslash becomes ``\\\\``, so an escape in the output always means an escaped character
  and never text that merely looks like one.

The result is printable, single-line, JSON- and SQLite-safe, and the same on every run.
``is_plain_text`` says whether the original needed no escaping (an adoption may then offer
the label as the key's name; otherwise the officer types one).
"""

from __future__ import annotations

import unicodedata

# Unicode categories shown escaped: controls, format characters (bidi, zero-width, ...),
# surrogates, private use and unassigned code points, line and paragraph separators; and every
# space other than U+0020 (a no-break or ideographic space looks like a space but is not one).
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape_char(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape_text(text: str) -> str:
    if text.isascii() and text.isprintable() and "\\" not in text:
        # The common case (labels, serials, models): printable ASCII has no character of an
        # escaped category and no space but U+0020, so it is its own escape.
        return text
    out: list[str] = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif unicodedata.category(char) in _ESCAPED_CATEGORIES or (
            char != " " and unicodedata.category(char) == "Zs"
        ):
            out.append(_escape_char(char))
        else:
            out.append(char)
    return "".join(out)


def safe_token_text(raw: bytes | bytearray | memoryview | str | None) -> str:
    """``raw`` (bytes from a token, or text already decoded by a library) as printable text.

    Never raises. Bytes are decoded as UTF-8; each byte that is not part of a valid UTF-8
    sequence becomes ``\\xNN``. Control, bidi and other invisible characters and the backslash
    are escaped as described in the module docstring. ``None`` gives ``""``.
    """
    if raw is None:
        return ""
    if isinstance(raw, str):
        return _escape_text(raw)
    data = bytes(raw)
    out: list[str] = []
    while data:
        try:
            out.append(_escape_text(data.decode("utf-8")))
            break
        except UnicodeDecodeError as exc:
            out.append(_escape_text(data[: exc.start].decode("utf-8")))
            out.extend(f"\\x{b:02x}" for b in data[exc.start : exc.end])
            data = data[exc.end :]
    return "".join(out)


def is_plain_text(raw: bytes | bytearray | memoryview | str | None) -> bool:
    """True if ``raw`` is valid UTF-8 that ``safe_token_text`` leaves unchanged."""
    if raw is None:
        return True
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return safe_token_text(text) == text
