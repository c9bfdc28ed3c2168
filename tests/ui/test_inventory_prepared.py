"""The inventory at scale (issue 17): every per-row fact the page shows at load, filter and
sort is prepared off the GUI thread, and the prepared answers are the same as the ones worked
out row by row. Timings belong in benchmarks/inventory_gui.py; these hold the behaviour."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from PySide6.QtCore import Qt

import ui.models.inventory_model as inventory_model
from app.domain.algorithms import Algorithm
from app.domain.keys import InventoryItem, KeyState, Presence
from tests.ui.test_inventory import BASE, items, record
from ui.models.inventory_model import (
    Column,
    InventoryModel,
    build_filter_index,
    prepare_inventory,
)

pytestmark = pytest.mark.ui

DUE_BEFORE = BASE + timedelta(days=30)


def estate(n: int = 300, seed: int = 17) -> list[InventoryItem]:
    """Mixed algorithms, states, presences, creators, duplicate names and due dates."""
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    found = list(items())
    for _ in range(n):
        algorithm = rng.choice(list(Algorithm))
        key = record(f"k{rng.randrange(n // 3)}", algorithm, rng.randrange(10_000),
                     by=rng.choice(["alice", "bob", "Carol"]))
        key = key._replace(
            state=rng.choice(list(KeyState)),
            deactivation_date=BASE + timedelta(days=rng.randrange(-10, 90))
            if rng.random() < 0.5 else None,
        )
        presence = rng.choice([Presence.PRESENT, Presence.MISSING, Presence.UNCHECKED])
        found.append(InventoryItem(presence, key))
    return found


def shown(model: InventoryModel) -> list[int]:
    return [id(model.item_at(r)) for r in range(model.rowCount())]


def row_by_row(model: InventoryModel) -> InventoryModel:
    """The same inventory made without any prepared data (the GUI-thread fallback)."""
    plain = InventoryModel()
    plain.due_before = model.due_before
    plain.set_items(model._items)
    return plain


def test_prepared_orders_counts_and_due_flags_match_the_row_by_row_answers() -> None:
    inventory = estate()
    prepared = prepare_inventory(inventory, DUE_BEFORE, Column.NAME)
    model = InventoryModel()
    model.due_before = DUE_BEFORE
    model.set_items(inventory, prepared)
    model.set_filter_index(inventory, build_filter_index(inventory, DUE_BEFORE))
    plain = row_by_row(model)
    assert model.due_count == sum(inventory_model.is_due(i, DUE_BEFORE) for i in inventory) > 0
    for column in Column:
        for order in (Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder):
            for needle, due_only in (("", False), ("rsa", False), ("bob", True), ("k1", False)):
                for m in (model, plain):
                    m.set_filter(needle)
                    m.set_due_only(due_only)
                    m.sort(column, order)
                texts_a = [model.index(r, column).data() for r in range(model.rowCount())]
                texts_b = [plain.index(r, column).data() for r in range(plain.rowCount())]
                assert texts_a == texts_b, (column, order, needle, due_only)
                assert sorted(shown(model)) == sorted(shown(plain))
                assert model.presence_counts() == plain.presence_counts()
    now = BASE + timedelta(days=1)
    assert model.totals(now) == plain.totals(now)


def test_load_filter_and_sort_do_no_per_row_work_once_prepared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the prepared data and the index (both from the core thread), the GUI thread never
    computes a row's texts or a column's sort keys: counting, filtering and every sort work on
    precomputed numbers."""
    inventory = estate()
    prepared = prepare_inventory(inventory, DUE_BEFORE, Column.TOKEN)
    index = build_filter_index(inventory, DUE_BEFORE)

    def per_row(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("per-row work on the GUI thread")

    monkeypatch.setattr(inventory_model, "row_texts", per_row)
    monkeypatch.setattr(inventory_model, "_sort_keys", per_row)
    monkeypatch.setattr(inventory_model, "is_due", per_row)
    model = InventoryModel()
    model.due_before = DUE_BEFORE
    model.sort(Column.TOKEN, Qt.SortOrder.AscendingOrder)  # the reload comes sorted by text
    model.set_items(inventory, prepared)
    assert model.rowCount() == len(inventory)
    assert model.due_count == prepared.due_count
    model.set_filter_index(inventory, index)
    for column in Column:
        model.sort(column, Qt.SortOrder.DescendingOrder)
    model.set_filter("alice")
    model.set_due_only(True)
    assert 0 < model.rowCount() < len(inventory)
    assert sum(model.presence_counts().values()) == model.rowCount()
    model.totals(BASE)
