"""One process changes a workstation at a time: an advisory lock on the home directory.

The lock is ``flock(LOCK_EX)`` on ``<home>/keystead.lock`` (Linux open-file-description lock,
released by the kernel when the process ends, even by SIGKILL: no stale lock to clean up). The
holder writes "PID PROGRAM" into the file so that a second process can say who has it. Two
processes driving the same SoftHSM token store and SQLCipher file at once is what made parallel
``keystead keys generate`` runs fail with false token errors (SoftHSM 2.6 rewrites its object
files without locking against other processes).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path

from app.domain.text import safe_token_text
from app.errors import StorageError, WorkstationInUse

# How often a waiting process tries again (seconds).
POLL_INTERVAL = 0.1


def program_name() -> str:
    """The running program as people know it: ``keystead``, ``keystead-gui``, ..."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name or "python"


class HomeLock:
    """The held lock; ``release`` (or process exit) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, root: Path, program: str | None = None, wait: float = 0.0) -> HomeLock:
        """Take the lock of the workstation in ``root``, waiting up to ``wait`` seconds.

        Raises WorkstationInUse naming the holder's process id and program when another
        process keeps it longer; StorageError when the lock file cannot be opened.
        """
        path = root / "keystead.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StorageError(f"Cannot open the workstation's lock file {path}: {exc}.") from exc
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(fd)
                    os.close(fd)
                    waited = f" (waited {wait:g} s)" if wait > 0 else ""
                    raise WorkstationInUse(
                        f"The workstation in {root} is in use by {holder}{waited}. Close or "
                        "lock it there, or try again; nothing was changed.",
                        holder,
                    ) from None
                time.sleep(POLL_INTERVAL)
            except OSError as exc:
                os.close(fd)
                raise StorageError(f"Cannot lock the workstation in {root}: {exc}.") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {program or program_name()}\n".encode(), 0)
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up (idempotent). The file stays; its content is the last holder."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def in_use_by(root: Path) -> str | None:
    """Who holds the lock of the workstation in ``root`` right now ("process N (program)"),
    or None when nobody does (or there is no lock file). Takes and gives back the lock at once
    when it is free, so a reader such as ``lock-status`` never holds it."""
    path = root / "keystead.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """ "process N (program)" from the lock file, as its holder wrote it."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    pid, _, program = text.partition(" ")
    if not pid.isdigit():
        return "another process"
    return f"process {pid} ({safe_token_text(program) or 'unknown program'})"
