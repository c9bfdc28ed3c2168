"""Danger looks dangerous (one rule for irreversible actions: red button, never default,
typed confirmation, Enter does not confirm); reversible but consequential actions confirm and
name every key they touch; success shows in the status bar; the keyboard reaches everything."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyRecord, KeyState
from app.domain.lifecycle import Action
from app.hsm.module import TokenInfo
from app.services.token_admin import InitImpact
from ui.dialogs.lifecycle import ConfirmKeyDialog, DestroyDialog, EditKeyDialog, ReasonDialog, to_qt
from ui.dialogs.token_admin import InitTokenDialog, RemoveAuditModuleDialog
from ui.widgets.danger import is_irreversible_safe

pytestmark = pytest.mark.ui


def key(state: KeyState = KeyState.DEACTIVATED, **extra: object) -> KeyRecord:
    return KeyRecord(
        str(uuid.uuid4()),
        "payments-kek",
        Algorithm.AES_256,
        Purpose.KEY_WRAPPING,
        state,
        "s1",
        "Vault",
        "ab" * 16,
        False,
        "C0FFEE",
        None,
        datetime(2026, 1, 1, tzinfo=UTC),
        "alice",
        **extra,  # type: ignore[arg-type]
    )


TOKEN = TokenInfo("/lib/x.so", 1, "Vault", "s1", "SoftHSM", "SoftHSM v2", 0x400, "2.6", "2.6")


def irreversible_dialogs():  # type: ignore[no-untyped-def]
    """(dialog, its red button, the field to type in, the text that confirms)."""
    destroy = DestroyDialog(key())
    compromise = ReasonDialog(key(KeyState.ACTIVE), Action.COMPROMISE)
    compromise.reason.setPlainText("seen on a paste site")
    init = InitTokenDialog(InitImpact(TOKEN, (), 0, False, 3))
    init.so_pin.setText("12345678")
    remove = RemoveAuditModuleDialog("/lib/x.so", "Vault")
    return [
        (destroy, destroy.destroy_button, destroy.typed, "payments-kek"),
        (compromise, compromise.ok_button, compromise.typed, "payments-kek"),
        (init, init.ok, init.confirm, "Vault"),
        (remove, remove.ok, remove.confirm, "Vault"),
    ]


def test_every_irreversible_dialog_follows_one_rule(qtbot):  # type: ignore[no-untyped-def]
    for dialog, button, typed, expected in irreversible_dialogs():
        qtbot.addWidget(dialog)
        dialog.show()
        confirmed: list[bool] = []
        if hasattr(dialog, "confirmed"):
            dialog.confirmed.connect(lambda seen=confirmed: seen.append(True))
        assert is_irreversible_safe(dialog, button), type(dialog).__name__
        assert button.icon().isNull()  # no reassuring check mark on an erase
        assert not button.isEnabled()
        typed.setFocus()
        qtbot.keyClicks(typed, expected)
        assert button.isEnabled()
        qtbot.keyClick(typed, Qt.Key.Key_Return)  # Enter neither confirms nor cancels
        assert dialog.isVisible() and dialog.result() == 0 and not confirmed, type(dialog).__name__
        button.click()
        assert dialog.result() == 1 or confirmed, type(dialog).__name__


def test_compromise_dialog_shows_the_identifier_in_full(qtbot):  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QLabel

    dialog = ReasonDialog(key(KeyState.ACTIVE), Action.COMPROMISE)
    qtbot.addWidget(dialog)
    assert dialog.identity.identifier.raw == "C0FFEE"
    # one formatter for every screen (app.domain.fingerprints.identifier_text): a KCV whole
    assert any("C0FFEE" in label.text() for label in dialog.findChildren(QLabel))


def test_rotate_and_successor_confirm_and_name_the_deactivated_key(  # type: ignore[no-untyped-def]
    qtbot, bridge, workstation, gui_session
):
    from PySide6.QtWidgets import QLabel

    from ui.pages.inventory_page import InventoryPage

    old = bridge.executor.call(
        workstation.keys.generate, "UiToken", Algorithm.AES_128, "old-kek", Purpose.ENCRYPTION
    )
    bridge.executor.call(workstation.lifecycle.transition, old.id, Action.ACTIVATE)
    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    with qtbot.waitSignal(page.loaded, timeout=10000):
        page.refresh()
    page.table.selectRow(0)
    messages: list[str] = []
    page.status_message.connect(messages.append)
    page.lifecycle.rotate.trigger()
    rotate = page.lifecycle.dialog
    assert isinstance(rotate, ConfirmKeyDialog)  # one click no longer creates a key
    assert bridge.executor.call(workstation.lifecycle.lineage, old.id)[-1].id == old.id
    with qtbot.waitSignal(page.loaded, timeout=10000):
        rotate.ok_button.click()
    assert messages and "Successor 'old-kek-v2' generated" in messages[-1]
    successor = next(
        page.model.item_at(r).record
        for r in range(page.model.rowCount())
        if page.model.item_at(r).record.name == "old-kek-v2"
    )
    page.select_key(successor.id)
    page.lifecycle.transitions[Action.ACTIVATE].trigger()
    qtbot.waitUntil(lambda: isinstance(page.lifecycle.dialog, ConfirmKeyDialog), timeout=5000)
    confirm = page.lifecycle.dialog
    assert confirm.also is not None  # names the key it deactivates, with its identity
    assert "<b>old-kek</b>" in confirm.also.findChild(QLabel, "keyName").text()
    with qtbot.waitSignal(page.loaded, timeout=10000):
        confirm.ok_button.click()
    assert "now active" in messages[-1]
    assert bridge.executor.call(workstation.keys.resolve, old.id).state is KeyState.DEACTIVATED


def test_edit_warns_about_a_past_deactivation_date(qtbot):  # type: ignore[no-untyped-def]
    record = key(KeyState.ACTIVE)
    dialog = EditKeyDialog(record)
    qtbot.addWidget(dialog)
    confirmed: list[bool] = []
    dialog.confirmed.connect(lambda: confirmed.append(True))
    dialog.use_deactivation.setChecked(True)
    dialog.deactivation.setDateTime(to_qt(datetime.now(UTC) - timedelta(days=2)))
    dialog.ok_button.click()
    assert not confirmed and dialog.past_warning.isVisibleTo(dialog)
    assert "in the past" in dialog.past_warning.text()
    assert dialog.ok_button.text() == "Save, deactivate"
    dialog.ok_button.click()  # the second, explicit Save
    assert confirmed


def test_menu_bar_has_the_standard_shortcuts(qtbot, gui_session):  # type: ignore[no-untyped-def]
    from ui.main_window import MainWindow

    window = MainWindow(gui_session)
    qtbot.addWidget(window)
    window.presence_timer.stop()
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus == ["Workstation", "Keys", "Tokens", "Audit", "Help"]
    shortcuts = {
        a.shortcut().toString(): a.text().replace("&", "")
        for menu in window.menuBar().findChildren(type(window.menuBar().actions()[0].menu()))
        for a in menu.actions()
        if not a.shortcut().isEmpty()
    }
    assert shortcuts["Ctrl+F"] == "Find…"
    assert shortcuts["Ctrl+L"] == "Lock now"
    assert shortcuts["Ctrl+G"].startswith("Generate")
    assert shortcuts["F5"] == "Refresh"
    assert shortcuts[QKeySequence(QKeySequence.StandardKey.Delete).toString()].startswith("Destroy")
    window.show()
    window.focus_filter()
    assert window.focusWidget() is window.inventory.filter
    assert not window.inventory.table.tabKeyNavigation()  # Tab leaves the table
    assert not window.tokens.tree.tabKeyNavigation()


def test_return_on_a_token_row_logs_in(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    from ui.dialogs.secret import SecretDialog
    from ui.pages.tokens_page import TokensPage

    bridge.executor.call(
        lambda: workstation.tokens.logout(workstation.tokens.find("UiToken").serial)
    )
    page = TokensPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    gui_session.refresh_tokens()
    qtbot.waitUntil(lambda: page.login_action.isEnabled() or bool(page._items()), timeout=10000)
    token_row = next(
        i for i in page._items() if (i.data(0, Qt.ItemDataRole.UserRole) or ("",))[0] == "token"
    )
    page.tree.setCurrentItem(token_row)
    page.tree.setFocus()
    qtbot.keyClick(page.tree, Qt.Key.Key_Return)
    assert page.findChild(SecretDialog) is not None and page.findChild(SecretDialog).isVisible()
