"""Managed keys, their lifecycle states and how they appear in the inventory."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import NamedTuple

from app.domain.algorithms import Algorithm, Purpose


class KeyState(Enum):
    """NIST SP 800-57 key states, with KMIP names."""

    PRE_ACTIVE = "PRE_ACTIVE"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    DEACTIVATED = "DEACTIVATED"
    COMPROMISED = "COMPROMISED"
    DESTROYED = "DESTROYED"
    DESTROYED_COMPROMISED = "DESTROYED_COMPROMISED"

    @property
    def title(self) -> str:
        return _STATE_TITLES[self]


_STATE_TITLES = {
    KeyState.PRE_ACTIVE: "Pre-active",
    KeyState.ACTIVE: "Active",
    KeyState.SUSPENDED: "Suspended",
    KeyState.DEACTIVATED: "Deactivated",
    KeyState.COMPROMISED: "Compromised",
    KeyState.DESTROYED: "Destroyed",
    KeyState.DESTROYED_COMPROMISED: "Destroyed (compromised)",
}


class TokenSync(Enum):
    """Whether the token's usage flags reflect the key's state."""

    OK = "ok"  # flags set, and the token was seen refusing an operation whose flag was cleared
    PENDING = "pending"  # token not logged in at the change; applied at the next login
    REFUSED = "refused"  # the object is not modifiable: the token does not enforce the state
    # Flags set, but the token does not (or was not seen to) refuse a cleared usage.
    RECORDED = "recorded"

    @property
    def title(self) -> str:
        return {
            TokenSync.OK: "token enforces the state",
            TokenSync.PENDING: "token update pending: log in to the token",
            TokenSync.REFUSED: "token not enforcing state (object not modifiable)",
            TokenSync.RECORDED: "recorded by Keystead, not enforced by this token",
        }[self]


class TrustedWrap(Enum):
    """Whether a backup-able key carries CKA_WRAP_WITH_TRUSTED (only a KEK the security
    officer marked CKA_TRUSTED may wrap it; without it anyone with the user PIN can)."""

    NOT_APPLICABLE = "n/a"  # not extractable: nothing can wrap it
    OK = "ok"  # the token holds CKA_WRAP_WITH_TRUSTED = true
    PENDING = "pending"  # recorded before the attribute existed; set at the next login
    REFUSED = "refused"  # the token would not set it: any user-PIN holder can wrap the key

    @property
    def title(self) -> str:
        return {
            TrustedWrap.NOT_APPLICABLE: "not extractable",
            TrustedWrap.OK: "only a trusted backup key can wrap it",
            TrustedWrap.PENDING: "trusted-wrap protection pending: log in to the token",
            TrustedWrap.REFUSED: (
                "token refused CKA_WRAP_WITH_TRUSTED: anyone with the user PIN can wrap it out"
            ),
        }[self]


class Presence(Enum):
    """How a row of the inventory relates to the token (reconciliation result)."""

    PRESENT = "present"  # record and token object agree
    MISSING = "missing on token"  # record whose token object is gone
    UNMANAGED = "unmanaged"  # token object the database does not know
    UNCHECKED = "not checked"  # token present but not logged in, so not reconciled
    ABSENT = "token not present"  # the key's token is not attached (removed, or never seen)
    DESTROYED = "destroyed"  # a destroyed key: its object is meant to be gone
    PUBLIC_ONLY = "public key only"  # an imported verify-only key: kept in the database only

    @property
    def alarm(self) -> bool:
        """True only for a live record whose token object is gone."""
        return self is Presence.MISSING


class KeyRecord(NamedTuple):
    """The database's record of one managed key (a NamedTuple: immutable, cheap at 100,000)."""

    id: str
    name: str
    algorithm: Algorithm
    purpose: Purpose
    state: KeyState
    token_serial: str
    token_label: str
    cka_id: str  # hex
    extractable: bool
    kcv: str | None
    fingerprint: str | None  # hex SHA-256 of the SubjectPublicKeyInfo
    created_at: datetime
    created_by: str
    tags: tuple[str, ...] = ()
    notes: str = ""
    activation_date: datetime | None = None  # planned, then actual, start of use (UTC)
    deactivation_date: datetime | None = None  # protect-stop: end of the originator period
    compromise_date: datetime | None = None
    replaces: str | None = None  # predecessor's id (rotation)
    replaced_by: str | None = None  # successor's id
    token_sync: TokenSync = TokenSync.OK
    wrap_trusted: TrustedWrap = TrustedWrap.NOT_APPLICABLE
    exposure: tuple[str, ...] = ()  # app.domain.identity.Exposure values found at adoption

    @property
    def identifier(self) -> str:
        """KCV for symmetric keys, fingerprint for key pairs."""
        return (self.kcv if self.algorithm.symmetric else self.fingerprint) or ""


