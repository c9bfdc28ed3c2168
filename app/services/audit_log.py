"""The workstation's audit log: its token, sealing, signed checkpoints, verification, export.

The audit token is the token that holds the workstation's audit keys: the one chosen at
initialisation (the embedded token created then, or a present token named with
``AuditTokenChoice``), else the first token logged in to that can hold them. While it is
logged in every new entry carries its HMAC; checkpoints are signed by its key and kept on it
as data objects, outside the database, so a rolled-back or truncated database file shows.
"""

from __future__ import annotations

import base64
import hmac as std_hmac
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.domain.audit import AuditEntry, Checkpoint, Fault, Report, verify_chain
from app.domain.key_history import differences, replay
from app.errors import (
    RESTORE_HOME_ADVICE,
    AuditIntegrityError,
    DatabaseRolledBack,
    KeysteadError,
    ValidationError,
)
from app.hsm.session import TokenSession, audit_keys_refusal, public_checkpoint_documents
from app.services.audit import Outcome, record
from app.services.executor import assert_core_thread
from app.services.tokens import TokenService
from app.storage.database import Database
from app.storage.events import (
    count_events,
    entry_hash_at,
    has_checkpoint,
    head,
    iter_event_rows,
    iter_events,
    iter_key_events,
    query_events,
    save_checkpoint,
)
from app.storage.files import write_atomic
from app.storage.repository import KeyRepository, SettingsRepository, utc_text

log = logging.getLogger(__name__)

META_TOKEN = "audit_token_serial"  # noqa: S105 (a settings key)
META_PUBLIC_KEY = "audit_checkpoint_public_key"
META_MAC_FROM = "audit_mac_from"


