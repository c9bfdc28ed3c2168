"""Progressive paint (issue 17): at unlock the inventory page paints the first screenful with
the true totals and says that it is loading; sorting, filtering and searching wait; then the
whole inventory replaces it in one reset, keeping the selection. A small inventory loads in
one step. Real SQLCipher file, real SoftHSM token; the screenful is made 3 rows long so that
a few generated keys exceed it, and the whole-inventory job is held at a gate (the real job,
run when the test opens the gate) so that the loading state can be looked at."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QObject, Qt

from app.domain.algorithms import Algorithm
from app.domain.keys import Presence
from ui.models.inventory_model import Column, InventoryModel
from ui.pages import inventory_page
from ui.pages.inventory_page import WAITS_FOR_LOAD, InventoryPage

pytestmark = pytest.mark.ui

# Generated in this order; the page's order is SQLite's NOCASE, then the exact name.
NAMES = ("delta", "Alpha", "charlie", "Bravo", "echo", "foxtrot")
IN_ORDER = ["Alpha", "Bravo", "charlie", "delta", "echo", "foxtrot"]


def names(model: InventoryModel) -> list[str]:
    return [model.index(r, Column.NAME).data() for r in range(model.rowCount())]


class Gate:
    """Holds the real ``KeyService.inventory`` (the whole-inventory job) until opened."""

    def __init__(self, keys: Any) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()
        real: Callable[[], Any] = keys.inventory

        def held() -> Any:
            self.entered.set()
            if not self.opened.wait(60):
                raise TimeoutError("the test never opened the gate")
            return real()

        keys.inventory = held

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
def small_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory_page, "HEAD_ROWS", 3)


@pytest.fixture
def keys(bridge, workstation) -> Iterator[None]:  # type: ignore[no-untyped-def]
    def generate() -> None:
        for name in NAMES:
            workstation.keys.generate("UiToken", Algorithm.AES_128, name)

    bridge.executor.call(generate)
    yield


class Shows(QObject):
    """Counts the Show events of a widget (did "loading" flash, even for an instant?)."""

    def __init__(self, watched: QObject) -> None:
        super().__init__()
        self.count = 0
        watched.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show:
            self.count += 1
        return False


def test_the_first_screenful_then_every_key(  # type: ignore[no-untyped-def]
    qtbot, workstation, gui_session, small_screen, keys
):
    gate = Gate(workstation.keys)
    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.resize(1200, 700)
    page.show()
    shown: list[tuple[int, bool]] = []
    page.loaded.connect(lambda total: shown.append((total, page.model.partial)))
    with qtbot.waitSignal(page.loaded, timeout=20000):
        page.refresh()

    # The first screenful: the first rows in the page's order, the true totals, and said so.
    assert shown == [(6, True)]
    assert names(page.model) == IN_ORDER[:3]
    assert page.model.total == 6 and not page.complete
    assert page.model.totals(page.model.due_before)[2] == {Presence.PRESENT: 6}
    assert "3 of 6 shown" in page.count.text()
    assert page.loading.isVisible()
    assert "Loading keys" in page.loading.text() and "3 of 6" in page.loading.text()
    # What needs every key waits, and says why.
    for widget in (page.filter, page.due_only, page.not_backed_up):
        assert not widget.isEnabled() and widget.toolTip() == WAITS_FOR_LOAD
    header = page.table.horizontalHeader()
    assert not header.sectionsClickable() and header.toolTip() == WAITS_FOR_LOAD
    # The overview's figures (filtered views) and the lineage's links are queued, never
    # applied to the first rows as if they were every key.
    page.jump_to_key("no-such-key")  # (runs first: clears the filters, finds nothing)
    page.show_filtered("foxtrot")
    assert page.filter.text() == "" and names(page.model) == IN_ORDER[:3]
    page.table.selectRow(1)
    assert page.selected_item().name == "Bravo"  # type: ignore[union-attr]

    gate.entered.wait(20)
    with qtbot.waitSignal(page.loaded, timeout=20000):
        gate.open()
    assert shown[-1] == (6, False)
    assert page.complete and page.loading.isHidden()
    # The queued filter ran on the whole list: the key beyond the first screenful is found.
    assert page.filter.text() == "foxtrot"
    qtbot.waitUntil(lambda: names(page.model) == ["foxtrot"], timeout=10000)
    page.show_filtered("")
    assert names(page.model) == IN_ORDER
    for widget in (page.filter, page.due_only, page.not_backed_up):
        assert widget.isEnabled() and widget.toolTip() != WAITS_FOR_LOAD
    assert header.sectionsClickable() and header.toolTip() == ""
    page.table.sortByColumn(Column.NAME, Qt.SortOrder.DescendingOrder)
    assert names(page.model) == IN_ORDER[::-1]


def test_the_selection_stays_on_its_key_across_the_whole_load(  # type: ignore[no-untyped-def]
    qtbot, workstation, gui_session, small_screen, keys
):
    gate = Gate(workstation.keys)
    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    with qtbot.waitSignal(page.loaded, timeout=20000):
        page.refresh()
    page.table.selectRow(2)
    assert page.selected_item().name == "charlie"  # type: ignore[union-attr]
    with qtbot.waitSignal(page.loaded, timeout=20000):
        gate.open()
    assert page.complete
    assert page.selected_item().name == "charlie"  # type: ignore[union-attr]
    assert page.table.selectionModel().selectedRows()[0].row() == 2  # nothing moved


def test_a_small_inventory_loads_in_one_step(qtbot, gui_session, keys):  # type: ignore[no-untyped-def]
    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    flashes = Shows(page.loading)
    shown: list[tuple[int, bool]] = []
    page.loaded.connect(lambda total: shown.append((total, page.model.partial)))
    with qtbot.waitSignal(page.settled, timeout=20000):
        page.refresh()
    assert shown == [(6, False)]  # 6 keys, a screenful of 200: the whole list at once
    assert flashes.count == 0 and page.loading.isHidden()
    assert page.complete and names(page.model) == IN_ORDER
    assert page.filter.isEnabled()


def test_a_failed_whole_load_keeps_saying_the_list_is_incomplete(  # type: ignore[no-untyped-def]
    qtbot, workstation, gui_session, small_screen, keys
):
    from app.errors import TokenRemoved

    def pulled() -> Any:
        raise TokenRemoved("The token was removed.")

    workstation.keys.inventory = pulled  # the whole load; the first screenful reads no row
    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    with qtbot.waitSignal(page.settled, timeout=20000):
        page.refresh()
    assert not page.complete and page.model.partial
    assert "did not load completely" in page.loading.text()
    assert "token was removed" in page.loading.text()
    assert "not missing" in page.loading.text()
    assert not page.filter.isEnabled()


def test_rows_stay_put_when_the_load_ends(  # type: ignore[no-untyped-def]
    qtbot, workstation, gui_session, small_screen, keys
):
    """Outside tester (attack2 A9): when the "Loading keys…" banner went away, every row moved
    up ~34 px, so a click at that moment hit the row above. The banner now says the load is
    done and stays until the officer's next change of the view."""
    gate = Gate(workstation.keys)
    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.resize(1200, 700)
    page.show()
    with qtbot.waitSignal(page.loaded, timeout=20000):
        page.refresh()
    assert page.model.partial and page.loading.isVisible()
    before = page.table.mapTo(page, page.table.rect().topLeft()).y()
    gate.entered.wait(20)
    with qtbot.waitSignal(page.loaded, timeout=20000):
        gate.open()
    assert page.complete and page.loading.isVisible()
    assert "Every key is in (6)" in page.loading.text()
    qtbot.wait(50)
    assert page.table.mapTo(page, page.table.rect().topLeft()).y() == before
    page.filter.setText("a")  # the officer's next change: the note goes, the rows move anyway
    assert page.loading.isHidden()
