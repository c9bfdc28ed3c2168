"""Where backups go: removable volumes, and durable writes that are read back.

``removable_volumes`` joins psutil's mount table with sysfs (``removable`` = 1, or a device on
the USB bus). ``write_new`` writes a file that must not exist yet: temporary name, fsync,
rename, fsync of the directory. ``read_uncached`` drops the file from the page cache first
(``posix_fadvise(DONTNEED)``) so the read-back sees what the medium holds, as far as the
kernel lets a program tell.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import psutil

from app.errors import BackupIntegrityError, DiskFull, StorageError
from app.storage.files import fsync_directory, read_regular

TEMP_SUFFIX = ".partial"


@dataclass(frozen=True)
class Volume:
    """A mounted removable volume."""

    device: str  # /dev/sdb1
    mountpoint: str
    fstype: str
    label: str
    uuid: str
    free_bytes: int
    total_bytes: int


def _by_link(directory: str) -> dict[str, str]:
    """Device path -> name, from /dev/disk/by-label or /dev/disk/by-uuid."""
    found: dict[str, str] = {}
    try:
        for entry in os.scandir(directory):
            found[os.path.realpath(entry.path)] = entry.name.replace("\\x20", " ")
    except OSError:
        pass
    return found


def _is_removable(device: str) -> bool:
    name = os.path.basename(os.path.realpath(device))
    block = Path("/sys/class/block") / name
    if not block.exists():
        return False
    disk = block if (block / "removable").exists() else block.parent
    try:
        if (disk / "removable").read_text().strip() == "1":
            return True
    except OSError:
        return False
    return "/usb" in os.path.realpath(disk)


def removable_volumes() -> list[Volume]:
    """Mounted volumes on removable or USB block devices, with label, UUID and free space."""
    labels = _by_link("/dev/disk/by-label")
    uuids = _by_link("/dev/disk/by-uuid")
    volumes = []
    for part in psutil.disk_partitions(all=False):
        if not part.device.startswith("/dev/") or not _is_removable(part.device):
            continue
        try:
            usage = shutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        real = os.path.realpath(part.device)
        volumes.append(
            Volume(
                device=part.device,
                mountpoint=part.mountpoint,
                fstype=part.fstype,
                label=labels.get(real, ""),
                uuid=uuids.get(real, ""),
                free_bytes=usage.free,
                total_bytes=usage.total,
            )
        )
    return volumes


def volume_of(directory: Path, volumes: list[Volume]) -> Volume | None:
    """The removable volume ``directory`` is on (the deepest mount point), or None."""
    resolved = directory.resolve()
    holding = [v for v in volumes if resolved.is_relative_to(v.mountpoint)]
    return max(holding, key=lambda v: len(v.mountpoint), default=None)


def settle() -> None:
    """Flush every file system's dirty pages to its device (sync(2)): after this returns, the
    kernel holds nothing of the backup that the medium does not."""
    os.sync()


def free_bytes(directory: Path) -> int:
    return shutil.disk_usage(directory).free


def write_new(path: Path, data: bytes) -> None:
    """Write ``path``, which must not exist: ``<name>.partial`` (O_EXCL), fsync, rename,
    fsync the directory. On any failure the temporary file is removed and ``DiskFull`` or
    ``StorageError`` raised; ``path`` is never left half-written."""
    tmp = path.with_name(path.name + TEMP_SUFFIX)
    if path.exists():
        raise StorageError(f"{path} already exists; a backup never overwrites a file.")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        fsync_directory(path.parent)
    except OSError as exc:
        with _quiet():
            tmp.unlink(missing_ok=True)
        raise media_error(exc, path) from exc


def read_uncached(path: Path, limit: int) -> bytes:
    """The file's bytes, after asking the kernel to drop its cached pages; it must be a regular
    file of at most ``limit`` bytes (``app.storage.files.read_regular``, which raises
    BackupIntegrityError otherwise). An I/O error of the medium raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)  # dirty pages cannot be dropped; they are clean after this
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return read_regular(path, "backup file", limit, error=BackupIntegrityError)


def media_error(exc: OSError, path: Path) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return DiskFull(f"The medium holding {path.parent} is full; nothing was marked backed up.")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(f"{path.parent} is read-only or not writable; nothing was written.")
    if exc.errno in (errno.EIO, errno.ENODEV, errno.ENXIO, errno.ENOENT):
        return StorageError(
            f"The medium holding {path.parent} failed or was removed ({exc.strerror}); "
            "nothing was marked backed up."
        )
    return StorageError(f"Could not write {path}: {exc.strerror}.")


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return isinstance(exc[1], OSError)
