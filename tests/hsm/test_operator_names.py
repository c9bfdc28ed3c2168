"""Operators are people read aloud in approvals and audit entries: a new operator whose name
reads as an existing one's (case, full-width or look-alike letters of another script) is
refused, with a denied entry, and nothing is enrolled (outside testers, F24: 'ALICE' and
'alicе' with a Cyrillic 'е' were added next to 'alice')."""

from __future__ import annotations

import pytest

from app.domain.roles import Role
from app.errors import ValidationError
from app.storage.keyslots import KeySlotFile
from tests.support import OPERATOR, WITNESS, Bench, enrol_witness

pytestmark = pytest.mark.hsm

NEW_PASS = "SENTINEL-lookalike-pass-3c3c"


@pytest.mark.parametrize(
    "name",
    [
        OPERATOR.upper(),  # 'OFFICER'
        OPERATOR.capitalize(),
        "offic\u0435r",  # Cyrillic 'е'
        "ｗｉｔｎｅｓｓ",  # full-width letters of the witness
        WITNESS,  # the same name again: exists
        "Witness",  # a removed or existing name in another case
    ],
)
def test_a_new_operator_who_reads_as_another_is_refused(bench: Bench, name: str) -> None:
    bench(enrol_witness, bench.ws)
    slots_before = (bench.home.keyslots).read_bytes()
    denied_before = [e for e in bench.events() if e.outcome == "denied"]
    with pytest.raises(ValidationError, match=r"reads as|mixes Latin|already exists"):
        bench(bench.ws.roster.add, name, frozenset({Role.AUDITOR}), NEW_PASS, NEW_PASS)
    assert bench.home.keyslots.read_bytes() == slots_before
    assert sorted(KeySlotFile.load(bench.home.keyslots).operators()) == [OPERATOR, WITNESS]
    denied = [e for e in bench.events() if e.outcome == "denied"]
    assert len(denied) == len(denied_before) + 1 and denied[-1].action == "operator.add"


def test_a_distinct_name_is_enrolled(bench: Bench) -> None:
    bench(enrol_witness, bench.ws)
    bench(bench.ws.roster.add, "officer-2", frozenset({Role.AUDITOR}), NEW_PASS, NEW_PASS)
    assert "officer-2" in KeySlotFile.load(bench.home.keyslots).operators()
