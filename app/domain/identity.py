"""What the objects on a token are: keys, pairs, lone halves, certificates, data objects.

Pure Python, no I/O: ``app/hsm`` reads one ``TokenEntry`` per object and these functions decide.

The rules (DESIGN.md "Keys and tokens"): a key on a token is identified by its object class +
CKA_ID + key type, and a pair is a private and a public object whose public values match. Tokens
written by other tools hold several keys under one CKA_ID, keys without a CKA_ID, certificates
and data objects under a key's CKA_ID, and public keys without a private half. So:

- RSA halves pair when their moduli (the SubjectPublicKeyInfo) match; an EC/EdDSA private key
  carries no public value (SoftHSM gives no CKA_EC_POINT on it), so it pairs with the one public
  key of its CKA_ID and curve, or with the public key its signature was verified against
  (``TokenEntry.fingerprint`` set by a proof in ``app/hsm``); otherwise it stays a lone half.
- Every key on a token is listed; keys sharing a CKA_ID (or having none) are marked, because an
  action "by CKA_ID" would reach all of them.
- ``select_key`` picks exactly the objects of one managed key, or raises ``AmbiguousKey``.
"""

from __future__ import annotations

from collections import defaultdict
from enum import Enum
from typing import NamedTuple

from app.domain.algorithms import Algorithm, Family
from app.domain.keys import ObjectKind, TokenObject
from app.errors import AmbiguousKey

SECRET = "SECRET_KEY"  # noqa: S105 (an object class name, not a password)
PRIVATE = "PRIVATE_KEY"
PUBLIC = "PUBLIC_KEY"
KEY_CLASSES = (SECRET, PRIVATE, PUBLIC)


class Exposure(Enum):
    """Why a key's value may have been, or may be, outside the token."""

    NOT_SENSITIVE = "not-sensitive"  # CKA_SENSITIVE false
    WAS_NOT_SENSITIVE = "was-not-sensitive"  # CKA_ALWAYS_SENSITIVE false
    EXTRACTABLE = "extractable"  # CKA_EXTRACTABLE without CKA_WRAP_WITH_TRUSTED

    @property
    def title(self) -> str:
        return {
            Exposure.NOT_SENSITIVE: "not sensitive: the token may reveal its value in clear",
            Exposure.WAS_NOT_SENSITIVE: (
                "was not always sensitive (ALWAYS_SENSITIVE false): its value may have been "
                "read in clear before"
            ),
            Exposure.EXTRACTABLE: (
                "extractable under any wrapping key (not WRAP_WITH_TRUSTED): a PIN holder can "
                "take it off the token"
            ),
        }[self]

    @property
    def clear_value(self) -> bool:
        """The value may have been seen in clear (not only wrapped)."""
        return self in (Exposure.NOT_SENSITIVE, Exposure.WAS_NOT_SENSITIVE)


def parse_exposure(values: tuple[str, ...] | list[str]) -> tuple[Exposure, ...]:
    return tuple(Exposure(v) for v in values)


class TokenEntry(NamedTuple):
    """One object on a token as read in one enumeration (``position``: its place in it)."""

    position: int
    object_class: str  # "SECRET_KEY", "PRIVATE_KEY", "PUBLIC_KEY", "CERTIFICATE", "DATA", ...
    key_type: str  # "AES", "RSA", "EC", ...; "" for objects that are not keys
    label: str  # already made safe (app.domain.text.safe_token_text)
    cka_id: str  # hex; "" when the object has none
    algorithm: Algorithm | None
    kcv: str | None = None  # secret keys: CKA_CHECK_VALUE, hex upper
    fingerprint: str | None = None  # SHA-256 hex of the SPKI (public keys, RSA private keys)
    flags: frozenset[str] = frozenset()  # boolean attributes that are true (SENSITIVE, SIGN...)

    @property
    def is_key(self) -> bool:
        return self.object_class in KEY_CLASSES

    @property
    def describe(self) -> str:
        """One line naming the object, for audit entries and listings."""
        kind = self.object_class.replace("_", " ").lower()
        key_type = f" {self.key_type}" if self.key_type else ""
        return f"{kind}{key_type} label '{self.label}' id '{self.cka_id or '(none)'}'"


