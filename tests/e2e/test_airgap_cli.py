"""``keystead airgap`` as a subprocess, on this machine's real interfaces and in a real empty
network namespace (``unshare -n``): the status, the policy set by the security officer, and key
generation refused while connected but allowed with the network cut."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from app.services.airgap import live_interfaces
from tests.e2e.test_cli import KEYSTEAD, TOKEN, Cli

pytestmark = pytest.mark.e2e


def cut_off(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    """``keystead ARGS`` inside a new network namespace (only ``lo``, down)."""
    return subprocess.run(
        ["unshare", "-n", str(KEYSTEAD), "--home", str(cli.home), *args],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture
def bare_cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


@pytest.fixture
def cli(bare_cli: Cli) -> Cli:
    bare_cli.json("init", "--operator", "officer", "--soft-token", TOKEN)
    return bare_cli


@pytest.fixture
def namespaces() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no network namespaces here: {probe.stderr.strip()}")


@pytest.mark.usefixtures("namespaces")
def test_status_in_an_empty_namespace_is_air_gapped(bare_cli: Cli) -> None:
    result = cut_off(bare_cli, "--json", "airgap", "status")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["air_gapped"] is True
    assert shown["interfaces"] == [] and shown["problem"] is None


def test_status_here_names_the_live_interfaces(bare_cli: Cli) -> None:
    live = live_interfaces()
    if not live:
        pytest.skip("this machine has no interface up with an address")
    error = bare_cli.error("airgap", "status")
    assert error.startswith("keystead: error: not air-gapped: network up: ")
    for interface in live:
        assert interface.name in error


@pytest.mark.usefixtures("namespaces")
def test_policy_blocks_generation_until_the_network_is_cut(cli: Cli) -> None:
    assert cli.json("airgap", "policy") == {"setting": "airgap.block_sensitive", "value": "off"}
    assert cli.json("airgap", "policy", "on")["value"] == "on"
    if live_interfaces():  # a connected machine: refused, recorded, nothing made
        error = cli.error(
            "keys", "generate", "--token", TOKEN, "--algorithm", "AES-256", "--name", "k1"
        )
        assert "not air-gapped" in error and "[KS-AIRGAP]" in error
        assert cli.json("keys", "list") == []
        denied = [e for e in cli.json("audit", "list", "--action", "key.generate")]
        assert [e["outcome"] for e in denied] == ["denied"]
    made = cut_off(
        cli,
        "--json",
        "keys",
        "generate",
        "--token",
        TOKEN,
        "--algorithm",
        "AES-256",
        "--name",
        "k2",
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["name"] == "k2"
    changes = [e for e in cli.json("audit", "list", "--action", "policy.airgap")]
    assert [(e["outcome"], e["details"]["value"]) for e in changes] == [("success", "on")]
    cli.assert_no_secret_printed()
