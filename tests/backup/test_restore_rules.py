"""What a restore brings back, and what it leaves out and says so (attack F1, F4, F13).

- F1: a key whose record is here but whose token object is gone is restored onto the token and
  its record rebound (recorded); before, "already on this workstation" and nothing restored.
- F4: key material this workstation knows under another id (imported by transfer; recorded
  as compromised and destroyed) is never brought back by a restore, nor adopted; one check
  (``KnownKeys``) with import-wrapped.
- F13: a key whose name is taken here is left out with ``needs_action`` (the CLI exits 1), and
  ``renames`` restores it under a new name, recorded.
Real SoftHSM tokens, real SQLCipher files, pkcs11-tool as the independent peer.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyState
from app.domain.known_keys import RULE_KNOWN_KEY
from app.domain.lifecycle import Action
from app.domain.public_formats import PublicFormat
from app.errors import PolicyError, ValidationError
from app.paths import Home
from app.services.backup import KekSecret
from app.services.executor import CoreExecutor
from tests.backup.test_round_trip import cipher
from tests.hsm.kit import MODULE, PIN, SO_PIN, TOKEN, Clock, Station, peer_keys, pkcs11_tool

pytestmark = pytest.mark.hsm


@pytest.fixture
def second(tmp_path: Path, core: CoreExecutor) -> Iterator[Station]:
    station = Station(Home(tmp_path / "home-b"), core, Clock())
    yield station
    station.close()


def _backup(station: Station, target: Path) -> tuple[Path, KekSecret]:
    target.mkdir()
    created = station(
        station.ws.backup.create,
        target,
        TOKEN,
        SO_PIN,
        PIN,
        threshold=2,
        custodians=("alice", "bob"),
        deliver=lambda card: None,
    )
    return created.directory, KekSecret(mnemonics=tuple(created.share_set.mnemonics))


def _delete_object(home: Home, cka_id: str, kind: str = "secrkey") -> None:
    """The token loses the key: deleted by an outside tool (pkcs11-tool)."""
    pkcs11_tool(home, "--token-label", TOKEN, "--delete-object", "--type", kind, "--id", cka_id)


def test_a_key_missing_on_its_token_is_restored_and_its_record_rebound(
    station: Station, tmp_path: Path
) -> None:
    gen = station.ws.keys.generate
    lost = station(gen, TOKEN, Algorithm.AES_256, "lost", backup_able=True)
    kept = station(gen, TOKEN, Algorithm.AES_128, "kept", backup_able=True)
    pair = station(gen, TOKEN, Algorithm.EC_P256, "pair", Purpose.SIGNING, True)
    station(station.ws.lifecycle.transition, lost.id, Action.ACTIVATE)
    before = cipher(station.home, "enc", lost.cka_id, "still readable")
    directory, secret = _backup(station, tmp_path / "stick")
    station.lock()
    _delete_object(station.home, lost.cka_id)
    _delete_object(station.home, pair.cka_id, "privkey")
    _delete_object(station.home, pair.cka_id, "pubkey")
    ids = {k.cka_id for k in peer_keys(station.home)}
    assert kept.cka_id in ids and not {lost.cka_id, pair.cka_id} & ids
    station.unlock()

    report = station(station.ws.backup.restore, directory, secret, TOKEN)
    assert sorted(k.name for k in report.rebound) == ["lost", "pair"]
    assert sorted(k.name for k in report.restored) == ["lost", "pair"]
    assert [(s.name, s.reason, s.needs_action) for s in report.skipped] == [
        ("kept", "already on this workstation", False)
    ]
    assert not report.incomplete
    # The same records (ids, states, history), their objects back, the key works as before.
    records = {k.name: k for k in station(station.ws.keys.repo.all)}
    assert records["lost"].id == lost.id and records["lost"].state is KeyState.ACTIVE
    assert len(records) == 3
    assert {lost.cka_id, kept.cka_id, pair.cka_id} <= {k.cka_id for k in peer_keys(station.home)}
    station.lock()
    assert cipher(station.home, "dec", lost.cka_id, before) == "still readable"
    station.unlock()
    entry = station.events("backup.restore")[-1]
    assert entry.outcome == "success"
    assert sorted(r["key"] for r in entry.details["rebound"]) == sorted([lost.id, pair.id])
    again = station(station.ws.backup.restore, directory, secret, TOKEN)
    assert again.restored == () and not again.incomplete


def test_a_record_on_a_token_that_is_not_logged_in_is_reported_not_guessed(
    station: Station, tmp_path: Path
) -> None:
    """The record's token cannot be checked: nothing is restored for it, and the report says
    someone must act (the CLI exits 1)."""
    station(station.ws.tokens.create_soft_token, "other", SO_PIN, PIN)
    station(station.ws.tokens.login, "other", PIN)
    key = station(station.ws.keys.generate, "other", Algorithm.AES_256, "k", backup_able=True)
    target = tmp_path / "stick"
    target.mkdir()
    made = station(
        station.ws.backup.create,
        target,
        "other",
        SO_PIN,
        PIN,
        threshold=2,
        custodians=("alice", "bob"),
        deliver=lambda card: None,
    )
    directory = made.directory
    secret = KekSecret(mnemonics=tuple(made.share_set.mnemonics))
    tokens = station.ws.tokens
    station(lambda: tokens.logout(tokens.session("other").info.serial))
    report = station(station.ws.backup.restore, directory, secret, TOKEN)
    assert report.restored == () and report.incomplete
    (skip,) = report.skipped
    assert skip.key_id == key.id and "not logged in" in skip.reason and skip.needs_action


def test_known_material_under_another_id_is_never_restored(
    station: Station, second: Station, tmp_path: Path
) -> None:
    """B imports two of A's keys by transfer, retires one; A's backup restored on B brings back
    neither: the retired one never, the live one not as a second record."""
    station.lock()
    second.initialize()
    kek = second(
        second.ws.keys.generate, TOKEN, Algorithm.RSA_2048, "incoming", Purpose.KEY_WRAPPING
    )
    second(second.ws.lifecycle.transition, kek.id, Action.ACTIVATE)
    pem = tmp_path / "recipient.pem"
    second(second.ws.use.export_public, kek.id, PublicFormat.PEM, pem)
    second.lock()

    station.unlock()
    gen = station.ws.keys.generate
    retired = station(gen, TOKEN, Algorithm.AES_256, "k3", backup_able=True)
    live = station(gen, TOKEN, Algorithm.AES_128, "k4", backup_able=True)
    fresh = station(gen, TOKEN, Algorithm.AES_256, "k5", backup_able=True)
    for key in (retired, live):
        station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)
        station(
            station.ws.distribution.wrap_for,
            key.id,
            tmp_path / f"{key.name}.transfer",
            recipient=pem,
            so_pin=SO_PIN,
            user_pin=PIN,
        )
    directory, secret = _backup(station, tmp_path / "stick")
    station.lock()

    second.unlock()
    imports = second.ws.distribution.import_wrapped
    enc = Purpose.ENCRYPTION
    gone = second(imports, TOKEN, tmp_path / "k3.transfer", "k3kw", expect_purpose=enc).key
    second(imports, TOKEN, tmp_path / "k4.transfer", "k4imp", expect_purpose=enc)
    second(second.ws.lifecycle.transition, gone.id, Action.COMPROMISE, reason="leaked")
    second(second.ws.lifecycle.transition, gone.id, Action.DESTROY, confirm_name="k3kw")
    objects = len(peer_keys(second.home))
    report = second(second.ws.backup.restore, directory, secret, TOKEN)
    assert [k.name for k in report.restored] == ["k5"]
    reasons = {s.name: s for s in report.skipped}
    assert "the same key as 'k3kw' (KCV " in reasons["k3"].reason
    assert "destroyed (compromised)" in reasons["k3"].reason.lower()
    assert "never brought back" in reasons["k3"].reason
    assert "the same key as 'k4imp'" in reasons["k4"].reason
    assert "which this workstation holds" in reasons["k4"].reason
    assert not report.incomplete  # already here / retired: nothing for anyone to do
    assert len(peer_keys(second.home)) == objects + 1
    kcvs = [k.kcv for k in second(second.ws.keys.repo.all)]
    assert kcvs.count(live.kcv) == 1 and kcvs.count(fresh.kcv) == 1
    assert kcvs.count(retired.kcv) == 1  # only the destroyed record


RAW_CREATE = """
import sys, pkcs11
from pkcs11 import Attribute as A, KeyType, ObjectClass
module, label, cka_id, value = sys.argv[1:5]
token = pkcs11.lib(module).get_token(token_label=label)
with token.open(rw=True, user_pin=sys.stdin.readline().strip()) as s:
    s.create_object({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: KeyType.AES, A.TOKEN: True,
                     A.PRIVATE: True, A.SENSITIVE: True, A.EXTRACTABLE: False,
                     A.ENCRYPT: True, A.DECRYPT: True, A.VALUE: bytes.fromhex(value),
                     A.ID: bytes.fromhex(cka_id), A.LABEL: "revived-" + cka_id[:2]})
