"""The terminal boundary: everything the CLI prints is escaped, so text from people, files and
tokens (labels, reasons, token info strings) cannot drive the terminal.

Imported before the command line is parsed (usage errors echo what was typed), so it stays
light: no ``typing``, no ``json``."""

from __future__ import annotations

import io
import sys
import unicodedata

TYPE_CHECKING = False  # not typing's: importing typing is a measurable share of --help
if TYPE_CHECKING:
    from typing import Any

_KEEP = frozenset("\n")


def escape_text(text: str) -> str:
    """``text`` safe for a terminal: control, format (bidi), line and paragraph separator
    characters are shown escaped (``\\x1b``, ``\\u202e``); newlines stay. Never raises."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in _KEEP or unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp", "Cs"}:
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)


def one_line(text: str) -> str:
    """``text`` as one terminal line: escaped, with its newlines shown as ``\\n``."""
    return escape_text(text).replace("\n", "\\n")


class EscapingStream(io.TextIOBase):
    """A text stream that escapes what is written to it (``escape_text``): every word the
    CLI prints passes here, so reasons, labels and token strings cannot drive the terminal."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(escape_text(text))
        return len(text)

    def flush(self) -> None:
        self.raw.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return bool(self.raw.isatty())

    def fileno(self) -> int:
        return int(self.raw.fileno())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.raw, "encoding", "utf-8"))


# ECMA-48 CUP (home) + ED 2 (erase the display) + xterm's ED 3 (erase the scroll-back), so a
# custodian cannot scroll back to the previous custodian's share card.
CLEAR_SCREEN = "\033[H\033[2J\033[3J"


def clear_screen() -> None:
    """Clear the terminal and its scroll-back. The one control sequence Keystead sends on
    purpose: it is written past ``EscapingStream`` (which would print it as text, leaving the
    last share card on screen), to the real stdout, and flushed."""
    out = sys.stdout
    raw = out.raw if isinstance(out, EscapingStream) else out
    raw.write(CLEAR_SCREEN)
    raw.flush()
