"""No display: one clear line and exit 1 before Qt starts (never Qt's abort and its misleading
hint about libxcb-cursor0); a display or a display-less platform lets Qt start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ui.display import NO_DISPLAY, display_problem

GUI = Path(sys.executable).with_name("keystead-gui")


def test_no_display_variables_is_a_problem(tmp_path: Path) -> None:
    assert display_problem({}, tmp_path) == NO_DISPLAY
    assert display_problem({"QT_QPA_PLATFORM": "xcb"}, tmp_path) == NO_DISPLAY


def test_local_x_display_needs_its_socket(tmp_path: Path) -> None:
    env = {"DISPLAY": ":7"}
    assert display_problem(env, tmp_path) == NO_DISPLAY
    (tmp_path / "X7").touch()
    assert display_problem(env, tmp_path) is None
    assert display_problem({"DISPLAY": ":7.0"}, tmp_path) is None
    assert display_problem({"DISPLAY": ":8"}, tmp_path) == NO_DISPLAY


def test_wayland_display_needs_its_socket(tmp_path: Path) -> None:
    env = {"WAYLAND_DISPLAY": "wayland-0", "XDG_RUNTIME_DIR": str(tmp_path)}
    assert display_problem(env, tmp_path) == NO_DISPLAY
    (tmp_path / "wayland-0").touch()
    assert display_problem(env, tmp_path) is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, tmp_path) == NO_DISPLAY


def test_display_less_platforms_need_no_display(tmp_path: Path) -> None:
    for platform in ("offscreen", "minimal", "vnc:size=800x600"):
        assert display_problem({"QT_QPA_PLATFORM": platform}, tmp_path) is None


def test_remote_x_display_is_left_to_qt(tmp_path: Path) -> None:
    assert display_problem({"DISPLAY": "otherhost:0"}, tmp_path) is None


def test_gui_without_display_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env["KEYSTEAD_HOME"] = str(tmp_path / "home")
    result = subprocess.run(
        [str(GUI)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert result.stderr == f"keystead-gui: error: {NO_DISPLAY}\n"
    assert result.stdout == ""
    assert not (tmp_path / "home").exists()
