"""Audit verification against raw peers that are not Keystead's own code, and the audit page.

Run by hand (not part of the tests), from the repository root:

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/audit_verify.py [--n N] [--repeats 3]
    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/audit_verify.py --n 20000 --repeats 3

Goals (issue 17), each >= 0.8x the peer's rate, measured in the same run on the same entries:

- **chain**: Keystead's verifier without the token (``verify_chain(iter_event_rows(db))``, the
  path ``AuditService.verify`` takes: streams every stored row through Keystead's storage
  layer, recomputes and compares every hash, order and time checks) against the **raw peer**:
  bare ``sqlcipher3.connect`` + ``PRAGMA key`` with the same raw key, one ``SELECT`` of the
  stored columns, the canonical bytes built with an f-string and ``json``'s string quoting as
  ``docs/audit-verification.md`` specifies, ``hashlib.sha256`` chained and compared with the
  stored hash and link. No Keystead code in the peer.
- **full ``audit verify``**: ``ws.audit.verify()`` (chain + a token HMAC per entry + the token's
  checkpoints) against a **raw python-pkcs11 MAC loop**: the same bare SELECT, the hashlib chain
  as above, and per entry ``key.sign(entry_hash, mechanism=SHA256_HMAC)`` with the audit MAC key
  found once through a python-pkcs11 session of its own, compared with ``hmac.compare_digest``.

Setup (not timed): a workstation with a SoftHSM token and ``--n`` sealed entries (each with the
token's HMAC, appended through Keystead's SQL in batches). Rounds: one warm-up, then
``--repeats``, the four contenders interleaved; the audit page's first paint and a filter are
timed in each round too. Every PKCS#11 and database call runs on the core thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import hashlib
import hmac
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sqlcipher3
from pkcs11 import Attribute, Mechanism, ObjectClass

from app.domain.audit import AuditEntry, entry_hash, verify_chain
from app.hsm.session import AUDIT_MAC_ID
from app.paths import Home
from app.services.executor import CoreExecutor
from app.services.workstation import SoftTokenRequest, Workstation
from app.storage.events import iter_event_rows
from app.storage.keyslots import KdfCost, KeySlotFile
from benchmarks.common import SOFTHSM_MODULE, machine_line

PASS = "benchmark passphrase"
PIN = "123456"
TOKEN = "Bench"
TAG = b"keystead-audit-v1\x00"  # docs/audit-verification.md (the peer does not import it)
COLUMNS = "seq, ts, operators, action, subject, outcome, details, prev_hash, entry_hash, mac"


def fill(ws: Workstation, n: int) -> None:
    """Append ``n`` sealed entries after the existing ones."""
    db = ws.db
    seal = db.sealer
    assert seal is not None
    last_seq, last_hash = db.query("SELECT seq, entry_hash FROM events ORDER BY seq DESC LIMIT 1")[
        0
    ]
    prev = bytes(last_hash)
    start = datetime.now(UTC)
    rows = []
    for i in range(n):
        seq = last_seq + 1 + i
        ts = (start + timedelta(microseconds=i)).isoformat(timespec="microseconds")
        entry = AuditEntry.of(
            seq, ts, ["officer"], "key.activate", f"key:{i:08d}", "success",
            {"from": "PRE_ACTIVE", "to": "ACTIVE", "reason": "", "n": i},
        )
        digest = entry_hash(entry.canonical(), prev)
        rows.append((seq, ts, entry.operators_json, entry.action, entry.subject, entry.outcome,
                     entry.details_json, prev, digest, seal(digest)))
        prev = digest
        if len(rows) == 50_000:
            _insert(ws, rows)
            rows = []
    _insert(ws, rows)


def _insert(ws: Workstation, rows: list[tuple[object, ...]]) -> None:
    if rows:
        with ws.db.transaction():
            ws.db.executemany(
                f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                rows,
            )


# --- raw peers: sqlcipher3, hashlib, python-pkcs11; no Keystead code --------------------------


def raw_rows(database: Path, key: bytes) -> list[Any]:
    conn = sqlcipher3.connect(str(database))
    try:
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        return conn.execute(f"SELECT {COLUMNS} FROM events ORDER BY seq").fetchall()  # noqa: S608
    finally:
        conn.close()


def raw_chain(database: Path, key: bytes, mac: Callable[[bytes], bytes] | None = None) -> int:
    """SELECT, canonical bytes, SHA-256 chain compared with the stored hash and link (and the
    stored MAC against ``mac``). Returns the number of entries; raises on a mismatch."""
    prev = bytes(32)
    sha256 = hashlib.sha256
    quote = encode_basestring
    rows = raw_rows(database, key)
    for seq, ts, operators, action, subject, outcome, details, prev_hash, stored, tag in rows:
        data = (
            f'{{"action":{quote(action)},"details":{details},"operators":{operators},'
            f'"outcome":{quote(outcome)},"seq":{seq},"subject":{quote(subject)},'
            f'"ts":{quote(ts)}}}'
        ).encode()
        digest = sha256(TAG + data + prev).digest()
        if digest != stored or prev_hash != prev:
            raise RuntimeError(f"raw peer: entry {seq} does not chain")
        if mac is not None and tag is not None and not hmac.compare_digest(mac(digest), tag):
            raise RuntimeError(f"raw peer: entry {seq} MAC differs")
        prev = digest
    return len(rows)


class RawMac:
    """The audit MAC key through a python-pkcs11 session of its own (same process, whose
    application is already logged in), found once."""

    def __init__(self, lib: Any) -> None:
        self.session = lib.get_token(token_label=TOKEN).open()
        self.key = next(
            self.session.get_objects(
                {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.ID: AUDIT_MAC_ID}
            )
        )

    def __call__(self, digest: bytes) -> bytes:
        return bytes(self.key.sign(digest, mechanism=Mechanism.SHA256_HMAC))


# --- report ----------------------------------------------------------------------------------


def stats(samples: list[float], n: int) -> str:
    rates = sorted(n / s for s in samples)
    return (
        f"{min(samples):7.2f} {statistics.median(samples):7.2f} {max(samples):7.2f} s   "
        f"{statistics.median(rates):>10,.0f} entries/s   "
        f"[{', '.join(f'{s:.2f}' for s in samples)}]"
    )


def paired_rate(keystead: list[float], raw: list[float]) -> str:
    """Keystead's rate / the peer's rate (= raw seconds / Keystead seconds), per round."""
    ratios = sorted(r / k for k, r in zip(keystead, raw, strict=True))
    return (
        f"{statistics.median(raw) / statistics.median(keystead):5.2f}x of medians; per round "
        f"{ratios[0]:.2f} / {statistics.median(ratios):.2f} / {ratios[-1]:.2f}   (goal >= 0.8)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="sealed entries to add")
    parser.add_argument("--repeats", type=int, default=3, help="measured rounds (default 3)")
    args = parser.parse_args()
    print(f"Audit verification benchmark, {args.n:,} entries - {machine_line()}")
    core = CoreExecutor()
    with tempfile.TemporaryDirectory(prefix="keystead-bench-") as tmp:
        home = Home(Path(tmp) / "home")
        ws = core.call(
            Workstation.initialize, home, "officer", PASS, PASS,
            SoftTokenRequest(TOKEN, "87654321", PIN), KdfCost(1024, 1, 1),
        )
        began = time.perf_counter()
        core.call(fill, ws, args.n)
        core.call(ws.audit.checkpoint, "benchmark")
        print(f"filled {args.n:,} sealed entries in {time.perf_counter() - began:.1f} s")
        key = KeySlotFile.load(home.keyslots).open("officer", PASS)
        raw_mac = core.call(RawMac, ws.tokens.modules[SOFTHSM_MODULE].raw)

        from PySide6.QtWidgets import QApplication, QTableView

        from app.services.audit_log import AuditFilter
        from ui.models.audit_model import AuditModel

        app = QApplication(sys.argv[:1])

        def page() -> tuple[float, float, int]:
            model = AuditModel(lambda job, done: done(core.call(job, ws.audit)))
            view = QTableView()
            view.setModel(model)
            view.resize(1200, 800)
            view.show()
            began = time.perf_counter()
            model.set_filter(AuditFilter())
            app.processEvents()
            opened = time.perf_counter() - began
            began = time.perf_counter()
            model.set_filter(AuditFilter(action="key.activate", subject="key:00000012"))
            app.processEvents()
            filtered = time.perf_counter() - began
            view.deleteLater()
            app.processEvents()
            return opened, filtered, model.total

        def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
            began = time.perf_counter()
            result = core.call(fn)
            return result, time.perf_counter() - began

        samples: dict[str, list[float]] = {}
        total = 0
        for round_no in range(args.repeats + 1):
            times: dict[str, float] = {}
            total, times["raw peer: sqlcipher3 SELECT + hashlib chain"] = timed(
                lambda: raw_chain(home.database, key)
            )
            report, times["Keystead verifier, chain only"] = timed(
                lambda: verify_chain(iter_event_rows(ws.db))
            )
            assert report.ok, report.summary()
            _, times["raw peer: SELECT + chain + python-pkcs11 HMAC"] = timed(
                lambda: raw_chain(home.database, key, raw_mac)
            )
            report, times["Keystead ws.audit.verify() (chain+MACs+ckpt)"] = timed(ws.audit.verify)
            assert report.ok and report.macs_checked >= args.n, report.summary()
            assert report.checkpoint_seq is not None
            opened, filtered, matched = page()
            times["audit page: first page"] = opened
            times["audit page: subject + action filter"] = filtered
            if round_no:
                for name, value in times.items():
                    samples.setdefault(name, []).append(value)
        print(f"\n{args.repeats} rounds after one warm-up, interleaved ({total:,} entries); "
              "seconds min median max, median rate [all]:")
        for name, values in samples.items():
            if name.startswith("audit page"):
                print(f"  {name:<46} " + " ".join(f"{v * 1000:.0f}" for v in
                      (min(values), statistics.median(values), max(values))) + " ms")
            else:
                print(f"  {name:<46} {stats(values, total)}")
        s = samples
        print("\nratios (Keystead rate / peer rate):")
        chain = paired_rate(
            s["Keystead verifier, chain only"], s["raw peer: sqlcipher3 SELECT + hashlib chain"]
        )
        full = paired_rate(
            s["Keystead ws.audit.verify() (chain+MACs+ckpt)"],
            s["raw peer: SELECT + chain + python-pkcs11 HMAC"],
        )
        print(f"  chain only / raw SELECT + hashlib          {chain}")
        print(f"  audit verify / raw python-pkcs11 MAC loop  {full}")
        print(f"  (the filter matched {matched} entries)")
        raw_mac.session.close()
        core.call(ws.lock)
    core.shutdown()


if __name__ == "__main__":
    main()
