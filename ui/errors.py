"""The GUI's one place that turns errors into words for a person."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QMessageBox, QWidget

from app.errors import (
    AuthenticationError,
    KeysteadError,
    PolicyError,
    StorageError,
    TokenError,
    ValidationError,
)

log = logging.getLogger(__name__)

_TITLES: list[tuple[type[KeysteadError], str]] = [
    (ValidationError, "Check the input"),
    (PolicyError, "Not allowed"),
    (AuthenticationError, "Not accepted"),
    (TokenError, "Token problem"),
    (StorageError, "Database problem"),
]


def describe(error: BaseException) -> tuple[str, str]:
    """(title, message) for any error; unexpected ones say so plainly."""
    if isinstance(error, KeysteadError):
        for cls, title in _TITLES:
            if isinstance(error, cls):
                return title, error.message
        return "Keystead", error.message
    log.error("unexpected error", exc_info=error)
    return (
        "Unexpected error",
        f"Keystead hit an unexpected error ({type(error).__name__}). Nothing was recorded "
        "as done. Please report this with the time it happened.",
    )


def message(error: BaseException) -> str:
    return describe(error)[1]


def show_error(parent: QWidget | None, error: BaseException) -> None:
    title, text = describe(error)
    QMessageBox.warning(parent, title, text)
