"""Wrong-passphrase back-off per operator name, with an injected clock, and the side record
surviving a killed process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.domain.backoff import LOCKOUT, delay_after
from app.errors import PassphraseBackoff, StorageError, UnknownOperator, WrongPassphrase
from app.paths import Home
from app.services.passphrases import PassphraseChecker
from app.storage.keyslots import KdfCost, KeySlotFile
from app.storage.unlock_failures import UnlockFailures
from tests.support import FAST_KDF, Clock

RIGHT = "SENTINEL-backoff-right-pass"
WRONG = "SENTINEL-backoff-wrong-pass"
KEY = bytes(range(32))


def make_home(tmp_path: Path, cost: KdfCost = FAST_KDF) -> Home:
    home = Home(tmp_path / "home")
    home.ensure()
    slots = KeySlotFile.create(home.keyslots)
    slots.add("alice", RIGHT, KEY, cost)
    slots.add("bob", RIGHT, KEY, cost)
    slots.save()
    return home


def test_the_schedule() -> None:
    assert [delay_after(n).total_seconds() for n in range(6)] == [0, 0, 2, 4, 8, 900]
    assert delay_after(9) == LOCKOUT


def test_delays_grow_then_lock_out_per_name(tmp_path: Path) -> None:
    clock = Clock()
    checker = PassphraseChecker(make_home(tmp_path), clock)
    with pytest.raises(WrongPassphrase, match="1 in a row"):
        checker.open_slot("alice", WRONG)
    with pytest.raises(WrongPassphrase, match="2 in a row; the next try waits 2 s"):
        checker.open_slot("alice", WRONG)  # no wait after a single typo
    with pytest.raises(PassphraseBackoff, match="wait 2 s") as early:
        checker.open_slot("alice", RIGHT)  # refused unchecked, even with the right one
    assert early.value.retry_after == 2 and not early.value.locked_out
    assert checker.open_slot("bob", RIGHT) == KEY  # another name is not held up
    for waits in (2, 4, 8):
        clock.advance(seconds=waits)
        with pytest.raises(WrongPassphrase):
            checker.open_slot("alice", WRONG)
    with pytest.raises(PassphraseBackoff, match="locked out after 5") as locked:
        checker.open_slot("alice", RIGHT)
    assert locked.value.locked_out and locked.value.retry_after == 900
    clock.advance(minutes=14, seconds=59)
    with pytest.raises(PassphraseBackoff):
        checker.open_slot("alice", RIGHT)
    clock.advance(seconds=1)
    assert checker.open_slot("alice", RIGHT) == KEY
    assert checker.failures.state("alice").consecutive == 0
    assert [f.reason for f in checker.failures.unsealed()] == ["wrong passphrase"] * 5


def test_a_clock_set_back_never_stretches_the_wait(tmp_path: Path) -> None:
    clock = Clock()
    checker = PassphraseChecker(make_home(tmp_path), clock)
    for _ in range(2):
        with pytest.raises(WrongPassphrase):
            checker.open_slot("alice", WRONG)
    clock.advance(days=-30)
    with pytest.raises(PassphraseBackoff) as caught:
        checker.open_slot("alice", RIGHT)
    assert caught.value.retry_after == 2


def test_counts_survive_a_new_process_and_unknown_names_are_refused(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    with pytest.raises(WrongPassphrase):
        PassphraseChecker(home, Clock()).open_slot("alice", WRONG)
    assert UnlockFailures(home.unlock_failures).state("alice").consecutive == 1
    with pytest.raises(UnknownOperator):
        PassphraseChecker(home, Clock()).open_slot("mallory", WRONG)
    raw = home.unlock_failures.read_text()
    assert WRONG not in raw and RIGHT not in raw  # names and times only


def test_a_damaged_record_fails_closed(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    home.unlock_failures.write_text("{not json")
    with pytest.raises(StorageError, match="damaged"):
        PassphraseChecker(home, Clock()).open_slot("alice", RIGHT)


# The child's check never ends (Argon2id stands still), so the kill always lands during it,
# however loaded the machine is: no race between the kill and a fast check.
CHILD = """
import sys, time
from datetime import UTC, datetime
from app.paths import Home
from app.services.passphrases import PassphraseChecker
from app.storage.keyslots import KeySlotFile
KeySlotFile.open = lambda self, operator, passphrase: time.sleep(3600)
PassphraseChecker(Home(__import__("pathlib").Path(sys.argv[1])), lambda: datetime.now(UTC)
    ).open_slot("alice", sys.argv[2])
"""


@pytest.mark.parametrize("passphrase", [WRONG, RIGHT])
def test_a_killed_check_still_counts(tmp_path: Path, passphrase: str) -> None:
    """SIGKILL while Argon2id runs: the try was written first, so it stays counted (and is
    sealed later as 'interrupted'), whether the passphrase was right or wrong."""
    home = make_home(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home.root), passphrase],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        while not home.unlock_failures.exists():
            assert child.poll() is None, "the check ended before it was killed"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    record = UnlockFailures(home.unlock_failures)
    assert record.state("alice").consecutive == 1
    assert [(f.operator, f.reason) for f in record.unsealed()] == [("alice", "interrupted")]
    assert json.loads(home.unlock_failures.read_text())["format"] == "keystead-unlock-failures"


def test_an_edited_argon2_cost_is_not_counted_as_a_wrong_passphrase(tmp_path: Path) -> None:
    """The attack report's F18: a keyslot whose cost was edited to 60 passes hung the unlock
    for 20 s and then counted against alice. It is refused at once and counts nothing."""
    home = make_home(tmp_path)
    doc = json.loads(home.keyslots.read_text())
    doc["slots"][0]["iterations"] = 60
    home.keyslots.write_text(json.dumps(doc))
    for passphrase in (RIGHT, WRONG):
        with pytest.raises(StorageError, match="damaged: its Argon2id iterations"):
            PassphraseChecker(home, Clock()).open_slot("alice", passphrase)
    assert UnlockFailures(home.unlock_failures).state("alice").consecutive == 0
    assert PassphraseChecker(home, Clock()).open_slot("bob", RIGHT) == KEY
