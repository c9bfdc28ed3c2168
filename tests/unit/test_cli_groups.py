"""The command-group table of ``keystead`` (``app.cli.main.GROUPS``) against what the group
modules register: ``--help`` lists the groups from the table without importing them, so the
table must name every group, with the help its module gives, and fill each one in."""

from __future__ import annotations

import argparse

import pytest

from app.cli import main as cli_main


def _fill(name: str) -> tuple[argparse.ArgumentParser, dict[str, str | None]]:
    parser = argparse.ArgumentParser(prog=f"keystead {name}")
    return parser, cli_main.fill_group(name, parser).added


@pytest.mark.parametrize("row", cli_main.GROUPS, ids=[row[0] for row in cli_main.GROUPS])
def test_each_group_is_filled_in_with_the_help_the_table_lists(
    row: tuple[str, str, str],
) -> None:
    name, helptext, _ = row
    parser, added = _fill(name)
    assert added[name] == helptext
    runs = parser.get_default("run") is not None
    commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert runs or commands, f"group {name} has neither a command nor sub-commands"


def test_the_table_names_every_group_the_modules_register() -> None:
    registered: dict[str, str | None] = {}
    for name, _, _ in cli_main.GROUPS:
        registered |= _fill(name)[1]
    table = {name: helptext for name, helptext, _ in cli_main.GROUPS}
    assert registered == table
    assert len(table) == len(cli_main.GROUPS)  # no name twice


def test_a_group_its_module_does_not_register_is_an_error_not_an_empty_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        cli_main, "GROUPS", (("ghost", "never registered", "app.cli.selftest:register"),)
    )
    with pytest.raises(RuntimeError, match="did not register the command group 'ghost'"):
        _fill("ghost")


def test_only_the_group_argparse_selects_is_filled_in() -> None:
    parser = cli_main.build_parser()
    cli_main._parse(parser, ["keys", "history", "some-key"])
    (groups,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    filled = {name for name, p in groups.choices.items() if len(p._actions) > 1}
    assert filled == {"keys"}


def test_argparse_messages_are_looked_up_once_and_read_the_same() -> None:
    import gettext

    cli_main.build_parser()
    lookup = argparse._  # type: ignore[attr-defined]
    cli_main.build_parser()
    assert argparse._ is lookup  # type: ignore[attr-defined]  # remembered once, not re-wrapped
    for text in ("usage: ", "options", "show this help message and exit"):
        assert lookup(text) == gettext.gettext(text)
