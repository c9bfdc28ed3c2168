"""Logging in to a token from the GUI: one PIN dialog kept open until the token accepts the
PIN, says a wrong PIN in place (with the count), and counts down a back-off with OK disabled."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QWidget

from app.errors import PinBackoff, WrongPin
from app.hsm.module import TokenInfo
from app.services.prompter import SecretKind
from ui.dialogs.secret import SecretDialog
from ui.errors import message, show_error
from ui.session import GuiSession


def login_to_token(
    parent: QWidget,
    session: GuiSession,
    info: TokenInfo,
    then: Callable[[], None] | None = None,
    note: str = "",
    purpose: str = "",
) -> SecretDialog:
    """Ask for the token's user PIN and log in; ``then()`` runs after a successful login.
    Returns the (open, window-modal) dialog."""
    dialog: SecretDialog

    def submit(pin: str) -> None:
        session.run(lambda ws: ws.tokens.login(info.serial, pin), done, failed)

    def done(result: object) -> None:
        dialog.accept()
        session.refresh_tokens()
        if isinstance(result, TokenInfo) and "user PIN to be changed" in result.flag_words:
            QMessageBox.information(
                parent,
                "Change the PIN",
                f"Token '{result.label}' asks for its user PIN to be changed (it is a default, "
                "has expired, or was just set by the security officer). Change it now: "
                "Tokens → PINs → Change user PIN…",
            )
        if then is not None:
            then()

    def failed(error: BaseException) -> None:
        if isinstance(error, PinBackoff):
            dialog.hold(error.retry_after, message(error))
        elif isinstance(error, WrongPin):
            dialog.failed(message(error))
        else:
            dialog.reject()
            show_error(parent, error)

    prompt = (
        f"Log in to token '{info.label}' (serial {info.serial}) with its user PIN. The PIN is "
        "sent to the token and never stored."
    )
    if purpose:
        prompt = f"{purpose}\n\n{prompt}"
    dialog = SecretDialog(SecretKind.USER_PIN, prompt, parent, note=note, on_submit=submit)
    dialog.setWindowTitle(f"Log in — {info.label}")
    dialog.open()
    return dialog


def login_to_audit_token(
    parent: QWidget, session: GuiSession, then: Callable[[], None] | None = None, why: str = ""
) -> SecretDialog | None:
    """Log in to the workstation's audit token; None (after saying so) if it is not present."""
    status = session.audit_status()
    if status is None:
        label = session.audit_label or "the audit token"
        QMessageBox.warning(
            parent,
            "Audit token not present",
            f"{why + ' ' if why else ''}The workstation's audit token '{label}' (serial "
            f"{session.audit_serial or 'unknown'}) is not attached. Insert it, then try again; "
            "what you typed is kept.",
        )
        return None
    return login_to_token(parent, session, status.info, then, purpose=why)
