"""Tokens page: the module/token tree, logging in with a wrong then a right PIN, module errors,
a token's details, mechanisms filter and probed capabilities, the initialise and PIN dialogs'
guards, and a pulled token noticed by the main window's poll."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QToolBar, QTreeWidgetItem

from app.services.token_admin import InitImpact
from app.storage.repository import SettingsRepository
from tests.ui.conftest import PIN
from ui.dialogs.secret import SecretDialog
from ui.dialogs.token_admin import CreateTokenDialog, InitTokenDialog, PinDialog, PinMode
from ui.main_window import MainWindow
from ui.pages.tokens_page import TokensPage

pytestmark = pytest.mark.ui


def answer_pin_dialogs(answers: list[str], notes: list[str]) -> None:
    """Answer the next modal PIN dialogs in order, recording the note each one showed."""

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        # The login dialog stays open while the token is asked; answer when it is ready again.
        if not isinstance(dialog, SecretDialog) or not dialog.ok_button.isEnabled():
            QTimer.singleShot(20, answer)
            return
        notes.append(dialog.error.text())
        dialog.field.setText(answers.pop(0))
        dialog._accept()
        if answers:
            QTimer.singleShot(20, answer)

    QTimer.singleShot(0, answer)


def token_rows(page: TokensPage) -> dict[str, QTreeWidgetItem]:
    """Token rows of the tree by label."""
    rows = {}
    for item in page._items():
        data = item.data(0, Qt.ItemDataRole.UserRole)
        if data and data[0] == "token":
            rows[item.text(0)] = item
    return rows


def loaded_page(qtbot, gui_session) -> TokensPage:  # type: ignore[no-untyped-def]
    page = TokensPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    gui_session.refresh_tokens()
    qtbot.waitUntil(lambda: bool(token_rows(page)), timeout=10000)
    return page


def test_login_counts_wrong_pin_then_succeeds(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    bridge.executor.call(
        lambda: workstation.tokens.logout(workstation.tokens.find("UiToken").serial)
    )
    page = loaded_page(qtbot, gui_session)
    row = token_rows(page)["UiToken"]
    assert row.text(3) == "no"
    page.tree.setCurrentItem(row)
    assert page.login_action.isEnabled() and not page.logout_action.isEnabled()

    notes: list[str] = []
    answer_pin_dialogs(["000000", PIN], notes)
    page.login_action.trigger()
    qtbot.waitUntil(lambda: token_rows(page)["UiToken"].text(3) == "yes", timeout=15000)
    assert notes[0] == ""
    assert "Wrong PIN" in notes[1] and "1 failure" in notes[1]
    assert token_rows(page)["UiToken"].text(4) == "0"  # a success clears Keystead's count
    assert "1 logged in" in page.summary.text()


def test_module_that_fails_to_load_is_shown(qtbot, bridge, workstation, gui_session, tmp_path):  # type: ignore[no-untyped-def]
    bogus = tmp_path / "libvendor-pkcs11.so"
    bogus.write_bytes(b"not a shared object")

    def add_broken_module() -> None:
        with workstation.db.transaction():
            SettingsRepository(workstation.db).add_module(str(bogus), False, datetime.now(UTC))
        workstation.tokens.load_modules()

    bridge.executor.call(add_broken_module)
    page = loaded_page(qtbot, gui_session)
    qtbot.waitUntil(page.module_errors.isVisible, timeout=5000)
    assert str(bogus) in page.module_errors.text()
    assert "could not be loaded as a PKCS#11 module" in page.module_errors.text()
    assert list(token_rows(page)) == ["UiToken"]  # the working module's token is still listed


def test_token_details_mechanisms_and_probe(qtbot, workstation, gui_session):  # type: ignore[no-untyped-def]
    page = loaded_page(qtbot, gui_session)
    page.tree.setCurrentItem(token_rows(page)["UiToken"])
    panel = page.token_panel
    qtbot.waitUntil(lambda: panel.fields["Label"].text() == "UiToken", timeout=10000)
    assert panel.fields["PIN length"].text() == "4–255"
    assert "token initialised" in panel.fields["Flags"].text()
    # The probe runs once on its own for a logged-in token, and its answer is shown.
    qtbot.waitUntil(lambda: "Ed25519" in panel.capability_text.text(), timeout=20000)
    assert "Wrapping an Ed25519 private key (0x210A): does not work" in panel.capability_text.text()
    everything = panel.mech_table.rowCount()
    panel.mech_filter.setText("unwrap")
    shown = [panel.mech_table.item(r, 0).text() for r in range(panel.mech_table.rowCount())]
    assert "AES_KEY_WRAP_PAD" in shown and 0 < len(shown) < everything
    assert all("unwrap" in panel.mech_table.item(r, 3).text() for r in range(len(shown)))


def test_initialise_dialog_needs_the_typed_label_and_shows_refusals(qtbot, workstation, bridge):  # type: ignore[no-untyped-def]
    audit_impact: InitImpact = bridge.executor.call(workstation.admin.init_impact, "UiToken")
    refused = InitTokenDialog(audit_impact)
    qtbot.addWidget(refused)
    assert not refused.ok.isEnabled() and not refused.confirm.isEnabled()
    assert "audit keys" in refused.lost.text()
    refused.confirm.setText("UiToken")
    assert not refused.ok.isEnabled()  # a refusal cannot be typed away

    allowed = replace(audit_impact, is_audit_token=False, live_keys=(), objects_seen=3)
    dialog = InitTokenDialog(allowed)
    qtbot.addWidget(dialog)
    assert not dialog.ok.isEnabled()
    dialog.confirm.setText("uitoken")
    assert not dialog.ok.isEnabled()
    dialog.confirm.setText("UiToken")
    assert dialog.ok.isEnabled()
    dialog._accept()
    assert "SO PIN" in dialog.error.text() and dialog.result() == 0


def test_pin_dialog_checks_limits_and_repetition(qtbot, workstation, bridge):  # type: ignore[no-untyped-def]
    info = bridge.executor.call(workstation.tokens.find, "UiToken")
    dialog = PinDialog(PinMode.CHANGE_PIN, info, (6, 8))
    qtbot.addWidget(dialog)
    assert "6 to 8 characters" in dialog.limits_hint.text()
    dialog._accept()
    assert "current PIN" in dialog.error.text()
    dialog.old.setText("123456")
    dialog.new.setText("12345")
    dialog.again.setText("12345")
    dialog._accept()
    assert "6 to 8" in dialog.error.text()
    dialog.new.setText("1234567")
    dialog.again.setText("7654321")
    dialog._accept()
    assert "differ" in dialog.error.text()
    dialog.again.setText("1234567")
    dialog._accept()
    assert dialog.result() == 1
    change = dialog.change()
    assert (change.old, change.new) == ("123456", "1234567")
    assert dialog.new.text() == "" and dialog.again.text() == ""  # nothing left in the fields


def test_create_token_from_the_page(qtbot, workstation, gui_session, bridge):  # type: ignore[no-untyped-def]
    page = loaded_page(qtbot, gui_session)

    def fill() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, CreateTokenDialog):
            QTimer.singleShot(20, fill)
            return
        dialog.label.setText("Rehearsal")
        for field in (dialog.so_pin, dialog.so_again):
            field.setText("87654321")
        for field in (dialog.user_pin, dialog.user_again):
            field.setText("4321")
        dialog._accept()

    QTimer.singleShot(0, fill)
    page.create_action.trigger()
    qtbot.waitUntil(lambda: "Rehearsal" in token_rows(page), timeout=15000)
    assert "Created embedded token 'Rehearsal'" in page.notice.text()
    created = bridge.executor.call(workstation.tokens.find, "Rehearsal")
    assert "user PIN initialised" in created.flag_words


def test_a_pulled_token_is_noticed_by_the_window(qtbot, workstation, gui_session, ui_home):  # type: ignore[no-untyped-def]
    window = MainWindow(gui_session)
    qtbot.addWidget(window)
    window.start()
    qtbot.waitUntil(lambda: "UiToken (logged in)" in window.tokens_label.text(), timeout=10000)
    [store] = list(ui_home.softhsm_tokens.iterdir())
    shutil.move(str(store), str(ui_home.root / "pulled"))
    window.poll_tokens()  # the timer does this every second
    qtbot.waitUntil(lambda: "none present" in window.tokens_label.text(), timeout=5000)
    shutil.move(str(ui_home.root / "pulled"), str(store))
    window.poll_tokens()
    qtbot.waitUntil(lambda: "UiToken (not logged in)" in window.tokens_label.text(), timeout=5000)
    window.presence_timer.stop()


def test_rebind_dialog_needs_a_choice_and_the_typed_name(qtbot, workstation, bridge):  # type: ignore[no-untyped-def]
    from app.domain.algorithms import Algorithm
    from app.services.rebind import RebindCandidate
    from ui.dialogs.token_admin import RebindDialog

    key = bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "kek-1")
    candidate = RebindCandidate(key, "00ff00ff00ff00ff", "Spare HSM", "bb01", f"KCV {key.kcv}")
    dialog = RebindDialog([candidate])
    qtbot.addWidget(dialog)
    assert not dialog.ok.isEnabled()
    dialog.confirm.setText("kek-1")
    assert not dialog.ok.isEnabled()  # nothing selected yet
    dialog.table.selectRow(0)
    assert dialog.ok.isEnabled() and dialog.selected() == candidate
    dialog.confirm.setText("kek-")
    assert not dialog.ok.isEnabled()
    assert dialog.table.item(0, 3).text() == f"KCV {key.kcv}"


def test_every_toolbar_entry_is_visible_at_1024_px(qtbot, workstation, gui_session):  # type: ignore[no-untyped-def]
    """At 1024x700 "Initialise token…" and "PINs" went behind the toolbar's » button: module
    and PIN actions are drop-downs now, and every entry is shown."""
    window = MainWindow(gui_session)
    qtbot.addWidget(window)
    window.presence_timer.stop()
    window.resize(1024, 700)
    window.show()
    window.show_page(window.tokens)
    qtbot.waitUntil(lambda: window.tokens.isVisible(), timeout=5000)
    toolbar = window.tokens.findChild(QToolBar)
    qtbot.waitUntil(lambda: toolbar.width() > 0, timeout=5000)
    entries = [a for a in toolbar.actions() if not a.isSeparator()]
    hidden = [a.text() or "widget" for a in entries if not toolbar.widgetForAction(a).isVisible()]
    assert hidden == []
    assert window.tokens.init_action in entries and len(entries) >= 7
    assert window.tokens.add_module_action in window.tokens.module_menu.actions()


def test_the_status_bar_puts_the_count_and_logged_in_tokens_first(  # type: ignore[no-untyped-def]
    qtbot, workstation, gui_session, bridge
):
    # New-user trial: "Tokens: Rehearsal (not logged in)" — the cut-off label hid the logged-in
    # main token. A token whose label sorts first and that is not logged in must not lead.
    bridge.executor.call(workstation.tokens.create_soft_token, "Aardvark", "87654321", "4321")
    window = MainWindow(gui_session)
    qtbot.addWidget(window)
    window.start()
    qtbot.waitUntil(lambda: "Aardvark" in window.tokens_label.text(), timeout=10000)
    window.presence_timer.stop()
    text = window.tokens_label.text()
    head, _, listed = text.partition(" — ")
    parts = listed.split(", ")
    logged = [p for p in parts if p.endswith("(logged in)")]
    assert head == f"Tokens: {len(logged)} of {len(parts)} logged in", text
    assert parts[: len(logged)] == logged, text  # logged-in tokens first
    assert "UiToken (logged in)" in logged and "Aardvark (not logged in)" in parts
    assert "Aardvark" in window.tokens_label.toolTip()
