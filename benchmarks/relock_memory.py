"""Memory over unlock/lock rounds through the product's own controller (issue 17: RSS grew by the
size of the inventory with every relock, 425 MB -> 1.27 GB after four rounds at 100,000 keys).

Setup, in a child process (not timed, so this process's ``ru_maxrss`` covers only the rounds):
a workstation with ``--n`` key records (``inventory_db.build_inventory``, the same data set as
the inventory benchmarks).

Each round, in this process, exactly as an officer drives ``keystead-gui`` (``ui/main.py``'s
``AppController`` with its event loop running, so Qt's deferred deletes run as in the product):
type the passphrase into the unlock dialog and press Unlock; wait until the inventory holds
every row, its filter index has arrived and the integrity checks passed; then *Lock now*;
wait until the unlock dialog is back and the locked window has been deleted, then run the event
loop one more second (an officer takes longer than that to type a passphrase).

Printed per round: current RSS with the window open and after the lock, and the process's peak
RSS so far (MB). Target (issue 17): peak RSS <= 400 MB at 100,000 keys, after every round, not
only the first.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from app.paths import Home
from benchmarks.common import current_rss_mb, machine_line, peak_rss_mb
from benchmarks.inventory_db import FAST_KDF, OPERATOR, PASSPHRASE, build_inventory
from ui.workers import CoreBridge

TYPING_S = 1.0  # event loop running between the lock and the next unlock, as while typing


def _build_in_child(tmp: str, n: int, fast_kdf: bool) -> None:
    build_inventory(tmp, n, cost=FAST_KDF if fast_kdf else None)


def run_until(done: Callable[[], bool], timeout: float = 900.0) -> None:
    """Run the event loop (as ``app.exec()`` does, deferred deletes included) until ``done``."""
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(20)
    poll.timeout.connect(lambda: loop.quit() if done() else None)
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the window")
        poll.start()
        loop.exec()
        poll.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="key records (default 100000)")
    parser.add_argument("--rounds", type=int, default=4, help="unlock/lock rounds (default 4)")
    parser.add_argument("--fast-kdf", action="store_true", help="1 MiB Argon2id (smoke runs)")
    args = parser.parse_args()
    print(f"Relock memory, {args.n:,} records, {args.rounds} rounds - {machine_line()}")
    with tempfile.TemporaryDirectory(prefix="keystead-bench-") as tmp:
        os.environ["XDG_CONFIG_HOME"] = str(Path(tmp) / "config")  # window settings stay here
        child = multiprocessing.get_context("spawn").Process(
            target=_build_in_child, args=(tmp, args.n, args.fast_kdf)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"setup failed in the child process (exit {child.exitcode})")
        home = Home(Path(tmp) / "home")
        app = QApplication(sys.argv[:1])
        from ui.dialogs.unlock import UnlockDialog  # after the QApplication exists
        from ui.main import AppController

        bridge = CoreBridge()
        controller = AppController(app, home, bridge)
        print(f"RSS before the first unlock {current_rss_mb():.0f} MB")
        controller.start()
        try:
            for round_no in range(1, args.rounds + 1):
                dialog = controller.dialog
                assert isinstance(dialog, UnlockDialog)
                dialog.operator.setEditText(OPERATOR)
                dialog.passphrase.setText(PASSPHRASE)
                dialog.unlock_button.click()
                run_until(lambda: controller.window is not None)
                window = controller.window
                assert window is not None
                page = window.inventory
                run_until(
                    lambda w=window, p=page: p.model.total == args.n  # type: ignore[misc]
                    and p.model.has_filter_index
                    and not w.session.integrity_pending
                )
                open_rss = current_rss_mb()
                window.lock_now()
                del window, page
                run_until(
                    lambda: isinstance(controller.dialog, UnlockDialog)
                    and controller.window is None
                    # Qt has deleted the locked window (a revision without _retired hid it)
                    and not getattr(controller, "_retired", [])
                )
                settle = time.monotonic() + TYPING_S  # the officer types the passphrase
                run_until(lambda s=settle: time.monotonic() >= s)  # type: ignore[misc]
                print(
                    f"round {round_no}: RSS open {open_rss:.0f} MB, after lock "
                    f"{current_rss_mb():.0f} MB; peak so far {peak_rss_mb():.0f} MB "
                    "(target <= 400)"
                )
        finally:
            for widget in (controller.dialog, controller.lock_screen):
                if widget is not None:
                    widget.hide()
            bridge.shutdown()


if __name__ == "__main__":
    main()
