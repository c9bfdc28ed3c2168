"""What a ``keystead`` process imports: the parser and ``--help`` only light modules; an
ordinary command not the parts it does not use (key use, backups, certificates, pkilint).

Start-up time is what an officer feels on every command (issue 17). Timings belong in
``benchmarks/cli.py``; these tests hold the import boundary that makes them, by the module
names a real process loaded, so a heavy import slipping back in fails here."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

from tests.e2e.test_cli import KEYSTEAD, TOKEN, Cli, generate

# Never needed to parse arguments or print help.
HEAVY = (
    "pkcs11",
    "sqlcipher3",
    "cryptography",
    "pkilint",
    "psutil",
    "asn1crypto",
    "argon2",
    "importlib.metadata",
    "app.services.workstation",
    "app.hsm",
    "app.storage",
)
# Never needed by `keys list` / `keys generate` (asn1crypto: python-pkcs11's helpers load on
# first use, app/hsm/lazy_util.py).
UNUSED_BY_KEYS = (
    "asn1crypto",
    "pkilint",
    "app.pki.lint",
    "app.services.certificates",
    "app.services.backup",
    "app.services.key_use",
    "shamir_mnemonic",
    "psutil",
)
# Nor sysconfig (loaded where a module name is resolved). The air gap's socket is imported where
# it is looked at, too, but the tests' network guard loads socket into every interpreter, so it
# cannot be checked here.
UNUSED_BY_KEYS_STDLIB = ("sysconfig",)
# Workstation services and token-layer modules built or imported on first use (issue 17):
# neither keys command needs them.
LAZY_FOR_KEYS = (
    "app.services.rebind",
    "app.services.operators",
    "app.services.adoption",
    "app.domain.known_keys",
    "app.hsm.mechanisms",
    "app.hsm.p11kit",
    "app.hsm.tokeninfo",
)
# Not needed by `keys list` either: a new key's id needs uuid (which loads platform); a
# generation reads the token's stored trials and capability probe.
UNUSED_BY_KEYS_LIST = (
    "uuid",
    "platform",
    "app.services.token_inspect",
    "app.hsm.trials",
    "app.hsm.capabilities",
)

# Not needed for --help either (issue 17: the parser is filled in per command group, and the
# command modules, logging and the core thread are loaded only by a command that runs).
LAZY_FOR_HELP = (
    "app.cli.keys",
    "app.cli.tokens",
    "app.cli.audit",
    "app.cli.init",
    "app.cli.backup",
    "app.cli.ceremony",
    "app.cli.certs",
    "app.cli.operators",
    "app.cli.session",
    "app.cli.output",
    "app.paths",
    "app.services",
    "app.domain",
    "platformdirs",
    "logging",
    "threading",
    "json",
    "typing",
    "dataclasses",
)
# A group's own help builds that group only.
OTHER_GROUPS = (
    "app.cli.tokens",
    "app.cli.audit",
    "app.cli.init",
    "app.cli.backup",
    "app.cli.ceremony",
    "app.cli.operators",
    "app.cli.airgap",
    "app.cli.selftest",
)

_PROBE = """
import sys
from app.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
modules = sorted(sys.modules)
import json
print(json.dumps({"code": code, "modules": modules}), file=sys.stderr)
"""


def _loaded(*argv: str, env: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    *messages, last = done.stderr.strip().splitlines()
    report = json.loads(last)
    return report["code"], set(report["modules"]), done.stdout + "".join(messages)


@functools.cache
def _interpreter() -> frozenset[str]:
    """What a bare interpreter in this environment has loaded (under the tests the network
    guard's sitecustomize brings ``typing``): not the parser's doing."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return frozenset(done.stdout.split())


def _added(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """The ``names`` (or their submodules) loaded beyond the bare interpreter's."""
    return _hits(modules - _interpreter(), names)


def _hits(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_help_imports_no_service_layer_token_or_database_library() -> None:
    code, modules, out = _loaded("--help")
    assert code == 0
    assert "keys" in out and "audit" in out  # the real parser, every command group
    assert _hits(modules, HEAVY) == []


def test_help_fills_in_no_command_group() -> None:
    code, modules, out = _loaded("--help")
    assert code == 0
    assert "lock-status" in out and "ceremony" in out  # listed from the static table
    assert _added(modules, LAZY_FOR_HELP) == []


def test_a_usage_error_at_the_top_level_loads_no_command_group() -> None:
    code, modules, out = _loaded("no-such-group")
    assert code == 2
    assert "invalid choice: 'no-such-group'" in out
    assert _added(modules, LAZY_FOR_HELP) == []


def test_subcommand_help_imports_nothing_heavy_either() -> None:
    code, modules, out = _loaded("keys", "generate", "--help")
    assert code == 0
    assert "--algorithm" in out
    assert _hits(modules, HEAVY) == []
    assert "app.cli.keys" in modules  # the one group asked for
    assert _hits(modules, OTHER_GROUPS) == []


def test_a_usage_error_inside_a_group_fills_in_that_group_only() -> None:
    code, modules, out = _loaded("audit", "list", "--since", "yesterday-ish")
    assert code == 2
    assert "keystead audit list: error: argument --since: 'yesterday-ish'" in out
    assert out.count("error:") == 1
    assert "app.cli.audit" in modules
    assert _hits(modules, HEAVY) == []
    assert _hits(modules, tuple(m for m in OTHER_GROUPS if m != "app.cli.audit")) == []


def test_version_still_reports_the_installed_version() -> None:
    done = subprocess.run(
        [str(KEYSTEAD), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith("keystead ")
    assert done.stdout.split()[1] not in ("", "unknown")


def test_keys_commands_load_the_core_but_not_what_they_do_not_use(cli: Cli) -> None:
    generate(cli, "AES-256", "probe-key")
    env = cli.env
    home = ("--home", str(cli.home))
    code, modules, out = _loaded(*home, "--json", "keys", "list", env=env)
    assert code == 0, out
    assert [row["name"] for row in json.loads(out)] == ["probe-key"]
    assert "pkcs11" in modules and "sqlcipher3" in modules  # it did the real work
    assert _hits(modules, UNUSED_BY_KEYS + LAZY_FOR_KEYS) == []
    assert _added(modules, UNUSED_BY_KEYS_STDLIB + UNUSED_BY_KEYS_LIST) == []
    code, modules, out = _loaded(
        *home, "--json", "keys", "generate", "--token", TOKEN, "--algorithm", "AES-128",
        "--name", "second", env=env,
    )
    assert code == 0, out
    assert json.loads(out)["name"] == "second"
    assert _hits(modules, UNUSED_BY_KEYS + LAZY_FOR_KEYS) == []
    assert _added(modules, UNUSED_BY_KEYS_STDLIB) == []

