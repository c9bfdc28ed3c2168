"""The embedded token's files survive being cut short: every file of a real SoftHSM token
emptied, truncated at any byte or at an attribute boundary, or filled with garbage, is
restored from its verified shadow at the next open (and recorded); a damaged object nobody
vouched for is moved aside and never breaks a listing; a destroyed object is never brought
back, and a token directory moved away is never re-created."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm
from app.domain.keys import Presence
from app.errors import WrongPin
from app.hsm import filestore
from app.hsm.filestore import (
    _MAX_FILE,
    TOKEN_OBJECT,
    Damaged,
    _read,
    parse_object_file,
    verify_object_file,
)
from tests.hsm.kit import PIN, TOKEN, Station, peer_keys

pytestmark = pytest.mark.hsm


def _token_dir(station: Station) -> Path:
    (directory,) = [p for p in station.home.softhsm_tokens.iterdir() if p.is_dir()]
    return directory


def _with_keys(station: Station) -> dict[str, str]:
    """Two keys on the token (a secret key and a pair); name -> CKA_ID."""
    ws = station.ws
    aes = station(ws.keys.generate, TOKEN, Algorithm.AES_128, "vault-aes")
    ec = station(ws.keys.generate, TOKEN, Algorithm.EC_P256, "vault-ec")
    return {aes.name: aes.cka_id, ec.name: ec.cka_id}


def _presence(station: Station) -> dict[str, Presence]:
    items = station(station.ws.keys.inventory)
    return {i.record.name: i.presence for i in items if i.record is not None}


def _cut_at_attribute_boundary(data: bytes) -> bytes:
    """The file cut right after its first few attributes (it still parses)."""
    parsed = parse_object_file(data)
    keep = len(parsed.attributes) // 2
    pos = 8
    for _ in range(keep):
        kind = int.from_bytes(data[pos + 8 : pos + 16], "big")
        pos += 16
        if kind == 1:
            pos += 1
        elif kind == 2:
            pos += 8
        elif kind in (3, 4):
            pos += 8 + int.from_bytes(data[pos : pos + 8], "big")
        else:
            pos += 8 + 8 * int.from_bytes(data[pos : pos + 8], "big")
    return data[:pos]


DAMAGE = {
    "empty": lambda data: b"",
    "half": lambda data: data[: len(data) // 2],
    "32 bytes": lambda data: data[:32],
    "attribute boundary": _cut_at_attribute_boundary,
    "garbage": lambda data: b"\xff" * len(data),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_every_damaged_token_file_is_restored_and_recorded(station: Station, damage: str) -> None:
    keys = _with_keys(station)
    station.lock()
    directory = _token_dir(station)
    files = sorted(directory.glob("*.object"))
    assert any(p.name == TOKEN_OBJECT for p in files) and len(files) >= 6
    originals = {p: p.read_bytes() for p in files}
    for path, data in originals.items():
        path.write_bytes(DAMAGE[damage](data))
    station.unlock(login=False)
    assert {p: p.read_bytes() for p in files} == originals  # before anything is written
    station(station.ws.tokens.login, TOKEN, PIN)
    assert _presence(station) == {name: Presence.PRESENT for name in keys}
    repairs = station.events("token.store-repair")
    assert sorted(e.details["file"] for e in repairs) == sorted(p.name for p in files)
    assert {e.details["repair"] for e in repairs} == {"restored"}
    assert all(e.outcome == "success" and e.subject == station.serial for e in repairs)
    assert {p.cka_id for p in peer_keys(station.home)} >= set(keys.values())


def test_the_issue_reproduction_an_emptied_token_object_keeps_the_token(
    station: Station,
) -> None:
    _with_keys(station)
    station.lock()
    (_token_dir(station) / TOKEN_OBJECT).write_bytes(b"")
    station.unlock()  # logs in to the token: it is there, with its PIN
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "after-repair")
    assert set(_presence(station).values()) == {Presence.PRESENT}


def test_a_missing_token_object_in_a_present_directory_is_restored(station: Station) -> None:
    station.lock()
    (_token_dir(station) / TOKEN_OBJECT).unlink()
    station.unlock()
    (event,) = station.events("token.store-repair")
    assert event.details["fault"] == "missing" and event.details["repair"] == "restored"


def test_a_damaged_object_without_a_good_copy_is_moved_aside_and_listing_works(
    station: Station,
) -> None:
    keys = _with_keys(station)
    station.lock()
    directory = _token_dir(station)
    foreign = directory / "0badc0de-0000-0000-0000-000000000000.object"
    foreign.write_bytes(b"\x00" * 8 + b"\x00" * 7)  # a first write cut short, never copied
    station.unlock()
    assert not foreign.exists()
    (moved,) = (station.home.softhsm_quarantine / directory.name).iterdir()
    assert moved.name.startswith(foreign.name) and moved.read_bytes() == b"\x00" * 15
    assert _presence(station) == {name: Presence.PRESENT for name in keys}
    (event,) = station.events("token.store-repair")
    assert event.details["repair"] == "quarantined"


def test_a_destroyed_key_is_never_brought_back_from_its_shadow(station: Station) -> None:
    ws = station.ws
    key = station(ws.keys.generate, TOKEN, Algorithm.AES_128, "to-destroy")
    shadow = station.home.softhsm_shadow / _token_dir(station).name
    before = {p.name for p in shadow.glob("*.object")}
    station(lambda: ws.tokens.session(TOKEN).destroy_generated(key.cka_id))
    after = {p.name for p in shadow.glob("*.object")}
    assert len(before - after) == 1 and not after - before  # its shadow went with it
    station.lock()
    station.unlock()
    assert key.cka_id not in {p.cka_id for p in peer_keys(station.home)}
    assert station.events("token.store-repair") == []


def test_a_token_directory_moved_away_is_not_recreated(station: Station, tmp_path: Path) -> None:
    station.lock()
    directory = _token_dir(station)
    shutil.move(directory, tmp_path / "away")
    station.unlock(login=False)
    assert not directory.exists()
    assert station(station.ws.tokens.present) == []
    station.lock()
    shutil.move(tmp_path / "away", directory)
    station.unlock()
    assert station.events("token.store-repair") == []


def test_shadows_follow_each_change_and_are_verified_copies(station: Station) -> None:
    _with_keys(station)
    directory = _token_dir(station)
    shadow = station.home.softhsm_shadow / directory.name
    live = {p.name: p.read_bytes() for p in directory.glob("*.object")}
    copies = {p.name: p.read_bytes() for p in shadow.glob("*.object")}
    assert copies == live
    for name, data in copies.items():
        verify_object_file(data, name)


def test_no_repair_while_another_process_of_the_workstation_holds_the_store(
    station: Station,
) -> None:
    import fcntl
    import os

    station.lock()
    (_token_dir(station) / TOKEN_OBJECT).write_bytes(b"")
    fd = os.open(station.home.softhsm_lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # as a running GUI holds it
        station.unlock(login=False)
        assert station.events("token.store-repair") == []
        assert (_token_dir(station) / TOKEN_OBJECT).read_bytes() == b""
        station.lock()
    finally:
        os.close(fd)
    station.unlock()
    assert len(station.events("token.store-repair")) == 1


@pytest.mark.parametrize("cut", [0, 7, 8, 9, 15, 16, 17, 100])
def test_verification_refuses_every_prefix_of_a_real_object(station: Station, cut: int) -> None:
    directory = _token_dir(station)
    for path in directory.glob("*.object"):
        data = path.read_bytes()
        verify_object_file(data, path.name)
        if cut < len(data):
            with pytest.raises(Damaged):
                verify_object_file(data[:cut], path.name, parse_object_file(data).types)


def test_any_cut_of_any_real_file_is_refused(station: Station) -> None:
    """Every prefix of every file. The one exception is documented: token.object cut right
    before its last attribute, the user PIN, is what a re-initialised token looks like (and
    the file is under 4 KiB, which stdio writes in one piece, so a kill never cuts it there)."""
    _with_keys(station)
    for path in _token_dir(station).glob("*.object"):
        data = path.read_bytes()
        types = parse_object_file(data).types
        without_user_pin = (
            len(data) - 16 - 8 - len(parse_object_file(data).attributes[0x80005348 + 5])
            if path.name == TOKEN_OBJECT
            else -1
        )
        for cut in range(len(data)):
            if cut == without_user_pin:
                verify_object_file(data[:cut], path.name, types)
                continue
            with pytest.raises(Damaged):
                verify_object_file(data[:cut], path.name, types)


def test_a_wrong_pin_s_rewrite_of_token_object_reaches_its_shadow(station: Station) -> None:
    """C_Login rewrites token.object (its PIN flags) and nothing else, so after a login only
    that file is looked at (issue 17: a stat of every object file made a login O(objects));
    its shadow still follows, so a kill right after a wrong PIN loses nothing."""
    _with_keys(station)
    directory = _token_dir(station)
    shadow = station.home.softhsm_shadow / directory.name / TOKEN_OBJECT
    before = shadow.read_bytes()
    serial = station(station.ws.tokens.find, TOKEN).serial
    station(station.ws.tokens.logout, serial)
    with pytest.raises(WrongPin):
        station(station.ws.tokens.login, TOKEN, "00000000")  # the token counts it in its flags
    live = (directory / TOKEN_OBJECT).read_bytes()
    assert live != before  # SoftHSM rewrote the file (the user PIN count-low flag)
    assert shadow.read_bytes() == live


def test_a_file_damaged_alike_with_its_shadow_is_still_refused_and_moved_aside(
    station: Station,
) -> None:
    """Open reads a file identical to its shadow only once for verification (issue 17): the
    same bytes pass or fail alike. Identical damage on both (no good copy) is still found: the
    object is moved aside and the other keys stay listed, as when the two differ."""
    directory = _token_dir(station)
    before = set(directory.glob("*.object"))
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "vault-aes")
    (victim,) = set(directory.glob("*.object")) - before  # the AES key's one object file
    station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "vault-ec")
    station.lock()
    shadow_dir = station.home.softhsm_shadow / directory.name
    damaged = victim.read_bytes()[:40]
    victim.write_bytes(damaged)
    (shadow_dir / victim.name).write_bytes(damaged)
    station.unlock()
    assert not victim.exists()
    (moved,) = (station.home.softhsm_quarantine / directory.name).iterdir()
    assert moved.name.startswith(victim.name) and moved.read_bytes() == damaged
    (event,) = station.events("token.store-repair")
    assert event.details["repair"] == "quarantined" and event.details["file"] == victim.name
    assert _presence(station) == {"vault-aes": Presence.MISSING, "vault-ec": Presence.PRESENT}


def test_open_copies_a_file_changed_outside_keystead_and_reads_the_rest_once(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key object another PKCS#11 client rewrote while Keystead was closed differs from its
    shadow: open verifies it and its shadow follows. A file equal to its shadow is read once
    (with its shadow) by the repair, and not again by the open's sync (issue 17: open read
    and parsed every file and shadow twice, 12-17 s at 10,000 objects)."""
    _with_keys(station)
    station.lock()
    directory = _token_dir(station)
    shadow_dir = station.home.softhsm_shadow / directory.name
    victim = next(p for p in sorted(directory.glob("*.object")) if p.name != TOKEN_OBJECT)
    data = victim.read_bytes()
    generation = int.from_bytes(data[:8], "big") + 1  # what SoftHSM bumps on each rewrite
    changed = generation.to_bytes(8, "big") + data[8:]
    victim.write_bytes(changed)
    reads: Counter[str] = Counter()
    real_read = filestore._read

    def counted(path: Path | str) -> bytes | None:
        reads[str(path)] += 1
        return real_read(path)

    monkeypatch.setattr(filestore, "_read", counted)
    station.unlock(login=False)
    assert (shadow_dir / victim.name).read_bytes() == changed
    others = [p for p in directory.glob("*.object") if p not in (victim, directory / TOKEN_OBJECT)]
    assert len(others) >= 4
    for path in others:
        assert reads[str(path)] == 1 and reads[str(shadow_dir / path.name)] == 1, path.name
    assert reads[str(victim)] == 2  # the repair's look, then the sync's copy


