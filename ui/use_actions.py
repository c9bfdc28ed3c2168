"""The "Use" actions of the inventory (sign, verify, encrypt, decrypt, export public key,
wrap for a recipient HSM, import a wrapped key or a public key).

One QAction per use; ``set_key`` enables what the key's state and purpose allow (the same rule
``KeyUseService.authorize`` applies, from ``app.domain.usage``, and ``distribution_refusal``)
and puts the reason in the tooltip of the rest; the session's role gate keeps disabled what
the operator's roles do not allow (an auditor verifies and exports public keys, nothing else),
its tooltip naming the role. Each opens a dialog; the service checks again on the core thread.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QMenu, QToolButton, QWidget

from app.domain.keys import KeyRecord
from app.domain.usage import Operation, state_refusal
from app.services.distribution import distribution_refusal
from ui.dialogs.distribution import ImportPublicDialog, ImportWrappedDialog, WrapForDialog
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
WRAP_FOR = "wrap-for"
IMPORT_WRAPPED = "import-wrapped"
IMPORT_PUBLIC = "import-public"
_DISTRIBUTION = {
    WRAP_FOR: ("Wrap for recipient HSM…", "export"),
    IMPORT_WRAPPED: ("Import wrapped key…", "adopt"),
    IMPORT_PUBLIC: ("Import public key…", "adopt"),
}
# The action class each use starts (app.domain.roles); export of a public key is open to all.
ROLE_ACTIONS = {
    Operation.SIGN.value: "key.sign",
    Operation.VERIFY.value: "key.verify",
    Operation.ENCRYPT.value: "key.encrypt",
    Operation.DECRYPT.value: "key.decrypt",
    WRAP_FOR: "key.distribute",
    IMPORT_WRAPPED: "key.import",
    IMPORT_PUBLIC: "key.import",
}


def use_refusal(key: KeyRecord | None, operation: str) -> str | None:
    """Why ``operation`` is not offered for ``key`` (None: it is)."""
    if operation in (IMPORT_WRAPPED, IMPORT_PUBLIC):
        return None  # not about the selected key
    if key is None:
        return "Select a managed key."
    if operation == WRAP_FOR:
        refusal = distribution_refusal(key)
        return None if refusal is None else refusal + "."
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
        for operation, (label, icon_name) in {**_LABELS, **_DISTRIBUTION}.items():
            qaction = QAction(icon(icon_name), label, parent)
            qaction.triggered.connect(lambda _=False, op=operation: self.open(op))
            self.actions[operation] = qaction
        self.menu = QMenu("Use", parent)
        self.menu.setToolTipsVisible(True)  # a disabled use says why on hover
        for operation, qaction in self.actions.items():
            if operation == WRAP_FOR:
                self.menu.addSeparator()
            self.menu.addAction(qaction)
        for operation, action in ROLE_ACTIONS.items():
            session.gate.guard(self.actions[operation], action)
        self.button = QToolButton(parent)
        self.button.setText("Use")
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.setIcon(icon("verify"))
        self.button.setToolTip(
            "Use the selected key: sign, verify, encrypt, decrypt, export, wrap for another "
            "HSM; import a wrapped or public key"
        )
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
            label = {**_LABELS, **_DISTRIBUTION}[operation][0]
            qaction.setToolTip(why_not or label.rstrip("…"))
        self.button.setEnabled(True)  # the imports need no selected key

    def open(self, operation: str) -> QDialog | None:
        if not self.actions[operation].isEnabled():
            return None
        dialog: QDialog
        if operation == IMPORT_WRAPPED:
            dialog = ImportWrappedDialog(self.session, self.parent_widget)
        elif operation == IMPORT_PUBLIC:
            dialog = ImportPublicDialog(self.session, self.parent_widget)
        elif self.key is None:
            return None
        elif operation == WRAP_FOR:
            dialog = WrapForDialog(self.session, self.key, self.parent_widget)
        else:
            dialog = KeyUseDialog(self.session, self.key, operation, self.parent_widget)
        used = dialog
        dialog.finished.connect(lambda _code: self.used.emit(getattr(used, "result_text", "")))
        dialog.open()
        return dialog
