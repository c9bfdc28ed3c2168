"""Later starts: an operator opens the workstation with their passphrase."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.widgets.form import ErrorLine, heading, hint
from ui.widgets.secret_field import SecretField


class UnlockDialog(QDialog):
    submitted = Signal(str, str)  # operator, passphrase

    def __init__(self, home_text: str, operators: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Unlock workstation — Keystead")
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Unlock workstation", self))
        layout.addWidget(hint(f"Workstation: {home_text}", self))
        form = QFormLayout()
        self.operator = QComboBox(self)
        self.operator.setEditable(True)
        self.operator.addItems(operators)
        self.passphrase = SecretField("your passphrase", self)
        form.addRow("Operator:", self.operator)
        form.addRow("Passphrase:", self.passphrase)
        layout.addLayout(form)
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.unlock_button = QPushButton("Unlock", self)
        self.unlock_button.setDefault(True)
        buttons.addButton(self.unlock_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self._submit)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.passphrase.setFocus()

    def _submit(self) -> None:
        operator = self.operator.currentText().strip()
        if not operator:
            self.error.show_error("Choose or type your operator name.")
            return
        if not self.passphrase.text():
            self.error.show_error("Enter your passphrase.")
            return
        self.error.clear_error()
        self.set_busy(True)
        self.submitted.emit(operator, self.passphrase.take())

    def set_busy(self, busy: bool) -> None:
        self.unlock_button.setEnabled(not busy)
        self.unlock_button.setText("Unlocking…" if busy else "Unlock")

    def failed(self, message: str) -> None:
        self.set_busy(False)
        self.error.show_error(message)
        self.passphrase.setFocus()
