"""What an approver reads (terminal and dialog): a request's parameters in words, nothing left
out. The new-user trial found ``passphrase: True`` and Python lists of bare UUIDs in the
approval dialog, and the last fact drawn under the hash's title."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.cli.approvers import request_lines
from app.domain.approval import ApprovalRequest, PolicyRule
from app.domain.approval_text import LABELS, parameter_lines
from app.domain.roles import SO


def _request(parameters: dict[str, object]) -> ApprovalRequest:
    # As ApprovalService.prepare makes them: every value as text, sorted by name.
    return ApprovalRequest(
        action="backup.create",
        subject="token:abc",
        initiator="alice",
        workstation="ws",
        requested_at="2026-11-30T18:00:00Z",
        nonce="00",
        parameters=tuple(sorted((k, "" if v is None else str(v)) for k, v in parameters.items())),
    )


BACKUP = {
    "keys": ["5d335dfa-0264-486a-b44b-07d7c86e2c79", "63f3b751-157e-4d48-8f29-8aea07e6c028"],
    "key_names": ["db-column-key (D47704)", "vault-master-kek (97E158)"],
    "generation": 4,
    "custodians": ["Alice Chen", "Bob Okafor", "Carol Diaz"],
    "threshold": 2,
    "passphrase": True,
    "target": "/media/stick",
}


def test_a_backup_request_reads_in_words() -> None:
    lines = dict(parameter_lines(_request(BACKUP).parameters))
    assert lines["Keys (name and KCV)"] == ["db-column-key (D47704)", "vault-master-kek (97E158)"]
    assert lines["Share custodians"] == ["Alice Chen", "Bob Okafor", "Carol Diaz"]
    assert lines["Shares needed to restore"] == ["2 of 3"]
    assert lines["Recovery passphrase"] == ["required as well (a second way to open the backup)"]
    assert lines["Written to"] == ["/media/stick"]
    assert lines["Key IDs"] == BACKUP["keys"]
    shown = "\n".join(v for values in lines.values() for v in values)
    assert "[" not in shown and "True" not in shown and "'" not in shown


def test_known_labels_come_first_in_their_order_and_unknown_names_are_kept() -> None:
    labels = [label for label, _ in parameter_lines(_request({**BACKUP, "zeta": "z"}).parameters)]
    known = [label for label in labels if label in LABELS.values()]
    order = list(LABELS.values())
    assert known == sorted(known, key=order.index)
    assert labels[-1] == "zeta"


def test_the_terminal_shows_each_item_on_its_own_line() -> None:
    text = "\n".join(
        request_lines(_request(BACKUP), PolicyRule("backup.create", 1, frozenset({SO})))
    )
    assert "Alice Chen" in text and "\n" + " " * 17 + "  Bob Okafor" not in text
    for name in ("Alice Chen", "Bob Okafor", "Carol Diaz"):
        (line,) = [ln for ln in text.splitlines() if name in ln]
        assert "[" not in line and "'" not in line


values = st.one_of(
    st.text(max_size=30),
    st.integers(),
    st.booleans(),
    st.lists(st.text(max_size=12), max_size=4),
    st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3),
)


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), values, max_size=8))
def test_nothing_given_is_left_out(parameters: dict[str, object]) -> None:
    request = _request(parameters)
    lines = parameter_lines(request.parameters)
    # One entry per non-empty parameter, under its label (or its own name when unknown).
    assert len(lines) == sum(1 for _, v in request.parameters if v)
    shown = "\n".join(v for _, vs in lines for v in vs)
    for value in parameters.values():
        if isinstance(value, list):
            assert all(str(item) in shown for item in value)
        elif (
            isinstance(value, str)
            and value
            and value[:1] not in "[({"
            and value
            not in (
                "True",
                "False",
            )
        ):
            assert value in shown
