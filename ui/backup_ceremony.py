"""The core thread's side of a backup being created from the GUI.

``BackupService.create`` runs on the core thread and calls ``deliver(card)`` (the custodians'
shares, before anything is written) and ``progress(stage, done, total)``. This object carries
both to the GUI thread through queued signals: ``deliver`` waits until the wizard has shown
every share (or the officer stopped), as ``QtApprovalSource`` waits for the approval dialog;
``progress`` raises OperationCancelled once Cancel was pressed, so the core stops between two
keys or two files and removes what it wrote.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal

from app.errors import OperationCancelled
from app.services.backup import ShareCard


@dataclass
class ShareHandout:
    """One hand-out of shares: the card, and the wizard's answer (True: every custodian has
    theirs)."""

    card: ShareCard
    delivered: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class BackupCeremony(QObject):
    shares_ready = Signal(object)  # ShareHandout, on the GUI thread
    progressed = Signal(str, int, int)  # stage, done, total

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cancel = threading.Event()
        self._handout: ShareHandout | None = None
        self.backup_id: str | None = None  # set once shares were handed out (for the words)

    # --- called on the core thread ----------------------------------------------------------

    def deliver(self, card: ShareCard) -> None:
        if self._cancel.is_set():
            raise OperationCancelled("The backup was cancelled; nothing was written.")
        handout = ShareHandout(card)
        self._handout = handout
        self.shares_ready.emit(handout)
        handout.done.wait()
        if not handout.delivered:
            raise OperationCancelled(
                f"Share hand-out stopped; nothing was written. Destroy any share card already "
                f"written down for backup {card.backup_id}."
            )
        self.backup_id = card.backup_id

    def progress(self, stage: str, done: int, total: int) -> None:
        if self._cancel.is_set():
            raise OperationCancelled(
                "The backup was cancelled while it was written; the partial files were removed "
                "and nothing was marked backed up."
            )
        self.progressed.emit(stage, done, total)

    # --- called on the GUI thread -----------------------------------------------------------

    def cancel(self) -> None:
        """Stop at the next key or file; a pending share hand-out is answered 'stopped'."""
        self._cancel.set()
        handout = self._handout
        if handout is not None and not handout.done.is_set():
            handout.done.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()
