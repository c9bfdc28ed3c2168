"""``write_atomic_many``: the token store's shadow copies written as one batch. Each file is
old or new, never partial; one fsync per file plus one per directory; a failure removes every
temp file and leaves the files not yet renamed as they were, with a one-line typed error."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from app.errors import DiskFull, StorageError
from app.storage import files
from app.storage.files import write_atomic_many


def _fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(files.os, "fsync", counting)
    return calls


def test_every_file_is_written_with_one_fsync_each_and_one_per_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a.object").write_bytes(b"old")
    items = [(one / f"{i}.object", bytes([i]) * (i + 1)) for i in range(5)]
    items += [(two / "b.object", b"b"), (one / "a.object", b"new")]
    calls = _fsyncs(monkeypatch)
    write_atomic_many(items)
    assert len(calls) == len(items) + 2  # each file, then each of the two directories once
    for path, data in items:
        assert path.read_bytes() == data
        assert path.stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.rglob(".*.tmp"))


def test_nothing_to_write_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fsyncs(monkeypatch)
    write_atomic_many([])
    assert calls == []


def test_a_full_disk_leaves_the_old_files_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = {tmp_path / f"{i}.object": f"old {i}".encode() for i in range(3)}
    for path, data in old.items():
        path.write_bytes(data)
    real_write = os.write
    written: list[int] = []

    def full(fd: int, data: memoryview) -> int:
        written.append(fd)
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(files.os, "write", full)
    with pytest.raises(DiskFull, match=r"is full; 1\.object was not changed\.$"):
        write_atomic_many([(path, b"new") for path in old])
    assert {path: path.read_bytes() for path in old} == old
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_missing_directory_is_a_storage_error_and_earlier_temp_files_go(
    tmp_path: Path,
) -> None:
    first = tmp_path / "a.object"
    first.write_bytes(b"old")
    with pytest.raises(StorageError, match=r"Could not write .*gone.*b\.object: "):
        write_atomic_many([(first, b"new"), (tmp_path / "gone" / "b.object", b"x")])
    assert first.read_bytes() == b"old"
    assert not list(tmp_path.glob(".*.tmp"))
