"""Inventory page: every managed key and every unmanaged token object, with details."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtCore import QEvent, QItemSelection, QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QSplitter,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.domain.keys import InventoryHead, InventoryItem, KeyRecord, Presence
from app.services.adoption import AdoptionCandidate
from ui.dialogs.adopt import AdoptDialog
from ui.dialogs.generate import GenerateKeyDialog, GenerateRequest
from ui.errors import message, show_error
from ui.icons import icon
from ui.lifecycle_actions import LifecycleActions
from ui.login import login_to_token
from ui.models.inventory_model import (
    Column,
    FilterIndex,
    FilterIndexBuilder,
    InventoryModel,
    Prepared,
    prepare_inventory,
)
from ui.session import GuiSession
from ui.use_actions import UseActions
from ui.widgets.key_detail import KeyDetailPanel, KeyView

if TYPE_CHECKING:
    from app.services.workstation import Workstation

COLUMN_WIDTHS = {
    Column.NAME: 160,
    Column.ALGORITHM: 92,
    Column.SIZE: 104,
    Column.PURPOSE: 104,
    Column.STATE: 120,  # "Compromised" in bold, whole; the longest title elides
    Column.PRESENCE: 150,
    Column.TOKEN: 90,
    Column.IDENTIFIER: 200,
    Column.CREATED: 128,
    Column.CREATED_BY: 90,
    Column.USES: 70,
    Column.BACKUP: 170,
}
# Hidden first when the table is narrow; Name, State and On token always stay.
HIDE_FIRST = (
    Column.CREATED_BY,
    Column.CREATED,
    Column.SIZE,  # the algorithm's name says it
    Column.USES,
    Column.ALGORITHM,
    Column.PURPOSE,
    Column.IDENTIFIER,
    Column.BACKUP,  # the status bar and the Overview count keys not backed up
    Column.TOKEN,
)


# The first screenful at unlock (issue 17's progressive paint): the rows read before every key
# is (a 1600x1000 window shows about 30; the rest of 200 is room to scroll while loading).
HEAD_ROWS = 200
WAITS_FOR_LOAD = "Available when every key is loaded (the table shows only the first keys yet)."


class Head(NamedTuple):
    """The first screenful (``KeyService.inventory_head``) prepared for the model."""

    head: InventoryHead
    prepared: Prepared


def first_screen(
    ws: Workstation, due_before: datetime, now: datetime, column: Column
) -> Head | Prepared:
    """The core job at unlock: the head of the inventory, or the whole inventory prepared when
    it is no longer than a screenful (one step, no "loading" state)."""
    head = ws.keys.inventory_head(HEAD_ROWS, due_before, now)
    if head.total <= len(head.items):
        return prepare_inventory(ws.keys.inventory(), due_before, column)
    return Head(head, prepare_inventory(head.items, due_before, Column.NAME))


class InventoryPage(QWidget):
    loaded = Signal(int)  # rows of the whole inventory, after the first screenful and each load
    due_counted = Signal(int)  # keys due for deactivation, after each refresh
    settled = Signal()  # a load ended (shown, or failed): what waited for the paint may run

    def __init__(self, session: GuiSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)

        toolbar = QToolBar(self)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.generate_action = QAction(icon("generate"), "Generate key…", self)
        self.adopt_action = QAction(icon("adopt"), "Adopt…", self)
        self.refresh_action = QAction(icon("refresh"), "Refresh", self)
        self.adopt_action.setEnabled(False)
        self.adopt_action.setToolTip("Select an unmanaged key to adopt it.")
        self.generate_action.setShortcut(QKeySequence("Ctrl+G"))
        for action in (self.generate_action, self.adopt_action, self.refresh_action):
            toolbar.addAction(action)
        # The lifecycle actions live in the detail panel, the Keys menu and the context menu
        # (the toolbar had no room for them at 1024 px).
        self.lifecycle = LifecycleActions(session, self)
        toolbar.addSeparator()
        self.use = UseActions(session, self)
        self.use.used.connect(lambda _text: self.session.keys_changed.emit())
        toolbar.addWidget(self.use.button)
        layout.addWidget(toolbar)

        # While only the first screenful is in (issue 17): said in the page, not only in the
        # status bar, so that nobody concludes from the partial table that a key is not there.
        self.loading = QLabel(self)
        self.loading.setObjectName("banner")  # (resources/keystead.qss: busy / bad)
        self.loading.setWordWrap(True)
        self.loading.hide()
        layout.addWidget(self.loading)

        filter_row = QHBoxLayout()
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter by name, algorithm, state, token, KCV, fingerprint…")
        self.filter.setClearButtonEnabled(True)
        self.count = QLabel(self)
        self.count.setObjectName("count")
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(160)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.due_only = QCheckBox("Due only", self)
        self.due_only.setToolTip(
            "Live keys whose deactivation date is within the policy's warning window, or past."
        )
        filter_row.addWidget(self.filter, 1)
        filter_row.addWidget(self.due_only)
        self.not_backed_up = QCheckBox("Not backed up", self)
        self.not_backed_up.setObjectName("notBackedUp")
        self.not_backed_up.setToolTip(
            "Backup-able keys that are in no verified backup: a lost token loses them."
        )
        filter_row.addWidget(self.not_backed_up)
        filter_row.addWidget(self.progress)
        filter_row.addWidget(self.count)
        layout.addLayout(filter_row)

        self.model = InventoryModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.NAME, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        # Cut long names in the middle: names that differ only at the end ("…-2025" and
        # "…-2026") stayed apart (the new-user trial saw every row cut to one prefix).
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self._done_banner_goes_with_the_next_change()
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setStretchLastSection(True)
        header.setSectionsMovable(True)
        for column, width in COLUMN_WIDTHS.items():
            header.resizeSection(column, width)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        # What tells the officer what a key is and whether it is usable comes first.
        for visual, column in enumerate((Column.NAME, Column.STATE, Column.PRESENCE)):
            header.moveSection(header.visualIndex(column), visual)
        self.table.viewport().installEventFilter(self)

        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.detail = KeyDetailPanel(self.lifecycle.all(), self)
        self.empty_hint = QLabel(
            "No managed keys yet. Generate a key on a logged-in token, or log in to a token "
            "(Tokens page) to see the keys already on it and adopt them.",
            self,
        )
        self.empty_hint.setObjectName("hint")
        self.empty_hint.setWordWrap(True)
        self.empty_hint.hide()
        layout.addWidget(self.empty_hint)
        self.splitter = splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.table)
        splitter.addWidget(self.detail)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([1000, 360])
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)

        self._pending_select: str | None = None
        self._complete = False  # the model held a whole inventory at least once
        self._head_requested = False  # the first screenful was asked for (once per page)
        self._full_loads = 0  # whole-inventory jobs submitted and not answered yet
        self._after_load: list[Callable[[], None]] = []  # what waits for the whole list
        self._tips: dict[QWidget, str] = {
            w: w.toolTip()
            for w in (self.filter, self.due_only, self.not_backed_up, self.table.horizontalHeader())
        }
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(120)
        self._filter_timer.timeout.connect(self._apply_filter)
        self.filter.textChanged.connect(lambda _: self._filter_timer.start())
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.model.modelReset.connect(self._update_count)
        self.model.layoutChanged.connect(self._update_count)
        # A filter or a reload that hides the selected key must not leave it as the target.
        self.model.modelReset.connect(self._drop_hidden_selection)
        self.model.layoutChanged.connect(self._drop_hidden_selection)
        self.status_message = self.lifecycle.feedback
        self.generate_action.triggered.connect(self.open_generate)
        self.adopt_action.triggered.connect(lambda: self.adopt(self.selected_item()))
        self.refresh_action.triggered.connect(self.refresh)
        self.detail.adopt_requested.connect(self.adopt)
        self.detail.key_link_activated.connect(self.jump_to_key)
        self.lifecycle.changed.connect(self._key_changed)
        self.due_only.toggled.connect(self.model.set_due_only)
        self.not_backed_up.toggled.connect(self.model.set_at_risk_only)
        session.keys_changed.connect(self.refresh)
        # A bound method, not a lambda: a lambda held by the session's signal keeps the page,
        # its 100,000 rows and the locked window alive after a lock (issue 17).
        session.tokens_changed.connect(self._tokens_changed)

    # --- loading ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Load the inventory on the core thread. The first time (at unlock), in two steps:
        the first screenful and the true totals (``first_screen``), painted at once, then the
        whole inventory, which replaces them in one reset keeping selection and scroll (the
        same first rows in the same order). Until then the page says so and sorting,
        filtering and searching wait (``WAITS_FOR_LOAD``)."""
        self.progress.show()
        now = datetime.now(UTC)
        due_before = now + self.session.due_warning
        column = self.model.sort_column
        # (A view restored sorted by another column loads in one step, as before.)
        if not self._complete and not self._head_requested and self.sorted_by_name:
            self._head_requested = True
            self.session.run(
                lambda ws: first_screen(ws, due_before, now, column),
                self._first_screen_loaded,
                self._load_failed,
            )
            return
        self._load_all(due_before, column)

    def _load_all(self, due_before: datetime, column: Column) -> None:
        """The inventory and every per-row fact the page shows, on the core thread."""
        self._full_loads += 1
        self.session.run(
            lambda ws: prepare_inventory(ws.keys.inventory(), due_before, column),
            self._items_loaded,
            self._load_failed,
        )

    def _tokens_changed(self, _statuses: list[object]) -> None:
        self.refresh()

    @property
    def complete(self) -> bool:
        """True when the table holds the whole inventory (not only its first screenful)."""
        return self._complete and not self.model.partial

    def _first_screen_loaded(self, result: Head | Prepared) -> None:
        if isinstance(result, Prepared):  # no longer than a screenful: the whole inventory
            self._full_loads += 1  # (counted as the whole-inventory job it is)
            self._items_loaded(result)
            return
        if self._full_loads == 0:  # the whole list next (unless a refresh already asked)
            self._load_all(result.prepared.due_before or datetime.now(UTC), Column.NAME)
        if self._complete:  # a whole list arrived first: nothing partial over it
            return
        self.model.due_before = result.prepared.due_before
        self.model.set_items(result.prepared.items, result.prepared, head=result.head)
        self._show_loading()
        self.loaded.emit(self.model.total)
        self.due_counted.emit(self.model.due_count)

    def _done_banner_goes_with_the_next_change(self) -> None:
        """The "every key is in" banner is hidden by the officer's next change of the view
        (filter, sort, "Due only", "Not backed up"): the rows move then anyway."""

        def retire(*_: object) -> None:
            if self.loading.property("state") == "ok":
                self.loading.hide()

        self.filter.textChanged.connect(retire)
        self.due_only.toggled.connect(retire)
        self.not_backed_up.toggled.connect(retire)
        self.table.horizontalHeader().sortIndicatorChanged.connect(retire)

    def _show_loading(self, failed: str = "") -> None:
        """Say that the table holds only the first keys, and refuse what needs them all."""
        shown, total = self.model.rowCount(), self.model.total
        if failed:
            text = (
                f"The inventory did not load completely: {failed} Only the first {shown:,} "
                f"of {total:,} keys are shown; the others are not missing."
            )
        else:
            text = (
                f"Loading keys… the first {shown:,} of {total:,} are shown. Sorting, "
                "filtering and searching start when every key is in."
            )
        self.loading.setText(text)
        self.loading.setProperty("state", "bad" if failed else "busy")
        self.loading.style().unpolish(self.loading)
        self.loading.style().polish(self.loading)
        self.loading.show()
        self._set_whole_list_controls(False)

    def _set_whole_list_controls(self, enabled: bool) -> None:
        """Filter box, "Due only", "Not backed up" and the sortable header: on, or off with
        a tooltip saying they wait for the whole inventory."""
        header = self.table.horizontalHeader()
        for widget in (self.filter, self.due_only, self.not_backed_up, header):
            widget.setEnabled(True)  # (the header only stops taking clicks, below)
            if widget is not header:
                widget.setEnabled(enabled)
            widget.setToolTip(self._tips[widget] if enabled else WAITS_FOR_LOAD)
        header.setSectionsClickable(enabled)

    @property
    def sorted_by_name(self) -> bool:
        """The table's order is the first screenful's (Name, ascending)."""
        return (
            self.model.sort_column is Column.NAME
            and self.model.sort_order == Qt.SortOrder.AscendingOrder
        )

    def _when_complete(self, act: Callable[[], None]) -> None:
        """Run ``act`` now if the whole inventory is in, else right after it arrives."""
        if self.complete:
            act()
        else:
            self._after_load.append(act)

    def _items_loaded(self, prepared: Prepared) -> None:
        items = prepared.items
        self._full_loads = max(0, self._full_loads - 1)
        if self._full_loads == 0:
            self.progress.hide()
        selected = self.selected_item()
        selected_id = self._pending_select or (
            selected.record.id if selected and selected.record else None
        )
        self._pending_select = None
        due_before = prepared.due_before
        self.model.due_before = due_before
        scroll = self.table.verticalScrollBar().value() if self.model.partial else None
        self.model.set_items(items, prepared)
        if scroll is not None:  # the same first rows in the same order: stay where one was
            self.table.verticalScrollBar().setValue(scroll)
        if selected_id:
            self.select_key(selected_id)
        first = not self._complete
        self._complete = True
        if first:
            if self.loading.isVisible():
                # Said, and left in place until the officer next changes the view: hidden
                # now, every row would move up under a click (outside tester, attack2 A9).
                self.loading.setText(
                    f"Every key is in ({len(items):,}): sorting, filtering and searching are on."
                )
                self.loading.setProperty("state", "ok")
                self.loading.style().unpolish(self.loading)
                self.loading.style().polish(self.loading)
            self._set_whole_list_controls(True)
        waiting, self._after_load = self._after_load, []
        for act in waiting:
            act()
        self.loaded.emit(len(items))
        self.due_counted.emit(self.model.due_count)
        self.settled.emit()
        # Paint first; build the filter index on the core thread afterwards (queued after
        # whatever ``settled`` started, e.g. the deferred integrity checks).
        self._index_step(FilterIndexBuilder(items, due_before), None)

    def _index_step(self, builder: FilterIndexBuilder, index: FilterIndex | None) -> None:
        """One step of the filter index on the core thread, the next submitted from here (the
        GUI thread has the GIL between steps); dropped when newer items are shown."""
        if index is not None:
            self.model.set_filter_index(builder.items, index)
        elif self.model.holds(builder.items):
            self.session.run(
                lambda _ws: builder.step(), lambda done: self._index_step(builder, done)
            )

    def _load_failed(self, error: BaseException) -> None:
        self._full_loads = max(0, self._full_loads - 1)
        self.progress.hide()
        self.count.setText("Inventory not loaded: " + message(error))
        if self.model.partial:  # the first keys stay, said to be only those
            self._show_loading(failed=message(error))
        self.settled.emit()

    def _apply_filter(self) -> None:
        self.model.set_filter(self.filter.text())

    def _update_count(self) -> None:
        counts = self.model.presence_counts()
        text = f"{self.model.rowCount():,} of {self.model.total:,} shown"
        if counts.get(Presence.MISSING):
            text += f" · {counts[Presence.MISSING]} missing on token"
        if counts.get(Presence.ABSENT):
            text += f" · {counts[Presence.ABSENT]} on a token not attached"
        if counts.get(Presence.UNMANAGED):
            text += f" · {counts[Presence.UNMANAGED]} unmanaged"
        self.count.setText(text)
        self.empty_hint.setVisible(self.model.total == 0)

    # --- selection -------------------------------------------------------------------------

    def selected_item(self) -> InventoryItem | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.item_at(rows[0].row()) if rows else None

    def select_key(self, key_id: str) -> bool:
        """Select the key's row if it is shown (False if it is not, or not loaded yet)."""
        row = self.model.row_of_key(key_id)
        if row >= 0:
            self.table.selectRow(row)
            self.table.scrollTo(self.model.index(row, 0))
        return row >= 0

    def show_filtered(
        self, text: str = "", due_only: bool = False, not_backed_up: bool = False
    ) -> None:
        """The filtered views behind the overview's figures (after the whole inventory is
        in: never applied to the first screenful as if it were every key)."""
        if not self.complete:
            self._when_complete(lambda: self.show_filtered(text, due_only, not_backed_up))
            return
        self.filter.setText(text)
        self.model.set_filter(text)
        self.due_only.setChecked(due_only)
        self.not_backed_up.setChecked(not_backed_up)

    def jump_to_key(self, key_id: str) -> None:
        """Select a key from the lineage, clearing filters that hide it (after the whole
        inventory is in)."""
        if not self.complete:
            self._when_complete(lambda: self.jump_to_key(key_id))
            return
        if not self.select_key(key_id):
            self.filter.clear()
            self.due_only.setChecked(False)
            self.not_backed_up.setChecked(False)
            self.model.set_filter("")
            self.select_key(key_id)

    def _key_changed(self, key: KeyRecord) -> None:
        self._pending_select = key.id
        self.session.keys_changed.emit()

    def _context_menu(self, position: QPoint) -> None:
        item = self.selected_item()
        if item is None:
            return
        menu = QMenu(self)
        if item.record is not None:
            for action in self.lifecycle.all():
                menu.addAction(action)
            menu.addSeparator()
            menu.addMenu(self.use.menu)
        else:
            menu.addAction(self.adopt_action)
        menu.exec(self.table.viewport().mapToGlobal(position))

    def _drop_hidden_selection(self) -> None:
        """After a filter, sort or reload: if the shown key is no longer the selected row
        (hidden, or gone), clear the panel and the actions."""
        if self.selected_item() is None and (
            self.detail.item is not None or self.lifecycle.key is not None
        ):
            self._show_selection()

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self._show_selection()

    def _show_selection(self) -> None:
        item = self.selected_item()
        self.adopt_action.setEnabled(bool(item and item.presence is Presence.UNMANAGED))
        self.lifecycle.set_key(item.record if item else None, item.presence if item else None)
        self.use.set_key(item.record if item else None)
        if item is None:
            self.detail.clear()
            return
        self.detail.show_item(item)
        if item.record is not None:
            key_id = item.record.id
            self.session.run(
                lambda ws: KeyView(
                    ws.keys.details(key_id),
                    ws.lifecycle.lineage(key_id),
                    ws.lifecycle.history(key_id),
                    ws.distribution.records(key_id),
                    ws.certs.listing(key_id),
                ),
                self._view_loaded,
                lambda error: self.detail.presence.setText(message(error)),
            )

    def _view_loaded(self, view: KeyView) -> None:
        self.detail.show_view(view)
        key = self.lifecycle.key
        if key is not None and key.id == view.details.record.id:
            self.lifecycle.set_key(key, view.details.presence)  # checked on the token just now

    # --- layout ----------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table.viewport() and event.type() == QEvent.Type.Resize:
            self.fit_columns()
        return super().eventFilter(watched, event)

    def fit_columns(self) -> None:
        """Hide the least important columns until the rest fit the table's width."""
        header = self.table.horizontalHeader()
        available = self.table.viewport().width()
        # Nominal widths: the stretched last section's size would feed back into the sum.
        total = sum(COLUMN_WIDTHS.values())
        hide: set[Column] = set()
        for column in HIDE_FIRST:
            if total <= available:
                break
            total -= COLUMN_WIDTHS[column]
            hide.add(column)
        for column in Column:
            if header.isSectionHidden(column) != (column in hide):
                header.setSectionHidden(column, column in hide)

    # --- actions ---------------------------------------------------------------------------

    def open_generate(self) -> None:
        present = list(self.session.tokens)
        dialog = GenerateKeyDialog([s.info for s in present], self)
        dialog.setWindowIcon(QIcon(icon("generate")))

        def submit(request: GenerateRequest) -> None:
            status = next(s for s in present if s.info.serial == request.token_serial)
            if status.logged_in:
                self._generate(dialog, request)
                return
            dialog.set_busy(False)
            login_to_token(
                dialog, self.session, status.info, then=lambda: self._generate(dialog, request)
            )

        dialog.submitted.connect(submit)
        dialog.open()

    def _generate(self, dialog: GenerateKeyDialog, request: GenerateRequest) -> None:
        dialog.set_busy(True)

        def done(key: KeyRecord) -> None:
            dialog.accept()
            self._pending_select = key.id
            self.session.keys_changed.emit()

        self.session.run(
            lambda ws: ws.keys.generate(
                request.token_serial,
                request.algorithm,
                request.name,
                request.purpose,
                request.backup_able,
                allow_wider=request.allow_wider,
            ),
            done,
            lambda error: dialog.failed(message(error)),
        )

    def adopt(self, item: InventoryItem | None) -> None:
        """Show what adopting the selected unmanaged key means (live attributes, purpose,
        exposure), then adopt it; the panel then shows the managed key."""
        if item is None or item.token_object is None:
            return
        obj = item.token_object
        serial, cka_id, identifier = obj.token_serial, obj.cka_id, obj.identifier or None
        self.session.run(
            lambda ws: ws.keys.adoption_candidate(serial, cka_id, identifier=identifier),
            self._ask_adopt,
            lambda error: show_error(self, error),
        )

    def _ask_adopt(self, candidate: AdoptionCandidate) -> None:
        self.adopt_dialog = AdoptDialog(candidate, self)
        self.lifecycle.run_adopt(self.adopt_dialog)
