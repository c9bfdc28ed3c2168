"""The embedded SoftHSM2 token: its module, and its configuration under the workstation home."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from app.hsm.filestore import FileStore
from app.paths import Home
from app.storage.files import write_atomic

# Where Debian, Ubuntu, Fedora and Homebrew put the SoftHSM2 module.
CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


def find_softhsm_module() -> str | None:
    """Path of the installed SoftHSM2 module, or None."""
    for candidate in CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return None


def is_softhsm(path: str) -> bool:
    return "softhsm" in Path(path).name.lower()


def ensure_config(home: Home) -> Path:
    """Write ``<home>/softhsm/softhsm2.conf`` (file object store) if it is not there yet."""
    home.softhsm_tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not home.softhsm_conf.exists():
        text = (
            "# Keystead's embedded SoftHSM2 token store. Other PKCS#11 tools reach it with\n"
            f"# SOFTHSM2_CONF={home.softhsm_conf}\n"
            f"directories.tokendir = {home.softhsm_tokens}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n"
        )
        write_atomic(home.softhsm_conf, text.encode("utf-8"))
    return home.softhsm_conf


def activate_config(home: Home) -> None:
    """Point SoftHSM at the workstation's store; SoftHSM reads this at C_Initialize."""
    os.environ["SOFTHSM2_CONF"] = str(ensure_config(home))


def file_store(home: Home) -> FileStore:
    """The guard of the embedded store's files: shadow copies, repair at open, its lock."""
    return FileStore(
        home.softhsm_tokens, home.softhsm_shadow, home.softhsm_quarantine, home.softhsm_lock
    )


def token_directories(home: Home) -> frozenset[str]:
    """The embedded store's token directories now (SoftHSM notices changes only when it is
    initialised again, so Keystead looks for itself)."""
    try:
        return frozenset(e.name for e in os.scandir(home.softhsm_tokens) if e.is_dir())
    except FileNotFoundError:
        return frozenset()


def quarantine_directory(home: Home, directory: Path) -> Path:
    """Move a token directory of the embedded store aside (never deleted), e.g. a token whose
    creation was interrupted. Returns where it went."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = home.softhsm_quarantine / f"{directory.name}.{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.replace(directory, target)
    return target
