"""A backup made on a real SoftHSM token: written, read back, verified, recorded; verified
again without restoring (structure and signature; with shares the sealed files; a drill)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.backup import format as fmt
from app.domain.algorithms import Algorithm
from app.errors import BackupIntegrityError, OperationCancelled, ValidationError
from app.services.backup import KekSecret
from tests.hsm.kit import PIN, SECRETS, SO_PIN, TOKEN, Station

pytestmark = pytest.mark.hsm

CUSTODIANS = ("alice", "bob", "carol")


def make_keys(station: Station) -> dict[str, object]:
    gen = station.ws.keys.generate
    return {
        "aes256": station(gen, TOKEN, Algorithm.AES_256, "aes256", backup_able=True),
        "aes128": station(gen, TOKEN, Algorithm.AES_128, "aes128", backup_able=True),
        "kept": station(gen, TOKEN, Algorithm.AES_256, "kept"),
        "ec": station(gen, TOKEN, Algorithm.EC_P256, "ec", backup_able=True),
    }


def create(station: Station, target: Path, **kwargs: object) -> object:
    options: dict[str, object] = {
        "threshold": 2,
        "custodians": CUSTODIANS,
        "deliver": lambda card: None,
        **kwargs,
    }
    return station(station.ws.backup.create, target, TOKEN, SO_PIN, PIN, **options)


def test_backup_is_written_verified_and_recorded(station: Station, tmp_path: Path) -> None:
    keys = make_keys(station)
    target = tmp_path / "stick"
    target.mkdir()
    created = create(station, target)
    directory = created.directory  # type: ignore[attr-defined]
    assert directory.parent == target
    assert sorted(p.name for p in directory.iterdir()) == sorted(fmt.ALL_FILES)
    assert all(fmt.SAFE_NAME.match(p.name) for p in [directory, *directory.iterdir()])
    manifest = created.manifest  # type: ignore[attr-defined]
    assert sorted(e.name for e in manifest.keys) == ["aes128", "aes256", "ec"]
    by_name = {e.name: e for e in manifest.keys}
    assert by_name["aes256"].value_len == 32 and by_name["aes128"].value_len == 16
    assert by_name["aes256"].kcv == keys["aes256"].kcv  # type: ignore[attr-defined]
    refused = {r.name: r.reason for r in created.refused}  # type: ignore[attr-defined]
    assert set(refused) == {"kept"}
    assert by_name["ec"].value_len == 0 and by_name["ec"].kcv is None  # PKCS#8, DER-cut
    assert by_name["ec"].fingerprint == keys["ec"].fingerprint  # type: ignore[attr-defined]
    assert manifest.generation == 1
    assert len(created.share_set.mnemonics) == 3  # type: ignore[attr-defined]

    backups = station(station.ws.backup.backups)
    assert [(b.generation, b.keys, b.custodians) for b in backups] == [(1, 3, CUSTODIANS)]
    events = station.events("backup.create")
    assert [e.outcome for e in events] == ["success"]
    assert events[0].details["verified"] is True
    checkpoints = [e.details["reason"] for e in station.events("audit.checkpoint")]
    assert checkpoints[-2:] == ["backup", "backup done"]

    # No secret, share word or key name in clear... the key names are in the manifest by
    # design (custodians see what a backup holds); PINs, passphrases and share words never.
    blob = b"".join(p.read_bytes() for p in directory.iterdir())
    for secret in SECRETS:
        assert secret.encode() not in blob
    for mnemonic in created.share_set.mnemonics:  # type: ignore[attr-defined]
        for word in set(mnemonic.split()) - {"academic"}:
            assert f" {word} ".encode() not in blob


def test_the_token_still_works_for_the_user_after_the_so_login(
    station: Station, tmp_path: Path
) -> None:
    make_keys(station)
    create(station, tmp_path)
    # the user login came back: generation (a token write) still works
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "after")
    # and the KEK is gone: nothing but the keys and audit objects is on the token
    objects = station(station.ws.keys.inventory)
    assert "keystead-backup-kek" not in {i.name for i in objects}


def test_verify_without_and_with_shares_and_a_drill(station: Station, tmp_path: Path) -> None:
    make_keys(station)
    created = create(station, tmp_path)
    directory = created.directory  # type: ignore[attr-defined]
    mnemonics = created.share_set.mnemonics  # type: ignore[attr-defined]

    plain = station(station.ws.backup.verify, directory)
    assert plain.signer_known is True and plain.kek_checked is False

    full = station(
        station.ws.backup.verify,
        directory,
        KekSecret(mnemonics=(mnemonics[2], mnemonics[0])),
        TOKEN,
    )
    assert full.kek_checked and full.drilled == 3
    events = station.events("backup.verify")
    assert [e.details["drilled"] for e in events] == [0, 3]


def test_passphrase_protects_the_kek(station: Station, tmp_path: Path) -> None:
    make_keys(station)
    created = create(
        station,
        tmp_path,
        threshold=0,
        custodians=(),
        recovery_passphrase="correct horse battery staple",
    )
    directory = created.directory  # type: ignore[attr-defined]
    manifest = json.loads((directory / fmt.MANIFEST).read_bytes())
    assert manifest["shares"] is None and manifest["passphrase"]["kdf"] == "argon2id"
    report = station(
        station.ws.backup.verify,
        directory,
        KekSecret(recovery_passphrase="correct horse battery staple"),
    )
    assert report.kek_checked
    with pytest.raises(BackupIntegrityError, match="passphrase is wrong"):
        station(
            station.ws.backup.verify,
            directory,
            KekSecret(recovery_passphrase="correct horse battery stapler"),
        )


def test_shares_are_handed_out_before_anything_is_written(station: Station, tmp_path: Path) -> None:
    make_keys(station)
    stick = tmp_path / "stick"
    stick.mkdir()
    seen: list[object] = []

    def deliver(card: object) -> None:
        assert list(stick.iterdir()) == []  # nothing on the medium yet
        seen.append(card)

    created = create(station, stick, deliver=deliver)
    (card,) = seen
    assert card.backup_id == created.manifest.backup_id  # type: ignore[attr-defined]
    assert card.kek_check_value == created.manifest.kek_check_value  # type: ignore[attr-defined]
    assert card.signer_fingerprint == created.manifest.signer_fingerprint  # type: ignore[attr-defined]


def test_cancelled_share_delivery_writes_nothing(station: Station, tmp_path: Path) -> None:
    from app.errors import OperationCancelled

    make_keys(station)

    def cancel(card: object) -> None:
        raise OperationCancelled("custodian walked away")

    stick = tmp_path / "stick"
    stick.mkdir()
    with pytest.raises(OperationCancelled):
        create(station, stick, deliver=cancel)
    assert list(stick.iterdir()) == []
    assert station(station.ws.backup.backups) == []
    assert station.events("backup.create")[-1].outcome == "failed"
    # the token is still usable by the user afterwards
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "after")


@pytest.mark.parametrize(("stage", "at"), [("wrap", 1), ("write", 0), ("write", 3), ("verify", 1)])
def test_cancel_while_writing_removes_the_partial_backup(
    station: Station, tmp_path: Path, stage: str, at: int
) -> None:
    """Cancel (the GUI's progress hook raising OperationCancelled) between two keys or two
    files: the new directory is gone, an earlier backup is untouched, nothing is recorded
    as backed up, and a failed entry names the cancellation."""
    make_keys(station)
    target = tmp_path / "stick"
    target.mkdir()
    earlier = create(station, target).directory  # type: ignore[attr-defined]
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    seen: list[tuple[str, int, int]] = []

    def progress(now: str, done: int, total: int) -> None:
        seen.append((now, done, total))
        if (now, done) == (stage, at):
            raise OperationCancelled("The backup was cancelled; nothing was marked backed up.")

    with pytest.raises(OperationCancelled):
        create(station, target, progress=progress)
    assert [p.name for p in target.iterdir()] == [earlier.name]
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before
    assert [b.generation for b in station(station.ws.backup.backups)] == [1]
    assert [e.outcome for e in station.events("backup.create")] == ["success", "failed"]
    assert seen[0] == ("wrap", 0, 3)


def test_progress_reports_every_key_and_file(station: Station, tmp_path: Path) -> None:
    make_keys(station)
    seen: list[tuple[str, int, int]] = []
    create(station, tmp_path, progress=lambda *step: seen.append(step))
    assert seen == [
        ("wrap", 0, 3),
        ("wrap", 1, 3),
        ("wrap", 2, 3),
        ("wrap", 3, 3),
        ("seal", 0, 1),
        *[("write", n, 5) for n in range(5)],
        ("verify", 0, 1),
        ("verify", 1, 1),
    ]


@pytest.mark.parametrize(
    "name", ["Mallory\u202etxt.exe", "Eve\u200b", "Bob\nAdmin", "Carol\x1b[31m", "  "]
)
def test_custodian_names_with_control_or_bidi_characters_are_refused(
    station: Station, tmp_path: Path, name: str
) -> None:
    """The operator-name rule: a share card must show who holds it, and nothing hidden."""
    make_keys(station)
    stick = tmp_path / "stick"
    stick.mkdir()
    with pytest.raises(ValidationError) as caught:
        create(station, stick, custodians=("alice", name))
    assert "Custodian name" in caught.value.message
    assert list(stick.iterdir()) == []
    assert station.events("backup.create") == []