def exposure_of(entry: TokenEntry) -> tuple[Exposure, ...]:
    """Exposure of a secret or private key object from its flags."""
    if entry.object_class not in (SECRET, PRIVATE):
        return ()
    found = []
    if "SENSITIVE" not in entry.flags:
        found.append(Exposure.NOT_SENSITIVE)
    if "ALWAYS_SENSITIVE" not in entry.flags:
        found.append(Exposure.WAS_NOT_SENSITIVE)
    if "EXTRACTABLE" in entry.flags and "WRAP_WITH_TRUSTED" not in entry.flags:
        found.append(Exposure.EXTRACTABLE)
    return tuple(found)


class _Group(NamedTuple):
    kind: ObjectKind
    parts: tuple[TokenEntry, ...]


def _pairs(entries: list[TokenEntry]) -> list[_Group]:
    """Secret keys, pairs and lone halves among the key objects of one CKA_ID."""
    groups = [_Group(ObjectKind.SECRET, (e,)) for e in entries if e.object_class == SECRET]
    privates = [e for e in entries if e.object_class == PRIVATE]
    publics = [e for e in entries if e.object_class == PUBLIC]
    unpaired = list(publics)
    # First every private key whose public value is known (RSA modulus, or a proof).
    for private in [p for p in privates if p.fingerprint]:
        match = next((p for p in unpaired if p.fingerprint == private.fingerprint), None)
        if match is not None:
            unpaired.remove(match)
            groups.append(_Group(ObjectKind.PAIR, (private, match)))
        else:
            groups.append(_Group(ObjectKind.PRIVATE_ONLY, (private,)))
    # Then EC/EdDSA private keys: the one public key of the same curve, if it is the only one
    # on either side (with an empty CKA_ID, the labels must match too).
    for private in [p for p in privates if not p.fingerprint]:
        peers = [p for p in privates if not p.fingerprint and _same_key(p, private)]
        matches = [p for p in unpaired if _same_key(p, private)]
        if len(peers) == 1 and len(matches) == 1:
            unpaired.remove(matches[0])
            groups.append(_Group(ObjectKind.PAIR, (private, matches[0])))
        else:
            groups.append(_Group(ObjectKind.PRIVATE_ONLY, (private,)))
    groups.extend(_Group(ObjectKind.PUBLIC_ONLY, (p,)) for p in unpaired)
    return groups


def _same_key(a: TokenEntry, b: TokenEntry) -> bool:
    if a.key_type != b.key_type or a.algorithm != b.algorithm:
        return False
    return bool(a.cka_id) or a.label == b.label


_OTHER_KINDS = {"CERTIFICATE": ObjectKind.CERTIFICATE, "DATA": ObjectKind.DATA}


def group_objects(entries: list[TokenEntry], serial: str, token_label: str) -> list[TokenObject]:
    """Every object on the token as listed rows: one per key (a pair is one row), one per
    certificate, data or other object. Keys sharing a CKA_ID (or without one) say so."""
    by_id: dict[str, list[TokenEntry]] = defaultdict(list)
    others: list[TokenEntry] = []
    for entry in entries:
        (by_id[entry.cka_id] if entry.is_key else others).append(entry)
    related: dict[str, list[str]] = defaultdict(list)
    for entry in others:
        if entry.cka_id:
            related[entry.cka_id].append(entry.describe)
    rows: list[TokenObject] = []
    for cka_id, members in by_id.items():
        groups = _pairs(members)
        shared = len(groups) > 1
        for group in groups:
            rows.append(_row(group, serial, token_label, cka_id, shared, related.get(cka_id, [])))
    for entry in others:
        rows.append(
            TokenObject(
                token_serial=serial,
                token_label=token_label,
                cka_id=entry.cka_id,
                label=entry.label,
                key_type=entry.key_type,
                classes=(entry.object_class,),
                algorithm=None,
                kind=_OTHER_KINDS.get(entry.object_class, ObjectKind.OTHER),
            )
        )
    return rows


