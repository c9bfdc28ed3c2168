"""One token search per login for the audit (issue 17): the rollback check, the MAC key, the
checkpoint key and checkpoint pruning share one enumeration, kept until the session ends, so
the cost of a command does not grow with the objects on the token. Counted by wrapping the
real python-pkcs11 session of a real SoftHSM token; the token stays the judge (pkcs11-tool
lists what is really there)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from app.domain.algorithms import Algorithm
from app.domain.audit import Checkpoint
from app.errors import DatabaseRolledBack, TokenError
from app.hsm.audit_objects import AUDIT_MAC_ID, CHECKPOINT_APPLICATION
from app.hsm.module import Pkcs11Module
from app.hsm.session import TokenSession
from app.services.workstation import Workstation
from tests.hsm.faults import Faults, install_on_module
from tests.support import OPERATOR, PASS, PIN, TOKEN, Bench, pkcs11_tool, with_witness

pytestmark = pytest.mark.hsm


class CountingSession:
    """The real python-pkcs11 session, counting object searches (C_FindObjectsInit)."""

    def __init__(self, real: Any, counts: list[dict[str, Any]]) -> None:
        self._real = real
        self._counts = counts

    def get_objects(self, template: dict[Any, Any] | None = None) -> Iterator[Any]:
        self._counts.append(dict(template or {}))
        return self._real.get_objects(template)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every object search of every token session opened from now on."""
    counts: list[dict[str, Any]] = []
    original = TokenSession.__init__

    def counting_init(self: TokenSession, module: Any, info: Any, session: Any) -> None:
        original(self, module, info, CountingSession(session, counts))

    monkeypatch.setattr(TokenSession, "__init__", counting_init)
    return counts


def checkpoint_objects(bench: Bench) -> list[str]:
    out = pkcs11_tool(bench.home, "--token-label", TOKEN, "--list-objects", pin=PIN)
    return re.findall(r"label:\s+'?(keystead-checkpoint-\d+)", out)


def test_a_login_searches_the_token_once_for_everything_the_audit_needs(
    bench: Bench, searches: list[dict[str, Any]]
) -> None:
    bench(bench.ws.lock)
    bench.ws = bench(Workstation.unlock, bench.home, OPERATOR, PASS, clock=bench.clock)
    bench(bench.ws.tokens.login, TOKEN, PIN)  # rollback check, sealed login entry
    assert len(searches) == 1
    for reason in ("one", "two", "three"):  # sign, store, prune, seal: no further search
        bench(bench.ws.audit.checkpoint, reason)
    report = bench(bench.ws.audit.verify)  # MACs and the token's checkpoints, cached
    assert report.ok, report.summary()
    bench(bench.ws.lock)  # the checkpoint at lock
    assert len(searches) == 1


def test_pruning_from_the_cached_list_keeps_the_newest_eight_on_the_token(
    bench: Bench, searches: list[dict[str, Any]]
) -> None:
    made = [bench(bench.ws.audit.checkpoint, f"c{i}") for i in range(11)]
    labels = checkpoint_objects(bench)
    assert sorted(labels) == [f"keystead-checkpoint-{c.seq:012d}" for c in made[-8:]]
    assert searches == []  # the bench's login happened before counting began
    # A new login reads them back with its one search: the newest is this run's last one.
    bench.reopen()
    assert len(searches) == 1  # the login's index (unlock reads public objects on its own)
    report = bench(bench.ws.audit.verify)
    assert report.ok, report.summary()


