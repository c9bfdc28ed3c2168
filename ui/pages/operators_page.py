"""Operators page (security officers): add, roles, disable / enable, reset passphrase, remove;
and, for everyone, "Change my passphrase". Each change runs on the core thread and asks for
approvals through the approval dialog when the policy says so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.domain.roles import Role
from app.services.workstation import Workstation
from app.storage.operators import OperatorRecord
from ui.dialogs.approval import shown
from ui.dialogs.operators import AddOperatorDialog, PassphraseDialog, RolesDialog
from ui.errors import show_error
from ui.icons import icon
from ui.session import GuiSession

STRETCH_COLUMN = 3  # "Added by": the rest of the width


def _roles_text(roles: frozenset[Role]) -> str:
    return ", ".join(r.title for r in Role if r in roles)


class OperatorsPage(QWidget):
    done = Signal(str)  # what was changed, for the status bar

    def __init__(self, session: GuiSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.records: list[OperatorRecord] = []
        layout = QVBoxLayout(self)
        toolbar = QToolBar(self)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.add_action = QAction(icon("add"), "Add operator…", self)
        self.add_action.setObjectName("addOperator")
        self.roles_action = QAction("Roles…", self)
        self.disable_action = QAction("Disable", self)
        self.enable_action = QAction("Enable…", self)
        self.reset_action = QAction("Reset passphrase…", self)
        self.remove_action = QAction("Remove…", self)
        self.own_action = QAction("Change my passphrase…", self)
        self.refresh_action = QAction(icon("refresh"), "Refresh", self)
        for qaction, handler in (
            (self.add_action, self._add),
            (self.roles_action, self._roles),
            (self.disable_action, self._disable),
            (self.enable_action, self._enable),
            (self.reset_action, self._reset),
            (self.remove_action, self._remove),
            (self.own_action, self._own),
            (self.refresh_action, self.refresh),
        ):
            qaction.triggered.connect(handler)
            toolbar.addAction(qaction)
        layout.addWidget(toolbar)
        self.table = QTableWidget(0, 4, self)
        self.table.setObjectName("operatorsTable")
        self.table.setHorizontalHeaderLabels(["Operator", "Roles", "State", "Added by"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(STRETCH_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.itemSelectionChanged.connect(self._selection_changed)
        layout.addWidget(self.table)
        gate = session.gate
        for qaction, action in (
            (self.add_action, "operator.add"),
            (self.roles_action, "operator.roles"),
            (self.disable_action, "operator.disable"),
            (self.enable_action, "operator.enable"),
            (self.reset_action, "operator.reset-passphrase"),
            (self.remove_action, "operator.remove"),
        ):
            gate.guard(qaction, action)
        self._selection_changed()

    # --- data ------------------------------------------------------------------------------

    def refresh(self) -> None:
        self.session.run(lambda ws: ws.roster.list(), self._loaded)

    def _loaded(self, records: list[OperatorRecord]) -> None:
        self.records = records
        self.table.setRowCount(len(records))
        for row, record in enumerate(records):
            state = "enabled" if record.enabled else "disabled"
            for column, text in enumerate(
                (shown(record.name), _roles_text(record.roles), state, shown(record.created_by))
            ):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self._selection_changed()

    def selected(self) -> OperatorRecord | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.records):
            return None
        return self.records[rows[0].row()]

    def select(self, name: str) -> None:
        for row, record in enumerate(self.records):
            if record.name == name:
                self.table.selectRow(row)

    def _selection_changed(self) -> None:
        record = self.selected()
        picked = record is not None
        self.roles_action.setEnabled(picked)
        self.disable_action.setEnabled(picked and record is not None and record.enabled)
        self.enable_action.setEnabled(picked and record is not None and not record.enabled)
        self.reset_action.setEnabled(picked and record is not None and record.enabled)
        self.remove_action.setEnabled(picked)

    # --- changes ---------------------------------------------------------------------------

    def _submit(self, job: Callable[[Workstation], Any], done: str) -> None:
        def finished(_result: object) -> None:
            self.refresh()
            self.session.refresh_roles()
            self.done.emit(done)

        self.session.run(job, finished, lambda error: show_error(self, error))

    def _add(self) -> None:
        dialog = AddOperatorDialog(self)
        if not dialog.exec():
            return
        name, roles, passphrase, confirmation = dialog.values()
        self._submit(
            lambda ws: ws.roster.add(name, roles, passphrase, confirmation),
            f"Operator '{name}' added.",
        )

    def _roles(self) -> None:
        record = self.selected()
        if record is None:
            return
        dialog = RolesDialog(record.name, record.roles, self)
        if not dialog.exec():
            return
        roles, name = dialog.roles(), record.name
        self._submit(lambda ws: ws.roster.set_roles(name, roles), f"Roles of '{name}' changed.")

    def _disable(self) -> None:
        record = self.selected()
        if record is None:
            return
        name = record.name
        self._submit(lambda ws: ws.roster.disable(name), f"'{name}' disabled.")

    def _enable(self) -> None:
        record = self.selected()
        if record is None:
            return
        dialog = PassphraseDialog(record.name, own=False, parent=self)
        if not dialog.exec():
            return
        _current, passphrase, confirmation = dialog.values()
        name = record.name
        self._submit(
            lambda ws: ws.roster.enable(name, passphrase, confirmation), f"'{name}' enabled."
        )

    def _reset(self) -> None:
        record = self.selected()
        if record is None:
            return
        dialog = PassphraseDialog(record.name, own=False, parent=self)
        if not dialog.exec():
            return
        _current, passphrase, confirmation = dialog.values()
        name = record.name
        self._submit(
            lambda ws: ws.roster.reset_passphrase(name, passphrase, confirmation),
            f"The passphrase of '{name}' was reset.",
        )

    def _remove(self) -> None:
        record = self.selected()
        if record is None:
            return
        answer = QMessageBox.question(
            self,
            "Remove operator",
            f"Remove '{shown(record.name)}'? Their keyslot is deleted at once; the record stays "
            "for the audit history.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        name = record.name
        self._submit(lambda ws: ws.roster.remove(name), f"'{name}' removed.")

    def _own(self) -> None:
        dialog = PassphraseDialog(self.session.operator, own=True, parent=self)
        if not dialog.exec():
            return
        current, passphrase, confirmation = dialog.values()
        self._submit(
            lambda ws: ws.roster.change_own_passphrase(current, passphrase, confirmation),
            "Your passphrase was changed.",
        )
