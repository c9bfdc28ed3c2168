"""Lifecycle actions shared by the toolbar, the context menu and the detail panel.

One QAction per action; ``set_key`` enables what the key's state allows and, for the rest,
puts the reason it is not allowed in the tooltip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMessageBox, QWidget

from app.domain.keys import KeyRecord
from app.domain.lifecycle import Action, allowed, refusal, rotation_refusal
from app.services.workstation import Workstation
from ui.dialogs.lifecycle import DestroyDialog, EditKeyDialog, ReasonDialog
from ui.errors import show_error
from ui.icons import icon
from ui.session import GuiSession

_DESCRIPTIONS = {
    Action.ACTIVATE: "Allow the key to be used for its purpose.",
    Action.SUSPEND: "Stop all use until resumed (reason required).",
    Action.RESUME: "Allow use again after a suspension.",
    Action.DEACTIVATE: "Stop protecting; keep decrypt/verify/unwrap (reason required).",
    Action.COMPROMISE: "Record that the key is compromised and stop all use.",
    Action.DESTROY: "Erase the key from the token; the record stays as a tombstone.",
}


class LifecycleActions(QObject):
    """Owns the actions; runs each through the session and reports the changed key."""

    changed = Signal(object)  # KeyRecord after the change (or the new successor)

    def __init__(self, session: GuiSession, parent: QWidget) -> None:
        super().__init__(parent)
        self.session = session
        self.parent_widget = parent
        self.key: KeyRecord | None = None
        self.transitions: dict[Action, QAction] = {}
        for action in Action:
            qaction = QAction(
                icon(f"state-{action.value}"),
                f"{action.title}…"
                if action.needs_reason or action is Action.DESTROY
                else action.title,
                parent,
            )
            qaction.triggered.connect(lambda _=False, a=action: self.run(a))
            self.transitions[action] = qaction
        self.rotate = QAction(icon("rotate"), "Rotate", parent)
        self.rotate.triggered.connect(self.run_rotate)
        self.edit = QAction(icon("edit"), "Edit…", parent)
        self.edit.triggered.connect(self.run_edit)
        self.set_key(None)

    def all(self) -> list[QAction]:
        return [*self.transitions.values(), self.rotate, self.edit]

    def set_key(self, key: KeyRecord | None) -> None:
        self.key = key
        for action, qaction in self.transitions.items():
            ok = key is not None and allowed(key.state, action)
            qaction.setEnabled(ok)
            if key is None:
                qaction.setToolTip("Select a managed key.")
            else:
                qaction.setToolTip(_DESCRIPTIONS[action] if ok else refusal(key.state, action))
        why_not = (
            "Select a managed key." if key is None else rotation_refusal(key.state, key.replaced_by)
        )
        self.rotate.setEnabled(why_not is None)
        self.rotate.setToolTip(
            why_not
            or "Generate a pre-active successor with the same algorithm, purpose and policy."
        )
        self.edit.setEnabled(key is not None)
        self.edit.setToolTip(
            "Change name, tags, notes and cryptoperiod dates." if key else "Select a managed key."
        )

    # --- running ---------------------------------------------------------------------------

    def _submit(self, job: Callable[[Workstation], Any]) -> None:
        self.session.run(job, self.changed.emit, lambda e: show_error(self.parent_widget, e))

    def run(self, action: Action) -> None:
        key = self.key
        if key is None:
            return
        reason, when, confirm = "", None, None
        if action.needs_reason:
            dialog = ReasonDialog(key, action, self.parent_widget)
            if not dialog.exec():
                return
            reason, when = dialog.values()
        elif action is Action.DESTROY:
            destroy = DestroyDialog(key, self.parent_widget)
            if not destroy.exec():
                return
            confirm = destroy.confirmation()
        elif action is Action.ACTIVATE and key.replaces:
            answer = QMessageBox.question(
                self.parent_widget,
                "Activate successor",
                f"Activating '{key.name}' deactivates the key it replaces in the same step. "
                "Continue?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        key_id = key.id
        self._submit(lambda ws: ws.lifecycle.transition(key_id, action, reason, when, confirm))

    def run_rotate(self) -> None:
        if self.key is None:
            return
        key_id = self.key.id
        self._submit(lambda ws: ws.lifecycle.rotate(key_id))

    def run_edit(self) -> None:
        if self.key is None:
            return
        dialog = EditKeyDialog(self.key, self.parent_widget)
        if not dialog.exec():
            return
        changes = dialog.changes()
        if not changes:
            return
        key_id = self.key.id
        self._submit(lambda ws: ws.lifecycle.edit(key_id, **changes))  # type: ignore[arg-type]
