"""Rules for names people give to keys and operators, and for passphrases."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from app.errors import ValidationError

MAX_NAME_LENGTH = 64
MIN_PASSPHRASE_LENGTH = 12
MAX_PASSPHRASE_LENGTH = 1024


_NOT_SHOWABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def has_control(text: str) -> bool:
    """True if ``text`` holds a character that is shown escaped (``app.domain.text``): a
    control, format (bidi, zero-width), surrogate, private-use or unassigned character, a line
    or paragraph separator, or a space other than U+0020. The one rule for every name people
    give (keys, operators, token labels, certificate subjects, backup custodians), so a name
    always reads back as it was typed."""
    return any(
        unicodedata.category(ch) in _NOT_SHOWABLE
        or (ch != " " and unicodedata.category(ch) == "Zs")
        for ch in text
    )


def validate_name(
    name: str, what: str = "Key name", *, distinct_from: Iterable[str] | None = None
) -> str:
    """Return ``name`` trimmed; refuse empty, over-long or control-character names.

    With ``distinct_from`` (the names of people already there: operators, the other
    custodians of one backup) it is a person's name, read aloud and signed under, so two more
    rules hold: its letters come from one of Latin, Cyrillic and Greek (``mixed_script``), and
    it does not read as one of those names (the same ``name_skeleton``: 'ALICE', 'Alice' or
    'alicе' with a Cyrillic 'е' next to 'alice'). Each refusal is a ValidationError saying so."""
    # Normalised first: NFC can lengthen text, and the limits hold for the name that is kept.
    cleaned = unicodedata.normalize("NFC", name.strip())
    if not cleaned:
        raise ValidationError(f"{what} is empty. Give it a name people can read aloud.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValidationError(
            f"{what} is {len(cleaned)} characters long; the limit is {MAX_NAME_LENGTH}."
        )
    if has_control(cleaned):
        raise ValidationError(f"{what} contains control or invisible characters; remove them.")
    if distinct_from is not None:
        if mixed_script(cleaned):
            raise ValidationError(
                f"{what} '{cleaned}' mixes Latin, Cyrillic or Greek letters, which look alike; "
                "type it in one script."
            )
        skeleton = name_skeleton(cleaned)
        for other in distinct_from:
            if other != cleaned and name_skeleton(other) == skeleton:
                raise ValidationError(
                    f"{what} '{cleaned}' reads as '{other}' (only case or look-alike letters "
                    "differ); choose a name nobody can mistake for it."
                )
    return cleaned


def name_skeleton(name: str) -> str:
    """How a name reads: Unicode NFKC (compatibility forms such as full-width letters and
    ligatures folded) and case-folded. Two names with one skeleton are one person's to a
    reader. (Unicode TR 39 skeletons also fold cross-script homoglyphs; those are kept out by
    ``mixed_script`` instead: a name is in one script.)"""
    return unicodedata.normalize("NFKC", name).casefold()


_LOOKALIKE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def mixed_script(name: str) -> bool:
    """True when the letters of ``name`` come from more than one of Latin, Cyrillic and Greek,
    whose letters look alike (Unicode TR 39's mixed-script detection, by character name)."""
    scripts = set()
    for char in unicodedata.normalize("NFKC", name):
        if char.isalpha():
            first = unicodedata.name(char, "").split(" ", 1)[0]
            if first in _LOOKALIKE_SCRIPTS:
                scripts.add(first)
    return len(scripts) > 1


def validate_key_name(name: str) -> str:
    """A key name: ``validate_name``, and not something that reads as a UUID (a key is found
    by uuid or name, so a name that parses as a UUID would shadow another key)."""
    import uuid  # (uuid loads platform: only where a key is named, not on every command)

    cleaned = validate_name(name)
    try:
        uuid.UUID(cleaned)
    except ValueError:
        return cleaned
    raise ValidationError(
        f"Key name '{cleaned}' reads as a UUID, which names keys by their id; choose a name."
    )


def validate_token_label(label: str) -> str:
    """A token label: 1 to 32 UTF-8 bytes, no control or invisible characters (it is shown
    in listings and typed again to confirm an erase). Returned unchanged."""
    if not label.strip() or len(label.encode("utf-8")) > 32:
        raise ValidationError("A token label has 1 to 32 bytes.")
    if has_control(label):
        raise ValidationError("A token label cannot contain control or invisible characters.")
    if "\\" in label:
        raise ValidationError(
            "A token label cannot contain a backslash (it is shown escaped, as \\\\)."
        )
    return label


RULE_PASSPHRASE = "KS-PASSPHRASE-RULES"  # noqa: S105 (a rule id)


def validate_new_passphrase(
    passphrase: str, confirmation: str, operator: str | None = None
) -> None:
    """Refuse a new passphrase that is too short, too long, the operator's own name, or not
    confirmed."""
    if operator is not None and passphrase.strip().casefold() == operator.strip().casefold():
        raise ValidationError("The passphrase must not be the operator's name.")
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise ValidationError(
            f"The passphrase must have at least {MIN_PASSPHRASE_LENGTH} characters."
        )
    if len(passphrase) > MAX_PASSPHRASE_LENGTH:
        raise ValidationError(
            f"The passphrase must have at most {MAX_PASSPHRASE_LENGTH} characters."
        )
    if passphrase != confirmation:
        raise ValidationError("The passphrase and its confirmation differ.")
