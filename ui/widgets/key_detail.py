"""The detail panel: metadata, actions, lineage, identifier words, token attributes, history."""

from __future__ import annotations

from typing import Any, NamedTuple

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.fingerprints import hex_groups
from app.domain.keys import InventoryItem, KeyRecord, Presence, TokenSync
from app.services.keys import KeyDetails
from app.storage.events import StoredEvent

_PRESENCE_TEXT = {
    Presence.PRESENT: "Present on the token",
    Presence.MISSING: "MISSING ON TOKEN — the record exists but the token object is gone",
    Presence.UNMANAGED: "Unmanaged — on the token, not in Keystead's records",
    Presence.UNCHECKED: "Not checked — log in to the token to compare",
}


class KeyView(NamedTuple):
    """Everything the panel shows about a managed key, gathered in one core-thread job."""

    details: KeyDetails
    lineage: list[KeyRecord]
    history: list[StoredEvent]


def _value_text(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def _date(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


class KeyDetailPanel(QFrame):
    """Shows one inventory item. Emits ``adopt_requested`` and ``key_link_activated``."""

    adopt_requested = Signal(object)  # InventoryItem
    key_link_activated = Signal(str)  # key id, from the lineage

    def __init__(self, actions: list[QAction] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("detailPanel")
        self.setMinimumWidth(360)
        outer = QVBoxLayout(self)
        self.title = QLabel("No key selected", self)
        self.title.setObjectName("detailTitle")
        self.title.setWordWrap(True)
        outer.addWidget(self.title)
        self.presence = QLabel(self)
        self.presence.setObjectName("presence")
        self.presence.setWordWrap(True)
        outer.addWidget(self.presence)
        self.sync = QLabel(self)
        self.sync.setObjectName("warning")
        self.sync.setWordWrap(True)
        self.sync.hide()
        outer.addWidget(self.sync)

        self.action_bar = QWidget(self)
        grid = QGridLayout(self.action_bar)
        grid.setContentsMargins(0, 0, 0, 0)
        for position, action in enumerate(actions or []):
            button = QToolButton(self.action_bar)
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            grid.addWidget(button, position // 2, position % 2)
        outer.addWidget(self.action_bar)

        self.tabs = QTabWidget(self)
        outer.addWidget(self.tabs, 1)
        details = QWidget(self)
        layout = QVBoxLayout(details)
        layout.setContentsMargins(4, 4, 4, 4)
        self.form = QFormLayout()
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        layout.addLayout(self.form)
        self.lineage = QLabel(self)
        self.lineage.setWordWrap(True)
        self.lineage.setTextFormat(Qt.TextFormat.RichText)
        self.lineage.linkActivated.connect(lambda link: self.key_link_activated.emit(link[4:]))
        layout.addWidget(self.lineage)
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
        self.attributes.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.attributes.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.attributes.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        layout.addWidget(self.attributes, 1)
        self.adopt_button = QPushButton("Adopt this key…", self)
        self.adopt_button.clicked.connect(lambda: self.adopt_requested.emit(self._item))
        layout.addWidget(self.adopt_button)
        self.tabs.addTab(details, "Details")

        self.history = QTableWidget(0, 4, self)
        self.history.setHorizontalHeaderLabels(["Time (UTC)", "By", "Action", "Outcome / details"])
        self.history.verticalHeader().hide()
        self.history.horizontalHeader().setStretchLastSection(True)
        self.history.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.history.setWordWrap(True)
        self.tabs.addTab(self.history, "History")
        self._item: InventoryItem | None = None
        self.clear()

    def clear(self) -> None:
        self._item = None
        self.title.setText("No key selected")
        self.presence.clear()
        self.sync.hide()
        self._set_fields([])
        self.lineage.clear()
        self.lineage.hide()
        self._hide_live()
        self.adopt_button.hide()
        self.action_bar.hide()
        self.history.setRowCount(0)

    def _hide_live(self) -> None:
        for widget in (self.words_caption, self.words, self.attributes_caption, self.attributes):
            widget.hide()

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
        """Show what the row already knows; the rest follows via ``show_view``."""
        self._item = item
        self._set_presence(item.presence)
        self.adopt_button.setVisible(item.presence is Presence.UNMANAGED)
        self._hide_live()
        self.lineage.hide()
        self.history.setRowCount(0)
        record, obj = item.record, item.token_object
        self.action_bar.setVisible(record is not None)
        self.tabs.setTabEnabled(1, record is not None)
        if record is None and obj is not None:
            self.title.setText(obj.label or "(no label)")
            self.sync.hide()
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
            self._set_fields(self._record_fields(record))
            self.sync.setText(record.token_sync.title.capitalize() + ".")
            self.sync.setVisible(record.token_sync is not TokenSync.OK)

    def _record_fields(self, record: KeyRecord) -> list[tuple[str, str]]:
        identifier = (
            ("KCV", record.kcv or "not provided by the token")
            if record.algorithm.symmetric
            else ("SHA-256 (SPKI)", hex_groups(bytes.fromhex(record.fingerprint or "")))
        )
        fields = [
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
            ("Activation", _date(record.activation_date)),
            ("Deactivation", _date(record.deactivation_date)),
        ]
        if record.compromise_date:
            fields.append(("Compromised since", _date(record.compromise_date)))
        fields += [
            ("Created", f"{_date(record.created_at)} by {record.created_by}"),
            ("Key id", record.id),
        ]
        if record.tags:
            fields.append(("Tags", ", ".join(record.tags)))
        if record.notes:
            fields.append(("Notes", record.notes))
        return fields

    def show_view(self, view: KeyView) -> None:
        """Live part, from the core thread: presence checked now, lineage, attributes, history."""
        details = view.details
        current = self._item.record if self._item else None
        if current is None or current.id != details.record.id:
            return
        self._set_presence(details.presence)
        if details.identifier_words:
            self.words.setText(" ".join(details.identifier_words))
            self.words_caption.show()
            self.words.show()
        if details.token_attributes:
            self._fill_attributes(details.token_attributes)
        self._fill_lineage(view.lineage, details.record.id)
        self._fill_history(view.history)

    def _fill_lineage(self, line: list[KeyRecord], current_id: str) -> None:
        if len(line) < 2:
            self.lineage.hide()
            return
        parts = []
        for key in line:
            text = f"{key.name} ({key.state.title})"
            parts.append(
                f"<b>{text}</b>" if key.id == current_id else f'<a href="key:{key.id}">{text}</a>'
            )
        self.lineage.setText("Lineage (oldest first): " + " → ".join(parts))
        self.lineage.show()

    def _fill_history(self, events: list[StoredEvent]) -> None:
        self.history.setRowCount(len(events))
        for row, event in enumerate(reversed(events)):
            summary = event.outcome
            details = event.details
            if "from" in details:
                summary += f": {details['from']} → {details['to']}"
            for key in ("reason", "refusal", "error"):
                if details.get(key):
                    summary += f" — {details[key]}"
            values = (
                event.ts[:19].replace("T", " "),
                ", ".join(event.operators),
                event.action.removeprefix("key."),
                summary,
            )
            for column, value in enumerate(values):
                self.history.setItem(row, column, QTableWidgetItem(value))
        self.history.resizeColumnsToContents()

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
