"""The target key is never ambiguous: a filter that hides the selected key clears the panel
and the actions; destroyed keys are 'destroyed' (grey), not missing; actions that need the
token object are refused, with the reason, when it is gone."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyState, Presence
from app.domain.lifecycle import Action
from app.errors import PolicyError
from ui.models.inventory_model import Column

pytestmark = pytest.mark.ui


def loaded_page(qtbot, gui_session):  # type: ignore[no-untyped-def]
    from ui.pages.inventory_page import InventoryPage

    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    with qtbot.waitSignal(page.loaded, timeout=10000):
        page.refresh()
    return page


def row_of(page, name: str) -> int:  # type: ignore[no-untyped-def]
    for row in range(page.model.rowCount()):
        if page.model.index(row, Column.NAME).data() == name:
            return row
    raise AssertionError(f"{name} not shown")


def test_a_filter_that_hides_the_selected_key_clears_panel_and_actions(
    qtbot, bridge, workstation, gui_session
):  # type: ignore[no-untyped-def]
    bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "alpha-kek")
    bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "beta-kek")
    page = loaded_page(qtbot, gui_session)
    page.table.selectRow(row_of(page, "alpha-kek"))
    assert page.detail.title.text() == "alpha-kek"
    assert page.lifecycle.transitions[Action.ACTIVATE].isEnabled()
    qtbot.keyClicks(page.filter, "beta")
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=3000)
    assert page.detail.title.text() == "No key selected"
    assert page.lifecycle.key is None
    assert not any(a.isEnabled() for a in page.lifecycle.all())
    page.lifecycle.run(Action.SUSPEND)  # a stray trigger opens nothing for the hidden key
    assert page.lifecycle.dialog is None


def test_a_reload_that_hides_the_selected_key_clears_the_panel(  # type: ignore[no-untyped-def]
    qtbot, bridge, workstation, gui_session
):
    key = bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "kek-a")
    bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "other")
    page = loaded_page(qtbot, gui_session)
    qtbot.keyClicks(page.filter, "kek-a")
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=3000)
    page.table.selectRow(0)
    assert page.lifecycle.key is not None and page.lifecycle.key.id == key.id

    def rename() -> None:
        workstation.lifecycle.edit(key.id, name="renamed")

    bridge.executor.call(rename)
    with qtbot.waitSignal(page.loaded, timeout=10000):
        page.refresh()
    assert page.model.rowCount() == 0
    assert page.lifecycle.key is None and page.detail.item is None


def test_dialogs_name_the_key_with_identifier_and_token(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QLabel

    from ui.dialogs.lifecycle import ConfirmKeyDialog, DestroyDialog, EditKeyDialog, ReasonDialog

    key = bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.EC_P256, "sig")
    serial = key.token_serial
    for dialog in (
        ReasonDialog(key, Action.SUSPEND),
        ReasonDialog(key, Action.COMPROMISE),
        DestroyDialog(key),
        EditKeyDialog(key),
        ConfirmKeyDialog(key, "Rotate", "Generate successor", "…"),
    ):
        qtbot.addWidget(dialog)
        assert dialog.identity.identifier.raw == key.fingerprint  # the full fingerprint
        assert f"serial {serial}" in dialog.identity.token.text()
        texts = " ".join(label.text() for label in dialog.findChildren(QLabel))
        assert "sig" in texts and "UiToken" in texts


def test_destroyed_keys_are_destroyed_not_missing(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    key = bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "old")
    bridge.executor.call(workstation.lifecycle.transition, key.id, Action.DESTROY, "", None, "old")
    page = loaded_page(qtbot, gui_session)
    row = row_of(page, "old")
    presence = page.model.index(row, Column.PRESENCE)
    assert presence.data() == "destroyed"
    assert presence.data(Qt.ItemDataRole.ForegroundRole).color().name() == "#5f6368"  # grey
    assert not presence.data(Qt.ItemDataRole.FontRole)  # not bold like an alarm
    assert "missing" not in page.count.text()
    page.table.selectRow(row)
    assert page.detail.presence.text().startswith("Destroyed")
    qtbot.waitUntil(lambda: page.detail.history.rowCount() > 0, timeout=5000)
    assert page.detail.presence.text().startswith("Destroyed")  # also after the live check


def test_actions_needing_the_object_are_refused_when_it_is_gone(  # type: ignore[no-untyped-def]
    qtbot, bridge, workstation, gui_session
):
    key = bridge.executor.call(
        workstation.keys.generate, "UiToken", Algorithm.AES_128, "gone", Purpose.ENCRYPTION
    )
    bridge.executor.call(workstation.lifecycle.transition, key.id, Action.ACTIVATE)
    bridge.executor.call(workstation.lifecycle.transition, key.id, Action.SUSPEND, "audit")
    bridge.executor.call(
        lambda: workstation.tokens.session("UiToken").destroy_generated(key.cka_id)
    )
    page = loaded_page(qtbot, gui_session)
    page.table.selectRow(row_of(page, "gone"))
    assert page.model.item_at(row_of(page, "gone")).presence is Presence.MISSING
    resume = page.lifecycle.transitions[Action.RESUME]
    assert not resume.isEnabled()
    assert "missing on token 'UiToken'" in resume.toolTip()
    assert page.lifecycle.transitions[Action.COMPROMISE].isEnabled()  # restricting still works
    # The core refuses too, and records the refusal.
    with pytest.raises(PolicyError, match="KS-LIFECYCLE-OBJECT-MISSING"):
        bridge.executor.call(workstation.lifecycle.transition, key.id, Action.RESUME)
    after = bridge.executor.call(workstation.keys.resolve, key.id)
    assert after.state is KeyState.SUSPENDED
    last = bridge.executor.call(workstation.lifecycle.history, key.id)[-1]
    assert (last.action, last.outcome) == ("key.resume", "denied")
