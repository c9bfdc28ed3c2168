"""Backups this workstation made and verified, and which keys each holds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.keys import BackupStatus
from app.storage.database import Database
from app.storage.repository import utc_text


@dataclass(frozen=True)
class BackupRecord:
    id: str
    generation: int
    created_at: str
    directory: str
    volume_label: str
    volume_uuid: str
    custodians: tuple[str, ...]
    threshold: int
    passphrase: bool
    kek_check_value: str
    signer: str  # SHA-256 hex of the manifest-signing key's SPKI
    keys: int
    verified_at: str


_COLUMNS = (
    "id, generation, created_at, directory, volume_label, volume_uuid, custodians, threshold, "
    "passphrase, kek_check_value, signer, keys, verified_at"
)


class BackupRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def newest_generation(self) -> int:
        return int(self.db.scalar("SELECT coalesce(max(generation), 0) FROM backups"))

    def add(self, backup: BackupRecord, key_ids: list[str]) -> None:
        self.db.execute(
            f"INSERT INTO backups ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                backup.id,
                backup.generation,
                backup.created_at,
                backup.directory,
                backup.volume_label,
                backup.volume_uuid,
                json.dumps(list(backup.custodians)),
                backup.threshold,
                int(backup.passphrase),
                backup.kek_check_value,
                backup.signer,
                backup.keys,
                backup.verified_at,
            ),
        )
        self.db.executemany(  # one statement for every key (11,000 INSERTs took 1 s)
            "INSERT INTO key_backups (key_id, backup_id, generation) VALUES (?, ?, ?)",
            [(key_id, backup.id, backup.generation) for key_id in key_ids],
        )

    def all(self) -> list[BackupRecord]:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM backups ORDER BY generation")  # noqa: S608
        return [
            BackupRecord(
                str(r[0]),
                int(r[1]),
                str(r[2]),
                str(r[3]),
                str(r[4]),
                str(r[5]),
                tuple(json.loads(r[6])),
                int(r[7]),
                bool(r[8]),
                str(r[9]),
                str(r[10]),
                int(r[11]),
                str(r[12]),
            )
            for r in rows
        ]

    def newest_per_key(self) -> dict[str, int]:
        """key id -> newest generation of a verified backup holding it."""
        rows = self.db.query("SELECT key_id, max(generation) FROM key_backups GROUP BY key_id")
        return {str(r[0]): int(r[1]) for r in rows}

    def status_per_key(self, key_ids: list[str] | None = None) -> dict[str, BackupStatus]:
        """key id -> its newest verified backup (one query for every key, or for
        ``key_ids`` only: at most 500 at a time)."""
        rows: list[Any] = []
        chunks: list[list[str] | None] = (
            [None]
            if key_ids is None
            else [key_ids[i : i + 500] for i in range(0, len(key_ids), 500)]
        )
        for chunk in chunks:
            where = f"WHERE kb.key_id IN ({', '.join('?' for _ in chunk)}) " if chunk else ""
            rows += self.db.query(
                "SELECT kb.key_id, b.generation, b.verified_at, b.volume_label, "  # noqa: S608
                "b.volume_uuid FROM key_backups kb JOIN backups b ON b.id = kb.backup_id "
                f"{where}ORDER BY b.generation",
                tuple(chunk or ()),
            )
        found: dict[str, BackupStatus] = {}
        for key_id, generation, verified_at, label, volume_uuid in rows:
            copies = found[key_id].copies + 1 if key_id in found else 1
            found[str(key_id)] = BackupStatus(
                int(generation), str(verified_at), str(label or volume_uuid or ""), copies
            )
        return found

    def mark_verified(self, backup_id: str, when: str) -> bool:
        """Record a later verification of a backup this workstation made; False if unknown."""
        return self.db.execute(
            "UPDATE backups SET verified_at = ? WHERE id = ?", (when, backup_id)
        ) > 0

    def keep_audit(
        self, backup_id: str, workstation: str, entries: int, head: str, document: bytes, now: str
    ) -> None:
        """Keep a restored backup's verified audit history (its chain stays as it was)."""
        self.db.execute(
            "INSERT OR IGNORE INTO restored_audit "
            "(backup_id, workstation, entries, head, document, restored_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (backup_id, workstation, entries, head, document, now),
        )

    def restored_audit(self) -> list[tuple[str, str, int, str]]:
        rows = self.db.query(
            "SELECT backup_id, workstation, entries, head FROM restored_audit ORDER BY restored_at"
        )
        return [(str(r[0]), str(r[1]), int(r[2]), str(r[3])) for r in rows]


def stamp(moment: datetime) -> str:
    return utc_text(moment)