def test_a_token_that_does_not_match_the_index_search_falls_back_to_direct_searches(
    bench: Bench, searches: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the one search finds no MAC key (a token that does not match on CKA_MODIFIABLE),
    the audit is not fooled into "no checkpoints": it searches for each object directly."""
    bench(bench.ws.audit.checkpoint, "before")
    bench(bench.ws.lock)

    def nothing(self: CountingSession, template: dict[Any, Any] | None = None) -> Iterator[Any]:
        self._counts.append(dict(template or {}))
        if template and template.get(next(iter(template))) is True and len(template) == 2:
            return iter(())  # the {TOKEN: true, MODIFIABLE: false} index search
        return self._real.get_objects(template)

    monkeypatch.setattr(CountingSession, "get_objects", nothing)
    bench.ws = bench(Workstation.unlock, bench.home, OPERATOR, PASS, clock=bench.clock)
    bench(bench.ws.tokens.login, TOKEN, PIN)
    report = bench(bench.ws.audit.verify)
    assert report.ok, report.summary()
    assert report.checkpoint_seq is not None  # the token's checkpoints were found after all
    assert len(searches) > 2  # the empty index search, then the direct ones


def test_a_new_login_finds_the_checkpoints_for_verify_and_export(
    bench: Bench, tmp_path: Path
) -> None:
    """The one search reads data objects too: python-pkcs11 gives a data object no class of
    its own, and a class test that missed them left every export of a new session without
    its checkpoints (the offline script then accepted a truncated export)."""
    made = bench(bench.ws.audit.checkpoint, "before the next session")
    bench.reopen()  # a new unlock and login, as every CLI command is
    export = tmp_path / "audit.json"
    bench(bench.ws.audit.export, export, "json")
    seqs = [c["seq"] for c in json.loads(export.read_text())["checkpoints"]]
    assert made.seq in seqs, seqs


# --- whole commands: searches per step, at 10 and at 300 extra token objects -----------------


@pytest.fixture
def module_searches(monkeypatch: pytest.MonkeyPatch) -> list[Faults]:
    """Counters under every PKCS#11 module loaded from now on (``tests/hsm/faults.py``): each
    object search (C_FindObjectsInit, python-pkcs11 ``get_objects``) of any session is counted,
    the unlock's public rollback pre-check included."""
    installed: list[Faults] = []
    original = Pkcs11Module.__init__

    def counting(self: Pkcs11Module, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        installed.append(install_on_module(self))

    monkeypatch.setattr(Pkcs11Module, "__init__", counting)
    return installed


def _searches(installed: list[Faults]) -> int:
    return sum(faults.count("get_objects") for faults in installed)


def add_token_objects(bench: Bench, count: int, first: int) -> None:
    """``count`` unmanaged AES-128 token objects, made straight with python-pkcs11 (fast: no
    Keystead bookkeeping per object). Call while logged in."""

    def make() -> None:
        raw = bench.ws.tokens.session(TOKEN)._session
        for i in range(first, first + count):
            raw.generate_key(
                KeyType.AES,
                128,
                store=True,
                label=f"filler-{i}",
                id=b"fill" + i.to_bytes(4, "big"),
                template={Attribute.TOKEN: True, Attribute.SENSITIVE: True},
            )

    bench(make)


def one_command_of_each_kind(bench: Bench, installed: list[Faults], name: str) -> dict[str, int]:
    """Unlock, log in, generate a key, show a key with its live attributes, lock: what the
    CLI's ``keys generate`` and ``keys show`` do. The searches each step made."""
    steps: dict[str, int] = {}

    def step(label: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        before = _searches(installed)
        result = bench(fn, *args, **kwargs)
        steps[label] = _searches(installed) - before
        return result

    bench.ws = with_witness(
        step("unlock", Workstation.unlock, bench.home, OPERATOR, PASS, clock=bench.clock)
    )
    step("login", bench.ws.tokens.login, TOKEN, PIN)
    step("keys generate", bench.ws.keys.generate, TOKEN, Algorithm.AES_256, name)
    shown = bench(bench.ws.keys.resolve, "shown")
    details = step("keys show", bench.ws.keys.details, shown.id)
    assert details.token_attributes, "keys show read no live attributes from the token"
    step("lock", bench.ws.lock)
    return steps


def test_a_command_searches_the_token_as_often_at_300_extra_objects_as_at_10(
    bench: Bench, module_searches: list[Faults]
) -> None:
    """The cost of a command does not grow with the token's objects in the number of
    searches: SoftHSM's C_FindObjects is linear in the objects, so each search is O(n) and
    only the count per command can be held down. Per step: the unlock's public rollback
    pre-check (1: before anything is written, no login yet), the login's one audit search (1),
    generation (0), ``keys show`` finding the key's objects by CKA_ID (1: the lookup itself),
    the lock's checkpoint and pruning (0: from the login's search)."""
    bench(bench.ws.keys.generate, TOKEN, Algorithm.AES_256, "shown")
    add_token_objects(bench, 10, 0)
    bench(bench.ws.lock)
    at_10 = one_command_of_each_kind(bench, module_searches, "made-at-10")

    bench.ws = bench(Workstation.unlock, bench.home, OPERATOR, PASS, clock=bench.clock)
    bench(bench.ws.tokens.login, TOKEN, PIN)
    add_token_objects(bench, 290, 10)
    bench(bench.ws.lock)
    at_300 = one_command_of_each_kind(bench, module_searches, "made-at-300")

    listed = pkcs11_tool(bench.home, "--token-label", TOKEN, "--list-objects", pin=PIN)
    assert listed.count("filler-") == 300  # the objects really are on the token
    assert at_10 == at_300
    assert at_10 == {"unlock": 1, "login": 1, "keys generate": 0, "keys show": 1, "lock": 0}


def test_a_new_login_does_not_reuse_the_audit_key_handle_of_the_last_one(bench: Bench) -> None:
    """The handles found at a login die with its session. Log out, delete the audit MAC key
    behind Keystead's back, log in again in the same process: the new login looks afresh, as
    a new process would, and the next sealed change is refused with the clear error (not the
    stale handle's CKR_OBJECT_HANDLE_INVALID, not a MAC made by whatever the old handle
    names now); no key is made, the failure is recorded."""
    bench(bench.ws.keys.generate, TOKEN, Algorithm.AES_128, "before")  # the MAC key in use
    serial = bench(bench.ws.tokens.session, TOKEN).info.serial
    bench(bench.ws.tokens.logout, serial)
    pkcs11_tool(
        bench.home, "--token-label", TOKEN, "--delete-object", "--type", "secrkey",
        "--id", AUDIT_MAC_ID.hex(), pin=PIN,
    )  # fmt: skip
    listed = pkcs11_tool(bench.home, "--token-label", TOKEN, "--list-objects", pin=PIN)
    assert "keystead-audit-mac" not in listed
    events = len(bench.events())

    bench(bench.ws.tokens.login, TOKEN, PIN)
    with pytest.raises(TokenError) as refused:
        bench(bench.ws.keys.generate, TOKEN, Algorithm.AES_128, "after")
    assert refused.value.message == f"Token '{TOKEN}' holds no audit key."
    listed = pkcs11_tool(bench.home, "--token-label", TOKEN, "--list-objects", pin=PIN)
    assert "label:      before" in listed and "after" not in listed
    assert bench(bench.ws.keys.repo.by_name, "after") is None
    after = [(e.action, e.outcome) for e in bench.events()[events:]]
    assert after[0] == ("token.login", "success")
    assert ("key.generate", "failed") in after and ("key.generate", "success") not in after


def test_a_login_to_a_token_that_is_not_the_audit_token_searches_nothing(
    bench: Bench, module_searches: list[Faults]
) -> None:
    """Only the audit token's login looks for audit objects: a second token holding keys is
    logged in (its sealed login entry, its pending changes read from the database) without any
    search of it, however many objects it holds. Generating on it searches nothing either."""
    other = bench(bench.ws.tokens.create_soft_token, "Other", "87654321", "2468")
    bench(bench.ws.lock)
    bench.ws = with_witness(
        bench(Workstation.unlock, bench.home, OPERATOR, PASS, clock=bench.clock)
    )
    bench(bench.ws.tokens.login, TOKEN, PIN)
    before = _searches(module_searches)
    bench(bench.ws.tokens.login, other.serial, "2468")
    assert _searches(module_searches) == before
    bench(bench.ws.keys.generate, other.serial, Algorithm.AES_128, "on-the-other")
    assert _searches(module_searches) == before
    assert "on-the-other" in pkcs11_tool(
        bench.home, "--token-label", "Other", "--list-objects", pin="2468"
    )


def test_the_rollback_check_skips_a_forged_newer_checkpoint_and_still_refuses_an_old_database(
    bench: Bench,
) -> None:
    """The rollback check verifies signatures newest first and stops at the first good one
    (one ECDSA verification per check instead of eight). A planted checkpoint that claims a
    later sequence number but does not verify is passed over: it neither refuses a good
    database nor vouches for an old one."""
    real = bench(bench.ws.audit.checkpoint, "the real newest")
    forged = Checkpoint(
        real.workstation,
        real.seq + 1000,
        bytes(32),
        "9999-12-31T23:59:59Z",
        real.signature,  # a good signature, of another statement
        real.database,
    )

    def plant() -> None:
        bench.ws.tokens.session(TOKEN)._session.create_object(
            {
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.APPLICATION: CHECKPOINT_APPLICATION,
                Attribute.LABEL: "keystead-checkpoint-999999999999",
                Attribute.VALUE: json.dumps(forged.to_json()).encode(),
            }
        )

    bench(plant)
    old = bench.home.root / "old.db"
    bench(bench.ws.lock)  # a checkpoint at lock, older than the forged one's claim
    shutil.copy(bench.home.database, old)
    # The pre-check at unlock and the check at login both pass.
    bench.ws = with_witness(
        bench(Workstation.unlock, bench.home, OPERATOR, PASS, clock=bench.clock)
    )
    bench(bench.ws.tokens.login, TOKEN, PIN)
    bench(bench.ws.audit.checkpoint, "later")
    bench(bench.ws.lock)
    shutil.copy(old, bench.home.database)  # someone puts the older database back
    with pytest.raises(DatabaseRolledBack, match="older than the token"):
        bench(Workstation.unlock, bench.home, OPERATOR, PASS, clock=bench.clock)


def test_an_audit_key_deleted_behind_a_logged_in_session_gives_the_fresh_answer(
    bench: Bench,
) -> None:
    """The kept handle of an audit key another program deleted while Keystead stays logged in
    is not trusted for its error: the token is searched again and the change is refused with
    the words a new login would get ("holds no audit key"), not CKR_OBJECT_HANDLE_INVALID."""
    bench(bench.ws.keys.generate, TOKEN, Algorithm.AES_128, "before")  # the MAC key in use
    pkcs11_tool(
        bench.home, "--token-label", TOKEN, "--delete-object", "--type", "secrkey",
        "--id", AUDIT_MAC_ID.hex(), pin=PIN,
    )  # fmt: skip
    with pytest.raises(TokenError) as refused:
        bench(bench.ws.keys.generate, TOKEN, Algorithm.AES_128, "after")
    assert refused.value.message == f"Token '{TOKEN}' holds no audit key."
    listed = pkcs11_tool(bench.home, "--token-label", TOKEN, "--list-objects", pin=PIN)
    assert "label:      before" in listed and "after" not in listed
    assert bench(bench.ws.keys.repo.by_name, "after") is None


def test_a_checkpoint_deleted_behind_a_logged_in_session_is_read_again(bench: Bench) -> None:
    """A checkpoint object deleted by another program after the login's search: verification
    reads the token's checkpoints afresh instead of failing on the kept handle."""
    first = bench(bench.ws.audit.checkpoint, "first")
    bench(bench.ws.audit.checkpoint, "second")
    assert bench(bench.ws.audit.verify).ok
    label = f"keystead-checkpoint-{first.seq:012d}"
    pkcs11_tool(
        bench.home, "--token-label", TOKEN, "--delete-object", "--type", "data",
        "--label", label, pin=PIN,
    )  # fmt: skip
    assert label not in pkcs11_tool(bench.home, "--token-label", TOKEN, "--list-objects", pin=PIN)
    report = bench(bench.ws.audit.verify)
    assert report.ok, report.summary()


def test_verification_after_the_audit_key_is_deleted_gives_the_fresh_answer(
    bench: Bench,
) -> None:
    """Audit verification MACs every entry with the key found once (``audit_mac_loop``); when
    that key was deleted behind the session, the first failing C_Sign is handed to the full
    path, which searches again and refuses in the words a new login gets."""
    bench(bench.ws.keys.generate, TOKEN, Algorithm.AES_128, "before")
    assert bench(bench.ws.audit.verify).ok  # the handle is kept from here
    pkcs11_tool(
        bench.home, "--token-label", TOKEN, "--delete-object", "--type", "secrkey",
        "--id", AUDIT_MAC_ID.hex(), pin=PIN,
    )  # fmt: skip
    with pytest.raises(TokenError) as refused:
        bench(bench.ws.audit.verify)
    assert refused.value.message == f"Token '{TOKEN}' holds no audit key."
