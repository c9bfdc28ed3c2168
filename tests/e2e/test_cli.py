"""The keystead CLI as a subprocess: the documented commands, JSON output, one-line errors."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import MODULE

pytestmark = pytest.mark.e2e

PASSPHRASE = "SENTINEL-cli-passphrase-91"
PIN = "SENTINEL-PIN-4412"
SO_PIN = "SENTINEL-SOPIN-7733"


class Cli:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
        self.env.update(
            {
                "KEYSTEAD_OPERATOR": "officer",
                "KEYSTEAD_PASSPHRASE": PASSPHRASE,
                "KEYSTEAD_PIN": PIN,
                "KEYSTEAD_SO_PIN": SO_PIN,
            }
        )
        self.outputs: list[str] = []

    def run(self, *args: str, expect: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "app.cli.main", "--home", str(self.home), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        self.outputs += [result.stdout, result.stderr]
        assert result.returncode == expect, (args, result.stdout, result.stderr)
        if expect == 1:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("keystead: error: "), result.stderr
        return result

    def json(self, *args: str) -> object:
        return json.loads(self.run("--json", *args).stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "home")
    cli.run("init", "--operator", "officer", "--soft-token", "Vault")
    yield cli
    for text in cli.outputs:  # no secret ever printed
        for sentinel in (PASSPHRASE, PIN, SO_PIN):
            assert sentinel not in text


def test_generate_list_show(cli: Cli) -> None:
    tokens = cli.json("tokens", "list")
    assert [t["label"] for t in tokens] == ["Vault"]  # type: ignore[index]
    ec = cli.json(
        "keys", "generate", "--token", "Vault", "--algorithm", "EC-P256", "--name", "root-sign"
    )
    aes = cli.json(
        "keys",
        "generate",
        "--token",
        "Vault",
        "--algorithm",
        "aes-256",
        "--name",
        "data-kek",
        "--purpose",
        "key-wrapping",
        "--backup-able",
    )
    rows = cli.json("keys", "list")
    assert {r["name"] for r in rows} == {"root-sign", "data-kek"}  # type: ignore[union-attr]
    for row in rows:  # type: ignore[union-attr]
        for field in ("id", "name", "algorithm", "state", "token", "created_at"):
            assert row[field], field
        assert row["state"] == "PRE_ACTIVE" and row["presence"] == "present"
        assert row["kcv"] or row["fingerprint"]
    assert ec["fingerprint"] and len(ec["fingerprint"]) == 64  # type: ignore[index]
    assert aes["kcv"] and aes["extractable"] is True  # type: ignore[index]
    only = cli.json("keys", "list", "--filter", "WRAP")
    assert [r["name"] for r in only] == ["data-kek"]  # type: ignore[union-attr]
    shown = cli.json("keys", "show", "root-sign")
    assert shown["token_attributes"]["PRIVATE_KEY"]["SIGN"] is True  # type: ignore[index]
    assert len(shown["identifier_words"]) == 32  # type: ignore[index]
    text = cli.run("keys", "show", aes["id"]).stdout  # type: ignore[index]
    assert "read aloud" in text and "NEVER_EXTRACTABLE  False" in text


def test_adopt_a_key_pkcs11_tool_made(cli: Cli) -> None:
    subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            MODULE,
            "--token-label",
            "Vault",
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            "EC:secp384r1",
            "--id",
            "beef",
            "--label",
            "peer",
        ],
        env={"SOFTHSM2_CONF": str(cli.home / "softhsm" / "softhsm2.conf"), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    rows = cli.json("keys", "list")
    assert [(r["name"], r["presence"]) for r in rows] == [("peer", "unmanaged")]  # type: ignore
    adopted = cli.json("keys", "adopt", "--token", "Vault", "--id", "beef", "--name", "peer-384")
    assert adopted["algorithm"] == "EC-P384" and adopted["state"] == "PRE_ACTIVE"  # type: ignore


def test_lifecycle_commands(cli: Cli) -> None:
    cli.run("keys", "generate", "--token", "Vault", "--algorithm", "AES-128", "--name", "k")
    assert "ACTIVE" in cli.run("keys", "activate", "k").stdout
    refused = cli.run("keys", "destroy", "k", "--confirm", "k", expect=1)
    assert "'k'" in refused.stderr and "ACTIVE" in refused.stderr and "destroy" in refused.stderr
    cli.run("keys", "suspend", "k", expect=2)  # --reason is required
    cli.run("keys", "suspend", "k", "--reason", "investigation")
    cli.run("keys", "compromise", "k", "--reason", "leak", "--date", "not-a-date", expect=2)
    cli.run("keys", "compromise", "k", "--reason", "leak", "--date", "2026-01-02")
    cli.run("keys", "destroy", "k", "--confirm", "K", expect=1)
    cli.run("keys", "destroy", "k", "--confirm", "k")
    history = cli.json("keys", "history", "k")
    assert [(e["action"], e["outcome"]) for e in history] == [  # type: ignore[union-attr]
        ("key.generate", "success"),
        ("key.activate", "success"),
        ("key.destroy", "denied"),
        ("key.suspend", "success"),
        ("key.compromise", "success"),
        ("key.destroy", "denied"),
        ("key.destroy", "success"),
    ]
    final = cli.json("keys", "show", "k")
    assert final["state"] == "DESTROYED_COMPROMISED"  # type: ignore[index]
    assert final["compromise_date"].startswith("2026-01-02")  # type: ignore[index]
    cli.run("keys", "generate", "--token", "Vault", "--algorithm", "ED25519", "--name", "s")
    cli.run("keys", "activate", "s")
    successor = cli.json("keys", "rotate", "s")
    assert successor["name"] == "s-v2" and successor["replaces"]  # type: ignore[index]
    assert cli.json("keys", "due", "--days", "2000")[0]["name"] == "s"  # type: ignore[index]


def test_errors_are_one_line_and_change_nothing(cli: Cli, tmp_path: Path) -> None:
    cli.run("keys", "generate", "--token", "Vault", "--algorithm", "AES-128", "--name", "k")
    cli.run("keys", "list", KEYSTEAD_PASSPHRASE="wrong passphrase!", expect=1)
    cli.run("keys", "list", KEYSTEAD_OPERATOR="nobody", expect=1)
    wrong = cli.run(
        "keys",
        "generate",
        "--token",
        "Vault",
        "--algorithm",
        "AES-128",
        "--name",
        "k2",
        KEYSTEAD_PIN="000000",
        expect=1,
    )
    assert "Wrong PIN" in wrong.stderr and "1 failure" in wrong.stderr
    assert (
        "already exists"
        in cli.run(
            "keys",
            "generate",
            "--token",
            "Vault",
            "--algorithm",
            "AES-128",
            "--name",
            "k",
            expect=1,
        ).stderr
    )
    cli.run(
        "keys", "generate", "--token", "Nope", "--algorithm", "AES-128", "--name", "x", expect=1
    )
    cli.run("keys", "show", "no-such-key", expect=1)
    cli.run("keys", "generate", "--token", "Vault", "--algorithm", "DES", "--name", "x", expect=2)
    assert "No PKCS#11 module" in cli.run("modules", "add", "/no/such/lib.so", expect=1).stderr
    libz = ctypes.util.find_library("z")
    not_pkcs11 = next(
        p
        for p in (
            f"/usr/lib/x86_64-linux-gnu/{libz}",
            f"/lib/x86_64-linux-gnu/{libz}",
            f"/usr/lib/aarch64-linux-gnu/{libz}",
        )
        if Path(p).exists()
    )
    assert "PKCS#11" in cli.run("modules", "add", not_pkcs11, expect=1).stderr
    assert "already exists" in cli.run("init", "--operator", "again", expect=1).stderr
    assert [r["name"] for r in cli.json("keys", "list")] == ["k"]  # type: ignore[union-attr]
    db = cli.home / "keystead.db"
    data = bytearray(db.read_bytes())
    data[len(data) // 2] ^= 1
    db.write_bytes(bytes(data))
    assert "damaged" in cli.run("keys", "list", expect=1).stderr
    assert db.read_bytes() == bytes(data)


def test_missing_secret_without_a_terminal_is_a_clear_error(cli: Cli) -> None:
    result = cli.run("keys", "list", KEYSTEAD_PASSPHRASE="", expect=1)
    assert "wrong" in result.stderr  # an empty passphrase is just a wrong one
    env = {k: v for k, v in cli.env.items() if k != "KEYSTEAD_PASSPHRASE"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "--home", str(cli.home), "keys", "list"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 1 and "KEYSTEAD_PASSPHRASE" in result.stderr
