"""The GUI's door to the core thread: submit a job, get its result back on the GUI thread.

The GUI thread never calls a token or the database itself; it submits a function to the core
executor and receives the result (or the error) through a queued signal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from app.services.executor import CoreExecutor

log = logging.getLogger(__name__)

ResultCallback = Callable[[Any], None]
ErrorCallback = Callable[[BaseException], None]


class CoreBridge(QObject):
    """Runs jobs on the single core thread and calls back on the GUI thread."""

    _finished = Signal(object, object, object)  # callback, value, is_error
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.executor = CoreExecutor()
        self._pending = 0
        self._closed = False
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def run(
        self,
        fn: Callable[[], Any],
        on_result: ResultCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> Future[Any]:
        """Run ``fn()`` on the core thread; ``on_result``/``on_error`` run on the GUI thread.

        After ``shutdown`` (the window is going away) a job is not run: a timer that fires late
        gets a cancelled future and no callback."""
        if self._closed:
            log.debug("core job dropped: the core thread has shut down")
            cancelled: Future[Any] = Future()
            cancelled.cancel()
            return cancelled
        self._pending += 1
        if self._pending == 1:
            self.busy_changed.emit(True)
        future = self.executor.submit(fn)

        def done(f: Future[Any]) -> None:
            error = f.exception()
            if error is not None:
                self._finished.emit(on_error, error, True)
            else:
                self._finished.emit(on_result, f.result(), False)

        future.add_done_callback(done)
        return future

    @Slot(object, object, object)
    def _deliver(self, callback: Callable[[Any], None] | None, value: Any, is_error: bool) -> None:
        self._pending -= 1
        if self._pending == 0:
            self.busy_changed.emit(False)
        if callback is not None:
            callback(value)
        elif is_error:
            log.error("core job failed with no error handler: %r", value)

    def shutdown(self) -> None:
        self._closed = True
        self.executor.shutdown()
