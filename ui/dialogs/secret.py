"""Ask for one secret: a token PIN or a passphrase.

Used two ways: ``exec()`` and ``secret()`` (the prompter), or kept open with ``on_submit``
(logging in): a wrong PIN or a back-off then shows in the same dialog, and during a back-off
OK stays disabled while a countdown runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from app.services.prompter import SecretKind
from ui.widgets.form import ErrorLine, hint
from ui.widgets.secret_field import SecretField


class SecretDialog(QDialog):
    """One PIN or passphrase; the text is taken once and the field cleared."""

    def __init__(
        self,
        kind: SecretKind,
        prompt: str,
        parent: QWidget | None = None,
        note: str = "",
        on_submit: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Enter {kind.value}")
        self.setMinimumWidth(420)
        self._on_submit = on_submit
        layout = QVBoxLayout(self)
        layout.addWidget(hint(prompt, self))
        form = QFormLayout()
        self.field = SecretField(kind.value, self)
        form.addRow(kind.value[:1].upper() + kind.value[1:] + ":", self.field)
        layout.addLayout(form)
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        self.countdown = QLabel(self)
        self.countdown.setObjectName("warning")
        self.countdown.hide()
        layout.addWidget(self.countdown)
        if note:
            self.error.show_error(note)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._value = ""
        self._wait = 0
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.tick)

    def _accept(self) -> None:
        if self._wait > 0 or not self.ok_button.isEnabled():
            return
        if not self.field.text():
            self.error.show_error("Enter the value, or Cancel.")
            return
        if self._on_submit is not None:
            self.set_busy(True)
            self._on_submit(self.field.take())
            return
        self._value = self.field.take()
        self.accept()

    def secret(self) -> str:
        value, self._value = self._value, ""
        return value

    # --- kept open (on_submit) -------------------------------------------------------------

    def set_busy(self, busy: bool) -> None:
        self.ok_button.setEnabled(not busy and self._wait <= 0)
        self.field.setEnabled(not busy)

    def failed(self, message: str) -> None:
        """The secret was refused: say why, clear the field, let the officer try again."""
        self.set_busy(False)
        self.field.clear()
        self.error.show_error(message)
        self.field.setFocus()
        self.adjustSize()  # grow to show the message, never clip it

    def hold(self, seconds: float, message: str) -> None:
        """A back-off: OK disabled and a countdown until ``seconds`` have passed."""
        self.error.show_error(message)
        self._wait = max(1, math.ceil(seconds))
        self.set_busy(False)
        self._show_wait()
        self._timer.start()
        self.adjustSize()

    def tick(self) -> None:
        """One second of the back-off has passed."""
        self._wait = max(0, self._wait - 1)
        self._show_wait()
        if self._wait == 0:
            self._timer.stop()
            self.set_busy(False)

    def _show_wait(self) -> None:
        self.ok_button.setEnabled(self._wait <= 0)
        self.countdown.setVisible(self._wait > 0)
        self.countdown.setText(f"Next try possible in {self._wait} s.")
