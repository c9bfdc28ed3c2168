"""SIGKILL at token-file changes and at random instants, a few dozen times in the suite (the
full ≥ 200 + 200 run is ``python -m tests.crash.harness``): no key or token lost, nothing
reported done lost, token and database agree after the next login, nothing left pending."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.crash.harness import Bench

pytestmark = [pytest.mark.crash, pytest.mark.e2e]


def test_kills_at_token_file_changes_and_at_random_lose_nothing(tmp_path: Path) -> None:
    bench = Bench(tmp_path / "home", seed=7)
    bench.init()
    tally = bench.run(at_changes=8, at_random=4)
    summary = json.dumps(tally.summary(), indent=1)
    assert tally.kills_at_change == 8 and tally.kills_random == 4
    assert not tally.failed(), summary
