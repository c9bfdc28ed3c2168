"""Numbered schema migrations. Never edit a released step; add the next one.

A step is SQL text, or a function that gets the open database (inside the step's transaction)
when rows must be rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.domain.audit import GENESIS, AuditEntry, entry_hash

if TYPE_CHECKING:
    from app.storage.database import Database

Step = str | Callable[["Database"], None]

MIGRATIONS: list[tuple[int, Step]] = [
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

AUDIT_CHAIN_SQL = """
ALTER TABLE events ADD COLUMN prev_hash BLOB;
ALTER TABLE events ADD COLUMN entry_hash BLOB;
ALTER TABLE events ADD COLUMN mac BLOB;
CREATE INDEX events_action ON events (action);
CREATE INDEX events_ts ON events (ts);
CREATE TABLE checkpoints (
    seq         INTEGER PRIMARY KEY,
    head        BLOB NOT NULL,
    time        TEXT NOT NULL,
    workstation TEXT NOT NULL,
    signature   BLOB NOT NULL
);
"""


def _audit_chain(db: Database) -> None:
    """Schema 3: chain every existing event; they predate the token MAC, and say so."""
    for statement in AUDIT_CHAIN_SQL.split(";"):
        if statement.strip():
            db.execute(statement)
    prev = GENESIS
    rows: list[Any] = db.query(
        "SELECT seq, ts, operators, action, subject, outcome, details FROM events ORDER BY seq"
    )
    for seq, ts, operators, action, subject, outcome, details in rows:
        entry = AuditEntry.of(
            seq, ts, json.loads(operators), action, subject, outcome, json.loads(details)
        )
        digest = entry_hash(entry.canonical(), prev)
        db.execute(
            "UPDATE events SET operators = ?, details = ?, prev_hash = ?, entry_hash = ? "
            "WHERE seq = ?",
            (entry.operators_json, entry.details_json, prev, digest, seq),
        )
        prev = digest
    last = rows[-1][0] if rows else 0
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('audit_mac_from', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (str(last + 1),),
    )


MIGRATIONS.append((3, _audit_chain))

# Schema 4: the queries run at every login stay instant at 100,000 keys (partial indexes
# cover only the few rows they look for; measured by benchmarks/inventory_db.py).
MIGRATIONS.append(
    (
        4,
        """
        CREATE INDEX keys_activation_due ON keys (activation_date)
            WHERE state = 'PRE_ACTIVE' AND activation_date IS NOT NULL;
        CREATE INDEX keys_deactivation_due ON keys (deactivation_date)
            WHERE state IN ('PRE_ACTIVE', 'ACTIVE', 'SUSPENDED') AND deactivation_date IS NOT NULL;
        CREATE INDEX keys_sync_pending ON keys (token_serial) WHERE token_sync = 'pending';
        """,
    )
)

# Schema 5: backup-able keys must carry CKA_WRAP_WITH_TRUSTED. Keys recorded before it was in
# the template are 'pending' until the next login to their token sets it (or the token refuses
# and they are marked 'refused'); keys that cannot be extracted, or are gone, need nothing.
MIGRATIONS.append(
    (
        5,
        """
        ALTER TABLE keys ADD COLUMN wrap_trusted TEXT NOT NULL DEFAULT 'n/a';
        UPDATE keys SET wrap_trusted = 'pending'
            WHERE extractable = 1 AND state NOT IN ('DESTROYED', 'DESTROYED_COMPROMISED');
        CREATE INDEX keys_wrap_trusted_pending ON keys (token_serial)
            WHERE wrap_trusted = 'pending';
        """,
    )
)

# Schema 6: backups made (verified before they are recorded) and which keys each holds.
MIGRATIONS.append(
    (
        6,
        """
        CREATE TABLE backups (
            id              TEXT PRIMARY KEY,
            generation      INTEGER NOT NULL,
            created_at      TEXT NOT NULL,
            directory       TEXT NOT NULL,
            volume_label    TEXT NOT NULL DEFAULT '',
            volume_uuid     TEXT NOT NULL DEFAULT '',
            custodians      TEXT NOT NULL DEFAULT '[]',
            threshold       INTEGER NOT NULL DEFAULT 0,
            passphrase      INTEGER NOT NULL DEFAULT 0,
            kek_check_value TEXT NOT NULL,
            signer          TEXT NOT NULL,
            keys            INTEGER NOT NULL,
            verified_at     TEXT NOT NULL
        );
        CREATE TABLE key_backups (
            key_id     TEXT NOT NULL,
            backup_id  TEXT NOT NULL REFERENCES backups (id),
            generation INTEGER NOT NULL,
            PRIMARY KEY (key_id, backup_id)
        );
        CREATE INDEX key_backups_generation ON key_backups (key_id, generation);
        CREATE TABLE restored_audit (
            backup_id   TEXT PRIMARY KEY,
            workstation TEXT NOT NULL,
            entries     INTEGER NOT NULL,
            head        TEXT NOT NULL,
            document    BLOB NOT NULL,
            restored_at TEXT NOT NULL
        );
        """,
    )
)

# Schema 7: write-ahead intents of token writes (app/services/intents.py). An intent is
# committed before the token is asked and resolved after; a pending one is reconciled at the
# next login.
MIGRATIONS.append(
    (
        7,
        """
        CREATE TABLE intents (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at   TEXT NOT NULL,
            operator     TEXT NOT NULL,
            action       TEXT NOT NULL,
            token_serial TEXT NOT NULL,
            details      TEXT NOT NULL,
            owner        TEXT NOT NULL,
            state        TEXT NOT NULL DEFAULT 'pending',
            resolution   TEXT,
            resolved_at  TEXT
        );
        CREATE INDEX intents_pending ON intents (token_serial) WHERE state = 'pending';
        """,
    )
)




def _operators_and_policy(db: Database) -> None:
    """Schema 8: operators get several roles, an enabled flag and a removal date; the approval
    policy (dual control) lives in the database, starting from the defaults.

    Before schema 8 every operator was a security officer who could do everything, so an
    existing security officer becomes security officer + key custodian (what ``init`` gives
    the first operator now) and keeps every power they had.
    """
    from app.domain.approval import DEFAULT_POLICY  # domain data only

    for statement in (
        "ALTER TABLE operators ADD COLUMN roles TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE operators ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE operators ADD COLUMN removed_at TEXT",
        "UPDATE operators SET roles = CASE role WHEN 'security-officer' "
        "THEN 'security-officer,key-custodian' ELSE role END",
        "CREATE TABLE approval_policy ("
        " action TEXT PRIMARY KEY, approvals INTEGER NOT NULL, roles TEXT NOT NULL)",
    ):
        db.execute(statement)
    db.executemany(
        "INSERT INTO approval_policy (action, approvals, roles) VALUES (?, ?, ?)",
        [(r.action, r.approvals, r.roles_text) for r in DEFAULT_POLICY.values()],
    )


MIGRATIONS.append((8, _operators_and_policy))
# Schema 9: certificates and CRLs made from token keys (app/storage/certificates.py).
CERTIFICATE_TABLES = """
CREATE TABLE certificates (
    serial            TEXT PRIMARY KEY,      -- lower-case hex, no leading zeros
    key_id            TEXT,                  -- subject key when it is managed here, else NULL
    issuer_key_id     TEXT NOT NULL,         -- the managed key that signed it
    subject           TEXT NOT NULL,         -- RFC 4514
    issuer            TEXT NOT NULL,
    profile           TEXT NOT NULL,
    ca                INTEGER NOT NULL,
    path_length       INTEGER,
    not_before        TEXT NOT NULL,
    not_after         TEXT NOT NULL,
    der               BLOB NOT NULL,
    sha256            TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    revoked_at        TEXT,
    revocation_reason TEXT
);
CREATE INDEX certificates_key ON certificates (key_id);
CREATE INDEX certificates_issuer ON certificates (issuer_key_id);
CREATE TABLE crls (
    issuer_key_id TEXT NOT NULL,
    number        INTEGER NOT NULL,
    this_update   TEXT NOT NULL,
    next_update   TEXT NOT NULL,
    der           BLOB NOT NULL,
    sha256        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    PRIMARY KEY (issuer_key_id, number)
);
"""

MIGRATIONS.append((9, CERTIFICATE_TABLES))
# Schema 10: key ceremonies (app/storage/ceremonies.py, app/ceremony/).
CEREMONY_TABLES = """
CREATE TABLE ceremonies (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    title             TEXT NOT NULL,
    script            BLOB NOT NULL,          -- the exact reviewed bytes
    script_sha256     TEXT NOT NULL,
    profile           TEXT NOT NULL,          -- rehearsal | production
    token_serial      TEXT NOT NULL,
    token_label       TEXT NOT NULL,
    workdir           TEXT NOT NULL,
    administrator     TEXT NOT NULL,
    state             TEXT NOT NULL,  -- registering running paused completed failed abandoned
    step_index        INTEGER NOT NULL,
    created_at        TEXT NOT NULL,
    started_at        TEXT,
    ended_at          TEXT,
    reason            TEXT NOT NULL DEFAULT '',
    checkpoint_before TEXT,                   -- JSON {seq, head, time}
    checkpoint_after  TEXT,
    transcript_sha256 TEXT
);
CREATE TABLE ceremony_participants (
    ceremony_id   TEXT NOT NULL REFERENCES ceremonies (id),
    position      INTEGER NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,              -- administrator, witness, custodian, auditor
    kind          TEXT NOT NULL,              -- operator | external
    organisation  TEXT NOT NULL DEFAULT '',
    registered_at TEXT NOT NULL,
    PRIMARY KEY (ceremony_id, position)
);
CREATE TABLE ceremony_steps (
    ceremony_id  TEXT NOT NULL REFERENCES ceremonies (id),
    position     INTEGER NOT NULL,
    step_id      TEXT NOT NULL,
    state        TEXT NOT NULL,               -- pending, performed, signed, failed
    performed_by TEXT,
    performed_at TEXT,
    outputs      TEXT NOT NULL DEFAULT '{}',  -- JSON
    signoffs     TEXT NOT NULL DEFAULT '[]',  -- JSON list
    reason       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (ceremony_id, position)
);
"""

MIGRATIONS.append((10, CEREMONY_TABLES))

# Schema 11: keys adopted from tokens written by other tools remember why their value may have
# been outside the token (JSON list of app.domain.identity.Exposure values).
MIGRATIONS.append((11, "ALTER TABLE keys ADD COLUMN exposure TEXT NOT NULL DEFAULT '[]';"))

# Schema 12: who received which key, when, under which recipient (app/storage/distributions.py).
DISTRIBUTION_TABLE = """
CREATE TABLE distributions (
    id           INTEGER PRIMARY KEY,
    key_id       TEXT NOT NULL,          -- the managed key sent or received
    direction    TEXT NOT NULL,          -- 'sent' (wrap-for) or 'received' (import-wrapped)
    mechanism    TEXT NOT NULL,          -- RSA-OAEP-SHA1 or AES-KWP
    recipient    TEXT NOT NULL,          -- SHA-256 of the recipient SPKI, or the KEK's KCV
    recipient_name TEXT NOT NULL,        -- certificate subject or file name, as given
    kcv          TEXT NOT NULL,          -- the transferred key's KCV
    file_sha256  TEXT NOT NULL,          -- SHA-256 of the transfer file
    operators    TEXT NOT NULL,          -- JSON list: initiator, then approvers
    created_at   TEXT NOT NULL,
    event_seq    INTEGER                 -- the audit entry that records it
);
CREATE INDEX distributions_key ON distributions (key_id);
"""

MIGRATIONS.append((12, DISTRIBUTION_TABLE))


# Schema 13: the inventory's first screenful at unlock (issue 17) reads the first rows in name
# order (``KeyRepository.first_by_name``) and its totals (``count_by_token_and_state``,
# ``count_not_backed_up``) from indexes, instead of reading and sorting every row.
MIGRATIONS.append(
    (
        13,
        """
        CREATE INDEX keys_name_order ON keys (name COLLATE NOCASE, name);
        CREATE INDEX keys_token_state ON keys (token_serial, state);
        CREATE INDEX keys_backup_able ON keys (extractable, state, id);
        """,
    )
)

LATEST = MIGRATIONS[-1][0]
