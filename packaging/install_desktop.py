"""Install Keystead's desktop integration under a prefix (freedesktop.org layout):

  PREFIX/share/applications/org.keystead.Keystead.desktop   (Exec= set to the given command)
  PREFIX/share/metainfo/org.keystead.Keystead.metainfo.xml  (AppStream)
  PREFIX/share/icons/hicolor/scalable/apps/org.keystead.Keystead.svg
  PREFIX/share/icons/hicolor/NxN/apps/org.keystead.Keystead.png  for the hicolor sizes

The PNGs are rendered from icons/keystead.svg with Qt's SVG renderer (offscreen), so run this with
the Python that has Keystead's PySide6. Used by packaging/install.sh (the offline bundle) and
packaging/install-desktop.sh (a machine set up from the source tree).
Usage: python install_desktop.py --assets DIR --prefix PREFIX --exec COMMAND
(DIR holds icons/ and resources/). Prints the files written; exits 1 with one line on error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

APP_ID = "org.keystead.Keystead"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def render_png(svg: Path, size: int, out: Path) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not a valid SVG image")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(out), "PNG"):
        raise OSError(f"could not write {out}")


def install(assets: Path, prefix: Path, command: str) -> list[Path]:
    share = prefix / "share"
    written = []
    desktop = (assets / "resources" / f"{APP_ID}.desktop").read_text(encoding="utf-8")
    lines = [f"Exec={command}" if line.startswith("Exec=") else line for line in desktop.splitlines()]
    target = share / "applications" / f"{APP_ID}.desktop"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    written.append(target)
    metainfo = share / "metainfo" / f"{APP_ID}.metainfo.xml"
    metainfo.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(assets / "resources" / f"{APP_ID}.metainfo.xml", metainfo)
    written.append(metainfo)
    svg = assets / "icons" / "keystead.svg"
    scalable = share / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(svg, scalable)
    written.append(scalable)
    for size in SIZES:
        png = share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        render_png(svg, size, png)
        written.append(png)
    for tool, argument in (
        ("gtk-update-icon-cache", ["-q", "-t", str(share / "icons" / "hicolor")]),
        ("update-desktop-database", ["-q", str(share / "applications")]),
    ):
        if shutil.which(tool):
            subprocess.run([tool, *argument], check=False)
    for path in written:
        path.chmod(0o644)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, required=True)
    parser.add_argument("--prefix", type=Path, required=True)
    parser.add_argument("--exec", dest="command", required=True)
    args = parser.parse_args()
    try:
        for path in install(args.assets, args.prefix, args.command):
            print(path)
    except (OSError, ValueError) as exc:
        print(f"install_desktop: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
