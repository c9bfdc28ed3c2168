"""The main window: navigation on the left, pages on the right, facts in the status bar.

It only arranges pages; each page owns its behaviour.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.services.tokens import TokenStatus
from ui.approvals import QtApprovalSource
from ui.errors import message, show_error
from ui.icons import icon
from ui.idle import IdleWatch
from ui.menus import build_menu_bar
from ui.models.inventory_model import Column
from ui.pages.audit_page import AuditPage
from ui.pages.backup_page import BackupPage
from ui.pages.ceremony_page import CeremonyPage
from ui.pages.inventory_page import InventoryPage
from ui.pages.operators_page import OperatorsPage
from ui.pages.overview_page import OverviewPage
from ui.pages.policy_page import PolicyPage
from ui.pages.tokens_page import TokensPage
from ui.session import GuiSession
from ui.settings import (
    gui_settings,
    restore_geometry,
    restore_header,
    save_geometry,
    save_header,
)
from ui.widgets.airgap_status import AirGapStatus
from ui.widgets.audit_banner import AuditTokenBanner

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    locked = Signal(bool)  # the workstation is locked; True when the officer asked to relock

    def __init__(self, session: GuiSession) -> None:
        super().__init__()
        # The window owns its session: Qt deletes both together, on the GUI thread. Owned by
        # Python instead, the session was freed by whichever thread ran the collector, often
        # the core thread: a QObject destroyed off its thread (issue 17's crash).
        session.setParent(self)
        self.session = session
        self.setWindowTitle("Keystead — key management workstation")
        self.setWindowIcon(icon("keystead"))
        available = self.screen().availableGeometry()  # until the saved geometry is restored
        self.resize(min(1440, available.width()), min(820, available.height()))
        self.setMinimumSize(960, 640)

        self.nav = QListWidget(self)
        self.nav.setObjectName("nav")
        self.nav.setIconSize(QSize(20, 20))
        self.nav.setFixedWidth(150)
        self.pages = QStackedWidget(self)
        self.overview = OverviewPage(session, self)
        self.inventory = InventoryPage(session, self)
        self.tokens = TokensPage(session, self)
        self.audit = AuditPage(session, self)
        self.operators = OperatorsPage(session, self)
        self.policy = PolicyPage(session, self)
        self.ceremony = CeremonyPage(session, self)
        self.backup = BackupPage(session, self)
        for name, icon_name, page in (
            ("Overview", "checkpoint", self.overview),
            ("Inventory", "inventory", self.inventory),
            ("Tokens", "tokens", self.tokens),
            ("Backup", "backup", self.backup),
            ("Audit", "audit", self.audit),
            ("Operators", "operators", self.operators),
            ("Policy", "policy", self.policy),
            ("Ceremony", "verify", self.ceremony),
        ):
            QListWidgetItem(icon(icon_name), name, self.nav)
            self.pages.addWidget(page)
        self._gate_actions()
        self.nav.currentRowChanged.connect(self.pages.setCurrentIndex)
        self.nav.currentRowChanged.connect(self._page_shown)
        self.nav.setCurrentRow(0)

        self.banner = AuditTokenBanner(session, self)
        right = QWidget(self)
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.banner)
        column.addWidget(self.pages, 1)
        central = QWidget(self)
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(right, 1)
        self.setCentralWidget(central)
        self.central = central
        self.lock_action: QAction | None = None
        build_menu_bar(self)
        # "Lock now" in the toolbar too (the menu's action: one shortcut, Ctrl+L, one path).
        if self.lock_action is not None:
            self.lock_action.setIcon(icon("lock"))
            self.lock_action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            toolbar = QToolBar("Session", self)
            toolbar.setObjectName("sessionToolbar")
            toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            toolbar.setMovable(False)
            toolbar.addAction(self.lock_action)
            self.addToolBar(toolbar)
        self._lock_reason = "closed"
        self.settings = gui_settings(session.home.root)
        restore_geometry(self.settings, self)
        restore_header(self.settings, "inventory", self.inventory.table.horizontalHeader())
        # Widths, order and hidden columns come back; the inventory opens sorted by name, the
        # order its first screenful is read in at unlock (issue 17's progressive paint).
        self.inventory.table.sortByColumn(Column.NAME, Qt.SortOrder.AscendingOrder)
        restore_header(self.settings, "audit", self.audit.table.horizontalHeader())
        self.relock = False  # Lock now: after locking, ask to unlock again instead of quitting

        bar = self.statusBar()
        self.operator_label = QLabel(f"Operator: {session.operator}", self)
        self.tokens_label = QLabel("Tokens: …", self)
        self.due_label = QLabel(self)
        self.due_label.setObjectName("dueLabel")
        self.risk_label = QLabel(self)
        self.risk_label.setObjectName("dueLabel")
        self.database_label = QLabel(f"Database: {session.database_path}", self)
        self.database_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.database_label.setToolTip(session.database_path)
        for label in (self.tokens_label, self.database_label):  # long texts never widen the window
            label.setMinimumWidth(80)
        # ...but the count of logged-in tokens always fits (the rest of the list may be cut).
        self.tokens_label.setMinimumWidth(
            self.tokens_label.fontMetrics().horizontalAdvance("Tokens: 9 of 9 logged in —")
        )
        bar.addWidget(self.operator_label)
        bar.addWidget(self.tokens_label)
        bar.addWidget(self.due_label)
        bar.addWidget(self.risk_label)
        # Paint first, integrity checks after (DESIGN.md "Storage"): said until they pass.
        self.integrity_label = QLabel("Checking database integrity…", self)
        self.integrity_label.setObjectName("integrityLabel")
        self.integrity_label.setToolTip(
            "The whole-file checks of the database run right after the inventory is shown. "
            "Nothing is changed until they pass; if they fail the workstation locks."
        )
        self.integrity_label.setVisible(session.integrity_pending)
        bar.addPermanentWidget(self.integrity_label)
        self.lock_message = ""  # why the window locked itself, for the unlock dialog
        bar.addPermanentWidget(self.database_label)
        self.airgap = AirGapStatus(session, self)
        bar.addPermanentWidget(self.airgap)
        session.tokens_changed.connect(self._tokens_changed)
        self.inventory.due_counted.connect(self._due_counted)
        self.inventory.loaded.connect(self._keys_loaded)
        self.overview.navigate.connect(self._navigate)
        self.audit.verified.connect(self.overview.set_verified)
        self.inventory.status_message.connect(lambda text: bar.showMessage(text, 10_000))
        # Cryptoperiods run out while the workstation is open too.
        self.cryptoperiod_timer = QTimer(self)
        self.cryptoperiod_timer.setInterval(60_000)
        self.cryptoperiod_timer.timeout.connect(self.apply_due)
        self.cryptoperiod_timer.start()
        # Tokens come and go: look every second (the issue asks for 2 s at most).
        self.presence_timer = QTimer(self)
        self.presence_timer.setInterval(1_000)
        self.presence_timer.timeout.connect(self.poll_tokens)
        self.presence_timer.start()
        self._polling = False
        session.error.connect(self._unhandled_error)
        self._closing = False
        # The idle lock: no input for the security officer's number of minutes locks.
        self.idle = IdleWatch(self)
        self.idle.timed_out.connect(lambda: self.lock_now("idle"))
        self.policy.idle_lock_changed.connect(self.idle.set_minutes)
        for page in (self.operators, self.policy, self.ceremony, self.backup):
            page.done.connect(lambda text: bar.showMessage(text, 8000))
        self.approval_source = QtApprovalSource(self)  # the approval dialog, for the core

    def _gate_actions(self) -> None:
        """Actions the operator's roles do not allow stay disabled, the tooltip naming the
        role (the core refuses them anyway, with a denied entry)."""
        tokens = self.tokens
        for target, action in (
            (self.inventory.generate_action, "key.generate"),
            (self.inventory.adopt_action, "key.adopt"),
            (self.inventory.detail.adopt_button, "key.adopt"),
            (tokens.add_module_action, "module.add"),
            (tokens.module_panel.add_button, "module.add"),
            (tokens.remove_module_action, "module.remove"),
            (tokens.create_action, "token.create-soft"),
            (tokens.rebind_action, "key.rebind"),
            (tokens.init_action, "token.init"),
            (tokens.init_pin_action, "token.init-pin"),
            (tokens.change_pin_action, "token.change-pin"),
            (tokens.change_so_pin_action, "token.change-so-pin"),
        ):
            self.session.gate.guard(target, action)

    def _unhandled_error(self, error: BaseException) -> None:
        """An error no page handled: shown, unless closing has begun. Jobs queued behind the
        lock then fail only because the database is closed; a modal box per job would stack up
        and keep the window from closing, so they are logged instead."""
        if self._closing:
            log.warning("after closing began: %s", error)
            return
        show_error(self, error)

    def start(self) -> None:
        """Load the first data: tokens, then (through tokens_changed) the inventory; then,
        if the unlock deferred them, the database's integrity checks."""
        if self.session.integrity_pending:
            self.inventory.settled.connect(self._finish_unlock)
        self.session.refresh_tokens()
        self.airgap.start()
        self.operators.refresh()
        self.policy.refresh()
        self.session.run(lambda ws: ws.idle_lock_minutes(), self.idle.set_minutes)

    def _finish_unlock(self) -> None:
        """The inventory is on screen: run the deferred integrity checks and the unlock's
        records on the core thread (any write queued after waits for them)."""
        self.inventory.settled.disconnect(self._finish_unlock)
        self.session.run(
            lambda ws: ws.finish_unlock(), self._integrity_passed, self._integrity_failed
        )

    def _integrity_passed(self, _result: object) -> None:
        self.session.integrity_pending = False
        self.integrity_label.hide()

    def _integrity_failed(self, error: BaseException) -> None:
        """A check failed (or the unlock could not be recorded): nothing was written; lock,
        and say why in the unlock dialog, as an unlock of a damaged file does."""
        self.integrity_label.setText("Database damaged: locking…")
        self.lock_message = message(error)
        log.error("deferred unlock step failed: %s", self.lock_message)
        self.lock_now("database damaged")

    def show_page(self, page: QWidget) -> None:
        self.nav.setCurrentRow(self.pages.indexOf(page))

    def focus_filter(self) -> None:
        """Ctrl+F: the inventory, its filter focused and selected."""
        self.show_page(self.inventory)
        self.inventory.filter.setFocus()
        self.inventory.filter.selectAll()

    def refresh_all(self) -> None:
        """F5: tokens, keys, and the audit page if it is shown."""
        self.session.refresh_tokens()
        self.session.keys_changed.emit()
        if self.pages.currentWidget() is self.audit:
            self.audit.refresh()

    def lock_now(self, reason: str | bool = "requested") -> None:
        """Ctrl+L, the toolbar or the idle lock: hide every page at once (no key name stays on
        screen), lock the workstation (the one lock path, as at close), then ask to unlock."""
        if self._closing:
            return
        self.relock = True
        # (a QAction's triggered(bool) may land here: any non-text means "requested")
        self._lock_reason = reason if isinstance(reason, str) else "requested"
        self.central.hide()
        self.close()

    def _page_shown(self, index: int) -> None:
        if self.pages.widget(index) is self.audit:
            self.audit.refresh()
        elif self.pages.widget(index) is self.backup:
            self.backup.refresh()
        elif self.pages.widget(index) is self.overview:
            self.overview.refresh()
            self._show_airgap()

    def _navigate(self, target: str) -> None:
        """A figure of the overview was followed: show its filtered view."""
        if target == "tokens":
            self.show_page(self.tokens)
        elif target.startswith("inventory:"):
            self.show_page(self.inventory)
            if target == "inventory:due":
                self.inventory.show_filtered(due_only=True)
            elif target == "inventory:not-backed-up":
                self.inventory.show_filtered(not_backed_up=True)
            elif target == "inventory:compromised":
                self.inventory.show_filtered("compromised")
            else:
                self.inventory.show_filtered("missing on token")
        elif target == "audit:verify":
            self.show_page(self.audit)
            self.audit.verify()
        elif target == "audit:failed-logins":
            self.show_page(self.audit)
            self.audit.show_failed_logins()

    def _keys_loaded(self, _count: int) -> None:
        self.overview.show_keys(*self.inventory.model.totals(datetime.now(UTC)))
        self.overview.show_compromised(self.inventory.model.compromised_count)
        at_risk = self.inventory.model.at_risk_count
        self.overview.show_at_risk(at_risk)
        self.risk_label.setText(f"{at_risk} not backed up" if at_risk else "")
        self.risk_label.setToolTip(
            "Backup-able keys in no verified backup; tick 'Not backed up' in the inventory."
        )
        self._show_airgap()

    def _show_airgap(self) -> None:
        report = self.airgap.report if hasattr(self, "airgap") else None
        if report is not None:
            self.overview.show_airgap(report.air_gapped, self.airgap.text())

    def apply_due(self) -> None:
        """Automatic activations/deactivations whose date has come (recorded as the workstation)."""
        self.session.run(
            lambda ws: ws.lifecycle.apply_due(),
            lambda changed: self.session.keys_changed.emit() if changed else None,
        )

    def poll_tokens(self) -> None:
        """Ask the core whether a token was inserted or removed; refresh the pages if so.
        One poll at a time: a long job on the core thread delays it, never piles them up."""
        if self._polling or self._closing:
            return
        self._polling = True

        def done(changed: bool) -> None:
            self._polling = False
            if changed:
                self.session.refresh_tokens()
                self.session.keys_changed.emit()

        def failed(error: BaseException) -> None:
            self._polling = False
            self.statusBar().showMessage(f"Could not look for tokens: {error}", 10_000)

        self.session.run(lambda ws: ws.tokens.poll(), done, failed)

    def _due_counted(self, count: int) -> None:
        self.due_label.setText(f"{count} key{'s' if count != 1 else ''} due" if count else "")
        self.due_label.setToolTip(
            "Live keys whose deactivation date is near or past; tick "
            "'Due only' in the inventory to list them."
        )

    def _tokens_changed(self, statuses: list[TokenStatus]) -> None:
        if not statuses:
            self.tokens_label.setText("Tokens: none present")
            return
        # The count first and logged-in tokens before the others: the label is cut at the
        # right on a narrow window, and "Tokens: Rehearsal (not logged in)" hid the logged-in
        # main token (new-user trial).
        ordered = sorted(statuses, key=lambda s: (not s.logged_in, s.info.label.casefold()))
        parts = [
            f"{s.info.label} ({'logged in' if s.logged_in else 'not logged in'})" for s in ordered
        ]
        logged_in = sum(1 for s in statuses if s.logged_in)
        text = f"Tokens: {logged_in} of {len(statuses)} logged in — " + ", ".join(parts)
        self.tokens_label.setText(text)
        self.tokens_label.setToolTip("\n".join(parts))

    def closeEvent(self, event: QCloseEvent) -> None:
        """Lock the workstation on the core thread before the window goes away."""
        if self._closing:
            event.accept()
            return
        event.ignore()
        self._closing = True
        save_geometry(self.settings, self)
        save_header(self.settings, "inventory", self.inventory.table.horizontalHeader())
        save_header(self.settings, "audit", self.audit.table.horizontalHeader())
        self.settings.sync()
        self.idle.stop()
        self.presence_timer.stop()
        self.cryptoperiod_timer.stop()
        self.airgap.timer.stop()
        self.setEnabled(False)
        self.statusBar().showMessage("Locking the workstation…")
        self.session.lock(then=self._locked, reason=self._lock_reason)

    def _locked(self) -> None:
        self.locked.emit(self.relock)
        self.close()
