"""Audit page: the entries with SQL filters, a details pane, Verify with a clear banner, export."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelection, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QFileDialog,
    QGridLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.domain.audit import AuditEntry, Report
from app.services.audit_log import AuditFilter, AuditLog
from ui.dialogs.lifecycle import from_qt, to_qt
from ui.errors import show_error
from ui.icons import icon
from ui.models.audit_model import AuditColumn, AuditModel
from ui.session import GuiSession

TAMPER_NEXT_STEPS = (
    "What to do now: stop work on this workstation (do not generate, change or destroy keys). "
    "Export the evidence (Audit → Export JSON) to removable media, lock the workstation and "
    "call your security officer or incident response contact. Do not repair or delete "
    "anything: the damaged entry is the evidence."
)


class AuditPage(QWidget):
    verified = Signal(object)  # (UTC time, head sequence, ok) after each verification

    def __init__(self, session: GuiSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)

        toolbar = QToolBar(self)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.verify_action = QAction(icon("verify"), "Verify", self)
        self.verify_action.setToolTip(
            "Recompute the chain from the first entry, check each "
            "token MAC and the newest signed checkpoint."
        )
        self.checkpoint_action = QAction(icon("checkpoint"), "Checkpoint", self)
        self.checkpoint_action.setToolTip("Sign the chain's head with the audit token now.")
        self.export_csv = QAction(icon("export"), "Export CSV…", self)
        self.export_json = QAction(icon("export"), "Export JSON…", self)
        self.export_json.setToolTip(
            "With hashes, MACs, checkpoints and the public key, for "
            "offline verification (docs/audit-verification.md)."
        )
        for action in (
            self.verify_action,
            self.checkpoint_action,
            self.export_csv,
            self.export_json,
        ):
            toolbar.addAction(action)
        layout.addWidget(toolbar)

        self.banner = QLabel(self)
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        layout.addWidget(self.banner)

        filters = QGridLayout()
        filters.setColumnStretch(1, 1)
        filters.setColumnStretch(3, 1)
        self.use_since = QCheckBox("From", self)
        self.since = QDateTimeEdit(self)
        self.use_until = QCheckBox("Until", self)
        self.until = QDateTimeEdit(self)
        now = to_qt(datetime.now(UTC))
        for edit in (self.since, self.until):
            edit.setDisplayFormat("yyyy-MM-dd HH:mm 'UTC'")
            edit.setCalendarPopup(True)
            edit.setDateTime(now)
            edit.setEnabled(False)
        self.use_since.toggled.connect(self.since.setEnabled)
        self.use_until.toggled.connect(self.until.setEnabled)
        self.operator = QLineEdit(self)
        self.operator.setPlaceholderText("operator")
        self.action = QLineEdit(self)
        self.action.setPlaceholderText("action, e.g. key.destroy")
        self.subject = QLineEdit(self)
        self.subject.setPlaceholderText("subject, e.g. key id or token serial")
        self.key_name = QLineEdit(self)
        self.key_name.setPlaceholderText("key name")
        self.outcome = QComboBox(self)
        self.outcome.addItems(["any outcome", "success", "denied", "failed", "aborted"])
        self.apply = QPushButton("Apply filters", self)
        self.clear = QPushButton("Clear", self)
        filters.addWidget(self.use_since, 0, 0)
        filters.addWidget(self.since, 0, 1)
        filters.addWidget(self.use_until, 0, 2)
        filters.addWidget(self.until, 0, 3)
        filters.addWidget(self.outcome, 0, 4)
        filters.addWidget(self.operator, 1, 0)
        filters.addWidget(self.action, 1, 1)
        filters.addWidget(self.key_name, 1, 2, 1, 2)
        filters.addWidget(self.subject, 1, 4)
        filters.addWidget(self.apply, 0, 5)
        filters.addWidget(self.clear, 1, 5)
        layout.addLayout(filters)
        self.count = QLabel(self)
        self.count.setObjectName("count")
        layout.addWidget(self.count)

        self.model = AuditModel(self._run, self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setTabKeyNavigation(False)
        header = self.table.horizontalHeader()
        # Newest first; the time (and #) columns sort, in SQL.
        header.setSortIndicator(AuditColumn.TIME, Qt.SortOrder.DescendingOrder)
        header.setSortIndicatorShown(True)
        self.table.setSortingEnabled(True)
        header.sortIndicatorChanged.connect(self._sort_changed)
        header.setStretchLastSection(False)
        for column, width in (
            (AuditColumn.SEQ, 56),
            (AuditColumn.TIME, 160),
            (AuditColumn.OPERATORS, 100),
            (AuditColumn.ACTION, 130),
            (AuditColumn.OUTCOME, 80),
            (AuditColumn.SEALED, 60),
        ):
            header.resizeSection(column, width)
        header.setSectionResizeMode(AuditColumn.SUBJECT, QHeaderView.ResizeMode.Stretch)
        self.details = QPlainTextEdit(self)
        self.details.setReadOnly(True)
        self.details.setObjectName("mono")
        self.details.setPlaceholderText("Select an entry to see every field, its hash and MAC.")
        # The entry's details under the table: the table keeps the whole width for its columns.
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.table)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([600, 200])
        layout.addWidget(splitter, 1)

        self.table.selectionModel().selectionChanged.connect(self._selected)
        self.model.loaded.connect(self._update_count)
        self.model.modelReset.connect(self._update_count)
        self.apply.clicked.connect(self.refresh)
        for line in (self.operator, self.action, self.subject, self.key_name):
            line.returnPressed.connect(self.refresh)  # Enter applies the filters
        self.model.head_seen.connect(self._head_seen)
        self._verified: tuple[datetime, int, bool] | None = None  # time, head seq, ok
        self._verify_text = ""
        self.clear.clicked.connect(self._clear_filters)
        self.verify_action.triggered.connect(self.verify)
        self.checkpoint_action.triggered.connect(self.checkpoint)
        self.export_csv.triggered.connect(lambda: self.export("csv"))
        self.export_json.triggered.connect(lambda: self.export("json"))
        self._pending_seq: int | None = None

    def _run(self, job: Callable[[AuditLog], Any], done: Callable[[Any], None]) -> None:
        self.session.run(lambda ws: job(ws.audit), done, lambda e: show_error(self, e))

    # --- filters ---------------------------------------------------------------------------

    def current_filter(self) -> AuditFilter:
        outcome = self.outcome.currentText()
        return AuditFilter(
            since=from_qt(self.since.dateTime()) if self.use_since.isChecked() else None,
            until=from_qt(self.until.dateTime()) if self.use_until.isChecked() else None,
            operator=self.operator.text().strip() or None,
            action=self.action.text().strip() or None,
            subject=self.subject.text().strip() or None,
            outcome=None if outcome == "any outcome" else outcome,
            key_name=self.key_name.text().strip() or None,
            newest_first=self.model.newest_first,
        )

    def refresh(self) -> None:
        self.details.clear()
        self.model.set_filter(self.current_filter())

    def show_failed_logins(self) -> None:
        """The filtered view behind the overview's failed-logins figure."""
        self._clear_filters()
        self.action.setText("token.login")
        self.outcome.setCurrentText("failed")
        self.refresh()

    def _clear_filters(self) -> None:
        for box in (self.use_since, self.use_until):
            box.setChecked(False)
        for edit in (self.operator, self.action, self.subject, self.key_name):
            edit.clear()
        self.outcome.setCurrentIndex(0)
        self.refresh()

    def _update_count(self) -> None:
        self.count.setText(
            f"{self.model.total:,} entries match; {self.model.rowCount():,} "
            "loaded (scroll for more)"
        )
        if self._pending_seq is not None:
            self._reveal(self._pending_seq)

    # --- details ---------------------------------------------------------------------------

    def _selected(self, _new: QItemSelection, _old: QItemSelection) -> None:
        rows = self.table.selectionModel().selectedRows()
        entry = self.model.entry_at(rows[0].row()) if rows else None
        self.details.setPlainText(_describe(entry) if entry else "")

    # --- verify, checkpoint, export --------------------------------------------------------

    def _sort_changed(self, column: int, order: Qt.SortOrder) -> None:
        if column not in (AuditColumn.SEQ, AuditColumn.TIME):  # only time sorts
            header = self.table.horizontalHeader()
            current = (
                Qt.SortOrder.DescendingOrder
                if self.model.newest_first
                else Qt.SortOrder.AscendingOrder
            )
            header.blockSignals(True)
            header.setSortIndicator(AuditColumn.TIME, current)
            header.blockSignals(False)

    def verify(self) -> None:
        self.banner.setText("Verifying the whole chain…")
        self._banner("busy")
        self._run(lambda audit: (audit.verify(), audit.head_seq()), self._verified_done)

    def _verified_done(self, result: tuple[Report, int]) -> None:
        report, head = result
        self._verified = (datetime.now(UTC), head, report.ok)
        self.verified.emit(self._verified)
        self.model.set_bad(report.bad_seq if not report.ok else None)
        self._verify_text = (
            ("✔ " if report.ok else "✖ ")
            + report.summary()
            + (f" {report.detail}" if report.ok and report.detail else "")
            + f" (verified at {self._verified[0]:%Y-%m-%d %H:%M} UTC)"
        )
        if not report.ok:
            self._verify_text += "\n" + TAMPER_NEXT_STEPS
        self.banner.setText(self._verify_text)
        self.banner.setToolTip(report.unmaced_note() if report.ok else "")
        self._banner("ok" if report.ok else "bad")
        if not report.ok and report.bad_seq is not None:
            self._clear_filters()
            self._reveal(report.bad_seq)
        else:
            self.refresh()

    def _head_seen(self, head: int) -> None:
        """Entries added after the last verification make its banner stale."""
        if self._verified is None or not self._verified[2] or head <= self._verified[1]:
            return
        added = head - self._verified[1]
        self.banner.setText(
            f"{self._verify_text}\nStale: {added} entr{'y' if added == 1 else 'ies'} added "
            "since this verification. Verify again."
        )
        self._banner("stale")

    def _reveal(self, seq: int) -> None:
        """Select entry ``seq``, fetching pages until it is loaded."""
        row = self.model.row_of_seq(seq)
        if row >= 0:
            self._pending_seq = None
            self.table.selectRow(row)
            self.table.scrollTo(self.model.index(row, 0))
        elif self.model.canFetchMore():
            self._pending_seq = seq
            self.model.fetchMore()
        else:
            self._pending_seq = seq  # the first page is still on its way

    def _banner(self, state: str) -> None:
        self.banner.setProperty("state", state)
        self.banner.style().unpolish(self.banner)
        self.banner.style().polish(self.banner)
        self.banner.show()

    def checkpoint(self) -> None:
        def done(checkpoint: Any) -> None:
            self.banner.setText(f"Checkpoint {checkpoint.seq} signed by the audit token.")
            self._banner("ok")
            self.refresh()

        self._run(lambda audit: audit.checkpoint("requested"), done)

    def export(self, fmt: str) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self,
            f"Export audit history ({fmt.upper()})",
            str(Path.home() / f"keystead-audit.{fmt}"),
            f"{fmt.upper()} (*.{fmt})",
        )
        if not name:
            return
        path = Path(name)

        def done(count: int) -> None:
            self.banner.setText(f"Exported {count:,} entries to {path}.")
            self._banner("ok")
            self.refresh()

        # The file dialog has asked before replacing an existing file.
        self._run(lambda audit: audit.export(path, fmt, overwrite=True), done)


def _describe(entry: AuditEntry) -> str:
    doc = {
        "seq": entry.seq,
        "time": entry.ts,
        "operators": list(entry.operators),
        "action": entry.action,
        "subject": entry.subject,
        "outcome": entry.outcome,
        "details": entry.details,
        "prev_hash": entry.prev_hash.hex(),
        "entry_hash": entry.entry_hash.hex(),
        "token_mac": entry.mac.hex() if entry.mac else "none (audit token not logged in)",
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)
