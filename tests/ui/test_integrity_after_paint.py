"""Paint first, integrity checks after, in the window the product builds (ui/main.py): the
inventory is shown while "Checking database integrity…" is said; then the checks pass and the
unlock is recorded, or they fail and the workstation locks with the damaged-database message,
having written nothing."""

from __future__ import annotations

import pytest

from app.domain.algorithms import Algorithm
from app.paths import Home
from app.services.workstation import Workstation
from app.storage.events import list_events
from tests.ui.test_app_flow import PASSPHRASE, close_window, initialize_through_gui
from ui.dialogs.unlock import UnlockDialog
from ui.main import AppController

pytestmark = pytest.mark.ui

PAGE = 4096
OPERATOR = "Officer One"


def with_keys(bridge, home: Home, count: int) -> int:  # type: ignore[no-untyped-def]
    """Add ``count`` keys through the core; the root page of an index the inventory never
    reads (for damaging)."""

    def job() -> int:
        ws = Workstation.unlock(home, OPERATOR, PASSPHRASE)
        try:
            ws.tokens.login("GuiToken", "112233")
            for i in range(count):
                ws.keys.generate("GuiToken", Algorithm.AES_128, f"paint-{i}")
            rows = ws.db.query(
                "SELECT rootpage FROM sqlite_master WHERE name = 'keys_deactivation'"
            )
            return int(rows[0][0])
        finally:
            ws.lock()

    return int(bridge.executor.call(job))


def unlock_through_gui(qtbot, qapp, bridge, home: Home) -> AppController:  # type: ignore[no-untyped-def]
    controller = AppController(qapp, home, bridge)
    controller.start()
    dialog = controller.dialog
    assert isinstance(dialog, UnlockDialog)
    dialog.passphrase.setText(PASSPHRASE)
    dialog.unlock_button.click()
    qtbot.waitUntil(lambda: controller.window is not None, timeout=20000)
    return controller


def unlock_actions(bridge, home: Home) -> list[str]:  # type: ignore[no-untyped-def]
    def job() -> list[str]:
        ws = Workstation.unlock(home, OPERATOR, PASSPHRASE)
        try:
            return [e.action for e in list_events(ws.db)]
        finally:
            ws.lock()

    return list(bridge.executor.call(job))


def test_the_window_paints_then_checks_and_records_the_unlock(qtbot, qapp, bridge, tmp_path):  # type: ignore[no-untyped-def]
    home = Home(tmp_path / "ws")
    close_window(qtbot, initialize_through_gui(qtbot, qapp, bridge, home))
    with_keys(bridge, home, 3)
    controller = unlock_through_gui(qtbot, qapp, bridge, home)
    window = controller.window
    assert window is not None
    assert window.session.integrity_pending  # the unlock left them for after the paint
    assert window.integrity_label.text() == "Checking database integrity…"
    assert not window.integrity_label.isHidden()
    qtbot.waitUntil(lambda: window.inventory.model.total == 3, timeout=20000)
    qtbot.waitUntil(lambda: window.integrity_label.isHidden(), timeout=20000)
    assert not window.session.integrity_pending
    close_window(qtbot, controller)
    recorded = unlock_actions(bridge, home)
    # The window's session recorded its unlock (after the checks) and its lock, as the CLI's
    # does; the last entry is the unlock that read them.
    assert recorded[-3:] == ["workstation.unlock", "workstation.lock", "workstation.unlock"]


def test_a_damaged_file_paints_then_locks_and_writes_nothing(qtbot, qapp, bridge, tmp_path):  # type: ignore[no-untyped-def]
    home = Home(tmp_path / "ws")
    close_window(qtbot, initialize_through_gui(qtbot, qapp, bridge, home))
    page = with_keys(bridge, home, 3)
    data = bytearray(home.database.read_bytes())
    data[(page - 1) * PAGE + PAGE // 2] ^= 0x20
    home.database.write_bytes(bytes(data))

    controller = unlock_through_gui(qtbot, qapp, bridge, home)
    window = controller.window
    assert window is not None
    painted: list[int] = []
    window.inventory.loaded.connect(painted.append)
    with qtbot.waitSignal(window.locked, timeout=20000) as locked:
        pass
    assert locked.args == [True]
    assert painted == [3]  # the inventory was shown before the checks ran
    qtbot.waitUntil(lambda: isinstance(controller.dialog, UnlockDialog), timeout=10000)
    dialog = controller.dialog
    assert isinstance(dialog, UnlockDialog)
    qtbot.waitUntil(lambda: dialog.error.isVisibleTo(dialog), timeout=10000)
    assert "damaged" in dialog.error.text() and "backup" in dialog.error.text()
    assert controller.window is None
    assert home.database.read_bytes() == bytes(data)  # no unlock entry, no lock entry


def test_a_damaged_file_shown_progressively_locks_and_writes_nothing(
    qtbot, qapp, bridge, tmp_path, monkeypatch
):  # type: ignore[no-untyped-def]
    """Progressive paint (issue 17) over a damaged file: the first screenful (with the true
    total), then the whole list, are painted from pages that are intact; the deferred checks
    then find the damaged page, and the window locks having written nothing. (A whole load that
    fails is said on the page: tests/ui/test_progressive_paint.py.)"""
    from ui.pages import inventory_page

    monkeypatch.setattr(inventory_page, "HEAD_ROWS", 2)
    home = Home(tmp_path / "ws")
    close_window(qtbot, initialize_through_gui(qtbot, qapp, bridge, home))
    with_keys(bridge, home, 3)
    page = root_page(bridge, home, "key_backups")  # no inventory query reads it here
    data = bytearray(home.database.read_bytes())
    data[(page - 1) * PAGE + PAGE // 2] ^= 0x20
    home.database.write_bytes(bytes(data))

    controller = unlock_through_gui(qtbot, qapp, bridge, home)
    window = controller.window
    assert window is not None
    shown: list[tuple[int, bool]] = []
    window.inventory.loaded.connect(
        lambda total: shown.append((total, window.inventory.model.partial))
    )
    with qtbot.waitSignal(window.locked, timeout=20000) as locked:
        pass
    assert locked.args == [True]
    assert shown == [(3, True), (3, False)]  # first screenful, then every row; then checks
    qtbot.waitUntil(lambda: isinstance(controller.dialog, UnlockDialog), timeout=10000)
    dialog = controller.dialog
    assert isinstance(dialog, UnlockDialog)
    qtbot.waitUntil(lambda: dialog.error.isVisibleTo(dialog), timeout=10000)
    assert "damaged" in dialog.error.text()
    assert home.database.read_bytes() == bytes(data)  # nothing written


def root_page(bridge, home: Home, name: str) -> int:  # type: ignore[no-untyped-def]
    def job() -> int:
        ws = Workstation.unlock(home, OPERATOR, PASSPHRASE)
        try:
            rows = ws.db.query("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,))
            return int(rows[0][0])
        finally:
            ws.lock()

    return int(bridge.executor.call(job))
