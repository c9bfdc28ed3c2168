"""Backup shares at a ceremony: each custodian's card shown alone, and shares typed back.

``ShareCardDialog`` shows one custodian's SLIP-39 words only after that custodian presses
"Show my share" (the others have turned away), never selectable or copyable, and closes with
"I have written it down". ``ShareEntryDialog`` takes the shares back for a drill, each in a
field that does not echo or copy. ``QtShareDesk`` is how the core thread asks for either: a
signal to the GUI thread and a ``threading.Event`` back (as ``ui/qt_prompter.py`` does).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.errors import OperationCancelled
from ui.widgets.form import hint
from ui.widgets.secret_field import SecretField


class ShareCardDialog(QDialog):
    def __init__(
        self,
        custodian: str,
        index: int,
        total: int,
        words: str,
        kek_check_value: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Share {index} of {total}: {custodian}")
        self.setModal(True)
        layout = QVBoxLayout(self)
        title = QLabel(f"Share {index} of {total} — for {custodian} only", self)
        title.setObjectName("shareTitle")
        font = title.font()
        font.setPointSize(15)
        font.setBold(True)
        title.setFont(font)
        layout.addWidget(title)
        layout.addWidget(
            hint(
                f"Everyone but {custodian} turns away. {custodian} presses Show, writes the "
                "words on their card in order, checks them, and closes. Keystead never stores "
                f"the share. KEK check value {kek_check_value}.",
                self,
            )
        )
        numbered = "\n".join(
            "   ".join(f"{n + 1:>2}. {w:<12}" for n, w in list(enumerate(words.split()))[i : i + 4])
            for i in range(0, len(words.split()), 4)
        )
        self.words = QLabel(numbered, self)
        self.words.setObjectName("shareWords")
        self.words.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.words.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSize(13)
        self.words.setFont(mono)
        self.words.setVisible(False)
        layout.addWidget(self.words)
        self.show_button = QPushButton(f"Show my share ({custodian})", self)
        self.show_button.setObjectName("showShare")
        self.show_button.clicked.connect(self._reveal)
        layout.addWidget(self.show_button)
        self.buttons = QDialogButtonBox(self)
        self.done_button = self.buttons.addButton(
            "I have written it down", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.done_button.setObjectName("shareWritten")
        self.done_button.setEnabled(False)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._written)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def _reveal(self) -> None:
        self.words.setVisible(True)
        self.show_button.setEnabled(False)
        self.done_button.setEnabled(True)

    def _written(self) -> None:
        self.words.clear()  # nothing left on screen for the next custodian
        self.accept()


class ShareEntryDialog(QDialog):
    def __init__(self, needed: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Custodians: type your shares")
        layout = QVBoxLayout(self)
        layout.addWidget(
            hint(
                f"{needed} custodians each type their share's words, one after another, "
                "while the others look away. The words are not shown.",
                self,
            )
        )
        form = QFormLayout()
        self.fields = [SecretField("share words", self) for _ in range(needed)]
        for number, entry in enumerate(self.fields, 1):
            entry.setObjectName(f"share{number}")
            form.addRow(f"Share {number}", entry)
        layout.addLayout(form)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def shares(self) -> tuple[str, ...]:
        return tuple(" ".join(f.take().split()) for f in self.fields)


@dataclass
class _Request:
    card: Any = None
    needed: int = 0
    answer: tuple[str, ...] | bool | None = None
    done: threading.Event = field(default_factory=threading.Event)


class QtShareDesk(QObject):
    """Called from the core thread; the dialogs run on the GUI thread."""

    _ask = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._parent = parent
        self._ask.connect(self._on_ask, Qt.ConnectionType.QueuedConnection)

    def deliver_shares(self, card: Any) -> None:
        request = _Request(card=card)
        self._ask.emit(request)
        request.done.wait()
        if request.answer is not True:
            raise OperationCancelled("The share cards were not all handed out; nothing written.")

    def collect_shares(self, needed: int | None) -> tuple[str, ...]:
        request = _Request(needed=needed or 2)
        self._ask.emit(request)
        request.done.wait()
        if not isinstance(request.answer, tuple):
            raise OperationCancelled("No shares were typed; the drill did not run.")
        return request.answer

    @Slot(object)
    def _on_ask(self, request: _Request) -> None:
        try:
            if request.card is not None:
                share_set = request.card.share_set
                total = len(share_set.mnemonics)
                for index, (custodian, words) in enumerate(
                    zip(share_set.custodians, share_set.mnemonics, strict=True), 1
                ):
                    dialog = ShareCardDialog(
                        custodian,
                        index,
                        total,
                        words,
                        request.card.kek_check_value,
                        self._parent,
                    )
                    if not dialog.exec():
                        request.answer = False
                        return
                request.answer = True
            else:
                entry = ShareEntryDialog(request.needed, self._parent)
                request.answer = entry.shares() if entry.exec() else None
        finally:
            request.done.set()
