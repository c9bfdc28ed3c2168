"""The backup round trip through the GUI (pytest-qt, offscreen, real SoftHSM tokens and real
SQLCipher files): the wizard writes a 2-of-3 backup, approved in the approval dialog, each
custodian's share shown alone and the screen cleared between; the Backup page verifies it with
a restore drill; a fresh workstation on a fresh token restores it from its own Backup page, and
a file encrypted on token A before the backup decrypts on token B after the restore.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.domain.algorithms import Algorithm, Purpose
from app.domain.lifecycle import Action
from app.paths import Home
from app.services.workstation import SoftTokenRequest, Workstation
from app.storage.events import list_events
from tests.support import WITNESS, WITNESS_PASS, enrol_witness, with_witness
from ui.approvals import QtApprovalSource
from ui.dialogs.approval import ApprovalDialog
from ui.dialogs.backup_open import OpenBackupDialog
from ui.dialogs.backup_wizard import APPROVAL, DONE, KEYS, PROTECTION, SHARES, TARGET, BackupWizard
from ui.pages.backup_page import BackupPage
from ui.session import GuiSession

from .conftest import FAST, PASSPHRASE, PIN, SO_PIN

pytestmark = pytest.mark.ui

SECRET_TEXT = "SENTINEL-plaintext-before-the-backup"


def when_modal(kind: type, act: Callable[[Any], None]) -> None:
    """Act on the next modal dialog of ``kind`` once it is up."""

    def poll() -> None:
        widget = QApplication.activeModalWidget()
        if isinstance(widget, kind) and widget.isVisible():
            act(widget)
        else:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)


def approve_as_witness(seen: list[str]) -> None:
    def fill(dialog: ApprovalDialog) -> None:
        seen.append(dialog.request.action)
        name, secret = dialog.rows[0]
        name.setText(WITNESS)
        secret.setText(WITNESS_PASS)
        dialog._accept()

    when_modal(ApprovalDialog, fill)


def close_message(texts: list[str]) -> None:
    def close(box: QMessageBox) -> None:
        texts.append(box.text())
        box.accept()

    when_modal(QMessageBox, close)


def words_on_screen(wizard: BackupWizard) -> list[str]:
    """The share words the card shows now, in their numbered order (the card's table runs
    down its columns)."""
    text = wizard.shares.card.words.text()
    cells = re.findall(r"(\d+)\. ([a-z]+)</td>", text)
    return [word for _n, word in sorted(cells, key=lambda cell: int(cell[0]))]


def page_for(qtbot, session: GuiSession) -> BackupPage:  # type: ignore[no-untyped-def]
    session.refresh_tokens()
    qtbot.waitUntil(lambda: any(s.logged_in for s in session.tokens), timeout=20000)
    page = BackupPage(session)
    qtbot.addWidget(page)
    page.resize(1024, 700)
    return page


@pytest.fixture
def station_b(bridge, tmp_path: Path) -> Iterator[Workstation]:  # type: ignore[no-untyped-def]
    def make() -> Workstation:
        ws = Workstation.initialize(
            Home(tmp_path / "home-b"),
            "officer",
            PASSPHRASE,
            PASSPHRASE,
            SoftTokenRequest("UiTokenB", SO_PIN, PIN),
            cost=FAST,
        )
        ws.tokens.login("UiTokenB", PIN)
        return with_witness(ws)

    ws = bridge.executor.call(make)
    yield ws
    bridge.executor.call(ws.lock)


def test_backup_round_trip_through_the_gui(  # type: ignore[no-untyped-def]
    qtbot, bridge, workstation, gui_session, station_b, tmp_path
):
    call = bridge.executor.call
    ws: Workstation = workstation

    def setup() -> tuple[Any, Any]:
        data = ws.keys.generate("UiToken", Algorithm.AES_256, "data-key", Purpose.ENCRYPTION, True)
        ws.lifecycle.transition(data.id, Action.ACTIVATE)
        mac = ws.keys.generate("UiToken", Algorithm.AES_128, "mac-key", Purpose.ENCRYPTION, True)
        ws.keys.generate("UiToken", Algorithm.AES_256, "stays-home", Purpose.ENCRYPTION, False)
        (tmp_path / "plain.txt").write_text(SECRET_TEXT)
        ws.use.encrypt_file(data.id, tmp_path / "plain.txt", tmp_path / "plain.ksenc")
        enrol_witness(ws)
        return data, mac

    data, mac = call(setup)
    stick = tmp_path / "stick"
    stick.mkdir()
    page = page_for(qtbot, gui_session)
    source = QtApprovalSource(page)
    ws.approvals.source = source  # the approval dialog, as the main window wires it

    # --- 1. Target, 2. Keys (the non-extractable key is listed with its reason) ---------------
    wizard = page.create_backup()
    qtbot.waitUntil(lambda: wizard.keys.table.rowCount() == 2, timeout=20000)
    assert wizard.step() == TARGET
    wizard.next_button.click()
    assert wizard.error.text().startswith("Choose a removable volume")  # no target yet
    wizard.target.path.setText(str(stick))
    wizard.next_button.click()
    assert wizard.step() == KEYS
    assert {wizard.keys.table.item(r, 0).text() for r in range(2)} == {"data-key", "mac-key"}
    assert wizard.keys.refused.item(0, 0).text() == "stays-home"
    assert "not extractable" in wizard.keys.refused.item(0, 1).text()
    wizard.next_button.click()

    # --- 3. Protection: a custodian name with a bidi override is refused ------------------------
    assert wizard.step() == PROTECTION
    protection = wizard.protection
    assert protection.pins.title().startswith("PINs of token UiToken")  # F19: which token
    protection.custodian_name.setText("Mallory\u202etxt.exe")
    protection._add()
    assert protection.names() == []
    assert "control or invisible" in wizard.error.text()
    for name in ("Alice", "Bob", "Carol"):
        protection.custodian_name.setText(name)
        protection._add()
    protection.threshold.setValue(2)
    wizard.next_button.click()
    assert wizard.step() == PROTECTION and "PIN" in wizard.error.text()
    protection.so_pin.setText(SO_PIN)
    protection.user_pin.setText(PIN)
    wizard.next_button.click()
    assert wizard.step() == APPROVAL
    assert "2 of 3 custodians: Alice, Bob, Carol" in wizard.review.text()

    # --- 4. Approval (the approval dialog), 5. shares one custodian at a time -----------------
    seen: list[str] = []
    approve_as_witness(seen)
    wizard.next_button.click()
    qtbot.waitUntil(lambda: wizard.shares.handout is not None, timeout=60000)
    assert seen == ["backup.create"]
    assert not any(stick.iterdir()), "nothing is written before the shares are handed out"
    shares: list[str] = []
    for index, name in enumerate(("Alice", "Bob", "Carol")):
        assert wizard.step() == SHARES
        assert name in wizard.shares.title.text()
        assert words_on_screen(wizard) == [] and not wizard.shares.card.isVisible()
        wizard.shares.show_button.click()
        words = words_on_screen(wizard)
        assert len(words) == 33  # a 256-bit secret in SLIP-39
        facts = wizard.shares.card.facts.text()
        assert f"Custodian:</b> {name}" in facts and f"Share:</b> {index + 1} of 3" in facts
        assert "KEK check value" in facts and "Manifest signed by key" in facts
        shares.append(" ".join(words))
        wizard.shares.done_button.click()
        assert words_on_screen(wizard) == [], "the screen is cleared between custodians"

    # --- 6. Writing, 7. Safe to remove --------------------------------------------------------
    qtbot.waitUntil(lambda: wizard.step() == DONE, timeout=120000)
    qtbot.waitUntil(lambda: "Safe" in wizard.done_step.safe.text(), timeout=20000)
    assert wizard.writing.bar.value() == wizard.writing.bar.maximum()
    created = wizard.created
    assert created is not None and created.directory.parent == stick
    assert sorted(e.name for e in created.manifest.keys) == ["data-key", "mac-key"]
    wizard.next_button.click()  # Finish
    qtbot.waitUntil(lambda: len(page.records) == 1, timeout=20000)
    assert page.backups_table.item(0, 3).text() == "2 of 3 custodians"
    assert page.custodians_table.rowCount() == 3
    for path in created.directory.iterdir():  # no share word, PIN or plaintext in any file
        content = path.read_bytes()
        assert shares[0].encode() not in content and SO_PIN.encode() not in content
        assert SECRET_TEXT.encode() not in content

    # --- Verify with a restore drill, from the Backup page ------------------------------------
    offered: list[str] = []

    def fill_verify(dialog: OpenBackupDialog) -> None:
        offered.append(dialog.directory.text())  # the selected backup's directory
        for share in shares[::2]:  # Alice and Carol
            dialog.share.setText(share)
            dialog._take_share()
        dialog.drill.setChecked(True)
        dialog._accept()
        if dialog.isVisible():
            offered.append(dialog.error.text())
            dialog.reject()

    page.backups_table.selectRow(0)
    texts: list[str] = []
    when_modal(OpenBackupDialog, fill_verify)
    close_message(texts)
    page.verify_action.trigger()
    qtbot.waitUntil(lambda: bool(texts) or len(offered) > 1, timeout=60000)
    assert offered == [str(created.directory)], texts
    assert "Drill: 2 key(s) unwrapped" in page.last_report
    events = call(lambda: [e for e in list_events(ws.db) if e.action == "backup.verify"])
    assert events and events[-1].details["drilled"] == 2

    # --- Restore onto a fresh workstation and token, from its own Backup page -----------------
    call(lambda: enrol_witness(station_b))
    session_b = GuiSession(bridge, station_b)
    page_b = page_for(qtbot, session_b)
    station_b.approvals.source = QtApprovalSource(page_b)

    def fill_restore(dialog: OpenBackupDialog) -> None:
        dialog.directory.setText(str(created.directory))
        for share in shares[1:]:  # Bob and Carol
            dialog.share.setText(share)
            dialog._take_share()
        dialog._accept()
        if dialog.isVisible():
            texts_b.append(dialog.error.text())
            dialog.reject()

    seen_b: list[str] = []
    texts_b: list[str] = []
    when_modal(OpenBackupDialog, fill_restore)
    approve_as_witness(seen_b)
    close_message(texts_b)
    page_b.restore_action.trigger()
    qtbot.waitUntil(lambda: bool(texts_b), timeout=120000)
    assert seen_b == ["backup.restore"]
    assert "Restored 2 key(s)" in texts_b[0]

    def after() -> tuple[Any, Any]:
        restored = station_b.keys.resolve(data.id)
        station_b.use.decrypt_file(data.id, tmp_path / "plain.ksenc", tmp_path / "back.txt")
        return restored, station_b.keys.resolve(mac.id)

    restored, restored_mac = call(after)
    assert restored.kcv == data.kcv and restored.state.value == "ACTIVE"
    assert restored_mac.kcv == mac.kcv
    assert (tmp_path / "back.txt").read_text() == SECRET_TEXT


def test_cancelled_share_handout_writes_nothing(qtbot, bridge, workstation, gui_session, tmp_path):  # type: ignore[no-untyped-def]
    call = bridge.executor.call
    ws: Workstation = workstation
    call(lambda: ws.keys.generate("UiToken", Algorithm.AES_256, "k", Purpose.ENCRYPTION, True))
    stick = tmp_path / "stick"
    stick.mkdir()
    page = page_for(qtbot, gui_session)
    wizard = page.create_backup()
    qtbot.waitUntil(lambda: wizard.keys.table.rowCount() == 1, timeout=20000)
    wizard.target.path.setText(str(stick))
    wizard.next_button.click()
    wizard.next_button.click()
    for name in ("Alice", "Bob"):
        wizard.protection.custodian_name.setText(name)
        wizard.protection._add()
    wizard.protection.so_pin.setText(SO_PIN)
    wizard.protection.user_pin.setText(PIN)
    wizard.next_button.click()
    wizard.next_button.click()  # the fixture's witness approves (no dialog)
    qtbot.waitUntil(lambda: wizard.shares.handout is not None, timeout=60000)
    wizard.shares.show_button.click()
    assert words_on_screen(wizard)
    wizard.reject()  # Cancel while the first custodian's card is up
    qtbot.waitUntil(lambda: wizard.step() == APPROVAL, timeout=30000)
    assert "nothing was written" in wizard.error.text()
    assert words_on_screen(wizard) == []
    assert list(stick.iterdir()) == []
    assert call(ws.backup.backups) == []
    wizard.reject()
    assert not wizard.isVisible()
