"""The round trip on SoftHSM: token A → backup → a fresh workstation with a fresh token B.
Ciphertext made on A before the backup decrypts on B after the restore; records, states and
the audit history come back; a second restore adds nothing; a wrong KCV stops cleanly."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm
from app.domain.keys import KeyState, TrustedWrap
from app.domain.lifecycle import Action
from app.errors import PolicyError
from app.paths import Home
from app.services.backup import KekSecret
from app.services.executor import CoreExecutor
from app.services.keys import identity_of
from tests.hsm.kit import MODULE, PIN, SO_PIN, TOKEN, Clock, Station

pytestmark = pytest.mark.hsm

# An independent client: AES-CBC-PAD with a fixed IV through raw python-pkcs11.
RAW_CIPHER = """
import sys, pkcs11
from pkcs11 import Attribute as A, Mechanism, ObjectClass
op, module, label, cka_id, data = sys.argv[1:6]
token = pkcs11.lib(module).get_token(token_label=label)
with token.open(user_pin=sys.stdin.readline().strip()) as s:
    key = next(s.get_objects({A.CLASS: ObjectClass.SECRET_KEY, A.ID: bytes.fromhex(cka_id)}))
    iv = bytes(16)
    if op == "enc":
        print(key.encrypt(data.encode(), mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv).hex())
    else:
        mech = Mechanism.AES_CBC_PAD
        plain = key.decrypt(bytes.fromhex(data), mechanism=mech, mechanism_param=iv)
        print(plain.decode())
