"""The "Use" actions of the inventory (sign, verify, encrypt, decrypt, export public key).

One QAction per use; ``set_key`` enables what the key's state and purpose allow (the same rule
``KeyUseService.authorize`` applies, from ``app.domain.usage``) and puts the reason in the
tooltip of the rest. Each opens ``KeyUseDialog``; the service checks again on the core thread.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from app.domain.keys import KeyRecord
from app.domain.usage import Operation, state_refusal
from ui.dialogs.key_use import EXPORT, KeyUseDialog
from ui.icons import icon
from ui.session import GuiSession

_LABELS = {
    Operation.SIGN.value: ("Sign file…", "verify"),
    Operation.VERIFY.value: ("Verify signature…", "verify"),
    Operation.ENCRYPT.value: ("Encrypt file…", "lock"),
    Operation.DECRYPT.value: ("Decrypt file…", "login"),
    EXPORT: ("Export public key…", "export"),
}


def use_refusal(key: KeyRecord | None, operation: str) -> str | None:
    """Why ``operation`` is not offered for ``key`` (None: it is)."""
    if key is None:
        return "Select a managed key."
    if operation == EXPORT:
        return "A secret key has no public key." if key.algorithm.symmetric else None
    op = Operation(operation)
    if key.purpose is not op.purpose:
        return f"This key is for {key.purpose.value}, not {op.purpose.value}."
    refusal = state_refusal(key.state, op)
    return refusal


class UseActions(QObject):
    used = Signal(object)  # the dialog's result text, after a use (the inventory refreshes)

    def __init__(self, session: GuiSession, parent: QWidget) -> None:
        super().__init__(parent)
        self.session = session
        self.parent_widget = parent
        self.key: KeyRecord | None = None
        self.actions: dict[str, QAction] = {}
        for operation, (label, icon_name) in _LABELS.items():
            qaction = QAction(icon(icon_name), label, parent)
            qaction.triggered.connect(lambda _=False, op=operation: self.open(op))
            self.actions[operation] = qaction
        self.menu = QMenu("Use", parent)
        for qaction in self.actions.values():
            self.menu.addAction(qaction)
        self.button = QToolButton(parent)
        self.button.setText("Use")
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.setIcon(icon("verify"))
        self.button.setToolTip("Use the selected key: sign, verify, encrypt, decrypt, export")
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.button.setMenu(self.menu)
        self.set_key(None)

    def all(self) -> list[QAction]:
        return list(self.actions.values())

    def set_key(self, key: KeyRecord | None) -> None:
        self.key = key
        for operation, qaction in self.actions.items():
            why_not = use_refusal(key, operation)
            qaction.setEnabled(why_not is None)
            qaction.setToolTip(why_not or _LABELS[operation][0].rstrip("…"))
        self.button.setEnabled(key is not None)

    def open(self, operation: str) -> KeyUseDialog | None:
        if self.key is None:
            return None
        dialog = KeyUseDialog(self.session, self.key, operation, self.parent_widget)
        dialog.finished.connect(lambda _code: self.used.emit(dialog.result_text))
        dialog.open()
        return dialog
