"""The CLI's log lines: held until the command ends, so an error is always the first line.

Library and service warnings (``log.warning``) used to go straight to standard error, so a
refused command could print ``WARNING app.services...: ...`` above its one-line error and the
operator read the wrong line first. The handler here keeps them: when the command fails, the
error line is printed first and the warnings follow as its details; when it succeeds, they are
printed at its end. Nothing a handler keeps is written anywhere else (no log file).
"""

from __future__ import annotations

import logging
from typing import TextIO

FORMAT = "%(levelname)s %(name)s: %(message)s"


class HeldLogLines(logging.Handler):
    """Keeps WARNING-and-above records of one command until ``flush_to``."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter(FORMAT))
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def flush_to(self, stream: TextIO) -> None:
        """Write the kept lines to ``stream`` (one each, newlines shown as ``\\n``; the CLI's
        escaping stream escapes the rest), then forget them."""
        records, self.records = self.records, []
        seen: set[str] = set()
        for record in records:
            try:
                text = self.format(record)
            except Exception:
                text = f"{record.levelname} {record.name}: {record.msg!r}"
            if text not in seen:  # a retried step says the same once
                seen.add(text)
                print(text.replace("\n", "\\n"), file=stream)


def hold_log_lines() -> HeldLogLines:
    """Route the root logger's WARNING records into one held handler (replacing any handler a
    previous ``basicConfig`` installed) and return it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, HeldLogLines):
            root.removeHandler(handler)
    held = HeldLogLines()
    root.addHandler(held)
    root.setLevel(logging.WARNING)
    return held
