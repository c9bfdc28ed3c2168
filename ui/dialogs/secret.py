"""Ask for one secret: a token PIN or a passphrase."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QVBoxLayout, QWidget

from app.services.prompter import SecretKind
from ui.widgets.form import ErrorLine, hint
from ui.widgets.secret_field import SecretField


class SecretDialog(QDialog):
    """One PIN or passphrase; the text is taken once and the field cleared."""

    def __init__(
        self, kind: SecretKind, prompt: str, parent: QWidget | None = None, note: str = ""
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Enter {kind.value}")
        self.setMinimumWidth(420)
        layout = QVBoxLayout(self)
        layout.addWidget(hint(prompt, self))
        form = QFormLayout()
        self.field = SecretField(kind.value, self)
        form.addRow(kind.value.capitalize() + ":", self.field)
        layout.addLayout(form)
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        if note:
            self.error.show_error(note)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._value = ""

    def _accept(self) -> None:
        if not self.field.text():
            self.error.show_error("Enter the value, or Cancel.")
            return
        self._value = self.field.take()
        self.accept()

    def secret(self) -> str:
        value, self._value = self._value, ""
        return value
