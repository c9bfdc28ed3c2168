"""The keystead CLI with a TPM 2.0 (tpm2-pkcs11 over swtpm behind tpm2-abrmd; the resource
manager flushes transient objects, no test calls tpm2_flushcontext).

tpm2-pkcs11 writes its own log lines ("ERROR: ...", "WARNING: ...") to standard error; the
runner here allows them and checks that Keystead's own error is one line, the last one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.tpm.conftest import TPM_LABEL, TPM_PIN
from tests.tpm.swtpm import MODULE, SwTpm

pytestmark = pytest.mark.tpm

KEYSTEAD = Path(sys.executable).with_name("keystead")
PASSPHRASE = "SENTINEL-tpmcli-pass-2b91"
SOFT_PIN = "SENTINEL-tpmcli-pin-7d22"
SOFT_SO_PIN = "SENTINEL-tpmcli-sopin-0e5a"
WITNESS_PASS = "SENTINEL-tpmcli-witness-44af"
SECRETS = (PASSPHRASE, SOFT_PIN, SOFT_SO_PIN, TPM_PIN, WITNESS_PASS)


class TpmCli:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
        self.env.update(
            {
                "KEYSTEAD_OPERATOR": "officer",
                "KEYSTEAD_PASSPHRASE": PASSPHRASE,
                "KEYSTEAD_PIN": TPM_PIN,  # the PIN of the token a command names
                "KEYSTEAD_AUDIT_PIN": SOFT_PIN,
                "KEYSTEAD_SO_PIN": SOFT_SO_PIN,
            }
        )
        self.outputs: list[str] = []

    def run(self, *args: str, expect: int = 0, stdin: str = "", **env: str) -> str:
        """stdout of a command that exits 0; Keystead's error line of one that exits 1."""
        result = subprocess.run(
            [str(KEYSTEAD), "--home", str(self.home), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
            input=stdin,
            check=False,
        )
        self.outputs += [result.stdout, result.stderr]
        assert result.returncode == expect, (args, result.stdout, result.stderr)
        ours = [
            line
            for line in result.stderr.splitlines()
            if line.strip() and not line.startswith(("ERROR", "WARNING", "**"))
        ]
        if expect == 0:
            assert ours == [], result.stderr
            return result.stdout
        assert len(ours) == 1 and ours[0].startswith("keystead: error: "), result.stderr
        # Keystead's error is the first line it writes; its log's warnings follow (app/cli:
        # held until the command ends). Lines tpm2-pkcs11 itself prints ("ERROR: …", "**")
        # come from the module's C code, outside Keystead's control.
        written = [
            line
            for line in result.stderr.splitlines()
            if line.strip() and not line.startswith(("ERROR", "**"))
        ]
        assert written[0] == ours[0], result.stderr
        return ours[0]

    def json(self, *args: str) -> Any:
        return json.loads(self.run("--json", *args))

    def with_witness(self) -> None:
        """A second person for dual control (the shipped policy is unchanged): enrolled by
        the sole officer, then named as the approver for automation."""
        role = "security-officer,key-custodian"
        self.run("operators", "add", "witness", "--role", role, stdin=WITNESS_PASS + "\n")
        self.env.update(
            {"KEYSTEAD_APPROVER": "witness", "KEYSTEAD_APPROVER_PASSPHRASE": WITNESS_PASS}
        )


@pytest.fixture
def tpm_cli(use_tpm: SwTpm, tmp_path: Path) -> Any:
    cli = TpmCli(tmp_path / "home")
    yield cli
    for text in cli.outputs:
        for secret in SECRETS:
            assert secret not in text


def test_init_refuses_the_tpm_as_audit_token_and_creates_nothing(tpm_cli: TpmCli) -> None:
    error = tpm_cli.run(
        "init",
        "--operator",
        "officer",
        "--audit-token",
        TPM_LABEL,
        "--module",
        MODULE,
        expect=1,
    )
    assert "cannot hold the audit keys" in error and "embedded token for audit" in error
    assert not (tpm_cli.home / "keystead.db").exists()


def test_generate_with_the_decision_and_state_changes_said_truthfully(tpm_cli: TpmCli) -> None:
    tpm_cli.run("init", "--operator", "officer", "--soft-token", "Vault", KEYSTEAD_PIN=SOFT_PIN)
    tpm_cli.with_witness()  # activating a signing key is dual control
    tpm_cli.run("modules", "add", MODULE)
    generate = ("keys", "generate", "--token", TPM_LABEL, "--algorithm", "EC-P256")
    error = tpm_cli.run(*generate, "--name", "sig", expect=1)
    assert "only with DECRYPT and ENCRYPT as well" in error and "--allow-wider-usage" in error
    made = tpm_cli.json(*generate, "--name", "sig", "--allow-wider-usage")
    assert made["state"] == "PRE_ACTIVE"
    tpm_cli.run("keys", "activate", "sig")
    said = tpm_cli.run("keys", "suspend", "sig", "--reason", "inquiry")
    assert "recorded by Keystead, not enforced by this token" in said
    assert "token enforces" not in said
    history = tpm_cli.json("audit", "list", "--action", "key.suspend")
    assert "recorded by Keystead, not enforced by this token" in json.dumps(history)


def test_init_with_only_the_tpm_and_no_audit_token_is_refused(tpm_cli: TpmCli) -> None:
    """A home with no audit token could record nothing: init refuses before it exists and says
    how to give it one (the TPM itself cannot hold the audit keys: its own refusal above)."""
    error = tpm_cli.run("init", "--operator", "officer", expect=1)
    assert "needs an audit token" in error and "--soft-token LABEL" in error
    assert not (tpm_cli.home / "keystead.db").exists()
