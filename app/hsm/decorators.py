"""The decorators of ``TokenSession``'s methods and the stale-session codes they act on.

``writes`` brings the store guard's verified shadow copies up to date after a method that can
change the token's files (``app.hsm.filestore``); ``recovering`` and ``recovering_handle_only``
reopen a stale session once and run the call again. They are typed to ``RecoverableSession``,
the part of a session they use.
"""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import pkcs11.exceptions as px

from app.errors import KeysteadError, TokenError, TokenNotLoggedIn, TokenRemoved
from app.hsm.module import Pkcs11Module, TokenInfo

log = logging.getLogger(__name__)

# A session the module no longer knows, or a device that dropped off and may be back: reopen
# once and re-find objects by CKA_ID. Reopening fails as "removed" when the token is not there,
# and as "log in again" when the login went with the old session.
STALE = (px.SessionHandleInvalid, px.SessionClosed, px.DeviceRemoved)
# Codes that say the call never reached the token: the only retry a PIN change allows.
HANDLE_STALE = (px.SessionHandleInvalid, px.SessionClosed)

P = ParamSpec("P")
R = TypeVar("R")


class RecoverableSession(Protocol):
    """What the decorators use of a session (``app.hsm.session.TokenSession``)."""

    module: Pkcs11Module
    info: TokenInfo
    lost: bool  # set when the token forgot the login or went away: log in again

    def reopen(self) -> None:
        """Replace a stale session handle (TokenRemoved, TokenNotLoggedIn when it cannot)."""

    def still_present(self) -> None:
        """Raise TokenRemoved unless the token still answers."""


S = TypeVar("S", bound=RecoverableSession)


def is_stale(exc: BaseException, stale: tuple[type[BaseException], ...] = STALE) -> bool:
    """True if ``exc`` (or the PKCS#11 error a Keystead error was raised from) is one of
    ``stale``."""
    return isinstance(exc, stale) or (
        isinstance(exc, KeysteadError) and isinstance(exc.__cause__, stale)
    )


def _drop_stale_finalizer(previous: Callable[[Any], object], unraisable: Any) -> None:
    """python-pkcs11 ends an abandoned object search in ``__del__``; on a stale handle that
    fails again and would print a traceback. Expected here, so it is only logged."""
    if isinstance(unraisable.exc_value, STALE):
        log.debug("ending a search on a stale session failed, as expected")
        return
    previous(unraisable)


def _drop_stale_print(previous: Callable[..., object], kind: Any, value: Any, tb: Any) -> None:
    """Cython prints a failing ``__del__`` through ``sys.excepthook`` too; same filter."""
    if isinstance(value, STALE):
        return
    previous(kind, value, tb)


def _release_frames(exc: BaseException | None) -> None:
    while exc is not None:
        if exc.__traceback__ is not None:
            traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


def writes(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], R]:
    """A method that can change the token's files: when it returns or fails, the module's
    store guard brings its verified shadow copies up to date (``app.hsm.filestore``)."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        finally:
            self.module.wrote()

    return wrapper


def recovering(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], R]:
    """Run a session method; if the module says the session is stale (or the device dropped
    off), reopen the session once and run it again (objects are found by CKA_ID, so nothing
    else is kept). For calls that are safe to repeat."""
    return _recovering(method, STALE)


def recovering_handle_only(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], R]:
    """Like ``recovering``, but only when the call cannot have reached the token (a stale
    handle): for calls that must not happen twice, such as a PIN change."""
    return _recovering(method, HANDLE_STALE)


def _recovering(
    method: Callable[Concatenate[S, P], R],
    stale: tuple[type[BaseException], ...],
) -> Callable[Concatenate[S, P], R]:
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        previous, previous_except = sys.unraisablehook, sys.excepthook
        sys.unraisablehook = functools.partial(_drop_stale_finalizer, previous)
        sys.excepthook = functools.partial(_drop_stale_print, previous_except)
        try:
            return method(self, *args, **kwargs)
        except (KeysteadError, px.PKCS11Error) as exc:
            if not is_stale(exc, stale):
                if isinstance(exc, (TokenNotLoggedIn, px.UserNotLoggedIn)):
                    self.lost = True  # the token says the login is gone: ask for the PIN again
                elif isinstance(exc, TokenError) and not isinstance(exc, TokenRemoved):
                    self.still_present()  # a vague failure of a token that went away
                raise
            _release_frames(exc)  # end abandoned searches now, while their noise is dropped
        finally:
            sys.unraisablehook, sys.excepthook = previous, previous_except
        self.reopen()
        try:
            return method(self, *args, **kwargs)
        except TokenNotLoggedIn:
            self.lost = True
            raise TokenNotLoggedIn(
                f"Token '{self.info.label}' forgot the login (it was removed or went to sleep). "
                "Log in again; nothing was changed."
            ) from None
        except TokenRemoved:
            self.lost = True
            raise

    functools.update_wrapper(wrapper, method)
    return wrapper
