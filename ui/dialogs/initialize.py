"""First start: create the workstation, its first security officer, and the token that holds
the audit keys: the embedded token created now, or a present token (refused before anything is
created when it cannot hold them)."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.names import MIN_PASSPHRASE_LENGTH, validate_name, validate_new_passphrase
from app.domain.pins import check_new_pins
from app.errors import KeysteadError, ValidationError
from app.services.workstation import AuditTokenChoice, SoftTokenRequest
from ui.widgets.form import ErrorLine, heading, hint
from ui.widgets.secret_field import SecretField


@dataclass(frozen=True)
class InitializeRequest:
    operator: str
    passphrase: str
    soft_token: SoftTokenRequest | None
    audit_token: AuditTokenChoice | None = None


class InitializeDialog(QDialog):
    """Collects what ``Workstation.initialize`` needs; the controller runs it off the GUI thread."""

    submitted = Signal(object)  # InitializeRequest

    def __init__(self, home_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Initialize workstation — Keystead")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Initialize this workstation", self))
        layout.addWidget(
            hint(
                f"Keystead will create an encrypted database in {home_text} and enrol you as its "
                "first security officer. Your passphrase opens the database; it is never stored.",
                self,
            )
        )

        officer = QGroupBox("First security officer", self)
        form = QFormLayout(officer)
        self.operator = QLineEdit(self)
        self.operator.setPlaceholderText("e.g. Alice Martin")
        self.passphrase = SecretField(f"at least {MIN_PASSPHRASE_LENGTH} characters", self)
        self.confirmation = SecretField("repeat the passphrase", self)
        form.addRow("Name:", self.operator)
        form.addRow("Passphrase:", self.passphrase)
        form.addRow("Confirm passphrase:", self.confirmation)
        layout.addWidget(officer)

        self.create_token = QCheckBox(
            "Create the embedded SoftHSM token (no hardware token attached)", self
        )
        self.create_token.setChecked(True)
        layout.addWidget(self.create_token)
        self.token_box = QGroupBox("Embedded token", self)
        token_form = QFormLayout(self.token_box)
        self.token_label = QLineEdit("Keystead", self)
        self.token_label.setMaxLength(32)
        self.user_pin = SecretField("4 or more characters", self)
        self.user_pin_confirm = SecretField("repeat the user PIN", self)
        self.so_pin = SecretField("security officer PIN, different from the user PIN", self)
        self.so_pin_confirm = SecretField("repeat the SO PIN", self)
        token_form.addRow("Token label:", self.token_label)
        token_form.addRow("User PIN:", self.user_pin)
        token_form.addRow("Confirm user PIN:", self.user_pin_confirm)
        token_form.addRow("SO PIN:", self.so_pin)
        token_form.addRow("Confirm SO PIN:", self.so_pin_confirm)
        layout.addWidget(self.token_box)

        self.use_present = QCheckBox(
            "Keep the audit keys on a present token instead (HMAC and EC P-256 needed)", self
        )
        layout.addWidget(self.use_present)
        self.present_box = QGroupBox("Audit token", self)
        present_form = QFormLayout(self.present_box)
        self.module_path = QLineEdit(self)
        self.module_path.setPlaceholderText("the token's PKCS#11 library, e.g. /usr/lib/…/x.so")
        self.present_token = QLineEdit(self)
        self.present_token.setPlaceholderText("its label or serial")
        self.present_pin = SecretField("its user PIN", self)
        present_form.addRow("Module:", self.module_path)
        present_form.addRow("Token:", self.present_token)
        present_form.addRow("User PIN:", self.present_pin)
        layout.addWidget(self.present_box)
        self.present_box.setEnabled(False)
        self.create_token.toggled.connect(self.token_box.setEnabled)
        self.use_present.toggled.connect(self.present_box.setEnabled)
        # One or the other holds the audit keys.
        self.use_present.toggled.connect(self._present_chosen)
        self.create_token.toggled.connect(self._embedded_chosen)

        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.create_button = QPushButton("Create workstation", self)
        self.create_button.setDefault(True)
        self.buttons.addButton(self.create_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        # One column for every field of the three groups (they started at three x positions).
        fields = {
            form: (self.operator, self.passphrase, self.confirmation),
            token_form: (
                self.token_label,
                self.user_pin,
                self.user_pin_confirm,
                self.so_pin,
                self.so_pin_confirm,
            ),
            present_form: (self.module_path, self.present_token, self.present_pin),
        }
        labels = [f.labelForField(w) for f, ws in fields.items() for w in ws]
        width = max(label.sizeHint().width() for label in labels if label is not None)
        for label in labels:
            if label is not None:
                label.setMinimumWidth(width)
        # Typing starts in Name: the new-user trial typed a name into nothing and every later
        # field got the value meant for the one before it.
        self.operator.setFocus(Qt.FocusReason.OtherFocusReason)

    def _present_chosen(self, on: bool) -> None:
        if on:
            self.create_token.setChecked(False)

    def _embedded_chosen(self, on: bool) -> None:
        if on:
            self.use_present.setChecked(False)

    def _request(self) -> InitializeRequest:
        operator = validate_name(self.operator.text(), "Operator name")
        validate_new_passphrase(self.passphrase.text(), self.confirmation.text())
        soft = None
        if self.create_token.isChecked():
            label = validate_name(self.token_label.text(), "Token label")
            if self.user_pin.text() != self.user_pin_confirm.text():
                raise ValidationError("The user PIN and its confirmation differ.")
            if self.so_pin.text() != self.so_pin_confirm.text():
                raise ValidationError("The SO PIN and its confirmation differ.")
            check_new_pins(self.so_pin.text(), self.user_pin.text())  # the one PIN policy
            soft = SoftTokenRequest(label, self.so_pin.text(), self.user_pin.text())
        audit = None
        if self.use_present.isChecked():
            module = self.module_path.text().strip()
            token = self.present_token.text().strip()
            if not module or not token:
                raise ValidationError("Name the audit token's module and the token itself.")
            audit = AuditTokenChoice(token, self.present_pin.text(), (module,))
        return InitializeRequest(operator, self.passphrase.text(), soft, audit)

    def _submit(self) -> None:
        try:
            request = self._request()
        except KeysteadError as exc:
            self.error.show_error(exc.message)
            return
        self.error.clear_error()
        self.set_busy(True)
        self.submitted.emit(request)

    def set_busy(self, busy: bool) -> None:
        self.create_button.setEnabled(not busy)
        self.create_button.setText("Creating…" if busy else "Create workstation")

    def failed(self, message: str) -> None:
        self.set_busy(False)
        self.error.show_error(message)

    def clear_secrets(self) -> None:
        for field in (
            self.passphrase,
            self.confirmation,
            self.user_pin,
            self.user_pin_confirm,
            self.so_pin,
            self.so_pin_confirm,
            self.present_pin,
        ):
            field.clear()
