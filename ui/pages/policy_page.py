"""Policy page (security officers): approvals per action class, and the idle-lock time."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.domain.approval import ACTION_TITLES, FLOORS, PolicyRule
from app.domain.roles import Role
from ui.dialogs.operators import IdleLockDialog, RuleDialog
from ui.errors import show_error
from ui.icons import icon
from ui.session import GuiSession
from ui.widgets.form import hint

STRETCH_COLUMN = 1  # "What": the rest of the width


class PolicyPage(QWidget):
    done = Signal(str)
    idle_lock_changed = Signal(int)  # minutes

    def __init__(self, session: GuiSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.rules: list[PolicyRule] = []
        self.idle_minutes = 10
        layout = QVBoxLayout(self)
        toolbar = QToolBar(self)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.edit_action = QAction("Change rule…", self)
        self.idle_action = QAction("Idle lock…", self)
        self.rotate_action = QAction(icon("rotate"), "Rotate workstation key…", self)
        self.rotate_action.setToolTip(
            "Re-key the database under a fresh random key and re-seal every operator's keyslot."
        )
        self.refresh_action = QAction(icon("refresh"), "Refresh", self)
        for qaction, handler in (
            (self.edit_action, self._edit),
            (self.idle_action, self._idle),
            (self.rotate_action, self._rotate),
            (self.refresh_action, self.refresh),
        ):
            qaction.triggered.connect(handler)
            toolbar.addAction(qaction)
        layout.addWidget(toolbar)
        layout.addWidget(
            hint(
                "How many approvers besides the one who starts it each action needs, and which "
                "roles they must hold. Destroy, export, backup, distribution and restore never "
                "go below one approver.",
                self,
            )
        )
        self.idle_label = QLabel(self)
        self.idle_label.setObjectName("idleLabel")
        layout.addWidget(self.idle_label)
        self.table = QTableWidget(0, 4, self)
        self.table.setObjectName("policyTable")
        self.table.setHorizontalHeaderLabels(["Action", "What", "Approvers", "Approver roles"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(STRETCH_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.itemSelectionChanged.connect(self._selection_changed)
        layout.addWidget(self.table)
        session.gate.guard(self.edit_action, "policy.set")
        session.gate.guard(self.idle_action, "workstation.idle-lock")
        session.gate.guard(self.rotate_action, "workstation.rotate-key")
        self._selection_changed()

    def refresh(self) -> None:
        self.session.run(lambda ws: (ws.approvals.rules(), ws.idle_lock_minutes()), self._loaded)

    def _loaded(self, result: tuple[list[PolicyRule], int]) -> None:
        self.rules, self.idle_minutes = result
        self.idle_label.setText(f"Idle lock: after {self.idle_minutes} minute(s) without input.")
        self.table.setRowCount(len(self.rules))
        for row, rule in enumerate(self.rules):
            floor = FLOORS.get(rule.action, 0)
            cells = (
                rule.action,
                ACTION_TITLES.get(rule.action, ""),
                f"{rule.approvals}" + (f" (at least {floor})" if floor else ""),
                ", ".join(r.title for r in Role if r in rule.roles),
            )
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self._selection_changed()

    def selected(self) -> PolicyRule | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.rules):
            return None
        return self.rules[rows[0].row()]

    def _selection_changed(self) -> None:
        self.edit_action.setEnabled(self.selected() is not None)

    def _edit(self) -> None:
        rule = self.selected()
        if rule is None:
            return
        dialog = RuleDialog(rule, self)
        if not dialog.exec():
            return
        approvals, roles = dialog.values()
        action = rule.action

        def finished(_result: object) -> None:
            self.refresh()
            self.done.emit(f"Policy for '{action}' changed.")

        self.session.run(
            lambda ws: ws.approvals.set_rule(action, approvals, roles),
            finished,
            lambda error: show_error(self, error),
        )

    def _idle(self) -> None:
        dialog = IdleLockDialog(self.idle_minutes, self)
        if not dialog.exec():
            return
        minutes = dialog.minutes.value()

        def finished(value: int) -> None:
            self.refresh()
            self.idle_lock_changed.emit(value)
            self.done.emit(f"The workstation locks after {value} idle minute(s).")

        self.session.run(
            lambda ws: ws.set_idle_lock(minutes), finished, lambda error: show_error(self, error)
        )

    def _rotate(self) -> None:
        answer = QMessageBox.question(
            self,
            "Rotate workstation key",
            "Re-key the database under a fresh random key and re-seal every operator's keyslot "
            "to it? Whoever knew the old key learns nothing about the new one. It needs an "
            "approver.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return

        def finished(count: int) -> None:
            self.done.emit(f"Workstation key rotated; {count} keyslot(s) re-sealed.")

        self.session.run(
            lambda ws: ws.rotate_key(), finished, lambda error: show_error(self, error)
        )
