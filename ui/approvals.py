"""The GUI's approval source: called on the core thread by ``ApprovalService.obtain``, it shows
the approval dialog on the GUI thread and waits for the approvers (as ``QtPrompter`` does)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QWidget

from app.domain.approval import ApprovalRequest, Credential, PolicyRule
from ui.dialogs.approval import ApprovalDialog


@dataclass
class _Ask:
    request: ApprovalRequest
    rule: PolicyRule
    answer: list[Credential] | None = None
    done: threading.Event = field(default_factory=threading.Event)


class QtApprovalSource(QObject):
    """``ApproverSource`` for the GUI. ``shown`` (tests) sees each dialog before it runs."""

    _ask = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._parent = parent
        self.shown: Callable[[ApprovalDialog], None] | None = None
        self._ask.connect(self._on_ask, Qt.ConnectionType.QueuedConnection)

    def credentials(self, request: ApprovalRequest, rule: PolicyRule) -> list[Credential] | None:
        ask = _Ask(request, rule)
        self._ask.emit(ask)
        ask.done.wait()
        return ask.answer

    @Slot(object)
    def _on_ask(self, ask: _Ask) -> None:
        try:
            dialog = ApprovalDialog(ask.request, ask.rule, self._parent)
            if self.shown is not None:
                self.shown(dialog)
            ask.answer = dialog.credentials() if dialog.exec() else None
        finally:
            ask.done.set()
