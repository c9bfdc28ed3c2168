"""The audit table: pages of entries fetched on the core thread as the view scrolls.

``canFetchMore``/``fetchMore`` ask for the next page; the query runs on the core thread and
the rows are inserted when it answers, so a million entries open as fast as the first page.
Filters are SQL (``AuditFilter``); the model only holds what has been shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor

from app.domain.audit import AuditEntry
from app.services.audit_log import AuditFilter, AuditLog

Index = QModelIndex | QPersistentModelIndex
PAGE = 500
EntryRole = Qt.ItemDataRole.UserRole + 1

_BAD = QBrush(QColor("#b3261e"))
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

    head_seen = Signal(int)  # the log's newest sequence number, with each first page

    def __init__(self, run: Runner, parent: Any = None) -> None:
        super().__init__(parent)
        self._run = run
        self._entries: list[AuditEntry] = []
        self._total = 0
        self._filter = AuditFilter(newest_first=True)
        self._names: dict[str, str] = {}  # subject -> key name
        self.bad_seq: int | None = None  # the entry the last verification failed at
        self._generation = 0  # answers for an older filter are dropped
        self._fetching = False

    @property
    def total(self) -> int:
        return self._total

    @property
    def newest_first(self) -> bool:
        return self._filter.newest_first

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Entries sort by time (= sequence) only, in SQL; other columns keep that order."""
        if column not in (AuditColumn.SEQ, AuditColumn.TIME):
            return
        newest_first = order == Qt.SortOrder.DescendingOrder
        if newest_first != self._filter.newest_first:
            self.set_filter(replace(self._filter, newest_first=newest_first))

    def set_bad(self, seq: int | None) -> None:
        """Mark the entry a verification failed at (its Sealed cell no longer says yes)."""
        self.bad_seq = seq
        if self._entries:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._entries) - 1, 6))

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

        def job(audit: AuditLog) -> tuple[int, list[AuditEntry], dict[str, str], int]:
            return audit.count(flt), audit.page(flt, 0, PAGE), audit.key_names(), audit.head_seq()

        self._run(job, lambda result: self._first_page(generation, *result))

    def _first_page(
        self,
        generation: int,
        total: int,
        entries: list[AuditEntry],
        names: dict[str, str],
        head: int,
    ) -> None:
        if generation != self._generation:
            return
        self._fetching = False
        self._total = total
        self._names = names
        self._append(entries)
        self.head_seen.emit(head)

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

    def _subject(self, subject: str) -> str:
        name = self._names.get(subject)
        return f"key '{name}'" if name is not None else subject

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
        bad = entry.seq == self.bad_seq
        if role == Qt.ItemDataRole.DisplayRole:
            if column == AuditColumn.SUBJECT:
                return self._subject(entry.subject)
            if column == AuditColumn.SEALED:
                return "FAILS VERIFICATION" if bad else ("yes" if entry.mac else "no")
            return (
                str(entry.seq),
                entry.ts[:19].replace("T", " "),
                ", ".join(entry.operators),
                entry.action,
                entry.subject,
                entry.outcome,
            )[column]
        if role == EntryRole:
            return entry
        if role == Qt.ItemDataRole.ToolTipRole and column == AuditColumn.SUBJECT:
            return entry.subject
        if role == Qt.ItemDataRole.ForegroundRole and (bad or column == AuditColumn.OUTCOME):
            return _BAD if bad else _OUTCOME_COLOURS.get(entry.outcome)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == AuditColumn.SEQ:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
