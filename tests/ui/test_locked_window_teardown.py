"""A locked window is torn down safely (issue 17). Deleting it to free its inventory crashed the
full UI run with a segmentation fault: its session, a parentless QObject owned by Python, was
freed by whichever thread next ran Python's cyclic collector, usually the core thread, i.e. a Qt
object destroyed off the GUI thread. The kind: every Qt object of a window dies on the GUI
thread, with the window; a core-thread result that arrives after it is gone is dropped instead
of running inside deleted widgets."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from shiboken6 import isValid

from app.paths import Home
from tests.ui.test_app_flow import initialize_through_gui
from ui.dialogs.unlock import UnlockDialog
from ui.main_window import MainWindow

pytestmark = pytest.mark.ui


def test_a_locked_windows_qt_objects_die_on_the_gui_thread_with_it(qtbot, qapp, bridge, tmp_path):  # type: ignore[no-untyped-def]
    controller = initialize_through_gui(qtbot, qapp, bridge, Home(tmp_path / "ws"))
    window = controller.window
    assert window is not None
    qtbot.waitUntil(lambda w=window: w.inventory.model.has_filter_index, timeout=20000)
    session = window.session
    watched: list[QObject] = [window, session, *window.findChildren(QObject)]
    watched += session.findChildren(QObject)
    died: list[str] = []
    for obj in watched:
        obj.destroyed.connect(
            lambda *_: died.append(threading.current_thread().name),
            Qt.ConnectionType.DirectConnection,
        )
    with qtbot.waitSignal(window.locked, timeout=10000):
        window.lock_now()
    qtbot.waitUntil(lambda: isinstance(controller.dialog, UnlockDialog), timeout=10000)
    retired = controller._retired[0]  # held by the controller until Qt deletes it
    del window, session
    bridge.executor.call(gc.collect)  # the collector runs on the core thread too
    assert isValid(retired)
    del retired
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    bridge.executor.call(gc.collect)
    gc.collect()
    assert len(died) == len(watched)
    assert set(died) == {threading.current_thread().name}
    assert controller._retired == []  # the controller held it only until Qt deleted it
    assert isinstance(controller.dialog, UnlockDialog)
    controller.dialog.hide()  # (rejecting it would quit the application)
    controller.lock_screen.hide()  # type: ignore[union-attr]


def closure_on_a_child(window: MainWindow, calls: list[object]) -> Callable[[Any], None]:
    label = window.operator_label

    def show(value: Any) -> None:
        calls.append(value)
        label.setText(str(value))  # a deleted label: RuntimeError (or worse) if reached

    return show


@pytest.mark.parametrize("through", ["session closure", "bridge bound method", "session error"])
def test_a_core_result_arriving_after_the_window_is_deleted_is_dropped(  # type: ignore[no-untyped-def]
    qtbot, qapp, bridge, gui_session, caplog, through
):
    window = MainWindow(gui_session)
    window.presence_timer.stop()  # (only the job below may be in flight)
    window.cryptoperiod_timer.stop()
    calls: list[object] = []
    release = threading.Event()

    def job(_ws: Any = None) -> str:
        release.wait(20)
        if through == "session error":
            raise RuntimeError("SENTINEL-late-failure")
        return "SENTINEL-late-result"

    if through == "session closure":
        gui_session.run(job, closure_on_a_child(window, calls))
    elif through == "bridge bound method":  # no receiver named: the method's own object
        bridge.run(job, window.operator_label.setText)
    else:
        gui_session.run(job, None, closure_on_a_child(window, calls))
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not isValid(window)
    with caplog.at_level(logging.DEBUG, logger="ui.workers"):
        release.set()
        qtbot.waitUntil(lambda: not bridge.busy, timeout=20000)
    assert calls == []
    assert not isValid(gui_session)  # the window owned its session: it went with it
    if through == "session error":  # dropped, but never silently
        assert any("SENTINEL-late-failure" in r.getMessage() for r in caplog.records)
