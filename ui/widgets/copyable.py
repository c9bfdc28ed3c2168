"""A value shown in full (wrapped, selectable) with a Copy button: fingerprints, KCVs,
serials and ids are read, compared and pasted, never cut off."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget


class CopyableValue(QWidget):
    """A wrapped, selectable label and a small Copy button that copies ``raw`` (or the text)."""

    def __init__(
        self, text: str, raw: str | None = None, mono: bool = False, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.label = QLabel(text, self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.label.setToolTip(raw or text)
        if mono:
            self.label.setObjectName("mono")
        self.raw = raw if raw is not None else text
        self.copy_button = QToolButton(self)
        self.copy_button.setText("Copy")
        self.copy_button.setToolTip("Copy to the clipboard")
        self.copy_button.setAccessibleName(f"Copy {self.raw}")
        self.copy_button.clicked.connect(self.copy)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignTop)

    def text(self) -> str:
        return self.label.text()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.raw)


def wrappable(text: str, every: int = 4) -> str:
    """Insert zero-width spaces so long unbroken values (hex ids, uuids) can wrap."""
    if " " in text or len(text) <= 12:
        return text
    return "\u200b".join(text[i : i + every] for i in range(0, len(text), every))
