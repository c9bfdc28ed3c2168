"""Tokens page: listing, logging in with a wrong then a right PIN, module errors shown."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.storage.repository import SettingsRepository
from tests.ui.conftest import PIN
from ui.dialogs.secret import SecretDialog
from ui.pages.tokens_page import TokensPage

pytestmark = pytest.mark.ui


def answer_pin_dialogs(answers: list[str], notes: list[str]) -> None:
    """Answer the next modal PIN dialogs in order, recording the note each one showed."""

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, SecretDialog):
            QTimer.singleShot(20, answer)
            return
        notes.append(dialog.error.text())
        dialog.field.setText(answers.pop(0))
        dialog._accept()
        if answers:
            QTimer.singleShot(20, answer)

    QTimer.singleShot(0, answer)


def test_login_counts_wrong_pin_then_succeeds(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    bridge.executor.call(
        lambda: workstation.tokens.logout(workstation.tokens.find("UiToken").serial)
    )
    page = TokensPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    with qtbot.waitSignal(gui_session.tokens_changed, timeout=10000):
        gui_session.refresh_tokens()
    assert page.table.rowCount() == 1
    assert page.table.item(0, 0).text() == "UiToken"
    assert page.table.item(0, 5).text() == "no"
    page.table.selectRow(0)
    assert page.login_action.isEnabled() and not page.logout_action.isEnabled()

    notes: list[str] = []
    answer_pin_dialogs(["000000", PIN], notes)
    page.login_action.trigger()
    qtbot.waitUntil(
        lambda: page.table.rowCount() == 1 and page.table.item(0, 5).text() == "yes", timeout=15000
    )
    assert notes[0] == ""
    assert "Wrong PIN" in notes[1] and "1 failure" in notes[1]
    assert page.table.item(0, 6).text() == "0"  # a success clears Keystead's count
    assert "1 logged in" in page.summary.text()


def test_module_that_fails_to_load_is_shown(qtbot, bridge, workstation, gui_session, tmp_path):  # type: ignore[no-untyped-def]
    bogus = tmp_path / "libvendor-pkcs11.so"
    bogus.write_bytes(b"not a shared object")

    def add_broken_module() -> None:
        with workstation.db.transaction():
            SettingsRepository(workstation.db).add_module(str(bogus), False, datetime.now(UTC))
        workstation.tokens.load_modules()

    bridge.executor.call(add_broken_module)
    page = TokensPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    with qtbot.waitSignal(gui_session.tokens_changed, timeout=10000):
        gui_session.refresh_tokens()
    assert page.module_errors.isVisible()
    assert str(bogus) in page.module_errors.text()
    assert "could not be loaded as a PKCS#11 module" in page.module_errors.text()
    assert page.table.rowCount() == 1  # the working module's token is still listed
