"""PKCS#11 modules registered with p11-kit, offered to people adding a module.

p11-kit reads ``<name>.module`` files from the user, system and package directories (in that
precedence: for one name the first file wins and later ones only fill in missing keys). Each
file holds ``key: value`` lines; blank lines and lines starting with ``#`` are ignored. The
``module:`` value is an absolute path or a path relative to p11-kit's module directory. Only
``*.module`` files are read (p11-kit still loads other names, with a warning that it will stop).
This reads the files only; it never loads a module.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

USER_DIR = Path("~/.config/pkcs11/modules")
SYSTEM_DIR = Path("/etc/pkcs11/modules")
PACKAGE_DIR = Path("/usr/share/p11-kit/modules")

# p11-kit's own file name rule: alphanumeric first, then alphanumerics, "_", "-" and ".".
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.module")


class MalformedConfig(ValueError):
    """A p11-kit module file that p11-kit itself would refuse."""


@dataclass(frozen=True)
class RegisteredModule:
    """One module registered with p11-kit. ``enable_in``/``disable_in`` are the program names
    p11-kit limits the module to or hides it from, shown for information only."""

    name: str
    path: str
    config_file: str
    exists: bool
    enable_in: tuple[str, ...] = ()
    disable_in: tuple[str, ...] = ()


def default_dirs() -> list[Path]:
    """User, system and package configuration directories, in p11-kit's precedence."""
    return [USER_DIR.expanduser(), SYSTEM_DIR, PACKAGE_DIR]


def module_dir_candidates() -> list[Path]:
    """Where p11-kit looks for relative module names on common distributions (its compiled-in
    P11_MODULE_PATH): Debian/Ubuntu multiarch, Fedora/RHEL, Arch/Alpine, /usr/local."""
    import sysconfig  # (only when a module name is resolved: not loaded by every command)

    candidates: list[Path] = []
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if isinstance(multiarch, str) and multiarch:
        candidates.append(Path("/usr/lib") / multiarch / "pkcs11")
    machine = os.uname().machine  # (what platform.machine() reads, without loading platform)
    if machine:
        candidates.append(Path("/usr/lib") / f"{machine}-linux-gnu" / "pkcs11")
    candidates += [
        Path("/usr/lib64/pkcs11"),
        Path("/usr/lib/pkcs11"),
        Path("/usr/local/lib/pkcs11"),
    ]
    return list(dict.fromkeys(candidates))


def resolve_module(value: str, module_dirs: Sequence[Path] | None = None) -> Path:
    """The absolute path of a ``module:`` value; a relative one is looked up in the first
    module directory that has it, else placed in the first one that exists (or the first)."""
    path = Path(value)
    if path.is_absolute():
        return path
    dirs = list(module_dirs) if module_dirs is not None else module_dir_candidates()
    for directory in dirs:
        if _exists(directory / path):
            return directory / path
    existing = [d for d in dirs if _is_dir(d)]
    base = existing[0] if existing else (dirs[0] if dirs else Path("/usr/lib/pkcs11"))
    return base / path


def parse_config(text: str) -> dict[str, str]:
    """The ``key: value`` pairs of a module file, as p11-kit's lexer reads them (a later key
    replaces an earlier one). Raises ``MalformedConfig`` where p11-kit would fail (no colon, a
    section header, a PEM block) and for an empty key."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            raise MalformedConfig(f"line {number}: section headers are not allowed")
        if line.startswith("-----BEGIN "):
            raise MalformedConfig(f"line {number}: PEM blocks are not allowed")
        key, colon, value = line.partition(":")
        if not colon:
            raise MalformedConfig(f"line {number}: no colon in {line!r}")
        key = key.strip()
        if not key:
            raise MalformedConfig(f"line {number}: empty key")
        values[key] = value.strip()
    return values


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a directory we may not search
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _programs(value: str | None) -> tuple[str, ...]:
    return tuple(p for p in re.split(r"[,\s]+", value or "") if p)


def _read(file: Path) -> dict[str, str] | None:
    try:
        return parse_config(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, MalformedConfig) as exc:
        log.warning("skipping p11-kit module file %s: %s", file, exc)
        return None


def registered_modules(
    dirs: Sequence[Path] | None = None, module_dirs: Sequence[Path] | None = None
) -> list[RegisteredModule]:
    """The modules registered in ``dirs`` (default: ``default_dirs()``, highest precedence
    first), sorted by name and deduplicated by resolved library path. Missing directories and
    malformed files are skipped and logged; this never raises."""
    configs: dict[str, dict[str, str]] = {}
    module_file: dict[str, Path] = {}  # the file that gave each name its module: line
    for directory in default_dirs() if dirs is None else dirs:
        try:
            files = sorted(p for p in Path(directory).expanduser().iterdir() if _is_file(p))
        except OSError:
            continue  # absent or unreadable, as p11-kit ignores it
        for file in files:
            if not _NAME.fullmatch(file.name):
                continue
            values = _read(file)
            if values is None:
                continue
            name = file.name.removesuffix(".module")
            merged = configs.setdefault(name, {})
            for key, value in values.items():
                merged.setdefault(key, value)  # an earlier (higher precedence) file wins
            if "module" in values and name not in module_file:
                module_file[name] = file

    found: list[RegisteredModule] = []
    seen: set[Path] = set()
    for name in sorted(configs):
        values = configs[name]
        value = values.get("module", "")
        if not value:
            log.warning("p11-kit module config %s names no module; skipped", name)
            continue
        path = resolve_module(value, module_dirs)
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            resolved = path
        if resolved in seen:
            log.info("p11-kit module %s duplicates %s; skipped", name, resolved)
            continue
        seen.add(resolved)
        found.append(
            RegisteredModule(
                name=name,
                path=str(resolved),
                config_file=str(module_file[name]),
                exists=_is_file(resolved),
                enable_in=_programs(values.get("enable-in")),
                disable_in=_programs(values.get("disable-in")),
            )
        )
    return found