"""


def _foreign_aes(home: Home, cka_id: str, value: bytes) -> None:
    """An AES key object made by another PKCS#11 client (python-pkcs11 in a subprocess)."""
    result = subprocess.run(
        [sys.executable, "-c", RAW_CREATE, MODULE, TOKEN, cka_id, value.hex()],
        input=PIN + "\n",
        env={"SOFTHSM2_CONF": str(home.softhsm_conf), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_adopt_refuses_known_key_material(station: Station) -> None:
    """The same key value as a managed compromised key (or a live one), under another CKA_ID:
    adoption is refused with KS-DIST-KNOWN-KEY and a denied entry; nothing is recorded."""
    value = bytes(range(32))
    station.lock()
    _foreign_aes(station.home, "a1" * 8, value)
    station.unlock()
    first = station(
        station.ws.keys.adopt,
        TOKEN,
        "a1" * 8,
        "first",
        purpose=Purpose.ENCRYPTION,
        accept_exposure=True,
    )
    station.lock()
    _foreign_aes(station.home, "b2" * 8, value)
    station.unlock()
    with pytest.raises(PolicyError) as live:
        station(
            station.ws.keys.adopt,
            TOKEN,
            "b2" * 8,
            "second",
            purpose=Purpose.ENCRYPTION,
            accept_exposure=True,
        )
    assert live.value.rule == RULE_KNOWN_KEY and "'first'" in live.value.message
    assert "keys rebind" in live.value.message
    station(station.ws.lifecycle.transition, first.id, Action.COMPROMISE, reason="leaked")
    with pytest.raises(PolicyError) as retired:
        station(
            station.ws.keys.adopt,
            TOKEN,
            "b2" * 8,
            "second",
            purpose=Purpose.ENCRYPTION,
            accept_exposure=True,
        )
    assert retired.value.rule == RULE_KNOWN_KEY
    assert "compromised" in retired.value.message and "never brought back" in retired.value.message
    assert [k.name for k in station(station.ws.keys.repo.all)] == ["first"]
    denied = [e for e in station.events("key.adopt") if e.outcome == "denied"]
    assert len(denied) == 2
    dry = station(station.ws.keys.adoption_candidate, TOKEN, "b2" * 8)
    assert dry.refusal and "the same key as 'first'" in dry.refusal


def test_a_taken_name_needs_action_and_rename_restores_it(
    station: Station, second: Station, tmp_path: Path
) -> None:
    gen = station.ws.keys.generate
    wanted = station(gen, TOKEN, Algorithm.AES_256, "k1", backup_able=True)
    station(gen, TOKEN, Algorithm.AES_256, "k2", backup_able=True)
    directory, secret = _backup(station, tmp_path / "stick")
    station.lock()

    second.initialize()
    squatter = second(second.ws.keys.generate, TOKEN, Algorithm.AES_128, "k1")
    second(second.ws.lifecycle.transition, squatter.id, Action.DESTROY, confirm_name="k1")
    report = second(second.ws.backup.restore, directory, secret, TOKEN)
    assert [k.name for k in report.restored] == ["k2"]
    (skip,) = report.skipped
    assert skip.name == "k1" and skip.needs_action and "--rename k1=NEW" in skip.reason
    assert report.incomplete

    with pytest.raises(ValidationError, match="no key named 'k9'"):
        second(second.ws.backup.restore, directory, secret, TOKEN, renames={"k9": "x"})
    with pytest.raises(ValidationError):
        second(second.ws.backup.restore, directory, secret, TOKEN, renames={"k1": "a\u202eb"})
    renamed = second(
        second.ws.backup.restore, directory, secret, TOKEN, renames={"k1": "k1-restored"}
    )
    assert [k.name for k in renamed.restored] == ["k1-restored"]
    assert renamed.renamed == (("k1", "k1-restored"),) and not renamed.incomplete
    back = second(second.ws.keys.resolve, wanted.id)
    assert back.name == "k1-restored" and back.kcv == wanted.kcv
    assert {p.label for p in peer_keys(second.home) if p.cka_id == wanted.cka_id} == {"k1-restored"}
    entry = second.events("backup.restore")[-1]
    assert entry.details["renamed"] == [{"key": wanted.id, "from": "k1", "to": "k1-restored"}]
