"""Restricting a key is never blocked and nothing typed is lost: the audit token's PIN is
asked right after unlock (with a banner until done) and, when a sealed change needs it, in
place, keeping the dialog and the typed reason; a removed token raises a banner naming it."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtWidgets import QApplication

from app.domain.algorithms import Algorithm
from app.domain.keys import KeyState
from app.domain.lifecycle import Action
from tests.ui.conftest import PIN
from ui.dialogs.lifecycle import ReasonDialog
from ui.dialogs.secret import SecretDialog

pytestmark = pytest.mark.ui


def log_out(bridge, workstation) -> None:  # type: ignore[no-untyped-def]
    bridge.executor.call(
        lambda: workstation.tokens.logout(workstation.tokens.find("UiToken").serial)
    )


def pin_dialog(qtbot, owner=None) -> SecretDialog:  # type: ignore[no-untyped-def]
    """The open PIN dialog (of ``owner``'s window when given)."""

    def find() -> SecretDialog | None:
        for widget in QApplication.topLevelWidgets():
            mine = owner is None or widget.parent() is owner
            if isinstance(widget, SecretDialog) and widget.isVisible() and mine:
                return widget
        return None

    qtbot.waitUntil(lambda: find() is not None, timeout=5000)
    dialog = find()
    assert dialog is not None
    return dialog


def test_compromise_asks_for_the_audit_pin_in_place_and_keeps_the_report(
    qtbot, bridge, workstation, gui_session
):  # type: ignore[no-untyped-def]
    from ui.pages.inventory_page import InventoryPage

    key = bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "kek")
    log_out(bridge, workstation)
    gui_session.refresh_tokens()
    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: gui_session.audit_status() is not None, timeout=5000)
    with qtbot.waitSignal(page.loaded, timeout=10000):
        page.refresh()
    page.table.selectRow(0)
    messages: list[str] = []
    page.status_message.connect(messages.append)
    page.lifecycle.transitions[Action.COMPROMISE].trigger()
    dialog = page.lifecycle.dialog
    assert isinstance(dialog, ReasonDialog)
    qtbot.keyClicks(dialog.reason, "laptop stolen")
    qtbot.keyClicks(dialog.typed, "kek")
    dialog.ok_button.click()
    login = pin_dialog(qtbot, dialog)  # asked in place, over the compromise dialog
    assert dialog.isVisible() and dialog.reason.toPlainText() == "laptop stolen"  # kept
    assert "audit token" in dialog.error.text()
    login.field.setText(PIN)
    with qtbot.waitSignal(dialog.finished, timeout=10000):  # closed once the change is made
        login._accept()
    after = bridge.executor.call(workstation.keys.resolve, key.id)
    assert after.state is KeyState.COMPROMISED
    history = bridge.executor.call(workstation.lifecycle.history, key.id)
    assert history[-1].outcome == "success" and history[-1].details["reason"] == "laptop stolen"
    # the refused first try recorded the report too
    failed = [e for e in history if e.outcome != "success" and e.action == "key.compromise"]
    assert failed and failed[0].details["reason"] == "laptop stolen"
    assert messages and "now compromised" in messages[-1]


def test_reason_fields_let_tab_move_focus(qtbot, bridge, workstation):  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    key = bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "k2")
    dialog = ReasonDialog(key, Action.SUSPEND)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.reason.setFocus()
    qtbot.keyClicks(dialog.reason, "a")
    qtbot.keyClick(dialog.reason, Qt.Key.Key_Tab)
    qtbot.keyClicks(dialog.reason, "b")
    assert "\t" not in dialog.reason.toPlainText()


def test_window_asks_for_audit_pin_after_unlock_and_bans_until_done(
    qtbot, bridge, workstation, gui_session
):  # type: ignore[no-untyped-def]
    from ui.main_window import MainWindow

    log_out(bridge, workstation)
    window = MainWindow(gui_session)
    qtbot.addWidget(window)
    window.presence_timer.stop()
    window.show()
    window.start()
    login = pin_dialog(qtbot, window)  # asked at once
    banner = window.banner
    assert "not logged in" in banner.text.text(), banner.text.text()
    assert banner.isVisible()
    login.reject()
    assert banner.isVisible()  # declined: the banner stays, with its button
    assert banner.login_button.isVisible()
    banner.login_button.click()
    login = pin_dialog(qtbot, window)
    login.field.setText(PIN)
    login._accept()
    qtbot.waitUntil(lambda: not banner.isVisible(), timeout=10000)


def test_removed_audit_token_raises_a_banner_naming_it(  # type: ignore[no-untyped-def]
    qtbot, bridge, workstation, gui_session, ui_home
):
    from ui.main_window import MainWindow
    from ui.models.inventory_model import Column

    bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "k3")
    window = MainWindow(gui_session)
    qtbot.addWidget(window)
    window.presence_timer.stop()
    window.show()
    window.start()
    qtbot.waitUntil(lambda: "UiToken (logged in)" in window.tokens_label.text(), timeout=10000)
    assert not window.banner.isVisible()
    [store] = list(ui_home.softhsm_tokens.iterdir())
    shutil.move(str(store), str(ui_home.root / "pulled"))
    window.poll_tokens()
    qtbot.waitUntil(window.banner.isVisible, timeout=5000)
    assert "Audit token 'UiToken'" in window.banner.text.text()
    assert "was removed" in window.banner.text.text()
    model = window.inventory.model
    absent = "token not present"
    qtbot.waitUntil(
        lambda: model.rowCount() == 1 and model.index(0, Column.PRESENCE).data() == absent,
        timeout=5000,
    )
    # and the keys say the truth: their token is not attached
    shutil.move(str(ui_home.root / "pulled"), str(store))
    window.poll_tokens()
    qtbot.waitUntil(lambda: "not logged in" in window.banner.text.text(), timeout=5000)
