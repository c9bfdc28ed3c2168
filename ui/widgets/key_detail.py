"""The detail panel: metadata, actions, lineage, identifier words, token attributes, history."""

from __future__ import annotations

from typing import Any, NamedTuple

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.fingerprints import identifier_text
from app.domain.identity import Exposure, parse_exposure
from app.domain.keys import InventoryItem, KeyRecord, KeyState, Presence, TokenSync
from app.domain.text import safe_token_text
from app.services.keys import KeyDetails
from app.storage.certificates import StoredCertificate
from app.storage.distributions import Distribution
from app.storage.events import StoredEvent
from ui.widgets.copyable import CopyableValue, wrappable
from ui.widgets.key_identity import breakable

_PRESENCE_TEXT = {
    Presence.PRESENT: "Present on the token",
    Presence.MISSING: "MISSING ON TOKEN — the record exists but the token object is gone",
    Presence.UNMANAGED: "Unmanaged — on the token, not in Keystead's records",
    Presence.UNCHECKED: "Not checked — log in to token '{token}' to compare",
    Presence.ABSENT: "Token removed — token '{token}' is not attached, so the key cannot be "
    "checked or used",
    Presence.DESTROYED: "Destroyed — the key object was erased; the record keeps its history",
}


def presence_text(presence: Presence, token_label: str) -> str:
    return _PRESENCE_TEXT[presence].format(token=token_label)


HISTORY_COLUMNS = ("Time (UTC)", "By", "Action", "Outcome")
COPYABLE = ("KCV", "SHA-256 fingerprint", "Token serial", "CKA_ID", "Key id")
_HEX_LABELS = ("SHA-256 fingerprint",)
# Read aloud in groups of four with visible gaps (a value wrapped with no gap read as two
# values: the new-user trial); Copy still gives the value as the token has it.
_GROUPED_LABELS = ("Token serial", "CKA_ID")


_MUTED = QBrush(QColor("#3c4650"))


def _state_title(value: Any) -> str:
    try:
        return KeyState(value).title
    except ValueError:
        return str(value)