"""


def cipher(home: Home, op: str, cka_id: str, data: str, token: str = TOKEN, pin: str = PIN) -> str:
    """AES-CBC-PAD (zero IV) by the token, through a raw python-pkcs11 client: hex
    ciphertext for ``enc``, the text for ``dec``."""
    result = subprocess.run(
        [sys.executable, "-c", RAW_CIPHER, op, MODULE, token, cka_id, data],
        input=pin + "\n",
        env={"SOFTHSM2_CONF": str(home.softhsm_conf), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def second(tmp_path: Path, core: CoreExecutor) -> Iterator[Station]:
    station = Station(Home(tmp_path / "home-b"), core, Clock())
    yield station
    station.close()


def test_round_trip_onto_a_fresh_token_and_workstation(
    station: Station, second: Station, tmp_path: Path
) -> None:
    gen = station.ws.keys.generate
    a = station(gen, TOKEN, Algorithm.AES_256, "data-key", backup_able=True)
    b = station(gen, TOKEN, Algorithm.AES_128, "mac-key", backup_able=True)
    station(station.ws.lifecycle.transition, a.id, Action.ACTIVATE)
    before = cipher(station.home, "enc", a.cka_id, "attack at dawn")
    created = station(
        station.ws.backup.create,
        tmp_path,
        TOKEN,
        SO_PIN,
        PIN,
        threshold=2,
        custodians=("alice", "bob", "carol"),
        deliver=lambda card: None,
    )
    mnemonics = created.share_set.mnemonics
    station.lock()

    second.initialize()
    report = second(
        second.ws.backup.restore,
        created.directory,
        KekSecret(mnemonics=(mnemonics[1], mnemonics[2])),
        TOKEN,
    )
    assert {k.name for k in report.restored} == {"data-key", "mac-key"}
    assert report.audit_entries > 0
    restored = {k.name: k for k in second(second.ws.keys.repo.all)}
    assert restored["data-key"].id == a.id and restored["data-key"].kcv == a.kcv
    assert restored["mac-key"].kcv == b.kcv
    assert restored["data-key"].state is KeyState.ACTIVE
    assert restored["mac-key"].state is KeyState.PRE_ACTIVE
    assert restored["data-key"].token_serial == second.serial
    assert restored["data-key"].wrap_trusted is TrustedWrap.OK
    session = second(second.ws.tokens.session, TOKEN)
    attrs = second(session.read_key, identity_of(restored["data-key"]))["SECRET_KEY"]
    assert attrs["TOKEN"] and attrs["PRIVATE"] and attrs["SENSITIVE"]
    assert attrs["EXTRACTABLE"] and attrs["WRAP_WITH_TRUSTED"]

    assert cipher(second.home, "dec", a.cka_id, before) == "attack at dawn"
    events = second.events("backup.restore")
    assert [e.outcome for e in events] == ["success"]
    assert second(second.ws.backup.repo.restored_audit)[0][2] == report.audit_entries

    # Again: nothing is added twice.
    again = second(
        second.ws.backup.restore,
        created.directory,
        KekSecret(mnemonics=(mnemonics[0], mnemonics[2])),
        TOKEN,
    )
    assert again.restored == () and {s.reason for s in again.skipped} == {
        "already on this workstation"
    }


def test_destroyed_keys_are_never_brought_back_and_older_generations_are_refused(
    station: Station, tmp_path: Path
) -> None:
    gen = station.ws.keys.generate
    a = station(gen, TOKEN, Algorithm.AES_256, "gone-key", backup_able=True)
    station(gen, TOKEN, Algorithm.AES_256, "kept-key", backup_able=True)
    custodians = ("alice", "bob")
    first = station(
        station.ws.backup.create,
        tmp_path,
        TOKEN,
        SO_PIN,
        PIN,
        threshold=2,
        custodians=custodians,
        deliver=lambda card: None,
    )
    second_backup = station(
        station.ws.backup.create,
        tmp_path,
        TOKEN,
        SO_PIN,
        PIN,
        threshold=2,
        custodians=custodians,
        deliver=lambda card: None,
    )
    station(station.ws.lifecycle.transition, a.id, Action.DESTROY, confirm_name="gone-key")
    assert second_backup.manifest.generation == first.manifest.generation + 1
    with pytest.raises(PolicyError, match="older generation"):
        station(
            station.ws.backup.restore,
            first.directory,
            KekSecret(mnemonics=first.share_set.mnemonics),
            TOKEN,
        )
    report = station(
        station.ws.backup.restore,
        second_backup.directory,
        KekSecret(mnemonics=second_backup.share_set.mnemonics),
        TOKEN,
    )
    assert report.restored == ()
    reasons = {s.name: s.reason for s in report.skipped}
    assert reasons == {
        "gone-key": "recorded here as destroyed",
        "kept-key": "already on this workstation",
    }
    assert station(station.ws.keys.resolve, a.id).state is KeyState.DESTROYED


def test_a_key_whose_name_is_taken_here_is_skipped_and_the_holder_untouched(
    station: Station, second: Station, tmp_path: Path
) -> None:
    """Restore into a workstation that already holds another key of one of the backup's
    names: that key is skipped with its reason, the rest restored, and the holder unchanged
    (what this workstation holds is read once, not looked up per key)."""
    gen = station.ws.keys.generate
    station(gen, TOKEN, Algorithm.AES_256, "data-key", backup_able=True)
    station(gen, TOKEN, Algorithm.AES_256, "twin-name", backup_able=True)
    created = station(
        station.ws.backup.create,
        tmp_path,
        TOKEN,
        SO_PIN,
        PIN,
        threshold=2,
        custodians=("alice", "bob"),
        deliver=lambda card: None,
    )
    station.lock()

    second.initialize()
    holder = second(second.ws.keys.generate, TOKEN, Algorithm.AES_256, "twin-name")
    report = second(
        second.ws.backup.restore,
        created.directory,
        KekSecret(mnemonics=created.share_set.mnemonics),
        TOKEN,
    )
    assert [k.name for k in report.restored] == ["data-key"]
    assert {s.name: s.reason for s in report.skipped} == {
        "twin-name": "another key here has the name 'twin-name': restore it under a new name "
        "with --rename twin-name=NEW"
    }
    assert report.incomplete
    names = {k.name: k for k in second(second.ws.keys.repo.all)}
    assert names["twin-name"] == holder
    assert set(names) == {"data-key", "twin-name"}
