"""The inventory table model: filtering and sorting done in Python on precomputed keys.

A QSortFilterProxyModel calls back into Python per comparison (about 29 s to sort 100,000 rows,
DESIGN.md); here each row's display texts, sort keys and a lower-case haystack are computed once
(``build_rows``, pure Python, run on the core thread), and filter/sort only reorder row indexes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from app.domain.keys import InventoryItem, Presence

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
SortRole = Qt.ItemDataRole.UserRole + 2

_MISSING = QBrush(QColor("#b3261e"))
_UNMANAGED = QBrush(QColor("#8a5a00"))
_MUTED = QBrush(QColor("#5f6368"))
_BOLD = QFont()
_BOLD.setBold(True)
_ITALIC = QFont()
_ITALIC.setItalic(True)


@dataclass(frozen=True)
class Row:
    """One inventory row, ready to show: texts, sort keys and a filter haystack."""

    item: InventoryItem
    texts: tuple[str, ...]
    keys: tuple[Any, ...]
    haystack: str


def _identifier(item: InventoryItem) -> str:
    record = item.record
    if record is None:
        return ""
    if record.algorithm.symmetric:
        return f"KCV {record.kcv}" if record.kcv else "KCV —"
    fpr = (record.fingerprint or "").upper()
    return " ".join(fpr[i : i + 4] for i in range(0, 16, 4)) + " …" if fpr else ""


def make_row(item: InventoryItem) -> Row:
    record = item.record
    obj = item.token_object
    if record is not None:
        texts = (
            record.name,
            record.algorithm.value,
            record.algorithm.spec.size_label,
            record.purpose.title,
            record.state.title,
            item.presence.value,
            record.token_label,
            _identifier(item),
            record.created_at.strftime("%Y-%m-%d %H:%M"),
            record.created_by,
        )
        created: Any = record.created_at.timestamp()
        bits = record.algorithm.spec.bits
    elif obj is not None:
        algorithm = obj.algorithm
        texts = (
            obj.label or f"(no label, CKA_ID {obj.cka_id or 'none'})",
            algorithm.value if algorithm else obj.key_type,
            algorithm.spec.size_label if algorithm else "",
            "",
            "—",
            item.presence.value,
            obj.token_label,
            "",
            "",
            "",
        )
        created = 0.0
        bits = algorithm.spec.bits if algorithm else 0
    else:
        raise ValueError("an inventory item has a record or a token object")
    keys: tuple[Any, ...] = tuple(t.casefold() for t in texts)
    keys = (
        *keys[: Column.SIZE],
        (bits, texts[Column.SIZE]),
        *keys[Column.SIZE + 1 : Column.CREATED],
        created,
        keys[Column.CREATED_BY],
    )
    haystack = "\x1f".join(texts).casefold()
    if record is not None:
        haystack += (
            "\x1f" + "\x1f".join((record.id, record.kcv or "", record.fingerprint or "")).casefold()
        )
    return Row(item, texts, keys, haystack)


def build_rows(items: list[InventoryItem]) -> list[Row]:
    """Precompute rows; pure Python so it runs on the core thread, off the GUI thread."""
    return [make_row(item) for item in items]


class InventoryModel(QAbstractTableModel):
    """All rows, the visible subset (filter) in the current order (sort)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[Row] = []
        self._visible: list[int] = []
        self._filter = ""
        self._sort_column = Column.NAME
        self._sort_order = Qt.SortOrder.AscendingOrder

    # --- data in ---------------------------------------------------------------------------

    def set_rows(self, rows: list[Row]) -> None:
        self.beginResetModel()
        self._rows = rows
        self._visible = self._compute_visible()
        self.endResetModel()

    def set_filter(self, text: str) -> None:
        needle = text.strip().casefold()
        if needle == self._filter:
            return
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        self._filter = needle
        self._visible = self._compute_visible()
        self.changePersistentIndexList(old, [QModelIndex()] * len(old))
        self.layoutChanged.emit()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        old_items = [self._visible[i.row()] if i.row() < len(self._visible) else -1 for i in old]
        self._sort_column = Column(column)
        self._sort_order = order
        self._visible = self._sorted(self._visible)
        position = {row: i for i, row in enumerate(self._visible)}
        new = [
            self.index(position[r], i.column()) if r in position else QModelIndex()
            for r, i in zip(old_items, old, strict=True)
        ]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    def _compute_visible(self) -> list[int]:
        needle = self._filter
        rows = self._rows
        if needle:
            chosen = [i for i, row in enumerate(rows) if needle in row.haystack]
        else:
            chosen = list(range(len(rows)))
        return self._sorted(chosen)

    def _sorted(self, indexes: list[int]) -> list[int]:
        column = int(self._sort_column)
        rows = self._rows
        return sorted(
            indexes,
            key=lambda i: rows[i].keys[column],
            reverse=self._sort_order == Qt.SortOrder.DescendingOrder,
        )

    # --- read ------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self._rows)

    def item_at(self, row: int) -> InventoryItem | None:
        if 0 <= row < len(self._visible):
            return self._rows[self._visible[row]].item
        return None

    def row_of_key(self, key_id: str) -> int:
        for position, index in enumerate(self._visible):
            record = self._rows[index].item.record
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
        row = self._rows[self._visible[index.row()]]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return row.texts[column]
        if role == ObjectRole:
            return row.item
        if role == SortRole:
            return row.keys[column]
        presence = row.item.presence
        if role == Qt.ItemDataRole.ForegroundRole:
            if presence is Presence.MISSING:
                return _MISSING
            if presence is Presence.UNMANAGED:
                return _UNMANAGED
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
            }[presence]
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return row.texts[column]
        return None
