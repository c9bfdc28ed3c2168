"""Lifecycle actions shared by the menu bar, the toolbar, the context menu and the panel.

One QAction per action; ``set_key`` enables what the key's state (and its object on the
token) allows and, for the rest, puts the reason in the tooltip. Each action opens a dialog
that names the key in full and stays open until the change is made: a refusal shows in the
dialog, and when the change must be sealed by the audit token and it is not logged in, its
PIN is asked for in place and the change tried again, so nothing typed is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from app.domain.keys import KeyRecord, Presence
from app.domain.lifecycle import Action, allowed, refusal, rotation_refusal
from app.errors import AuditTokenNotLoggedIn
from app.services.workstation import Workstation
from ui.dialogs.adopt import AdoptDialog
from ui.dialogs.lifecycle import (
    ConfirmKeyDialog,
    DestroyDialog,
    EditKeyDialog,
    KeyActionDialog,
    ReasonDialog,
)
from ui.errors import message, show_error
from ui.icons import icon
from ui.login import login_to_audit_token
from ui.session import GuiSession

_DESCRIPTIONS = {
    Action.ACTIVATE: "Allow the key to be used for its purpose.",
    Action.SUSPEND: "Stop all use until resumed (reason required).",
    Action.RESUME: "Allow use again after a suspension.",
    Action.DEACTIVATE: "Stop protecting; keep decrypt/verify/unwrap (reason required).",
    Action.COMPROMISE: "Record that the key is compromised and stop all use.",
    Action.DESTROY: "Erase the key from the token; the record stays as a tombstone.",
}

# Actions that need the key's object on the token (the core refuses them too).
NEEDS_OBJECT = (Action.ACTIVATE, Action.RESUME, Action.DESTROY)

SEAL_WHY = (
    "This change must be sealed by the workstation's audit token, which is not logged in. "
    "Log in to it; the change is then made with what you typed."
)


def object_refusal(key: KeyRecord, presence: Presence | None, action: Action) -> str | None:
    """Why ``action`` cannot run on this key's token object now, or None."""
    if action not in NEEDS_OBJECT:
        return None
    if presence is Presence.MISSING:
        return (
            f"The key's object is missing on token '{key.token_label}' (serial "
            f"{key.token_serial}). Investigate, or re-bind the key to a replacement token."
        )
    if action is Action.DESTROY and presence is Presence.ABSENT:
        return f"Token '{key.token_label}' (serial {key.token_serial}) is not attached."
    return None


