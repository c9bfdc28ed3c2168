"""Generate a key: token, algorithm, purpose, name and backup policy, with the flags it implies."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.algorithms import Algorithm, Purpose, allowed_purposes, usage_for
from app.domain.backup_rules import unwrappable_reason
from app.domain.names import MAX_NAME_LENGTH, validate_name
from app.errors import KeysteadError
from app.hsm.module import TokenInfo
from ui.widgets.form import ErrorLine, heading, hint


@dataclass(frozen=True)
class GenerateRequest:
    token_serial: str
    algorithm: Algorithm
    purpose: Purpose
    name: str
    backup_able: bool
    allow_wider: bool = False


def _flags(usages: frozenset[object]) -> str:
    names = sorted(getattr(u, "value", str(u)) for u in usages)
    return ", ".join(names) if names else "none"


class GenerateKeyDialog(QDialog):
    submitted = Signal(object)  # GenerateRequest

    def __init__(self, tokens: list[TokenInfo], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Generate key — Keystead")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Generate a key on a token", self))
        layout.addWidget(
            hint(
                "The key is created inside the token and starts PRE-ACTIVE; "
                "it cannot be used until it is activated.",
                self,
            )
        )
        form = QFormLayout()
        self.token = QComboBox(self)
        for info in tokens:
            self.token.addItem(f"{info.label}  (serial {info.serial})", info.serial)
        self.algorithm = QComboBox(self)
        for algorithm in Algorithm:
            self.algorithm.addItem(algorithm.value, algorithm)
        self.algorithm.setCurrentIndex(list(Algorithm).index(Algorithm.AES_256))
        self.purpose = QComboBox(self)
        self.name = QLineEdit(self)
        self.name.setMaxLength(MAX_NAME_LENGTH)
        self.name.setPlaceholderText("unique, e.g. payments-kek-2026")
        self.backup = QCheckBox("Must be backed up (EXTRACTABLE)", self)
        self.wider = QCheckBox("Accept the wider usage the token insists on (recorded)", self)
        self.wider.setToolTip(
            "Some tokens (tpm2-pkcs11) make key pairs only with both sign and decrypt. Keystead "
            "refuses such a key unless this is ticked; the extra usage is then recorded."
        )
        form.addRow("Token:", self.token)
        form.addRow("Algorithm:", self.algorithm)
        form.addRow("Purpose:", self.purpose)
        form.addRow("Name:", self.name)
        form.addRow("Backup:", self.backup)
        form.addRow("Usage:", self.wider)
        layout.addLayout(form)
        self.preview = QLabel(self)
        self.preview.setObjectName("preview")
        self.preview.setWordWrap(True)
        layout.addWidget(self.preview)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)  # the token reports no progress: show that work goes on
        self.progress.setTextVisible(False)
        self.progress.hide()
        layout.addWidget(self.progress)
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.generate_button = QPushButton("Generate", self)
        self.generate_button.setDefault(True)
        buttons.addButton(self.generate_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self._submit)
        buttons.rejected.connect(self.reject)
        self.cancel_button = buttons.button(QDialogButtonBox.StandardButton.Cancel)
        layout.addWidget(buttons)
        self.algorithm.currentIndexChanged.connect(self._algorithm_changed)
        self.purpose.currentIndexChanged.connect(self._update_preview)
        self.backup.toggled.connect(self._update_preview)
        self._algorithm_changed()
        if not tokens:
            self.error.show_error("Log in to a token first (Tokens page).")
            self.generate_button.setEnabled(False)

    def _algorithm_changed(self) -> None:
        algorithm: Algorithm = self.algorithm.currentData()
        self.purpose.blockSignals(True)
        self.purpose.clear()
        for purpose in allowed_purposes(algorithm):
            self.purpose.addItem(purpose.title, purpose)
        self.purpose.blockSignals(False)
        never = unwrappable_reason(algorithm)  # the backup's own rule, as generation applies it
        if never is not None:
            self.backup.setChecked(False)
        self.backup.setEnabled(never is None)
        self.backup.setToolTip(f"Not for {algorithm.value}: {never}." if never else "")
        self._update_preview()

    def _update_preview(self) -> None:
        algorithm: Algorithm = self.algorithm.currentData()
        purpose: Purpose | None = self.purpose.currentData()
        if purpose is None:
            return
        plan = usage_for(algorithm, purpose)
        extractable = "yes (wrapped only under a backup key)" if self.backup.isChecked() else "no"
        if algorithm.symmetric:
            usage = f"Usage: {_flags(plan.secret)}."
        else:
            usage = f"Private key: {_flags(plan.private)}. Public key: {_flags(plan.public)}."
        slow = " Generation may take several seconds." if algorithm.spec.slow else ""
        self.preview.setText(f"{usage} Sensitive: yes. Extractable: {extractable}.{slow}")

    def request(self) -> GenerateRequest:
        return GenerateRequest(
            token_serial=self.token.currentData(),
            algorithm=self.algorithm.currentData(),
            purpose=self.purpose.currentData(),
            name=validate_name(self.name.text()),
            backup_able=self.backup.isChecked(),
            allow_wider=self.wider.isChecked(),
        )

    def _submit(self) -> None:
        try:
            request = self.request()
        except KeysteadError as exc:
            self.error.show_error(exc.message)
            return
        self.error.clear_error()
        self.set_busy(True)
        self.submitted.emit(request)

    def reject(self) -> None:
        if self.cancel_button.isEnabled():
            super().reject()

    def set_busy(self, busy: bool) -> None:
        for widget in (
            self.token,
            self.algorithm,
            self.purpose,
            self.name,
            self.wider,
        ):
            widget.setEnabled(not busy)
        never = unwrappable_reason(self.algorithm.currentData())
        self.backup.setEnabled(not busy and never is None)
        self.generate_button.setEnabled(not busy)
        self.progress.setVisible(busy)
        # C_GenerateKey(Pair) cannot be interrupted: say so rather than offer a Cancel that lies.
        self.cancel_button.setEnabled(not busy)
        self.cancel_button.setToolTip(
            "Generation inside the token cannot be interrupted." if busy else ""
        )
        self.generate_button.setText("Generating on the token…" if busy else "Generate")

    def failed(self, message: str) -> None:
        self.set_busy(False)
        self.error.show_error(message)
