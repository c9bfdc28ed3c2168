"""The approval dialog shows the whole request hash: approvers read it aloud and compare, so
no group of it may be cut off at the smallest supported screen (1024 px)."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QLabel

from app.domain.approval import DEFAULT_POLICY, ApprovalRequest
from ui.dialogs.approval import ApprovalDialog

pytestmark = pytest.mark.ui


def test_every_group_of_the_hash_fits_the_dialog(qtbot) -> None:  # type: ignore[no-untyped-def]
    request = ApprovalRequest(
        action="key.destroy",
        subject="key:353c8487-6bd1-44cb-a72f-f15f929e8f5d",
        initiator="officer",
        workstation="ws-1",
        requested_at="2026-11-30T09:21:24.960854+00:00",
        nonce="00" * 16,
        parameters=(("key", "payments-kek"), ("kcv", "F1A67B")),
    )
    dialog = ApprovalDialog(request, DEFAULT_POLICY["key.destroy"])
    qtbot.addWidget(dialog)
    dialog.resize(dialog.minimumWidth(), 600)  # as narrow as it may be made
    dialog.show()
    qtbot.waitExposed(dialog)
    label = dialog.findChild(QLabel, "approvalDigest")
    assert label is not None
    shown = label.text().replace("\n", "")
    assert shown == request.fingerprint
    # Word wrap never breaks inside one unbroken run of 16 groups, so under a larger font
    # (seen at 1024 px under X) the tail was cut off: at most eight groups a line.
    assert all(len(line.strip(":").split(":")) <= 8 for line in label.text().split("\n"))
    widest = max(label.fontMetrics().horizontalAdvance(line) for line in label.text().split("\n"))
    assert widest <= label.width(), "a line of the hash is wider than its label: it is cut off"
