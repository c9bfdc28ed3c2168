"""Backup coverage in the GUI: the inventory's Backup column (generation, verified, medium),
its "Not backed up" filter, and the keys at risk counted on the overview and the status bar,
on a real SoftHSM token and SQLCipher database."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.domain.algorithms import Algorithm, Purpose
from app.services.workstation import Workstation
from ui.main_window import MainWindow
from ui.models.inventory_model import NOT_BACKED_UP, Column, InventoryModel

from .conftest import PIN, SO_PIN

pytestmark = pytest.mark.ui


def _texts(model: InventoryModel) -> dict[str, str]:
    out = {}
    for row in range(model.rowCount()):
        item = model.item_at(row)
        assert item is not None
        out[item.name] = model.data(model.index(row, Column.BACKUP))
    return out


def test_backup_column_filter_and_keys_at_risk(  # type: ignore[no-untyped-def]
    qtbot, qtmodeltester, bridge, workstation, gui_session, tmp_path: Path
) -> None:
    ws: Workstation = workstation
    call = bridge.executor.call

    def setup() -> None:
        for name in ("kek-a", "kek-b"):
            ws.keys.generate("UiToken", Algorithm.AES_256, name, Purpose.KEY_WRAPPING, True)
        ws.keys.generate("UiToken", Algorithm.AES_256, "stays-home", Purpose.ENCRYPTION, False)

    call(setup)
    window = MainWindow(gui_session)
    qtbot.addWidget(window)
    window.presence_timer.stop()
    window.start()
    inventory = window.inventory
    qtbot.waitUntil(lambda: inventory.model.total == 3, timeout=30000)
    model = inventory.model
    qtmodeltester.check(model)
    assert model.headerData(Column.BACKUP, Qt.Orientation.Horizontal) == "Backup"
    assert _texts(model) == {
        "kek-a": NOT_BACKED_UP,
        "kek-b": NOT_BACKED_UP,
        "stays-home": "not backup-able",
    }
    assert model.at_risk_count == 2
    qtbot.waitUntil(lambda: window.risk_label.text() == "2 not backed up", timeout=10000)
    assert window.overview.backup.figure.text() == "no backup yet; 2 key(s) at risk"
    assert window.overview.backup.state == "bad"

    # The overview's link shows the filtered inventory; the filter is in the model.
    window._navigate("inventory:not-backed-up")
    assert inventory.not_backed_up.isChecked()
    assert sorted(_texts(model)) == ["kek-a", "kek-b"]
    inventory.not_backed_up.setChecked(False)
    assert model.rowCount() == 3

    # A backup of kek-a only: its row names the generation and where it went.
    call(
        lambda: ws.backup.create(
            tmp_path,
            "UiToken",
            SO_PIN,
            PIN,
            threshold=2,
            custodians=("alice", "bob"),
            chosen={"kek-a"},
            deliver=lambda card: None,
        )
    )
    gui_session.keys_changed.emit()
    qtbot.waitUntil(lambda: model.at_risk_count == 1, timeout=30000)
    texts = _texts(model)
    assert texts["kek-a"].startswith("gen. 1 · verified ") and texts["kek-a"].endswith(
        "a directory"
    )
    assert texts["kek-b"] == NOT_BACKED_UP
    qtbot.waitUntil(lambda: window.risk_label.text() == "1 not backed up", timeout=10000)
    inventory.not_backed_up.setChecked(True)
    assert list(_texts(model)) == ["kek-b"]
    qtmodeltester.check(model)
