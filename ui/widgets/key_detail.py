"""The detail panel: a key's metadata, its identifier in PGP words, and live token attributes."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.domain.fingerprints import hex_groups
from app.domain.keys import InventoryItem, Presence
from app.services.keys import KeyDetails

_PRESENCE_TEXT = {
    Presence.PRESENT: "Present on the token",
    Presence.MISSING: "MISSING ON TOKEN — the record exists but the token object is gone",
    Presence.UNMANAGED: "Unmanaged — on the token, not in Keystead's records",
    Presence.UNCHECKED: "Not checked — log in to the token to compare",
}


def _value_text(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


class KeyDetailPanel(QFrame):
    """Shows one inventory item; ``adopt_requested`` asks the page to adopt an unmanaged one."""

    adopt_requested = Signal(object)  # InventoryItem

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("detailPanel")
        self.setMinimumWidth(340)
        layout = QVBoxLayout(self)
        self.title = QLabel("No key selected", self)
        self.title.setObjectName("detailTitle")
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        self.presence = QLabel(self)
        self.presence.setObjectName("presence")
        self.presence.setWordWrap(True)
        layout.addWidget(self.presence)
        self.form = QFormLayout()
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        layout.addLayout(self.form)
        self.words_caption = QLabel("Read aloud (PGP words):", self)
        self.words_caption.setObjectName("caption")
        self.words = QLabel(self)
        self.words.setObjectName("pgpWords")
        self.words.setWordWrap(True)
        self.words.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.words_caption)
        layout.addWidget(self.words)
        self.attributes_caption = QLabel("Live token attributes", self)
        self.attributes_caption.setObjectName("caption")
        layout.addWidget(self.attributes_caption)
        self.attributes = QTableWidget(0, 1, self)
        self.attributes.verticalHeader().setVisible(True)
        self.attributes.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.attributes.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.attributes.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        layout.addWidget(self.attributes, 1)
        self.adopt_button = QPushButton("Adopt this key…", self)
        self.adopt_button.clicked.connect(lambda: self.adopt_requested.emit(self._item))
        layout.addWidget(self.adopt_button)
        self._item: InventoryItem | None = None
        self.clear()

    def clear(self) -> None:
        self._item = None
        self.title.setText("No key selected")
        self.presence.clear()
        self._set_fields([])
        self.words_caption.hide()
        self.words.clear()
        self.words.hide()
        self.attributes_caption.hide()
        self.attributes.hide()
        self.adopt_button.hide()

    def _set_fields(self, fields: list[tuple[str, str]]) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        for label, value in fields:
            text = QLabel(value, self)
            text.setWordWrap(True)
            text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.form.addRow(f"{label}:", text)

    def _set_presence(self, presence: Presence) -> None:
        self.presence.setText(_PRESENCE_TEXT[presence])
        self.presence.setProperty("state", presence.name.lower())
        self.presence.style().unpolish(self.presence)
        self.presence.style().polish(self.presence)

    def show_item(self, item: InventoryItem) -> None:
        """Show what the row already knows; live attributes follow via ``show_details``."""
        self._item = item
        self._set_presence(item.presence)
        self.adopt_button.setVisible(item.presence is Presence.UNMANAGED)
        self.words_caption.hide()
        self.words.hide()
        self.attributes_caption.hide()
        self.attributes.hide()
        record, obj = item.record, item.token_object
        if record is None and obj is not None:
            self.title.setText(obj.label or "(no label)")
            self._set_fields(
                [
                    ("Token", obj.token_label),
                    ("Token serial", obj.token_serial),
                    ("Key type", obj.algorithm.value if obj.algorithm else obj.key_type),
                    ("Objects", ", ".join(obj.classes)),
                    ("CKA_ID", obj.cka_id or "none (cannot be adopted)"),
                ]
            )
            self.adopt_button.setEnabled(bool(obj.cka_id and obj.algorithm))
            return
        if record is not None:
            self.title.setText(record.name)
            self._set_fields(self._record_fields(item))

    def _record_fields(self, item: InventoryItem) -> list[tuple[str, str]]:
        record = item.record
        if record is None:
            return []
        identifier = (
            ("KCV", record.kcv or "not provided by the token")
            if record.algorithm.symmetric
            else ("SHA-256 (SPKI)", hex_groups(bytes.fromhex(record.fingerprint or "")))
        )
        return [
            ("State", record.state.title),
            ("Algorithm", f"{record.algorithm.value} ({record.algorithm.spec.size_label})"),
            ("Purpose", record.purpose.title),
            identifier,
            (
                "Backup",
                "extractable for wrapped backup" if record.extractable else "never extractable",
            ),
            ("Token", f"{record.token_label} (serial {record.token_serial})"),
            ("CKA_ID", record.cka_id),
            ("Created", record.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
            ("Created by", record.created_by),
            ("Key id", record.id),
        ]

    def show_details(self, details: KeyDetails) -> None:
        """Live part, from the core thread: presence checked now, attributes and words."""
        if (
            self._item is None
            or self._item.record is None
            or self._item.record.id != details.record.id
        ):
            return
        self._set_presence(details.presence)
        if details.identifier_words:
            self.words.setText(" ".join(details.identifier_words))
            self.words_caption.show()
            self.words.show()
        if details.token_attributes:
            self._fill_attributes(details.token_attributes)

    def _fill_attributes(self, by_class: dict[str, dict[str, Any]]) -> None:
        classes = list(by_class)
        names: list[str] = []
        for attrs in by_class.values():
            names.extend(n for n in attrs if n not in names and n != "CLASS")
        self.attributes.clear()
        self.attributes.setColumnCount(len(classes))
        self.attributes.setRowCount(len(names))
        self.attributes.setHorizontalHeaderLabels([c.replace("_", " ").title() for c in classes])
        self.attributes.setVerticalHeaderLabels(names)
        for column, cls in enumerate(classes):
            for row, name in enumerate(names):
                value = by_class[cls].get(name)
                cell = QTableWidgetItem("" if value is None else _value_text(value))
                cell.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.attributes.setItem(row, column, cell)
        self.attributes_caption.show()
        self.attributes.show()
