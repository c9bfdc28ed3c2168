"""Later starts: an operator opens the workstation with their passphrase."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.errors import KeysteadError
from app.paths import Home
from app.storage.unlock_failures import UnlockFailures
from ui.widgets.form import ErrorLine, heading, hint
from ui.widgets.secret_field import SecretField


class UnlockDialog(QDialog):
    submitted = Signal(str, str)  # operator, passphrase

    def __init__(
        self,
        home_text: str,
        operators: list[str],
        parent: QWidget | None = None,
        failures: str = "",
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Unlock workstation — Keystead")
        self.setMinimumWidth(520)
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
        self.failures = hint(failures, self)
        self.failures.setObjectName("unlockFailures")
        self.failures.setVisible(bool(failures))
        layout.addWidget(self.failures)
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

    def failed(self, message: str, failures: str = "") -> None:
        self.set_busy(False)
        self.failures.setText(failures)
        self.failures.setVisible(bool(failures))
        self.error.show_error(message)
        # Grow to the message: a long one (a damaged database, a full disk) was cut off
        # mid-sentence at 1024x700, with what to do in the hidden part (attack2 A5).
        self.adjustSize()
        self.passphrase.setFocus()


def failures_note(home: Home) -> str:
    """ "N failed unlock attempts since the last unlock." from the side record ("" if none)."""
    try:
        record = UnlockFailures(home.unlock_failures)
        count = len(record.unsealed()) + record.lost()
    except KeysteadError as exc:
        return exc.message
    if not count:
        return ""
    return (
        f"{count} failed unlock attempt{'s' if count != 1 else ''} since the last successful "
        "unlock; they are recorded in the audit history when the workstation opens."
    )


class LockScreen(QWidget):
    """What stays on screen while the workstation is locked: nothing about any key."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lockScreen")
        self.setWindowTitle("Keystead — locked")
        self.resize(1024, 700)
        layout = QVBoxLayout(self)
        layout.addSpacing(48)
        label = heading("Keystead is locked", self)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(label)
        note = hint("Unlock with your operator name and passphrase.", self)
        note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(note)
        layout.addStretch(1)
