"""Workstation-key rotation: re-key the SQLCipher file and re-seal every keyslot, crash-safe.

The process is killed (SIGKILL) after each step; afterwards ``recover`` + the keyslots give
exactly one key, the same for every operator, and it opens the database with nothing lost:
the old key before the commit point, the new one after it (and then the old one no longer
opens anything).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import AuditTokenNotLoggedIn, DatabaseDamaged, PolicyError
from app.paths import Home
from app.services.workstation import Workstation
from app.storage import rotation
from app.storage.database import Database
from app.storage.keyslots import KeySlotFile
from tests.hsm.kit import FAST_KDF, OPERATOR, PASSPHRASE, Station
from tests.support import WITNESS, WITNESS_PASS, enrol_witness

pytestmark = pytest.mark.hsm

STEPS = ["start", "exported", "slots-written", "committed", "db-renamed", "slots-renamed", "done"]
COMMITTED = STEPS.index("committed")
ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import os, signal, sys
from pathlib import Path
from app.paths import Home
from app.storage import rotation
from app.storage.database import Database
from app.storage.keyslots import KeySlotFile, new_database_key

home = Home(Path(sys.argv[1]))
target = sys.argv[2]
slots = KeySlotFile.load(home.keyslots)
db = Database.open(home.database, slots.open(os.environ["OP"], os.environ["PASS"]))
new_key = new_database_key()


def step(name):
    if name == target:
        os.kill(os.getpid(), signal.SIGKILL)


rotation.rotate_files(home, db, slots.resealed(new_key), new_key, {"test": True}, step)
"""


def counts(db: Database) -> tuple[int, int, int]:
    return (
        int(db.scalar("SELECT count(*) FROM events")),
        int(db.scalar("SELECT count(*) FROM operators")),
        int(db.scalar("PRAGMA user_version")),
    )


@pytest.fixture
def prepared(bare_station: Station, tmp_path: Path) -> tuple[Path, bytes, tuple[int, int, int]]:
    """A workstation with two keyslots (officer, witness), locked; its key and counts."""
    bare_station.initialize(soft_token=False)
    bare_station.lock()
    home = bare_station.home
    slots = KeySlotFile.load(home.keyslots)
    key = slots.open(OPERATOR, PASSPHRASE)
    slots.add(WITNESS, WITNESS_PASS, key, FAST_KDF)
    slots.save()
    db = Database.open(home.database, key)
    try:
        before = counts(db)
    finally:
        db.close()
    return home.root, key, before


@pytest.mark.parametrize("step", STEPS)
def test_rotation_killed_at_each_step_leaves_exactly_one_key(
    prepared: tuple[Path, bytes, tuple[int, int, int]], tmp_path: Path, step: str
) -> None:
    source, old_key, before = prepared
    home = Home(tmp_path / f"copy-{step}")
    shutil.copytree(source, home.root)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(home.root), step],
        env={**os.environ, "PYTHONPATH": str(ROOT), "OP": OPERATOR, "PASS": PASSPHRASE},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    outcome = rotation.recover(home)
    assert rotation.recover(home) is None  # recovering twice changes nothing more
    keys = {
        KeySlotFile.load(home.keyslots).open(OPERATOR, PASSPHRASE),
        KeySlotFile.load(home.keyslots).open(WITNESS, WITNESS_PASS),
    }
    assert len(keys) == 1  # never a mix: every operator opens the same key
    [key] = keys
    db = Database.open(home.database, key)
    try:
        assert counts(db) == before  # nothing lost, nothing half-copied
    finally:
        db.close()
    if STEPS.index(step) < COMMITTED:
        assert key == old_key and outcome in ("rolled back", None)
    else:
        assert key != old_key
        assert outcome == ("completed" if step != "done" else None)
        with pytest.raises(DatabaseDamaged):
            Database.open(home.database, old_key)  # the old key opens nothing any more
    leftovers = sorted(p.name for p in home.root.iterdir())
    # no rotation file left; keystead.lock is the process lock's file, which stays by design
    assert leftovers == ["keyslots.json", "keystead.db", "keystead.lock", "softhsm"]


