"""Icons from the top-level icons/ directory (SVG)."""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QIcon

from app.assets import asset_dir

ICON_DIR = asset_dir("icons")


@cache
def icon(name: str) -> QIcon:
    path = ICON_DIR / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()
