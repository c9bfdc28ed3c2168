"""The inventory table model: filtering and sorting in Python on keys computed once.

A QSortFilterProxyModel calls back into Python per comparison (about 29 s to sort 100,000 rows,
DESIGN.md). Here the model holds the inventory items and a list of visible row numbers:
- display texts are made when a row is first painted (only the visible screenful at first);
- sort keys are computed per column at its first sort, then reused;
- the filter index (one lower-case haystack per row) is built on the core thread right after the
  table is painted (``build_filter_index``) and handed in with ``set_filter_index``.
Filter and sort then only reorder integers.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Any, NamedTuple

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from app.domain.keys import InventoryItem, KeyRecord, KeyState, Presence

Index = QModelIndex | QPersistentModelIndex


class Column(IntEnum):
    NAME = 0
    ALGORITHM = 1
    SIZE = 2
    PURPOSE = 3
    STATE = 4
    PRESENCE = 5
    TOKEN = 6
    IDENTIFIER = 7
    CREATED = 8
    CREATED_BY = 9


HEADERS = {
    Column.NAME: "Name",
    Column.ALGORITHM: "Algorithm",
    Column.SIZE: "Size / curve",
    Column.PURPOSE: "Purpose",
    Column.STATE: "State",
    Column.PRESENCE: "On token",
    Column.TOKEN: "Token",
    Column.IDENTIFIER: "KCV / SHA-256 fingerprint",
    Column.CREATED: "Created (UTC)",
    Column.CREATED_BY: "Created by",
}

ObjectRole = Qt.ItemDataRole.UserRole + 1

_MISSING = QBrush(QColor("#b3261e"))
_UNMANAGED = QBrush(QColor("#8a5a00"))
_MUTED = QBrush(QColor("#5f6368"))
_BOLD = QFont()
_BOLD.setBold(True)
_ITALIC = QFont()
_ITALIC.setItalic(True)


def _identifier(record: KeyRecord) -> str:
    if record.algorithm.symmetric:
        return f"KCV {record.kcv}" if record.kcv else "KCV —"
    fpr = (record.fingerprint or "").upper()
    return f"{fpr[0:4]} {fpr[4:8]} {fpr[8:12]} {fpr[12:16]} …" if fpr else ""


LIVE_STATES = (KeyState.PRE_ACTIVE, KeyState.ACTIVE, KeyState.SUSPENDED)
DUE_MARK = " · due"


def is_due(item: InventoryItem, due_before: datetime | None) -> bool:
    """Live key whose deactivation (protect-stop) date is before ``due_before``."""
    record = item.record
    return bool(
        due_before
        and record
        and record.deactivation_date
        and record.state in LIVE_STATES
        and record.deactivation_date < due_before
    )


def _presence_text(item: InventoryItem) -> str:
    """ "unmanaged", with what is odd about the object: a shared or missing CKA_ID, exposure,
    a public key alone, a certificate or data object."""
    obj = item.token_object
    if obj is None:
        return item.presence.value
    marks = []
    if obj.kind.value not in ("secret key", "key pair"):
        marks.append(obj.kind.value)
    if obj.shared_id:
        marks.append("ID shared")
    elif not obj.cka_id:
        marks.append("no ID")
    if obj.exposure:
        marks.append("exposed")
    return item.presence.value + (f" ({', '.join(marks)})" if marks else "")


def row_texts(item: InventoryItem, due_before: datetime | None = None) -> tuple[str, ...]:
    """The display text of each column for one item."""
    record = item.record
    if record is not None:
        algorithm = record.algorithm
        state = record.state.title + (DUE_MARK if is_due(item, due_before) else "")
        return (
            record.name,
            algorithm.value,
            algorithm.spec.size_label,
            record.purpose.title,
            state,
            item.presence.value,
            record.token_label,
            _identifier(record),
            record.created_at.isoformat(" ", "minutes")[:16],
            record.created_by,
        )
    obj = item.token_object
    if obj is None:
        raise ValueError("an inventory item has a record or a token object")
    return (
        obj.label or f"(no label, CKA_ID {obj.cka_id or 'none'})",
        obj.algorithm.value if obj.algorithm else (obj.key_type or obj.kind.value),
        obj.algorithm.spec.size_label if obj.algorithm else "",
        "",
        "—",
        _presence_text(item),
        obj.token_label,
        obj.identifier,
        "",
        "",
    )


def _haystack(item: InventoryItem, texts: tuple[str, ...]) -> str:
    record = item.record
    if record is not None:
        extra = f"{record.id}\x1f{record.kcv or ''}\x1f{record.fingerprint or ''}"
    else:
        extra = item.token_object.cka_id if item.token_object else ""
    return f"{chr(31).join(texts)}\x1f{extra}".casefold()


class FilterIndex(NamedTuple):
    """Texts and haystacks for every item, in item order. Pure Python: built on the core thread."""

    texts: list[tuple[str, ...]]
    haystacks: list[str]


def build_filter_index(
    items: list[InventoryItem], due_before: datetime | None = None
) -> FilterIndex:
    texts = [row_texts(item, due_before) for item in items]
    return FilterIndex(texts, [_haystack(i, t) for i, t in zip(items, texts, strict=True)])


def _bits(item: InventoryItem) -> int:
    algorithm = (
        item.record.algorithm
        if item.record
        else (item.token_object.algorithm if item.token_object else None)
    )
    return algorithm.spec.bits if algorithm else 0


def _name_key(item: InventoryItem) -> str:
    if item.record is not None:
        return item.record.name.casefold()
    return (item.token_object.label if item.token_object else "").casefold()


class InventoryModel(QAbstractTableModel):
    """All items, the visible subset (filter) in the current order (sort)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._items: list[InventoryItem] = []
        self._texts: list[tuple[str, ...] | None] = []
        self._haystacks: list[str] | None = None
        self._keys: dict[Column, list[Any]] = {}  # per column, computed at its first sort
        self._visible: list[int] = []
        self._filter = ""
        self._due_only = False
        self.due_before: datetime | None = None  # set before set_items
        self._sort_column = Column.NAME
        self._sort_order = Qt.SortOrder.AscendingOrder

    # --- data in ---------------------------------------------------------------------------

    def set_items(self, items: list[InventoryItem]) -> None:
        """New inventory; texts and filter index follow (``set_filter_index``) or are made here."""
        self.beginResetModel()
        self._items = items
        self._texts = [None] * len(items)
        self._haystacks = None
        self._keys = {}
        self._visible = self._compute_visible()
        self.endResetModel()

    @property
    def has_filter_index(self) -> bool:
        return self._haystacks is not None

    def set_filter_index(self, items: list[InventoryItem], index: FilterIndex) -> None:
        """Accept an index built off the GUI thread, if it is for the items shown now."""
        if items is not self._items:
            return
        self._texts = list(index.texts)
        self._haystacks = index.haystacks
        if self._filter:
            self._relayout(self._compute_visible)

    def set_filter(self, text: str) -> None:
        needle = text.strip().casefold()
        if needle == self._filter:
            return
        self._filter = needle
        self._relayout(self._compute_visible)

    def set_due_only(self, due_only: bool) -> None:
        if due_only != self._due_only:
            self._due_only = due_only
            self._relayout(self._compute_visible)

    @property
    def due_count(self) -> int:
        return sum(1 for item in self._items if is_due(item, self.due_before))

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort_column = Column(column)
        self._sort_order = order
        self._relayout(lambda: self._sorted(self._visible))

    def _relayout(self, compute: Any) -> None:
        """Recompute the visible rows, keeping selections on the items they were on."""
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        old_items = [self._visible[i.row()] if i.row() < len(self._visible) else -1 for i in old]
        self._visible = compute()
        position = {item: row for row, item in enumerate(self._visible)}
        new = [
            self.index(position[item], i.column()) if item in position else QModelIndex()
            for item, i in zip(old_items, old, strict=True)
        ]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    def _compute_visible(self) -> list[int]:
        needle = self._filter
        chosen: range | list[int] = range(len(self._items))
        if self._due_only:
            due_before = self.due_before
            chosen = [i for i, item in enumerate(self._items) if is_due(item, due_before)]
        if not needle:
            return self._sorted(list(chosen))
        if self._haystacks is None:  # index not here yet: build it now, once
            index = build_filter_index(self._items, self.due_before)
            self._texts, self._haystacks = list(index.texts), index.haystacks
        haystacks = self._haystacks
        return self._sorted([i for i in chosen if needle in haystacks[i]])

    def _sort_keys(self, column: Column) -> list[Any]:
        items = self._items
        if column is Column.NAME:
            return [_name_key(item) for item in items]
        if column is Column.SIZE:
            return [_bits(item) for item in items]
        if column is Column.IDENTIFIER:
            return [(i.record.kcv or i.record.fingerprint or "") if i.record else "" for i in items]
        if column is Column.CREATED:
            return [i.record.created_at.timestamp() if i.record else 0.0 for i in items]
        return [self._text(i)[column].casefold() for i in range(len(items))]

    def _sorted(self, indexes: list[int]) -> list[int]:
        keys = self._keys.get(self._sort_column)
        if keys is None:
            keys = self._keys[self._sort_column] = self._sort_keys(self._sort_column)
        return sorted(
            indexes,
            key=keys.__getitem__,
            reverse=self._sort_order == Qt.SortOrder.DescendingOrder,
        )

    def _text(self, item_index: int) -> tuple[str, ...]:
        texts = self._texts[item_index]
        if texts is None:
            texts = self._texts[item_index] = row_texts(self._items[item_index], self.due_before)
        return texts

    # --- read ------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self._items)

    def totals(self, now: datetime) -> tuple[int, int, dict[Presence, int]]:
        """Over all items (not only the visible ones): (due, overdue, count per presence)."""
        due = overdue = 0
        presence: dict[Presence, int] = {}
        for item in self._items:
            presence[item.presence] = presence.get(item.presence, 0) + 1
            if is_due(item, self.due_before):
                due += 1
                record = item.record
                if record and record.deactivation_date and record.deactivation_date <= now:
                    overdue += 1
        return due, overdue, presence

    def presence_counts(self) -> dict[Presence, int]:
        """How many visible rows have each presence."""
        counts: dict[Presence, int] = {}
        items = self._items
        for index in self._visible:
            presence = items[index].presence
            counts[presence] = counts.get(presence, 0) + 1
        return counts

    def item_at(self, row: int) -> InventoryItem | None:
        if 0 <= row < len(self._visible):
            return self._items[self._visible[row]]
        return None

    def row_of_key(self, key_id: str) -> int:
        for position, index in enumerate(self._visible):
            record = self._items[index].record
            if record is not None and record.id == key_id:
                return position
        return -1

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._visible)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[Column(section)]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._visible):
            return None
        item_index = self._visible[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(item_index)[column]
        if role == ObjectRole:
            return self._items[item_index]
        presence = self._items[item_index].presence
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == Column.STATE and is_due(self._items[item_index], self.due_before):
                return _UNMANAGED
            if presence is Presence.MISSING:
                return _MISSING
            if presence is Presence.UNMANAGED:
                return _UNMANAGED
            if presence is Presence.ABSENT and column == Column.PRESENCE:
                return _MISSING
            if presence is Presence.DESTROYED:
                return _MUTED
            if presence is Presence.UNCHECKED and column == Column.PRESENCE:
                return _MUTED
        if role == Qt.ItemDataRole.FontRole:
            if presence is Presence.MISSING and column in (Column.NAME, Column.PRESENCE):
                return _BOLD
            if presence is Presence.UNMANAGED:
                return _ITALIC
        if role == Qt.ItemDataRole.ToolTipRole and column == Column.PRESENCE:
            return {
                Presence.PRESENT: "The token holds this key.",
                Presence.MISSING: "The record exists but its token object is gone. Nothing was "
                "deleted; investigate before acting.",
                Presence.UNMANAGED: "On the token but not in Keystead's records. Use Adopt to "
                "manage it.",
                Presence.UNCHECKED: "Log in to the token to check this key against it.",
                Presence.ABSENT: "The key's token is not attached (removed, or never seen "
                "here). Insert it to check or use the key.",
                Presence.DESTROYED: "The key was destroyed; its object is meant to be gone. "
                "The record keeps its history.",
            }[presence]
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return self._text(item_index)[column]
        return None
