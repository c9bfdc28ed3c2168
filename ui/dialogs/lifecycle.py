"""Dialogs for lifecycle actions: a reason (and compromise date), destroy with typed name, edit."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import QDateTime, Qt, QTimeZone, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.keys import KeyRecord, KeyState
from app.domain.lifecycle import MAX_REASON_LENGTH, Action
from ui.widgets.danger import require_typed
from ui.widgets.form import ErrorLine, heading, hint
from ui.widgets.key_identity import KeyIdentity

_UTC = QTimeZone.utc()


def to_qt(moment: datetime) -> QDateTime:
    return QDateTime.fromSecsSinceEpoch(int(moment.timestamp()), _UTC)


def from_qt(value: QDateTime) -> datetime:
    return datetime.fromtimestamp(value.toSecsSinceEpoch(), UTC)


def _utc_editor(parent: QWidget, moment: datetime) -> QDateTimeEdit:
    editor = QDateTimeEdit(to_qt(moment), parent)
    editor.setTimeZone(_UTC)
    editor.setDisplayFormat("yyyy-MM-dd HH:mm 'UTC'")
    editor.setCalendarPopup(True)
    return editor


class KeyActionDialog(QDialog):
    """Base of every dialog that acts on one key: names the key in full (``KeyIdentity``),
    emits ``confirmed`` and stays open until the caller closes it on success, so a refusal
    is shown in place and nothing typed is lost."""

    confirmed = Signal()

    def __init__(
        self, key: KeyRecord, title: str, button_text: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.key = key
        self.setWindowTitle(f"{title} — {key.name}")
        self.setMinimumWidth(520)
        self.body = QVBoxLayout(self)
        self.body.addWidget(heading(f"{title}: {key.name}", self))
        self.identity = KeyIdentity(key, self)
        self.body.addWidget(self.identity)
        self.form = QFormLayout()
        self.body.addLayout(self.form)
        self.error = ErrorLine(self)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.ok_button = QPushButton(button_text, self)
        self.buttons.addButton(self.ok_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)

    def finish_layout(self) -> None:
        self.body.addWidget(self.error)
        self.body.addWidget(self.buttons)

    def _accept(self) -> None:
        if self.check():
            self.error.clear_error()
            self.confirmed.emit()

    def check(self) -> bool:
        """Validate the input; show the problem and return False if there is one."""
        return True

    def set_busy(self, busy: bool) -> None:
        self.ok_button.setEnabled(not busy and self.ready())
        self.setCursor(Qt.CursorShape.BusyCursor if busy else Qt.CursorShape.ArrowCursor)

    def ready(self) -> bool:
        return True

    def failed(self, message: str) -> None:
        """The action was refused or failed: say so here; everything typed stays."""
        self.set_busy(False)
        self.error.show_error(message)
        self.adjustSize()  # grow to show the message, never clip it


class ReasonDialog(KeyActionDialog):
    """Suspend, deactivate or mark compromised: the reason, and for a compromise its date.

    Marking compromised cannot be undone: it follows the irreversible rule (red button,
    never default, the key's name typed)."""

    def __init__(self, key: KeyRecord, action: Action, parent: QWidget | None = None) -> None:
        super().__init__(key, action.title, action.title, parent)
        self.action = action
        explanations = {
            Action.SUSPEND: "The key stops being usable until it is resumed. The token loses "
            "every usage flag of this key.",
            Action.DEACTIVATE: "The key will no longer protect anything; it can still decrypt, "
            "verify and unwrap what it protected.",
            Action.COMPROMISE: "The key is treated as known to an attacker. It loses every usage "
            "flag; this cannot be undone.",
        }
        self.body.insertWidget(1, hint(explanations.get(action, ""), self))
        self.reason = QPlainTextEdit(self)
        self.reason.setPlaceholderText("Why — this is recorded with the change")
        self.reason.setFixedHeight(80)
        self.reason.setTabChangesFocus(True)  # Tab leaves the field; it is never recorded
        self.form.addRow("Reason:", self.reason)
        self.compromise_date: QDateTimeEdit | None = None
        self.revoke_certificates: QCheckBox | None = None
        self.typed: QLineEdit | None = None
        if action is Action.COMPROMISE:
            self.compromise_date = _utc_editor(self, key.created_at)
            self.compromise_date.setMaximumDateTime(to_qt(datetime.now(UTC)))
            self.form.addRow("Compromised since:", self.compromise_date)
            self.form.addRow(
                "",
                hint(
                    "Defaults to the key's creation: assume the worst unless you know better.", self
                ),
            )
            self.revoke_certificates = QCheckBox("Also revoke its certificates issued here", self)
            self.revoke_certificates.setToolTip(
                "Every unrevoked certificate issued here for this key is revoked with reason "
                "key compromise, each recorded; issue new CRLs from their issuers to publish it."
            )
            self.revoke_certificates.setChecked(True)
            self.form.addRow("", self.revoke_certificates)
            self.typed = QLineEdit(self)
            self.form.addRow("Type the key's name:", self.typed)
        self.finish_layout()
        if self.typed is not None:
            require_typed(self, self.ok_button, self.typed, key.name)
        self.reason.setFocus()

    def ready(self) -> bool:
        return self.typed is None or self.typed.text() == self.key.name

    def check(self) -> bool:
        text = self.reason.toPlainText().strip()
        if not text:
            self.error.show_error("Give a reason; it is recorded with the change.")
            return False
        if len(text) > MAX_REASON_LENGTH:
            self.error.show_error(f"The reason is limited to {MAX_REASON_LENGTH} characters.")
            return False
        return self.ready()

    def values(self) -> tuple[str, datetime | None]:
        when = from_qt(self.compromise_date.dateTime()) if self.compromise_date else None
        return self.reason.toPlainText().strip(), when


class DestroyDialog(KeyActionDialog):
    """Destroy: show what will be destroyed, ask for the key's name to be typed exactly."""

    def __init__(self, key: KeyRecord, parent: QWidget | None = None) -> None:
        super().__init__(key, "Destroy key", "Destroy key", parent)
        self.setMinimumWidth(560)
        self.destroy_button = self.ok_button
        self.body.insertWidget(
            1,
            hint(
                "The key object is erased from the token. Anything it protected and that has no "
                "other copy becomes unreadable. The record stays, with its history, as DESTROYED. "
                "This cannot be undone.",
                self,
            ),
        )
        self.typed = QLineEdit(self)
        self.form.addRow("Type the key's name:", self.typed)
        self.finish_layout()
        require_typed(self, self.destroy_button, self.typed, key.name)
        self.typed.setFocus()

    def ready(self) -> bool:
        return self.typed.text() == self.key.name

    def check(self) -> bool:
        return self.ready()

    def confirmation(self) -> str:
        return self.typed.text()


class ConfirmKeyDialog(KeyActionDialog):
    """A reversible but consequential action (rotate, activate a successor): says what
    happens, names every key it touches, asks for one click on a named button."""

    def __init__(
        self,
        key: KeyRecord,
        title: str,
        button_text: str,
        explanation: str,
        also_affected: KeyRecord | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(key, title, button_text, parent)
        self.body.insertWidget(1, hint(explanation, self))
        self.also: KeyIdentity | None = None
        if also_affected is not None:
            caption = QLabel("It deactivates, in the same step:", self)
            caption.setObjectName("caption")
            self.body.addWidget(caption)
            self.also = KeyIdentity(also_affected, self)
            self.body.addWidget(self.also)
        self.finish_layout()
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setDefault(True)


class EditKeyDialog(KeyActionDialog):
    """Name, tags, notes and cryptoperiod dates of one key. A deactivation date in the past
    is said plainly and needs a second, explicit Save."""

    def __init__(self, key: KeyRecord, parent: QWidget | None = None) -> None:
        super().__init__(key, "Edit key", "Save", parent)
        form = self.form
        self.name = QLineEdit(key.name, self)
        self.tags = QLineEdit(", ".join(key.tags), self)
        self.tags.setPlaceholderText("comma-separated, e.g. payments, tier-1")
        self.notes = QPlainTextEdit(key.notes, self)
        self.notes.setFixedHeight(90)
        self.notes.setTabChangesFocus(True)
        now = datetime.now(UTC)
        self.use_activation = QCheckBox("Activate automatically at", self)
        self.activation = _utc_editor(self, key.activation_date or now)
        self.use_activation.setChecked(key.activation_date is not None)
        pre_active = key.state is KeyState.PRE_ACTIVE
        self.use_activation.setEnabled(pre_active)
        self.activation.setEnabled(pre_active and key.activation_date is not None)
        if not pre_active:
            self.use_activation.setToolTip("Only a pre-active key's activation date can change.")
        self.use_activation.toggled.connect(self.activation.setEnabled)
        self.use_deactivation = QCheckBox("Deactivate (protect-stop) at", self)
        self.deactivation = _utc_editor(self, key.deactivation_date or now)
        self.use_deactivation.setChecked(key.deactivation_date is not None)
        self.deactivation.setEnabled(key.deactivation_date is not None)
        self.use_deactivation.toggled.connect(self.deactivation.setEnabled)
        form.addRow("Name:", self.name)
        form.addRow("Tags:", self.tags)
        form.addRow("Notes:", self.notes)
        form.addRow(self.use_activation, self.activation)
        form.addRow(self.use_deactivation, self.deactivation)
        self.body.addWidget(
            hint(
                "Without a deactivation date, activation sets one from the "
                "cryptoperiod policy for the key's purpose.",
                self,
            )
        )
        self.past_warning = QLabel(self)
        self.past_warning.setObjectName("warning")
        self.past_warning.setWordWrap(True)
        self.past_warning.hide()
        self.body.addWidget(self.past_warning)
        self._past_acknowledged: int | None = None
        self.finish_layout()
        self.deactivation.dateTimeChanged.connect(lambda _v: self._reset_past())
        self.use_deactivation.toggled.connect(lambda _v: self._reset_past())

    def _reset_past(self) -> None:
        self._past_acknowledged = None
        self.past_warning.hide()
        self.ok_button.setText("Save")

    def check(self) -> bool:
        activation, deactivation = self.dates()
        if activation and deactivation and deactivation <= activation:
            self.error.show_error("The deactivation date must come after the activation date.")
            return False
        changed = _minute(deactivation) != _minute(self.key.deactivation_date)
        if (
            changed
            and deactivation is not None
            and deactivation < datetime.now(UTC)
            and self.key.state in (KeyState.PRE_ACTIVE, KeyState.ACTIVE, KeyState.SUSPENDED)
            and self._past_acknowledged != _minute(deactivation)
        ):
            self._past_acknowledged = _minute(deactivation)
            self.past_warning.setText(
                f"The deactivation date {deactivation:%Y-%m-%d %H:%M} UTC is in the past: "
                f"'{self.key.name}' will be deactivated at once (within a minute) and can then "
                "no longer protect anything. Press 'Save, deactivate' to confirm."
            )
            self.past_warning.show()
            self.ok_button.setText("Save, deactivate")
            return False
        return True

    def dates(self) -> tuple[datetime | None, datetime | None]:
        activation = (
            from_qt(self.activation.dateTime()) if self.use_activation.isChecked() else None
        )
        deactivation = (
            from_qt(self.deactivation.dateTime()) if self.use_deactivation.isChecked() else None
        )
        return activation, deactivation

    def changes(self) -> dict[str, object]:
        """Only what differs from the key, as keyword arguments for ``LifecycleService.edit``."""
        key = self.key
        activation, deactivation = self.dates()
        tags = tuple(t.strip() for t in self.tags.text().split(",") if t.strip())
        changes: dict[str, object] = {}
        if self.name.text().strip() != key.name:
            changes["name"] = self.name.text()
        if tags != key.tags:
            changes["tags"] = tags
        if self.notes.toPlainText() != key.notes:
            changes["notes"] = self.notes.toPlainText()
        if key.state is KeyState.PRE_ACTIVE and _minute(activation) != _minute(key.activation_date):
            changes["activation_date"] = activation
        if _minute(deactivation) != _minute(key.deactivation_date):
            changes["deactivation_date"] = deactivation
        return changes


def _minute(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp()) // 60
