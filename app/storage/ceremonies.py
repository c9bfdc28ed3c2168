"""Key ceremonies as recorded (tables ``ceremonies``, ``ceremony_participants``,
``ceremony_steps``; schema 10). Rows only: the state machine is ``app.ceremony.runner``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.storage.database import Database


@dataclass(frozen=True)
class CeremonyRow:
    id: str
    name: str
    title: str
    script: bytes
    script_sha256: str
    profile: str
    token_serial: str
    token_label: str
    workdir: str
    administrator: str
    state: str
    step_index: int
    created_at: str
    started_at: str | None
    ended_at: str | None
    reason: str
    checkpoint_before: dict[str, Any] | None
    checkpoint_after: dict[str, Any] | None
    transcript_sha256: str | None


@dataclass(frozen=True)
class ParticipantRow:
    position: int
    name: str
    role: str  # administrator, witness, custodian, auditor
    kind: str  # operator | external
    organisation: str
    registered_at: str


@dataclass(frozen=True)
class StepRow:
    position: int
    step_id: str
    state: str  # pending, performed, signed, failed
    performed_by: str | None
    performed_at: str | None
    outputs: dict[str, str] = field(default_factory=dict)
    signoffs: list[dict[str, str]] = field(default_factory=list)
    reason: str = ""


_COLUMNS = (
    "id, name, title, script, script_sha256, profile, token_serial, token_label, workdir, "
    "administrator, state, step_index, created_at, started_at, ended_at, reason, "
    "checkpoint_before, checkpoint_after, transcript_sha256"
)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class CeremonyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, row: CeremonyRow) -> None:
        marks = ", ".join("?" for _ in _COLUMNS.split(","))
        self.db.execute(
            f"INSERT INTO ceremonies ({_COLUMNS}) VALUES ({marks})",  # noqa: S608
            (
                row.id,
                row.name,
                row.title,
                row.script,
                row.script_sha256,
                row.profile,
                row.token_serial,
                row.token_label,
                row.workdir,
                row.administrator,
                row.state,
                row.step_index,
                row.created_at,
                row.started_at,
                row.ended_at,
                row.reason,
                None if row.checkpoint_before is None else _json(row.checkpoint_before),
                None if row.checkpoint_after is None else _json(row.checkpoint_after),
                row.transcript_sha256,
            ),
        )

    def update(self, ceremony_id: str, **values: Any) -> None:
        allowed = {
            "state",
            "step_index",
            "started_at",
            "ended_at",
            "reason",
            "checkpoint_before",
            "checkpoint_after",
            "transcript_sha256",
            "token_label",
        }
        if not values or set(values) - allowed:
            raise ValueError(f"cannot update {sorted(set(values) - allowed)}")
        encoded = {
            k: _json(v) if k.startswith("checkpoint_") and v is not None else v
            for k, v in values.items()
        }
        assignments = ", ".join(f"{k} = ?" for k in encoded)
        self.db.execute(
            f"UPDATE ceremonies SET {assignments} WHERE id = ?",  # noqa: S608 (fixed names)
            (*encoded.values(), ceremony_id),
        )

    def get(self, ceremony_id: str) -> CeremonyRow | None:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM ceremonies WHERE id = ?",  # noqa: S608
            (ceremony_id,),
        )
        return _ceremony(rows[0]) if rows else None

    def find(self, prefix: str) -> list[CeremonyRow]:
        """Ceremonies whose id starts with ``prefix`` (ids are uuids; people type a prefix)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM ceremonies WHERE id LIKE ? ESCAPE '\\'",  # noqa: S608
            (escaped + "%",),
        )
        return [_ceremony(r) for r in rows]

    def all(self) -> list[CeremonyRow]:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM ceremonies ORDER BY created_at, id"  # noqa: S608
        )
        return [_ceremony(r) for r in rows]

    # --- participants ---------------------------------------------------------------------

    def add_participant(self, ceremony_id: str, row: ParticipantRow) -> None:
        self.db.execute(
            "INSERT INTO ceremony_participants (ceremony_id, position, name, role, kind, "
            "organisation, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                ceremony_id,
                row.position,
                row.name,
                row.role,
                row.kind,
                row.organisation,
                row.registered_at,
            ),
        )

    def participants(self, ceremony_id: str) -> list[ParticipantRow]:
        rows = self.db.query(
            "SELECT position, name, role, kind, organisation, registered_at "
            "FROM ceremony_participants WHERE ceremony_id = ? ORDER BY position",
            (ceremony_id,),
        )
        return [ParticipantRow(*r) for r in rows]

    # --- steps ----------------------------------------------------------------------------

    def add_step(self, ceremony_id: str, position: int, step_id: str) -> None:
        self.db.execute(
            "INSERT INTO ceremony_steps (ceremony_id, position, step_id, state) "
            "VALUES (?, ?, ?, 'pending')",
            (ceremony_id, position, step_id),
        )

    def put_step(self, ceremony_id: str, row: StepRow) -> None:
        self.db.execute(
            "UPDATE ceremony_steps SET state = ?, performed_by = ?, performed_at = ?, "
            "outputs = ?, signoffs = ?, reason = ? WHERE ceremony_id = ? AND position = ?",
            (
                row.state,
                row.performed_by,
                row.performed_at,
                _json(row.outputs),
                _json(row.signoffs),
                row.reason,
                ceremony_id,
                row.position,
            ),
        )

    def steps(self, ceremony_id: str) -> list[StepRow]:
        rows = self.db.query(
            "SELECT position, step_id, state, performed_by, performed_at, outputs, signoffs, "
            "reason FROM ceremony_steps WHERE ceremony_id = ? ORDER BY position",
            (ceremony_id,),
        )
        return [
            StepRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]), r[7])
            for r in rows
        ]


def _ceremony(row: Any) -> CeremonyRow:
    values = list(row)
    values[3] = bytes(values[3])
    values[16] = json.loads(values[16]) if values[16] else None
    values[17] = json.loads(values[17]) if values[17] else None
    return CeremonyRow(*values)
