"""Certificates and CRLs made from token keys (tables ``certificates`` and ``crls``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.storage.database import Database
from app.storage.repository import utc_text

# The tables are created by schema step 5 (app/storage/migrations.py).
_COLUMNS = (
    "serial, key_id, issuer_key_id, subject, issuer, profile, ca, path_length, not_before, "
    "not_after, der, sha256, created_at, created_by, revoked_at, revocation_reason"
)


@dataclass(frozen=True)
class StoredCertificate:
    serial: str
    key_id: str | None
    issuer_key_id: str
    subject: str
    issuer: str
    profile: str
    ca: bool
    path_length: int | None
    not_before: str
    not_after: str
    der: bytes
    sha256: str
    created_at: str
    created_by: str
    revoked_at: str | None
    revocation_reason: str | None


@dataclass(frozen=True)
class StoredCrl:
    issuer_key_id: str
    number: int
    this_update: str
    next_update: str
    der: bytes
    sha256: str
    created_at: str
    created_by: str


def _certificate(row: Any) -> StoredCertificate:
    values = list(row)
    values[6] = bool(values[6])
    values[10] = bytes(values[10])
    return StoredCertificate(*values)


class CertificateRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, cert: StoredCertificate) -> None:
        marks = ", ".join("?" for _ in _COLUMNS.split(","))
        self.db.execute(
            f"INSERT INTO certificates ({_COLUMNS}) VALUES ({marks})",  # noqa: S608
            (
                cert.serial,
                cert.key_id,
                cert.issuer_key_id,
                cert.subject,
                cert.issuer,
                cert.profile,
                int(cert.ca),
                cert.path_length,
                cert.not_before,
                cert.not_after,
                cert.der,
                cert.sha256,
                cert.created_at,
                cert.created_by,
                cert.revoked_at,
                cert.revocation_reason,
            ),
        )

    def get(self, serial: str) -> StoredCertificate | None:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM certificates WHERE serial = ?",  # noqa: S608
            (serial,),
        )
        return _certificate(rows[0]) if rows else None

    def listing(self, key_id: str | None = None) -> list[StoredCertificate]:
        """Certificates of a key (as subject or issuer), or all; oldest first."""
        if key_id is None:
            rows = self.db.query(
                f"SELECT {_COLUMNS} FROM certificates ORDER BY created_at, rowid"  # noqa: S608
            )
        else:
            rows = self.db.query(
                f"SELECT {_COLUMNS} FROM certificates WHERE key_id = ? OR issuer_key_id = ? "  # noqa: S608
                "ORDER BY created_at, rowid",
                (key_id, key_id),
            )
        return [_certificate(r) for r in rows]

    def newest_for_key(self, key_id: str) -> StoredCertificate | None:
        """The newest unrevoked certificate whose subject key is ``key_id``."""
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM certificates WHERE key_id = ? "  # noqa: S608
            "AND revoked_at IS NULL ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (key_id,),
        )
        return _certificate(rows[0]) if rows else None

    def ca_certificate(self, key_id: str) -> StoredCertificate | None:
        """The newest unrevoked CA certificate whose subject key is ``key_id``."""
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM certificates WHERE key_id = ? AND ca = 1 "  # noqa: S608
            "AND revoked_at IS NULL ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (key_id,),
        )
        return _certificate(rows[0]) if rows else None

    def managed_key(self, fingerprint: str) -> str | None:
        """The id of the managed key whose public key has this SHA-256 fingerprint."""
        value = self.db.scalar("SELECT id FROM keys WHERE fingerprint = ? LIMIT 1", (fingerprint,))
        return None if value is None else str(value)

    def revoke(self, serial: str, when: datetime, reason: str) -> None:
        self.db.execute(
            "UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE serial = ?",
            (utc_text(when), reason, serial),
        )

    def revoked_by(self, issuer_key_id: str) -> list[StoredCertificate]:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM certificates WHERE issuer_key_id = ? "  # noqa: S608
            "AND revoked_at IS NOT NULL ORDER BY revoked_at, rowid",
            (issuer_key_id,),
        )
        return [_certificate(r) for r in rows]

    def last_crl_number(self, issuer_key_id: str) -> int:
        value = self.db.scalar(
            "SELECT max(number) FROM crls WHERE issuer_key_id = ?", (issuer_key_id,)
        )
        return int(value or 0)

    def insert_crl(self, crl: StoredCrl) -> None:
        self.db.execute(
            "INSERT INTO crls (issuer_key_id, number, this_update, next_update, der, sha256, "
            "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                crl.issuer_key_id,
                crl.number,
                crl.this_update,
                crl.next_update,
                crl.der,
                crl.sha256,
                crl.created_at,
                crl.created_by,
            ),
        )