def test_reading_a_store_file_is_bounded_and_exact(tmp_path: Path) -> None:
    """``_read`` returns the whole of a small file, None for a missing one, and at most the
    size limit plus one byte of a larger one (which verification then refuses)."""
    small = tmp_path / "small.object"
    small.write_bytes(b"\x01" * 1000)
    assert _read(small) == b"\x01" * 1000
    assert _read(str(small)) == b"\x01" * 1000
    assert _read(tmp_path / "missing.object") is None
    empty = tmp_path / "empty.object"
    empty.write_bytes(b"")
    assert _read(empty) == b""
    big = tmp_path / "big.object"
    with big.open("wb") as handle:
        handle.truncate(_MAX_FILE + 4096)  # sparse: no 64 MiB written
    assert len(_read(big) or b"") == _MAX_FILE + 1


@pytest.mark.parametrize("which", ["object file", "its shadow copy", "token.object"])
def test_a_store_file_that_cannot_be_read_is_named_and_nothing_changes(
    station: Station, which: str
) -> None:
    """Outside tester (attack2 A4): a directory in place of an object file (as root; for a
    user, a root-owned file left by ``sudo pkcs11-tool`` reads the same way) stopped every
    command with "the input could not be used ([Errno 21] Is a directory)", naming no file.
    Now: refused before SoftHSM starts, naming the file and what to do; nothing moved,
    rewritten or recorded; put back, everything is as it was."""
    from app.errors import TokenStoreConflict

    keys = _with_keys(station)
    station.lock()
    directory = _token_dir(station)
    name = (
        TOKEN_OBJECT
        if which == "token.object"
        else sorted(p.name for p in directory.glob("*.object") if p.name != TOKEN_OBJECT)[0]
    )
    base = directory if which != "its shadow copy" else station.home.softhsm_shadow / directory.name
    target = base / name
    aside = target.with_name(name + ".aside")
    target.rename(aside)
    target.mkdir()
    before = sorted(str(p.relative_to(station.home.root)) for p in station.home.root.rglob("*"))
    with pytest.raises(TokenStoreConflict) as caught:
        station.unlock()
    assert str(target) in caught.value.message and "nothing was changed" in caught.value.message
    after = sorted(str(p.relative_to(station.home.root)) for p in station.home.root.rglob("*"))
    assert [p for p in after if "quarantine" in p] == [p for p in before if "quarantine" in p]
    target.rmdir()
    aside.rename(target)
    station.unlock()
    assert _presence(station) == {n: Presence.PRESENT for n in keys}
    assert station.events("token.store-repair") == []


def test_a_stray_empty_directory_in_the_store_is_no_token_and_no_repair(
    station: Station,
) -> None:
    """Outside tester (attack2 A7): ``mkdir softhsm/tokens/junkdir`` made every command
    record a failed ``token.store-repair`` ("junkdir/token.object unrepairable (missing)").
    An empty directory Keystead never copied is no token; one it knew still is reported."""
    station.lock()
    junk = station.home.softhsm_tokens / "junkdir"
    junk.mkdir()
    station.unlock()
    station.lock()
    station.unlock()
    assert station.events("token.store-repair") == []
    # A known token's directory emptied: still reported (its shadow says it was a token).
    station.lock()
    directory = _token_dir_named(station, exclude="junkdir")
    saved = station.home.root / "saved-token"
    shutil.copytree(directory, saved)
    for f in directory.iterdir():
        f.unlink()
    station.unlock()
    assert station.events("token.store-repair")


def _token_dir_named(station: Station, exclude: str) -> Path:
    (directory,) = [
        p for p in station.home.softhsm_tokens.iterdir() if p.is_dir() and p.name != exclude
    ]
    return directory
