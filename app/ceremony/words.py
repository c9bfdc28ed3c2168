"""How a ceremony output is read aloud: hex identifiers (KCV, fingerprints, hashes, serials) as
PGP words, so a witness compares words rather than hex digits."""

from __future__ import annotations

import re

from app.domain.fingerprints import hex_groups, pgp_words

_HEX = re.compile(r"^(?:[0-9a-fA-F]{2}){3,64}$")


def spoken(value: str) -> list[str] | None:
    """The PGP words of ``value`` when it is an even-length hex identifier (3–64 bytes)."""
    text = value.strip()
    return pgp_words(bytes.fromhex(text)) if _HEX.match(text) else None


def grouped(value: str) -> str:
    """Hex identifiers in groups (``AB12:CD34``), anything else as it is."""
    text = value.strip()
    return hex_groups(bytes.fromhex(text)) if _HEX.match(text) else value
