"""Durable file writes: temp file, permissions first, fsync, rename, fsync the directory."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from app.errors import DiskFull, KeysteadError, StorageError, ValidationError


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file
    (``write_atomic_many`` of one file: one place for the write, fsync and rename)."""
    write_atomic_many(((path, data),), mode)


def write_atomic_many(items: Sequence[tuple[Path, bytes]], mode: int = 0o600) -> None:
    """``write_atomic`` for many files at once, with the same guarantee per file (a crash leaves
    each either old or new): every temp file written and fsynced, then all renamed, then each
    directory fsynced once instead of once per file (half the fsyncs for a batch in one
    directory). DiskFull or StorageError; temp files are removed on failure."""
    temps: list[tuple[Path, Path]] = []
    current = Path()
    try:
        for path, data in items:
            current = path
            tmp = path.with_name(f".{path.name}.tmp")
            temps.append((tmp, path))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            try:
                os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
        for tmp, path in temps:
            current = path
            os.replace(tmp, path)
        for directory in dict.fromkeys(path.parent for _tmp, path in temps):
            current = next(path for _tmp, path in temps if path.parent == directory)
            fsync_directory(directory)
    except OSError as exc:
        for tmp, _path in temps:
            tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise DiskFull(
                f"The disk holding {current.parent} is full; {current.name} was not changed."
            ) from exc
        raise StorageError(f"Could not write {current}: {exc.strerror}.") from exc


def read_regular(
    path: Path,
    what: str,
    limit: int,
    *,
    error: type[KeysteadError] = ValidationError,
) -> bytes:
    """The bytes of ``path``, which must be a regular file (symlinks followed) of at most
    ``limit`` bytes: an input given on the command line or found on removable media.

    Opened first and checked on the open descriptor (``fstat``), so what is read is what was
    checked; opened non-blocking, so a FIFO does not hang the open. ``/dev/zero``, a FIFO, a
    socket, a directory, a file over ``limit`` (or one that grows past it while being read)
    raise ``error`` with one line naming ``what`` (so does an I/O error)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"The {what} {path} does not exist.") from None
    except OSError as exc:
        raise error(f"The {what} {path} cannot be read: {exc.strerror}.") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"The {what} {path} is not a regular file; give a file.")
        too_large = error(
            f"The {what} {path} is larger than {limit} bytes, the most a {what} may have; "
            "nothing was done."
        )
        if info.st_size > limit:
            raise too_large
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise too_large
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"The {what} {path} cannot be read: {exc.strerror}.") from None
    finally:
        os.close(fd)
