"""The Use actions and dialog: what the state allows is enabled (else the reason is shown), a
file is signed and encrypted through the dialog on a real token with progress, a cancel leaves
no output, and a refusal is shown in the dialog in words."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PySide6.QtWidgets import QWidget

from app.domain.algorithms import Algorithm, Purpose
from app.domain.lifecycle import Action
from app.domain.usage import Operation
from ui.dialogs.key_use import EXPORT, KeyUseDialog
from ui.use_actions import UseActions

pytestmark = pytest.mark.ui


def make_key(bridge, workstation, algorithm, purpose, name, activate=True):  # type: ignore[no-untyped-def]
    def make():  # type: ignore[no-untyped-def]
        key = workstation.keys.generate("UiToken", algorithm, name, purpose)
        if activate:
            key = workstation.lifecycle.transition(key.id, Action.ACTIVATE)
        return key

    return bridge.executor.call(make)


def test_actions_follow_state_and_purpose(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    parent = QWidget()
    qtbot.addWidget(parent)
    actions = UseActions(gui_session, parent)
    signer = make_key(bridge, workstation, Algorithm.EC_P256, Purpose.SIGNING, "s", False)
    actions.set_key(signer)
    sign = actions.actions[Operation.SIGN.value]
    assert not sign.isEnabled() and "PRE_ACTIVE key cannot sign" in sign.toolTip()
    assert not actions.actions[Operation.ENCRYPT.value].isEnabled()
    assert "signing, not encryption" in actions.actions[Operation.ENCRYPT.value].toolTip()
    assert actions.actions[EXPORT].isEnabled()
    deactivated = bridge.executor.call(
        lambda: workstation.lifecycle.transition(
            workstation.lifecycle.transition(signer.id, Action.ACTIVATE).id,
            Action.DEACTIVATE,
            "retired",
        )
    )
    actions.set_key(deactivated)
    assert not sign.isEnabled() and actions.actions[Operation.VERIFY.value].isEnabled()
    actions.set_key(None)
    # Nothing selected: only the imports (not about a key) are offered.
    assert actions.button.isEnabled()
    assert not sign.isEnabled() and "Select a managed key." in sign.toolTip()
    assert actions.actions["import-wrapped"].isEnabled()
    assert actions.actions["import-public"].isEnabled()


def test_sign_through_the_dialog(qtbot, bridge, workstation, gui_session, tmp_path: Path):  # type: ignore[no-untyped-def]
    signer = make_key(bridge, workstation, Algorithm.EC_P256, Purpose.SIGNING, "release")
    data = tmp_path / "release.txt"
    data.write_bytes(b"release notes\n" * 100_000)
    dialog = KeyUseDialog(gui_session, signer, Operation.SIGN.value)
    qtbot.addWidget(dialog)
    assert "key.sign" in dialog.findChild(type(dialog.status), "facts").text()
    dialog.source.setText(str(data))
    dialog.target.setText(str(tmp_path / "release.sig"))
    dialog.run_button.click()
    qtbot.waitUntil(
        lambda: not dialog.running and "audit entry" in dialog.status.text(), timeout=30000
    )
    assert dialog.progress.value() == 100
    public = serialization.load_der_public_key(
        bridge.executor.call(workstation.keys.repo.spki, signer.id)
    )
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(
        (tmp_path / "release.sig").read_bytes(), data.read_bytes(), ec.ECDSA(hashes.SHA256())
    )
    # Again: the signature exists, so the dialog says so and writes nothing.
    dialog.run_button.click()
    qtbot.waitUntil(
        lambda: not dialog.running and "already exists" in dialog.status.text(), timeout=30000
    )


def test_cancel_leaves_no_output(qtbot, bridge, workstation, gui_session, tmp_path: Path):  # type: ignore[no-untyped-def]
    aes = make_key(bridge, workstation, Algorithm.AES_256, Purpose.ENCRYPTION, "files")
    data = tmp_path / "big.bin"
    data.write_bytes(b"\x01" * (48 * 1024 * 1024))
    dialog = KeyUseDialog(gui_session, aes, Operation.ENCRYPT.value)
    qtbot.addWidget(dialog)
    dialog.source.setText(str(data))
    dialog.target.setText(str(tmp_path / "big.enc"))
    # Hold the core thread so the encryption is queued behind it, press Cancel, then let go:
    # the service sees the cancel before its first chunk, whatever the machine's speed.
    gate = threading.Event()
    bridge.run(gate.wait)
    dialog.run_button.click()
    assert dialog.running
    dialog.cancel_or_close()
    assert dialog.status.text() == "Cancelling…"
    gate.set()
    qtbot.waitUntil(lambda: not dialog.running, timeout=60000)
    assert "Cancelled" in dialog.status.text() or "cancelled" in dialog.status.text()
    assert not (tmp_path / "big.enc").exists()


def test_export_public_key_shows_words(qtbot, bridge, workstation, gui_session, tmp_path: Path):  # type: ignore[no-untyped-def]
    signer = make_key(bridge, workstation, Algorithm.ED25519, Purpose.SIGNING, "ed", False)
    dialog = KeyUseDialog(gui_session, signer, EXPORT)
    qtbot.addWidget(dialog)
    dialog.target.setText(str(tmp_path / "ed.pem"))
    dialog.run_button.click()
    qtbot.waitUntil(lambda: "Read aloud" in dialog.status.text(), timeout=30000)
    assert signer.fingerprint in dialog.status.text()
    assert (tmp_path / "ed.pem").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
