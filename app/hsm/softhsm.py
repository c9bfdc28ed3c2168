"""The embedded SoftHSM2 token: its module, and its configuration under the workstation home."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from app.errors import StorageError
from app.hsm.filestore import FileStore
from app.paths import Home
from app.storage.files import write_atomic

log = logging.getLogger(__name__)

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


def config_text(home: Home) -> str:
    """The ``softhsm2.conf`` of this home: its own token directory, the file object store."""
    return (
        "# Keystead's embedded SoftHSM2 token store, written by Keystead from its home at\n"
        "# every start (a moved or copied home keeps using its own store). Other PKCS#11\n"
        f"# tools reach it with SOFTHSM2_CONF={home.softhsm_conf}\n"
        f"directories.tokendir = {home.softhsm_tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )


def configured_tokendir(text: str) -> str | None:
    """The ``directories.tokendir`` a softhsm2.conf names, or None."""
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == "directories.tokendir":
            return value.strip()
    return None


def ensure_config(home: Home) -> Path:
    """Write ``<home>/softhsm/softhsm2.conf`` from the home, at every start.

    The file is derived from the home, never configuration of its own: a home copied with
    ``cp -a`` or moved keeps a conf naming the *original's* token directory, and SoftHSM would
    then write the original's token (its checkpoints, its PIN flags) from the copy. A conf
    that names another store is rewritten and the change logged. Raises ``StorageError`` when
    it cannot be (a read-only home whose conf names another home's store): using it would
    reach that other store."""
    home.softhsm_tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = config_text(home)
    try:
        current: str | None = home.softhsm_conf.read_text("utf-8")
    except FileNotFoundError:
        current = None
    except (OSError, UnicodeDecodeError):
        current = ""
    if current == text:
        return home.softhsm_conf
    named = configured_tokendir(current or "")
    try:
        write_atomic(home.softhsm_conf, text.encode("utf-8"))
    except StorageError as exc:
        if named is not None and Path(named) == home.softhsm_tokens:
            return home.softhsm_conf  # an older wording naming this very store: usable as is
        raise StorageError(
            f"{home.softhsm_conf} names the token store {named or '(none)'}, not this home's "
            f"{home.softhsm_tokens}, and cannot be rewritten ({exc.message}); the embedded "
            "token is not opened. Make the home writable, or use the home that store belongs to."
        ) from exc
    if current is not None and named is not None and Path(named) != home.softhsm_tokens:
        log.warning(
            "softhsm2.conf named the token store %s (a moved or copied home); it now names "
            "this home's own store %s",
            named,
            home.softhsm_tokens,
        )
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
