"""The ceremony templates shipped in ``resources/ceremonies/`` (one TOML script each)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.assets import asset_dir
from app.ceremony import script as scripts


@dataclass(frozen=True)
class Template:
    name: str
    path: Path
    script: scripts.Script


def template_dir() -> Path:
    return asset_dir("resources") / "ceremonies"


def templates() -> list[Template]:
    """Every shipped template, parsed (a broken template raises: the test suite parses all)."""
    found = []
    for path in sorted(template_dir().glob("*.toml")):
        parsed = scripts.load(path)
        found.append(Template(path.stem, path, parsed))
    return found


def resolve(ref: str) -> Path:
    """A script path as given, or a shipped template by name (``root-ca``)."""
    given = Path(ref)
    if given.exists() or given.suffix == ".toml" or "/" in ref:
        return given
    candidate = template_dir() / f"{ref}.toml"
    return candidate if candidate.is_file() else given
