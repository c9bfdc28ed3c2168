"""Where the CLI gets names and secrets: automation variables, else a TTY prompt. Never argv."""

from __future__ import annotations

import getpass
import os
import sys

from app.errors import OperationCancelled, ValidationError
from app.services.prompter import SecretKind

ENV_OPERATOR = "KEYSTEAD_OPERATOR"
ENV_PASSPHRASE = "KEYSTEAD_PASSPHRASE"  # noqa: S105 (a variable name)
ENV_PIN = "KEYSTEAD_PIN"
ENV_SO_PIN = "KEYSTEAD_SO_PIN"
ENV_AUDIT_PIN = "KEYSTEAD_AUDIT_PIN"  # the audit token's PIN when it differs from KEYSTEAD_PIN
ENV_NEW_PIN = "KEYSTEAD_NEW_PIN"
ENV_NEW_SO_PIN = "KEYSTEAD_NEW_SO_PIN"
ENV_RECOVERY_PASSPHRASE = "KEYSTEAD_RECOVERY_PASSPHRASE"  # noqa: S105 (a variable name)
ENV_SHARE_PASSPHRASE = "KEYSTEAD_SHARE_PASSPHRASE"  # noqa: S105 (a variable name)

_ENV = {
    SecretKind.PASSPHRASE: ENV_PASSPHRASE,
    SecretKind.USER_PIN: ENV_PIN,
    SecretKind.SO_PIN: ENV_SO_PIN,
    SecretKind.AUDIT_PIN: ENV_AUDIT_PIN,
    SecretKind.NEW_USER_PIN: ENV_NEW_PIN,
    SecretKind.NEW_SO_PIN: ENV_NEW_SO_PIN,
    SecretKind.RECOVERY_PASSPHRASE: ENV_RECOVERY_PASSPHRASE,
    SecretKind.SHARE_PASSPHRASE: ENV_SHARE_PASSPHRASE,
}


def interactive() -> bool:
    return sys.stdin.isatty()


def ask_secret(
    kind: SecretKind, prompt: str, confirm: bool = False, optional: bool = False
) -> str | None:
    """The secret from its environment variable, else from the TTY without echo."""
    from_env = os.environ.get(_ENV[kind])
    if from_env is None and kind is SecretKind.AUDIT_PIN:
        kind = SecretKind.USER_PIN  # one PIN for all, unless the audit token's is set apart
        from_env = os.environ.get(_ENV[kind])
    if from_env == "":
        if optional:
            return None  # as at a terminal: an empty answer skips
        raise ValidationError(f"{_ENV[kind]} is set but empty; nothing was tried.")
    if from_env is not None:
        return from_env
    if not interactive():
        if optional:
            return None
        raise ValidationError(
            f"A {kind.value} is needed: run interactively or set {_ENV[kind]} for automation."
        )
    try:
        value = getpass.getpass(f"{prompt}: ")
        if optional and value == "":
            return None
        if confirm and getpass.getpass(f"Repeat the {kind.value}: ") != value:
            raise ValidationError(f"The two {kind.value}s differ; nothing was changed.")
    except (EOFError, KeyboardInterrupt) as exc:
        raise OperationCancelled("Cancelled; nothing was changed.") from exc
    return value


def require_secret(kind: SecretKind, prompt: str, confirm: bool = False) -> str:
    """Like ``ask_secret`` but never None."""
    value = ask_secret(kind, prompt, confirm=confirm)
    if value is None:
        raise OperationCancelled("Cancelled; nothing was changed.")
    return value


def new_token_pins(label: str) -> tuple[str, str]:
    """The two PINs of a token being created, as ``(user_pin, so_pin)``: the user PIN first,
    as the README and the GUI's first-start dialog ask for them (a first-time officer typed
    the planned user PIN into an SO PIN prompt that came first). Each prompt says what the
    PIN is for, so the two cannot be mistaken for one another."""
    pin = require_secret(
        SecretKind.USER_PIN,
        f"New user PIN for token '{label}' (typed for everyday use)",
        confirm=True,
    )
    so_pin = require_secret(
        SecretKind.SO_PIN,
        f"New SO PIN for token '{label}' (the security officer's recovery PIN, not for daily use)",
        confirm=True,
    )
    return pin, so_pin


def ask_operator(explicit: str | None) -> str:
    if explicit:
        return explicit
    from_env = os.environ.get(ENV_OPERATOR)
    if from_env:
        return from_env
    if not interactive():
        raise ValidationError(f"Name the operator with --operator or {ENV_OPERATOR}.")
    try:
        return input("Operator: ").strip()
    except (EOFError, KeyboardInterrupt) as exc:
        raise OperationCancelled("Cancelled; nothing was changed.") from exc
