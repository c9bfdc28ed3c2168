"""Lifecycle in the GUI: disabled actions say why, destroy needs the typed name, dates edit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtWidgets import QLabel, QWidget

from app.domain.algorithms import Algorithm, Purpose
from app.domain.fingerprints import pgp_words
from app.domain.keys import KeyRecord, KeyState
from app.domain.lifecycle import Action
from ui.dialogs.lifecycle import DestroyDialog, EditKeyDialog, ReasonDialog, to_qt
from ui.lifecycle_actions import LifecycleActions

pytestmark = pytest.mark.ui


def key(state: KeyState, **extra: object) -> KeyRecord:
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


def test_disabled_actions_explain_why(qtbot, gui_session):  # type: ignore[no-untyped-def]
    parent = QWidget()
    qtbot.addWidget(parent)
    actions = LifecycleActions(gui_session, parent)
    actions.set_key(key(KeyState.ACTIVE))
    destroy = actions.transitions[Action.DESTROY]
    assert not destroy.isEnabled()
    assert destroy.toolTip().startswith("An active key cannot be destroyed.")
    assert "suspend" in destroy.toolTip()
    assert actions.transitions[Action.SUSPEND].isEnabled()
    assert actions.rotate.isEnabled()
    actions.set_key(key(KeyState.ACTIVE, replaced_by="other"))
    assert not actions.rotate.isEnabled() and "successor" in actions.rotate.toolTip()
    actions.set_key(key(KeyState.DESTROYED_COMPROMISED))
    assert all(not a.isEnabled() for a in actions.transitions.values())
    assert "final" in actions.transitions[Action.ACTIVATE].toolTip()
    actions.set_key(None)
    assert not actions.edit.isEnabled()


def test_destroy_requires_exact_typed_name(qtbot):  # type: ignore[no-untyped-def]
    dialog = DestroyDialog(key(KeyState.DEACTIVATED))
    qtbot.addWidget(dialog)
    assert not dialog.destroy_button.isEnabled()
    qtbot.keyClicks(dialog.typed, "payments-ke")
    assert not dialog.destroy_button.isEnabled()
    qtbot.keyClicks(dialog.typed, "k")
    assert dialog.destroy_button.isEnabled()
    qtbot.keyClicks(dialog.typed, " ")
    assert not dialog.destroy_button.isEnabled()
    shown = [label.text() for label in dialog.findChildren(QLabel)]
    assert "C0FFEE" in shown  # the KCV, whole (one formatter: identifier_text)
    assert " ".join(pgp_words(bytes.fromhex("C0FFEE"))) in shown  # and read aloud
    assert any("cannot be undone" in text for text in shown)


def test_reason_dialog_requires_reason_and_defaults_compromise_to_creation(qtbot):  # type: ignore[no-untyped-def]
    record = key(KeyState.ACTIVE)
    dialog = ReasonDialog(record, Action.COMPROMISE)
    qtbot.addWidget(dialog)
    dialog._accept()
    assert dialog.result() == 0 and "reason" in dialog.error.text().lower()
    assert dialog.compromise_date is not None
    assert dialog.compromise_date.dateTime() == to_qt(record.created_at)
    dialog.reason.setPlainText("found on a paste site")
    dialog._accept()
    reason, when = dialog.values()
    assert (reason, when) == ("found on a paste site", record.created_at)


def test_edit_dialog_reports_only_changes_and_checks_order(qtbot):  # type: ignore[no-untyped-def]
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    record = key(
        KeyState.PRE_ACTIVE, activation_date=start, deactivation_date=start + timedelta(days=100)
    )
    dialog = EditKeyDialog(record)
    qtbot.addWidget(dialog)
    assert dialog.changes() == {}
    dialog.tags.setText("payments, tier-1")
    dialog.deactivation.setDateTime(to_qt(start - timedelta(days=1)))
    dialog._accept()
    assert "after the activation" in dialog.error.text()
    dialog.deactivation.setDateTime(to_qt(start + timedelta(days=30)))
    assert dialog.changes() == {
        "tags": ("payments", "tier-1"),
        "deactivation_date": start + timedelta(days=30),
    }
    active = EditKeyDialog(key(KeyState.ACTIVE))
    qtbot.addWidget(active)
    assert not active.use_activation.isEnabled()
    assert "pre-active" in active.use_activation.toolTip()
