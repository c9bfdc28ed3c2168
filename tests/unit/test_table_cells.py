"""F16: one object with a 5,000-byte label (made by another tool) widened every row of
``keys list`` to 5,000+ columns. Table cells are cut at ``MAX_CELL`` characters with "…";
the other rows keep their width; ``--json`` is untouched (it does not use the table); columns
not asked to be cut (audit details) keep every character."""

from __future__ import annotations

import pytest

from app.cli import output


def test_a_huge_label_is_cut_and_does_not_widen_other_rows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [
        {"name": "k1", "state": "ACTIVE"},
        {"name": "L" * 5000, "state": "unmanaged"},
        {"name": "k2", "state": "PRE_ACTIVE"},
    ]
    output.print_table(rows, [("name", "NAME"), ("state", "STATE")], cut=("name",))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert max(len(line) for line in lines) <= output.MAX_CELL + 2 + len("PRE_ACTIVE")
    assert lines[2].startswith("L" * (output.MAX_CELL - 1) + "…")
    assert lines[1].split() == ["k1", "ACTIVE"]


def test_a_cell_of_exactly_the_limit_is_kept_whole(capsys: pytest.CaptureFixture[str]) -> None:
    value = "a" * output.MAX_CELL
    output.print_table([{"v": value}, {"v": value + "b"}], [("v", "V")], cut=("v",))
    assert capsys.readouterr().out.splitlines()[1:] == [value, value[:-1] + "…"]


def test_columns_not_cut_keep_every_character(capsys: pytest.CaptureFixture[str]) -> None:
    """Audit details and reasons are never shortened."""
    value = "d" * 500
    output.print_table([{"v": value}], [("v", "DETAILS")])
    assert capsys.readouterr().out.splitlines()[1] == value
