"""Translate python-pkcs11 exceptions into Keystead errors, where the library is called."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pkcs11.exceptions as px

from app.errors import (
    PinLocked,
    TokenError,
    TokenNotLoggedIn,
    TokenNotPresent,
    TokenRemoved,
    UnsupportedAlgorithm,
    WrongPin,
)

# Codes python-pkcs11 raises as "Unmapped error code 0x..".
_UNMAPPED_NAMES = {
    0x1B: "CKR_ACTION_PROHIBITED",
    0x115: "CKR_CURVE_NOT_SUPPORTED",
    0x1B0: "CKR_NEW_PIN_MODE",
    0x1B1: "CKR_NEXT_OTP",
    0x1B5: "CKR_EXCEEDED_MAX_ITERATIONS",
    0x200: "CKR_FUNCTION_REJECTED",
}

_REMOVED = (
    px.DeviceRemoved,
    px.TokenNotPresent,
    px.SessionHandleInvalid,
    px.SessionClosed,
    px.DeviceError,
    px.TokenNotRecognised,
)
_UNSUPPORTED = (px.MechanismInvalid, px.KeySizeRange, px.DomainParamsInvalid)


def unmapped_code(exc: BaseException) -> int | None:
    """The CKR code of an error python-pkcs11 could not map, else None."""
    match = re.search(r"Unmapped error code (0x[0-9a-fA-F]+)", str(exc))
    return int(match.group(1), 16) if match else None


# python-pkcs11 classes whose names are not their CKR constant spelled in CamelCase.
_CLASS_CKR = {
    "FunctionCancelled": "CKR_FUNCTION_CANCELED",
    "TokenNotRecognised": "CKR_TOKEN_NOT_RECOGNIZED",
}


def ckr_name(exc: px.PKCS11Error) -> str:
    """The CKR_ constant of the failure as PKCS#11 and token vendors write it, e.g.
    ``GeneralError`` -> ``CKR_GENERAL_ERROR``; the class name for python-pkcs11's own errors."""
    code = unmapped_code(exc)
    if code is not None:
        return _UNMAPPED_NAMES.get(code, f"CKR {code:#x}")
    name = type(exc).__name__
    if name in _CLASS_CKR:
        return _CLASS_CKR[name]
    if type(exc) is px.PKCS11Error or name.startswith(("NoSuch", "Multiple", "Already")):
        return name
    return "CKR_" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def describe(exc: px.PKCS11Error) -> str:
    """A short name for the PKCS#11 failure (class name or CKR_ constant)."""
    code = unmapped_code(exc)
    if code is not None:
        return _UNMAPPED_NAMES.get(code, f"CKR {code:#x}")
    return type(exc).__name__


def translate(exc: px.PKCS11Error, action: str) -> Exception:
    """Return the Keystead error for ``exc`` raised while ``action`` (e.g. 'generating a key')."""
    if isinstance(exc, px.PinIncorrect):
        return WrongPin("The token rejected the PIN.", failures=0)
    if isinstance(exc, px.PinLocked):
        return PinLocked(
            "The token has locked its user PIN. A security officer must unblock it with the SO PIN."
        )
    if isinstance(exc, px.PinExpired):
        return TokenError("The token's PIN has expired; change it before logging in.")
    if isinstance(exc, px.UserNotLoggedIn):
        return TokenNotLoggedIn(f"Log in to the token before {action}.")
    if isinstance(exc, _REMOVED):
        return TokenRemoved(
            f"The token was removed or stopped answering while {action}. Nothing was recorded; "
            "re-insert it and try again."
        )
    if isinstance(exc, px.NoSuchToken):
        return TokenNotPresent(f"The token is not present ({exc}).")
    if isinstance(exc, _UNSUPPORTED):
        return UnsupportedAlgorithm(
            f"The token does not support this while {action} ({describe(exc)})."
        )
    if isinstance(exc, px.DeviceMemory):
        return TokenError(f"The token is out of memory while {action}; free space on it first.")
    if isinstance(exc, px.TokenWriteProtected):
        return TokenError(f"The token is write-protected; cannot complete {action}.")
    if unmapped_code(exc) == 0x1B:
        return TokenError(f"The token prohibits {action} for this object (CKR_ACTION_PROHIBITED).")
    return TokenError(f"The token failed while {action} ({ckr_name(exc)}).")


@contextmanager
def pkcs11_errors(action: str) -> Iterator[None]:
    """Translate any PKCS#11 exception raised inside the block."""
    try:
        yield
    except px.PKCS11Error as exc:
        raise translate(exc, action) from exc
