"""The installed ``keystead`` command as a subprocess: the documented commands with secrets from
the environment, JSON listings, one-line errors with exit 1, usage errors with exit 2, failures
that change nothing, and no secret ever printed."""

from __future__ import annotations

import ctypes.util
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.domain.fingerprints import hex_groups
from app.paths import Home
from tests.hsm.kit import MODULE, peer_keys, peer_public_key, pkcs11_tool, spki

pytestmark = pytest.mark.e2e

KEYSTEAD = Path(sys.executable).with_name("keystead")
PASSPHRASE = "SENTINEL-cli-passphrase-91e4"
PIN = "SENTINEL-cli-pin-4412"
SO_PIN = "SENTINEL-cli-sopin-7733"
WRONG_PIN = "SENTINEL-cli-wrongpin-2291"
WRONG_PASSPHRASE = "SENTINEL-cli-wrongpass-8c1e"
SENTINELS = (
    PASSPHRASE,
    PIN,
    SO_PIN,
    WRONG_PIN,
    WRONG_PASSPHRASE,
    "SENTINEL-cli-witness-5e5e",
)
TOKEN = "Vault"
ROW_FIELDS = ("id", "name", "algorithm", "state", "token", "created_at")


def find_libz() -> str:
    """A shared library that is certainly not a PKCS#11 module."""
    name = ctypes.util.find_library("z") or "libz.so.1"
    for directory in (
        "/usr/lib/x86_64-linux-gnu",
        "/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ):
        if (Path(directory) / name).exists():
            return str(Path(directory) / name)
    raise AssertionError(f"{name} not found")


class Cli:
    """Runs ``keystead --home HOME ...`` with the automation variables set."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("KEYSTEAD_") and k != "SOFTHSM2_CONF"
        }
        self.env.update(
            {
                "KEYSTEAD_OPERATOR": "officer",
                "KEYSTEAD_PASSPHRASE": PASSPHRASE,
                "KEYSTEAD_PIN": PIN,
                "KEYSTEAD_SO_PIN": SO_PIN,
            }
        )
        self.outputs: list[str] = []

    def run(
        self,
        *args: str,
        expect: int = 0,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        **changes: str,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(KEYSTEAD), "--home", str(self.home), *args],
            env={**(self.env if env is None else env), **changes},
            capture_output=True,
            text=True,
            timeout=300,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            check=False,
        )
        self.outputs += [result.stdout, result.stderr]
        assert result.returncode == expect, (args, result.stdout, result.stderr)
        if expect == 0:
            assert result.stderr == "", result.stderr
        elif expect == 1:
            lines = result.stderr.splitlines()
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith("keystead: error: ") and lines[0].strip() != lines[0][:17]
            assert result.stdout == ""
        elif expect == 2:
            assert "usage: keystead" in result.stderr and "error:" in result.stderr
            assert "Traceback" not in result.stderr and result.stdout == ""
        return result

    def error(self, *args: str, **changes: str) -> str:
        """The one error line of a command that must fail with exit 1."""
        return self.run(*args, expect=1, **changes).stderr.strip()

    def json(self, *args: str, **changes: str) -> Any:
        return json.loads(self.run("--json", *args, **changes).stdout)

    def files(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.home)): p.read_bytes()
            for p in sorted(self.home.rglob("*"))
            # (unlock-failures.json is the intended record of wrong passphrases)
            if p.is_file() and not p.name.endswith(".lock") and p.name != "unlock-failures.json"
        }

    def assert_no_secret_printed(self) -> None:
        for text in self.outputs:
            for sentinel in SENTINELS:
                assert sentinel not in text, f"{sentinel!r} printed"


@pytest.fixture
def bare_cli(tmp_path: Path) -> Iterator[Cli]:
    assert KEYSTEAD.is_file(), "the keystead entry point is not installed in the venv"
    cli = Cli(tmp_path / "home")
    yield cli
    cli.assert_no_secret_printed()


@pytest.fixture
def cli(bare_cli: Cli) -> Cli:
    created = bare_cli.json("init", "--operator", "officer", "--soft-token", TOKEN)
    assert created["home"] == str(bare_cli.home.resolve())
    assert created["operator"] == "officer"
    assert [t["label"] for t in created["tokens"]] == [TOKEN]
    return bare_cli


WITNESS = "witness"
WITNESS_PASS = "SENTINEL-cli-witness-5e5e"


def with_witness(cli: Cli) -> Cli:
    """A second person for dual control: enrolled by the sole officer (passphrase on stdin),
    then named as the approver for automation (the default policy is unchanged)."""
    cli.run(
        "operators",
        "add",
        WITNESS,
        "--role",
        "security-officer,key-custodian",
        stdin=WITNESS_PASS + "\n",
    )
    cli.env.update({"KEYSTEAD_APPROVER": WITNESS, "KEYSTEAD_APPROVER_PASSPHRASE": WITNESS_PASS})
    return cli


def generate(cli: Cli, algorithm: str, name: str, *more: str) -> dict[str, Any]:
    row: dict[str, Any] = cli.json(
        "keys", "generate", "--token", TOKEN, "--algorithm", algorithm, "--name", name, *more
    )
    return row


def peer(cli: Cli, *args: str) -> str:
    return pkcs11_tool(cli.home, "--token-label", TOKEN, *args, pin=PIN)


# --- the documented commands ------------------------------------------------------------------


def test_init_lays_out_the_home(cli: Cli) -> None:
    home = Home(cli.home)
    assert home.database.is_file() and home.keyslots.is_file()
    assert not home.database.read_bytes().startswith(b"SQLite format 3")
    assert f"directories.tokendir = {home.softhsm_tokens}" in home.softhsm_conf.read_text()
    assert cli.home.stat().st_mode & 0o777 == 0o700
    assert home.database.stat().st_mode & 0o077 == 0  # the CLI's umask keeps files private
    text = cli.run("tokens", "list").stdout
    assert text.splitlines()[0].split() == ["LABEL", "SERIAL", "MODEL", "LOGIN", "OBJECTS", "FLAGS"]
    assert TOKEN in text


def test_tokens_list_json(cli: Cli) -> None:
    [token] = cli.json("tokens", "list")
    assert token["label"] == TOKEN and token["module"] == MODULE
    assert len(token["serial"]) == 16 and int(token["serial"], 16) >= 0
    assert {"token initialised", "login required", "user PIN initialised"} <= set(token["flags"])
    assert token["pin_failures"] == 0
    # KEYSTEAD_PIN is the audit token's PIN: the listing logs in to it, and counts its objects
    # (the workstation's two audit keys' three objects and the checkpoints).
    assert token["logged_in"] is True and token["objects"] >= 3
    [module] = cli.json("modules", "list")
    assert (module["path"], module["embedded"], module["error"]) == (MODULE, True, None)
    assert "SoftHSM" in module["manufacturer"] and module["description"]


def test_backup_able_ed25519_is_refused_at_generation(cli: Cli) -> None:
    """Outside testers: '--backup-able' on Ed25519 was accepted though no backup can wrap it."""
    before = peer_keys(cli.home, TOKEN, PIN)
    args = ("keys", "generate", "--token", TOKEN, "--algorithm", "ED25519", "--name", "ed")
    refusal = cli.error(*args, "--backup-able")
    assert "cannot be made backup-able" in refusal and "without 'backup-able'" in refusal
    assert "\n" not in refusal and "Traceback" not in refusal
    assert cli.json("keys", "list") == []
    assert peer_keys(cli.home, TOKEN, PIN) == before
    assert generate(cli, "ED25519", "ed")["extractable"] is False  # without it: made


def test_the_error_line_comes_before_the_warnings(cli: Cli, tmp_path: Path) -> None:
    """Outside testers: a WARNING log line was printed above the error, so the first line an
    officer read was not what went wrong. Here a registered module whose file is gone warns at
    every start; a refused command prints its error first, the warning after it (once, with
    what to do); a command that works prints the warning at its end."""
    import shutil
    import subprocess

    gone = tmp_path / "vendor-pkcs11.so"
    shutil.copy(MODULE, gone)
    cli.run("modules", "add", str(gone))
    gone.unlink()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KEYSTEAD), "--home", str(cli.home), *args],
            env=cli.env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    refused = run("keys", "show", "no-such-key")
    lines = refused.stderr.splitlines()
    assert (
        refused.returncode == 1
        and lines[0] == "keystead: error: No key with id or name 'no-such-key'."
    )
    warnings = lines[1:]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING ")
    assert str(gone) in warnings[0] and f"keystead modules remove {gone}" in warnings[0]
    listed = run("keys", "list")
    assert listed.returncode == 0 and listed.stderr.splitlines() == warnings
    removed = run("modules", "remove", str(gone))  # and then the start is quiet again
    assert removed.returncode == 0 and removed.stderr.splitlines() == warnings
    assert run("keys", "list").stderr == ""


def test_generate_list_and_show(cli: Cli) -> None:
    ec = generate(cli, "EC-P256", "root-sign")
    aes = generate(cli, "aes-256", "data-kek", "--purpose", "key-wrapping", "--backup-able")
    assert (ec["algorithm"], ec["purpose"], ec["extractable"]) == ("EC-P256", "signing", False)
    assert (aes["algorithm"], aes["purpose"], aes["extractable"]) == (
        "AES-256",
        "key-wrapping",
        True,
    )
    assert ec["kcv"] is None and len(ec["fingerprint"]) == 64
    assert aes["fingerprint"] is None and len(aes["kcv"]) == 6

    rows = cli.json("keys", "list")
    assert sorted(r["name"] for r in rows) == ["data-kek", "root-sign"]
    for row in rows:
        for field in ROW_FIELDS:
            assert row[field], field
        uuid.UUID(row["id"])
        assert row["state"] == "PRE_ACTIVE" and row["token"] == TOKEN
        assert row["presence"] == "present"
        assert row["kcv"] or row["fingerprint"]
        assert datetime.fromisoformat(row["created_at"]).utcoffset() is not None
        made = ec if row["name"] == "root-sign" else aes
        assert {k: row[k] for k in made} == made  # listing and generation agree
    assert [r["name"] for r in cli.json("keys", "list", "--filter", "WRAP")] == ["data-kek"]
    assert cli.json("keys", "list", "--filter", "no such text") == []

    # pkcs11-tool sees both keys under their names.
    seen = {(o.label, o.kind) for o in peer_keys(cli.home, TOKEN, PIN)}
    assert {("root-sign", "Private"), ("root-sign", "Public"), ("data-kek", "Secret")} <= seen

    shown = cli.json("keys", "show", "root-sign")
    assert shown["id"] == ec["id"] and shown["presence"] == "present"
    private, public = (
        shown["token_attributes"]["PRIVATE_KEY"],
        shown["token_attributes"]["PUBLIC_KEY"],
    )
    assert private["SIGN"] is True and private["DECRYPT"] is False
    assert private["SENSITIVE"] is True and private["NEVER_EXTRACTABLE"] is True
    assert public["VERIFY"] is True and public["ENCRYPT"] is False
    assert len(shown["identifier_words"]) == 32
    text = cli.run("keys", "show", aes["id"]).stdout
    assert "read aloud" in text and f"kcv: {aes['kcv']}" in text
    shown_ec = cli.run("keys", "show", ec["id"]).stdout  # grouped as the ceremony shows it
    assert f"fingerprint: {hex_groups(bytes.fromhex(ec['fingerprint']))}" in shown_ec
    assert "EXTRACTABLE        True" in text and "NEVER_EXTRACTABLE  False" in text
    listing = cli.run("keys", "list").stdout
    assert listing.splitlines()[0].split()[:4] == ["NAME", "ALGORITHM", "PURPOSE", "STATE"]


def test_adopt_a_key_pkcs11_tool_made(cli: Cli, tmp_path: Path) -> None:
    peer(cli, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "0a0b", "--label", "peer-key")
    rows = cli.json("keys", "list")
    assert [(r["name"], r["presence"], r["cka_id"], r["algorithm"]) for r in rows] == [
        ("peer-key", "unmanaged", "0a0b", "EC-P256")
    ]
    assert rows[0]["id"] is None and rows[0]["state"] is None
    adopted = cli.json(
        "keys",
        "adopt",
        "--token",
        TOKEN,
        "--id",
        "0a0b",
        "--name",
        "peer-256",
        "--purpose",
        "signing",
    )
    assert (adopted["name"], adopted["algorithm"], adopted["state"]) == (
        "peer-256",
        "EC-P256",
        "PRE_ACTIVE",
    )
    exported = peer_public_key(Home(cli.home), "0a0b", tmp_path / "pub", TOKEN, PIN)
    assert adopted["fingerprint"] == hashlib.sha256(spki(exported)).hexdigest()
    rows = cli.json("keys", "list")
    assert [(r["name"], r["presence"], r["id"]) for r in rows] == [
        ("peer-256", "present", adopted["id"])
    ]
    refused = cli.error("keys", "adopt", "--token", TOKEN, "--id", "0a0b")
    assert "already managed" in refused


# --- errors: one line, exit 1, nothing changed ------------------------------------------------


def test_wrong_passphrase_and_unknown_operator(cli: Cli) -> None:
    generate(cli, "AES-128", "k")
    before = cli.files()
    assert "is wrong" in cli.error("keys", "list", KEYSTEAD_PASSPHRASE=WRONG_PASSPHRASE)
    assert "set but empty" in cli.error("keys", "list", KEYSTEAD_PASSPHRASE="")
    assert "no operator named 'nobody'" in cli.error("keys", "list", KEYSTEAD_OPERATOR="nobody")
    assert "no operator named 'nobody'" in cli.error("--operator", "nobody", "tokens", "list")
    assert cli.files() == before
    assert [r["name"] for r in cli.json("keys", "list")] == ["k"]


def test_a_missing_secret_without_a_terminal_is_a_clear_error(cli: Cli) -> None:
    env = {k: v for k, v in cli.env.items() if k != "KEYSTEAD_PASSPHRASE"}
    assert "KEYSTEAD_PASSPHRASE" in cli.run("keys", "list", expect=1, env=env).stderr
    env = {k: v for k, v in cli.env.items() if k != "KEYSTEAD_OPERATOR"}
    assert "KEYSTEAD_OPERATOR" in cli.run("keys", "list", expect=1, env=env).stderr


def test_wrong_pins_are_counted_across_runs(cli: Cli) -> None:
    args = ("keys", "generate", "--token", TOKEN, "--algorithm", "AES-128", "--name", "k")
    first = cli.error(*args, KEYSTEAD_PIN=WRONG_PIN)
    assert "Wrong PIN" in first and "(1 failure in a row)" in first
    second = cli.error(*args, KEYSTEAD_PIN=WRONG_PIN)
    assert "(2 failures in a row)" in second and "1 more try" in second
    [token] = cli.json("tokens", "list", KEYSTEAD_PIN="")  # an empty PIN skips the login
    assert token["pin_failures"] == 2 and token["logged_in"] is False
    assert cli.json("keys", "list") == []  # nothing was generated (this run logs in)
    generate(cli, "AES-128", "k")  # the right PIN works and clears the count
    assert cli.json("tokens", "list", KEYSTEAD_PIN="")[0]["pin_failures"] == 0
    logins = cli.json("audit", "list", "--action", "token.login")
    assert [(e["outcome"], e["details"].get("failures")) for e in logins][-4:] == [
        ("failed", 1),
        ("failed", 2),
        ("success", None),  # keys list
        ("success", None),  # keys generate
    ]


def test_refusals_of_keys_tokens_and_modules(cli: Cli) -> None:
    generate(cli, "AES-128", "k")
    before = cli.json("keys", "list")
    duplicate = cli.error(
        "keys", "generate", "--token", TOKEN, "--algorithm", "EC-P256", "--name", "k"
    )
    assert "already exists" in duplicate
    assert "No key with id or name 'nope'" in cli.error("keys", "show", "nope")
    missing_token = cli.error(
        "keys", "generate", "--token", "Nope", "--algorithm", "AES-128", "--name", "x"
    )
    assert "No token labelled or numbered 'Nope'" in missing_token
    assert "cannot be used for" in cli.error(
        "keys",
        "generate",
        "--token",
        TOKEN,
        "--algorithm",
        "EC-P256",
        "--name",
        "x",
        "--purpose",
        "encryption",
    )
    assert "empty" in cli.error(
        "keys", "generate", "--token", TOKEN, "--algorithm", "AES-128", "--name", " "
    )
    assert cli.json("keys", "list") == before

    assert "No PKCS#11 module at /no/such/libpkcs11.so" in cli.error(
        "modules", "add", "/no/such/libpkcs11.so"
    )
    libz = find_libz()
    not_pkcs11 = cli.error("modules", "add", libz)
    assert libz in not_pkcs11 and "could not be loaded as a PKCS#11 module" in not_pkcs11
    assert [m["path"] for m in cli.json("modules", "list")] == [MODULE]


def test_init_twice_is_refused_and_changes_nothing(cli: Cli) -> None:
    before = cli.files()
    assert "already exists" in cli.error("init", "--operator", "again")
    assert "already exists" in cli.error("init", "--operator", "officer", "--soft-token", "T2")
    assert cli.files() == before


def test_a_damaged_database_is_reported_and_left_as_it_is(cli: Cli) -> None:
    generate(cli, "AES-128", "k")
    db = cli.home / "keystead.db"
    data = bytearray(db.read_bytes())
    data[len(data) // 2] ^= 0x01
    db.write_bytes(bytes(data))
    message = cli.error("keys", "list")
    assert "damaged" in message and "backup" in message
    assert "damaged" in cli.error("tokens", "list")
    assert db.read_bytes() == bytes(data)
    assert sorted(p.name for p in cli.home.iterdir()) == [
        "keyslots.json",
        "keystead.db",
        "keystead.lock",
        "softhsm",
        "unlock-failures.json",  # kept from the earlier unlocks (never removed: F17)
    ]


def test_a_missing_keyslot_file_is_named_not_called_no_workstation(cli: Cli) -> None:
    """Attack report F8: without keyslots.json 'keys list' said "No workstation here …
    Initialise one first" while init said one exists. Both now agree on what is wrong."""
    generate(cli, "AES-128", "k")
    slots = cli.home / "keyslots.json"
    kept = slots.read_bytes()
    slots.unlink()
    message = cli.error("keys", "list")
    assert "keyslot file" in message and "is missing" in message and "Initialise" not in message
    assert "already exists" in cli.error("init", "--operator", "officer", "--soft-token", "x")
    slots.write_bytes(kept)  # put back from the same copy: everything is there
    assert [k["name"] for k in cli.json("keys", "list")] == ["k"]


def test_a_refused_soft_token_creates_nothing(bare_cli: Cli) -> None:
    message = bare_cli.error(
        "init", "--operator", "officer", "--soft-token", TOKEN, KEYSTEAD_SO_PIN="12"
    )
    assert "SO PIN" in message
    assert not (bare_cli.home / "keystead.db").exists()
    assert not (bare_cli.home / "keyslots.json").exists()
    bare_cli.json("init", "--operator", "officer", "--soft-token", TOKEN)  # now it works
    assert [t["label"] for t in bare_cli.json("tokens", "list")] == [TOKEN]


def test_commands_on_a_home_without_a_workstation(bare_cli: Cli) -> None:
    assert "Initialise one first" in bare_cli.error("keys", "list")
    assert not bare_cli.home.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "generate", "--token", TOKEN, "--algorithm", "DES", "--name", "x"),
        ("keys", "generate", "--token", TOKEN, "--algorithm", "AES-128"),
        (
            "keys",
            "generate",
            "--token",
            TOKEN,
            "--algorithm",
            "AES-128",
            "--name",
            "x",
            "--purpose",
            "wrapping",
        ),
        ("keys",),
        ("keys", "frobnicate"),
        ("--bogus", "tokens", "list"),
        (),
    ],
)
def test_usage_errors_exit_2_and_change_nothing(bare_cli: Cli, args: tuple[str, ...]) -> None:
    result = bare_cli.run(*args, expect=2)
    if "DES" in args:
        assert "Unknown algorithm 'DES'" in result.stderr
    assert not bare_cli.home.exists()


