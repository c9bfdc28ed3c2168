"""The share cards at a real terminal (a pseudo-terminal): each custodian's card is cleared
from the screen and the scroll-back before the next custodian is handed the terminal.

The new-user trial found the clear sequence printed as the text ``\\x1b[2J\\x1b[H`` (the CLI's
escaping layer escaped Keystead's own control sequence), so the second custodian read the
first custodian's 33 words above their own card."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from app.cli.terminal import CLEAR_SCREEN
from tests.e2e.test_cli import KEYSTEAD, TOKEN, Cli, bare_cli, cli, with_witness  # noqa: F401

pytestmark = pytest.mark.e2e

CLEAR = CLEAR_SCREEN.encode()


def _at_a_terminal(cli: Cli, *args: str, limit: float = 240.0) -> bytes:  # noqa: F811
    """Run ``keystead ARGS`` with a pseudo-terminal as stdin/stdout/stderr, pressing Enter
    at every 'press Enter.' and '(Enter for none)' prompt; returns every byte the terminal
    received."""
    master, slave = pty.openpty()
    child = subprocess.Popen(
        [str(KEYSTEAD), "--home", str(cli.home), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=cli.env,
        close_fds=True,
    )
    os.close(slave)
    seen = b""
    answered = 0
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            prompts = seen.count(b"press Enter") + seen.count(b"(Enter for none): ")
            if prompts > answered:  # Enter: next card, or no share passphrase
                answered += 1
                os.write(master, b"\r")
            if child.poll() is not None and not ready:
                break
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        os.close(master)
    assert child.returncode == 0, seen.decode(errors="replace")[-2000:]
    return seen


def test_each_share_card_is_cleared_before_the_next_custodian(
    cli: Cli,  # noqa: F811
    tmp_path: Path,
) -> None:
    with_witness(cli)
    cli.run("keys", "generate", "--token", TOKEN, "--algorithm", "AES-256", "--name", "k",
            "--backup-able")
    stick = tmp_path / "stick"
    stick.mkdir()
    seen = _at_a_terminal(
        cli,
        *["backup", "create", "--to", str(stick), "--shares", "2-of-3"],
        *["--custodians", "alice,bob,carol"],
    )
    assert b"\\x1b[2J" not in seen  # never printed as text
    cards = seen.split(b"Share card - custodian ")[1:]
    assert [card.split(b",")[0] for card in cards] == [b"alice", b"bob", b"carol"]
    for card in cards:
        # each card's words end in a real clear of the screen and the scroll-back
        assert CLEAR in card, card.decode(errors="replace")
    before_first = seen.split(b"Share card - custodian ")[0]
    assert before_first.rstrip().endswith(CLEAR) or before_first.endswith(CLEAR)
    [directory] = list(stick.iterdir())
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["shares"]["threshold"] == 2
