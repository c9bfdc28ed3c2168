"""Tokens page: modules and their tokens as a tree, a token's details, mechanisms and probed
capabilities, and token administration (each step audited by the core)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QAction, QBrush, QColor, QIcon, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolBar,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.hsm.capabilities import Capabilities
from app.hsm.mechanisms import MechanismRow, filter_rows
from app.hsm.p11kit import RegisteredModule
from app.services.token_inspect import ModuleRow, TokenView
from app.services.tokens import TokenStatus
from app.services.workstation import Workstation
from ui.dialogs.token_admin import (
    CreateTokenDialog,
    InitTokenDialog,
    PinDialog,
    PinMode,
    RebindDialog,
    RemoveAuditModuleDialog,
)
from ui.errors import show_error
from ui.icons import icon
from ui.login import login_to_token
from ui.session import GuiSession
from ui.widgets.form import heading, hint

_COLUMNS = ("Module / token", "Serial", "Model", "Logged in", "Wrong PINs", "Flags")
_ALARM_FLAGS = (
    "user PIN count low",
    "user PIN locked",
    "user PIN final try",
    "user PIN to be changed",
    "SO PIN locked",
    "SO PIN final try",
    "SO PIN to be changed",
)
_WARN = QBrush(QColor("#b3261e"))


@dataclass(frozen=True)
class _Snapshot:
    modules: list[ModuleRow]
    offered: list[RegisteredModule]
    statuses: list[TokenStatus]
    rescan_pending: bool


def _snapshot(ws: Workstation) -> _Snapshot:
    return _Snapshot(
        ws.inspect.modules(),
        ws.inspect.offered_modules(),
        ws.tokens.statuses(),
        ws.tokens.rescan_pending,
    )


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
        self.add_module_action = QAction(icon("add"), "Add module…", self)
        self.remove_module_action = QAction("Remove module", self)
        self.create_action = QAction(icon("add"), "New embedded token…", self)
        self.rebind_action = QAction(icon("adopt"), "Replacement keys…", self)
        self.rebind_action.setToolTip(
            "Find keys whose token was replaced, by KCV or public key, and re-bind them"
        )
        self.init_action = QAction(icon("erase"), "Initialise token…", self)
        self.init_pin_action = QAction(icon("pin"), "Set user PIN (SO)…", self)
        self.change_pin_action = QAction(icon("pin"), "Change user PIN…", self)
        self.change_so_pin_action = QAction(icon("pin"), "Change SO PIN…", self)
        for action in (self.login_action, self.logout_action, self.refresh_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        # Module and PIN actions are drop-downs, so every toolbar entry stays visible at
        # 1024 px (a flat row overflowed: Initialise and PINs went behind the » button).
        self.module_menu = QMenu(self)
        for action in (self.add_module_action, self.remove_module_action, self.create_action):
            self.module_menu.addAction(action)
        self.module_button = self._menu_button("Modules", icon("add"), self.module_menu)
        toolbar.addWidget(self.module_button)
        toolbar.addSeparator()
        toolbar.addAction(self.rebind_action)
        toolbar.addSeparator()
        toolbar.addAction(self.init_action)
        self.pin_menu = QMenu(self)
        for action in (self.init_pin_action, self.change_pin_action, self.change_so_pin_action):
            self.pin_menu.addAction(action)
        self.pin_button = self._menu_button("PINs", icon("pin"), self.pin_menu)
        toolbar.addWidget(self.pin_button)
        self.toolbar = toolbar
        layout.addWidget(toolbar)
        self.summary = hint("", self)
        layout.addWidget(self.summary)
        self.module_errors = QLabel(self)
        self.module_errors.setObjectName("errorLine")
        self.module_errors.setWordWrap(True)
        self.module_errors.hide()
        layout.addWidget(self.module_errors)
        self.notice = QLabel(self)
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        layout.addWidget(self.notice)

        splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.tree = QTreeWidget(splitter)
        self.tree.setColumnCount(len(_COLUMNS))
        self.tree.setHeaderLabels(list(_COLUMNS))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.details = QStackedWidget(splitter)
        self.empty_panel = hint("Select a module or a token to see its details.", self.details)
        self.empty_panel.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.module_panel = _ModulePanel(self.details)
        self.token_panel = _TokenPanel(self.details)
        for panel in (self.empty_panel, self.module_panel, self.token_panel):
            self.details.addWidget(panel)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        layout.addWidget(splitter, 1)

        self._snapshot = _Snapshot([], [], [], False)
        self._view: TokenView | None = None
        self.login_action.triggered.connect(self._login)
        self.logout_action.triggered.connect(self._logout)
        self.refresh_action.triggered.connect(session.refresh_tokens)
        self.add_module_action.triggered.connect(self._add_module)
        self.remove_module_action.triggered.connect(self._remove_module)
        self.create_action.triggered.connect(self._create_token)
        self.rebind_action.triggered.connect(self._rebind)
        self.init_action.triggered.connect(self._init_token)
        self.init_pin_action.triggered.connect(lambda: self._pin(PinMode.INIT_PIN))
        self.change_pin_action.triggered.connect(lambda: self._pin(PinMode.CHANGE_PIN))
        self.change_so_pin_action.triggered.connect(lambda: self._pin(PinMode.CHANGE_SO_PIN))
        self.token_panel.probe_button.clicked.connect(lambda: self._probe(refresh=True))
        self.module_panel.add_button.clicked.connect(self._add_offered)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.tree.itemDoubleClicked.connect(lambda *_: self._login())
        # Keyboard: Return / Space log in to the selected token, the context-menu key (or a
        # right click) opens the actions for the selected row.
        self.tree.installEventFilter(self)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        # A bound method, not a lambda: a lambda held by the session's signal keeps this page
        # (and through it the whole locked window and its inventory) alive after a lock.
        session.tokens_changed.connect(self._tokens_changed)
        self._update_actions()

    def _menu_button(self, text: str, glyph: QIcon, menu: QMenu) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setIcon(glyph)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        button.setMenu(menu)
        return button

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.tree
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space)
        ):
            if self.login_action.isEnabled():
                self.login_action.trigger()
            return True
        return super().eventFilter(watched, event)

    def _context_menu(self, position: QPoint) -> None:
        menu = QMenu(self)
        for action in (
            self.login_action,
            self.logout_action,
            self.init_action,
            self.remove_module_action,
        ):
            if action.isEnabled():
                menu.addAction(action)
        for action in self.pin_menu.actions():
            if action.isEnabled():
                menu.addAction(action)
        if menu.actions():
            menu.popup(self.tree.viewport().mapToGlobal(position))

    # --- loading ---------------------------------------------------------------------------

    def _tokens_changed(self, _statuses: list[object]) -> None:
        self.reload()

    def reload(self) -> None:
        self.session.run(_snapshot, self._show)

    def _show(self, snapshot: _Snapshot) -> None:
        selected = self._selected_key()
        self._snapshot = snapshot
        self.tree.clear()
        by_module: dict[str, list[TokenStatus]] = {}
        for status in snapshot.statuses:
            by_module.setdefault(status.info.module_path, []).append(status)
        restore: QTreeWidgetItem | None = None
        for module in snapshot.modules:
            description = module.info.description if module.info else "not loaded"
            item = QTreeWidgetItem(self.tree, [f"{description} — {module.path}"])
            item.setData(0, Qt.ItemDataRole.UserRole, ("module", module.path))
            item.setIcon(0, icon("tokens"))
            if module.error:
                item.setForeground(0, _WARN)
                item.setToolTip(0, module.error)
            for status in by_module.get(module.path, []):
                info = status.info
                alarms = [w for w in info.flag_words if w in _ALARM_FLAGS]
                child = QTreeWidgetItem(
                    item,
                    [
                        info.label,
                        info.serial,
                        info.model,
                        "yes" if status.logged_in else "no",
                        str(status.pin_failures),
                        ", ".join(info.flag_words),
                    ],
                )
                child.setData(0, Qt.ItemDataRole.UserRole, ("token", info.serial))
                child.setToolTip(5, ", ".join(info.flag_words))  # the column may be cut short
                if status.ambiguous:  # listed, never acted on (TokenService.find refuses it)
                    child.setText(3, "ambiguous")
                    for column in range(4):
                        child.setForeground(column, _WARN)
                        child.setToolTip(
                            column,
                            "Another present token has the same serial and label: Keystead acts "
                            "on neither. Remove one, or initialise one with another label.",
                        )
                if alarms:
                    child.setForeground(5, _WARN)
                    child.setToolTip(5, "Needs attention: " + ", ".join(alarms))
                if selected == ("token", info.serial):
                    restore = child
            if selected == ("module", module.path):
                restore = item
            item.setExpanded(True)
        if snapshot.offered:
            group = QTreeWidgetItem(self.tree, ["Registered with p11-kit, not used here"])
            group.setFlags(group.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            for offered in snapshot.offered:
                child = QTreeWidgetItem(group, [f"{offered.name} — {offered.path}"])
                child.setData(0, Qt.ItemDataRole.UserRole, ("offered", offered.path))
                if selected == ("offered", offered.path):
                    restore = child
            group.setExpanded(True)
        if restore is not None:
            self.tree.setCurrentItem(restore)
        else:
            self.details.setCurrentWidget(self.empty_panel)
        present = snapshot.statuses
        logged = sum(1 for s in present if s.logged_in)
        text = (
            f"{len(present)} token(s) present, {logged} logged in. Keys are identified by token "
            "serial and CKA_ID, never by slot number."
            if present
            else "No token present. Insert a token, or create an embedded one."
        )
        if snapshot.rescan_pending:
            text += (
                " A new embedded token appeared; log out of the embedded tokens and Refresh "
                "to see it."
            )
        self.summary.setText(text)
        errors = {m.path: m.error for m in snapshot.modules if m.error}
        self.module_errors.setText("\n".join(f"Module not loaded: {e}" for e in errors.values()))
        self.module_errors.setVisible(bool(errors))
        self._update_actions()

    # --- selection -------------------------------------------------------------------------

    def _selected_key(self) -> tuple[str, str] | None:
        item = self.tree.currentItem()
        if item is None or not item.isSelected():
            return None
        data = item.data(0, Qt.ItemDataRole.UserRole)
        return (str(data[0]), str(data[1])) if data else None

    def selected(self) -> TokenStatus | None:
        key = self._selected_key()
        if key is None or key[0] != "token":
            return None
        return next((s for s in self._snapshot.statuses if s.info.serial == key[1]), None)

    def select_token(self, serial: str) -> None:
        for item in self._items():
            if item.data(0, Qt.ItemDataRole.UserRole) == ("token", serial):
                self.tree.setCurrentItem(item)
                return

    def _items(self) -> list[QTreeWidgetItem]:
        found: list[QTreeWidgetItem] = []
        for top in range(self.tree.topLevelItemCount()):
            parent = self.tree.topLevelItem(top)
            if parent is None:
                continue
            found.append(parent)
            for index in range(parent.childCount()):
                child = parent.child(index)
                if child is not None:
                    found.append(child)
        return found

    def _selection_changed(self) -> None:
        key = self._selected_key()
        self._update_actions()
        if key is None:
            self.details.setCurrentWidget(self.empty_panel)
        elif key[0] == "token":
            serial = key[1]
            self.details.setCurrentWidget(self.token_panel)
            self.token_panel.loading()
            self.session.run(
                lambda ws: (ws.inspect.view(serial), ws.inspect.mechanisms(serial)),
                self._token_loaded,
                self._failed,
            )
        else:
            self.details.setCurrentWidget(self.module_panel)
            if key[0] == "module":
                row = next(m for m in self._snapshot.modules if m.path == key[1])
                self.module_panel.show_module(row)
            else:
                offered = next(o for o in self._snapshot.offered if o.path == key[1])
                self.module_panel.show_offered(offered)

    def _token_loaded(self, result: tuple[TokenView, list[MechanismRow]]) -> None:
        view, mechanisms = result
        selected = self.selected()
        if selected is None or selected.info.serial != view.status.info.serial:
            return  # the selection moved on while this loaded
        self._view = view
        self.token_panel.show_token(view, mechanisms)
        if view.capabilities is None and view.status.logged_in:
            self._probe(refresh=False)  # once per token; the answer is kept

    def _update_actions(self) -> None:
        status = self.selected()
        key = self._selected_key()
        self.login_action.setEnabled(bool(status and not status.logged_in))
        self.logout_action.setEnabled(bool(status and status.logged_in))
        for action in (
            self.init_action,
            self.init_pin_action,
            self.change_pin_action,
            self.change_so_pin_action,
        ):
            action.setEnabled(status is not None)
            action.setToolTip("" if status else "Select a token first.")
        self.pin_button.setEnabled(status is not None)
        self.pin_button.setToolTip("" if status else "Select a token first.")
        self.remove_module_action.setEnabled(bool(key and key[0] == "module"))

    # --- actions ---------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def _failed(self, error: BaseException) -> None:
        self.session.refresh_tokens()
        show_error(self, error)

    def _after(self, text: str) -> Callable[[Any], None]:
        def done(_: Any) -> None:
            self._say(text)
            self.session.refresh_tokens()
            self.session.keys_changed.emit()

        return done

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

    def _probe(self, refresh: bool) -> None:
        status = self.selected()
        if status is None:
            return
        serial = status.info.serial
        self.token_panel.probing()
        self.session.run(
            lambda ws: ws.inspect.capabilities(serial, refresh=refresh),
            lambda found: self.token_panel.show_capabilities(found, "just now"),
            self._failed,
        )

    def _add_module(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(
            self, "Add a PKCS#11 module", "/usr/lib", "PKCS#11 modules (*.so *.so.*);;All (*)"
        )
        if path:
            self._add(path)

    def _add_offered(self) -> None:
        key = self._selected_key()
        if key and key[0] == "offered":
            self._add(key[1])

    def _add(self, path: str) -> None:
        self.session.run(
            lambda ws: ws.tokens.add_module(path).info(),
            lambda info: self._after(f"Added {info.description} ({path}).")(info),
            self._failed,
        )

    def _remove_module(self) -> None:
        key = self._selected_key()
        if not key or key[0] != "module":
            return
        path = key[1]
        audit = self.session.audit_status()
        if audit is not None and audit.info.module_path == path:
            dialog = RemoveAuditModuleDialog(path, audit.info.label, self)
            confirmed = bool(dialog.exec())
        else:
            confirmed = (
                QMessageBox.question(
                    self,
                    "Remove module",
                    f"Stop using {path}? Its tokens' sessions end; keys on them stay recorded "
                    "and show as not checked until the module is added again.",
                )
                == QMessageBox.StandardButton.Yes
            )
        if confirmed:
            self.session.run(
                lambda ws: ws.tokens.remove_module(path),
                self._after(f"Removed {path}."),
                self._failed,
            )

    def _create_token(self) -> None:
        dialog = CreateTokenDialog(self)
        if not dialog.exec():
            return
        request = dialog.request()
        self.session.run(
            lambda ws: ws.tokens.create_soft_token(request.label, request.so_pin, request.user_pin),
            lambda info: self._after(
                f"Created embedded token '{info.label}' (serial {info.serial})."
            )(info),
            self._failed,
        )

    def _rebind(self) -> None:
        self.session.run(lambda ws: ws.rebind.candidates(), self._ask_rebind, self._failed)

    def _ask_rebind(self, candidates: list[Any]) -> None:
        dialog = RebindDialog(candidates, self)
        if not dialog.exec():
            return
        chosen = dialog.selected()
        if chosen is None:
            return
        key_id, serial = chosen.key.id, chosen.token_serial
        self.session.run(
            lambda ws: ws.rebind.rebind(key_id, serial),
            self._after(f"'{chosen.key.name}' is now bound to token '{chosen.token_label}'."),
            self._failed,
        )

    def _init_token(self) -> None:
        status = self.selected()
        if status is None:
            return
        serial = status.info.serial
        self.session.run(lambda ws: ws.admin.init_impact(serial), self._confirm_init, self._failed)

    def _confirm_init(self, impact: Any) -> None:
        dialog = InitTokenDialog(impact, self)
        if not dialog.exec():
            return
        confirm, label, so_pin = dialog.values()
        serial = impact.token.serial
        self.session.run(
            lambda ws: ws.admin.init_token(serial, confirm, label, so_pin),
            self._after(f"Token {serial} initialised as '{label}'. Set its user PIN next."),
            self._failed,
        )

    def _pin(self, mode: PinMode) -> None:
        status = self.selected()
        if status is None:
            return
        info = status.info
        self.session.run(
            lambda ws: ws.admin.pin_limits(info),
            lambda limits: self._ask_pin(mode, info, limits),
            self._failed,
        )

    def _ask_pin(self, mode: PinMode, info: Any, limits: tuple[int, int]) -> None:
        dialog = PinDialog(mode, info, limits, self)
        if not dialog.exec():
            return
        change = dialog.change()
        serial = info.serial
        jobs: dict[PinMode, Callable[[Workstation], None]] = {
            PinMode.INIT_PIN: lambda ws: ws.admin.init_pin(serial, change.old, change.new),
            PinMode.CHANGE_PIN: lambda ws: ws.admin.change_pin(serial, change.old, change.new),
            PinMode.CHANGE_SO_PIN: lambda ws: ws.admin.change_so_pin(
                serial, change.old, change.new
            ),
        }
        done = {
            PinMode.INIT_PIN: f"User PIN of '{info.label}' set by the security officer.",
            PinMode.CHANGE_PIN: f"User PIN of '{info.label}' changed.",
            PinMode.CHANGE_SO_PIN: f"SO PIN of '{info.label}' changed.",
        }[mode]
        self.session.run(jobs[mode], self._after(done), self._failed)


def _key_sizes(mechanism: MechanismRow) -> str:
    if mechanism.min_key is None:
        return ""
    if mechanism.max_key is None or mechanism.max_key >= 2**31:  # SoftHSM's "no limit"
        return f"{mechanism.min_key} and up"
    return f"{mechanism.min_key}–{mechanism.max_key}"


def _when(text: str) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM UTC'; other text as it is."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


class _ModulePanel(QWidget):
    """A configured module (what it says of itself) or one offered by p11-kit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.title = heading("", self)
        layout.addWidget(self.title)
        form = QFormLayout()
        self.fields: dict[str, QLabel] = {}
        for name in ("Path", "Description", "Manufacturer", "Cryptoki", "Library", "Status"):
            label = QLabel(self)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            self.fields[name] = label
            form.addRow(f"{name}:", label)
        layout.addLayout(form)
        self.add_button = QPushButton(icon("add"), "Add this module", self)
        layout.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)

    def show_module(self, row: ModuleRow) -> None:
        info = row.info
        self.title.setText("Embedded SoftHSM module" if row.embedded else "PKCS#11 module")
        values = {
            "Path": row.path,
            "Description": info.description if info else "",
            "Manufacturer": info.manufacturer if info else "",
            "Cryptoki": info.cryptoki_version if info else "",
            "Library": info.library_version if info else "",
            "Status": row.error or "loaded",
        }
        for name, value in values.items():
            self.fields[name].setText(value)
        self.add_button.hide()

    def show_offered(self, offered: RegisteredModule) -> None:
        self.title.setText(f"Registered with p11-kit: {offered.name}")
        values = {
            "Path": offered.path,
            "Description": f"from {offered.config_file}",
            "Manufacturer": "",
            "Cryptoki": "",
            "Library": "",
            "Status": "installed" if offered.exists else "the library file is missing",
        }
        for name, value in values.items():
            self.fields[name].setText(value)
        self.add_button.setVisible(offered.exists)