# --- lifecycle commands -----------------------------------------------------------------------


def test_lifecycle_commands(cli: Cli) -> None:
    with_witness(cli)
    generate(cli, "AES-128", "k")
    assert "ACTIVE" in cli.run("keys", "activate", "k").stdout
    refused = cli.error("keys", "destroy", "k", "--confirm", "k")
    assert "'k'" in refused and "ACTIVE" in refused and "destroy" in refused
    cli.run("keys", "suspend", "k", expect=2)  # --reason is required
    cli.run("keys", "suspend", "k", "--reason", "investigation")
    cli.run("keys", "compromise", "k", "--reason", "leak", "--date", "not-a-date", expect=2)
    said = cli.run("keys", "compromise", "k", "--reason", "leak", "--date", "2026-01-02").stdout
    assert "Compromise date: 2026-01-02" in said  # the date given, said back
    shown = cli.run("keys", "show", "k").stdout  # new-user trial F27: dates were not shown
    assert "compromise date: 2026-01-02" in shown and "activation date:" in shown
    generate(cli, "AES-128", "undated")
    said = cli.run("keys", "compromise", "undated", "--reason", "leak").stdout
    assert "no --date was given" in said  # the default (creation time) is never silent
    cli.error("keys", "destroy", "k", "--confirm", "K")
    cli.run("keys", "destroy", "k", "--confirm", "k")
    history = cli.json("keys", "history", "k")
    assert [(e["action"], e["outcome"]) for e in history] == [
        ("key.generate", "success"),
        ("key.activate", "success"),
        ("key.destroy", "denied"),
        ("key.suspend", "success"),
        ("key.compromise", "success"),
        ("key.destroy", "denied"),
        ("key.destroy", "success"),
    ]
    final = cli.json("keys", "show", "k")
    assert final["state"] == "DESTROYED_COMPROMISED"
    assert final["compromise_date"].startswith("2026-01-02")
    # A successor's activation says that it deactivated the key it replaces (new-user trial:
    # only "Key 'x-v2' is now ACTIVE." was printed).
    generate(cli, "AES-128", "x")
    cli.run("keys", "activate", "x")
    cli.run("keys", "rotate", "x")
    said = cli.run("keys", "activate", "x-v2").stdout
    assert "Key 'x-v2' is now ACTIVE" in said
    assert "Key 'x', the key it replaces, is now DEACTIVATED." in said


