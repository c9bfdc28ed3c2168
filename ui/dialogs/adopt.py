"""Adopt: what is being adopted, before it is.

Shows the token object(s) that make the key with their live attributes, the key's KCV or
fingerprint in full, the purpose its usage flags say it has (editable, with what activation
for that purpose would clear), and a red warning when its value may have been outside the
token (not sensitive, once not sensitive, extractable). Exposure and a fresh CKA_ID each need
a tick; a key that cannot be adopted says why and cannot be confirmed.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.domain.algorithms import Purpose
from app.domain.fingerprints import hex_groups
from app.services.adoption import AdoptionCandidate
from ui.widgets.copyable import CopyableValue
from ui.widgets.form import ErrorLine, heading, hint
from ui.widgets.key_identity import breakable


def _value_text(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return "" if value is None else str(value)


# Attributes listed first, and the values that mean the key may have left the token in clear
# or under a key Keystead does not control (PKCS#11 v2.40 §4.9 key objects).
FIRST = (
    "SENSITIVE",
    "ALWAYS_SENSITIVE",
    "EXTRACTABLE",
    "NEVER_EXTRACTABLE",
    "WRAP_WITH_TRUSTED",
    "ENCRYPT",
    "DECRYPT",
    "SIGN",
    "VERIFY",
    "WRAP",
    "UNWRAP",
    "DERIVE",
)
DANGEROUS = {
    "SENSITIVE": False,
    "ALWAYS_SENSITIVE": False,
    "EXTRACTABLE": True,
    "NEVER_EXTRACTABLE": False,
}


class AdoptDialog(QDialog):
    """Emits ``confirmed``; stays open until the caller closes it after the adoption."""

    confirmed = Signal()

    def __init__(self, candidate: AdoptionCandidate, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.candidate = candidate
        key = candidate.key
        self.setWindowTitle(f"Adopt key — {key.label or key.cka_id or 'no label'}")
        self.setMinimumWidth(600)
        outer = QVBoxLayout(self)
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(
            heading(
                f"Adopt a key from token '{candidate.token_label}' "
                f"(serial {candidate.token_serial})",
                self,
            )
        )
        layout.addWidget(
            hint(
                "Adopting records this key as a managed, pre-active key. Nothing on the token "
                "changes now; activating it later sets its usage flags for the purpose below.",
                self,
            )
        )
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        algorithm = candidate.algorithm
        form.addRow("Kind:", QLabel(key.kind.value if hasattr(key, "kind") else "key", self))
        form.addRow(
            "Algorithm:",
            QLabel(algorithm.value if algorithm else f"{key.key_type} (not managed)", self),
        )
        form.addRow("Label on the token:", QLabel(key.label or "(none)", self))
        form.addRow(
            "CKA_ID:", CopyableValue(key.cka_id or "none", key.cka_id, mono=True, parent=self)
        )
        if candidate.identifier:
            what = "KCV" if algorithm and algorithm.symmetric else "SHA-256 fingerprint"
            grouped = hex_groups(bytes.fromhex(candidate.identifier))
            self.identifier = CopyableValue(
                breakable(grouped), candidate.identifier, mono=True, parent=self
            )
            form.addRow(f"{what}:", self.identifier)
        layout.addLayout(form)

        objects = QLabel("\n".join(entry.describe for entry in candidate.objects), self)
        objects.setObjectName("mono")
        objects.setWordWrap(True)
        caption = QLabel("Objects on the token that make this key:", self)
        caption.setObjectName("caption")
        layout.addWidget(caption)
        layout.addWidget(objects)
        if candidate.related:
            layout.addWidget(hint("Also under this ID: " + "; ".join(candidate.related), self))

        self.attributes = self._attribute_table(candidate.attributes)
        caption = QLabel("Live token attributes", self)
        caption.setObjectName("caption")
        layout.addWidget(caption)
        layout.addWidget(self.attributes, 1)  # grows with the dialog

        choose = QFormLayout()
        self.purpose = QComboBox(self)
        for purpose in candidate.allowed_purposes():
            label = purpose.title + ("  (inferred)" if purpose in candidate.inferred else "")
            self.purpose.addItem(label, purpose)
        preferred = candidate.purpose or (candidate.inferred[0] if candidate.inferred else None)
        self.purpose.setCurrentIndex(
            self.purpose.findData(preferred) if preferred is not None else -1
        )
        self.purpose.setPlaceholderText("choose the purpose")
        choose.addRow("Purpose:", self.purpose)
        self.cleared = hint("", self)
        choose.addRow("", self.cleared)
        self.name = QLineEdit(candidate.suggested_name or "", self)
        self.name.setPlaceholderText("a name for the managed key")
        choose.addRow("Name:", self.name)
        scroll = QScrollArea(self)  # never squeezed: at 1024x700 it scrolls
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(body)
        outer.addWidget(scroll, 1)
        outer.addLayout(choose)  # the choices and the warning stay in view

        self.exposure_box: QCheckBox | None = None
        if candidate.exposure:
            warning = QLabel(
                "This key may have been outside the token: "
                + "; ".join(e.title for e in candidate.exposure)
                + ". Keystead cannot make it safe again; adopt it only to retire it or "
                "if you accept that risk. It stays marked as exposed.",
                self,
            )
            warning.setObjectName("errorLine")
            warning.setWordWrap(True)
            outer.addWidget(warning)
            self.exposure_box = QCheckBox(
                "I understand the key's value may be known outside the token", self
            )
            outer.addWidget(self.exposure_box)
        self.new_id_box: QCheckBox | None = None
        if candidate.needs_new_id:
            self.new_id_box = QCheckBox(
                "Give it a fresh CKA_ID (it has none, or shares one with another key)", self
            )
            outer.addWidget(self.new_id_box)
        self.refusal = ErrorLine(self)
        if candidate.refusal:
            self.refusal.show_error(candidate.refusal)
        outer.addWidget(self.refusal)
        self.error = ErrorLine(self)
        outer.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.ok_button = QPushButton("Adopt", self)
        buttons.addButton(self.ok_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        outer.addWidget(buttons)
        for box in (self.exposure_box, self.new_id_box):
            if box is not None:
                box.toggled.connect(lambda _on: self._update())
        self.purpose.currentIndexChanged.connect(lambda _i: self._update())
        self.name.textChanged.connect(lambda _t: self._update())
        self._update()
        screen = QGuiApplication.primaryScreen()
        if screen is not None:  # as tall as it needs, never taller than the screen
            room = screen.availableGeometry()
            self.resize(
                min(760, room.width() - 40), min(self.sizeHint().height() + 200, room.height() - 40)
            )

    def _attribute_table(self, by_class: dict[str, dict[str, Any]]) -> QTableWidget:
        classes = list(by_class)
        names: list[str] = []
        for attrs in by_class.values():
            names.extend(n for n in attrs if n not in names and n != "CLASS")
        # What decides whether the value was ever outside the token comes first.
        names.sort(key=lambda n: FIRST.index(n) if n in FIRST else len(FIRST))
        table = QTableWidget(len(names), len(classes), self)
        table.setHorizontalHeaderLabels([c.replace("_", " ").title() for c in classes])
        table.setVerticalHeaderLabels(names)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.setTabKeyNavigation(False)
        for column, cls in enumerate(classes):
            for row, name in enumerate(names):
                value = by_class[cls].get(name)
                cell = QTableWidgetItem(_value_text(value))
                cell.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if name in DANGEROUS and value is DANGEROUS[name]:
                    cell.setForeground(QBrush(QColor("#b3261e")))
                    font = cell.font()
                    font.setBold(True)
                    cell.setFont(font)
                    cell.setToolTip("The key's value may be, or may have been, outside the token")
                table.setItem(row, column, cell)
        table.horizontalHeader().setStretchLastSection(True)
        table.setMinimumHeight(160)
        return table

    def chosen_purpose(self) -> Purpose | None:
        data = self.purpose.currentData()
        return data if isinstance(data, Purpose) else None

    def _update(self) -> None:
        purpose = self.chosen_purpose()
        cleared = self.candidate.cleared_on_activation.get(purpose, ()) if purpose else ()
        self.cleared.setText(
            ("Activating it for this purpose clears: " + ", ".join(cleared) + ".")
            if cleared
            else ("Activating it for this purpose keeps every flag it has." if purpose else "")
        )
        ready = (
            self.candidate.refusal is None
            and purpose is not None
            and bool(self.name.text().strip())
            and all(b is None or b.isChecked() for b in (self.exposure_box, self.new_id_box))
        )
        self.ok_button.setEnabled(ready)

    def _accept(self) -> None:
        if self.ok_button.isEnabled():
            self.error.clear_error()
            self.ok_button.setEnabled(False)
            self.confirmed.emit()

    def set_busy(self, busy: bool) -> None:
        if busy:
            self.ok_button.setEnabled(False)
        else:
            self._update()

    def failed(self, message: str) -> None:
        self._update()
        self.error.show_error(message)

    def request(self) -> dict[str, Any]:
        """Keyword arguments for ``KeyService.adopt`` after the token and CKA_ID."""
        return {
            "name": self.name.text().strip(),
            "purpose": self.chosen_purpose(),
            "accept_exposure": bool(self.exposure_box and self.exposure_box.isChecked()),
            "new_id": bool(self.new_id_box and self.new_id_box.isChecked()),
            "identifier": self.candidate.identifier or None,
        }