class ObjectKind(Enum):
    """What a listed token object is (``app.domain.identity`` decides)."""

    SECRET = "secret key"  # noqa: S105 (a kind of object, not a password)
    PAIR = "key pair"
    PRIVATE_ONLY = "private key without its public key"
    PUBLIC_ONLY = "public key only"
    CERTIFICATE = "certificate"
    DATA = "data object"
    OTHER = "other object"

    @property
    def is_key(self) -> bool:
        """A secret key or a private key (with or without its public half)."""
        return self in (ObjectKind.SECRET, ObjectKind.PAIR, ObjectKind.PRIVATE_ONLY)


class TokenObject(NamedTuple):
    """One listed thing on a token: a secret key, a key pair (private + public whose public
    values match), a lone half, a certificate or a data object. Text fields are already safe
    to show (``app.domain.text``)."""

    token_serial: str
    token_label: str
    cka_id: str  # hex; "" when the object has no CKA_ID
    label: str
    key_type: str  # "AES", "RSA", "EC", "EC_EDWARDS", "GENERIC_SECRET", ...
    classes: tuple[str, ...]  # "SECRET_KEY" or ("PRIVATE_KEY", "PUBLIC_KEY"), "CERTIFICATE"...
    algorithm: Algorithm | None  # None when Keystead cannot manage this type
    kind: ObjectKind = ObjectKind.SECRET
    identifier: str = ""  # KCV (secret keys) or SHA-256 of the SPKI; "" when unknown
    shared_id: bool = False  # another key on this token has the same CKA_ID (or also none)
    related: tuple[str, ...] = ()  # certificates / data objects under the same CKA_ID
    exposure: tuple[str, ...] = ()  # app.domain.identity.Exposure values
    usage: tuple[str, ...] = ()  # "PRIVATE_KEY.SIGN", ... the usage flags that are true

    @property
    def needs_new_id(self) -> bool:
        """Adopting it needs a fresh CKA_ID first: it has none, or shares it with another key."""
        return not self.cka_id or self.shared_id


class BackupStatus(NamedTuple):
    """A key's newest verified backup: its generation, when it was last verified (UTC text),
    the medium it was written to (volume label or UUID, or "" for a plain directory), and how
    many verified backups hold the key."""

    generation: int
    verified_at: str
    medium: str
    copies: int


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def name_order(name: str) -> tuple[str, str]:
    """The inventory's name order: SQLite's NOCASE collation (only A-Z folded), then the exact
    name, both by code point (= UTF-8 byte order). The database reads the first screenful in
    this same order (``ORDER BY name COLLATE NOCASE, name``), so the rows painted at unlock are
    the rows the full list starts with (issue 17)."""
    return name.translate(_ASCII_LOWER), name


class InventoryItem(NamedTuple):
    """One row of the inventory: a managed record, an unmanaged token object, or both;
    ``backup`` is the record's newest verified backup (None: in no backup)."""

    presence: Presence
    record: KeyRecord | None = None
    token_object: TokenObject | None = None
    uses: int = 0  # protect uses counted in the audit chain (``KeyUseService.tallies``)
    usage_due: str = ""  # why a usage limit makes the key due, or ""
    backup: BackupStatus | None = None

    @property
    def name(self) -> str:
        if self.record:
            return self.record.name
        return self.token_object.label if self.token_object else ""

    @property
    def token_label(self) -> str:
        if self.record:
            return self.record.token_label
        return self.token_object.token_label if self.token_object else ""


class InventoryHead(NamedTuple):
    """The inventory's first screenful and every total the page and the overview show, read
    without reading every record (``KeyService.inventory_head``): ``items`` are the first
    rows of the full inventory in name order (``name_order``), each reconciled exactly as
    ``KeyService.inventory`` does; the counts are over the whole inventory."""

    items: list[InventoryItem]
    total: int  # every row of the full inventory: records and unmanaged token objects
    presence_totals: dict[Presence, int]
    due_count: int  # live keys due (deactivation date before ``due_before``, or a usage limit)
    overdue_count: int  # of those, whose deactivation date is at or before ``now``
    not_backed_up_count: int  # backup-able keys that exist and are in no backup
    compromised_count: int  # keys in state COMPROMISED
