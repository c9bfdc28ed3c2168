"""Logging in to a token from the GUI: PIN dialog, core job, retry with what went wrong."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QWidget

from app.errors import WrongPin
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
) -> None:
    """Ask for the token's user PIN and log in; on a wrong PIN ask again, showing the count."""
    dialog = SecretDialog(
        SecretKind.USER_PIN,
        f"Log in to token '{info.label}' (serial {info.serial}). The PIN is sent to the token "
        "and never stored.",
        parent,
        note=note,
    )
    if not dialog.exec():
        return
    pin = dialog.secret()

    def done(result: object) -> None:
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
        if isinstance(error, WrongPin):
            login_to_token(parent, session, info, then, note=message(error))
        else:
            show_error(parent, error)

    session.run(lambda ws: ws.tokens.login(info.serial, pin), done, failed)
