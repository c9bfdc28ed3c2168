"""Python's cyclic collector runs on the GUI thread only, while the GUI's core thread is open.

CPython runs a collection in whichever thread's allocation crosses the threshold, most often the
core thread (it allocates the most). A collection frees every unreachable cycle, and a cycle may
hold the last reference to a Qt object owned by Python (a window, a dialog, a pixmap): its C++
destructor then runs on the core thread. Qt objects must be destroyed on the thread that owns
them ("Threads and QObjects" in Qt's documentation); otherwise memory is corrupted and the
process crashes later, anywhere (issue 17: segmentation faults in event processing once locked
windows were deleted and their sessions left to the collector). The known remedy, suggested on
the PyQt mailing list in 2011 and packaged as ``qtpygc``: automatic collection off, and
collections run by a timer on the GUI thread with CPython's own generation thresholds.
"""

from __future__ import annotations

import gc
import time

from PySide6.QtCore import QObject, QTimer

TICK_MS = 250  # how often the GUI thread looks at the collector's counts
FULL_EVERY_S = 60.0  # a full (generation 2) collection at most this often; see ``tick``


class GuiThreadCollector(QObject):
    """Turns automatic collection off and collects from a timer on this (the GUI) thread.

    ``stop`` collects once more and restores automatic collection if it was on. An explicit
    ``gc.collect()`` anywhere still runs (the core thread's jobs never call it)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._last_full = time.monotonic()
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self.tick)
        self._timer.start()

    def tick(self) -> None:
        """Collect the oldest generation whose count is over its threshold, as CPython would.

        A full collection walks every object (100,000 inventory rows: several hundred ms of
        GIL); CPython itself skips most of them on a large heap (a full collection waits until
        the objects added since the last one are a quarter of the heap), which Python cannot
        query, so here it runs at most every ``FULL_EVERY_S`` seconds; the controller also runs
        one when a locked window has been deleted."""
        counts = gc.get_count()
        thresholds = gc.get_threshold()
        now = time.monotonic()
        if counts[2] > thresholds[2] and now - self._last_full >= FULL_EVERY_S:
            gc.collect(2)
            self._last_full = now
        elif counts[1] > thresholds[1]:
            gc.collect(1)
        elif counts[0] > thresholds[0]:
            gc.collect(0)

    def stop(self) -> None:
        """Collect once more here, then give automatic collection back if it was on."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()
