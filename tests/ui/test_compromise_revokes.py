"""Marking a key compromised in the GUI offers to revoke its certificates (checked by
default); confirming revokes them, each recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm, Purpose
from app.domain.lifecycle import Action
from ui.dialogs.lifecycle import ReasonDialog
from ui.lifecycle_actions import LifecycleActions

pytestmark = pytest.mark.ui


def test_compromise_dialog_revokes_the_keys_certificates(  # type: ignore[no-untyped-def]
    qtbot, bridge, workstation, gui_session, tmp_path: Path
):
    def setup():  # type: ignore[no-untyped-def]
        key = workstation.keys.generate("UiToken", Algorithm.EC_P256, "ca", Purpose.SIGNING)
        key = workstation.lifecycle.transition(key.id, Action.ACTIVATE)
        workstation.certs.self_sign(key.id, "root-ca", "CN=UI Root", 365, tmp_path / "r.pem")
        return key

    key = bridge.executor.call(setup)
    from PySide6.QtWidgets import QWidget

    parent = QWidget()
    qtbot.addWidget(parent)
    actions = LifecycleActions(gui_session, parent)
    actions.set_key(key)
    actions.run(Action.COMPROMISE)
    dialog = actions.dialog
    assert isinstance(dialog, ReasonDialog)
    assert dialog.revoke_certificates is not None and dialog.revoke_certificates.isChecked()
    dialog.reason.setPlainText("laptop lost")
    assert dialog.typed is not None
    qtbot.keyClicks(dialog.typed, "ca")
    with qtbot.waitSignal(actions.changed, timeout=30000):
        dialog._accept()
    left = bridge.executor.call(workstation.certs.revocable_for, key.id)
    assert left == []
    [cert] = bridge.executor.call(workstation.certs.repo.listing, key.id)
    assert cert.revocation_reason == "key_compromise"

    suspend = ReasonDialog(key, Action.SUSPEND)
    qtbot.addWidget(suspend)
    assert suspend.revoke_certificates is None
