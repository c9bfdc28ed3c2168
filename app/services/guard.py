"""The role check every state-changing service makes first (``ApprovalService.check_initiator``
once the workstation wires it in). A service built alone, outside a workstation, has none."""

from __future__ import annotations

from collections.abc import Callable

Guard = Callable[[str, str], None]  # (action, subject) → None, or raises PolicyError


def unguarded(_action: str, _subject: str) -> None:
    """No role check: only for services used outside a ``Workstation`` (benchmarks, tools)."""
