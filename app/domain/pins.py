"""The one PIN policy for PINs Keystead sets: the workstation's first token, a new embedded
token, a token initialisation's user PIN, and every PIN change.

- a PIN has ``low``..``high`` bytes in UTF-8 (the token's ulMinPinLen/ulMaxPinLen when it
  reports them; 4..255 for an embedded SoftHSM token, its own limits);
- a token's SO PIN differs from its user PIN (the SO PIN unblocks the user PIN: the same
  value would make the two roles one).
"""

from __future__ import annotations

from app.errors import ValidationError

DEFAULT_LIMITS = (4, 255)


def pin_problem(pin: str, what: str, limits: tuple[int, int] = DEFAULT_LIMITS) -> str | None:
    """Why ``pin`` is not acceptable as a new ``what`` ("user PIN", "SO PIN"), or None."""
    low, high = limits
    length = len(pin.encode("utf-8"))
    if not low <= length <= high:
        # PKCS#11 counts PIN lengths in bytes: say so, and how long this one is.
        return (
            f"The {what} must have {low} to {high} bytes in UTF-8 (this token's limits); "
            f"this one has {length} bytes ({len(pin)} characters)."
        )
    return None


def pair_problem(so_pin: str, user_pin: str) -> str | None:
    """Why an SO PIN and a user PIN set together are not acceptable, or None."""
    if so_pin == user_pin:
        return "The SO PIN must differ from the user PIN."
    return None


def check_new_pins(so_pin: str, user_pin: str, limits: tuple[int, int] = DEFAULT_LIMITS) -> None:
    """Raise ValidationError unless both PINs follow the policy."""
    for problem in (
        pin_problem(so_pin, "SO PIN", limits),
        pin_problem(user_pin, "user PIN", limits),
        pair_problem(so_pin, user_pin),
    ):
        if problem:
            raise ValidationError(problem)
