"""Process hardening applied first by both entry points (``keystead`` and the window).

A module of its own, with nothing heavy behind it, so the command line can harden the process
before it has parsed its arguments or imported the service layer."""

from __future__ import annotations

import contextlib
import os
import resource


def harden_process() -> None:
    """No core dumps (a crash must not write secrets to disk); new files private to the user."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.umask(0o077)
