"""scripts/setup.sh: the first run installs everything, a second run with nothing changed does
nothing and prints nothing (so ``run-gui.sh`` works offline), a changed dependency set makes the
environment again, and a failed install leaves no stamp.

A throw-away project gets the real ``scripts/setup.sh``; pip runs for real with no index, on
wheels written by ``tests/packaging/wheels.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.wheels import BACKEND_SOURCE, sha256_of, write_wheel

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = """\
[build-system]
requires = []
build-backend = "stampbackend"
backend-path = ["."]

[project]
name = "stampdemo"
version = "1.0"
dependencies = []
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    (root / "packaging").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    # dpkg is on every Debian machine: the package step runs, finds nothing missing.
    (root / "packaging" / "debian-packages.txt").write_text("dpkg  # always there\n")
    (root / "packaging" / "debian-packages-test.txt").write_text("# none\n")
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "stampbackend.py").write_text(BACKEND_SOURCE)
    shutil.copy(Path(__file__).with_name("wheels.py"), root / "wheels.py")
    (tmp_path / "wheelhouse").mkdir()
    return root


def lock(project: Path, *wheels: Path) -> None:
    lines = []
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        lines.append(f"{name}=={version} --hash=sha256:{sha256_of(wheel)}")
    (project / "packaging" / "requirements-dev.lock").write_text("\n".join(lines) + "\n")


def setup(project: Path) -> subprocess.CompletedProcess[str]:
    wheelhouse = project.parent / "wheelhouse"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheelhouse),
        "PIP_CONSTRAINT": "",
    }
    return subprocess.run(
        ["bash", "scripts/setup.sh"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def installed(project: Path) -> set[str]:
    site = next((project / ".venv" / "lib").glob("python3*/site-packages"))
    return {p.name.split("-")[0] for p in site.glob("*.dist-info")}


def test_second_run_does_nothing_and_a_changed_set_reinstalls(project: Path) -> None:
    wheelhouse = project.parent / "wheelhouse"
    first = write_wheel(wheelhouse, "stampdep", "1.0", {"stampdep.py": "VALUE = 1\n"})
    lock(project, first)

    fresh = setup(project)
    assert fresh.returncode == 0, fresh.stderr
    assert "Setting up the Python environment" in fresh.stdout
    assert {"stampdep", "stampdemo"} <= installed(project)
    marker = project / ".venv" / "left-by-test"
    marker.write_text("the environment was not made again")

    again = setup(project)
    assert again.returncode == 0, again.stderr
    assert (again.stdout, again.stderr) == ("", "")
    assert marker.exists()

    second = write_wheel(wheelhouse, "stampdep", "2.0", {"stampdep.py": "VALUE = 2\n"})
    lock(project, second)
    changed = setup(project)
    assert changed.returncode == 0, changed.stderr
    assert "Setting up the Python environment" in changed.stdout
    assert not marker.exists()
    assert "stampdep-2.0.dist-info" in {
        p.name for p in next((project / ".venv" / "lib").glob("python3*/site-packages")).iterdir()
    }

    (project / "pyproject.toml").write_text(
        PYPROJECT.replace("dependencies = []", "# edited\ndependencies = []")
    )
    edited = setup(project)
    assert "Setting up the Python environment" in edited.stdout


def test_failed_install_says_so_and_leaves_no_stamp(project: Path) -> None:
    wheel = write_wheel(project.parent / "wheelhouse", "stampdep", "1.0", {"stampdep.py": ""})
    (project / "packaging" / "requirements-dev.lock").write_text(
        f"stampdep==1.0 --hash=sha256:{'0' * 64}\n"
    )
    failed = setup(project)
    assert failed.returncode == 1
    assert "setup.sh: error: installing the Python packages failed" in failed.stderr
    assert not (project / ".venv" / "keystead-setup.stamp").exists()  # the next run tries again
    assert wheel.exists() and "DO NOT MATCH THE HASHES" in failed.stderr  # refused, not missing


def test_the_repository_lock_pins_every_distribution_with_hashes() -> None:
    """Both lock files are complete hash-pinned sets (pip refuses them otherwise)."""
    for name in ("requirements.lock", "requirements-dev.lock"):
        text = (REPO / "packaging" / name).read_text()
        pins = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
        assert pins, name
        for pin in pins:
            assert "==" in pin and pin.rstrip().endswith("\\"), pin
    runtime = (REPO / "packaging" / "requirements.lock").read_text()
    assert "pytest" not in runtime  # the bundle ships only what runs
