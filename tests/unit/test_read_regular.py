"""``read_regular``: the one reader of input files named on the command line or found on
removable media. Anything but a regular file within the limit is refused in one line, without
hanging (a FIFO) or reading without end (/dev/zero)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.errors import BackupIntegrityError, ValidationError
from app.storage.files import read_regular


def test_a_regular_file_and_a_symlink_to_one_are_read(tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    path.write_bytes(b"x" * 100)
    link = tmp_path / "link"
    link.symlink_to(path)
    assert read_regular(path, "input", 100) == b"x" * 100
    assert read_regular(link, "input", 100) == b"x" * 100
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert read_regular(empty, "input", 0) == b""


@pytest.mark.parametrize("kind", ["/dev/zero", "/dev/urandom", "/dev/null", "fifo", "dir", "link"])
def test_anything_but_a_regular_file_is_refused_in_one_line(tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)  # nobody writes: a blocking open would hang
    elif kind == "dir":
        path = tmp_path
    elif kind == "link":
        path = tmp_path / "zero-link"
        path.symlink_to("/dev/zero")
    else:
        path = Path(kind)
    with pytest.raises(ValidationError, match="is not a regular file") as caught:
        read_regular(path, "certificate request", 1 << 16)
    assert "\n" not in caught.value.message and "certificate request" in caught.value.message


def test_missing_too_large_and_the_chosen_error_class(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        read_regular(tmp_path / "nope", "shares file", 10)
    big = tmp_path / "big"
    big.write_bytes(b"y" * 11)
    with pytest.raises(ValidationError, match="larger than 10 bytes") as caught:
        read_regular(big, "shares file", 10)
    # F16: the limit in words that read ("more than any file" did not)
    assert caught.value.message == (
        f"The shares file {big} is larger than 10 bytes, the most a shares file may have; "
        "nothing was done."
    )
    with pytest.raises(BackupIntegrityError, match="not a regular file"):
        read_regular(Path("/dev/zero"), "backup file", 10, error=BackupIntegrityError)
    assert read_regular(big, "backup file", 11) == b"y" * 11
