"""Tokens page: the tokens present, their flags in words, and logging in and out."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.services.tokens import TokenStatus
from ui.icons import icon
from ui.login import login_to_token
from ui.session import GuiSession

_COLUMNS = ("Label", "Serial", "Manufacturer", "Model", "Slot", "Logged in", "Wrong PINs", "Flags")


class TokensPage(QWidget):
    def __init__(self, session: GuiSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        toolbar = QToolBar(self)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.login_action = QAction(icon("login"), "Log in…", self)
        self.logout_action = QAction(icon("logout"), "Log out", self)
        self.refresh_action = QAction(icon("refresh"), "Refresh", self)
        for action in (self.login_action, self.logout_action, self.refresh_action):
            toolbar.addAction(action)
        layout.addWidget(toolbar)
        self.summary = QLabel(self)
        self.summary.setObjectName("hint")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.module_errors = QLabel(self)
        self.module_errors.setObjectName("errorLine")
        self.module_errors.setWordWrap(True)
        self.module_errors.hide()
        layout.addWidget(self.module_errors)
        self.table = QTableWidget(0, len(_COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.table, 1)
        self._statuses: list[TokenStatus] = []
        self.login_action.triggered.connect(self._login)
        self.logout_action.triggered.connect(self._logout)
        self.refresh_action.triggered.connect(session.refresh_tokens)
        self.table.itemSelectionChanged.connect(self._update_actions)
        self.table.itemDoubleClicked.connect(lambda _: self._login())
        session.tokens_changed.connect(self.show_tokens)
        self._update_actions()

    def show_tokens(self, statuses: list[TokenStatus]) -> None:
        selected = self.selected()
        self._statuses = statuses
        self.table.setRowCount(len(statuses))
        for row, status in enumerate(statuses):
            info = status.info
            values = (
                info.label,
                info.serial,
                info.manufacturer,
                info.model,
                str(info.slot_id),
                "yes" if status.logged_in else "no",
                str(status.pin_failures),
                ", ".join(info.flag_words),
            )
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
            if selected and selected.info.serial == info.serial:
                self.table.selectRow(row)
        logged = sum(1 for s in statuses if s.logged_in)
        self.summary.setText(
            f"{len(statuses)} token(s) present, {logged} logged in. Keys are identified by token "
            "serial and CKA_ID, never by slot number."
            if statuses
            else "No token present. Insert a token, or create the embedded one."
        )
        errors = self.session.module_errors
        self.module_errors.setText("\n".join(f"Module not loaded: {e}" for e in errors.values()))
        self.module_errors.setVisible(bool(errors))
        self._update_actions()

    def selected(self) -> TokenStatus | None:
        rows = self.table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self._statuses):
            return self._statuses[rows[0].row()]
        return None

    def _update_actions(self) -> None:
        status = self.selected()
        self.login_action.setEnabled(bool(status and not status.logged_in))
        self.logout_action.setEnabled(bool(status and status.logged_in))

    def _login(self) -> None:
        status = self.selected()
        if status is not None and not status.logged_in:
            login_to_token(self, self.session, status.info)

    def _logout(self) -> None:
        status = self.selected()
        if status is not None:
            serial = status.info.serial
            self.session.run(
                lambda ws: ws.tokens.logout(serial), lambda _: self.session.refresh_tokens()
            )
