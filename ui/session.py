"""The GUI's handle on an unlocked workstation: every call goes through the core thread."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from app.domain.roles import Role
from app.errors import KeysteadError
from app.services.tokens import TokenStatus
from app.services.workstation import Workstation
from ui.roles import RoleGate
from ui.workers import CoreBridge, ErrorCallback

T = TypeVar("T")


class SessionLocked(KeysteadError):
    """A job reached the core after its session was locked (never shown to anyone)."""


class GuiSession(QObject):
    """Wraps the workstation (owned by the core thread) and announces changes to the pages."""

    tokens_changed = Signal(list)  # list[TokenStatus]
    keys_changed = Signal()
    error = Signal(object)  # an error no page handled
    roles_changed = Signal()

    def __init__(self, bridge: CoreBridge, workstation: Workstation) -> None:
        super().__init__()
        self.bridge = bridge
        self._workstation = workstation
        # Plain facts fixed at unlock; safe to read on the GUI thread.
        self.operator = workstation.operator
        self.home = workstation.home
        self.database_path = str(workstation.home.database)
        self.due_warning = workstation.lifecycle.policy.due_warning
        self.tokens: list[TokenStatus] = []
        self.module_errors: dict[str, str] = {}
        self.audit_serial: str | None = None  # the workstation's audit token, once designated
        self.audit_label = ""  # its label when last seen (for words when it is gone)
        self.is_locked = False
        # Unlocked with the integrity checks deferred (paint first): the window runs them
        # (``Workstation.finish_unlock``) right after the inventory is painted.
        self.integrity_pending = workstation.integrity_pending
        self.roles: frozenset[Role] = workstation.unlocked_roles
        self.gate = RoleGate(self.roles, self)

    def may(self, action: str) -> bool:
        """Whether the operator's roles allow starting ``action`` (the core checks again)."""
        return self.gate.allowed(action)

    def refresh_roles(self) -> None:
        """Read the operator's roles again (after an operator change) and re-gate actions."""
        self.run(lambda ws: ws.roles, self._roles_loaded)

    def _roles_loaded(self, roles: frozenset[Role]) -> None:
        self.roles = roles
        self.gate.set_roles(roles)
        self.roles_changed.emit()

    def run(
        self,
        job: Callable[[Workstation], T],
        on_result: Callable[[T], None] | None = None,
        on_error: ErrorCallback | None = None,
    ) -> Future[Any]:
        """Run ``job(workstation)`` on the core thread; callbacks on the GUI thread.

        Once the session is locked, jobs still queued do not run (the database is closed) and
        nothing is reported for them: the window they belonged to is gone. A result arriving
        after Qt deleted the session (with its window, which owns it) is dropped by the bridge."""
        workstation = self._workstation
        report = on_error or self.error.emit

        def guarded() -> T:
            if self.is_locked:
                raise SessionLocked("The workstation is locked.")
            return job(workstation)

        def failed(error: BaseException) -> None:
            if not isinstance(error, SessionLocked):
                report(error)

        return self.bridge.run(guarded, on_result, failed, receiver=self)

    def refresh_tokens(self) -> None:
        self.run(
            lambda ws: (ws.tokens.statuses(), dict(ws.tokens.module_errors), ws.audit.token_serial),
            self._tokens_loaded,
        )

    def _tokens_loaded(self, result: tuple[list[TokenStatus], dict[str, str], str | None]) -> None:
        self.tokens, self.module_errors, self.audit_serial = result
        audit = self.audit_status()
        if audit is not None:
            self.audit_label = audit.info.label
        self.tokens_changed.emit(self.tokens)

    def audit_status(self) -> TokenStatus | None:
        """The audit token's status if it is present, else None."""
        return next((s for s in self.tokens if s.info.serial == self.audit_serial), None)

    def lock(self, then: Callable[[], None] | None = None, reason: str = "") -> None:
        """Lock on the core thread; from now on no other job of this session runs."""
        self.is_locked = True
        workstation = self._workstation
        self.bridge.run(
            lambda: workstation.lock(reason),
            lambda _: then() if then else None,
            self.error.emit,
            receiver=self,
        )
