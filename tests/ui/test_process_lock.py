"""The GUI and a CLI command on one workstation at the same time (the common case): the CLI is
told which process has the workstation, never a false token or database error, and runs once
the window is closed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.paths import Home
from tests.ui.test_app_flow import PASSPHRASE, close_window, initialize_through_gui

pytestmark = pytest.mark.ui

KEYSTEAD = Path(sys.executable).with_name("keystead")


def cli(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
    env.update({"KEYSTEAD_OPERATOR": "Officer One", "KEYSTEAD_PASSPHRASE": PASSPHRASE})
    return subprocess.run(
        [str(KEYSTEAD), "--home", str(home.root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_a_cli_command_while_the_gui_is_open_says_who_has_the_workstation(  # type: ignore[no-untyped-def]
    qtbot, qapp, bridge, tmp_path
):
    home = Home(tmp_path / "ws")
    controller = initialize_through_gui(qtbot, qapp, bridge, home)
    events_before = home.database.read_bytes()

    for command in (["keys", "list"], ["audit", "verify"], ["tokens", "list"]):
        result = cli(home, "--wait", "0", *command)
        assert result.returncode == 1, result
        assert result.stderr.splitlines() == [
            f"keystead: error: The workstation in {home.root} is in use by process "
            f"{os.getpid()} (keystead-gui). Close or lock it there, or try again; nothing "
            "was changed."
        ]
        assert result.stdout == ""
    waited = cli(home, "--wait", "0.5", "keys", "list")
    assert waited.returncode == 1 and "(waited 0.5 s)" in waited.stderr
    assert home.database.read_bytes() == events_before  # nothing written by the refused runs

    close_window(qtbot, controller)
    done = cli(home, "--wait", "0", "keys", "list")
    assert done.returncode == 0, done.stderr
