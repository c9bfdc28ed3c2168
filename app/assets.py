"""Where Keystead's run-time assets live: the top-level ``resources/`` and ``icons/`` folders.

Run from a source tree (``scripts/setup.sh`` installs Keystead editable), they are the folders
beside ``app/``. Installed from a wheel (the offline bundle), they are under
``<sys.prefix>/share/keystead/`` (pyproject.toml's ``data-files``). A folder counts only when it
holds its marker file, so an unrelated ``resources`` directory in site-packages is never taken.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

AssetKind = Literal["resources", "icons"]

SOURCE_ROOT = Path(__file__).resolve().parents[1]
_MARKERS: dict[AssetKind, str] = {
    "resources": "cryptoperiods.toml",
    "icons": "keystead.svg",
}


def asset_dir(kind: AssetKind) -> Path:
    """The ``resources`` or ``icons`` folder in use.

    Returns the source tree's folder when it has the marker, else the installed one
    (``<sys.prefix>/share/keystead/<kind>``) when that has it, else the source tree's path (so
    a missing file is reported with the path a developer expects). Never raises.
    """
    candidates = (SOURCE_ROOT / kind, Path(sys.prefix) / "share" / "keystead" / kind)
    for candidate in candidates:
        if (candidate / _MARKERS[kind]).is_file():
            return candidate
    return candidates[0]
