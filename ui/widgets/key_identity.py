"""Who a dialog acts on: the key's name, its full KCV or fingerprint (grouped and as PGP
words to read aloud), and its token with serial. Every key action dialog shows this block,
so the target is never ambiguous."""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

from app.domain.fingerprints import identifier_text as shown_identifier
from app.domain.fingerprints import pgp_words
from app.domain.keys import KeyRecord
from ui.widgets.copyable import CopyableValue


def identifier_label(key: KeyRecord) -> str:
    return "KCV" if key.algorithm.symmetric else "SHA-256 fingerprint"


def identifier_text(key: KeyRecord) -> str:
    raw = bytes.fromhex(key.identifier) if key.identifier else b""
    return breakable(shown_identifier(raw)) if raw else "unknown (not provided by the token)"


def breakable(grouped: str) -> str:
    """A long colon-grouped hex value with line-break opportunities after each colon."""
    return grouped.replace(":", ":\u200b") if len(grouped) > 24 else grouped


class KeyIdentity(QWidget):
    """A form: Key, KCV / SHA-256 fingerprint, Read aloud, Token."""

    def __init__(self, key: KeyRecord, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        name = QLabel(f"<b>{_escape(key.name)}</b> ({key.state.title})", self)
        name.setObjectName("keyName")
        form.addRow("Key:", name)
        self.identifier = CopyableValue(
            identifier_text(key), key.identifier or "", mono=True, parent=self
        )
        form.addRow(f"{identifier_label(key)}:", self.identifier)
        raw = bytes.fromhex(key.identifier) if key.identifier else b""
        words = QLabel(" ".join(pgp_words(raw)) if raw else "—", self)
        words.setObjectName("pgpWords")
        words.setWordWrap(True)
        # A wrapped label in a form is laid out too short: keep room for every line of words
        # (about 50 monospace characters a line at the dialogs' width, 18 px a line).
        lines = len(words.text()) // 50 + 1
        words.setMinimumHeight(18 * lines + 10)
        form.addRow("Read aloud:", words)
        self.token = QLabel(f"{key.token_label} (serial {key.token_serial})", self)
        self.token.setWordWrap(True)
        form.addRow("Token:", self.token)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
