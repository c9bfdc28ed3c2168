"""Where unlock-to-painted time goes on the real window: every core job timed, cProfile of both
threads. A developer's tool (issue 17), not a benchmark; run from the repository root:

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/profile_unlock_gui.py DIR [--n N]

``DIR`` keeps the built workstation between runs (built once with the fast KDF). Prints each
core job (its function's name, queue wait, run time) in order until the inventory is painted,
then the top of the core thread's and the GUI thread's profiles.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import cProfile
import os
import pstats
import time
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication

from app.paths import Home
from app.services.executor import CoreExecutor
from app.services.workstation import Workstation
from benchmarks.common import peak_rss_mb
from benchmarks.inventory_db import FAST_KDF, OPERATOR, PASSPHRASE, build_inventory
from benchmarks.inventory_gui import wait_until
from ui.session import GuiSession
from ui.workers import CoreBridge


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    home = Home(args.dir / "home")
    if not home.exists():
        args.dir.mkdir(parents=True, exist_ok=True)
        build_inventory(args.dir, args.n, cost=FAST_KDF)
    os.environ["XDG_CONFIG_HOME"] = str(args.dir / "config")
    app = QApplication(sys.argv[:1])
    bridge = CoreBridge()
    core_profile = cProfile.Profile()
    jobs: list[tuple[str, float, float, float]] = []
    t0 = [0.0]
    original = CoreExecutor.submit

    def submit(self: CoreExecutor, fn: Any, *a: Any, **k: Any) -> Any:
        queued = time.perf_counter()
        name = getattr(fn, "__qualname__", repr(fn))
        inner = getattr(fn, "__closure__", None)
        if inner:  # GuiSession.run's guarded(): name the job it wraps
            for cell in inner:
                v = cell.cell_contents
                if callable(v) and getattr(v, "__qualname__", "").find("lambda") >= 0:
                    name = f"{v.__qualname__}@{v.__code__.co_firstlineno}"

        def wrapped() -> Any:
            began = time.perf_counter()
            core_profile.enable()
            try:
                return fn(*a, **k)
            finally:
                core_profile.disable()
                jobs.append((name, began - t0[0], began - queued, time.perf_counter() - began))

        return original(self, wrapped)

    CoreExecutor.submit = submit  # type: ignore[method-assign]
    from ui.main_window import MainWindow

    for round_no in range(args.rounds):
        jobs.clear()
        core_profile = cProfile.Profile()
        gui_profile = cProfile.Profile()
        t0[0] = time.perf_counter()
        ws = bridge.executor.call(Workstation.unlock, home, OPERATOR, PASSPHRASE)
        t_unlock = time.perf_counter() - t0[0]
        gui_profile.enable()
        session = GuiSession(bridge, ws)
        window = MainWindow(session)
        ws.approvals.source = window.approval_source
        window.resize(1600, 1000)
        window.show()
        window.start()
        page = window.inventory
        window.show_page(page)
        wait_until(app, lambda p=page: p.model.total == args.n)
        app.processEvents()
        painted = time.perf_counter() - t0[0]
        gui_profile.disable()
        wait_until(app, lambda p=page: p.model.has_filter_index)
        indexed = time.perf_counter() - t0[0]
        print(f"\n=== round {round_no}: unlock {t_unlock * 1000:.0f} ms (KDF incl.), painted at "
              f"{painted * 1000:.0f} ms, filter index at {indexed * 1000:.0f} ms, "
              f"peak RSS {peak_rss_mb():.0f} MB")
        for name, start, wait, took in jobs:
            print(f"  core job at {start * 1000:7.0f} ms  waited {wait * 1000:6.0f}  ran "
                  f"{took * 1000:7.1f} ms  {name}")
        if round_no == args.rounds - 1:
            print("\n--- core thread (cumulative) ---")
            pstats.Stats(core_profile).sort_stats("cumulative").print_stats(45)
            print("\n--- core thread (tottime) ---")
            pstats.Stats(core_profile).sort_stats("tottime").print_stats(25)
            print("\n--- GUI thread until painted (cumulative) ---")
            pstats.Stats(gui_profile).sort_stats("cumulative").print_stats(40)
        window.close()
        wait_until(app, lambda w=window: not w.isVisible())
        window.deleteLater()
        app.processEvents()
    bridge.shutdown()


if __name__ == "__main__":
    main()
