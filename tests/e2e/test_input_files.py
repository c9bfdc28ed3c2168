"""Input files and the names in them, as subprocesses (issue 10's open findings, each a kind):

* an input file must be a regular file within a size limit: /dev/zero, a FIFO, a directory
  or an oversized file given as a request, a signature, a shares file, or found in a backup
  directory is refused in one line, quickly, with nothing changed;
* an output that is the input under any name (the same path, a symlink, a hard link) is
  refused even with --overwrite, and the input is left as it was;
* certificate subjects and backup custodian names follow the one name rule (no control,
  bidi or invisible characters);
* ``tokens init-blank`` checks the slot and the label before asking for any PIN.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.test_cli import Cli, bare_cli, cli, generate, with_witness  # noqa: F401 (fixtures)
from tests.hsm.kit import MODULE

pytestmark = pytest.mark.e2e

SPECIALS = ("/dev/zero", "fifo", "directory")


def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "fifo":
        path = tmp_path / "a-fifo"
        os.mkfifo(path)
        return path
    if kind == "directory":
        path = tmp_path / "a-directory"
        path.mkdir()
        return path
    return Path(kind)


def _refused(station: Cli, *args: str, **env: str) -> str:
    """The one error line (exit 1) of a refused command; the callers check that the keys
    and the files involved are as they were."""
    return station.error(*args, **env)


def _keys(station: Cli) -> list[dict[str, object]]:
    return sorted(
        (r for r in station.json("keys", "list") if r["id"]), key=lambda r: str(r["id"])
    )


def test_certificate_inputs_subjects_and_same_file_outputs(
    cli: Cli, tmp_path: Path  # noqa: F811
) -> None:
    with_witness(cli)
    root = generate(cli, "EC-P256", "root-ca-key")
    issuing = generate(cli, "EC-P256", "issuing-ca-key")
    for key in (root, issuing):
        cli.run("keys", "activate", key["id"])
    cli.run(
        *["certs", "self-sign", "root-ca-key", "--profile", "root-ca"],
        *["--subject", "CN=Root,O=Example,C=DE", "--days", "365"],
        *["--out", str(tmp_path / "root.pem")],
    )
    keys_before = _keys(cli)
    sign_csr = ["certs", "sign-csr", "root-ca-key", "--profile", "intermediate-ca", "--days", "30"]
    out = str(tmp_path / "out.pem")
    for kind in SPECIALS:
        line = _refused(cli, *sign_csr, "--csr", str(_special(tmp_path, kind)), "--out", out)
        assert "not a regular file" in line, line
    huge = tmp_path / "huge.csr"
    huge.write_bytes(b"-----BEGIN" + b"A" * (64 * 1024))
    assert "larger than 65536 bytes" in _refused(cli, *sign_csr, "--csr", str(huge), "--out", out)
    dev_zero_link = tmp_path / "zero.csr"
    dev_zero_link.symlink_to("/dev/zero")
    assert "not a regular file" in _refused(
        cli, *sign_csr, "--csr", str(dev_zero_link), "--out", out
    )

    csr = tmp_path / "issuing.csr"
    cli.run(
        *["certs", "csr", "issuing-ca-key", "--subject", "CN=Issuing,O=Example,C=DE"],
        *["--out", str(csr)],
    )
    kept = csr.read_bytes()
    alias = tmp_path / "alias.csr"
    alias.symlink_to(csr)
    hard = tmp_path / "hard.csr"
    os.link(csr, hard)
    for target in (csr, alias, hard):
        line = _refused(
            cli, *sign_csr, "--csr", str(csr), "--out", str(target), "--overwrite"
        )
        assert "is the input file" in line, line
    assert csr.read_bytes() == kept

    for subject in (
        "CN=Forged\x1b[31m,O=Example",
        "CN=abc\u202egnp.exe,O=Example",
        "CN=zero\u200bwidth",
        "CN=line\u2028break",
    ):
        for command in (
            ["certs", "csr", "issuing-ca-key", "--subject", subject, "--out", str(tmp_path / "x")],
            [
                *["certs", "self-sign", "issuing-ca-key", "--profile", "root-ca"],
                *["--subject", subject, "--days", "30", "--out", str(tmp_path / "y")],
            ],
        ):
            # refused before any PIN is asked: no PIN in the environment
            line = _refused(cli, *command, KEYSTEAD_PIN="")
            assert "control or invisible characters" in line, line
    assert not (tmp_path / "out.pem").exists() and not (tmp_path / "x").exists()
    assert _keys(cli) == keys_before


def test_use_commands_refuse_special_inputs_and_an_output_that_is_the_input(
    cli: Cli, tmp_path: Path  # noqa: F811
) -> None:
    with_witness(cli)
    signer = generate(cli, "EC-P256", "signer")
    secret = generate(cli, "AES-256", "secret")
    for key in (signer, secret):
        cli.run("keys", "activate", key["id"])
    data = tmp_path / "data.bin"
    data.write_bytes(b"the data, which must survive\n" * 100)
    kept = data.read_bytes()
    sig = tmp_path / "data.sig"
    cli.run("keys", "sign", "signer", "--in", str(data), "--out", str(sig))
    keys_before = _keys(cli)
    alias = tmp_path / "alias.bin"
    alias.symlink_to(data)
    hard = tmp_path / "hard.bin"
    os.link(data, hard)
    for target in (data, alias, hard):
        for command in (
            ["keys", "sign", "signer"],
            ["keys", "encrypt", "secret"],
        ):
            line = _refused(cli, *command, "--in", str(data), "--out", str(target), "--overwrite")
            assert "is the input file" in line, line
    sealed = tmp_path / "data.enc"
    cli.run("keys", "encrypt", "secret", "--in", str(data), "--out", str(sealed))
    sealed_bytes = sealed.read_bytes()
    line = _refused(
        cli, "keys", "decrypt", "secret", "--in", str(sealed), "--out", str(sealed), "--overwrite"
    )
    assert "is the input file" in line
    assert data.read_bytes() == kept and sealed.read_bytes() == sealed_bytes
    for kind in SPECIALS:
        special = str(_special(tmp_path, kind))
        assert "not a regular file" in _refused(
            cli, "keys", "verify", "signer", "--in", str(data), "--sig", special
        )
        assert "not a regular file" in _refused(
            cli, "keys", "sign", "signer", "--in", special, "--out", str(tmp_path / "s2")
        )
    assert not (tmp_path / "s2").exists()
    assert _keys(cli) == keys_before


def test_backup_inputs_and_custodian_names(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    with_witness(cli)
    generate(cli, "AES-128", "backed", "--backup-able")
    stick = tmp_path / "stick"
    stick.mkdir()
    keys_before = _keys(cli)
    for custodians in ("al\x1b[2Jice,bob,carol", "alice,b\u202eob,carol", "alice,\u200b,carol"):
        line = _refused(
            cli,
            *["backup", "create", "--to", str(stick), "--shares", "2-of-3"],
            *["--custodians", custodians, "--shares-out", str(tmp_path / "never.json")],
        )
        assert "Custodian name" in line and "control or invisible" in line, line
    assert list(stick.iterdir()) == [] and not (tmp_path / "never.json").exists()
    assert _keys(cli) == keys_before
    shares_file = tmp_path / "shares.json"
    created = cli.json(
        *["backup", "create", "--to", str(stick), "--shares", "2-of-3"],
        *["--custodians", "alice,bob,carol", "--shares-out", str(shares_file)],
    )
    directory = Path(created["directory"])
    verify = ["backup", "verify", str(directory), "--drill", "--shares-in"]
    for kind in SPECIALS:
        line = _refused(cli, *verify, str(_special(tmp_path, kind)))
        assert "not a regular file" in line, line
    huge = tmp_path / "huge.json"
    huge.write_bytes(b"[" + b" " * (1 << 20) + b"]")
    assert "larger than" in _refused(cli, *verify, str(huge))

    # a backup directory whose files are not files: a copy with keys.bin -> /dev/zero, and
    # one with manifest.json -> /dev/zero
    for name in ("keys.bin", "manifest.json"):
        bad = tmp_path / f"bad-{name}"
        bad.mkdir()
        for entry in directory.iterdir():
            (bad / entry.name).write_bytes(entry.read_bytes())
        (bad / name).unlink()
        (bad / name).symlink_to("/dev/zero")
        line = _refused(cli, "backup", "verify", str(bad))
        assert "not a regular file" in line, line
        shares = json.loads(shares_file.read_text())
        two = tmp_path / "two.json"
        two.write_text(json.dumps([s["words"] for s in shares["shares"][:2]]))
        line = _refused(cli, "backup", "verify", str(bad), "--drill", "--shares-in", str(two))
        assert "not a regular file" in line, line


def test_init_blank_checks_the_slot_and_label_before_any_pin(cli: Cli) -> None:  # noqa: F811
    def tokens() -> list[tuple[str, str]]:
        return sorted((t["label"], t["serial"]) for t in cli.json("tokens", "list"))

    tokens_before = tokens()
    no_pins = {"KEYSTEAD_SO_PIN": "", "KEYSTEAD_PIN": ""}
    line = _refused(
        cli,
        *["tokens", "init-blank", "--module", MODULE, "--slot", "987654", "--label", "new"],
        *["--confirm", "new"],
        **no_pins,
    )
    assert "holds no blank token" in line, line
    (blank,) = cli.json("tokens", "blank")
    line = _refused(
        cli,
        *["tokens", "init-blank", "--module", MODULE, "--slot", str(blank["slot"])],
        *["--label", "bad\x1b[31m", "--confirm", "bad\x1b[31m"],
        **no_pins,
    )
    assert "control or invisible" in line, line
    assert tokens() == tokens_before and cli.json("tokens", "blank") == [blank]
