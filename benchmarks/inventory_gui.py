"""Inventory at 100,000 managed keys: unlock to painted table, filter, sort, peak memory.

Run by hand (not part of the tests):

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/inventory_gui.py [--n 100000]

The raw peer, measured in the same run on the same file and key, is a bare sqlcipher3
``SELECT`` of the same columns with ``fetchall`` (what any inventory must at least do), and a
plain Python ``sorted`` / substring scan over the same names for sort and filter.
Targets from the issue: unlock (after the KDF) to painted table <= 1 s; filter and sort
<= 100 ms each; peak memory <= 400 MB.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QTableView

from app.domain.algorithms import Algorithm, default_purpose
from app.paths import Home
from app.services.executor import CoreExecutor
from app.services.workstation import Workstation
from app.storage.database import Database
from app.storage.keyslots import KdfCost, KeySlotFile
from ui.models.inventory_model import Column, InventoryModel, build_filter_index

OPERATOR = "bench"
PASSPHRASE = "benchmark passphrase"
COLUMNS = (
    "id, name, algorithm, purpose, state, token_serial, token_label, cka_id, extractable, "
    "kcv, fingerprint, created_at, created_by, tags, notes"
)


def populate(home: Home, n: int) -> None:
    """A workstation with ``n`` key records spread over three tokens (no token objects)."""
    ws = Workstation.initialize(home, OPERATOR, PASSPHRASE, PASSPHRASE, cost=KdfCost())
    algorithms = list(Algorithm)
    rows = []
    for i in range(n):
        algorithm = algorithms[i % len(algorithms)]
        rows.append(
            (
                str(uuid.uuid4()),
                f"key-{i:06d}",
                algorithm.value,
                default_purpose(algorithm).value,
                "PRE_ACTIVE",
                f"serial{i % 3}",
                f"Token{i % 3}",
                uuid.uuid4().hex,
                i % 2,
                "ABCDEF" if algorithm.symmetric else None,
                None if algorithm.symmetric else os.urandom(32).hex(),
                f"2026-{1 + i % 12:02d}-01T00:00:{i % 60:02d}.000000+00:00",
                f"officer{i % 7}",
                "[]",
                "",
            )
        )
    with ws.db.transaction():
        placeholders = ", ".join("?" * 15)
        ws.db.executemany(f"INSERT INTO keys ({COLUMNS}) VALUES ({placeholders})", rows)  # noqa: S608
    ws.lock()


def timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    app = QApplication(sys.argv[:1])
    core = CoreExecutor()
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp) / "home")
        core.call(populate, home, args.n)
        print(f"{args.n:,} key records; SQLCipher file {home.database.stat().st_size / 1e6:.1f} MB")

        key, kdf = timed(lambda: KeySlotFile.load(home.keyslots).open(OPERATOR, PASSPHRASE))

        def raw_peer() -> int:
            db = Database.open(home.database, key)  # same checks Keystead makes on open
            try:
                return len(db.query(f"SELECT {COLUMNS} FROM keys"))  # noqa: S608
            finally:
                db.close()

        _, raw = timed(core.call, raw_peer)

        ws, unlock = timed(core.call, Workstation.unlock, home, OPERATOR, PASSPHRASE)
        items, inventory = timed(core.call, ws.keys.inventory)
        model = InventoryModel()
        view = QTableView()
        view.setModel(model)
        view.resize(1400, 800)
        view.show()

        def paint() -> None:
            model.set_items(items)
            app.processEvents()
            view.viewport().grab()

        _, painted = timed(paint)
        index, indexing = timed(core.call, build_filter_index, items)
        model.set_filter_index(items, index)
        to_table = (unlock - kdf) + inventory + painted
        print(f"KDF (Argon2id, 64 MiB)              {kdf * 1000:8.0f} ms")
        print(f"unlock after KDF (open + checks)    {(unlock - kdf) * 1000:8.0f} ms")
        print(f"inventory (records, reconciliation) {inventory * 1000:8.0f} ms")
        print(f"model + first paint                 {painted * 1000:8.0f} ms")
        print(f"=> unlock to painted table          {to_table * 1000:8.0f} ms   (target <= 1000)")
        print(
            f"raw peer: open + SELECT fetchall    {raw * 1000:8.0f} ms   "
            f"ratio {to_table / raw:.2f}x"
        )
        print(f"filter index, after paint (core)    {indexing * 1000:8.0f} ms")

        names = [i.record.name for i in items if i.record]
        worst_filter = 0.0
        for needle in ("key-0999", "rsa", "officer3", "e"):
            _, seconds = timed(lambda n=needle: (model.set_filter(n), app.processEvents()))
            _, peer = timed(lambda n=needle: [x for x in names if n in x])
            worst_filter = max(worst_filter, seconds)
            print(
                f"filter {needle!r:12} {model.rowCount():>7,} rows {seconds * 1000:6.0f} ms"
                f"   (raw scan of names {peer * 1000:4.0f} ms)"
            )
        model.set_filter("")
        worst_sort = 0.0
        _, peer = timed(sorted, names)
        for column in Column:
            _, seconds = timed(
                lambda c=column: (model.sort(c, Qt.SortOrder.DescendingOrder), app.processEvents())
            )
            worst_sort = max(worst_sort, seconds)
            print(
                f"sort {column.name:<11} {seconds * 1000:6.0f} ms   "
                f"(raw sorted(names) {peer * 1000:3.0f} ms)"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"worst filter {worst_filter * 1000:.0f} ms, worst sort {worst_sort * 1000:.0f} ms "
            f"(target <= 100 each); peak RSS {peak:.0f} MB (target <= 400)"
        )
        core.call(ws.lock)
    core.shutdown()


if __name__ == "__main__":
    main()
