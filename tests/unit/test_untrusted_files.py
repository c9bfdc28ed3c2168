"""Files a person hands Keystead (transfer files, ceremony scripts and transcripts) are read
only as bounded regular files and parsed into typed errors, whatever their shape: a FIFO, a
device, or JSON nested deeper than the parser's recursion limit."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from app.ceremony import script as scripts
from app.domain import transfer
from app.errors import CeremonyScriptError, KeysteadError, NotAuthentic, ValidationError
from app.services.distribution import _read_limited

DEEP = ("[" * 30000 + "]" * 30000).encode()


def test_deep_json_in_a_transfer_file_is_not_authentic() -> None:
    with pytest.raises(NotAuthentic):
        transfer.decode(DEEP)


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    outcome: list[BaseException | bytes] = []

    def read() -> None:
        try:
            outcome.append(_read_limited(fifo, 65536))
        except KeysteadError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert outcome and isinstance(outcome[0], ValidationError), outcome
    assert "not a regular file" in outcome[0].message
    with pytest.raises(CeremonyScriptError, match="not a regular file"):
        scripts.load(fifo)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused(device: str) -> None:
    with pytest.raises(ValidationError, match="not a regular file"):
        _read_limited(Path(device), 65536)
    with pytest.raises(CeremonyScriptError, match="not a regular file"):
        scripts.load(Path(device))
