"""One token search per login for the audit (issue 17): the rollback check, the MAC key, the
checkpoint key and checkpoint pruning share one enumeration, kept until the session ends, so
the cost of a command does not grow with the objects on the token. Counted by wrapping the
real python-pkcs11 session of a real SoftHSM token; the token stays the judge (pkcs11-tool
lists what is really there)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.hsm.session import TokenSession
from app.services.workstation import Workstation
from tests.support import OPERATOR, PASS, PIN, TOKEN, Bench, pkcs11_tool

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
