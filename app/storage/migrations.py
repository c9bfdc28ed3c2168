"""Numbered schema migrations. Never edit a released step; add the next one."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE operators (
            name       TEXT PRIMARY KEY,
            role       TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL
        );
        CREATE TABLE modules (
            path     TEXT PRIMARY KEY,
            embedded INTEGER NOT NULL DEFAULT 0,
            added_at TEXT NOT NULL
        );
        CREATE TABLE tokens (
            serial     TEXT PRIMARY KEY,
            label      TEXT NOT NULL,
            model      TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            last_seen  TEXT NOT NULL
        );
        CREATE TABLE pin_failures (
            token_serial TEXT PRIMARY KEY,
            failures     INTEGER NOT NULL,
            last_failure TEXT NOT NULL
        );
        CREATE TABLE keys (
            id           TEXT PRIMARY KEY,
            name         TEXT NOT NULL UNIQUE,
            algorithm    TEXT NOT NULL,
            purpose      TEXT NOT NULL,
            state        TEXT NOT NULL,
            token_serial TEXT NOT NULL,
            token_label  TEXT NOT NULL,
            cka_id       TEXT NOT NULL,
            extractable  INTEGER NOT NULL,
            kcv          TEXT,
            fingerprint  TEXT,
            spki         BLOB,
            created_at   TEXT NOT NULL,
            created_by   TEXT NOT NULL,
            tags         TEXT NOT NULL DEFAULT '[]',
            notes        TEXT NOT NULL DEFAULT '',
            UNIQUE (token_serial, cka_id)
        );
        CREATE TABLE events (
            seq       INTEGER PRIMARY KEY AUTOINCREMENT,
            ts        TEXT NOT NULL,
            operators TEXT NOT NULL,
            action    TEXT NOT NULL,
            subject   TEXT NOT NULL,
            outcome   TEXT NOT NULL,
            details   TEXT NOT NULL
        );
        CREATE INDEX events_subject ON events (subject);
        """,
    ),
]

MIGRATIONS.append(
    (
        2,
        """
        ALTER TABLE keys ADD COLUMN activation_date TEXT;
        ALTER TABLE keys ADD COLUMN deactivation_date TEXT;
        ALTER TABLE keys ADD COLUMN compromise_date TEXT;
        ALTER TABLE keys ADD COLUMN replaces TEXT;
        ALTER TABLE keys ADD COLUMN replaced_by TEXT;
        ALTER TABLE keys ADD COLUMN token_sync TEXT NOT NULL DEFAULT 'ok';
        CREATE INDEX keys_deactivation ON keys (deactivation_date);
        """,
    )
)

LATEST = MIGRATIONS[-1][0]
