"""The audit table: pages of entries fetched on the core thread as the view scrolls.

``canFetchMore``/``fetchMore`` ask for the next page; the query runs on the core thread and
the rows are inserted when it answers, so a million entries open as fast as the first page.
Filters are SQL (``AuditFilter``); the model only holds what has been shown.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor

from app.domain.audit import AuditEntry
from app.services.audit_log import AuditFilter, AuditLog

Index = QModelIndex | QPersistentModelIndex
PAGE = 500
EntryRole = Qt.ItemDataRole.UserRole + 1

_OUTCOME_COLOURS = {
    "denied": QBrush(QColor("#8a5a00")),
    "failed": QBrush(QColor("#b3261e")),
    "aborted": QBrush(QColor("#b3261e")),
}


class AuditColumn(IntEnum):
    SEQ = 0
    TIME = 1
    OPERATORS = 2
    ACTION = 3
    SUBJECT = 4
    OUTCOME = 5
    SEALED = 6


_HEADERS = ("#", "Time (UTC)", "Operator(s)", "Action", "Subject", "Outcome", "Sealed")

Runner = Callable[[Callable[[AuditLog], Any], Callable[[Any], None]], None]


class AuditModel(QAbstractTableModel):
    """Entries matching the current filter, loaded page by page."""

    loaded = Signal()  # after each page arrives

    def __init__(self, run: Runner, parent: Any = None) -> None:
        super().__init__(parent)
        self._run = run
        self._entries: list[AuditEntry] = []
        self._total = 0
        self._filter = AuditFilter()
        self._generation = 0  # answers for an older filter are dropped
        self._fetching = False

    @property
    def total(self) -> int:
        return self._total

    def set_filter(self, flt: AuditFilter) -> None:
        """Start over with ``flt``: count, then the first page."""
        self._generation += 1
        generation = self._generation
        self.beginResetModel()
        self._filter = flt
        self._entries = []
        self._total = 0
        self._fetching = True
        self.endResetModel()

        def job(audit: AuditLog) -> tuple[int, list[AuditEntry]]:
            return audit.count(flt), audit.page(flt, 0, PAGE)

        self._run(job, lambda result: self._first_page(generation, *result))

    def _first_page(self, generation: int, total: int, entries: list[AuditEntry]) -> None:
        if generation != self._generation:
            return
        self._fetching = False
        self._total = total
        self._append(entries)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._fetching and len(self._entries) < self._total

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if not self.canFetchMore(parent):
            return
        self._fetching = True
        generation, flt, offset = self._generation, self._filter, len(self._entries)
        self._run(
            lambda audit: audit.page(flt, offset, PAGE),
            lambda entries: self._more(generation, entries),
        )

    def _more(self, generation: int, entries: list[AuditEntry]) -> None:
        if generation != self._generation:
            return
        self._fetching = False
        self._append(entries)

    def _append(self, entries: list[AuditEntry]) -> None:
        if entries:
            start = len(self._entries)
            self.beginInsertRows(QModelIndex(), start, start + len(entries) - 1)
            self._entries.extend(entries)
            self.endInsertRows()
        self.loaded.emit()

    def entry_at(self, row: int) -> AuditEntry | None:
        return self._entries[row] if 0 <= row < len(self._entries) else None

    def row_of_seq(self, seq: int) -> int:
        for row, entry in enumerate(self._entries):
            if entry.seq == seq:
                return row
        return -1

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._entries)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(AuditColumn)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        entry = self.entry_at(index.row()) if index.isValid() else None
        if entry is None:
            return None
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                str(entry.seq),
                entry.ts[:19].replace("T", " "),
                ", ".join(entry.operators),
                entry.action,
                entry.subject,
                entry.outcome,
                "yes" if entry.mac else "no",
            )[column]
        if role == EntryRole:
            return entry
        if role == Qt.ItemDataRole.ForegroundRole and column == AuditColumn.OUTCOME:
            return _OUTCOME_COLOURS.get(entry.outcome)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == AuditColumn.SEQ:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
