"""Desktop integration: the entry and the AppStream metainfo validate with Debian's own tools,
and packaging/install_desktop.py installs them with the hicolor icons rendered from the SVG."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

REPO = Path(__file__).resolve().parents[2]
DESKTOP = REPO / "resources" / "org.keystead.Keystead.desktop"
METAINFO = REPO / "resources" / "org.keystead.Keystead.metainfo.xml"


def test_desktop_entry_validates() -> None:
    if shutil.which("desktop-file-validate") is None:
        pytest.skip("desktop-file-utils is not installed")
    result = subprocess.run(
        ["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stdout.lower()


def test_metainfo_validates() -> None:
    if shutil.which("appstreamcli") is None:
        pytest.skip("appstream (appstreamcli) is not installed")
    result = subprocess.run(
        ["appstreamcli", "validate", "--no-net", "--pedantic", str(METAINFO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_writes_entry_metainfo_and_every_icon_size(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "packaging" / "install_desktop.py"),
            "--assets",
            str(REPO),
            "--prefix",
            str(tmp_path),
            "--exec",
            "/opt/keystead/bin/keystead-gui",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    share = tmp_path / "share"
    entry = (share / "applications" / "org.keystead.Keystead.desktop").read_text()
    assert "Exec=/opt/keystead/bin/keystead-gui\n" in entry
    assert "Icon=org.keystead.Keystead\n" in entry
    assert (share / "metainfo" / METAINFO.name).read_bytes() == METAINFO.read_bytes()
    hicolor = share / "icons" / "hicolor"
    assert (hicolor / "scalable" / "apps" / "org.keystead.Keystead.svg").exists()
    for size in (16, 22, 24, 32, 48, 64, 128, 256, 512):
        image = QImage(str(hicolor / f"{size}x{size}" / "apps" / "org.keystead.Keystead.png"))
        assert (image.width(), image.height()) == (size, size)
        centre = image.pixelColor(size // 2, size // 2)
        assert centre.alpha() == 255  # drawn, not an empty transparent square
