"""The Qt answer to the core's ``Prompter``: a dialog on the GUI thread, a wait on the core's."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QMessageBox, QWidget

from app.services.prompter import SecretKind
from ui.dialogs.secret import SecretDialog


@dataclass
class _Request:
    prompt: str
    kind: SecretKind | None = None  # None: a yes/no question
    answer: str | bool | None = None
    done: threading.Event = field(default_factory=threading.Event)


class QtPrompter(QObject):
    """Called from the core thread; shows dialogs on the GUI thread and waits for the answer."""

    _ask = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._parent = parent
        self._ask.connect(self._on_ask, Qt.ConnectionType.QueuedConnection)

    def _wait(self, request: _Request) -> str | bool | None:
        self._ask.emit(request)
        request.done.wait()
        return request.answer

    def secret(self, kind: SecretKind, prompt: str) -> str | None:
        answer = self._wait(_Request(prompt, kind))
        return answer if isinstance(answer, str) else None

    def confirm(self, question: str) -> bool:
        return self._wait(_Request(question)) is True

    @Slot(object)
    def _on_ask(self, request: _Request) -> None:
        try:
            if request.kind is not None:
                dialog = SecretDialog(request.kind, request.prompt, self._parent)
                request.answer = dialog.secret() if dialog.exec() else None
            else:
                reply = QMessageBox.question(self._parent, "Keystead", request.prompt)
                request.answer = reply == QMessageBox.StandardButton.Yes
        finally:
            request.done.set()
