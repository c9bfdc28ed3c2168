"""What a new backup leaves out, and what it says when it cannot start (attack F20, F3, F11).

- F20: a COMPROMISED key is not copied onto a new medium (a restore never brings it back); it
  is listed with the reason, and naming only it writes nothing.
- F3: a key whose token object is gone stops the backup with a message naming the key and how
  to back up the others (before: "holds 0 keys with CKA_ID …").
- F11: a backup on the medium that this workstation never recorded keeps its generation number.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm
from app.domain.lifecycle import Action
from app.errors import TokenError, ValidationError
from tests.hsm.kit import PIN, SO_PIN, TOKEN, Station, pkcs11_tool

pytestmark = pytest.mark.hsm


def _create(station: Station, target: Path, chosen: set[str] | None = None) -> object:
    target.mkdir(exist_ok=True)
    return station(
        station.ws.backup.create,
        target,
        TOKEN,
        SO_PIN,
        PIN,
        threshold=2,
        custodians=("alice", "bob"),
        chosen=chosen,
        deliver=lambda card: None,
    )


def test_compromised_keys_are_left_out_of_new_backups(station: Station, tmp_path: Path) -> None:
    gen = station.ws.keys.generate
    kept = station(gen, TOKEN, Algorithm.AES_256, "k1", backup_able=True)
    bad = station(gen, TOKEN, Algorithm.AES_256, "k6", backup_able=True)
    station(station.ws.lifecycle.transition, bad.id, Action.COMPROMISE, reason="leaked")
    made = _create(station, tmp_path / "stick")
    assert [e.id for e in made.manifest.keys] == [kept.id]  # type: ignore[attr-defined]
    assert {r.name: r.reason for r in made.refused} == {  # type: ignore[attr-defined]
        "k6": "compromised: a restore never brings it back"
    }
    with pytest.raises(ValidationError, match="k6: compromised"):
        _create(station, tmp_path / "only", {"k6"})
    assert list((tmp_path / "only").iterdir()) == []
    assert station(station.ws.backup.coverage) == (0, 1)  # k6 is not "at risk"


def test_a_key_missing_on_the_token_is_named_with_the_way_forward(
    station: Station, tmp_path: Path
) -> None:
    gen = station.ws.keys.generate
    station(gen, TOKEN, Algorithm.AES_256, "k1", backup_able=True)
    lost = station(gen, TOKEN, Algorithm.AES_128, "k2", backup_able=True)
    station.lock()
    pkcs11_tool(
        station.home,
        "--token-label",
        TOKEN,
        "--delete-object",
        "--type",
        "secrkey",
        "--id",
        lost.cka_id,
    )
    station.unlock()
    with pytest.raises(TokenError) as error:
        _create(station, tmp_path / "stick")
    message = error.value.message
    assert f"Key 'k2' is missing on token '{TOKEN}'" in message
    assert "back up the others with --keys k1," in message and "rebind" in message
    assert list((tmp_path / "stick").iterdir()) == []
    assert station(station.ws.backup.backups) == []
    # The way forward works.
    made = _create(station, tmp_path / "other", {"k1"})
    assert [e.name for e in made.manifest.keys] == ["k1"]  # type: ignore[attr-defined]


def test_a_backup_left_unrecorded_on_the_medium_keeps_its_generation(
    station: Station, tmp_path: Path
) -> None:
    """F11: a backup written but never recorded (a kill between writing and recording, here
    its record removed) keeps its number: the next backup to that medium is the next
    generation, never a second one with the same number."""
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "k1", backup_able=True)
    stick = tmp_path / "stick"
    first = _create(station, stick)
    assert first.manifest.generation == 1  # type: ignore[attr-defined]
    db = station.ws.db

    def forget() -> None:
        with db.transaction():
            db.execute("DELETE FROM key_backups")
            db.execute("DELETE FROM backups")

    station(forget)
    assert station(station.ws.backup.backups) == []
    second = _create(station, stick)
    assert second.manifest.generation == 2  # type: ignore[attr-defined]
    assert len(list(stick.iterdir())) == 2
