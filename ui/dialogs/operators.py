"""Dialogs of the Operators and Policy pages: a new operator (who types their own passphrase),
roles, a new passphrase, one policy rule, the idle-lock time."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.domain.approval import ACTION_TITLES, FLOORS, MAX_APPROVALS, SINGLE_ONLY, PolicyRule
from app.domain.names import MIN_PASSPHRASE_LENGTH
from app.domain.roles import AU, Role
from ui.widgets.form import ErrorLine, heading, hint
from ui.widgets.secret_field import SecretField


class RoleBoxes(QWidget):
    def __init__(
        self, chosen: frozenset[Role], parent: QWidget | None = None, approvers: bool = False
    ) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.boxes: dict[Role, QCheckBox] = {}
        for role in Role:
            if approvers and role is AU:
                continue  # an auditor changes nothing, so approves nothing
            box = QCheckBox(role.title, self)
            box.setObjectName(f"role-{role.value}")
            box.setChecked(role in chosen)
            row.addWidget(box)
            self.boxes[role] = box

    def roles(self) -> frozenset[Role]:
        return frozenset(r for r, b in self.boxes.items() if b.isChecked())


def _buttons(dialog: QDialog, ok_text: str) -> QDialogButtonBox:
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, dialog
    )
    buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
    buttons.rejected.connect(dialog.reject)
    return buttons


class AddOperatorDialog(QDialog):
    """The officer names the new operator and their roles; the new operator types their own
    passphrase, twice, here."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add operator — Keystead")
        self.setMinimumWidth(480)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Add operator", self))
        layout.addWidget(
            hint(
                "Hand the keyboard to the new operator for the passphrase: they type it twice, "
                f"at least {MIN_PASSPHRASE_LENGTH} characters, not their name. It opens their "
                "own keyslot.",
                self,
            )
        )
        form = QFormLayout()
        self.name = QLineEdit(self)
        self.name.setObjectName("operatorName")
        self.roles = RoleBoxes(frozenset({Role.KEY_CUSTODIAN}), self)
        self.passphrase = SecretField("new operator's passphrase", self)
        self.passphrase.setObjectName("newPassphrase")
        self.confirm = SecretField("again", self)
        self.confirm.setObjectName("confirmPassphrase")
        form.addRow("Name:", self.name)
        form.addRow("Roles:", self.roles)
        form.addRow("Passphrase:", self.passphrase)
        form.addRow("Again:", self.confirm)
        layout.addLayout(form)
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        buttons = _buttons(self, "Add")
        buttons.accepted.connect(self._accept)
        layout.addWidget(buttons)
        self._values: tuple[str, frozenset[Role], str, str] | None = None

    def _accept(self) -> None:
        if not self.name.text().strip():
            self.error.show_error("Give the operator's name.")
            return
        if not self.roles.roles():
            self.error.show_error("Tick at least one role.")
            return
        self._values = (
            self.name.text().strip(),
            self.roles.roles(),
            self.passphrase.take(),
            self.confirm.take(),
        )
        self.accept()

    def values(self) -> tuple[str, frozenset[Role], str, str]:
        values, self._values = self._values, None
        if values is None:
            raise RuntimeError("values() before the dialog was accepted")
        return values


class RolesDialog(QDialog):
    def __init__(self, name: str, roles: frozenset[Role], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Roles of {name} — Keystead")
        layout = QVBoxLayout(self)
        layout.addWidget(heading(f"Roles of '{name}'", self))
        self.boxes = RoleBoxes(roles, self)
        layout.addWidget(self.boxes)
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        buttons = _buttons(self, "Change roles")
        buttons.accepted.connect(self._accept)
        layout.addWidget(buttons)

    def _accept(self) -> None:
        if not self.boxes.roles():
            self.error.show_error("Tick at least one role.")
            return
        self.accept()

    def roles(self) -> frozenset[Role]:
        return self.boxes.roles()


class PassphraseDialog(QDialog):
    """A new passphrase typed twice by ``name`` (and their current one for their own change)."""

    def __init__(self, name: str, own: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"New passphrase for {name} — Keystead")
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        layout.addWidget(heading(f"New passphrase for '{name}'", self))
        layout.addWidget(
            hint(
                f"'{name}' types it, twice: at least {MIN_PASSPHRASE_LENGTH} characters, not "
                "their name. Only their own keyslot is re-wrapped.",
                self,
            )
        )
        form = QFormLayout()
        self.current: SecretField | None = None
        if own:
            self.current = SecretField("current passphrase", self)
            self.current.setObjectName("currentPassphrase")
            form.addRow("Current:", self.current)
        self.passphrase = SecretField("new passphrase", self)
        self.passphrase.setObjectName("newPassphrase")
        self.confirm = SecretField("again", self)
        self.confirm.setObjectName("confirmPassphrase")
        form.addRow("New:", self.passphrase)
        form.addRow("Again:", self.confirm)
        layout.addLayout(form)
        buttons = _buttons(self, "Set passphrase")
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)

    def values(self) -> tuple[str, str, str]:
        current = self.current.take() if self.current is not None else ""
        return current, self.passphrase.take(), self.confirm.take()


class RuleDialog(QDialog):
    def __init__(self, rule: PolicyRule, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Policy: {rule.action} — Keystead")
        layout = QVBoxLayout(self)
        layout.addWidget(heading(ACTION_TITLES.get(rule.action, rule.action), self))
        floor = FLOORS.get(rule.action, 0)
        layout.addWidget(
            hint(
                "Approvers besides the one who starts it. "
                + (f"Never fewer than {floor} (two people). " if floor else "")
                + (
                    "Restricting use never waits for a quorum. "
                    if rule.action in SINGLE_ONLY
                    else ""
                )
                + "Changing the policy needs the policy's own current approvals.",
                self,
            )
        )
        form = QFormLayout()
        self.approvals = QSpinBox(self)
        self.approvals.setObjectName("approvals")
        self.approvals.setRange(0, MAX_APPROVALS)  # the core refuses below the floor
        self.approvals.setValue(rule.approvals)
        self.roles = RoleBoxes(rule.roles, self, approvers=True)
        form.addRow("Approvers:", self.approvals)
        form.addRow("Approver roles:", self.roles)
        layout.addLayout(form)
        buttons = _buttons(self, "Change rule")
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)

    def values(self) -> tuple[int, frozenset[Role]]:
        return self.approvals.value(), self.roles.roles()


class IdleLockDialog(QDialog):
    def __init__(self, minutes: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Idle lock — Keystead")
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Lock after minutes without input", self))
        self.minutes = QSpinBox(self)
        self.minutes.setObjectName("idleMinutes")
        self.minutes.setRange(1, 60)
        self.minutes.setValue(minutes)
        layout.addWidget(self.minutes)
        buttons = _buttons(self, "Set")
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
