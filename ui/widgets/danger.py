"""The one rule for irreversible actions (destroy, mark compromised, initialise a token,
remove the module that holds the audit token):

- the confirming button is red (object name ``danger``) and says what it does;
- it is never the default button, and no button of the dialog is an auto-default one, so
  Enter neither confirms nor cancels (a stray Enter in the typed field does nothing);
- it stays disabled until the officer has typed the exact confirmation text.

``require_typed`` wires one dialog to that rule; tests check it on each such dialog.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLineEdit, QPushButton

_DEFAULTED = (QDialogButtonBox.ButtonRole.AcceptRole, QDialogButtonBox.ButtonRole.YesRole)


def require_typed(
    dialog: QDialog,
    button: QPushButton,
    typed: QLineEdit,
    expected: str,
    also: Callable[[], bool] = lambda: True,
) -> Callable[[], None]:
    """Make ``button`` the dialog's irreversible button, enabled only when ``typed`` holds
    ``expected`` exactly and ``also()`` is true. Returns the update function (call it when
    whatever ``also`` reads changes)."""
    button.setObjectName("danger")
    box = button.parentWidget()
    if isinstance(box, QDialogButtonBox) and box.buttonRole(button) in _DEFAULTED:
        # A button box makes its first accept button the default when shown: give the
        # irreversible button a role it never defaults, and let it accept as before.
        box.removeButton(button)
        box.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        button.clicked.connect(lambda _checked=False: box.accepted.emit())
    for push in dialog.findChildren(QPushButton):
        push.setDefault(False)
        push.setAutoDefault(False)
    typed.setPlaceholderText(expected)
    typed.setToolTip("Type it exactly. Enter does not confirm: use the red button.")

    def update() -> None:
        button.setEnabled(typed.text() == expected and also())

    typed.textChanged.connect(lambda _text: update())
    update()
    return update


def is_irreversible_safe(dialog: QDialog, button: QPushButton) -> bool:
    """True if the dialog follows the rule: red button, no default, no auto-default."""
    return button.objectName() == "danger" and not any(
        push.isDefault() or push.autoDefault() for push in dialog.findChildren(QPushButton)
    )
