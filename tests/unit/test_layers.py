"""The dependency rule: app/ never imports Qt; only app/hsm imports pkcs11, only app/storage
imports sqlcipher3; ui/ may import app/, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def modules_importing(package: str, name: str) -> list[str]:
    return sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / package).rglob("*.py") if name in imports(p)
    )


def test_app_imports_no_qt() -> None:
    assert modules_importing("app", "PySide6") == []
    assert modules_importing("app", "ui") == []


def test_only_hsm_imports_pkcs11() -> None:
    assert all(p.startswith("app/hsm/") for p in modules_importing("app", "pkcs11"))
    assert modules_importing("app", "pkcs11")  # the rule is about something real


def test_only_storage_imports_sqlcipher() -> None:
    assert modules_importing("app", "sqlcipher3") == ["app/storage/database.py"]
    assert modules_importing("ui", "sqlcipher3") == []
    assert modules_importing("ui", "pkcs11") == []