@dataclass(frozen=True)
class AuditFilter:
    """Filters of the audit page and ``keystead audit list``; all run in SQL."""

    since: datetime | None = None
    until: datetime | None = None
    operator: str | None = None
    action: str | None = None
    subject: str | None = None
    outcome: str | None = None
    key_name: str | None = None  # entries about keys whose current name contains this
    newest_first: bool = False  # the GUI's default; the CLI lists oldest first

    def sql(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.since:
            clauses.append("ts >= ?")
            params.append(utc_text(self.since))
        if self.until:
            clauses.append("ts <= ?")
            params.append(utc_text(self.until))
        if self.operator:
            clauses.append("operators LIKE ?")
            params.append(f'%"{_like(self.operator)}"%')
        if self.action:
            clauses.append("action LIKE ? ESCAPE '\\'")
            params.append(f"%{_like(self.action)}%")
        if self.subject:
            clauses.append("subject LIKE ? ESCAPE '\\'")
            params.append(f"%{_like(self.subject)}%")
        if self.outcome:
            clauses.append("outcome = ?")
            params.append(self.outcome)
        if self.key_name:
            clauses.append(
                "subject IN (SELECT 'key:' || id FROM keys WHERE name LIKE ? ESCAPE '\\')"
            )
            params.append(f"%{_like(self.key_name)}%")
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class AuditLog:
    """Core-thread service around the audit chain."""

    def __init__(
        self,
        db: Database,
        tokens: TokenService,
        workstation_id: str,
        operator: str,
        clock: Callable[[], datetime],
        database_id: str = "",
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.workstation_id = workstation_id
        self.database_id = database_id  # ``database_identity`` of the open database's key
        self.operator = operator
        self.clock = clock
        self.settings = SettingsRepository(db)

    # --- the audit token -------------------------------------------------------------------

    @property
    def token_serial(self) -> str | None:
        return self.settings.get(META_TOKEN)

    @property
    def sealing(self) -> bool:
        """True while new entries carry the token's MAC."""
        return self.db.sealer is not None

    def _session(self) -> TokenSession | None:
        serial = self.token_serial
        return next((s for s in self.tokens.logged_in() if s.info.serial == serial), None)

    def on_login(self, serial: str) -> None:
        """Login hook: designate the first token, check checkpoints, start sealing."""
        session = next(s for s in self.tokens.logged_in() if s.info.serial == serial)
        if self.token_serial is None:
            refusal = audit_keys_refusal(session.module, session.info)
            if refusal is not None:
                log.warning("%s; it is not made the audit token", refusal)
                return
            self._designate(session)
        if serial != self.token_serial:
            return
        self._check_rollback(session)
        self.db.sealer = session.audit_mac

    def on_logout(self, serial: str) -> None:
        if serial == self.token_serial:
            self.db.sealer = None

    def _designate(self, session: TokenSession) -> None:
        created = session.ensure_audit_keys()
        public = session.checkpoint_public_key()
        self.db.sealer = session.audit_mac  # the designation itself is sealed
        with self.db.transaction():
            self.settings.put(META_TOKEN, session.info.serial)
            self.settings.put(META_PUBLIC_KEY, base64.b64encode(public).decode("ascii"))
            if self.settings.get(META_MAC_FROM) is None:
                self.settings.put(META_MAC_FROM, str(head(self.db)[0] + 1))
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="audit.keys",
                subject=f"token:{session.info.serial}",
                outcome=Outcome.SUCCESS,
                details={"label": session.info.label, "created": created},
            )
        log.info("token %s holds the audit keys", session.info.serial)

    def _check_rollback(self, session: TokenSession) -> None:
        try:
            self.check_rollback(session.checkpoint_documents())
        except DatabaseRolledBack:
            self.tokens.logout(session.info.serial)
            raise

    def precheck_rollback(self) -> bool:
        """Before this run writes anything: if the audit token is present, compare the
        database with the checkpoints the token shows without a login. True if checked;
        raises DatabaseRolledBack (and nothing has been written) on any mismatch."""
        serial = self.token_serial
        if serial is None:
            return False
        for module in self.tokens.modules.values():
            try:
                documents = public_checkpoint_documents(module, serial)
            except KeysteadError:
                continue
            self.check_rollback(documents)
            return True
        return False

    def check_rollback(self, documents: list[bytes]) -> None:
        """The newest checkpoint signed by this workstation's audit key must name this
        workstation and this database key, and the database must hold exactly the chain it
        vouches for up to its sequence number. The words depend only on the token's
        checkpoint and the kind of mismatch, so a retry gets the same refusal."""
        newest = self._newest_signed(documents)
        if newest is None:
            return
        advice = f"Nothing was changed. {RESTORE_HOME_ADVICE}"
        if newest.workstation != self.workstation_id:
            raise DatabaseRolledBack(
                f"The audit token's newest checkpoint ({newest.time}) belongs to workstation "
                f"{newest.workstation}, not to this one ({self.workstation_id}): the keyslot "
                f"file or the database was replaced or edited. {advice}"
            )
        if not newest.vouches_for(self.database_id):
            raise DatabaseRolledBack(
                f"The audit token's newest checkpoint ({newest.time}) vouches for another "
                f"database key: the database or the keyslot file was replaced. {advice}"
            )
        stored = entry_hash_at(self.db, newest.seq)
        if stored is None:
            kind = "truncated" if has_checkpoint(self.db, newest.seq) else "older than the token"
            raise DatabaseRolledBack(
                f"The database is {kind}: the token's checkpoint of {newest.time} vouches for "
                f"{newest.seq} audit entries and the database lacks entry {newest.seq}. {advice}"
            )
        if stored != newest.head:
            raise DatabaseRolledBack(
                f"The database differs from the token's checkpoint of {newest.time}: its entry "
                f"{newest.seq} is not the one the token vouches for (an older copy that has "
                f"been used since?). {advice}"
            )

    def _newest_signed(self, documents: list[bytes]) -> Checkpoint | None:
        """The newest (by sequence number, then time) checkpoint signed by this workstation's
        audit key, whatever workstation it names; None if none is. Signatures are checked
        newest first and the first good one ends the search: the token keeps eight, and a
        check at every unlock and login made eight ECDSA verifications where one decides."""
        key = self.public_key()
        newest_first = sorted(_checkpoints(documents), key=lambda c: (c.seq, c.time), reverse=True)
        return next((c for c in newest_first if _signed(key, c)), None)

    def _signed(self, documents: list[bytes]) -> list[Checkpoint]:
        """Checkpoints signed by this workstation's audit key, whatever workstation they
        name (the name is checked, not used to filter)."""
        key = self.public_key()
        return [c for c in _checkpoints(documents) if _signed(key, c)]

    # --- checkpoints -----------------------------------------------------------------------

    def public_key(self) -> ec.EllipticCurvePublicKey | None:
        encoded = self.settings.get(META_PUBLIC_KEY)
        if not encoded:
            return None
        key = serialization.load_der_public_key(base64.b64decode(encoded))
        return key if isinstance(key, ec.EllipticCurvePublicKey) else None

    def checkpoint(self, reason: str, next_database: str = "") -> Checkpoint:
        """Sign the current head, keep it on the token and in the database; audited.
        ``next_database``: the identity of the key a workstation-key rotation is about to move
        the database to (see ``Checkpoint``), else empty."""
        assert_core_thread()
        session = self._session()
        if session is None:
            raise AuditIntegrityError("Log in to the audit token to make a checkpoint.")
        seq, digest = head(self.db)
        unsigned = Checkpoint(
            self.workstation_id,
            seq,
            digest,
            utc_text(self.clock()),
            database=self.database_id,
            next_database=next_database,
        )
        signed = Checkpoint(
            unsigned.workstation,
            seq,
            digest,
            unsigned.time,
            session.sign_checkpoint(unsigned.message()),
            self.database_id,
            next_database,
        )
        with self.db.transaction():
            save_checkpoint(self.db, signed)
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="audit.checkpoint",
                subject=f"workstation:{self.workstation_id}",
                outcome=Outcome.SUCCESS,
                details={
                    "seq": seq,
                    "head": digest.hex(),
                    "reason": reason,
                    **({"next_database": next_database} if next_database else {}),
                },
            )
            session.store_checkpoint(seq, json.dumps(signed.to_json()).encode())
        return signed

    def _token_checkpoints(self, session: TokenSession) -> list[Checkpoint]:
        return [
            c
            for c in self._signed(session.checkpoint_documents())
            if c.workstation == self.workstation_id
        ]

    # --- verification ----------------------------------------------------------------------

    def verify(self) -> Report:
        """Recompute the chain, check MACs (token logged in) and the newest checkpoint."""
        assert_core_thread()
        session = self._session()
        mac_from = int(self.settings.get(META_MAC_FROM) or 1)
        check: Callable[[bytes, bytes], bool] | None = None
        if session is not None:
            seal = session.audit_mac_loop()

            def check(digest: bytes, mac: bytes) -> bool:
                return std_hmac.compare_digest(seal(digest), mac)

        checkpoints = self._token_checkpoints(session) if session else []
        report = verify_chain(
            iter_event_rows(self.db),
            check,
            checkpoints,
            lambda seq: has_checkpoint(self.db, seq),
            mac_from=mac_from,
        )
        if report.ok:
            self._compare_inventory(report)
        if session is None and report.ok:
            report.detail = (
                "Token MACs and checkpoints were not checked: the audit token is not logged in."
            )
        outcome = Outcome.SUCCESS if report.ok else Outcome.FAILED
        if self.db.read_only:  # a read-only copy: verified, nothing written
            return report
        with self.db.transaction():
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="audit.verify",
                subject=f"workstation:{self.workstation_id}",
                outcome=outcome,
                details={
                    "entries": report.entries,
                    "macs": report.macs_checked,
                    "checkpoint": report.checkpoint_seq,
                    "fault": report.fault.value if report.fault else None,
                    "bad_seq": report.bad_seq,
                    **({"differences": report.differences} if report.differences else {}),
                },
            )
        return report

    def _compare_inventory(self, report: Report) -> None:
        """Replay the chain's key entries and compare each key record with what the chain last
        recorded for it (``app.domain.key_history``); a difference fails ``report``."""
        found = differences(KeyRepository(self.db).all(), replay(iter_key_events(self.db)))
        if not found:
            return
        report.fault = Fault.INVENTORY
        report.bad_seq = next((d.seq for d in found if d.seq is not None), None)
        report.differences = [d.text for d in found]
        report.detail = "; ".join(report.differences)

    # --- reading and export ----------------------------------------------------------------

    def count(self, flt: AuditFilter = AuditFilter()) -> int:
        where, params = flt.sql()
        return count_events(self.db, where, params)

    def page(self, flt: AuditFilter, offset: int, limit: int) -> list[AuditEntry]:
        where, params = flt.sql()
        return query_events(self.db, where, params, offset, limit, flt.newest_first)

    def key_names(self) -> dict[str, str]:
        """Subject -> key name for every key ("key:<id>" -> name), to show names not ids."""
        rows = self.db.query("SELECT id, name FROM keys")
        return {f"key:{key_id}": name for key_id, name in rows}

    def last_checkpoint(self) -> tuple[int, str] | None:
        """(sequence, UTC time text) of the newest signed checkpoint, or None."""
        rows = self.db.query("SELECT seq, time FROM checkpoints ORDER BY seq DESC LIMIT 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def failed_logins_since_unlock(self) -> int:
        """Failed token logins recorded since the newest unlock of the workstation."""
        return int(
            self.db.scalar(
                "SELECT count(*) FROM events WHERE action = 'token.login' AND outcome = 'failed' "
                "AND seq > coalesce((SELECT max(seq) FROM events "
                "WHERE action = 'workstation.unlock'), 0)"
            )
        )

    def head_seq(self) -> int:
        """The newest entry's sequence number (0 for an empty log)."""
        return head(self.db)[0]

    def document(self, entries: list[AuditEntry] | None = None) -> dict[str, Any]:
        """The JSON export's document: every entry with its hashes and MAC, the checkpoints
        the token holds and the checkpoint public key (docs/audit-verification.md)."""
        if entries is None:
            entries = list(iter_events(self.db))
        session = self._session()
        checkpoints = self._token_checkpoints(session) if session else []
        public = self.settings.get(META_PUBLIC_KEY)
        return {
            "format": "keystead-audit-export",
            "version": 1,
            "workstation": self.workstation_id,
            "checkpoint_public_key": public
            and serialization.load_der_public_key(base64.b64decode(public))
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii"),
            "mac_from": int(self.settings.get(META_MAC_FROM) or 1),
            "checkpoints": [c.to_json() for c in sorted(checkpoints, key=lambda c: c.seq)],
            "entries": [_entry_json(e) for e in entries],
        }

    def export(self, path: Path, fmt: str, overwrite: bool = False) -> int:
        """Write every entry to ``path`` (csv for reading, json for verification); audited.
        An existing file is replaced only with ``overwrite`` (evidence is never written over
        by accident); ValidationError otherwise, before anything is read."""
        assert_core_thread()
        if fmt not in ("csv", "json"):
            raise ValidationError("Export format is csv or json.")
        from app.services.key_use import check_target

        check_target(path, overwrite)
        entries = list(iter_events(self.db))
        if fmt == "csv":
            data = _csv(entries)
        else:
            data = json.dumps(self.document(entries), indent=1, ensure_ascii=False).encode("utf-8")
        write_atomic(path, data, mode=0o600)
        if self.db.read_only:  # a read-only copy: exported, nothing written to it
            return len(entries)
        with self.db.transaction():
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="audit.export",
                subject=f"workstation:{self.workstation_id}",
                outcome=Outcome.SUCCESS,
                details={"format": fmt, "entries": len(entries), "file": path.name},
            )
        return len(entries)


