"""Where a workstation keeps its files: one home directory, chosen once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

HOME_ENV = "KEYSTEAD_HOME"


@dataclass(frozen=True)
class Home:
    """The files of one workstation under ``root``."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "keystead.db"

    @property
    def keyslots(self) -> Path:
        return self.root / "keyslots.json"

    @property
    def softhsm_dir(self) -> Path:
        return self.root / "softhsm"

    @property
    def softhsm_conf(self) -> Path:
        return self.softhsm_dir / "softhsm2.conf"

    @property
    def softhsm_tokens(self) -> Path:
        return self.softhsm_dir / "tokens"

    @property
    def softhsm_shadow(self) -> Path:
        """Verified copies of the embedded token files (``app.hsm.filestore``)."""
        return self.softhsm_dir / "shadow"

    @property
    def softhsm_quarantine(self) -> Path:
        """Damaged token files without a good copy, moved aside at open."""
        return self.softhsm_dir / "quarantine"

    @property
    def softhsm_lock(self) -> Path:
        return self.softhsm_dir / "store.lock"

    def exists(self) -> bool:
        """True when a workstation has been initialised here."""
        return self.keyslots.exists() or self.database.exists()

    def ensure(self) -> None:
        """Create the directory, readable only by its owner."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Home:
    """``--home`` wins, then ``KEYSTEAD_HOME``, then the platform's user data directory."""
    if explicit:
        return Home(Path(explicit).expanduser().resolve())
    env = os.environ.get(HOME_ENV)
    if env:
        return Home(Path(env).expanduser().resolve())
    return Home(Path(platformdirs.user_data_dir("keystead", appauthor=False)))
