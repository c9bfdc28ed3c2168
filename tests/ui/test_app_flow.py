"""Start-up flows through the real controller: initialise, unlock, lock on close, screenshot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from shiboken6 import isValid

from app.paths import Home
from ui.dialogs.initialize import InitializeDialog
from ui.dialogs.unlock import UnlockDialog
from ui.main import AppController

pytestmark = pytest.mark.ui

PASSPHRASE = "controller passphrase"


def initialize_through_gui(qtbot, qapp, bridge, home: Home) -> AppController:  # type: ignore[no-untyped-def]
    controller = AppController(qapp, home, bridge)
    controller.start()
    dialog = controller.dialog
    assert isinstance(dialog, InitializeDialog)
    dialog.operator.setText("Officer One")
    dialog.passphrase.setText(PASSPHRASE)
    dialog.confirmation.setText(PASSPHRASE)
    dialog.token_label.setText("GuiToken")
    for field, value in (
        ("user_pin", "112233"),
        ("user_pin_confirm", "112233"),
        ("so_pin", "99887766"),
        ("so_pin_confirm", "99887766"),
    ):
        getattr(dialog, field).setText(value)
    dialog.create_button.click()
    qtbot.waitUntil(lambda: controller.window is not None, timeout=20000)
    return controller


def close_window(qtbot, controller: AppController) -> None:  # type: ignore[no-untyped-def]
    window = controller.window
    assert window is not None
    window.close()  # ignored until the core thread has locked the workstation
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10000)


def test_first_start_creates_workstation_and_token(qtbot, qapp, bridge, tmp_path):  # type: ignore[no-untyped-def]
    home = Home(tmp_path / "ws")
    controller = initialize_through_gui(qtbot, qapp, bridge, home)
    window = controller.window
    assert window is not None
    assert home.database.exists() and home.keyslots.exists()
    assert home.softhsm_conf.exists()
    qtbot.waitUntil(lambda: "GuiToken" in window.tokens_label.text(), timeout=10000)
    assert "GuiToken (logged in)" in window.tokens_label.text()  # it holds the audit keys
    assert window.operator_label.text() == "Operator: Officer One"
    assert str(home.database) in window.database_label.text()
    qtbot.waitUntil(lambda: bool(window.tokens._items()), timeout=10000)
    tokens = [
        i.text(0)
        for i in window.tokens._items()
        if (i.data(0, Qt.ItemDataRole.UserRole) or ("",))[0] == "token"
    ]
    assert tokens == ["GuiToken"]
    close_window(qtbot, controller)


def test_unlock_reports_wrong_passphrase_then_opens(qtbot, qapp, bridge, tmp_path):  # type: ignore[no-untyped-def]
    home = Home(tmp_path / "ws")
    close_window(qtbot, initialize_through_gui(qtbot, qapp, bridge, home))
    before = home.database.read_bytes()

    controller = AppController(qapp, home, bridge)
    controller.start()
    dialog = controller.dialog
    assert isinstance(dialog, UnlockDialog)
    assert dialog.operator.currentText() == "Officer One"
    dialog.passphrase.setText("not the passphrase")
    dialog.unlock_button.click()
    qtbot.waitUntil(lambda: dialog.error.isVisibleTo(dialog), timeout=10000)
    assert "wrong" in dialog.error.text()
    assert home.database.read_bytes() == before
    assert controller.window is None

    dialog.passphrase.setText(PASSPHRASE)
    dialog.unlock_button.click()
    qtbot.waitUntil(lambda: controller.window is not None, timeout=10000)
    close_window(qtbot, controller)


def test_screenshot_command_writes_png(tmp_path: Path) -> None:
    """``keystead-gui --screenshot`` on a fresh home renders the initialise dialog offscreen."""
    shot = tmp_path / "first-start.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "KEYSTEAD_HOME": str(tmp_path / "h")}
    result = subprocess.run(
        [sys.executable, "-m", "ui.main", "--screenshot", str(shot)],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000
    assert not (tmp_path / "h").exists()  # a screenshot never creates a workstation


def test_lock_now_locks_and_asks_to_unlock_again(qtbot, qapp, bridge, tmp_path):  # type: ignore[no-untyped-def]
    """Ctrl+L (Workstation → Lock now): the same lock as closing, then the unlock dialog."""
    controller = initialize_through_gui(qtbot, qapp, bridge, Home(tmp_path / "ws"))
    window = controller.window
    assert window is not None and window.lock_action is not None
    assert window.lock_action.shortcut().toString() == "Ctrl+L"
    with qtbot.waitSignal(window.locked, timeout=10000) as locked:
        window.lock_action.trigger()
    assert locked.args == [True]
    qtbot.waitUntil(lambda: isinstance(controller.dialog, UnlockDialog), timeout=10000)
    # (the locked window is hidden, then deleted by the controller)
    assert controller.window is None and (not isValid(window) or not window.isVisible())
    dialog = controller.dialog
    assert isinstance(dialog, UnlockDialog)
    dialog.passphrase.setText(PASSPHRASE)
    dialog.unlock_button.click()
    qtbot.waitUntil(lambda: controller.window is not None, timeout=10000)
    close_window(qtbot, controller)
