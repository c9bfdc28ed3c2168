"""Dialogs for token administration: initialise (what is lost, typed label), PINs, new token."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.domain.pins import DEFAULT_LIMITS, pair_problem, pin_problem
from app.hsm.module import TokenInfo
from app.services.rebind import RebindCandidate
from app.services.token_admin import InitImpact
from ui.widgets.danger import require_typed
from ui.widgets.form import ErrorLine, heading, hint
from ui.widgets.secret_field import SecretField


def _buttons(dialog: QDialog, ok_text: str) -> tuple[QDialogButtonBox, QPushButton]:
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, dialog
    )
    ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
    ok.setText(ok_text)
    buttons.rejected.connect(dialog.reject)
    return buttons, ok


def _pin_problem(pin: str, again: str, limits: tuple[int, int], what: str) -> str:
    problem = pin_problem(pin, what, limits)
    if problem:
        return problem
    if pin != again:
        return f"The two {what}s differ."
    return ""


class InitTokenDialog(QDialog):
    """Erase a token: says what would be lost, refuses what policy refuses, wants the label."""

    def __init__(self, impact: InitImpact, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        token = impact.token
        self.token = token
        self.setWindowTitle(f"Initialise token — {token.label}")
        self.setMinimumWidth(540)
        layout = QVBoxLayout(self)
        layout.addWidget(heading(f"Initialise token '{token.label}' (serial {token.serial})", self))
        refusal = impact.refusal
        self.lost = lost = QLabel(self)
        lost.setObjectName("errorLine" if refusal else "warning")
        lost.setWordWrap(True)
        if refusal is not None:
            lost.setText(refusal.message)
        else:
            seen = (
                "An unknown number of objects (log in to the token first to count them)"
                if impact.objects_seen is None
                else f"{impact.objects_seen} object(s) the workstation can see"
            )
            text = (
                f"Everything on this token is destroyed and cannot be recovered: {seen}, and "
                "every private object. The token gets a new label and keeps its SO PIN; it has "
                "no user PIN until you set one."
            )
            if impact.tombstones:
                text += f" {impact.tombstones} destroyed key record(s) keep their history."
            lost.setText(text)
        layout.addWidget(lost)
        form = QFormLayout()
        self.new_label = QLineEdit(token.label, self)
        self.new_label.setMaxLength(32)
        self.so_pin = SecretField("SO PIN", self)
        self.confirm = QLineEdit(self)
        self.confirm.setPlaceholderText(token.label)
        form.addRow("New label:", self.new_label)
        form.addRow("SO PIN:", self.so_pin)
        form.addRow("Type the current label:", self.confirm)
        layout.addLayout(form)
        layout.addWidget(hint("The SO PIN goes to the token only; it is never stored.", self))
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        buttons, self.ok = _buttons(self, "Erase and initialise")
        self.ok.setIcon(QIcon())  # no green check on an erase
        buttons.accepted.connect(self._accept)
        layout.addWidget(buttons)
        self._refused = refusal is not None
        for field in (self.new_label, self.so_pin, self.confirm):
            field.setEnabled(not self._refused)
        self._enable = require_typed(
            self,
            self.ok,
            self.confirm,
            token.label,
            also=lambda: not self._refused and bool(self.new_label.text().strip()),
        )
        self.confirm.textChanged.connect(self._update)
        self.new_label.textChanged.connect(self._update)
        self._update()

    def _update(self) -> None:
        self._enable()
        self.ok.setToolTip(
            ""
            if self.ok.isEnabled()
            else f"Type the token's current label '{self.token.label}' to enable."
        )

    def _accept(self) -> None:
        if not self.so_pin.text():
            self.error.show_error("Enter the token's SO PIN.")
            return
        self.accept()

    def values(self) -> tuple[str, str, str]:
        """(typed confirmation, new label, SO PIN); the PIN field is cleared."""
        return self.confirm.text(), self.new_label.text().strip(), self.so_pin.take()


class PinMode(Enum):
    INIT_PIN = "Set the user PIN as security officer"
    CHANGE_PIN = "Change the user PIN"
    CHANGE_SO_PIN = "Change the SO PIN"


_PIN_NOTES = {
    PinMode.INIT_PIN: "The security officer sets a new user PIN. This also unblocks a user PIN "
    "the token has locked. Any login to this token ends first.",
    PinMode.CHANGE_PIN: "Needs the current user PIN. A wrong one counts like a wrong login.",
    PinMode.CHANGE_SO_PIN: "Needs the current SO PIN. Any login to this token ends first.",
}


@dataclass(frozen=True)
class PinChange:
    old: str  # the SO PIN for INIT_PIN, else the current PIN being changed
    new: str


class PinDialog(QDialog):
    """Current PIN (or SO PIN), new PIN twice, checked against the token's limits."""

    def __init__(
        self,
        mode: PinMode,
        token: TokenInfo,
        limits: tuple[int, int],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.mode = mode
        self.limits = limits
        self.setWindowTitle(f"{mode.value} — {token.label}")
        self.setMinimumWidth(480)
        layout = QVBoxLayout(self)
        layout.addWidget(heading(f"{mode.value}: token '{token.label}'", self))
        layout.addWidget(hint(_PIN_NOTES[mode], self))
        self.new_what = "SO PIN" if mode is PinMode.CHANGE_SO_PIN else "user PIN"
        old_label = {
            PinMode.INIT_PIN: "SO PIN:",
            PinMode.CHANGE_PIN: "Current user PIN:",
            PinMode.CHANGE_SO_PIN: "Current SO PIN:",
        }[mode]
        form = QFormLayout()
        self.old = SecretField(old_label.rstrip(":"), self)
        self.new = SecretField(f"new {self.new_what}", self)
        self.again = SecretField(f"new {self.new_what} again", self)
        form.addRow(old_label, self.old)
        form.addRow(f"New {self.new_what}:", self.new)
        form.addRow("Repeat it:", self.again)
        layout.addLayout(form)
        self.limits_hint = hint(
            f"This token takes PINs of {limits[0]} to {limits[1]} characters.", self
        )
        layout.addWidget(self.limits_hint)
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        buttons, _ok = _buttons(self, mode.value.split(" as ")[0])
        buttons.accepted.connect(self._accept)
        layout.addWidget(buttons)

    def _accept(self) -> None:
        if not self.old.text():
            self.error.show_error("Enter the current PIN first.")
            return
        problem = _pin_problem(self.new.text(), self.again.text(), self.limits, self.new_what)
        if problem:
            self.error.show_error(problem)
            return
        if self.mode is not PinMode.INIT_PIN and self.new.text() == self.old.text():
            self.error.show_error(f"The new {self.new_what} is the same as the current one.")
            return
        self.accept()

    def change(self) -> PinChange:
        """The entered PINs; the fields are cleared."""
        old, new = self.old.take(), self.new.take()
        self.again.clear()
        return PinChange(old, new)


@dataclass(frozen=True)
class NewToken:
    label: str
    so_pin: str
    user_pin: str


class CreateTokenDialog(QDialog):
    """Another embedded SoftHSM token (rehearsals, tests): label, SO PIN, user PIN."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Create an embedded token")
        self.setMinimumWidth(480)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Create an embedded SoftHSM token", self))
        layout.addWidget(
            hint(
                "A software token in this workstation's SoftHSM store, for rehearsals and "
                "tests. Keys on it are protected by this machine only.",
                self,
            )
        )
        form = QFormLayout()
        self.label = QLineEdit(self)
        self.label.setMaxLength(32)
        self.so_pin = SecretField("SO PIN", self)
        self.so_again = SecretField("SO PIN again", self)
        self.user_pin = SecretField("user PIN", self)
        self.user_again = SecretField("user PIN again", self)
        form.addRow("Label:", self.label)
        form.addRow("SO PIN:", self.so_pin)
        form.addRow("Repeat SO PIN:", self.so_again)
        form.addRow("User PIN:", self.user_pin)
        form.addRow("Repeat user PIN:", self.user_again)
        layout.addLayout(form)
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        buttons, _ok = _buttons(self, "Create token")
        buttons.accepted.connect(self._accept)
        layout.addWidget(buttons)

    def _accept(self) -> None:
        if not self.label.text().strip():
            self.error.show_error("Give the token a label.")
            return
        for pin, again, what in (
            (self.so_pin, self.so_again, "SO PIN"),
            (self.user_pin, self.user_again, "user PIN"),
        ):
            problem = _pin_problem(pin.text(), again.text(), DEFAULT_LIMITS, what)
            if problem:
                self.error.show_error(problem)
                return
        pair = pair_problem(self.so_pin.text(), self.user_pin.text())
        if pair:
            self.error.show_error(pair)
            return
        self.accept()

    def request(self) -> NewToken:
        """The entered values; the PIN fields are cleared."""
        request = NewToken(self.label.text().strip(), self.so_pin.take(), self.user_pin.take())
        self.so_again.clear()
        self.user_again.clear()
        return request


class RemoveAuditModuleDialog(QDialog):
    """Removing the module that holds the audit token: irreversible for this session's
    sealing (nothing can be recorded as done until it is added again), so the same rule as
    every irreversible action: red button, never default, the token's label typed."""

    def __init__(self, path: str, audit_label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Remove the audit token's module")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Remove the module that holds the audit token", self))
        warning = QLabel(
            f"{path} holds '{audit_label}', this workstation's audit token. Without it no "
            "change can be sealed: keys cannot be generated, activated, suspended or destroyed "
            "until the module is added again. Refusals and failures are still recorded.",
            self,
        )
        warning.setObjectName("warning")
        warning.setWordWrap(True)
        layout.addWidget(warning)
        form = QFormLayout()
        self.confirm = QLineEdit(self)
        form.addRow("Type the audit token's label:", self.confirm)
        layout.addLayout(form)
        buttons, self.ok = _buttons(self, "Remove module")
        self.ok.setIcon(QIcon())
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
        require_typed(self, self.ok, self.confirm, audit_label)


class RebindDialog(QDialog):
    """Keys found, by KCV or public key, on another token: pick one, type its name, re-bind."""

    def __init__(self, candidates: list[RebindCandidate], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.candidates = candidates
        self.setWindowTitle("Keys on a replacement token")
        self.setMinimumWidth(720)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Keys found on a replacement token", self))
        layout.addWidget(
            hint(
                "These keys' records name a token that is gone (or lost the object), and a "
                "logged-in token holds an unmanaged key with the same KCV or public key. Labels "
                "and IDs are not evidence. Re-binding points the record at the new object and is "
                "recorded.",
                self,
            )
        )
        self.table = QTableWidget(len(candidates), 4, self)
        self.table.setHorizontalHeaderLabels(["Key", "Was on", "Found on", "Matched by"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        for row, candidate in enumerate(candidates):
            for column, value in enumerate(
                (
                    candidate.key.name,
                    f"{candidate.key.token_label} ({candidate.key.token_serial})",
                    f"{candidate.token_label} ({candidate.token_serial}), ID {candidate.cka_id}",
                    candidate.matched_by,
                )
            ):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        layout.addWidget(self.table, 1)
        if not candidates:
            layout.addWidget(
                hint("No key was found elsewhere. Log in to the replacement token first.", self)
            )
        form = QFormLayout()
        self.confirm = QLineEdit(self)
        self.confirm.setPlaceholderText("the selected key's name")
        form.addRow("Type the key's name:", self.confirm)
        layout.addLayout(form)
        buttons, self.ok = _buttons(self, "Re-bind")
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
        self.table.itemSelectionChanged.connect(self._update)
        self.confirm.textChanged.connect(self._update)
        self._update()

    def selected(self) -> RebindCandidate | None:
        rows = self.table.selectionModel().selectedRows()
        return self.candidates[rows[0].row()] if rows else None

    def _update(self) -> None:
        chosen = self.selected()
        self.ok.setEnabled(chosen is not None and self.confirm.text() == chosen.key.name)
