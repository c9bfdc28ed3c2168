"""Tamper evidence: every change to the decrypted database is found at the right entry; an
older or cut database is caught against the token's checkpoints; forgery without the token's
MAC key fails; the offline script from the docs agrees; no seal, no change."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.domain.algorithms import Algorithm
from app.domain.audit import Fault, canonical, entry_hash, json_text
from app.domain.keys import KeyState
from app.domain.lifecycle import Action
from app.errors import (
    AuditIntegrityError,
    DatabaseRolledBack,
    PolicyError,
    TokenRemoved,
    ValidationError,
)
from app.services.workstation import Workstation
from tests.support import OPERATOR, PASS, PIN, Bench, peer_objects

pytestmark = pytest.mark.hsm

DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit-verification.md"


def busy(bench: Bench, keys: int = 4, prefix: str = "k") -> None:
    """A realistic history: generations, transitions and a refused transition."""
    for i in range(keys):
        key = bench(bench.ws.keys.generate, "Life", Algorithm.AES_128, f"{prefix}{i}")
        bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    with pytest.raises(PolicyError):  # a denied transition is part of history
        bench(
            bench.ws.lifecycle.transition, f"{prefix}0", Action.DESTROY, confirm_name=f"{prefix}0"
        )


def sql(bench: Bench, statement: str, *params: Any) -> None:
    """Tamper with the decrypted database directly, as someone with the database key could."""

    def run() -> None:
        with bench.ws.db.transaction():
            bench.ws.db.execute(statement, params)

    bench(run)


def verify(bench: Bench) -> Any:
    return bench(bench.ws.audit.verify)


def test_clean_history_verifies_with_macs_and_checkpoint(bench: Bench) -> None:
    busy(bench)
    bench(bench.ws.audit.checkpoint, "test")
    report = verify(bench)
    assert report.ok, report.summary()
    assert report.macs_checked >= 9 and report.checkpoint_seq is not None
    assert "verified up to checkpoint" in report.summary()


def test_modified_entry_is_named(bench: Bench) -> None:
    busy(bench)
    sql(bench, "UPDATE events SET details = ? WHERE seq = 7", json.dumps({"name": "evil"}))
    report = verify(bench)
    assert (report.fault, report.bad_seq) == (Fault.MODIFIED, 7)


def test_deleted_entry_is_missing(bench: Bench) -> None:
    busy(bench)
    sql(bench, "DELETE FROM events WHERE seq = 6")
    report = verify(bench)
    assert (report.fault, report.bad_seq) == (Fault.MISSING, 6)


def test_inserted_entry_is_named(bench: Bench) -> None:
    busy(bench)

    def insert() -> None:
        db = bench.ws.db
        with db.transaction():
            db.execute("UPDATE events SET seq = seq + 1000 WHERE seq >= 6")
            db.execute("UPDATE events SET seq = seq - 999 WHERE seq >= 1006")
            prev = bytes(db.scalar("SELECT entry_hash FROM events WHERE seq = 5"))
            fake = {
                "seq": 6,
                "ts": db.scalar("SELECT ts FROM events WHERE seq = 5"),
                "operators": ["officer"],
                "action": "key.generate",
                "subject": "key:x",
                "outcome": "success",
                "details": {},
            }
            digest = entry_hash(canonical(**fake), prev)
            db.execute(
                "INSERT INTO events (seq, ts, operators, action, subject, outcome, "
                "details, prev_hash, entry_hash, mac) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    6,
                    fake["ts"],
                    '["officer"]',
                    "key.generate",
                    "key:x",
                    "success",
                    "{}",
                    prev,
                    digest,
                    b"\x00" * 32,
                ),
            )

    bench(insert)
    report = verify(bench)
    assert report.fault in (Fault.INSERTED, Fault.MAC_INVALID) and report.bad_seq == 6


def test_swapped_entries_are_reordered(bench: Bench) -> None:
    busy(bench)

    def swap() -> None:
        db = bench.ws.db
        with db.transaction():
            db.execute("UPDATE events SET seq = -1 WHERE seq = 6")
            db.execute("UPDATE events SET seq = 6 WHERE seq = 7")
            db.execute("UPDATE events SET seq = 7 WHERE seq = -1")

    bench(swap)
    report = verify(bench)
    assert (report.fault, report.bad_seq) == (Fault.REORDERED, 6)


def test_forged_chain_without_the_mac_key_fails(bench: Bench) -> None:
    """Someone with the database key edits an entry and recomputes every hash after it."""
    busy(bench)

    def forge() -> None:
        db = bench.ws.db
        rows = db.query(
            "SELECT seq, ts, operators, action, subject, outcome, details, "
            "prev_hash FROM events WHERE seq >= 8 ORDER BY seq"
        )
        prev = bytes(rows[0][7])
        with db.transaction():
            for seq, ts, ops, action, subject, outcome, details, _ in rows:
                body = json.loads(details)
                if seq == 8:
                    body["reason"] = "rewritten history"
                digest = entry_hash(
                    canonical(seq, ts, json.loads(ops), action, subject, outcome, body), prev
                )
                db.execute(
                    "UPDATE events SET details = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
                    (json_text(body), prev, digest, seq),
                )
                prev = digest

    bench(forge)
    report = verify(bench)
    assert report.fault in (Fault.MAC_INVALID, Fault.CHECKPOINT_MISMATCH)
    assert report.bad_seq is not None and report.bad_seq >= 8


def test_truncated_tail_is_caught_against_the_checkpoint(bench: Bench) -> None:
    busy(bench)
    checkpoint = bench(bench.ws.audit.checkpoint, "before truncation")
    sql(bench, "DELETE FROM events WHERE seq > ?", checkpoint.seq - 2)
    report = verify(bench)
    assert report.fault is Fault.TRUNCATED and report.bad_seq == checkpoint.seq - 1


def test_older_database_file_is_refused_at_login(bench: Bench) -> None:
    busy(bench, keys=1)
    bench(bench.ws.lock)  # checkpoint at lock
    old = bench.home.root / "old.db"
    shutil.copy(bench.home.database, old)
    bench.ws = bench(Workstation.unlock, bench.home, OPERATOR, PASS)
    bench(bench.ws.tokens.login, "Life", PIN)
    busy(bench, keys=2, prefix="later")
    bench(bench.ws.lock)  # a newer checkpoint on the token
    shutil.copy(old, bench.home.database)  # someone restores the old file
    before = bench.home.database.read_bytes()
    for _ in range(3):  # refused before anything is written, so every retry the same way
        with pytest.raises(DatabaseRolledBack, match="older than the token"):
            bench(Workstation.unlock, bench.home, OPERATOR, PASS)
        assert bench.home.database.read_bytes() == before


def test_change_without_the_audit_token_does_not_happen(bench: Bench) -> None:
    other = bench(bench.ws.tokens.create_soft_token, "Other", "87654321", "2468")
    bench(bench.ws.tokens.login, other.serial, "2468")
    bench(lambda: bench.ws.tokens.logout(bench.ws.audit.token_serial))
    with pytest.raises(AuditIntegrityError, match="audit token"):
        bench(bench.ws.keys.generate, other.serial, Algorithm.AES_128, "unsealed")
    assert peer_objects(bench.home, "Other", pin="2468") == []  # the new object was removed
    assert bench(bench.ws.keys.repo.count) == 0


def test_token_removed_during_the_seal_aborts_the_change(bench: Bench) -> None:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.AES_256, "k")
    real = bench.ws.db.sealer

    def pulled(_digest: bytes) -> bytes:
        raise TokenRemoved("The token was removed while sealing an audit entry.")

    bench.ws.db.sealer = pulled
    try:
        with pytest.raises(TokenRemoved):
            bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    finally:
        bench.ws.db.sealer = real
    assert bench(bench.ws.keys.resolve, key.id).state is KeyState.PRE_ACTIVE
    assert verify(bench).ok


def offline_script(tmp_path: Path) -> Path:
    script = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert script is not None
    path = tmp_path / "verify_audit.py"
    path.write_text(script.group(1))
    return path


def test_offline_script_accepts_a_clean_export_and_rejects_a_modified_one(
    bench: Bench, tmp_path: Path
) -> None:
    busy(bench)
    bench(bench.ws.audit.checkpoint, "for export")
    export = tmp_path / "audit.json"
    assert bench(bench.ws.audit.export, export, "json") > 10
    script = offline_script(tmp_path)
    ok = subprocess.run(
        [sys.executable, str(script), str(export)], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0 and ok.stdout.startswith("OK:"), ok.stderr
    doc = json.loads(export.read_text())
    doc["entries"][5]["outcome"] = "denied"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    rejected = subprocess.run(
        [sys.executable, str(script), str(bad)], capture_output=True, text=True, check=False
    )
    assert rejected.returncode == 1 and "entry 6: modified" in rejected.stderr
    doc = json.loads(export.read_text())
    doc["checkpoints"][-1]["seq"] += 1  # a checkpoint whose signature no longer matches
    bad.write_text(json.dumps(doc))
    rejected = subprocess.run(
        [sys.executable, str(script), str(bad)], capture_output=True, text=True, check=False
    )
    assert rejected.returncode == 1 and "signature invalid" in rejected.stderr


def test_csv_export_is_readable(bench: Bench, tmp_path: Path) -> None:
    busy(bench, keys=1)
    out = tmp_path / "audit.csv"
    count = bench(bench.ws.audit.export, out, "csv")
    lines = out.read_text().splitlines()
    assert lines[0].startswith("seq,time_utc,operators,action")
    assert len(lines) == count + 1
    assert out.stat().st_mode & 0o077 == 0
    # New-user trial F7: a second export silently replaced the first; evidence is replaced
    # only when asked (the GUI's file dialog asks, the CLI has --overwrite).
    first = out.read_bytes()
    with pytest.raises(ValidationError, match="already exists"):
        bench(bench.ws.audit.export, out, "csv")
    assert out.read_bytes() == first
    assert bench(bench.ws.audit.export, out, "csv", overwrite=True) == count + 1
