"""Roles and dual control through the real GUI controller (pytest-qt, offscreen):

a security officer adds a custodian and an auditor on the Operators page; the custodian destroys
a key only after the officer approves that exact request in the approval dialog at the same
screen; the auditor sees every change disabled with the role named, and can still read and
export the audit history. Plus the idle lock and Ctrl+L.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel, QWidget
from shiboken6 import isValid

from app.domain.algorithms import Algorithm, Purpose
from app.domain.lifecycle import Action
from app.paths import Home
from app.storage.database import Database
from app.storage.events import list_events
from app.storage.keyslots import KeySlotFile
from ui.dialogs.approval import ApprovalDialog
from ui.dialogs.lifecycle import DestroyDialog
from ui.dialogs.operators import AddOperatorDialog
from ui.dialogs.unlock import LockScreen, UnlockDialog
from ui.main import AppController
from ui.main_window import MainWindow

from .test_app_flow import PASSPHRASE, initialize_through_gui

pytestmark = pytest.mark.ui

CUSTODIAN_PASS = "SENTINEL-gui-custodian-11"
AUDITOR_PASS = "SENTINEL-gui-auditor-2222"
KEY = "SENTINEL-KEYNAME-gui-kek"


def when_modal(kind: type, act: Callable[[Any], None]) -> None:
    """Act on the next modal dialog of ``kind`` once it is up (dialogs run their own loop)."""

    def poll() -> None:
        widget = QApplication.activeModalWidget()
        if isinstance(widget, kind):
            act(widget)
        else:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)


def add_operator(window: MainWindow, name: str, role_box: str, passphrase: str) -> None:
    def fill(dialog: AddOperatorDialog) -> None:
        dialog.name.setText(name)
        for role, box in dialog.roles.boxes.items():
            box.setChecked(role.value == role_box)
        dialog.passphrase.setText(passphrase)
        dialog.confirm.setText(passphrase)
        dialog._accept()

    when_modal(AddOperatorDialog, fill)
    window.operators.add_action.trigger()


def approve_as(name: str, passphrase: str, seen: list[ApprovalDialog]) -> None:
    def fill(dialog: ApprovalDialog) -> None:
        seen.append(dialog)
        name_field, secret = dialog.rows[0]
        name_field.setText(name)
        secret.setText(passphrase)
        dialog._accept()

    when_modal(ApprovalDialog, fill)


def operators_listed(window: MainWindow) -> list[str]:
    return [r.name for r in window.operators.records]


def workstation_of(controller: AppController) -> Any:
    assert controller.window is not None
    return controller.window.session._workstation


def lock_and_unlock(qtbot, controller: AppController, name: str, passphrase: str) -> MainWindow:  # type: ignore[no-untyped-def]
    window = controller.window
    assert window is not None
    window.lock_action.trigger()
    qtbot.waitUntil(lambda: isinstance(controller.dialog, UnlockDialog), timeout=20000)
    dialog = controller.dialog
    assert isinstance(dialog, UnlockDialog)
    dialog.operator.setEditText(name)
    dialog.passphrase.setText(passphrase)
    dialog.unlock_button.click()
    qtbot.waitUntil(lambda: controller.window is not None, timeout=20000)
    new = controller.window
    assert new is not None and new is not window
    qtbot.waitUntil(lambda: bool(new.operators.records), timeout=20000)
    return new


def test_officer_custodian_auditor_in_the_gui(qtbot, qapp, bridge, tmp_path):  # type: ignore[no-untyped-def]
    home = Home(tmp_path / "ws")
    controller = initialize_through_gui(qtbot, qapp, bridge, home)
    window = controller.window
    assert window is not None
    qtbot.waitUntil(lambda: operators_listed(window) == ["Officer One"], timeout=20000)

    # The sole officer adds the custodian alone (bootstrap), then the auditor with approval.
    add_operator(window, "custodian", "key-custodian", CUSTODIAN_PASS)
    qtbot.waitUntil(lambda: "custodian" in operators_listed(window), timeout=20000)
    seen: list[ApprovalDialog] = []
    approve_as("custodian", CUSTODIAN_PASS, seen)
    add_operator(window, "auditor", "auditor", AUDITOR_PASS)
    qtbot.waitUntil(lambda: "auditor" in operators_listed(window), timeout=30000)
    assert seen and seen[0].request.action == "operator.add"

    ws = workstation_of(controller)
    key = bridge.executor.call(
        ws.keys.generate, "GuiToken", Algorithm.AES_256, KEY, Purpose.KEY_WRAPPING
    )

    # The custodian destroys the key; the officer approves that exact request here.
    window = lock_and_unlock(qtbot, controller, "custodian", CUSTODIAN_PASS)
    assert not window.operators.add_action.isEnabled()  # a custodian manages no operators
    assert "security officer" in window.operators.add_action.toolTip()
    ws = workstation_of(controller)
    bridge.executor.call(ws.tokens.login, "GuiToken", "112233")
    actions = window.inventory.lifecycle
    actions.set_key(bridge.executor.call(ws.keys.resolve, key.id))
    assert actions.transitions[Action.DESTROY].isEnabled()
    approvals: list[ApprovalDialog] = []
    approve_as("Officer One", PASSPHRASE, approvals)

    def type_name(dialog: DestroyDialog) -> None:
        dialog.typed.setText(KEY)
        dialog.destroy_button.click()

    changed: list[Any] = []
    actions.changed.connect(changed.append)
    when_modal(DestroyDialog, type_name)
    actions.transitions[Action.DESTROY].trigger()
    qtbot.waitUntil(lambda: bool(changed), timeout=30000)
    assert changed[0].state.value == "DESTROYED"
    [dialog] = approvals
    request = dialog.request
    shown = " ".join(label.text() for label in dialog.findChildren(QLabel))
    assert KEY in shown and "AES-256" in shown
    assert request.fingerprint in shown.replace(":\n", ":")  # the hash is shown on two lines
    assert " ".join(request.words[:8]) in dialog.words.text()
    entries = bridge.executor.call(list_events, ws.db, f"key:{key.id}")
    [done] = [e for e in entries if e.action == "key.destroy" and e.outcome == "success"]
    assert done.operators == ("custodian", "Officer One")
    assert json.loads(done.details_json)["approval"]["request_sha256"] == request.digest_hex

    # The auditor: every change disabled with the role named; reading and export stay.
    window = lock_and_unlock(qtbot, controller, "auditor", AUDITOR_PASS)
    gated = [
        window.operators.add_action,
        window.policy.edit_action,
        window.inventory.generate_action,
        window.tokens.init_action,
        window.tokens.create_action,
        *window.inventory.lifecycle.transitions.values(),
    ]
    for qaction in gated:
        assert not qaction.isEnabled(), qaction.text()
        assert "you are an auditor" in qaction.toolTip(), qaction.text()
    window.inventory.lifecycle.set_key(
        bridge.executor.call(workstation_of(controller).keys.resolve, key.id)
    )
    assert not window.inventory.lifecycle.transitions[Action.COMPROMISE].isEnabled()
    assert window.audit.export_json.isEnabled() and window.audit.verify_action.isEnabled()
    assert window.operators.own_action.isEnabled()  # their own passphrase stays theirs
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=20000)


def test_idle_lock_blanks_the_screen_and_ctrl_l_locks(qtbot, qapp, bridge, tmp_path):  # type: ignore[no-untyped-def]
    home = Home(tmp_path / "ws")
    controller = initialize_through_gui(qtbot, qapp, bridge, home)
    window = controller.window
    assert window is not None
    ws = workstation_of(controller)
    bridge.executor.call(ws.keys.generate, "GuiToken", Algorithm.AES_128, KEY)
    window.session.keys_changed.emit()
    qtbot.waitUntil(lambda: window.inventory.model.rowCount() == 1, timeout=20000)
    window.idle.set_interval_ms(300)  # the setting is in minutes; the mechanism is the same
    qtbot.waitUntil(lambda: controller.lock_screen is not None, timeout=20000)
    screen = controller.lock_screen
    assert isinstance(screen, LockScreen) and isinstance(controller.dialog, UnlockDialog)
    # (the locked window is hidden, then deleted by the controller)
    qtbot.waitUntil(lambda: not isValid(window) or not window.isVisible(), timeout=20000)
    visible = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
    texts = [label.text() for w in visible for label in w.findChildren(QLabel) if label.isVisible()]
    assert texts and not any(KEY in text for text in texts)
    assert all(not isinstance(w, MainWindow) for w in visible)
    image = screen.grab()
    image.save(str(tmp_path / "locked.png"))
    # The lock was recorded with its reason; the database is closed (a query fails).
    assert ws._database_key == b""  # the locked workstation keeps no key
    key = KeySlotFile.load(home.keyslots).open("Officer One", PASSPHRASE)
    reopened = bridge.executor.call(Database.open, home.database, key)
    try:
        reasons = [
            json.loads(e.details_json).get("reason")
            for e in bridge.executor.call(list_events, reopened)
            if e.action == "workstation.lock"
        ]
    finally:
        bridge.executor.call(reopened.close)
    assert reasons == ["idle"]
    with pytest.raises(Exception):  # noqa: B017 (any error: the connection is closed)
        bridge.executor.call(ws.db.scalar, "SELECT 1")

    # Unlock again, then Ctrl+L locks at once.
    dialog = controller.dialog
    dialog.operator.setEditText("Officer One")
    dialog.passphrase.setText(PASSPHRASE)
    dialog.unlock_button.click()
    qtbot.waitUntil(lambda: controller.window is not None, timeout=20000)
    window = controller.window
    assert window is not None and controller.lock_screen is None
    assert window.lock_action is not None
    assert window.lock_action.shortcut().toString() == "Ctrl+L"  # (offscreen keys are unreliable)
    window.lock_action.trigger()
    qtbot.waitUntil(lambda: controller.lock_screen is not None, timeout=20000)
    for widget in (controller.dialog, controller.lock_screen):
        if isinstance(widget, QWidget):
            widget.hide()  # (rejecting the unlock dialog would quit the application)


def test_a_refused_approval_is_said_in_words_and_changes_nothing(qtbot, qapp, bridge, tmp_path):  # type: ignore[no-untyped-def]
    """The initiator naming themself as approver: the message names the rule, nothing changes
    (every other approver rule is covered at the service and CLI level)."""
    approver, passphrase, rule = "Officer One", PASSPHRASE, "KS-DUAL-SELF-APPROVAL"
    home = Home(tmp_path / "ws")
    controller = initialize_through_gui(qtbot, qapp, bridge, home)
    window = controller.window
    assert window is not None
    add_operator(window, "custodian", "key-custodian", CUSTODIAN_PASS)
    qtbot.waitUntil(lambda: "custodian" in operators_listed(window), timeout=20000)
    ws = workstation_of(controller)
    key = bridge.executor.call(ws.keys.generate, "GuiToken", Algorithm.AES_256, KEY)
    actions = window.inventory.lifecycle
    actions.set_key(key)
    approve_as(approver, passphrase, [])
    when_modal(DestroyDialog, lambda d: (d.typed.setText(KEY), d.destroy_button.click()))
    actions.transitions[Action.DESTROY].trigger()
    dialog = actions.dialog
    assert isinstance(dialog, DestroyDialog)
    # The refusal is said in the dialog, which stays open with what was typed.
    qtbot.waitUntil(lambda: bool(dialog.error.text()), timeout=30000)
    assert rule in dialog.error.text()
    dialog.reject()
    assert bridge.executor.call(ws.keys.resolve, key.id).state.value == "PRE_ACTIVE"
    denied = [
        e
        for e in bridge.executor.call(list_events, ws.db, f"key:{key.id}")
        if e.action == "key.destroy"
    ]
    assert [e.outcome for e in denied] == ["denied"]
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=20000)
