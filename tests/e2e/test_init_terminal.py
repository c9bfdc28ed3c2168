"""`keystead init` at a real terminal (a pseudo-terminal): the token's PINs are asked in the
order the README and the GUI's first-start dialog give them, user PIN first.

The new-user trial (F13) typed the planned user PIN into an SO PIN prompt that came first, so
the token ended up with the two PINs swapped."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_cli import KEYSTEAD, PASSPHRASE, TOKEN, Cli, peer_login

pytestmark = pytest.mark.e2e

USER_PIN = "SENTINEL-term-user-4471"
SO_PIN = "SENTINEL-term-so-9182"


def _answer_prompts(cli: Cli, answers: dict[bytes, str], *args: str) -> list[bytes]:
    """Run ``keystead ARGS`` on a pseudo-terminal with no secret in the environment; answer
    each prompt line by the first ``answers`` key it contains; return the prompts in order."""
    env = {
        k: v
        for k, v in cli.env.items()
        if k not in ("KEYSTEAD_PASSPHRASE", "KEYSTEAD_PIN", "KEYSTEAD_SO_PIN")
    }
    master, slave = pty.openpty()
    child = subprocess.Popen(
        [str(KEYSTEAD), "--home", str(cli.home), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    pending = b""
    prompts: list[bytes] = []
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                pending += chunk
                if pending.rstrip().endswith(b":"):  # a prompt waits for its answer
                    line = pending.strip().splitlines()[-1]
                    prompts.append(line)
                    pending = b""
                    answer = next((v for k, v in answers.items() if k in line), None)
                    assert answer is not None, f"unexpected prompt {line!r}"
                    os.write(master, answer.encode() + b"\r")
            elif child.poll() is not None:
                break
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        os.close(master)
    assert child.returncode == 0, (prompts, pending.decode(errors="replace"))
    return prompts


def test_init_asks_the_user_pin_before_the_so_pin(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    prompts = _answer_prompts(
        cli,
        {b"passphrase": PASSPHRASE, b"SO PIN": SO_PIN, b"user PIN": USER_PIN},
        "--operator",
        "officer",
        "init",
        "--soft-token",
        TOKEN,
    )
    kinds = [
        "so" if b"SO PIN" in p else "user" if b"user PIN" in p else "passphrase" for p in prompts
    ]
    assert kinds == ["passphrase", "passphrase", "user", "user", "so", "so"], prompts
    # Each prompt says what its PIN is for, so the two cannot be taken for one another.
    assert any(b"everyday use" in p for p in prompts if b"user PIN" in p), prompts
    assert any(b"recovery PIN, not for daily use" in p for p in prompts if b"SO PIN" in p), prompts
    # And the token took them that way round: the user PIN logs in as the user, the SO PIN
    # does not (an independent peer, pkcs11-tool, asks the token).
    assert peer_login(cli, TOKEN, USER_PIN)
    assert not peer_login(cli, TOKEN, SO_PIN)