def test_rotate_key_through_the_service(station: Station) -> None:
    ws = station.ws
    station(enrol_witness, ws)
    old_key = ws._database_key
    before = station(lambda: counts(ws.db))
    assert station(ws.rotate_key) == 2  # officer and the witness who approved it
    [entry] = [e for e in station.events("workstation.rotate-key") if e.outcome == "success"]
    assert entry.operators == (OPERATOR, WITNESS)
    assert json.loads(entry.details_json)["approval"]["approvers"] == [WITNESS]
    assert station(lambda: counts(ws.db))[1:] == before[1:]  # the open workstation goes on
    assert station(ws.audit.verify).ok
    station.lock()
    with pytest.raises(DatabaseDamaged):
        station(Database.open, station.home.database, old_key)
    station.unlock(WITNESS, WITNESS_PASS)
    station.unlock()
    assert station(station.ws.audit.verify).ok


def test_rotation_needs_an_approver_and_the_role(station: Station) -> None:
    station.ws.approvals.source = None
    with pytest.raises(PolicyError, match="KS-DUAL-NO-APPROVER"):
        station(station.ws.rotate_key)
    assert not rotation.intent_file(station.home).exists()


def test_old_keyslots_get_their_key_pair_at_unlock(tmp_path: Path, on_core) -> None:  # type: ignore[no-untyped-def]
    home = Home(tmp_path / "home")
    shutil.copytree(ROOT / "tests" / "data" / "v1-home", home.root)
    assert KeySlotFile.load(home.keyslots).without_key_pair() == ["legacy officer"]
    ws = on_core(Workstation.unlock, home, "legacy officer", "migration test passphrase")
    on_core(ws.lock)
    assert KeySlotFile.load(home.keyslots).without_key_pair() == []
    ws = on_core(Workstation.unlock, home, "legacy officer", "migration test passphrase")
    on_core(ws.lock)


SERVICE_CHILD = """
import os, signal, sys
from pathlib import Path
from app.paths import Home
from app.services.workstation import Workstation
from tests.hsm.kit import OPERATOR, PASSPHRASE, PIN, TOKEN
from tests.support import with_witness

target = sys.argv[2]
ws = with_witness(Workstation.unlock(Home(Path(sys.argv[1])), OPERATOR, PASSPHRASE))
ws.tokens.login(TOKEN, PIN)


def step(name):
    if name == target:
        os.kill(os.getpid(), signal.SIGKILL)


ws.rotate_key(step)
"""


@pytest.mark.parametrize("step", ["exported", "committed", "db-renamed", "slots-renamed", "done"])
def test_rotation_killed_in_the_service_never_locks_the_workstation_out(
    station: Station, step: str
) -> None:
    """The attack report's F14: a kill after the commit point (or a token error storing the
    "after" checkpoint, which leaves the same state as a kill at "done") left the token's
    newest checkpoint naming the old database key, and every later unlock was refused. The
    "before" checkpoint now names the key the database is moving to as well."""
    station(enrol_witness, station.ws)
    before = station(lambda: counts(station.ws.db))
    old_slots = station.home.keyslots.read_bytes()
    station.lock()
    child = subprocess.run(
        [sys.executable, "-c", SERVICE_CHILD, str(station.home.root), step],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    ws = station.unlock()  # the rollback check accepts whichever key the files are under
    after = station(lambda: counts(ws.db))
    assert after[1:] == before[1:]
    assert after[0] > before[0]  # the before-checkpoint (and the recovery) are on record
    rotated = station.home.keyslots.read_bytes() != old_slots
    assert rotated == (STEPS.index(step) >= COMMITTED)
    [start] = [
        e
        for e in station.events("audit.checkpoint")
        if json.loads(e.details_json)["reason"] == "before key rotation"
    ]
    assert json.loads(start.details_json)["next_database"]
    assert station(ws.audit.verify).ok
    station.unlock(WITNESS, WITNESS_PASS)  # every operator still gets in
    station.unlock()


def test_rotation_without_the_audit_token_changes_nothing(station: Station) -> None:
    """F14a: with the audit token logged out the rotation re-keyed both files, said "nothing
    was changed", and the next unlock was refused for good. It is refused before any file."""
    station(enrol_witness, station.ws)
    slots_before = station.home.keyslots.read_bytes()
    db_before = station.home.database.read_bytes()
    station(station.ws.tokens.logout, station.serial)
    with pytest.raises(AuditTokenNotLoggedIn, match="nothing was changed"):
        station(station.ws.rotate_key)
    assert station.home.keyslots.read_bytes() == slots_before
    assert not rotation.intent_file(station.home).exists()
    assert not rotation.next_database(station.home).exists()
    station.lock()
    assert station.home.database.read_bytes() != b""  # still there, and:
    ws = station.unlock()
    assert station(ws.audit.verify).ok
    del db_before
