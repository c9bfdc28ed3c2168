"""Application look: Fusion style plus resources/keystead.qss."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QApplication

STYLESHEET = Path(__file__).resolve().parent.parent / "resources" / "keystead.qss"


def apply_style(app: QApplication) -> None:
    app.setStyle("Fusion")
    if STYLESHEET.exists():
        app.setStyleSheet(STYLESHEET.read_text(encoding="utf-8"))