def _row(
    group: _Group,
    serial: str,
    token_label: str,
    cka_id: str,
    shared: bool,
    related: list[str],
) -> TokenObject:
    first = group.parts[0]
    fingerprint = next((p.fingerprint for p in group.parts if p.fingerprint), None)
    identifier = (first.kcv or "") if first.object_class == SECRET else (fingerprint or "")
    key_part = next((p for p in group.parts if p.object_class in (SECRET, PRIVATE)), None)
    return TokenObject(
        token_serial=serial,
        token_label=token_label,
        cka_id=cka_id,
        label=next((p.label for p in group.parts if p.label), ""),
        key_type=first.key_type,
        classes=tuple(sorted(p.object_class for p in group.parts)),
        algorithm=first.algorithm,
        kind=group.kind,
        identifier=identifier,
        shared_id=shared,
        related=tuple(related),
        exposure=tuple(e.value for e in exposure_of(key_part)) if key_part else (),
        usage=tuple(
            f"{p.object_class}.{flag}"
            for p in group.parts
            for flag in sorted(p.flags & _USAGE_NAMES)
        ),
    )


_USAGE_NAMES = frozenset({"ENCRYPT", "DECRYPT", "SIGN", "VERIFY", "WRAP", "UNWRAP", "DERIVE"})


_KEY_TYPE_NAMES = {
    Family.AES: "AES",
    Family.RSA: "RSA",
    Family.EC: "EC",
    Family.EDDSA: "EC_EDWARDS",
}


def is_of(found: Algorithm | None, key_type: str, wanted: Algorithm) -> bool:
    """Whether an object read as ``found`` (None when its size could not be read: SoftHSM
    leaves CKA_VALUE_LEN 0 on unwrapped AES keys) and ``key_type`` can be a key of ``wanted``."""
    if found is not None:
        return found is wanted
    return key_type == _KEY_TYPE_NAMES[wanted.family]


class KeyIdentity(NamedTuple):
    """What a managed key's record knows to find its objects: CKA_ID, algorithm (class and key
    type follow from it), and its KCV or public-key fingerprint."""

    cka_id: str
    algorithm: Algorithm
    kcv: str | None
    fingerprint: str | None

    @property
    def key_class(self) -> str:
        return SECRET if self.algorithm.symmetric else PRIVATE


def select_key(entries: list[TokenEntry], identity: KeyIdentity) -> list[TokenEntry]:
    """Exactly the objects of the key ``identity`` names (the key object first, then its public
    half), or [] when the key object is not there. Raises ``AmbiguousKey`` when more than one
    object could be it: an action must then touch none of them."""
    same = [
        e
        for e in entries
        if e.cka_id == identity.cka_id
        and e.is_key
        and is_of(e.algorithm, e.key_type, identity.algorithm)
    ]
    keys = [e for e in same if e.object_class == identity.key_class]
    if identity.key_class == SECRET and identity.kcv:
        keys = [e for e in keys if e.kcv in (None, identity.kcv)]
    if identity.key_class == PRIVATE and identity.fingerprint:
        keys = [e for e in keys if e.fingerprint in (None, identity.fingerprint)]
    publics = [e for e in same if e.object_class == PUBLIC]
    if identity.fingerprint:
        publics = [e for e in publics if e.fingerprint == identity.fingerprint]
    if len(keys) > 1 or len(publics) > 1:
        raise AmbiguousKey(
            f"The token holds {len(keys)} key objects and {len(publics)} public keys that could "
            f"be this key (CKA_ID {identity.cka_id or '(none)'}); Keystead will not guess which "
            "one to act on. Nothing was changed."
        )
    if not keys:
        return []
    return keys + publics
