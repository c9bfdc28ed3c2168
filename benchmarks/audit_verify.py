"""Audit verification at 1,000,000 entries, and the audit page's open time.

Run by hand (not part of the tests):

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/audit_verify.py [--n 1000000]

Peers, measured in the same run on the same entries:
- raw: a plain hashlib loop chaining the same canonical bytes, already in memory;
- raw + read: the same loop fed by reading the stored rows from the database.
Keystead is measured chain-only (no token) and chain + token MACs. The issue asks the
chain-only verifier to reach at least half the raw rate.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.domain.audit import DOMAIN_TAG, GENESIS, AuditEntry, entry_hash, verify_chain
from app.paths import Home
from app.services.executor import CoreExecutor
from app.services.workstation import SoftTokenRequest, Workstation
from app.storage.events import iter_events
from app.storage.keyslots import KdfCost

PASS = "benchmark passphrase"
PIN = "123456"


def fill(ws: Workstation, n: int) -> list[bytes]:
    """Append ``n`` sealed entries after the existing ones; returns their canonical bytes."""
    db = ws.db
    seal = db.sealer
    assert seal is not None
    last_seq, last_hash = db.query("SELECT seq, entry_hash FROM events ORDER BY seq DESC LIMIT 1")[
        0
    ]
    prev = bytes(last_hash)
    start = datetime.now(UTC)
    canon: list[bytes] = []
    rows = []
    for i in range(n):
        seq = last_seq + 1 + i
        ts = (start + timedelta(microseconds=i)).isoformat(timespec="microseconds")
        entry = AuditEntry.of(
            seq,
            ts,
            ["officer"],
            "key.activate",
            f"key:{i:08d}",
            "success",
            {"from": "PRE_ACTIVE", "to": "ACTIVE", "reason": "", "n": i},
        )
        data = entry.canonical()
        digest = entry_hash(data, prev)
        rows.append(
            (
                seq,
                ts,
                entry.operators_json,
                entry.action,
                entry.subject,
                entry.outcome,
                entry.details_json,
                prev,
                digest,
                seal(digest),
            )
        )
        canon.append(data)
        prev = digest
        if len(rows) == 50_000:
            _insert(ws, rows)
            rows = []
    _insert(ws, rows)
    return canon


def _insert(ws: Workstation, rows: list[tuple[object, ...]]) -> None:
    if rows:
        with ws.db.transaction():
            ws.db.executemany(
                "INSERT INTO events (seq, ts, operators, action, subject, outcome, details, "
                "prev_hash, entry_hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f} entries/s  ({seconds:6.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    args = parser.parse_args()
    core = CoreExecutor()
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp) / "home")
        ws = core.call(
            Workstation.initialize,
            home,
            "officer",
            PASS,
            PASS,
            SoftTokenRequest("Bench", "87654321", PIN),
            KdfCost(1024, 1, 1),
        )
        began = time.perf_counter()
        canon = core.call(fill, ws, args.n)
        print(f"filled {args.n:,} sealed entries in {time.perf_counter() - began:.1f} s")

        # Raw peer 1: chain the same canonical bytes, in memory.
        began = time.perf_counter()
        prev = GENESIS
        sha256 = hashlib.sha256
        for data in canon:
            prev = sha256(DOMAIN_TAG + data + prev).digest()
        raw = time.perf_counter() - began
        del canon

        # Raw peer 2: read the stored rows and chain them, no checks.
        def raw_read() -> int:
            count, prev = 0, GENESIS
            for entry in iter_events(ws.db):
                prev = sha256(DOMAIN_TAG + entry.canonical() + prev).digest()
                count += 1
            return count

        began = time.perf_counter()
        total = core.call(raw_read)
        raw_read_s = time.perf_counter() - began

        began = time.perf_counter()
        report = core.call(lambda: verify_chain(iter_events(ws.db)))
        chain = time.perf_counter() - began
        assert report.ok, report.summary()

        session = ws.tokens.logged_in()[0]

        def with_macs() -> object:
            import hmac

            seal = session.audit_mac
            return verify_chain(
                iter_events(ws.db), lambda digest, mac: hmac.compare_digest(seal(digest), mac)
            )

        began = time.perf_counter()
        report = core.call(with_macs)
        macs = time.perf_counter() - began
        assert report.ok, report.summary()  # type: ignore[attr-defined]

        print(f"raw hashlib chain (bytes in memory)  {rate(total, raw)}")
        print(f"raw read + hashlib chain             {rate(total, raw_read_s)}")
        print(
            f"Keystead verifier, chain only        {rate(total, chain)}"
            f"   = {raw / chain:.2f} of raw, {raw_read_s / chain:.2f} of raw+read"
        )
        print(f"Keystead verifier, chain + MACs      {rate(total, macs)}")

        from PySide6.QtWidgets import QApplication, QTableView

        from app.services.audit_log import AuditFilter
        from ui.models.audit_model import AuditModel

        app = QApplication(sys.argv[:1])
        model = AuditModel(lambda job, done: done(core.call(job, ws.audit)))
        view = QTableView()
        view.setModel(model)
        view.resize(1200, 800)
        view.show()
        began = time.perf_counter()
        model.set_filter(AuditFilter())
        app.processEvents()
        view.viewport().grab()
        opened = time.perf_counter() - began
        began = time.perf_counter()
        model.set_filter(AuditFilter(action="key.activate", subject="key:00012"))
        app.processEvents()
        filtered = time.perf_counter() - began
        print(
            f"audit page open at {total:,} entries: {opened * 1000:.0f} ms to the first painted "
            f"page; a subject+action filter: {filtered * 1000:.0f} ms ({model.total} match)"
        )
        core.call(ws.lock)
    core.shutdown()


if __name__ == "__main__":
    main()