def _checkpoints(documents: list[bytes]) -> list[Checkpoint]:
    """The documents that parse as checkpoints, in order (signatures not checked here)."""
    found = []
    for document in documents:
        try:
            found.append(Checkpoint.from_json(json.loads(document)))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return found


def _signed(key: ec.EllipticCurvePublicKey | None, checkpoint: Checkpoint) -> bool:
    if key is None:
        return False
    try:
        key.verify(checkpoint.signature, checkpoint.message(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "ts": entry.ts,
        "operators": list(entry.operators),
        "action": entry.action,
        "subject": entry.subject,
        "outcome": entry.outcome,
        "details": entry.details,
        "prev_hash": entry.prev_hash.hex(),
        "entry_hash": entry.entry_hash.hex(),
        "mac": entry.mac.hex() if entry.mac else None,
    }


def _csv(entries: list[AuditEntry]) -> bytes:
    import csv  # (only for an export: not loaded by every command)

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "seq",
            "time_utc",
            "operators",
            "action",
            "subject",
            "outcome",
            "details",
            "entry_hash",
            "sealed",
        ]
    )
    for e in entries:
        writer.writerow(
            [
                e.seq,
                e.ts,
                "; ".join(e.operators),
                e.action,
                e.subject,
                e.outcome,
                json.dumps(e.details, sort_keys=True, ensure_ascii=False),
                e.entry_hash.hex(),
                "yes" if e.mac else "no",
            ]
        )
    return out.getvalue().encode("utf-8")
