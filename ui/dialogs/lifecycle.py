"""Dialogs for lifecycle actions: a reason (and compromise date), destroy with typed name, edit."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import QDateTime, QTimeZone
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

from app.domain.fingerprints import hex_groups, pgp_words
from app.domain.keys import KeyRecord, KeyState
from app.domain.lifecycle import MAX_REASON_LENGTH, Action
from ui.widgets.form import ErrorLine, heading, hint

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


class ReasonDialog(QDialog):
    """Suspend, deactivate or mark compromised: the reason, and for a compromise its date."""

    def __init__(self, key: KeyRecord, action: Action, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.action = action
        self.setWindowTitle(f"{action.title} — {key.name}")
        self.setMinimumWidth(480)
        layout = QVBoxLayout(self)
        layout.addWidget(heading(f"{action.title}: {key.name}", self))
        explanations = {
            Action.SUSPEND: "The key stops being usable until it is resumed. The token loses "
            "every usage flag of this key.",
            Action.DEACTIVATE: "The key will no longer protect anything; it can still decrypt, "
            "verify and unwrap what it protected.",
            Action.COMPROMISE: "The key is treated as known to an attacker. It loses every usage "
            "flag; this cannot be undone.",
        }
        layout.addWidget(hint(explanations.get(action, ""), self))
        form = QFormLayout()
        self.reason = QPlainTextEdit(self)
        self.reason.setPlaceholderText("Why — this is recorded with the change")
        self.reason.setFixedHeight(80)
        form.addRow("Reason:", self.reason)
        self.compromise_date: QDateTimeEdit | None = None
        if action is Action.COMPROMISE:
            self.compromise_date = _utc_editor(self, key.created_at)
            self.compromise_date.setMaximumDateTime(to_qt(datetime.now(UTC)))
            form.addRow("Compromised since:", self.compromise_date)
            form.addRow(
                "",
                hint(
                    "Defaults to the key's creation: assume the worst unless you know better.", self
                ),
            )
        layout.addLayout(form)
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.ok_button = QPushButton(action.title, self)
        buttons.addButton(self.ok_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _accept(self) -> None:
        text = self.reason.toPlainText().strip()
        if not text:
            self.error.show_error("Give a reason; it is recorded with the change.")
            return
        if len(text) > MAX_REASON_LENGTH:
            self.error.show_error(f"The reason is limited to {MAX_REASON_LENGTH} characters.")
            return
        self.accept()

    def values(self) -> tuple[str, datetime | None]:
        when = from_qt(self.compromise_date.dateTime()) if self.compromise_date else None
        return self.reason.toPlainText().strip(), when


class DestroyDialog(QDialog):
    """Destroy: show what will be destroyed, ask for the key's name to be typed exactly."""

    def __init__(self, key: KeyRecord, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.setWindowTitle(f"Destroy key — {key.name}")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        title = heading(f"Destroy '{key.name}'", self)
        layout.addWidget(title)
        layout.addWidget(
            hint(
                "The key object is erased from the token. Anything it protected and that has no "
                "other copy becomes unreadable. The record stays, with its history, as DESTROYED. "
                "This cannot be undone.",
                self,
            )
        )
        form = QFormLayout()
        identifier = bytes.fromhex(key.identifier) if key.identifier else b""
        label = "KCV" if key.algorithm.symmetric else "SHA-256 fingerprint"
        value = QLabel(hex_groups(identifier) if identifier else "unknown", self)
        value.setObjectName("mono")
        value.setWordWrap(True)
        form.addRow(f"{label}:", value)
        words = QLabel(" ".join(pgp_words(identifier)) if identifier else "—", self)
        words.setObjectName("pgpWords")
        words.setWordWrap(True)
        form.addRow("Read aloud:", words)
        form.addRow("Token:", QLabel(f"{key.token_label} (serial {key.token_serial})", self))
        self.typed = QLineEdit(self)
        self.typed.setPlaceholderText("type the key's name to confirm")
        form.addRow("Key name:", self.typed)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.destroy_button = QPushButton("Destroy key", self)
        self.destroy_button.setObjectName("danger")
        self.destroy_button.setEnabled(False)
        buttons.addButton(self.destroy_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        cancel = buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setDefault(True)
        layout.addWidget(buttons)
        self.typed.textChanged.connect(
            lambda text: self.destroy_button.setEnabled(text == key.name)
        )

    def confirmation(self) -> str:
        return self.typed.text()


class EditKeyDialog(QDialog):
    """Name, tags, notes and cryptoperiod dates of one key."""

    def __init__(self, key: KeyRecord, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.setWindowTitle(f"Edit key — {key.name}")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        layout.addWidget(heading(f"Edit '{key.name}'", self))
        form = QFormLayout()
        self.name = QLineEdit(key.name, self)
        self.tags = QLineEdit(", ".join(key.tags), self)
        self.tags.setPlaceholderText("comma-separated, e.g. payments, tier-1")
        self.notes = QPlainTextEdit(key.notes, self)
        self.notes.setFixedHeight(90)
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
        layout.addLayout(form)
        layout.addWidget(
            hint(
                "Without a deactivation date, activation sets one from the "
                "cryptoperiod policy for the key's purpose.",
                self,
            )
        )
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _accept(self) -> None:
        activation, deactivation = self.dates()
        if activation and deactivation and deactivation <= activation:
            self.error.show_error("The deactivation date must come after the activation date.")
            return
        self.accept()

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
