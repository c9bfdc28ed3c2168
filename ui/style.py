"""Application look: Fusion style plus resources/keystead.qss."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from app.assets import asset_dir

STYLESHEET = asset_dir("resources") / "keystead.qss"


def apply_style(app: QApplication) -> None:
    app.setStyle("Fusion")
    if STYLESHEET.exists():
        app.setStyleSheet(STYLESHEET.read_text(encoding="utf-8"))
