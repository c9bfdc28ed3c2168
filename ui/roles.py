"""Roles in the GUI: an action the operator's roles do not allow stays disabled, with a tooltip
naming the role it needs. The core refuses it anyway (and records the refusal); this only
spares the operator a dialog that would end in "not allowed"."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QAbstractButton

from app.domain.roles import Role, describe, initiator_roles


def may(roles: frozenset[Role], action: str) -> bool:
    return bool(roles & initiator_roles(action))


def needs_text(roles: frozenset[Role], action: str) -> str:
    """``"Needs a key custodian (you are an auditor)."``"""
    return f"Needs {describe(initiator_roles(action))} (you are {describe(roles)})."


class RoleGate(QObject):
    """Keeps the guarded actions and buttons disabled while the roles do not allow them,
    whatever their page's own enabling logic does."""

    def __init__(self, roles: frozenset[Role], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.roles = roles
        self._actions: dict[QAction, str] = {}
        self._buttons: dict[QAbstractButton, str] = {}
        self._busy = False

    def guard(self, target: QAction | QAbstractButton, action: str) -> None:
        if isinstance(target, QAction):
            self._actions[target] = action
            target.changed.connect(lambda t=target: self._enforce_action(t))
            self._enforce_action(target)
        else:
            self._buttons[target] = action
            target.installEventFilter(self)
            self._enforce_button(target)

    def set_roles(self, roles: frozenset[Role]) -> None:
        self.roles = roles
        for qaction in self._actions:
            self._enforce_action(qaction)
        for button in self._buttons:
            self._enforce_button(button)

    def allowed(self, action: str) -> bool:
        return may(self.roles, action)

    def _enforce_action(self, qaction: QAction) -> None:
        action = self._actions[qaction]
        if self._busy or may(self.roles, action):
            return
        self._busy = True
        try:
            qaction.setEnabled(False)
            qaction.setToolTip(needs_text(self.roles, action))
        finally:
            self._busy = False

    def _enforce_button(self, button: QAbstractButton) -> None:
        action = self._buttons[button]
        if self._busy or may(self.roles, action):
            return
        self._busy = True
        try:
            button.setEnabled(False)
            button.setToolTip(needs_text(self.roles, action))
        finally:
            self._busy = False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            event.type() == QEvent.Type.EnabledChange
            and isinstance(watched, QAbstractButton)
            and watched in self._buttons
        ):
            self._enforce_button(watched)
        return False
