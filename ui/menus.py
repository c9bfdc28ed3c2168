"""The menu bar: every action of every page, with standard shortcuts.

Workstation (lock, quit), Keys (find, generate, adopt, refresh, lifecycle), Tokens, Audit,
Help. The actions belong to the pages; this only lists them and adds the few that move
between pages (Ctrl+F shows the inventory and focuses its filter).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenuBar, QMessageBox

if TYPE_CHECKING:
    from ui.main_window import MainWindow

SHORTCUTS_HELP = (
    "Ctrl+F  filter the inventory\n"
    "Ctrl+G  generate a key\n"
    "F5  refresh\n"
    "Delete  destroy the selected key (asks for its name)\n"
    "Ctrl+L  lock the workstation now\n"
    "Ctrl+Q  lock and quit\n"
    "Return / Space  log in to the selected token (Tokens page)\n"
    "Menu key / Shift+F10  actions for the selected row\n"
    "Tab  leaves tables and text fields"
)


def build_menu_bar(window: MainWindow) -> QMenuBar:
    bar = window.menuBar()
    inventory, tokens, audit = window.inventory, window.tokens, window.audit

    workstation = bar.addMenu("&Workstation")
    window.lock_action = QAction("&Lock now", window)
    window.lock_action.setShortcut(QKeySequence("Ctrl+L"))
    window.lock_action.setToolTip("Lock the workstation: end token sessions, ask to unlock.")
    window.lock_action.triggered.connect(window.lock_now)
    quit_action = QAction("Lock and &quit", window)
    quit_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
    quit_action.triggered.connect(window.close)
    refresh = QAction("&Refresh", window)
    refresh.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
    refresh.triggered.connect(window.refresh_all)
    workstation.addAction(refresh)
    workstation.addSeparator()
    workstation.addAction(window.lock_action)
    workstation.addAction(quit_action)

    keys = bar.addMenu("&Keys")
    find = QAction("&Find…", window)
    find.setShortcut(QKeySequence(QKeySequence.StandardKey.Find))
    find.triggered.connect(window.focus_filter)
    keys.addAction(find)
    keys.addAction(inventory.generate_action)
    keys.addAction(inventory.adopt_action)
    keys.addSeparator()
    for action in inventory.lifecycle.all():
        keys.addAction(action)

    tokens_menu = bar.addMenu("&Tokens")
    for action in (tokens.login_action, tokens.logout_action, tokens.refresh_action):
        tokens_menu.addAction(action)
    tokens_menu.addSeparator()
    for action in (
        tokens.add_module_action,
        tokens.remove_module_action,
        tokens.create_action,
        tokens.rebind_action,
    ):
        tokens_menu.addAction(action)
    tokens_menu.addSeparator()
    tokens_menu.addAction(tokens.init_action)
    for action in tokens.pin_menu.actions():
        tokens_menu.addAction(action)

    audit_menu = bar.addMenu("&Audit")
    for action in (
        audit.verify_action,
        audit.checkpoint_action,
        audit.export_csv,
        audit.export_json,
    ):
        audit_menu.addAction(action)

    help_menu = bar.addMenu("&Help")
    shortcuts = QAction("&Keyboard shortcuts", window)
    shortcuts.setShortcut(QKeySequence(QKeySequence.StandardKey.HelpContents))
    shortcuts.triggered.connect(
        lambda: QMessageBox.information(window, "Keyboard shortcuts", SHORTCUTS_HELP)
    )
    help_menu.addAction(shortcuts)
    about = QAction("&About Keystead", window)
    about.triggered.connect(
        lambda: QMessageBox.about(
            window,
            "About Keystead",
            "Keystead — key management workstation for security officers.",
        )
    )
    help_menu.addAction(about)
    return bar
