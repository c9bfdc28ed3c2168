"""The dependency rule: app/ never imports Qt (nor ui/); only app/hsm imports pkcs11 and only
app/storage imports sqlcipher3; ui/ reaches tokens and the database only through app/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_roots(source: str, package: str = "") -> set[str]:
    """Top-level names a module imports: import statements anywhere in the file (also inside
    functions and ``if TYPE_CHECKING``), ``__import__("x")`` and ``importlib.import_module("x")``
    with a literal name. Relative imports resolve to ``package``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level > 0 and package:
                found.add(package)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
            if name in ("__import__", "import_module") and literal:
                found.add(str(first.value).lstrip(".").split(".")[0])
    return found


def python_files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    return files


def importing(package: str, name: str) -> list[str]:
    return [
        str(path.relative_to(ROOT))
        for path in python_files(package)
        if name in imported_roots(path.read_text(encoding="utf-8"), package)
    ]


def test_the_import_finder_sees_every_form() -> None:
    """The checker itself can fail: each way of importing Qt is found."""
    for source in (
        "import PySide6",
        "import PySide6.QtCore as qc",
        "from PySide6.QtWidgets import QWidget",
        "def f():\n    from PySide6 import QtGui\n",
        "if TYPE_CHECKING:\n    import PySide6\n",
        "__import__('PySide6.QtCore')",
        "import importlib\nimportlib.import_module('PySide6')",
    ):
        assert "PySide6" in imported_roots(source), source
    assert imported_roots("import os, json\nfrom pathlib import Path") == {"os", "json", "pathlib"}


def test_app_imports_no_pyside6_and_no_ui() -> None:
    assert importing("app", "PySide6") == []
    assert importing("app", "shiboken6") == []
    assert importing("app", "ui") == []


def test_importing_all_of_app_loads_no_qt() -> None:
    """At run time too: import every module of app/ in a fresh interpreter."""
    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in python_files("app")
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6')))\n"
        "print(len([m for m in sys.modules if m.startswith('app.')]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    qt, loaded = result.stdout.splitlines()
    assert qt == "[]"
    assert int(loaded) >= len(modules) - 1  # the app package itself is not "app."


def test_only_app_hsm_imports_pkcs11() -> None:
    users = importing("app", "pkcs11")
    assert users  # the rule is about something real
    assert all(path.startswith("app/hsm/") for path in users), users


def test_only_app_storage_imports_sqlcipher3() -> None:
    users = importing("app", "sqlcipher3")
    assert users
    assert all(path.startswith("app/storage/") for path in users), users


def test_ui_reaches_tokens_and_the_database_only_through_app() -> None:
    assert importing("ui", "PySide6")  # the GUI is where Qt lives
    assert importing("ui", "sqlcipher3") == []
    assert importing("ui", "pkcs11") == []
