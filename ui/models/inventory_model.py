"""The inventory table model: filtering and sorting in Python on keys computed once.

A QSortFilterProxyModel calls back into Python per comparison (about 29 s to sort 100,000 rows,
DESIGN.md). Here the model holds the inventory items and a list of visible row numbers:
- display texts are made when a row is first painted (only the visible screenful at first);
- sort keys are computed per column at its first sort, then reused;
- the filter index (one lower-case haystack per row, every column's order) is built on the core
  thread right after the table is painted, in steps (``FilterIndexBuilder``), and handed in with
  ``set_filter_index``; display texts stay made on demand.
Filter and sort then only reorder integers.

No per-row work on the GUI thread at load, filter or sort (issue 17: 100,000 keys must paint
within 1 s and sort and filter within 0.1 s): the inventory job prepares, on the core thread,
the per-row facts the page shows (presence and due flags, their totals, the order of the
current sort column) with ``prepare_inventory``; the filter index job adds every column's
order, so a sort afterwards copies or filters a precomputed permutation. A sort on a column
whose order is not there yet (in the moment between paint and the index) computes it once.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import datetime
from enum import IntEnum
from itertools import compress
from typing import Any, NamedTuple

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from app.domain.keys import (
    InventoryHead,
    InventoryItem,
    KeyRecord,
    KeyState,
    Presence,
    name_order,
)

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
    USES = 10
    BACKUP = 11


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
    Column.USES: "Uses",
    Column.BACKUP: "Backup",
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
NOT_BACKED_UP = "NOT BACKED UP"
_GONE = (KeyState.DESTROYED, KeyState.DESTROYED_COMPROMISED)
COMPROMISED_ADVICE = (
    "Compromised: never use this key to protect anything. Re-protect what it protected "
    "under a new key, then destroy it."
)


def at_risk(item: InventoryItem) -> bool:
    """A backup-able (extractable) key that still exists and is in no verified backup: a lost
    token loses it."""
    record = item.record
    return bool(
        record is not None
        and record.extractable
        and record.state not in _GONE
        and item.backup is None
    )


def backup_text(item: InventoryItem) -> str:
    record = item.record
    if record is None or record.state in _GONE:
        return ""
    backup = item.backup
    if backup is None:
        return NOT_BACKED_UP if record.extractable else "not backup-able"
    medium = backup.medium or "a directory"
    more = f" (+{backup.copies - 1} older)" if backup.copies > 1 else ""
    return f"gen. {backup.generation} · verified {backup.verified_at[:10]} · {medium}{more}"


def is_due(item: InventoryItem, due_before: datetime | None) -> bool:
    """Live key whose deactivation (protect-stop) date is before ``due_before``."""
    record = item.record
    if record is not None and item.usage_due and record.state in LIVE_STATES:
        return True  # at or near a usage limit of its purpose (resources/usage-limits.toml)
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
            f"{item.uses:,}",
            backup_text(item),
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
    """Haystacks and every column's ascending order (item numbers), in item order. Pure
    Python: built on the core thread. The display texts it was made from are not kept: the
    model makes them for the rows painted (a screenful), and holding all of them cost ~50 MB
    at 100,000 keys (issue 17's peak-memory target)."""

    haystacks: list[str]
    orders: dict[Column, list[int]]


def build_filter_index(
    items: list[InventoryItem], due_before: datetime | None = None, orders: bool = True
) -> FilterIndex:
    """The index of ``items``; with ``orders`` also every column's sort order (the GUI
    thread's fallback leaves them to the first sort). The core thread builds the same index
    in steps (``FilterIndexBuilder``)."""
    builder = FilterIndexBuilder(items, due_before, orders)
    while (index := builder.step()) is None:
        pass
    return index


class FilterIndexBuilder:
    """``build_filter_index`` in steps, each a batch of rows' texts and haystacks or one
    column's order (about 30-60 ms of Python each at 100,000 keys on a quiet machine).

    The page runs one step per core job and submits the next from the GUI thread: between
    steps the core thread is idle and the GIL is the GUI thread's, so scrolling the just
    painted table does not stall behind 1-1.5 s of index building (issue 17)."""

    ROWS_PER_STEP = 5000

    def __init__(
        self, items: list[InventoryItem], due_before: datetime | None, orders: bool = True
    ) -> None:
        self.items = items
        self.due_before = due_before
        self._texts: list[tuple[str, ...]] = []
        self._haystacks: list[str] = []
        self._orders: dict[Column, list[int]] = {}
        self._columns = list(Column) if orders else []

    def step(self) -> FilterIndex | None:
        """Do the next step; the index once every step is done (then again on each call)."""
        done = len(self._texts)
        if done < len(self.items):
            batch = self.items[done : done + self.ROWS_PER_STEP]
            texts = [row_texts(item, self.due_before) for item in batch]
            self._texts.extend(texts)
            self._haystacks.extend(map(_haystack, batch, texts))
            return None
        if self._columns:
            column = self._columns.pop(0)
            self._orders[column] = column_order(self.items, column, self._texts.__getitem__)
            return None
        return FilterIndex(self._haystacks, self._orders)


def _sort_keys(
    items: list[InventoryItem], column: Column, text: Any
) -> list[Any]:
    """One sort key per item: typed for name, size, identifier and date; the shown text
    (``text(item_number)``, case-folded) for the other columns."""
    if column is Column.NAME:
        return [_name_key(item) for item in items]
    if column is Column.SIZE:
        return [_bits(item) for item in items]
    if column is Column.IDENTIFIER:
        return [(i.record.kcv or i.record.fingerprint or "") if i.record else "" for i in items]
    if column is Column.CREATED:
        return [i.record.created_at.timestamp() if i.record else 0.0 for i in items]
    if column is Column.USES:
        return [i.uses for i in items]
    return [text(i)[column].casefold() for i in range(len(items))]


def column_order(items: list[InventoryItem], column: Column, text: Any) -> list[int]:
    """Item numbers in ascending order of ``column`` (stable: ties keep item order)."""
    keys = _sort_keys(items, column, text)
    return sorted(range(len(items)), key=keys.__getitem__)


class Prepared(NamedTuple):
    """What the page shows about a whole inventory, computed off the GUI thread
    (``prepare_inventory``): per-item presence and due flags, their totals, and the order of
    the column the table is sorted by."""

    items: list[InventoryItem]
    due_before: datetime | None
    presence: list[Presence]
    due: bytes  # 1 where the item is due (``is_due``)
    presence_totals: dict[Presence, int]
    due_count: int
    orders: dict[Column, list[int]]
    at_risk_count: int  # keys in no verified backup (``at_risk``)
    compromised_count: int = 0  # keys recorded as compromised and not yet destroyed


def prepare_inventory(
    items: list[InventoryItem],
    due_before: datetime | None,
    sort_column: Column = Column.NAME,
) -> Prepared:
    """The per-row facts of ``items`` (run on the core thread)."""
    presence = [item.presence for item in items]
    due = bytes(is_due(item, due_before) for item in items)
    texts: dict[int, tuple[str, ...]] = {}

    def text(i: int) -> tuple[str, ...]:
        found = texts.get(i)
        if found is None:
            found = texts[i] = row_texts(items[i], due_before)
        return found

    return Prepared(
        items,
        due_before,
        presence,
        due,
        dict(Counter(presence)),
        sum(due),
        {sort_column: column_order(items, sort_column, text)},
        sum(1 for item in items if at_risk(item)),
        sum(1 for item in items if item.record and item.record.state is KeyState.COMPROMISED),
    )


def _bits(item: InventoryItem) -> int:
    algorithm = (
        item.record.algorithm
        if item.record
        else (item.token_object.algorithm if item.token_object else None)
    )
    return algorithm.spec.bits if algorithm else 0


def _name_key(item: InventoryItem) -> tuple[str, str]:
    """``name_order``: the order the database reads the first screenful in (issue 17)."""
    return name_order(item.name)


_ROLES = frozenset(
    {
        Qt.ItemDataRole.DisplayRole,
        ObjectRole,
        Qt.ItemDataRole.ForegroundRole,
        Qt.ItemDataRole.FontRole,
        Qt.ItemDataRole.ToolTipRole,
        Qt.ItemDataRole.AccessibleTextRole,
        Qt.ItemDataRole.TextAlignmentRole,  # the Uses column, right-aligned
    }
)
_COMPROMISED_LOOK = frozenset(
    {Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.FontRole, Qt.ItemDataRole.ToolTipRole}
)


class InventoryModel(QAbstractTableModel):
    """All items, the visible subset (filter) in the current order (sort)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._items: list[InventoryItem] = []
        self._texts: list[tuple[str, ...] | None] = []
        self._haystacks: list[str] | None = None
        self._orders: dict[Column, list[int]] = {}  # ascending item numbers per column
        self._presence: list[Presence] = []
        self._due: bytes = b""
        self._presence_totals: dict[Presence, int] = {}
        self._due_count = 0
        self._at_risk_count = 0
        self._compromised_count = 0
        self._visible_counts: dict[Presence, int] | None = None
        self._visible: list[int] = []
        self._head: InventoryHead | None = None  # set while only the first rows are held
        self._filter = ""
        self._due_only = False
        self._at_risk_only = False
        self.due_before: datetime | None = None  # set before set_items
        self._sort_column = Column.NAME
        self._sort_order = Qt.SortOrder.AscendingOrder

    # --- data in ---------------------------------------------------------------------------

    @property
    def sort_column(self) -> Column:
        return self._sort_column

    @property
    def sort_order(self) -> Qt.SortOrder:
        return self._sort_order

    def set_items(
        self,
        items: list[InventoryItem],
        prepared: Prepared | None = None,
        head: InventoryHead | None = None,
    ) -> None:
        """New inventory; texts and filter index follow (``set_filter_index``) or are made here.
        ``prepared`` (``prepare_inventory`` of the same items, made on the core thread) spares
        the GUI thread every per-row pass; without it they are made here.

        With ``head``, ``items`` are only the first rows of the inventory in name order
        (``KeyService.inventory_head``): the model is *partial* until the next ``set_items``
        without it: ``total`` and every count are the head's totals over the whole inventory,
        not the rows held (the page refuses sorting and filtering meanwhile)."""
        if prepared is None or prepared.items is not items:
            prepared = prepare_inventory(items, self.due_before, self._sort_column)
        self.beginResetModel()
        self._head = head
        self._items = items
        self._texts = [None] * len(items)
        self._haystacks = None
        self._orders = dict(prepared.orders)
        self._presence = prepared.presence
        self._due = prepared.due
        self._presence_totals = prepared.presence_totals
        self._due_count = prepared.due_count
        self._at_risk_count = prepared.at_risk_count
        self._compromised_count = prepared.compromised_count
        if head is not None:  # the true totals, over every key, not over the rows held
            self._presence_totals = dict(head.presence_totals)
            self._due_count = head.due_count
            self._at_risk_count = head.not_backed_up_count
            self._compromised_count = head.compromised_count
        self._visible_counts = None
        self._visible = self._compute_visible()
        self.endResetModel()

    @property
    def partial(self) -> bool:
        """True while the model holds only the first rows of the inventory (``set_items``
        with a head): ``rowCount()`` < ``total``."""
        return self._head is not None

    def holds(self, items: list[InventoryItem]) -> bool:
        """Whether ``items`` (that very list) is what the model shows now."""
        return items is self._items

    @property
    def has_filter_index(self) -> bool:
        return self._haystacks is not None

    def set_filter_index(self, items: list[InventoryItem], index: FilterIndex) -> None:
        """Accept an index built off the GUI thread, if it is for the items shown now."""
        if items is not self._items:
            return
        self._haystacks = index.haystacks
        self._orders = {**index.orders, **self._orders}
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

    def set_at_risk_only(self, at_risk_only: bool) -> None:
        """Show only keys that are in no verified backup (the "Not backed up" filter)."""
        if at_risk_only != self._at_risk_only:
            self._at_risk_only = at_risk_only
            self._relayout(self._compute_visible)

    @property
    def at_risk_count(self) -> int:
        """Keys in no verified backup, over all items (counted with the inventory, on the
        core thread)."""
        return self._at_risk_count

    @property
    def compromised_count(self) -> int:
        """Keys recorded as compromised and not destroyed yet, over all items (counted with
        the inventory, on the core thread)."""
        return self._compromised_count

    @property
    def due_count(self) -> int:
        return self._due_count

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort_column = Column(column)
        self._sort_order = order
        self._relayout(lambda: self._sorted(self._visible), same_rows=True)

    def _relayout(self, compute: Any, same_rows: bool = False) -> None:
        """Recompute the visible rows, keeping selections on the items they were on."""
        if not same_rows:
            self._visible_counts = None
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        old_items = [self._visible[i.row()] if i.row() < len(self._visible) else -1 for i in old]
        self._visible = compute()
        wanted = set(old_items)
        wanted.discard(-1)
        position: dict[int, int]
        if len(wanted) <= 16:  # the current and selected rows: a C-level search each
            position = {}
            for item in wanted:
                with contextlib.suppress(ValueError):
                    position[item] = self._visible.index(item)
        else:
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
            chosen = list(compress(range(len(self._items)), self._due))
        if self._at_risk_only:
            chosen = [i for i in chosen if at_risk(self._items[i])]
        if not needle:
            return self._sorted(list(chosen))
        if self._haystacks is None:  # index not here yet: build it now, once
            index = build_filter_index(self._items, self.due_before, orders=False)
            self._haystacks = index.haystacks
        haystacks = self._haystacks
        return self._sorted([i for i in chosen if needle in haystacks[i]])

    def _sorted(self, indexes: list[int]) -> list[int]:
        """``indexes`` in the current order, from the column's precomputed permutation: a copy
        when every item is shown, else the permutation filtered by a membership mask."""
        if not indexes:
            return []
        order = self._orders.get(self._sort_column)
        if order is None:  # sorted before the index arrived: computed once, here
            order = self._orders[self._sort_column] = column_order(
                self._items, self._sort_column, self._text
            )
        if len(indexes) == len(order):
            chosen = order
        else:
            mask = bytearray(len(order))
            for i in indexes:
                mask[i] = 1
            chosen = list(compress(order, map(mask.__getitem__, order)))
        if self._sort_order == Qt.SortOrder.DescendingOrder:
            return chosen[::-1]
        return list(chosen)

    def _text(self, item_index: int) -> tuple[str, ...]:
        texts = self._texts[item_index]
        if texts is None:
            texts = self._texts[item_index] = row_texts(self._items[item_index], self.due_before)
        return texts

    # --- read ------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        """Rows of the whole inventory (while ``partial``: more than the rows held)."""
        return self._head.total if self._head is not None else len(self._items)

    def totals(self, now: datetime) -> tuple[int, int, dict[Presence, int]]:
        """Over all items (not only the visible ones): (due, overdue, count per presence).
        Overdue counts the due items whose date is before ``now``; it is counted over the due
        items only (a few), the rest was prepared with the inventory."""
        if self._head is not None:
            head = self._head
            return head.due_count, head.overdue_count, dict(head.presence_totals)
        overdue = 0
        for item in compress(self._items, self._due):
            record = item.record
            if record and record.deactivation_date and record.deactivation_date <= now:
                overdue += 1
        return self._due_count, overdue, dict(self._presence_totals)

    def presence_counts(self) -> dict[Presence, int]:
        """How many visible rows have each presence (kept until the visible rows change)."""
        if self._visible_counts is None:
            if len(self._visible) == len(self._items):  # (while partial: the true totals)
                self._visible_counts = dict(self._presence_totals)
            else:
                self._visible_counts = dict(
                    Counter(map(self._presence.__getitem__, self._visible))
                )
        return dict(self._visible_counts)

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
        if role not in _ROLES or not index.isValid() or index.row() >= len(self._visible):
            return None  # (asked ~10 times per cell and paint: the roles not served end here)
        item_index = self._visible[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(item_index)[column]
        if role == ObjectRole:
            return self._items[item_index]
        item = self._items[item_index]
        presence = item.presence
        compromised = item.record is not None and item.record.state is KeyState.COMPROMISED
        if compromised and role in _COMPROMISED_LOOK:  # the most visible row: red, bold
            if role == Qt.ItemDataRole.ForegroundRole:
                return _MISSING
            if role == Qt.ItemDataRole.FontRole and column in (Column.NAME, Column.STATE):
                return _BOLD
            if role == Qt.ItemDataRole.ToolTipRole and column == Column.STATE:
                return COMPROMISED_ADVICE
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == Column.STATE and is_due(self._items[item_index], self.due_before):
                return _UNMANAGED
            if column == Column.BACKUP and at_risk(self._items[item_index]):
                return _MISSING
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
            if column == Column.BACKUP and at_risk(self._items[item_index]):
                return _BOLD
            if presence is Presence.MISSING and column in (Column.NAME, Column.PRESENCE):
                return _BOLD
            if presence is Presence.UNMANAGED:
                return _ITALIC
        if role == Qt.ItemDataRole.TextAlignmentRole and column == Column.USES:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and column == Column.STATE:
            return self._items[item_index].usage_due or None
        if role == Qt.ItemDataRole.ToolTipRole and column == Column.NAME:
            return self._text(item_index)[column]  # whole, when the column cuts it
        if role == Qt.ItemDataRole.ToolTipRole and column == Column.USES:
            return (
                "Protect uses recorded in the audit log: files and messages signed, files "
                "encrypted, requests, certificates and CRLs."
            )
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
                Presence.PUBLIC_ONLY: "An imported public key: it verifies signatures and is "
                "kept in Keystead's database, not on a token.",
            }[presence]
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return self._text(item_index)[column]
        return None