class _TokenPanel(QTabWidget):
    """One token: facts, mechanisms (filterable) and probed capabilities."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        facts = QWidget(self)
        form = QFormLayout(facts)
        self.fields: dict[str, QLabel] = {}
        for name in (
            "Label",
            "Serial",
            "Manufacturer",
            "Model",
            "Versions",
            "Module",
            "Slot",
            "Logged in",
            "Objects",
            "Wrong PINs",
            "Flags",
            "Sessions",
            "PIN length",
            "Memory",
        ):
            label = QLabel(facts)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            self.fields[name] = label
            form.addRow(f"{name}:", label)
        self.addTab(facts, "Token")

        mechanisms = QWidget(self)
        mech_layout = QVBoxLayout(mechanisms)
        self.mech_filter = QLineEdit(mechanisms)
        self.mech_filter.setPlaceholderText("Filter by name or capability (e.g. wrap, EC, sign)")
        self.mech_filter.setClearButtonEnabled(True)
        mech_layout.addWidget(self.mech_filter)
        self.mech_table = QTableWidget(0, 4, mechanisms)
        self.mech_table.setHorizontalHeaderLabels(["Mechanism", "Code", "Key size", "Can"])
        self.mech_table.verticalHeader().hide()
        self.mech_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.mech_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.mech_table.horizontalHeader().setStretchLastSection(True)
        self.mech_table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        mech_layout.addWidget(self.mech_table, 1)
        self.addTab(mechanisms, "Mechanisms")

        capabilities = QWidget(self)
        cap_layout = QVBoxLayout(capabilities)
        cap_layout.addWidget(
            hint(
                "Probed once per token with throwaway session objects and known-answer tests "
                "against the cryptography library; generation and backup use these answers.",
                capabilities,
            )
        )
        self.capability_text = QLabel(capabilities)
        self.capability_text.setWordWrap(True)
        self.capability_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.capability_text.setAlignment(Qt.AlignmentFlag.AlignTop)
        cap_layout.addWidget(self.capability_text, 1)
        self.probe_button = QPushButton(icon("refresh"), "Probe again", capabilities)
        cap_layout.addWidget(self.probe_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.addTab(capabilities, "Capabilities")

        self._mechanisms: list[MechanismRow] = []
        self.mech_filter.textChanged.connect(self._filter)

    def loading(self) -> None:
        for label in self.fields.values():
            label.setText("…")

    def show_token(self, view: TokenView, mechanisms: list[MechanismRow]) -> None:
        info = view.status.info
        details = view.details
        words = details.words() if details else [view.details_error or "not reported"]
        values = {
            "Label": info.label,
            "Serial": info.serial,
            "Manufacturer": info.manufacturer,
            "Model": info.model,
            "Versions": f"hardware {info.hardware_version}, firmware {info.firmware_version}",
            "Module": info.module_path,
            "Slot": f"{info.slot_id} (changes; keys are bound to the serial)",
            "Logged in": "yes" if view.status.logged_in else "no",
            "Objects": "log in to count" if view.objects is None else str(view.objects),
            "Wrong PINs": f"{view.status.pin_failures} in a row (counted by Keystead)",
            "Flags": ", ".join(info.flag_words),
            "Sessions": "; ".join(w for w in words if "session" in w),
            "PIN length": (f"{details.min_pin}–{details.max_pin}" if details else words[0]),
            "Memory": "; ".join(w for w in words if "memory" in w),
        }
        for name, value in values.items():
            self.fields[name].setText(value)
        alarm = any(w in _ALARM_FLAGS for w in info.flag_words)
        self.fields["Flags"].setObjectName("warning" if alarm else "")
        self.fields["Flags"].setStyleSheet("color: #b3261e;" if alarm else "")
        self._mechanisms = mechanisms
        self._filter(self.mech_filter.text())
        if view.capabilities is not None:
            self.show_capabilities(view.capabilities, view.probed_at or "")
        elif view.status.logged_in:
            self.probing()
        else:
            self.capability_text.setText("Not probed yet. Log in to the token to probe it.")
            self.probe_button.setEnabled(False)

    def probing(self) -> None:
        self.capability_text.setText("Probing the token…")
        self.probe_button.setEnabled(False)

    def show_capabilities(self, found: Capabilities, when: str) -> None:
        lines = [f"• {line}" for line in found.words()]
        self.capability_text.setText(f"Probed {_when(when)}.\n\n" + "\n".join(lines))
        self.probe_button.setEnabled(True)

    def _filter(self, text: str) -> None:
        rows = filter_rows(self._mechanisms, text)
        self.mech_table.setRowCount(len(rows))
        for row, mechanism in enumerate(rows):
            size = _key_sizes(mechanism)
            for column, value in enumerate(
                (mechanism.name, f"{mechanism.code:#x}", size, ", ".join(mechanism.can()))
            ):
                self.mech_table.setItem(row, column, QTableWidgetItem(value))
