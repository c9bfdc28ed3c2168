"""Backups of keys that were themselves restored or imported (attack report F0).

SoftHSM leaves CKA_VALUE_LEN at 0 on every unwrapped AES key, and a manifest ``value_len`` of 0
marks a private key: a backup that copied the token's length was "written and verified" but
refused by the drill, the restore and docs/recover_backup.py, for every key in it. The length
now comes from the key's algorithm; the create-time read-back refuses an entry whose kind
disagrees with its algorithm; a backup written before the fix (value_len 0 for an AES key) is
still read by its algorithm, by Keystead and by the standalone script.

Chain: workstation A → backup → restore on B → B backs up its restored keys → drill, restore
on C, recovery script: all succeed, and the keys decrypt what A encrypted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.backup import format as fmt
from app.domain.algorithms import Algorithm, Purpose
from app.domain.lifecycle import Action
from app.domain.public_formats import PublicFormat
from app.errors import BackupIntegrityError
from app.paths import Home
from app.services import backup as backup_service
from app.services.backup import KekSecret
from app.services.executor import CoreExecutor
from tests.backup.test_round_trip import cipher
from tests.hsm.kit import PIN, SO_PIN, TOKEN, Clock, Station

pytestmark = pytest.mark.hsm

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "recover_backup.py"


@pytest.fixture
def second(tmp_path: Path, core: CoreExecutor) -> Iterator[Station]:
    station = Station(Home(tmp_path / "home-b"), core, Clock())
    yield station
    station.close()


@pytest.fixture
def third(tmp_path: Path, core: CoreExecutor) -> Iterator[Station]:
    station = Station(Home(tmp_path / "home-c"), core, Clock())
    yield station
    station.close()


def _backup(station: Station, target: Path) -> tuple[Path, tuple[str, ...]]:
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
    return created.directory, tuple(created.share_set.mnemonics)


def _recover(
    directory: Path, mnemonics: tuple[str, ...], out: Path
) -> subprocess.CompletedProcess[str]:
    shares = out.parent / f"{out.name}.shares.json"
    shares.write_text(json.dumps(list(mnemonics)))
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(directory),
            "--out",
            str(out),
            "--shares-file",
            str(shares),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _resigned_copy(
    station: Station, directory: Path, target: Path, edit: Callable[[dict[str, Any]], None]
) -> Path:
    """A copy of ``directory`` whose manifest entries ``edit`` changed, re-signed by the same
    workstation's token key (as Keystead itself would have signed it)."""
    copy = target / directory.name
    shutil.copytree(directory, copy)
    doc = json.loads((copy / fmt.MANIFEST).read_bytes())
    for entry in doc["keys"]:
        edit(entry)
    manifest = fmt.Manifest.parse(json.dumps(doc).encode()).encode()
    ws = station.ws
    signature = station(lambda: ws.tokens.session(ws.audit.token_serial).sign_checkpoint(manifest))
    (copy / fmt.MANIFEST).write_bytes(manifest)
    (copy / fmt.SIGNATURE).write_bytes(signature)
    return copy


def _pre_fix(entry: dict[str, Any]) -> None:
    """As Keystead wrote a restored or imported AES key before the fix: value_len 0."""
    if entry["algorithm"].startswith("AES"):
        entry["value_len"] = 0


def _legacy_copy(station: Station, directory: Path, target: Path) -> Path:
    return _resigned_copy(station, directory, target, _pre_fix)


def test_a_backup_of_restored_keys_drills_restores_and_recovers(
    station: Station, second: Station, third: Station, tmp_path: Path
) -> None:
    gen = station.ws.keys.generate
    big = station(gen, TOKEN, Algorithm.AES_256, "k256", backup_able=True)
    small = station(gen, TOKEN, Algorithm.AES_128, "k128", backup_able=True)
    mid = station(gen, TOKEN, Algorithm.AES_192, "k192", backup_able=True)
    pair = station(gen, TOKEN, Algorithm.EC_P256, "ec", Purpose.SIGNING, True)
    before = cipher(station.home, "enc", big.cka_id, "attack at dawn")
    first, shares_a = _backup(station, tmp_path / "stick-a")
    station.lock()

    second.initialize()
    second(second.ws.backup.restore, first, KekSecret(mnemonics=shares_a), TOKEN)
    # B backs up the keys it restored (their token objects say CKA_VALUE_LEN 0).
    made, shares_b = _backup(second, tmp_path / "stick-b")
    lengths = {
        e.name: e.value_len for e in fmt.Manifest.parse((made / fmt.MANIFEST).read_bytes()).keys
    }
    assert lengths == {"k256": 32, "k128": 16, "k192": 24, "ec": fmt.PRIVATE_VALUE_LEN}
    report = second(second.ws.backup.verify, made, KekSecret(mnemonics=shares_b), TOKEN)
    assert report.drilled == 4
    legacy = _legacy_copy(second, made, tmp_path / "stick-old")
    # A pre-fix backup passes the structural check and the drill: read by its algorithm.
    old = second(second.ws.backup.verify, legacy, KekSecret(mnemonics=shares_b), TOKEN)
    assert old.drilled == 4
    second.lock()

    third.initialize()
    back = third(third.ws.backup.restore, made, KekSecret(mnemonics=shares_b), TOKEN)
    assert sorted(k.name for k in back.restored) == ["ec", "k128", "k192", "k256"]
    kcvs = {k.name: k.kcv for k in third(third.ws.keys.repo.all)}
    assert kcvs["k256"] == big.kcv and kcvs["k128"] == small.kcv and kcvs["k192"] == mid.kcv
    assert third(third.ws.keys.resolve, pair.id).fingerprint == pair.fingerprint
    assert cipher(third.home, "dec", big.cka_id, before) == "attack at dawn"
    third.lock()

    for directory, name in ((made, "rec"), (legacy, "rec-old")):
        result = _recover(directory, shares_b, tmp_path / name)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / name / f"{big.id}.key").stat().st_size == 32
        assert (tmp_path / name / f"{small.id}.key").stat().st_size == 16
        assert (tmp_path / name / f"{mid.id}.key").stat().st_size == 24