class KeyView(NamedTuple):
    """Everything the panel shows about a managed key, gathered in one core-thread job."""

    details: KeyDetails
    lineage: list[KeyRecord]
    history: list[StoredEvent]
    distribution: list[Distribution] = []  # noqa: RUF012 (a NamedTuple default, never mutated)
    certificates: list[StoredCertificate] = []  # noqa: RUF012 (the same)


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
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.addLayout(self.form)
        self.lineage = QLabel(self)
        self.lineage.setWordWrap(True)
        self.lineage.setTextFormat(Qt.TextFormat.RichText)
        self.lineage.linkActivated.connect(lambda link: self.key_link_activated.emit(link[4:]))
        layout.addWidget(self.lineage)
        self.distribution = QLabel(self)
        self.distribution.setObjectName("distribution")
        self.distribution.setWordWrap(True)
        self.distribution.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.distribution)
        self.certificates = QLabel(self)
        self.certificates.setObjectName("certificates")
        self.certificates.setWordWrap(True)
        self.certificates.setTextFormat(Qt.TextFormat.PlainText)
        self.certificates.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.certificates)
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
        self.attributes.setTabKeyNavigation(False)
        # The whole table shows; the scroll area around the tab scrolls, never this table.
        self.attributes.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.attributes.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        layout.addWidget(self.attributes)
        self.adopt_button = QPushButton("Adopt this key…", self)
        self.adopt_button.clicked.connect(lambda: self.adopt_requested.emit(self._item))
        layout.addWidget(self.adopt_button)
        layout.addStretch(1)
        self.details_scroll = QScrollArea(self)
        self.details_scroll.setWidgetResizable(True)
        self.details_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.details_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.details_scroll.setWidget(details)
        self.tabs.addTab(self.details_scroll, "Details")

        self.history = QTableWidget(0, len(HISTORY_COLUMNS), self)
        self.history.setHorizontalHeaderLabels(list(HISTORY_COLUMNS))
        self.history.verticalHeader().hide()
        header = self.history.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.history.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.history.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history.setWordWrap(True)
        self.history.setTabKeyNavigation(False)
        self.tabs.addTab(self.history, "History")
        self._item: InventoryItem | None = None
        self.values: dict[str, QWidget] = {}
        self.clear()

    @property
    def item(self) -> InventoryItem | None:
        """The item shown, or None."""
        return self._item

    def clear(self) -> None:
        self._item = None
        self.title.setText("No key selected")
        self.presence.clear()
        self.sync.hide()
        self._set_fields([])
        self.lineage.clear()
        self.lineage.hide()
        self.distribution.clear()
        self.distribution.hide()
        self.certificates.clear()
        self.certificates.hide()
        self._hide_live()
        self.adopt_button.hide()
        self.action_bar.hide()
        self.history.setRowCount(0)

    def _hide_live(self) -> None:
        for widget in (self.words_caption, self.words, self.attributes_caption, self.attributes):
            widget.hide()

    def _set_fields(self, fields: list[tuple[str, str]]) -> None:
        """Rows of the form; labels in COPYABLE get the full value with a Copy button."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.values = {}
        for label, value in fields:
            widget: QWidget
            if label in COPYABLE:
                raw = value.replace(":", "") if label in _HEX_LABELS else value
                if label in _GROUPED_LABELS and len(value) > 8 and " " not in value:
                    shown = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
                else:
                    shown = breakable(value) if ":" in value else wrappable(value)
                widget = CopyableValue(
                    shown,
                    raw,
                    mono=True,
                    parent=self,
                )
            else:
                text = QLabel(value, self)
                if label in ALARMING:
                    text.setObjectName("errorLine")  # red: the key's value may be known
                text.setWordWrap(True)
                text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                widget = text
            self.values[label] = widget
            self.form.addRow(f"{label}:", widget)

    def value_text(self, label: str) -> str:
        """The full text of one field (tests, accessibility)."""
        widget = self.values.get(label)
        if isinstance(widget, CopyableValue):
            return widget.raw
        return widget.text() if isinstance(widget, QLabel) else ""

    def _set_presence(self, presence: Presence) -> None:
        token = ""
        if self._item is not None:
            token = self._item.token_label
        text, state = presence_text(presence, token), presence.name.lower()
        record = self._item.record if self._item is not None else None
        if record is not None and record.state is KeyState.COMPROMISED:
            # Above all else: a present, usable-looking key must not read as "fine" (green).
            where = text[0].lower() + text[1:]
            text, state = f"COMPROMISED — never use this key; destroy it ({where})", "missing"
        self.presence.setText(text)
        self.presence.setProperty("state", state)
        self.presence.style().unpolish(self.presence)
        self.presence.style().polish(self.presence)

    def show_item(self, item: InventoryItem) -> None:
        """Show what the row already knows; the rest follows via ``show_view``."""
        self._item = item
        self._set_presence(item.presence)
        self.adopt_button.setVisible(item.presence is Presence.UNMANAGED)
        self._hide_live()
        self.lineage.hide()
        self.distribution.hide()
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
                    ("What", obj.kind.value),
                    ("Objects", ", ".join(obj.classes)),
                    (
                        "CKA_ID",
                        (obj.cka_id or "none")
                        + (" — shared with another key" if obj.shared_id else "")
                        + (" (adopting gives it a fresh ID)" if obj.needs_new_id else ""),
                    ),
                    ("KCV / SHA-256", obj.identifier or "—"),
                    ("Exposure", ", ".join(obj.exposure) or "none"),
                    ("Related", "; ".join(obj.related) or "none"),
                ]
            )
            self.adopt_button.setEnabled(obj.kind.is_key and obj.algorithm is not None)
            return
        if record is not None:
            self.title.setText(record.name)
            uses = f"{item.uses:,} protect operations recorded"
            if item.usage_due:
                uses += f" — {item.usage_due}"
            self._set_fields([*self._record_fields(record), ("Uses", uses)])
            sync = record.token_sync.title
            self.sync.setText(sync[:1].upper() + sync[1:] + ".")
            self.sync.setVisible(record.token_sync is not TokenSync.OK)

    def _record_fields(self, record: KeyRecord) -> list[tuple[str, str]]:
        identifier = (
            (
                "KCV",
                identifier_text(bytes.fromhex(record.kcv))
                if record.kcv
                else "not provided by the token",
            )
            if record.algorithm.symmetric
            else ("SHA-256 fingerprint", identifier_text(bytes.fromhex(record.fingerprint or "")))
        )
        fields = [
            ("State", record.state.title),
            ("Algorithm", f"{record.algorithm.value} ({record.algorithm.spec.size_label})"),
            ("Purpose", record.purpose.title),
            identifier,
            ("Backup", _backup_text(record)),
            *([("Exposure", _exposure_text(record))] if record.exposure else []),
            ("Token", record.token_label),
            ("Token serial", record.token_serial),
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
        self._fill_distribution(view.distribution)
        self._fill_certificates(view.certificates, view.details.record.id)
        self._fill_history(view.history)

    def _fill_distribution(self, items: list[Distribution]) -> None:
        """The distribution record: who received this key (or where it came from), when,
        under which recipient fingerprint, approved by whom."""
        if not items:
            self.distribution.hide()
            return
        lines = ["Distribution record:"]
        for d in items:
            verb = "Sent to" if d.direction == "sent" else "Received via"
            lines.append(
                f"• {d.created_at[:16].replace('T', ' ')} UTC — {verb} {d.recipient_name} "
                f"[{d.recipient[:16]}…], {d.mechanism}, KCV {d.kcv}; by {', '.join(d.operators)}"
            )
        self.distribution.setText("\n".join(lines))
        self.distribution.show()

    def _fill_certificates(self, certs: list[StoredCertificate], key_id: str) -> None:
        """Certificates of this key and those it issued (RFC 5280), with their state; export
        with ``keystead certs export SERIAL``."""
        if not certs:
            self.certificates.hide()
            return
        lines = ["Certificates (export: keystead certs export SERIAL):"]
        for c in certs:
            role = "issued by this key" if c.key_id != key_id else "of this key"
            state = (
                f"REVOKED {c.revoked_at[:10]} ({c.revocation_reason})" if c.revoked_at else "valid"
            )
            lines.append(
                f"• {safe_token_text(c.subject)} — serial {c.serial}, {c.profile}, {role}, until "
                f"{c.not_after[:10]}, {state}"
            )
        self.certificates.setText("\n".join(lines))
        self.certificates.show()

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
        """Newest first. Each entry is two rows: time, who, action, outcome; then, across the
        whole width and wrapped, what changed and why (never cut into a narrow column)."""
        self.history.clearSpans()
        self.history.setRowCount(2 * len(events))
        for index, event in enumerate(reversed(events)):
            row = 2 * index
            details = event.details
            parts = []
            if "from" in details:
                parts.append(f"{_state_title(details['from'])} → {_state_title(details['to'])}")
            for key in ("reason", "refusal", "error"):
                if details.get(key):
                    parts.append(str(details[key]))
            values = (
                event.ts[:16].replace("T", " "),
                ", ".join(event.operators),
                event.action.removeprefix("key."),
                event.outcome,
            )
            for column, value in enumerate(values):
                cell = QTableWidgetItem(value)
                cell.setToolTip(value)
                self.history.setItem(row, column, cell)
            change = " — ".join(parts) or "—"
            detail = QTableWidgetItem(change)
            detail.setToolTip(change)
            detail.setForeground(_MUTED)
            self.history.setItem(row + 1, 0, detail)
            self.history.setSpan(row + 1, 0, 1, len(HISTORY_COLUMNS))
        for column in range(len(HISTORY_COLUMNS) - 1):
            self.history.resizeColumnToContents(column)
        self.history.resizeRowsToContents()

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


# Rows shown in red when present: the officer must not miss them.
ALARMING = frozenset({"Exposure"})


def _exposure_text(record: KeyRecord) -> str:
    """An adopted key whose value may have been outside the token, in words."""
    return "EXPOSED — " + "; ".join(e.title for e in parse_exposure(record.exposure))


def _backup_text(record: KeyRecord) -> str:
    """What the token allows for getting the key off it, without promising more: a key the
    token reports as not sensitive is readable in clear, whatever Keystead's backup says."""
    exposure = set(parse_exposure(record.exposure))
    if Exposure.NOT_SENSITIVE in exposure:
        return "not sensitive: the token gives its value in clear (not a protected backup)"
    if record.extractable and Exposure.EXTRACTABLE in exposure:
        return "extractable under any wrapping key (not WRAP_WITH_TRUSTED)"
    if record.extractable:
        return f"extractable for wrapped backup; {record.wrap_trusted.title}"
    return "never extractable"
