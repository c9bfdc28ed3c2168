"""Inventory model and page: Qt's model checks, filtering, sorting, reconciliation markers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtCore import Qt

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import (
    InventoryItem,
    KeyRecord,
    KeyState,
    Presence,
    TokenObject,
    TokenSync,
)
from ui.models.inventory_model import (
    Column,
    InventoryModel,
    ObjectRole,
    build_filter_index,
)

pytestmark = pytest.mark.ui

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def record(name: str, algorithm: Algorithm, minutes: int, by: str = "alice") -> KeyRecord:
    return KeyRecord(
        id=str(uuid.uuid4()),
        name=name,
        algorithm=algorithm,
        purpose=Purpose.SIGNING if not algorithm.symmetric else Purpose.ENCRYPTION,
        state=KeyState.PRE_ACTIVE,
        token_serial="s1",
        token_label="Vault",
        cka_id=uuid.uuid4().hex,
        extractable=False,
        kcv="ABCDEF" if algorithm.symmetric else None,
        fingerprint=None if algorithm.symmetric else "ab" * 32,
        created_at=BASE + timedelta(minutes=minutes),
        created_by=by,
    )


def items() -> list[InventoryItem]:
    return [
        InventoryItem(Presence.PRESENT, record("zeta", Algorithm.AES_256, 3)),
        InventoryItem(Presence.MISSING, record("alpha", Algorithm.RSA_4096, 1, by="bob")),
        InventoryItem(Presence.PRESENT, record("Mid", Algorithm.RSA_2048, 2)),
        InventoryItem(
            Presence.UNMANAGED,
            None,
            TokenObject(
                "s1",
                "Vault",
                "0a0b",
                "peer-key",
                "EC",
                ("PRIVATE_KEY", "PUBLIC_KEY"),
                Algorithm.EC_P256,
            ),
        ),
    ]


def names(model: InventoryModel) -> list[str]:
    return [model.index(r, Column.NAME).data() for r in range(model.rowCount())]


def test_model_passes_qt_model_checks(qtmodeltester):  # type: ignore[no-untyped-def]
    model = InventoryModel()
    model.set_items(items())
    qtmodeltester.check(model)
    model.set_filter("rsa")
    qtmodeltester.check(model)
    model.sort(Column.CREATED, Qt.SortOrder.DescendingOrder)
    qtmodeltester.check(model)


def test_filter_matches_any_column_case_insensitively() -> None:
    model = InventoryModel()
    model.set_items(items())
    model.set_filter("RSA")
    assert sorted(names(model)) == ["Mid", "alpha"]
    model.set_filter("bob")  # created by
    assert names(model) == ["alpha"]
    model.set_filter("missing")  # presence text
    assert names(model) == ["alpha"]
    model.set_filter("abcdef")  # KCV
    assert names(model) == ["zeta"]
    model.set_filter("")
    assert model.rowCount() == 4 and model.total == 4


def test_sorting_uses_typed_keys() -> None:
    model = InventoryModel()
    model.set_items(items())
    model.sort(Column.NAME, Qt.SortOrder.AscendingOrder)
    assert names(model) == ["alpha", "Mid", "peer-key", "zeta"]  # case-insensitive
    model.sort(Column.SIZE, Qt.SortOrder.DescendingOrder)  # by bits, not by text
    assert names(model)[:2] == ["alpha", "Mid"]
    model.sort(Column.CREATED, Qt.SortOrder.AscendingOrder)
    assert names(model)[1:] == ["alpha", "Mid", "zeta"]  # unmanaged (no date) first


def test_long_names_are_cut_in_the_middle_and_shown_whole_on_hover(qtbot, gui_session) -> None:  # type: ignore[no-untyped-def]
    # New-user trial: names that differ only at the end were cut to one common prefix.
    from ui.pages.inventory_page import InventoryPage

    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    assert page.table.textElideMode() is Qt.TextElideMode.ElideMiddle
    model = InventoryModel()
    model.set_items(items())
    model.sort(Column.NAME, Qt.SortOrder.AscendingOrder)
    for row in range(model.rowCount()):
        index = model.index(row, Column.NAME)
        assert index.data(Qt.ItemDataRole.ToolTipRole) == index.data()


def test_missing_and_unmanaged_rows_are_marked() -> None:
    model = InventoryModel()
    model.set_items(items())
    model.sort(Column.NAME, Qt.SortOrder.AscendingOrder)
    alpha = model.index(0, Column.PRESENCE)
    assert alpha.data() == "missing on token"
    assert alpha.data(Qt.ItemDataRole.FontRole).bold()
    assert "Nothing was deleted" in alpha.data(Qt.ItemDataRole.ToolTipRole)
    peer = model.index(2, Column.NAME)
    assert peer.data(ObjectRole).presence is Presence.UNMANAGED
    assert peer.data(Qt.ItemDataRole.FontRole).italic()


def test_page_shows_generated_keys_and_filters(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    from ui.pages.inventory_page import InventoryPage

    def generate() -> None:
        workstation.keys.generate("UiToken", Algorithm.EC_P256, "sign-2026")
        workstation.keys.generate("UiToken", Algorithm.AES_128, "data-2026")

    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    with qtbot.waitSignal(page.loaded, timeout=10000):
        page.refresh()
    assert page.empty_hint.isVisible()  # a first start says what to do
    bridge.executor.call(generate)
    with qtbot.waitSignal(page.loaded, timeout=10000):
        page.refresh()
    assert not page.empty_hint.isVisible()
    assert sorted(names(page.model)) == ["data-2026", "sign-2026"]
    assert "2 of 2 shown" in page.count.text()
    qtbot.keyClicks(page.filter, "EC-P")
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=2000)
    assert names(page.model) == ["sign-2026"]
    assert "1 of 2 shown" in page.count.text()
    page.table.selectRow(0)
    qtbot.waitUntil(page.detail.attributes.isVisible, timeout=5000)
    assert page.detail.title.text() == "sign-2026"
    assert page.detail.attributes.columnCount() == 2  # private and public key objects


def test_detail_panel_shows_live_attributes(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    from ui.pages.inventory_page import InventoryPage

    bridge.executor.call(
        workstation.keys.generate, "UiToken", Algorithm.AES_256, "kek", Purpose.KEY_WRAPPING, True
    )
    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    with qtbot.waitSignal(page.loaded, timeout=10000):
        page.refresh()
    page.table.selectRow(0)
    qtbot.waitUntil(lambda: page.detail.attributes.rowCount() > 0, timeout=5000)
    table = page.detail.attributes
    values = {
        table.verticalHeaderItem(r).text(): table.item(r, 0).text() for r in range(table.rowCount())
    }
    assert values["WRAP"] == "yes" and values["UNWRAP"] == "yes"
    assert values["ENCRYPT"] == "no" and values["SIGN"] == "no"
    assert values["SENSITIVE"] == "yes" and values["EXTRACTABLE"] == "yes"
    assert page.detail.words.isVisible() and len(page.detail.words.text().split()) == 3
    assert page.detail.presence.text() == "Present on the token"


def test_filter_index_from_core_thread_is_used_only_for_its_items() -> None:
    model = InventoryModel()
    shown = items()
    model.set_items(shown)
    assert not model.has_filter_index
    model.set_filter_index(items(), build_filter_index(items()))  # a stale index: ignored
    assert not model.has_filter_index
    model.set_filter_index(shown, build_filter_index(shown))
    assert model.has_filter_index
    model.set_filter("peer")
    assert names(model) == ["peer-key"]


def test_the_detail_panel_says_a_state_is_recorded_not_enforced(qtbot):  # type: ignore[no-untyped-def]
    from ui.widgets.key_detail import KeyDetailPanel

    panel = KeyDetailPanel()
    qtbot.addWidget(panel)
    key = record("tpm-signer", Algorithm.EC_P256, 0)._replace(
        state=KeyState.SUSPENDED, token_sync=TokenSync.RECORDED
    )
    panel.show_item(InventoryItem(Presence.PRESENT, key))
    assert panel.sync.text() == "Recorded by Keystead, not enforced by this token."
    assert panel.sync.isVisibleTo(panel)
    panel.show_item(InventoryItem(Presence.PRESENT, key._replace(token_sync=TokenSync.OK)))
    assert not panel.sync.isVisibleTo(panel)


def test_a_compromised_key_is_the_most_visible_row(qtbot) -> None:  # type: ignore[no-untyped-def]
    """New-user trial F1: a compromised key looked like any active key (plain row, a green
    "Present on the token" banner). Its row is red and bold with advice, and the detail
    panel's banner says COMPROMISED in the alarm style."""
    from ui.widgets.key_detail import KeyDetailPanel

    bad = record("leaked", Algorithm.RSA_2048, 5)._replace(state=KeyState.COMPROMISED)
    model = InventoryModel()
    model.set_items([*items(), InventoryItem(Presence.PRESENT, bad)])
    model.sort(Column.NAME, Qt.SortOrder.AscendingOrder)
    row = names(model).index("leaked")
    plain = names(model).index("zeta")
    red = model.index(row, Column.STATE).data(Qt.ItemDataRole.ForegroundRole)
    assert red is not None and red.color().red() > red.color().green()
    assert model.index(plain, Column.STATE).data(Qt.ItemDataRole.ForegroundRole) is None
    for column in (Column.NAME, Column.STATE):
        assert model.index(row, column).data(Qt.ItemDataRole.FontRole).bold()
    assert "never use" in model.index(row, Column.STATE).data(Qt.ItemDataRole.ToolTipRole)

    panel = KeyDetailPanel()
    qtbot.addWidget(panel)
    panel.show_item(InventoryItem(Presence.PRESENT, bad))
    assert panel.presence.text().startswith("COMPROMISED")
    assert panel.presence.property("state") == "missing"  # the red style
    panel.show_item(items()[0])
    assert panel.presence.text() == "Present on the token"
    assert panel.presence.property("state") == "present"


def test_the_filter_index_built_in_steps_is_the_index_built_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The core thread builds the index a few rows or one column per job (issue 17: the GUI
    thread has the GIL between jobs); the steps add up to the same index."""
    from ui.models.inventory_model import FilterIndexBuilder

    shown = items()
    whole = build_filter_index(shown)
    monkeypatch.setattr(FilterIndexBuilder, "ROWS_PER_STEP", 2)
    builder = FilterIndexBuilder(shown, None)
    steps = 0
    while (index := builder.step()) is None:
        steps += 1
    assert steps == -(-len(shown) // 2) + len(Column)  # rows two at a time, then each column
    assert index == whole and set(index.orders) == set(Column)
    assert builder.step() == whole  # done: asked again, the same index
