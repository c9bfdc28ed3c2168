"""Operators (roles, enabled, removed) and the approval policy: the rows and their records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.domain.approval import DEFAULT_POLICY, PolicyRule
from app.domain.roles import Role, roles_from_text, roles_text
from app.storage.database import Database
from app.storage.repository import utc_text


@dataclass(frozen=True)
class OperatorRecord:
    name: str
    roles: frozenset[Role]
    enabled: bool
    created_at: str
    created_by: str
    removed_at: str | None

    @property
    def active(self) -> bool:
        """Enabled and not removed: may open the workstation and approve."""
        return self.enabled and self.removed_at is None

    @property
    def roles_text(self) -> str:
        return roles_text(self.roles)


_COLUMNS = "name, roles, enabled, created_at, created_by, removed_at"


def _operator(row: tuple[object, ...]) -> OperatorRecord:
    return OperatorRecord(
        str(row[0]),
        roles_from_text(str(row[1])),
        bool(row[2]),
        str(row[3]),
        str(row[4]),
        None if row[5] is None else str(row[5]),
    )


class OperatorRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, name: str) -> OperatorRecord | None:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM operators WHERE name = ?", (name,))  # noqa: S608
        return _operator(rows[0]) if rows else None

    def all(self, include_removed: bool = False) -> list[OperatorRecord]:
        where = "" if include_removed else " WHERE removed_at IS NULL"
        rows = self.db.query(f"SELECT {_COLUMNS} FROM operators{where} ORDER BY name")  # noqa: S608
        return [_operator(r) for r in rows]

    def add(self, name: str, roles: frozenset[Role], by: str, now: datetime) -> None:
        text = roles_text(roles)
        self.db.execute(
            "INSERT INTO operators (name, role, roles, enabled, created_at, created_by) "
            "VALUES (?, ?, ?, 1, ?, ?)",
            (name, text.split(",")[0], text, utc_text(now), by),
        )

    def set_roles(self, name: str, roles: frozenset[Role]) -> None:
        text = roles_text(roles)
        self.db.execute(
            "UPDATE operators SET roles = ?, role = ? WHERE name = ?",
            (text, text.split(",")[0], name),
        )

    def set_enabled(self, name: str, enabled: bool) -> None:
        self.db.execute("UPDATE operators SET enabled = ? WHERE name = ?", (int(enabled), name))

    def mark_removed(self, name: str, now: datetime) -> None:
        self.db.execute(
            "UPDATE operators SET removed_at = ?, enabled = 0 WHERE name = ?",
            (utc_text(now), name),
        )

    def active_with(self, role: Role) -> list[str]:
        return [o.name for o in self.all() if o.active and role in o.roles]


class PolicyRepository:
    """The approval policy: rows in the database, defaults for action classes not stored."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def rules(self) -> dict[str, PolicyRule]:
        rules = dict(DEFAULT_POLICY)
        for action, approvals, roles in self.db.query(
            "SELECT action, approvals, roles FROM approval_policy"
        ):
            rules[str(action)] = PolicyRule(str(action), int(approvals), roles_from_text(roles))
        return rules

    def rule(self, action: str) -> PolicyRule | None:
        return self.rules().get(action)

    def put(self, rule: PolicyRule) -> None:
        self.db.execute(
            "INSERT INTO approval_policy (action, approvals, roles) VALUES (?, ?, ?) "
            "ON CONFLICT(action) DO UPDATE SET approvals = excluded.approvals, "
            "roles = excluded.roles",
            (rule.action, rule.approvals, rule.roles_text),
        )
