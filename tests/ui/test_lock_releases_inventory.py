"""A locked window lets its inventory go (issue 17: RSS grew by the size of the inventory with
every unlock/lock round in one process). Lambdas connected to the session's signals kept every
page, its rows and the locked workstation alive through Qt's own references, which Python's
cycle collector cannot see."""

from __future__ import annotations

import weakref

import pytest

from app.paths import Home
from tests.ui.test_app_flow import PASSPHRASE, initialize_through_gui
from ui.dialogs.unlock import UnlockDialog

pytestmark = pytest.mark.ui


def test_lock_now_drops_the_window_its_inventory_and_the_workstation(qtbot, qapp, bridge, tmp_path):  # type: ignore[no-untyped-def]
    controller = initialize_through_gui(qtbot, qapp, bridge, Home(tmp_path / "ws"))
    for _round in range(2):  # the first window (after initialise), then one after an unlock
        window = controller.window
        assert window is not None
        qtbot.waitUntil(lambda w=window: w.inventory.model.has_filter_index, timeout=20000)
        gone = [
            weakref.ref(window),
            weakref.ref(window.inventory.model),
            weakref.ref(window.session),
            weakref.ref(window.session._workstation),
        ]
        with qtbot.waitSignal(window.locked, timeout=10000):
            window.lock_now()
        qtbot.waitUntil(lambda: isinstance(controller.dialog, UnlockDialog), timeout=10000)
        del window
        # The product's event loop deletes the window and frees what it held: no test-side
        # gc.collect() (left to the collector's own schedule, one relock held two inventories).
        qtbot.waitUntil(lambda g=gone: all(ref() is None for ref in g), timeout=10000)
        dialog = controller.dialog
        assert isinstance(dialog, UnlockDialog)
        dialog.passphrase.setText(PASSPHRASE)
        dialog.unlock_button.click()
        qtbot.waitUntil(lambda: controller.window is not None, timeout=20000)
    window = controller.window
    assert window is not None
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10000)
