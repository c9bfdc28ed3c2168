"""The backup KEK as SLIP-39 shares, through the ``shamir-mnemonic`` package (never
reimplemented): one group, M of N members, one share per named custodian.

Every failure of a share is a ``ShareError`` naming what is wrong. A wrong share passphrase
cannot be detected by SLIP-39 itself (it returns a different secret); the caller compares the
result with the manifest's KEK check value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import shamir_mnemonic
from shamir_mnemonic.share import Share

from app.domain.names import validate_name
from app.errors import BackupIntegrityError, ValidationError

# SLIP-39's PBKDF2 cost: 10000 × 2^e iterations. e = 1 (the package's default).
ITERATION_EXPONENT = 1
MAX_SHARES = 16  # SLIP-39's limit per group


class ShareError(BackupIntegrityError):
    """A share cannot be used: mistyped, from another backup, repeated, or too few."""


@dataclass(frozen=True)
class ShareSet:
    """The shares of one KEK, in custodian order; ``identifier`` is SLIP-39's 15-bit id."""

    identifier: int
    threshold: int
    mnemonics: tuple[str, ...] = field(repr=False)
    custodians: tuple[str, ...]


def share_words() -> frozenset[str]:
    """The 1024 words of SLIP-39 share mnemonics (shamir-mnemonic's own list): what the
    ceremony script's secret filter looks for in runs."""
    from shamir_mnemonic.wordlist import WORDLIST

    return frozenset(WORDLIST)


def custodian_plan(custodians: Sequence[str], threshold: int) -> list[str]:
    """The custodians' names (the operator-name rule) for an M-of-N split with
    ``2 <= threshold <= len(custodians)``; ValidationError otherwise. An empty list is allowed
    here (a passphrase-only backup); the one rule ``backup create`` and a ceremony's
    validation apply."""
    names: list[str] = []
    for custodian in custodians:  # each distinct from the others (one person, one share)
        names.append(validate_name(custodian, "Custodian name", distinct_from=names))
    if names and not 2 <= threshold <= len(names):
        raise ValidationError(
            f"Shares must be M-of-N with 2 <= M <= N; got {threshold}-of-{len(names)}."
        )
    return names


def split(
    kek: bytes, threshold: int, custodians: Sequence[str], passphrase: bytes = b""
) -> ShareSet:
    """M-of-N SLIP-39 shares of ``kek`` (one group, non-extendable: the identifier then
    binds the share passphrase to this backup)."""
    count = len(custodians)
    if not 1 <= threshold <= count <= MAX_SHARES:
        raise ShareError(
            f"Shares must be M-of-N with 1 <= M <= N <= {MAX_SHARES}; got {threshold}-of-{count}."
        )
    if threshold == 1 and count > 1:
        raise ShareError("1-of-N shares would give every custodian the whole KEK; use M >= 2.")
    if len(set(custodians)) != count:
        raise ShareError("Each custodian must be named once.")
    groups = shamir_mnemonic.generate_mnemonics(
        1,
        [(threshold, count)],
        kek,
        passphrase,
        extendable=False,
        iteration_exponent=ITERATION_EXPONENT,
    )
    mnemonics = tuple(groups[0])
    return ShareSet(parse(mnemonics[0]).identifier, threshold, mnemonics, tuple(custodians))


def parse(mnemonic: str) -> Share:
    """One share's words (checksum included); ShareError on a typo or a word not in the list."""
    words = " ".join(mnemonic.lower().split())
    try:
        return Share.from_mnemonic(words)
    except (shamir_mnemonic.MnemonicError, ValueError, KeyError, IndexError):
        # The library's message quotes the words: never repeat a share in an error.
        count = len(words.split())
        raise ShareError(
            f"A share of {count} words does not read as SLIP-39 (a word not in the list, a "
            "typo, or words missing). Check it against the share card."
        ) from None


def combine(mnemonics: Sequence[str], identifier: int, passphrase: bytes = b"") -> bytes:
    """The KEK from at least the threshold of shares of the set ``identifier``."""
    shares = [parse(m) for m in mnemonics]
    if not shares:
        raise ShareError("No shares were given.")
    for share in shares:
        if share.identifier != identifier:
            raise ShareError(
                f"A share belongs to another backup (share set {share.identifier}, this backup "
                f"uses {identifier})."
            )
    indexes = [share.index for share in shares]
    if len(set(indexes)) != len(indexes):
        raise ShareError("The same share was entered twice; each custodian enters their own.")
    threshold = shares[0].member_threshold
    if len(shares) < threshold:
        raise ShareError(
            f"{len(shares)} share(s) given; this backup needs {threshold} custodians' shares."
        )
    try:
        return bytes(
            shamir_mnemonic.combine_mnemonics(
                # SLIP-39 combines exactly the threshold: more (every share of a
                # --shares-out file) is refused by the library as "wrong number".
                [" ".join(m.lower().split()) for m in mnemonics[:threshold]],
                passphrase,
            )
        )
    except (shamir_mnemonic.MnemonicError, ValueError):
        raise ShareError(
            "The shares do not combine (they are not shares of the same secret)."
        ) from None
