"""Backup page: the backups this workstation made and verified, the removable media mounted
now, and the custodians holding shares; create (the wizard), verify or drill, and restore.
Every token, database and medium call runs on the core thread."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.backup.media import Volume
from app.services.backup import KekSecret, RestoreReport, VerifyReport
from app.storage.backups import BackupRecord
from ui.dialogs.approval import shown
from ui.dialogs.backup_open import OpenBackupDialog
from ui.dialogs.backup_wizard import BackupWizard, size_text
from ui.errors import show_error
from ui.icons import icon
from ui.session import GuiSession


def _table(columns: list[str], name: str, parent: QWidget) -> QTableWidget:
    table = QTableWidget(0, len(columns), parent)
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(columns)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().hide()
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def _fill(table: QTableWidget, rows: Sequence[tuple[str, ...]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(shown(text))
            item.setToolTip(shown(text))  # a long directory is cut in its column
            table.setItem(r, c, item)


def when_text(stamp: str) -> str:
    """'2026-03-01 09:00 UTC' from a stored UTC time text."""
    return stamp[:16].replace("T", " ") + " UTC" if stamp else ""


def protection_text(record: BackupRecord) -> str:
    parts = []
    if record.custodians:
        parts.append(f"{record.threshold} of {len(record.custodians)} custodians")
    if record.passphrase:
        parts.append("passphrase")
    return " + ".join(parts)


class BackupPage(QWidget):
    done = Signal(str)  # for the status bar

    def __init__(self, session: GuiSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.records: list[BackupRecord] = []
        self.volumes: list[Volume] = []
        self.wizard: BackupWizard | None = None
        layout = QVBoxLayout(self)
        toolbar = QToolBar(self)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.create_action = QAction(icon("add"), "Back up keys…", self)
        self.create_action.setObjectName("createBackup")
        self.verify_action = QAction("Verify / drill…", self)
        self.restore_action = QAction("Restore…", self)
        self.refresh_action = QAction(icon("refresh"), "Refresh", self)
        for qaction, handler in (
            (self.create_action, self.create_backup),
            (self.verify_action, self.verify_backup),
            (self.restore_action, self.restore_backup),
            (self.refresh_action, self.refresh),
        ):
            qaction.triggered.connect(handler)
            toolbar.addAction(qaction)
        layout.addWidget(toolbar)
        self.coverage = QLabel(self)
        self.coverage.setObjectName("backupCoverage")
        self.coverage.setWordWrap(True)
        layout.addWidget(self.coverage)
        self.tabs = QTabWidget(self)
        self.backups_table = _table(
            ["Gen.", "Made", "Keys", "Protection", "Medium", "Verified", "Directory"],
            "backupsTable",
            self,
        )
        self.media_table = _table(
            ["Label", "File system", "Free", "Size", "Device", "Mounted at", "Backups on it"],
            "mediaTable",
            self,
        )
        self.custodians_table = _table(
            ["Custodian", "Holds a share of", "Newest generation"], "custodiansTable", self
        )
        self.tabs.addTab(self.backups_table, "Backups")
        self.tabs.addTab(self.media_table, "Removable media")
        self.tabs.addTab(self.custodians_table, "Custodians")
        layout.addWidget(self.tabs, 1)
        gate = session.gate
        gate.guard(self.create_action, "backup.create")
        gate.guard(self.restore_action, "backup.restore")

    # --- data -------------------------------------------------------------------------------

    def refresh(self) -> None:
        from app.backup.media import removable_volumes

        def load(ws: Any) -> tuple[list[BackupRecord], list[Volume], tuple[int, int]]:
            return ws.backup.backups(), removable_volumes(), ws.backup.coverage()

        self.session.run(load, self._loaded, lambda error: show_error(self, error))

    def _loaded(self, result: tuple[list[BackupRecord], list[Volume], tuple[int, int]]) -> None:
        self.records, self.volumes, (at_risk, live) = result
        _fill(
            self.backups_table,
            [
                (
                    str(r.generation),
                    when_text(r.created_at),
                    str(r.keys),
                    protection_text(r),
                    r.volume_label or r.volume_uuid or "(a directory)",
                    when_text(r.verified_at),
                    r.directory,
                )
                for r in reversed(self.records)
            ],
        )
        rows = []
        for v in self.volumes:
            held = [
                str(r.generation)
                for r in self.records
                if (v.uuid and r.volume_uuid == v.uuid)
                or Path(r.directory).is_relative_to(v.mountpoint)
            ]
            rows.append(
                (
                    v.label or "(no label)",
                    v.fstype,
                    size_text(v.free_bytes),
                    size_text(v.total_bytes),
                    v.device,
                    v.mountpoint,
                    ", ".join(f"gen. {g}" for g in held) or "none recorded",
                )
            )
        _fill(self.media_table, rows)
        custodians: dict[str, list[int]] = {}
        for r in self.records:
            for name in r.custodians:
                custodians.setdefault(name, []).append(r.generation)
        _fill(
            self.custodians_table,
            [
                (name, ", ".join(f"gen. {g}" for g in gens), str(max(gens)))
                for name, gens in sorted(custodians.items())
            ],
        )
        if at_risk:
            self.coverage.setObjectName("warningLine")
            self.coverage.setText(
                f"{at_risk} of {live} backup-able key(s) are in no verified backup: a lost "
                "token loses them. Back them up."
            )
        else:
            self.coverage.setObjectName("hint")
            self.coverage.setText(
                f"Every backup-able key ({live}) is in a verified backup."
                if live
                else "No backup-able keys yet."
            )
        self.coverage.style().unpolish(self.coverage)
        self.coverage.style().polish(self.coverage)

    def selected(self) -> BackupRecord | None:
        rows = self.backups_table.selectionModel().selectedRows()
        if not rows:
            return None
        ordered = list(reversed(self.records))
        return ordered[rows[0].row()] if rows[0].row() < len(ordered) else None

    def _tokens(self) -> list[tuple[str, str]]:
        return [
            (s.info.serial, f"{s.info.label} (serial {s.info.serial})")
            for s in self.session.tokens
            if s.logged_in
        ]

    # --- actions ----------------------------------------------------------------------------

    def create_backup(self) -> BackupWizard:
        wizard = BackupWizard(self.session, self)
        self.wizard = wizard
        wizard.backed_up.connect(self._backed_up)
        wizard.setModal(True)
        wizard.show()
        return wizard

    def _backed_up(self, created: Any) -> None:
        self.refresh()
        self.session.keys_changed.emit()
        self.done.emit(
            f"Backup generation {created.manifest.generation} written and verified "
            f"({len(created.manifest.keys)} keys)."
        )

    def open_dialog(self, restore: bool) -> OpenBackupDialog:
        record = self.selected()
        return OpenBackupDialog(self._tokens(), record.directory if record else "", restore, self)

    def verify_backup(self) -> None:
        dialog = self.open_dialog(restore=False)
        if dialog.exec():
            self.run_verify(*dialog.values()[:3])

    def run_verify(self, directory: Path, token: str | None, secret: KekSecret | None) -> None:
        self.session.run(
            lambda ws: ws.backup.verify(directory, secret, token),
            self._verified,
            lambda error: show_error(self, error),
        )

    def _verified(self, report: VerifyReport) -> None:
        manifest = report.manifest
        lines = [
            f"Backup generation {manifest.generation} ({manifest.backup_id}): the signature, "
            f"every file's SHA-256 and the structure are correct; {len(manifest.keys)} key(s).",
            f"Signed by key {manifest.signer_fingerprint}"
            + (" (this workstation's)." if report.signer_known else "."),
        ]
        if report.kek_checked:
            lines.append("The KEK check value matches and the sealed files open.")
        if report.drilled:
            lines.append(
                f"Drill: {report.drilled} key(s) unwrapped on the token, KCVs equal, destroyed."
            )
        self.last_report = "\n".join(lines)
        self.done.emit(lines[0])
        QMessageBox.information(self, "Backup verified", html.escape(self.last_report))

    def restore_backup(self) -> None:
        dialog = self.open_dialog(restore=True)
        if dialog.exec():
            directory, token, secret, override = dialog.values()
            if token is not None and secret is not None:  # values() refuses otherwise
                self.run_restore(directory, token, secret, override)

    def run_restore(
        self, directory: Path, token: str, secret: KekSecret, override: bool = False
    ) -> None:
        self.session.run(
            lambda ws: ws.backup.restore(directory, secret, token, override_generation=override),
            self._restored,
            lambda error: show_error(self, error),
        )

    def _restored(self, report: RestoreReport) -> None:
        self.refresh()
        self.session.keys_changed.emit()
        lines = [
            f"Restored {len(report.restored)} key(s) from backup generation "
            f"{report.manifest.generation}; {report.audit_entries} audit entries kept, verified."
        ]
        lines += [
            f"Restored '{k.name}', which was missing on its token; its record now points at "
            f"token '{k.token_label}'."
            for k in report.rebound
        ]
        lines += [f"Not restored: {s.name}: {s.reason}." for s in report.skipped]
        self.last_report = "\n".join(lines)
        self.done.emit(lines[0])
        if report.incomplete:  # a key was left out for a reason someone must act on
            QMessageBox.warning(self, "Restore incomplete", self.last_report)
        else:
            QMessageBox.information(self, "Restore finished", self.last_report)
