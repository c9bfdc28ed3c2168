"""Where a workstation keeps its files: one home directory, chosen once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from app.errors import ValidationError

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
    def unlock_failures(self) -> Path:
        """Wrong-passphrase counts kept outside the database (no key is at hand to write it)."""
        return self.root / "unlock-failures.json"

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

    @property
    def lock_file(self) -> Path:
        """The advisory lock one process holds while it has the workstation open."""
        return self.root / "keystead.lock"

    def exists(self) -> bool:
        """True when a workstation has been initialised here."""
        return self.keyslots.exists() or self.database.exists()

    def read_only(self) -> bool:
        """True when the home is on a read-only mount (an auditor's copy)."""
        try:
            return bool(os.statvfs(self.root).f_flag & os.ST_RDONLY)
        except OSError:
            return False

    def ensure(self) -> None:
        """Create the directory, readable only by its owner."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Home:
    """``--home`` wins, then ``KEYSTEAD_HOME``, then the platform's user data directory.

    Raises ValidationError for an empty ``--home``, a path that is not a directory, and the
    kernel's virtual file systems (/proc, /sys, /dev): never a silent fall-back."""
    if explicit is not None:
        text = os.fspath(explicit)
        if not str(text).strip():
            raise ValidationError("--home is empty; name the workstation's directory.")
        return _checked(Path(text).expanduser())
    env = os.environ.get(HOME_ENV)
    if env:
        return _checked(Path(env).expanduser())
    return Home(Path(platformdirs.user_data_dir("keystead", appauthor=False)))


_VIRTUAL = (Path("/proc"), Path("/sys"), Path("/dev"))


def _checked(path: Path) -> Home:
    try:
        root = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise ValidationError(f"The home {path} cannot be used ({exc}).") from exc
    if any(root == v or v in root.parents for v in _VIRTUAL):
        raise ValidationError(
            f"The home {root} is on a kernel virtual file system; choose a real directory."
        )
    if root.exists() and not root.is_dir():
        raise ValidationError(f"The home {root} is a file, not a directory; choose a directory.")
    for parent in root.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValidationError(
                    f"The home {root} is under {parent}, which is a file; choose a directory."
                )
            break
    return Home(root)
