"""The tamper-evident audit chain: canonical encoding, entry hashes, checkpoints, verification.

Pure functions over plain data, so the same code verifies the live database, an export and
(by its documented twin in docs/audit-verification.md) a file without Keystead.

    canonical(entry) = JSON of {seq, ts, operators, action, subject, outcome, details}
                       with sorted keys, separators "," and ":", UTF-8, no ASCII escaping
    entry_hash       = SHA-256(b"keystead-audit-v1\\x00" || canonical || prev_hash)
    prev_hash        = 32 zero bytes for the first entry
    mac              = HMAC-SHA256(audit key inside the token, entry_hash)
    checkpoint       = canonical JSON of {workstation, database, seq, head, time}, signed
                       (ECDSA P-256, SHA-256) by the workstation's checkpoint key on the token
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from json.encoder import encode_basestring as _quote  # json.dumps(str, ensure_ascii=False)
from typing import Any, NamedTuple

DOMAIN_TAG = b"keystead-audit-v1\x00"
CHECKPOINT_TAG = "keystead-checkpoint-v1"
GENESIS = bytes(32)

# Entries that may be written while the audit token is not logged in (their MAC is absent and
# verification lists them). Everything else needs the token's MAC or does not happen.
UNMACED_ALLOWED = frozenset(
    {
        "workstation.initialize",
        "workstation.unlock",
        "workstation.lock",
        "token.login",
        "token.create-soft",
        "token.session-lost",
        # Damaged embedded token files put right at open, before any login.
        "token.store-repair",
        # How an interrupted workstation-key rotation ended, put right at the next unlock
        # (before any login); the rotation itself was vouched for by the token's "before key
        # rotation" checkpoint, which names both database keys.
        "workstation.rotation-recovered",
        # Write-ahead intents are markers, not changes: the change itself carries its seal.
        "intent.begin",
        "intent.resolve",
        # The security officer's PIN work cannot share the token with a user login, so on the
        # audit token itself these run while it is not sealing.
        "token.init-pin",
        "token.change-so-pin",
        "module.add",
        "module.remove",
        "audit.keys",
        # An observation: the capability probe changes nothing it does not undo (its objects
        # are destroyed before it returns), and a token without the audit keys can be probed.
        "token.probe",
        # A keyslot no operator record vouches for (an operators add cut short), removed at
        # the next unlock, before any token login.
        "operator.keyslot-orphan",
        # The wrong-passphrase side record was deleted between two unlocks: noted at unlock.
        "workstation.unlock-failures-missing",
    }
)


def needs_seal(action: str, outcome: str) -> bool:
    """Successful changes must carry the token's MAC; refusals, failures and the listed
    bootstrap actions may be recorded while the audit token is away (and are listed as such)."""
    return outcome == "success" and action not in UNMACED_ALLOWED


def json_text(value: Any) -> str:
    """The canonical JSON text of a value: sorted keys, no spaces, UTF-8 as itself."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class AuditEntry(NamedTuple):
    """One entry as stored: the operators and details are kept as their canonical JSON text,
    so verification hashes exactly the stored bytes without parsing them. (A NamedTuple:
    verification reads a million of them.)"""

    seq: int
    ts: str
    operators_json: str
    action: str
    subject: str
    outcome: str
    details_json: str
    prev_hash: bytes = GENESIS
    entry_hash: bytes = GENESIS
    mac: bytes | None = None

    @classmethod
    def of(
        cls,
        seq: int,
        ts: str,
        operators: Iterable[str],
        action: str,
        subject: str,
        outcome: str,
        details: dict[str, Any],
        prev_hash: bytes = GENESIS,
        entry_hash: bytes = GENESIS,
        mac: bytes | None = None,
    ) -> AuditEntry:
        return cls(
            seq,
            ts,
            json_text(list(operators)),
            action,
            subject,
            outcome,
            json_text(details),
            prev_hash,
            entry_hash,
            mac,
        )

    @property
    def operators(self) -> tuple[str, ...]:
        return tuple(json.loads(self.operators_json))

    @property
    def details(self) -> dict[str, Any]:
        value = json.loads(self.details_json)
        return value if isinstance(value, dict) else {}

    def canonical(self) -> bytes:
        """The entry's canonical encoding (``stored_canonical``)."""
        return stored_canonical(
            self.seq,
            self.ts,
            self.operators_json,
            self.action,
            self.subject,
            self.outcome,
            self.details_json,
        )