def test_a_pre_fix_backup_restores_onto_a_fresh_workstation(
    station: Station, second: Station, third: Station, tmp_path: Path
) -> None:
    key = station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "k", backup_able=True)
    before = cipher(station.home, "enc", key.cka_id, "kept")
    first, shares_a = _backup(station, tmp_path / "stick-a")
    station.lock()
    second.initialize()
    second(second.ws.backup.restore, first, KekSecret(mnemonics=shares_a), TOKEN)
    made, shares_b = _backup(second, tmp_path / "stick-b")
    legacy = _legacy_copy(second, made, tmp_path / "stick-old")
    second.lock()
    third.initialize()
    back = third(third.ws.backup.restore, legacy, KekSecret(mnemonics=shares_b), TOKEN)
    assert [k.name for k in back.restored] == ["k"]
    assert cipher(third.home, "dec", key.cka_id, before) == "kept"


def test_the_recovery_script_recovers_the_other_keys_and_names_the_bad_one(
    station: Station, tmp_path: Path
) -> None:
    gen = station.ws.keys.generate
    good = station(gen, TOKEN, Algorithm.AES_256, "good", backup_able=True)
    bad = station(gen, TOKEN, Algorithm.AES_128, "bad", backup_able=True)
    pair = station(gen, TOKEN, Algorithm.EC_P256, "pair", Purpose.SIGNING, True)
    made, shares = _backup(station, tmp_path / "stick")

    def wrong_kcv(entry: dict[str, Any]) -> None:
        if entry["name"] == "bad":
            entry["kcv"] = "000000"

    damaged = _resigned_copy(station, made, tmp_path / "stick-bad", wrong_kcv)
    result = _recover(damaged, shares, tmp_path / "rec")
    assert result.returncode == 1
    assert f"NOT RECOVERED: {bad.id}  bad  AES-128: the key does not match its KCV" in result.stderr
    assert "1 of 3 keys not recovered (bad)" in result.stderr
    assert (tmp_path / "rec" / f"{good.id}.key").stat().st_size == 32
    assert (tmp_path / "rec" / f"{pair.id}.key").exists()
    assert not (tmp_path / "rec" / f"{bad.id}.key").exists()


def test_an_imported_key_is_backed_up_with_its_length(
    station: Station, second: Station, tmp_path: Path
) -> None:
    """keys import-wrapped: the imported AES key (CKA_VALUE_LEN 0 on SoftHSM) goes into a
    backup with value_len 32 that drills and that the standalone script recovers."""
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
    key = station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "sent", backup_able=True)
    station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    out = tmp_path / "sent.transfer"
    station(
        station.ws.distribution.wrap_for, key.id, out, recipient=pem, so_pin=SO_PIN, user_pin=PIN
    )
    station.lock()

    second.unlock()
    imported = second(
        second.ws.distribution.import_wrapped,
        TOKEN,
        out,
        "got",
        expect_kcv=key.kcv,
        expect_purpose=Purpose.ENCRYPTION,
        backup_able=True,
    )
    made, shares = _backup(second, tmp_path / "stick")
    entry = next(
        e
        for e in fmt.Manifest.parse((made / fmt.MANIFEST).read_bytes()).keys
        if e.id == imported.key.id
    )
    assert entry.value_len == 32 and entry.kcv == key.kcv
    assert second(second.ws.backup.verify, made, KekSecret(mnemonics=shares), TOKEN).drilled == 1
    second.lock()
    result = _recover(made, shares, tmp_path / "rec")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "rec" / f"{imported.key.id}.key").stat().st_size == 32


def test_create_never_calls_verified_a_backup_whose_entry_restore_would_refuse(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: an entry whose kind disagrees with its algorithm (here forced: an AES key
    written as a private key) is caught by the read-back; nothing is recorded."""
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "k", backup_able=True)
    monkeypatch.setattr(backup_service, "_value_len", lambda key, wrap: fmt.PRIVATE_VALUE_LEN)
    target = tmp_path / "stick"
    target.mkdir()
    with pytest.raises(BackupIntegrityError, match="marks it as a private key"):
        station(
            station.ws.backup.create,
            target,
            TOKEN,
            SO_PIN,
            PIN,
            threshold=2,
            custodians=("alice", "bob"),
            deliver=lambda card: None,
        )
    assert list(target.iterdir()) == []
    assert station(station.ws.backup.backups) == []
    assert [e.outcome for e in station.events("backup.create")] == ["failed"]
