"""Window geometry and column widths kept between runs (QSettings, never a secret).

The file is ``<home>/gui.ini`` (INI format), per workstation: it holds only Qt's encoded
window geometry and header states, under the keys below.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QHeaderView, QWidget

GEOMETRY = "window/geometry"


def gui_settings(home_root: Path) -> QSettings:
    return QSettings(str(home_root / "gui.ini"), QSettings.Format.IniFormat)


def save_header(settings: QSettings, name: str, header: QHeaderView) -> None:
    settings.setValue(f"columns/{name}", header.saveState())


def restore_header(settings: QSettings, name: str, header: QHeaderView) -> bool:
    state = settings.value(f"columns/{name}")
    return isinstance(state, QByteArray) and header.restoreState(state)


def save_geometry(settings: QSettings, window: QWidget) -> None:
    settings.setValue(GEOMETRY, window.saveGeometry())


def restore_geometry(settings: QSettings, window: QWidget) -> bool:
    state = settings.value(GEOMETRY)
    return isinstance(state, QByteArray) and window.restoreGeometry(state)