def stored_canonical(
    seq: int,
    ts: str,
    operators_json: str,
    action: str,
    subject: str,
    outcome: str,
    details_json: str,
) -> bytes:
    """THE canonical encoding of an entry (the module docstring; docs/audit-verification.md),
    from its stored texts: the operators and details already as ``json_text``. The writer
    (``AuditEntry.canonical``, ``canonical``) and the verifier (``verify_chain``) both call this
    one function, so they cannot drift. The keys are written in sorted order by hand: the
    result equals ``json_text`` of the whole object (tests/unit/test_audit_chain.py)."""
    return (
        f'{{"action":{_quote(action)},"details":{details_json},'
        f'"operators":{operators_json},"outcome":{_quote(outcome)},'
        f'"seq":{seq},"subject":{_quote(subject)},"ts":{_quote(ts)}}}'
    ).encode()


def canonical(
    seq: int,
    ts: str,
    operators: Iterable[str],
    action: str,
    subject: str,
    outcome: str,
    details: dict[str, Any],
) -> bytes:
    """The canonical encoding of an entry given as parsed values (``stored_canonical``)."""
    return stored_canonical(
        seq, ts, json_text(list(operators)), action, subject, outcome, json_text(details)
    )


def entry_hash(canonical_bytes: bytes, prev_hash: bytes) -> bytes:
    return hashlib.sha256(DOMAIN_TAG + canonical_bytes + prev_hash).digest()


