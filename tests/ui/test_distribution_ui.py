"""Distribution in the GUI: wrap-for and the imports from the Use menu, on a real token, with
the approval asked through the session's approval source; actions an auditor may not start
stay disabled with the role in the tooltip; wrap-for says why a key cannot be wrapped."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from PySide6.QtWidgets import QWidget

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyState
from app.domain.lifecycle import Action
from app.domain.roles import Role
from app.domain.usage import Operation
from tests.ui.conftest import PIN, SO_PIN
from ui.dialogs.distribution import ImportPublicDialog, WrapForDialog
from ui.dialogs.key_use import EXPORT
from ui.use_actions import IMPORT_PUBLIC, IMPORT_WRAPPED, WRAP_FOR, UseActions

pytestmark = pytest.mark.ui


def make(bridge, workstation, algorithm, purpose, name, backup_able=False):  # type: ignore[no-untyped-def]
    def run():  # type: ignore[no-untyped-def]
        key = workstation.keys.generate("UiToken", algorithm, name, purpose, backup_able)
        return workstation.lifecycle.transition(key.id, Action.ACTIVATE)

    return bridge.executor.call(run)


def test_an_auditor_sees_use_actions_disabled_with_the_reason(  # type: ignore[no-untyped-def]
    qtbot, bridge, workstation, gui_session
):
    key = make(bridge, workstation, Algorithm.AES_256, Purpose.ENCRYPTION, "k", True)
    gui_session.gate.set_roles(frozenset({Role.AUDITOR}))
    parent = QWidget()
    qtbot.addWidget(parent)
    actions = UseActions(gui_session, parent)
    actions.set_key(key)
    for operation in (
        Operation.ENCRYPT.value,
        Operation.DECRYPT.value,
        WRAP_FOR,
        IMPORT_WRAPPED,
        IMPORT_PUBLIC,
    ):
        qaction = actions.actions[operation]
        assert not qaction.isEnabled(), operation
        assert "you are an auditor" in qaction.toolTip(), (operation, qaction.toolTip())
    assert actions.open(WRAP_FOR) is None  # a disabled action opens nothing
    signer = make(bridge, workstation, Algorithm.EC_P256, Purpose.SIGNING, "s")
    actions.set_key(signer)
    assert actions.actions[Operation.VERIFY.value].isEnabled()  # an auditor may verify
    assert not actions.actions[Operation.SIGN.value].isEnabled()
    assert "you are an auditor" in actions.actions[Operation.SIGN.value].toolTip()
    assert actions.actions[EXPORT].isEnabled()


def test_wrap_for_says_why_a_key_cannot_go(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    parent = QWidget()
    qtbot.addWidget(parent)
    actions = UseActions(gui_session, parent)
    fixed = make(bridge, workstation, Algorithm.AES_256, Purpose.ENCRYPTION, "fixed")
    actions.set_key(fixed)
    wrap = actions.actions[WRAP_FOR]
    assert not wrap.isEnabled() and "not extractable" in wrap.toolTip()
    pair = make(bridge, workstation, Algorithm.EC_P256, Purpose.SIGNING, "pair")
    actions.set_key(pair)
    assert not wrap.isEnabled() and "export-public" in wrap.toolTip()
    movable = make(bridge, workstation, Algorithm.AES_256, Purpose.ENCRYPTION, "m", True)
    suspended = bridge.executor.call(
        workstation.lifecycle.transition, movable.id, Action.SUSPEND, "audit"
    )
    actions.set_key(suspended)
    assert not wrap.isEnabled() and "SUSPENDED" in wrap.toolTip()


def test_wrap_for_and_import_public_through_the_dialogs(  # type: ignore[no-untyped-def]
    qtbot, bridge, workstation, gui_session, tmp_path: Path
):
    key = make(bridge, workstation, Algorithm.AES_256, Purpose.ENCRYPTION, "zmk", True)
    recipient = tmp_path / "hsm-b.pem"
    recipient.write_bytes(
        rsa.generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    parent = QWidget()
    qtbot.addWidget(parent)
    actions = UseActions(gui_session, parent)
    actions.set_key(key)
    dialog = actions.open(WRAP_FOR)
    assert isinstance(dialog, WrapForDialog)
    # F19: each PIN field says which token it is for
    pin_rows = [dialog.form.labelForField(f).text() for f in (dialog.so_pin, dialog.user_pin)]
    assert pin_rows == ["SO PIN of token 'UiToken':", "User PIN of token 'UiToken':"]
    assert "SHA-1" in dialog.note.text() and "SP 800-131A" in dialog.note.toolTip()
    dialog.recipient.setText(str(recipient))
    out = tmp_path / "zmk.transfer"
    dialog.target.setText(str(out))
    dialog.start()
    assert "SO PIN" in dialog.status.text() and not out.exists()  # PINs missing: nothing ran
    qtbot.keyClicks(dialog.so_pin, SO_PIN)
    qtbot.keyClicks(dialog.user_pin, PIN)
    dialog.start()
    assert dialog.so_pin.text() == "" and dialog.user_pin.text() == ""  # taken, not kept
    qtbot.waitUntil(
        lambda: dialog.result is not None or "rror" in dialog.status.text(), timeout=30000
    )
    assert dialog.result is not None, dialog.status.text()
    assert out.exists() and key.kcv in dialog.status.text()
    records = bridge.executor.call(workstation.distribution.records, key.id)
    assert [r.direction for r in records] == ["sent"]

    peer = tmp_path / "peer.pem"
    peer.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    imported = actions.open(IMPORT_PUBLIC)
    assert isinstance(imported, ImportPublicDialog)
    imported.source.setText(str(peer))
    imported.name.setText("peer")
    imported.start()
    qtbot.waitUntil(
        lambda: imported.result is not None or imported.run_button.isEnabled(), timeout=30000
    )
    assert imported.result is not None, imported.status.text()
    assert imported.result.key.state is KeyState.PRE_ACTIVE
    assert "read aloud" in imported.status.text()


def test_import_wrapped_needs_the_purpose_the_sender_read_out(  # type: ignore[no-untyped-def]
    qtbot, gui_session, tmp_path: Path
):
    """Outside testers: the file's purpose is covered by no check value; the dialog asks for the
    purpose read out with the KCV (the service compares it) and runs nothing without it."""
    from ui.dialogs.distribution import ImportWrappedDialog

    parent = QWidget()
    qtbot.addWidget(parent)
    actions = UseActions(gui_session, parent)
    dialog = actions.open(IMPORT_WRAPPED)
    assert isinstance(dialog, ImportWrappedDialog)
    assert dialog.expect_purpose.currentData() is None  # no default to click through
    assert "not covered by the KCV" in dialog.expect_purpose.toolTip()
    source = tmp_path / "in.transfer"
    source.write_bytes(b"{}")
    dialog.source.setText(str(source))
    dialog.name.setText("incoming")
    if dialog.token.count() == 0:  # this session lists no logged-in token: give it one
        dialog.token.addItem("Life", "0000000000000000")
    dialog.start()
    assert "purpose the sender read out" in dialog.status.text()
    assert dialog.result is None and dialog.run_button.isEnabled()
    choices = [dialog.expect_purpose.itemData(i) for i in range(dialog.expect_purpose.count())]
    assert choices == [None, *Purpose]
