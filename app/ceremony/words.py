"""How a ceremony output is read aloud: hex identifiers (KCV, fingerprints, hashes, serials) as
PGP words, so a witness compares words rather than hex digits."""

from __future__ import annotations

import re

from app.domain.fingerprints import identifier_text, pgp_words

_HEX = re.compile(r"^(?:[0-9a-fA-F]{2}){3,64}$")


def spoken(value: str) -> list[str] | None:
    """The PGP words of ``value`` when it is an even-length hex identifier (3–64 bytes)."""
    text = value.strip()
    return pgp_words(bytes.fromhex(text)) if _HEX.match(text) else None


def grouped(value: str) -> str:
    """Hex identifiers as ``keys show`` shows them (``identifier_text``: a KCV in one piece,
    longer values in ``AB12:CD34`` groups), anything else as it is."""
    text = value.strip()
    return identifier_text(bytes.fromhex(text)) if _HEX.match(text) else value