def hash_of(entry: AuditEntry) -> bytes:
    return entry_hash(entry.canonical(), entry.prev_hash)


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the chain had ``seq`` entries ending in ``head`` at ``time``, in the
    workstation ``workstation`` whose database key has the identity ``database``
    (``database_identity``; empty in checkpoints made before it was bound).

    ``next_database`` is set only on the checkpoint made just before a workstation-key
    rotation: the identity of the key the database is being moved to. The rollback check
    accepts either key against it, so a crash (or a token error) between the rotation's
    commit and the "after" checkpoint never locks the workstation out."""

    workstation: str
    seq: int
    head: bytes
    time: str
    signature: bytes = b""  # DER ECDSA signature over ``message()``
    database: str = ""
    next_database: str = ""

    def vouches_for(self, database_id: str) -> bool:
        """Whether this checkpoint names ``database_id`` (an unbound one names any)."""
        if not self.database or not database_id:
            return True
        return database_id in (self.database, self.next_database)

    def message(self) -> bytes:
        body: dict[str, Any] = {
            "type": CHECKPOINT_TAG,
            "workstation": self.workstation,
            "seq": self.seq,
            "head": self.head.hex(),
            "time": self.time,
        }
        if self.database:
            body["database"] = self.database
        if self.next_database:
            body["next_database"] = self.next_database
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "workstation": self.workstation,
            "seq": self.seq,
            "head": self.head.hex(),
            "time": self.time,
            "signature": self.signature.hex(),
        }
        if self.database:
            doc["database"] = self.database
        if self.next_database:
            doc["next_database"] = self.next_database
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Checkpoint:
        return cls(
            str(doc["workstation"]),
            int(doc["seq"]),
            bytes.fromhex(doc["head"]),
            str(doc["time"]),
            bytes.fromhex(doc["signature"]),
            str(doc.get("database", "")),
            str(doc.get("next_database", "")),
        )


def database_identity(database_key: bytes) -> str:
    """A public name of a database key: hex SHA-256 over a domain tag and the key, cut to 128
    bits. Binds checkpoints to the one database they vouch for; reveals nothing of the key."""
    return hashlib.sha256(b"keystead-database-key-id-v1\x00" + database_key).hexdigest()[:32]


class Fault(Enum):
    """Kinds of damage verification names."""

    MODIFIED = "modified"
    MISSING = "missing"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated after checkpoint"
    ROLLED_BACK = "database older than checkpoint"
    MAC_INVALID = "MAC invalid"
    MAC_MISSING = "MAC missing"
    TIME = "time goes backwards"
    CHECKPOINT_SIGNATURE = "checkpoint signature invalid"
    CHECKPOINT_MISMATCH = "chain differs from checkpoint"
    INVENTORY = "key inventory differs from the audit chain"


@dataclass
class Report:
    """The outcome of a verification."""

    entries: int = 0
    macs_checked: int = 0
    unmaced: list[int] = field(default_factory=list)
    # The entries without a token MAC by what they record: "workstation.unlock", or an action
    # with its outcome when that is not a success ("key.generate denied").
    unmaced_actions: dict[str, int] = field(default_factory=dict)
    checkpoint_seq: int | None = None
    fault: Fault | None = None
    bad_seq: int | None = None
    detail: str = ""
    # With ``Fault.INVENTORY``: each record that differs from the chain's replay, in words.
    differences: list[str] = field(default_factory=list)

    def unmaced_note(self) -> str:
        """Why entries carry no token MAC, for an auditor reading the summary: how many of
        each kind, and that they are so by design ("" when every entry has one)."""
        if not self.unmaced:
            return ""
        kinds = sorted(self.unmaced_actions.items(), key=lambda item: (-item[1], item[0]))
        listed = ", ".join(f"{what} {count}" for what, count in kinds)
        return (
            f"Entries without a token MAC ({len(self.unmaced)}): {listed}. By design: what is "
            "recorded before or without the audit token's login (unlock, login, lock, "
            "initialisation, token set-up, write-ahead intent markers) and refusals or "
            "failures, recorded even when the token is away. Every other successful change "
            "must carry the MAC; verification fails where one does not."
        )

    @property
    def ok(self) -> bool:
        return self.fault is None

    def summary(self) -> str:
        if self.fault is Fault.INVENTORY:
            more = len(self.differences) - 1
            also = f" (and {more} more: keystead audit verify --json lists them)" if more else ""
            return (
                f"Verification failed: {self.differences[0]}{also}. The key inventory was "
                "changed outside Keystead; do not use these keys until it is explained. "
                "Restore the latest verified backup of this workstation's home."
            )
        if self.fault is not None:
            where = f" at entry {self.bad_seq}" if self.bad_seq is not None else ""
            return f"Audit history damaged{where}: {self.fault.value}. {self.detail}".strip()
        text = f"{self.entries} entries verified"
        if self.checkpoint_seq is not None:
            text += f" up to checkpoint {self.checkpoint_seq}"
        if self.macs_checked:
            text += f", {self.macs_checked} token MACs valid"
        if self.unmaced:
            share = round(100 * len(self.unmaced) / self.entries) if self.entries else 0
            text += (
                f"; {len(self.unmaced)} ({share} %) carry no token MAC by design (unlock, "
                "login, lock, refusals: recorded while the audit token is not logged in)"
            )
        return text + "."


MacCheck = Callable[[bytes, bytes], bool]  # (entry_hash, mac) -> valid


# One stored entry as the verifier reads it: AuditEntry's fields in AuditEntry's order (an
# AuditEntry is one), e.g. a row of ``SELECT seq, ts, operators, action, subject, outcome,
# details, prev_hash, entry_hash, mac`` (``app.storage.events.iter_event_rows``).
EntryRow = Sequence[Any]


def verify_chain(
    entries: Iterable[EntryRow],
    mac_check: MacCheck | None = None,
    checkpoints: Iterable[Checkpoint] = (),
    has_checkpoint_record: Callable[[int], bool] | None = None,
    mac_from: int = 1,
) -> Report:
    """Recompute the chain from the first entry and compare with MACs and checkpoints.

    ``entries`` are ``AuditEntry`` values or rows of the same ten fields in the same order
    (``EntryRow``): the verifier streams them, hashing ``stored_canonical`` of each row's
    stored texts, and builds an ``AuditEntry`` only for an entry that fails a check (to name
    the fault). Memory stays constant: only the last two hashes and the hash at the newest
    checkpoint are kept.

    ``mac_check`` is None when the token is not at hand (an offline export): MACs are then
    neither required nor checked. ``checkpoints`` must already have valid signatures.
    Entries before ``mac_from`` predate the audit key (migrated databases) and need no MAC.
    """
    report = Report()
    newest = max(checkpoints, key=lambda c: c.seq, default=None)
    watch = newest.seq if newest is not None else 0
    watched: bytes | None = None
    expected = 1
    prev = GENESIS
    before_prev: bytes | None = None  # the hash of entry ``expected - 2``
    last_ts = ""
    unmaced = report.unmaced
    kinds = report.unmaced_actions  # what the unsealed entries record (summary note)
    macs = 0
    sha256 = hashlib.sha256
    encode = stored_canonical
    for row in entries:
        seq, ts, operators, action, subject, outcome, details, prev_hash, stored, mac = row
        if (
            seq != expected
            or prev_hash != prev
            or ts < last_ts
            or sha256(
                DOMAIN_TAG + encode(seq, ts, operators, action, subject, outcome, details) + prev
            ).digest()
            != stored
        ):
            entry = AuditEntry(
                seq,
                ts,
                operators,
                action,
                subject,
                outcome,
                details,
                bytes(prev_hash or GENESIS),  # NULL in rows written before the chain existed
                bytes(stored or GENESIS),
                None if mac is None else bytes(mac),
            )
            found = _first_fault(entry, expected, prev, before_prev, last_ts)
            if found is not None:
                report.entries, report.macs_checked = expected, macs
                return _fail(report, *found)
            stored = entry.entry_hash
        if mac_check is not None:
            if mac is None:
                if needs_seal(action, outcome) and seq >= mac_from:
                    report.entries, report.macs_checked = expected, macs
                    return _fail(
                        report,
                        Fault.MAC_MISSING,
                        seq,
                        f"'{action}' must carry the token's MAC.",
                    )
                unmaced.append(seq)
                what = action if outcome == "success" else f"{action} {outcome}"
                kinds[what] = kinds.get(what, 0) + 1
            elif not mac_check(stored, bytes(mac)):
                report.entries, report.macs_checked = expected, macs
                return _fail(
                    report,
                    Fault.MAC_INVALID,
                    seq,
                    "the token does not vouch for it (forged or re-hashed).",
                )
            else:
                macs += 1
        elif mac is None:
            unmaced.append(seq)
            what = action if outcome == "success" else f"{action} {outcome}"
            kinds[what] = kinds.get(what, 0) + 1
        if seq == watch:
            watched = stored
        before_prev, prev, last_ts = prev, stored, ts
        expected += 1
    last_seq = expected - 1
    report.entries, report.macs_checked = last_seq, macs
    if newest is not None:
        report.checkpoint_seq = newest.seq
        if newest.seq > last_seq:
            recorded = has_checkpoint_record(newest.seq) if has_checkpoint_record else False
            fault = Fault.TRUNCATED if recorded else Fault.ROLLED_BACK
            return _fail(
                report,
                fault,
                last_seq + 1,
                f"checkpoint {newest.seq} of {newest.time} vouches for {newest.seq} "
                f"entries; only {last_seq} are here.",
            )
        if watched != newest.head:
            return _fail(
                report,
                Fault.CHECKPOINT_MISMATCH,
                newest.seq,
                f"entry {newest.seq} is not the one checkpoint {newest.seq} signed.",
            )
    return report


def _first_fault(
    entry: AuditEntry, expected_seq: int, prev: bytes, before_prev: bytes | None, last_ts: str
) -> tuple[Fault, int, str] | None:
    """What is wrong with ``entry``, the ``expected_seq``-th, after an entry whose hash is
    ``prev`` (and one before it whose hash is ``before_prev``) written at ``last_ts``: the
    fault, the entry it names and why; None if nothing is (e.g. a NULL link in an old row)."""
    if entry.seq != expected_seq:
        if entry.seq > expected_seq:
            return Fault.MISSING, expected_seq, f"expected entry {expected_seq}, found {entry.seq}."
        return Fault.REORDERED, entry.seq, f"expected entry {expected_seq}, found {entry.seq}."
    content_ok = hash_of(entry) == entry.entry_hash
    if not content_ok and _moved(entry):
        return Fault.REORDERED, entry.seq, "it was recorded at another position in the chain."
    if entry.prev_hash != prev:
        if entry.seq >= 3 and entry.prev_hash == before_prev:
            return (
                Fault.INSERTED,
                entry.seq - 1,
                "it is not linked into the chain between its neighbours.",
            )
        return (
            Fault.MODIFIED,
            entry.seq - 1,
            "its hash no longer matches the link the next entry recorded.",
        )
    if not content_ok:
        return Fault.MODIFIED, entry.seq, "its contents do not match its recorded hash."
    if entry.ts < last_ts:
        return Fault.TIME, entry.seq, "its time is earlier than the entry before."
    return None


def _moved(entry: AuditEntry, reach: int = 3) -> bool:
    """True if the entry's hash matches it at a nearby position: it was moved, not edited."""
    for delta in range(-reach, reach + 1):
        if delta and entry.seq + delta > 0:
            moved = AuditEntry(
                entry.seq + delta,
                entry.ts,
                entry.operators_json,
                entry.action,
                entry.subject,
                entry.outcome,
                entry.details_json,
                entry.prev_hash,
            )
            if hash_of(moved) == entry.entry_hash:
                return True
    return False


def _fail(report: Report, fault: Fault, seq: int | None, detail: str) -> Report:
    report.fault, report.bad_seq, report.detail = fault, seq, detail
    return report
