"""The GUI's door to the core thread: submit a job, get its result back on the GUI thread.

The GUI thread never calls a token or the database itself; it submits a function to the core
executor and receives the result (or the error) through a queued signal. A result whose
receiver is gone by then (a locked window Qt has deleted, with its session) is dropped, never
delivered into deleted widgets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot
from shiboken6 import isValid

from app.services.executor import CoreExecutor
from ui.collector import GuiThreadCollector

log = logging.getLogger(__name__)

ResultCallback = Callable[[Any], None]
ErrorCallback = Callable[[BaseException], None]


@dataclass(frozen=True)
class _Delivery:
    """One finished job on its way to the GUI thread."""

    callback: Callable[[Any], None] | None
    value: Any
    is_error: bool
    receiver: QObject | None  # None: the callback needs no Qt object


def _alive(delivery: _Delivery) -> bool:
    """Whether the Qt objects a callback would touch still exist: its ``receiver`` and, for a
    bound method of a Qt object, that object (Qt may have deleted either since the job was
    submitted; calling into it would reach freed memory)."""
    if delivery.receiver is not None and not isValid(delivery.receiver):
        return False
    owner = getattr(delivery.callback, "__self__", None)
    return not (isinstance(owner, QObject) and not isValid(owner))


class CoreBridge(QObject):
    """Runs jobs on the single core thread and calls back on the GUI thread."""

    _finished = Signal(object)  # _Delivery
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.executor = CoreExecutor()
        # Python's cyclic collector runs on this thread only while the core thread exists.
        self.collector = GuiThreadCollector(self)
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
        receiver: QObject | None = None,
    ) -> Future[Any]:
        """Run ``fn()`` on the core thread; ``on_result``/``on_error`` run on the GUI thread,
        unless ``receiver`` (or the Qt object a bound-method callback belongs to) has been
        deleted by then: the callback is dropped (an error is logged, never lost silently).

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
                self._finished.emit(_Delivery(on_error, error, True, receiver))
            else:
                self._finished.emit(_Delivery(on_result, f.result(), False, receiver))

        future.add_done_callback(done)
        return future

    @Slot(object)
    def _deliver(self, delivery: _Delivery) -> None:
        self._pending -= 1
        if self._pending == 0:
            self.busy_changed.emit(False)
        if not _alive(delivery):
            if delivery.is_error:
                log.warning("core job failed after its window was gone: %r", delivery.value)
            else:
                log.debug("core result dropped: its window is gone")
        elif delivery.callback is not None:
            delivery.callback(delivery.value)
        elif delivery.is_error:
            log.error("core job failed with no error handler: %r", delivery.value)

    def shutdown(self) -> None:
        """Stop the core thread; then collect what is left here, on the GUI thread, at a quiet
        point, before automatic collection (any thread, any allocation) is given back."""
        self._closed = True
        self.executor.shutdown()
        self.collector.stop()