class LifecycleActions(QObject):
    """Owns the actions; runs each through the session and reports the changed key."""

    changed = Signal(object)  # KeyRecord after the change (or the new successor)
    feedback = Signal(str)  # a one-line success message for the status bar

    def __init__(self, session: GuiSession, parent: QWidget) -> None:
        super().__init__(parent)
        self.session = session
        self.parent_widget = parent
        self.key: KeyRecord | None = None
        self.presence: Presence | None = None
        self.dialog: KeyActionDialog | None = None  # the open dialog, for tests and focus
        self.transitions: dict[Action, QAction] = {}
        for action in Action:
            qaction = QAction(
                icon(f"state-{action.value}"),
                f"{action.title}…",
                parent,
            )
            qaction.triggered.connect(lambda _=False, a=action: self.run(a))
            self.transitions[action] = qaction
        destroy = self.transitions[Action.DESTROY]
        destroy.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        # Delete only where the keys are (the page holding these actions), never from a
        # text field or another page.
        destroy.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        parent.addAction(destroy)
        self.rotate = QAction(icon("rotate"), "Rotate…", parent)
        self.rotate.triggered.connect(self.run_rotate)
        self.edit = QAction(icon("edit"), "Edit…", parent)
        self.edit.triggered.connect(self.run_edit)
        self.set_key(None)
        for action, qaction in self.transitions.items():
            session.gate.guard(qaction, f"key.{action.value}")
        session.gate.guard(self.rotate, "key.rotate")
        session.gate.guard(self.edit, "key.edit")

    def all(self) -> list[QAction]:
        return [*self.transitions.values(), self.rotate, self.edit]

    def set_key(self, key: KeyRecord | None, presence: Presence | None = None) -> None:
        self.key = key
        self.presence = presence
        for action, qaction in self.transitions.items():
            if key is None:
                qaction.setEnabled(False)
                qaction.setToolTip("Select a managed key.")
                continue
            why_not = (
                refusal(key.state, action)
                if not allowed(key.state, action)
                else object_refusal(key, presence, action)
            )
            qaction.setEnabled(why_not is None)
            qaction.setToolTip(why_not or _DESCRIPTIONS[action])
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

    def _submit(
        self,
        job: Callable[[Workstation], Any],
        said: Callable[[Any], str],
        dialog: KeyActionDialog | AdoptDialog | None = None,
    ) -> None:
        """Run ``job``; on success close the dialog and say ``said(result)``. When the audit
        token must seal the change and is not logged in, ask for its PIN and try again."""
        parent: QWidget = dialog or self.parent_widget

        def attempt() -> None:
            if dialog is not None:
                dialog.set_busy(True)
            self.session.run(job, done, failed)

        def done(result: Any) -> None:
            if dialog is not None:
                dialog.accept()
            self.dialog = None
            self.feedback.emit(said(result))
            self.changed.emit(result)

        def failed(error: BaseException) -> None:
            if isinstance(error, AuditTokenNotLoggedIn):
                if dialog is not None:
                    dialog.failed(SEAL_WHY)
                login_to_audit_token(parent, self.session, then=attempt, why=SEAL_WHY)
                return
            if dialog is not None:
                dialog.failed(message(error))
            else:
                show_error(self.parent_widget, error)

        attempt()

    def run_adopt(self, dialog: AdoptDialog) -> None:
        """Adopt what ``dialog`` shows, with the same in-place sealing as every key change."""
        candidate = dialog.candidate
        serial, cka_id = candidate.token_serial, candidate.cka_id or None

        def submit() -> None:
            kwargs = dialog.request()
            self._submit(
                lambda ws: ws.keys.adopt(serial, cka_id, **kwargs),
                lambda key: f"Adopted '{key.name}' ({key.state.title.lower()}, "
                f"{key.purpose.title.lower()}).",
                dialog,
            )

        dialog.confirmed.connect(submit)
        dialog.finished.connect(lambda _r: dialog.deleteLater())
        dialog.open()

    def _open(
        self,
        dialog: KeyActionDialog,
        job: Callable[[], Callable[[Workstation], Any]],
        said: Callable[[Any], str],
    ) -> None:
        self.dialog = dialog
        dialog.confirmed.connect(lambda: self._submit(job(), said, dialog))
        dialog.finished.connect(lambda _r: dialog.deleteLater())
        dialog.open()

    def run(self, action: Action) -> None:
        key = self.key
        if key is None or not self.transitions[action].isEnabled():
            return
        key_id = key.id

        def said(after: KeyRecord) -> str:
            state = after.state.title.lower()
            return f"'{after.name}' is now {state} ({action.title.lower()} recorded)."

        if action.needs_reason:
            reason_dialog = ReasonDialog(key, action, self.parent_widget)

            def reason_job() -> Callable[[Workstation], Any]:
                reason, when = reason_dialog.values()
                box = reason_dialog.revoke_certificates
                revoke = box is not None and box.isChecked()

                def job(ws: Workstation) -> KeyRecord:
                    after = ws.lifecycle.transition(key_id, action, reason, when)
                    if revoke:  # recorded, one cert.revoke entry per certificate
                        ws.certs.revoke_key_certificates(key_id)
                    return after

                return job

            self._open(reason_dialog, reason_job, said)
        elif action is Action.DESTROY:
            destroy = DestroyDialog(key, self.parent_widget)

            def destroy_job() -> Callable[[Workstation], Any]:
                typed = destroy.confirmation()
                return lambda ws: ws.lifecycle.transition(key_id, action, "", None, typed)

            self._open(destroy, destroy_job, said)
        elif action is Action.ACTIVATE and key.replaces:
            predecessor_id = key.replaces
            self.session.run(
                lambda ws: ws.keys.resolve(predecessor_id),
                lambda predecessor: self._confirm_successor(key, predecessor, said),
                lambda error: show_error(self.parent_widget, error),
            )
        else:
            self._submit(lambda ws: ws.lifecycle.transition(key_id, action), said)

    def _confirm_successor(
        self, key: KeyRecord, predecessor: KeyRecord, said: Callable[[Any], str]
    ) -> None:
        key_id = key.id
        dialog = ConfirmKeyDialog(
            key,
            "Activate successor",
            "Activate and deactivate",
            f"Activating '{key.name}' deactivates '{predecessor.name}', the key it replaces, "
            "in the same step: it will no longer protect anything.",
            also_affected=predecessor,
            parent=self.parent_widget,
        )
        self._open(
            dialog, lambda: lambda ws: ws.lifecycle.transition(key_id, Action.ACTIVATE), said
        )

    def run_rotate(self) -> None:
        key = self.key
        if key is None or not self.rotate.isEnabled():
            return
        key_id = key.id
        dialog = ConfirmKeyDialog(
            key,
            "Rotate",
            "Generate successor",
            f"Rotating generates a new pre-active key on token '{key.token_label}' with the same "
            f"algorithm ({key.algorithm.value}), purpose and backup policy, linked to "
            f"'{key.name}'. Activating it later deactivates '{key.name}'.",
            parent=self.parent_widget,
        )
        self._open(
            dialog,
            lambda: lambda ws: ws.lifecycle.rotate(key_id),
            lambda new: f"Successor '{new.name}' generated ({new.state.title.lower()}).",
        )

    def run_edit(self) -> None:
        key = self.key
        if key is None:
            return
        dialog = EditKeyDialog(key, self.parent_widget)
        key_id = key.id

        def edit_job() -> Callable[[Workstation], Any]:
            changes = dialog.changes()
            if not changes:
                return lambda ws: ws.keys.resolve(key_id)
            return lambda ws: ws.lifecycle.edit(key_id, **changes)  # type: ignore[arg-type]

        self._open(dialog, edit_job, lambda after: f"'{after.name}' saved.")
