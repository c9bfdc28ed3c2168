"""Identities are always readable: the detail panel scrolls, shows the full fingerprint, token
serial, CKA_ID and key id with Copy buttons; the History tab has its own columns; the inventory
keeps Name, State and On token at 1024 px; geometry and column widths are remembered."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QScrollArea

from app.domain.algorithms import Algorithm
from app.domain.lifecycle import Action
from ui.models.inventory_model import Column
from ui.widgets.key_detail import HISTORY_COLUMNS

pytestmark = pytest.mark.ui


def test_detail_panel_shows_full_identities_with_copy(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    from ui.pages.inventory_page import InventoryPage

    key = bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.EC_P256, "sig")
    bridge.executor.call(workstation.lifecycle.transition, key.id, Action.ACTIVATE)
    bridge.executor.call(workstation.lifecycle.transition, key.id, Action.SUSPEND, "a\tb")
    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.resize(1024, 700)
    page.show()
    with qtbot.waitSignal(page.loaded, timeout=10000):
        page.refresh()
    page.table.selectRow(0)
    detail = page.detail
    assert isinstance(detail.tabs.widget(0), QScrollArea)  # the details scroll, never overlap
    assert detail.value_text("SHA-256 fingerprint").replace(":", "").lower() == key.fingerprint
    assert detail.value_text("Token serial") == key.token_serial
    assert detail.value_text("CKA_ID") == key.cka_id
    assert detail.value_text("Key id") == key.id
    detail.values["Key id"].copy_button.click()  # type: ignore[attr-defined]
    assert QGuiApplication.clipboard().text() == key.id
    qtbot.waitUntil(lambda: detail.history.rowCount() >= 3, timeout=5000)
    headers = [detail.history.horizontalHeaderItem(c).text() for c in range(len(HISTORY_COLUMNS))]
    assert headers == ["Time (UTC)", "By", "Action", "Outcome"]
    newest = [detail.history.item(0, c).text() for c in range(4)]
    assert newest[2:4] == ["suspend", "success"]
    change = detail.history.item(1, 0)  # the line under it, across the whole width
    assert change.text() == "Active → Suspended — a\tb"
    assert detail.history.columnSpan(1, 0) == 4 and change.toolTip() == change.text()


def test_narrow_inventory_keeps_name_state_and_presence(qtbot, gui_session):  # type: ignore[no-untyped-def]
    from ui.pages.inventory_page import COLUMN_WIDTHS, HIDE_FIRST, InventoryPage

    # Every column counts toward the width and may be hidden, except the three that stay
    # (a column added without a width once ran off the right edge at 1024 px).
    assert set(COLUMN_WIDTHS) == set(Column)
    assert set(HIDE_FIRST) == set(Column) - {Column.NAME, Column.STATE, Column.PRESENCE}

    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.resize(900, 600)
    page.show()
    page.splitter.setSizes([480, 420])
    page.fit_columns()
    header = page.table.horizontalHeader()
    for column in (Column.NAME, Column.STATE, Column.PRESENCE):
        assert not header.isSectionHidden(column)
    assert header.isSectionHidden(Column.CREATED_BY) and header.isSectionHidden(Column.CREATED)
    assert header.visualIndex(Column.STATE) == 1 and header.visualIndex(Column.PRESENCE) == 2
    page.splitter.setSizes([1600, 300])
    page.resize(2000, 800)
    page.fit_columns()
    assert not any(header.isSectionHidden(c) for c in Column)


def test_geometry_and_column_widths_are_remembered(qtbot, gui_session, ui_home):  # type: ignore[no-untyped-def]
    from ui.main_window import MainWindow

    window = MainWindow(gui_session)
    qtbot.addWidget(window)
    window.presence_timer.stop()
    window.show()
    window.inventory.table.horizontalHeader().resizeSection(Column.NAME, 233)
    window.resize(1111, 777)
    with qtbot.waitSignal(window.locked, timeout=10000):
        window.close()
    saved = (ui_home.root / "gui.ini").read_text()
    assert "geometry" in saved and "inventory" in saved
    assert "PIN" not in saved and "passphrase" not in saved.lower()
    again = MainWindow(gui_session)
    qtbot.addWidget(again)
    again.presence_timer.stop()
    assert again.inventory.table.horizontalHeader().sectionSize(Column.NAME) == 233
    # the offscreen screen is small: without the saved geometry the window would be 640 high
    assert abs(again.size().height() - 777) <= 10
