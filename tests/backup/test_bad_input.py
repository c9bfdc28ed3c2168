"""Every kind of bad backup is refused, with a message naming the problem, before the token or
the database is touched; write faults leave no partial file, earlier backups untouched and
nothing marked backed up."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.backup import format as fmt
from app.backup import media
from app.domain.algorithms import Algorithm
from app.errors import BackupIntegrityError, DiskFull, KeysteadError, StorageError
from app.services.backup import CreatedBackup, KekSecret
from tests.hsm.kit import PIN, SO_PIN, TOKEN, Station

pytestmark = pytest.mark.hsm

CUSTODIANS = ("alice", "bob", "carol")


def backup(station: Station, target: Path, **kwargs: Any) -> CreatedBackup:
    options: dict[str, Any] = {
        "threshold": 2,
        "custodians": CUSTODIANS,
        "deliver": lambda card: None,
        **kwargs,
    }
    created: CreatedBackup = station(
        station.ws.backup.create, target, TOKEN, SO_PIN, PIN, **options
    )
    return created


@pytest.fixture
def made(station: Station, tmp_path: Path) -> CreatedBackup:
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "one", backup_able=True)
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "two", backup_able=True)
    target = tmp_path / "stick"
    target.mkdir()
    return backup(station, target)


def untouched(station: Station) -> Callable[[], None]:
    """A check that neither the database's keys nor the token's objects changed."""
    keys = station(station.ws.keys.repo.all)
    objects = station(lambda: station.ws.tokens.session(TOKEN).key_objects())
    restores = len(station.events("backup.restore"))

    def check() -> None:
        assert station(station.ws.keys.repo.all) == keys
        assert station(lambda: station.ws.tokens.session(TOKEN).key_objects()) == objects
        assert [e.outcome for e in station.events("backup.restore")[restores:]] in ([], ["failed"])

    return check


def refused(
    station: Station, made: CreatedBackup, match: str, secret: KekSecret | None = None
) -> None:
    check = untouched(station)
    secret = secret or KekSecret(mnemonics=made.share_set.mnemonics[:2])  # type: ignore[union-attr]
    with pytest.raises(BackupIntegrityError, match=match):
        station(station.ws.backup.verify, made.directory, secret)
    with pytest.raises(BackupIntegrityError, match=match):
        station(station.ws.backup.restore, made.directory, secret, TOKEN)
    check()


@pytest.mark.parametrize("name", fmt.ALL_FILES)
@pytest.mark.parametrize("where", [0, -1, "middle"])
def test_a_flipped_byte_in_any_file(
    station: Station, made: CreatedBackup, name: str, where: Any
) -> None:
    path = made.directory / name
    data = bytearray(path.read_bytes())
    index = len(data) // 2 if where == "middle" else where
    data[index] ^= 0x01
    path.write_bytes(bytes(data))
    match = {
        fmt.MANIFEST: "manifest.json|signature",
        fmt.SIGNATURE: "signature",
    }.get(name, f"{name}.*(SHA-256|manifest)")
    refused(station, made, match)


@pytest.mark.parametrize("name", fmt.DATA_FILES)
def test_a_truncated_file(station: Station, made: CreatedBackup, name: str) -> None:
    path = made.directory / name
    path.write_bytes(path.read_bytes()[:-5])
    refused(station, made, f"{name} has .* bytes; the manifest says")


@pytest.mark.parametrize("name", fmt.ALL_FILES)
def test_a_missing_file(station: Station, made: CreatedBackup, name: str) -> None:
    (made.directory / name).unlink()
    refused(station, made, "incomplete" if name == fmt.MANIFEST else f"lacks {name}")


@pytest.mark.parametrize("extra", ["notes.txt", "keys.bin.partial", ".hidden"])
def test_an_extra_file(station: Station, made: CreatedBackup, extra: str) -> None:
    (made.directory / extra).write_bytes(b"x")
    refused(station, made, f"not part of the backup: {extra}")


def test_the_medium_given_instead_of_a_backup_names_the_backups_on_it(
    station: Station, made: CreatedBackup
) -> None:
    """A sibling of "the manifest is missing": the directory is the stick (or folder) the
    backups were written to. Verify and restore name its backup directories, newest first."""
    newer = backup(station, made.directory.parent)
    (made.directory.parent / "notes").mkdir()  # not a backup: not named
    secret = KekSecret(mnemonics=made.share_set.mnemonics[:2])  # type: ignore[union-attr]
    check = untouched(station)
    for attempt in (
        lambda: station(station.ws.backup.verify, made.directory.parent),
        lambda: station(station.ws.backup.restore, made.directory.parent, secret, TOKEN),
    ):
        with pytest.raises(BackupIntegrityError) as caught:
            attempt()
        message = caught.value.message
        assert "holds backups, it is not one" in message
        assert f"({newer.directory.name}, {made.directory.name})" in message
        assert message.endswith(f"e.g. {newer.directory}.")
        assert "notes" not in message
    check()
    # An empty directory is still "no manifest: incomplete".
    empty = made.directory.parent / "empty"
    empty.mkdir()
    with pytest.raises(BackupIntegrityError, match="incomplete"):
        station(station.ws.backup.verify, empty)


def test_files_from_two_backups_mixed(station: Station, made: CreatedBackup) -> None:
    other = backup(station, made.directory.parent)
    for name in fmt.DATA_FILES:
        original = (made.directory / name).read_bytes()
        shutil.copy(other.directory / name, made.directory / name)
        refused(station, made, f"{name}.*(bytes|SHA-256)")
        (made.directory / name).write_bytes(original)
    # the other backup's signed manifest over this backup's files
    for name in (fmt.MANIFEST, fmt.SIGNATURE):
        shutil.copy(other.directory / name, made.directory / name)
    refused(station, made, "(bytes|SHA-256).*(another backup|truncated)")


def test_a_manifest_signed_by_another_key_or_resigned(
    station: Station, made: CreatedBackup
) -> None:
    doc = (made.directory / fmt.MANIFEST).read_bytes()
    changed = doc.replace(b'"generation":1', b'"generation":9')
    assert changed != doc
    (made.directory / fmt.MANIFEST).write_bytes(changed)
    refused(station, made, "signature does not verify")


def test_another_backups_signature(station: Station, made: CreatedBackup) -> None:
    other = backup(station, made.directory.parent)
    shutil.copy(other.directory / fmt.SIGNATURE, made.directory / fmt.SIGNATURE)
    refused(station, made, "signature does not verify")


def test_share_errors(station: Station, made: CreatedBackup) -> None:
    shares = made.share_set.mnemonics  # type: ignore[union-attr]
    other = backup(station, made.directory.parent)
    other_shares = other.share_set.mnemonics  # type: ignore[union-attr]
    typo = shares[0].split()
    typo[4] = "zebra" if typo[4] != "zebra" else "zero"  # SLIP-39 words; the checksum breaks
    cases = [
        ((shares[0],), "needs 2"),
        ((shares[0], shares[0]), "twice"),
        ((shares[0], other_shares[1]), "another backup"),
        ((" ".join(typo), shares[1]), "does not read as SLIP-39"),
        ((shares[0], "not words at all"), "does not read as SLIP-39"),
    ]
    for mnemonics, match in cases:
        refused(station, made, match, KekSecret(mnemonics=mnemonics))
        # no share word in the message
        try:
            station(station.ws.backup.verify, made.directory, KekSecret(mnemonics=mnemonics))
        except KeysteadError as exc:
            for word in set(" ".join(shares).split()) - set(match.split()):
                assert f" {word} " not in f" {exc.message} "


def test_a_wrong_share_passphrase_is_caught_by_the_kek_check_value(
    station: Station, made: CreatedBackup
) -> None:
    shares = made.share_set.mnemonics  # type: ignore[union-attr]
    secret = KekSecret(mnemonics=shares[:2], share_passphrase=b"not the passphrase")
    refused(station, made, "check value differs", secret)


def test_a_share_passphrase_is_needed_when_one_was_set(station: Station, tmp_path: Path) -> None:
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "k", backup_able=True)
    made = backup(station, tmp_path, share_passphrase=b"custodian words")
    shares = made.share_set.mnemonics  # type: ignore[union-attr]
    refused(station, made, "check value differs", KekSecret(mnemonics=shares[1:]))
    report = station(
        station.ws.backup.verify,
        made.directory,
        KekSecret(mnemonics=shares[1:], share_passphrase=b"custodian words"),
    )
    assert report.kek_checked


# --- write faults --------------------------------------------------------------------------


class FaultyOs(SimpleNamespace):
    """``os`` for app.backup.media, failing the Nth call of one function with an errno."""

    def __init__(self, name: str, nth: int, code: int) -> None:
        super().__init__()
        self._name, self._nth, self._code, self._calls = name, nth, code, 0

    def __getattr__(self, attr: str) -> Any:
        real = getattr(os, attr)
        if attr != self._name:
            return real

        def faulty(*args: Any, **kwargs: Any) -> Any:
            self._calls += 1
            if self._calls == self._nth:
                raise OSError(self._code, os.strerror(self._code))
            return real(*args, **kwargs)

        return faulty


def nothing_marked(station: Station, before: int) -> None:
    assert len(station(station.ws.backup.backups)) == before
    assert station(station.ws.backup.repo.newest_per_key) == (
        {} if before == 0 else station(station.ws.backup.repo.newest_per_key)
    )
    assert station.events("backup.create")[-1].outcome in ("failed", "aborted")


@pytest.mark.parametrize(
    ("call", "nth", "code", "match"),
    [
        ("write", 1, errno.ENOSPC, "full"),
        ("write", 3, errno.ENOSPC, "full"),
        ("fsync", 2, errno.EIO, "failed or was removed"),
        ("rename", 4, errno.ENODEV, "failed or was removed"),
        ("fsync", 9, errno.EIO, "failed or was removed"),  # the read-back's fsync
    ],
)
def test_a_write_fault_leaves_nothing_and_marks_nothing(
    station: Station,
    made: CreatedBackup,
    monkeypatch: pytest.MonkeyPatch,
    call: str,
    nth: int,
    code: int,
    match: str,
) -> None:
    earlier = {p.name: p.read_bytes() for p in made.directory.iterdir()}
    before = len(station(station.ws.backup.backups))
    monkeypatch.setattr(media, "os", FaultyOs(call, nth, code))
    with pytest.raises(StorageError, match=match):
        backup(station, made.directory.parent)
    monkeypatch.undo()
    assert [p.name for p in made.directory.parent.iterdir()] == [made.directory.name]
    assert {p.name: p.read_bytes() for p in made.directory.iterdir()} == earlier
    nothing_marked(station, before)
    station(station.ws.backup.verify, made.directory)  # the earlier backup still verifies


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_medium_is_refused_before_writing(station: Station, small_tmpfs: Path) -> None:
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "k", backup_able=True)
    with pytest.raises(DiskFull, match="Nothing was written"):
        backup(station, small_tmpfs)
    assert list(small_tmpfs.iterdir()) == []
    assert station(station.ws.backup.backups) == []


def test_a_read_only_medium_is_refused(station: Station, small_tmpfs: Path) -> None:
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "k", backup_able=True)
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    with pytest.raises(StorageError, match="read-only"):
        backup(station, small_tmpfs)
    assert station(station.ws.backup.backups) == []