# --- token administration ---------------------------------------------------------------------

OTHER_SO = "SENTINEL-cli-otherso-5151"
OTHER_PIN = "SENTINEL-cli-otherpin-6262"
NEW_PIN = "SENTINEL-cli-newpin-7373"
NEW_SO = "SENTINEL-cli-newso-8484"


def peer_login(cli: Cli, label: str, pin: str) -> bool:
    result = subprocess.run(
        ["pkcs11-tool", "--module", MODULE, "--token-label", label, "--login", "--pin", pin, "-O"],
        env={"SOFTHSM2_CONF": str(Home(cli.home).softhsm_conf), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def test_tokens_show_reports_details_mechanisms_and_the_probe(cli: Cli) -> None:
    shown = cli.json("tokens", "show", TOKEN)
    assert shown["label"] == TOKEN and shown["logged_in"] is True
    assert shown["pin_length"] == [4, 255]
    names = {m["name"]: m for m in shown["mechanisms"]}
    assert {"wrap", "unwrap"} <= set(names["AES_KEY_WRAP_PAD"]["can"])
    assert "generate key pair" in names["EC_KEY_PAIR_GEN"]["can"]
    capabilities = shown["capabilities"]
    assert capabilities["private_key_wrap"] == {"RSA": True, "EC": True, "Ed25519": False}
    assert capabilities["eddsa"] is True and capabilities["check_value"] is True
    first = shown["probed_at"]
    assert cli.json("tokens", "show", TOKEN)["probed_at"] == first  # probed once, then kept
    assert cli.json("tokens", "show", TOKEN, "--probe")["probed_at"] != first
    text = cli.run("tokens", "show", TOKEN).stdout
    assert "Wrapping an Ed25519 private key (0x210A): does not work" in text
    assert "PIN length 4–255" in text


def test_token_administration_commands(cli: Cli) -> None:
    with_witness(cli)
    made = cli.json(
        "tokens",
        "create-soft",
        "--label",
        "Spare",
        # One rule: KEYSTEAD_PIN / KEYSTEAD_SO_PIN are the PINs of the token a command names or
        # creates (as for init --soft-token); the audit token's PIN is then its own variable.
        KEYSTEAD_SO_PIN=OTHER_SO,
        KEYSTEAD_PIN=OTHER_PIN,
        KEYSTEAD_AUDIT_PIN=PIN,
    )
    assert peer_login(cli, "Spare", OTHER_PIN)
    # These commands name Spare, so KEYSTEAD_PIN is not the audit token's: its own variable.
    cli.env["KEYSTEAD_AUDIT_PIN"] = PIN
    # Initialising needs the current label typed again, and the right SO PIN.
    assert "--confirm 'Spare'" in cli.error("tokens", "init", "Spare", "--label", "Fresh")
    wrong = cli.error(
        "tokens",
        "init",
        "Spare",
        "--label",
        "Fresh",
        "--confirm",
        "spare",
        KEYSTEAD_SO_PIN=OTHER_SO,
    )
    assert "Type the token's label 'Spare'" in wrong
    assert "SO PIN" in cli.error(
        "tokens", "init", "Spare", "--label", "Fresh", "--confirm", "Spare"
    )  # KEYSTEAD_SO_PIN is the first token's, not this one's
    cli.run(
        "tokens",
        "init",
        "Spare",
        "--label",
        "Fresh",
        "--confirm",
        "Spare",
        KEYSTEAD_SO_PIN=OTHER_SO,
    )
    labels = {t["label"]: t for t in cli.json("tokens", "list")}
    assert "Spare" not in labels and labels["Fresh"]["serial"] == made["serial"]
    assert "user PIN initialised" not in labels["Fresh"]["flags"]
    cli.run("tokens", "init-pin", "Fresh", KEYSTEAD_SO_PIN=OTHER_SO, KEYSTEAD_NEW_PIN=NEW_PIN)
    assert peer_login(cli, "Fresh", NEW_PIN)
    cli.run(
        "tokens",
        "change-pin",
        "Fresh",
        KEYSTEAD_AUDIT_PIN=PIN,
        KEYSTEAD_PIN=NEW_PIN,
        KEYSTEAD_NEW_PIN=OTHER_PIN,
    )
    assert peer_login(cli, "Fresh", OTHER_PIN) and not peer_login(cli, "Fresh", NEW_PIN)
    cli.run(
        "tokens", "change-so-pin", "Fresh", KEYSTEAD_SO_PIN=OTHER_SO, KEYSTEAD_NEW_SO_PIN=NEW_SO
    )
    assert "SO PIN" in cli.error(
        "tokens", "init-pin", "Fresh", KEYSTEAD_SO_PIN=OTHER_SO, KEYSTEAD_NEW_PIN=NEW_PIN
    )
    short = cli.error(
        "tokens",
        "change-pin",
        "Fresh",
        KEYSTEAD_PIN=OTHER_PIN,
        KEYSTEAD_NEW_PIN="123",
        KEYSTEAD_AUDIT_PIN=PIN,
    )
    assert "4 to 255 bytes" in short and "this one has 3 bytes (3 characters)" in short
    refused = cli.error("tokens", "init", TOKEN, "--label", "X", "--confirm", TOKEN)
    assert "audit keys" in refused and "KS-TOKEN-INIT-AUDIT" in refused
    actions = [
        (e["action"], e["outcome"])
        for e in cli.json("audit", "list")
        if e["action"].startswith("token.") and e["action"] != "token.login"
    ]
    assert actions == [
        ("token.create-soft", "success"),  # the first token, at init
        ("token.create-soft", "success"),
        ("token.init", "denied"),
        ("token.init", "failed"),
        ("token.init", "success"),
        ("token.init-pin", "success"),
        ("token.change-pin", "success"),
        ("token.change-so-pin", "success"),
        ("token.init-pin", "failed"),
        ("token.init", "denied"),
    ]
    verified = cli.run("audit", "verify").stdout
    # The entries without a token MAC are counted and explained (unlock, login, lock by design).
    assert "carry no token MAC by design" in verified
    assert "Entries without a token MAC (" in verified and "workstation.unlock" in verified
    document = cli.json("audit", "verify")
    assert sum(document["unsealed_by_action"].values()) == len(document["unsealed"]) > 0


def test_modules_remove_and_offered(cli: Cli) -> None:
    offered = cli.json("modules", "offered")
    assert all(o["path"] != MODULE for o in offered)  # SoftHSM is configured already
    assert "not a configured module" in cli.error("modules", "remove", "/nope.so")
    cli.run("modules", "remove", MODULE)
    assert cli.json("modules", "list") == []
    assert cli.json("tokens", "list") == []
    assert cli.json("keys", "list") == []


def test_rebind_commands_refuse_without_a_twin(cli: Cli) -> None:
    generate(cli, "EC-P256", "root-sign")
    assert cli.json("keys", "rebind-candidates") == []
    typo = cli.error("keys", "rebind", "root-sign", "--token", TOKEN, "--confirm", "root")
    assert "Type the key's name 'root-sign'" in typo
    none = cli.error("keys", "rebind", "root-sign", "--token", TOKEN, "--confirm", "root-sign")
    assert "holds no unmanaged key" in none
    denied = cli.json("audit", "list", "--action", "key.rebind")
    assert [e["outcome"] for e in denied] == ["denied"]


# --- several processes at once -----------------------------------------------------------------


def test_parallel_commands_on_one_home_take_turns(cli: Cli) -> None:
    """The issue's reproduction: eight ``keys generate`` at once on one home. Each waits for
    the workstation in turn; none fails with a false token error; the chain stays intact."""
    procs = [
        subprocess.Popen(
            [
                str(KEYSTEAD),
                "--home",
                str(cli.home),
                "--wait",
                "600",
                "keys",
                "generate",
                "--token",
                TOKEN,
                "--algorithm",
                "AES-256",
                "--name",
                f"parallel-{n}",
            ],
            env=cli.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    for code, out, err in results:
        cli.outputs += [out, err]
        assert (code, err) == (0, ""), err
    names = sorted(r["name"] for r in cli.json("keys", "list"))
    assert names == [f"parallel-{n}" for n in range(8)]
    cli.run("audit", "verify")


def test_a_second_command_is_told_which_process_has_the_workstation(cli: Cli) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from app.storage.home_lock import HomeLock\n"
            "HomeLock.acquire(Path(sys.argv[1]), 'keystead-gui')\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
            str(cli.home),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = cli.files()
        error = cli.error("--wait", "0", "keys", "list")
        assert f"is in use by process {holder.pid} (keystead-gui)" in error
        assert cli.files() == before
    finally:
        holder.kill()
        holder.wait()
    cli.run("keys", "list")


# --- issue 9, smaller items ---------------------------------------------------------------------


def test_init_takes_the_operator_from_the_environment_and_needs_an_audit_token(
    bare_cli: Cli,
) -> None:
    """Issue 9: `init` without a token made a workstation that could record nothing (every
    sealed entry refused afterwards). It is refused, before any prompt, with both ways to give
    it an audit token, and nothing is created; KEYSTEAD_OPERATOR names the first officer (no
    --operator needed)."""
    refused = bare_cli.error("init")
    assert "needs an audit token" in refused
    assert "--soft-token LABEL" in refused and "--audit-token TOKEN --module PATH" in refused
    assert "Nothing was created" in refused
    assert not bare_cli.home.exists() or not any(bare_cli.home.iterdir())
    text = bare_cli.run("init", "--soft-token", "Later").stdout  # KEYSTEAD_PIN/SO_PIN
    assert "for security officer officer" in text
    assert "Token 'Later'" in text
    assert bare_cli.json("audit", "verify")["ok"] is True
    assert peer_login(bare_cli, "Later", PIN)


def test_audit_list_until_a_date_means_the_end_of_that_day_utc(cli: Cli) -> None:
    today = datetime.now(UTC).date().isoformat()
    rows = cli.json("audit", "list", "--since", today, "--until", today)
    assert rows and {r["action"] for r in rows} >= {"workstation.initialize"}
    text = cli.run("audit", "list", "--since", today, "--until", today).stdout
    assert text.splitlines()[0] == (
        f"Entries from {today}T00:00:00+00:00 to {today}T23:59:59.999999+00:00 (UTC)"
    )
    assert cli.json("audit", "list", "--until", "2000-01-01") == []


def test_keys_list_shows_the_cka_id_of_unmanaged_objects(cli: Cli) -> None:
    peer(cli, "--keygen", "--key-type", "AES:32", "--label", "foreign", "--id", "c0ffee")
    peer(cli, "--keypairgen", "--key-type", "rsa:2048", "--label", "dup", "--id", "788908")
    peer(cli, "--keypairgen", "--key-type", "rsa:2048", "--label", "dup", "--id", "788908")
    text = cli.run("keys", "list").stdout
    header = text.splitlines()[0].split()
    assert "CKA_ID" in header and "OBJECT" in header
    foreign = next(line for line in text.splitlines() if line.startswith("foreign"))
    assert "c0ffee" in foreign and "EXPOSED" in foreign  # pkcs11-tool AES: not sensitive
    dups = [line for line in text.splitlines() if line.startswith("dup")]
    assert len(dups) == 2 and all("ID SHARED" in line and "788908" in line for line in dups)
    error = cli.error("keys", "adopt", "--token", TOKEN, "--id", "788908", "--purpose", "signing")
    assert "2 keys" in error and "--key" in error
    rows = [r for r in cli.json("keys", "list") if r["name"] == "dup"]
    chosen = rows[0]["fingerprint"]
    adopted = cli.json(
        "keys",
        "adopt",
        "--token",
        TOKEN,
        "--id",
        "788908",
        "--key",
        chosen[:16],
        "--purpose",
        "signing",
        "--new-id",
        "--name",
        "dup-1",
    )
    assert adopted["fingerprint"] == chosen and adopted["cka_id"] != "788908"
    shown = cli.run("keys", "adopt", "--token", TOKEN, "--id", "c0ffee", "--dry-run").stdout
    assert "EXPOSED: not sensitive" in shown and "purposes its usage flags fit" in shown
    assert "Already adopted" not in shown
    # Outside testers: a dry run on a key already adopted showed the analysis as if it were
    # new. It says it is managed, by which name, and that adopting would change nothing; the
    # adoption itself is refused with the same name. The same for a key generated here.
    cli.run(
        "keys", "adopt", "--token", TOKEN, "--id", "c0ffee", "--purpose", "encryption",
        "--accept-exposed", "--name", "foreign-adopted",
    )
    again = ("keys", "adopt", "--token", TOKEN, "--id", "c0ffee")
    shown = cli.run(*again, "--dry-run").stdout
    assert shown.startswith("Already adopted:") and "'foreign-adopted'" in shown
    assert "EXPOSED" not in shown and "would change nothing" in shown
    assert cli.json(*again, "--dry-run")["managed_as"] == "foreign-adopted"
    refused = cli.error(*again, "--purpose", "encryption", "--accept-exposed")
    assert "already managed as key 'foreign-adopted'" in refused
    made = generate(cli, "AES-128", "made-here")
    shown = cli.run("keys", "adopt", "--token", TOKEN, "--id", made["cka_id"], "--dry-run").stdout
    assert shown.startswith("Already adopted:") and "'made-here'" in shown


def test_generate_says_the_purpose_it_chose_and_whether_it_can_be_backed_up(cli: Cli) -> None:
    # New-user trial: without --purpose the key got one, and the output named neither it nor
    # backup-ability, though neither can change afterwards.
    said = cli.run(
        "keys", "generate", "--token", TOKEN, "--algorithm", "AES-256", "--name", "np"
    ).stdout
    assert "purpose encryption" in said and "can never be backed up" in said
    said = cli.run(
        "keys", "generate", "--token", TOKEN, "--algorithm", "AES-256", "--name", "wk",
        "--purpose", "key-wrapping", "--backup-able",
    ).stdout
    assert "purpose key-wrapping" in said and "can be backed up" in said
