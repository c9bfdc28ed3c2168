"""A fault-injecting wrapper around the real python-pkcs11 objects under Keystead's adapter.

SoftHSM cannot be made to fail on cue, nor to lock or expire a PIN. These wrappers sit between
``app.hsm`` and the real python-pkcs11 library, slots, tokens, sessions and objects on SoftHSM:
every call goes through to the real token and is counted by name, and a planned fault is raised
at the Nth call of a name, either

- ``BEFORE`` the call reaches the token (the token did nothing), or
- ``AFTER`` it (the token did it and the answer was lost on the way back).

The exceptions are the ones python-pkcs11 0.10 itself raises for each CKR code (one class per
code; ``CKR_ACTION_PROHIBITED`` has none and comes as ``PKCS11Error("Unmapped error code
0x1b")``). ``LOST_HANDLE`` is not an exception made here: the session handle is really closed
with ``C_CloseSession`` just before the call, so SoftHSM itself answers it, and every later call
on that handle, with CKR_SESSION_HANDLE_INVALID.

Token flags (``CKF_USER_PIN_*``) can be added to what the token reports, for the PIN states
SoftHSM never reaches.

Counted calls: ``login`` / ``login_so`` / ``open`` (C_OpenSession with or without C_Login),
``generate_key``, ``generate_keypair``, ``create_object``, ``get_objects``, ``set_pin``,
``init_pin``, and on objects ``get_attributes``, ``get_attribute`` (``obj[attr]``),
``set_attribute`` (``obj[attr] = v``), ``destroy`` and ``sign``. Slot and token listing
(C_GetSlotList, C_GetTokenInfo, C_GetMechanismList) and C_CloseSession pass through uncounted.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pkcs11.exceptions as px
from pkcs11 import Attribute, ObjectClass

from app.hsm.module import Pkcs11Module, _function_list, _serial_text
from app.hsm.session import TokenSession

BEFORE = "before"
AFTER = "after"
LOST_HANDLE = "LOST_HANDLE"  # a real C_CloseSession on the handle, not a made-up exception

# CKR code -> the exception python-pkcs11 raises for it.
CODES: dict[str, Callable[[], px.PKCS11Error]] = {
    "CKR_DEVICE_REMOVED": px.DeviceRemoved,
    "CKR_SESSION_HANDLE_INVALID": px.SessionHandleInvalid,
    "CKR_TOKEN_NOT_PRESENT": px.TokenNotPresent,
    "CKR_DEVICE_ERROR": px.DeviceError,
    "CKR_GENERAL_ERROR": px.GeneralError,
    "CKR_DEVICE_MEMORY": px.DeviceMemory,
    "CKR_USER_NOT_LOGGED_IN": px.UserNotLoggedIn,
    "CKR_FUNCTION_FAILED": px.FunctionFailed,
    "CKR_ACTION_PROHIBITED": lambda: px.PKCS11Error("Unmapped error code 0x1b"),
    "CKR_PIN_LOCKED": px.PinLocked,
    "CKR_PIN_INCORRECT": px.PinIncorrect,
}

# CK_TOKEN_INFO flags of the user PIN (PKCS#11 3.0 section 5.5).
CKF_USER_PIN_COUNT_LOW = 0x00010000
CKF_USER_PIN_FINAL_TRY = 0x00020000
CKF_USER_PIN_LOCKED = 0x00040000
CKF_USER_PIN_TO_BE_CHANGED = 0x00080000


@dataclass
class Plan:
    """One fault to inject: ``code`` at the ``nth`` call named ``call``, ``when`` it runs."""

    call: str
    code: str
    nth: int = 1
    when: str = BEFORE
    fired: bool = False


class InjectedFault(AssertionError):
    """Raised for a plan whose code is unknown (a mistake in the test, not a token fault)."""


@dataclass
class Faults:
    """The counter and the plan shared by every wrapper of one installation."""

    module: Pkcs11Module
    calls: list[str] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    flags_set: int = 0
    flags_clear: int = 0
    hooks: list[tuple[str, int, Callable[[], object]]] = field(default_factory=list)
    _real_lib: Any = None

    # --- planning --------------------------------------------------------------------------

    def arm(self, call: str, code: str, nth: int = 1, when: str = BEFORE) -> Plan:
        if code != LOST_HANDLE and code not in CODES:
            raise InjectedFault(f"unknown code {code}")
        if when not in (BEFORE, AFTER):
            raise InjectedFault(f"'when' is {BEFORE!r} or {AFTER!r}")
        plan = Plan(call, code, nth, when)
        self.plans.append(plan)
        return plan

    def when_called(self, call: str, hook: Callable[[], object], nth: int = 1) -> None:
        """Run ``hook`` right after the ``nth`` call named ``call`` returns or raises (e.g. to
        make the token report a locked PIN once a wrong one was tried)."""
        self.hooks.append((call, nth, hook))

    def disarm(self) -> None:
        self.plans.clear()
        self.hooks.clear()

    def reset(self) -> None:
        """Forget the calls counted so far (the plan counts from here)."""
        self.calls.clear()

    @property
    def fired(self) -> list[Plan]:
        return [p for p in self.plans if p.fired]

    def count(self, name: str) -> int:
        return self.calls.count(name)

    # --- the one path every counted call takes ---------------------------------------------

    def through(
        self, name: str, session: Any, fn: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any:
        """Count the call ``name`` made on ``session``; fire what is planned for it."""
        self.calls.append(name)
        nth = self.calls.count(name)
        due = [p for p in self.plans if not p.fired and p.call == name and p.nth == nth]
        for plan in due:
            if plan.when == BEFORE:
                self._fire(plan, session)
        try:
            result = fn(*args, **kw)
        finally:
            for call, at, hook in self.hooks:
                if call == name and at == nth:
                    hook()
        for plan in due:
            if plan.when == AFTER:
                self._fire(plan, session)
        return result

    def _fire(self, plan: Plan, session: Any) -> None:
        plan.fired = True
        if plan.code == LOST_HANDLE:
            close_for_real(self.module, session)
            return  # the real call now fails on its own
        raise CODES[plan.code]()

    # --- wrapping --------------------------------------------------------------------------

    def wrap_object(self, obj: Any) -> Any:
        return obj if isinstance(obj, FaultyObject) else FaultyObject(obj, self)

    def wrap_session(self, session: Any) -> Any:
        return session if isinstance(session, FaultySession) else FaultySession(session, self)

    @property
    def real_lib(self) -> Any:
        return self._real_lib


def close_for_real(module: Pkcs11Module, session: Any) -> None:
    """C_CloseSession on a python-pkcs11 session's handle, behind python-pkcs11's back."""
    functions = _function_list(module.path)
    close = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong)(functions.C_CloseSession)
    rv = close(int(session.handle))
    assert rv == 0, f"C_CloseSession answered {rv:#x}"


class _Proxy:
    """Everything not counted goes straight to the real python-pkcs11 object."""

    def __init__(self, real: Any, faults: Faults) -> None:
        self._real = real
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._real!r}>"


class FaultyObject(_Proxy):
    """A key or data object; attribute reads and writes, destroy and sign are steps."""

    def _session(self) -> Any:
        return self._real.session

    def __getitem__(self, key: Attribute) -> Any:
        return self._faults.through("get_attribute", self._session(), self._real.__getitem__, key)

    def __setitem__(self, key: Attribute, value: Any) -> None:
        self._faults.through("set_attribute", self._session(), self._real.__setitem__, key, value)

    def get_attributes(self, keys: list[Attribute]) -> dict[Attribute, Any]:
        result: dict[Attribute, Any] = self._faults.through(
            "get_attributes", self._session(), self._real.get_attributes, keys
        )
        return result

    def destroy(self) -> None:
        self._faults.through("destroy", self._session(), self._real.destroy)

    def sign(self, data: Any, **kwargs: Any) -> Any:
        return self._faults.through("sign", self._session(), self._real.sign, data, **kwargs)


class FaultySession(_Proxy):
    """A python-pkcs11 session whose calls, and the objects they return, are steps."""

    def __enter__(self) -> FaultySession:
        self._real.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._real.__exit__(*exc)

    def generate_key(self, *args: Any, **kwargs: Any) -> Any:
        key = self._faults.through(
            "generate_key", self._real, self._real.generate_key, *args, **kwargs
        )
        return self._faults.wrap_object(key)

    def generate_keypair(self, *args: Any, **kwargs: Any) -> Any:
        public, private = self._faults.through(
            "generate_keypair", self._real, self._real.generate_keypair, *args, **kwargs
        )
        return self._faults.wrap_object(public), self._faults.wrap_object(private)

    def create_object(self, attrs: dict[Attribute, Any]) -> Any:
        obj = self._faults.through("create_object", self._real, self._real.create_object, attrs)
        return self._faults.wrap_object(obj)

    def get_objects(self, attrs: dict[Attribute, Any] | None = None) -> Iterator[Any]:
        found = self._faults.through("get_objects", self._real, self._real.get_objects, attrs)
        return (self._faults.wrap_object(obj) for obj in found)

    def set_pin(self, old_pin: str, new_pin: str) -> None:
        self._faults.through("set_pin", self._real, self._real.set_pin, old_pin, new_pin)

    def init_pin(self, pin: str) -> None:
        self._faults.through("init_pin", self._real, self._real.init_pin, pin)


class FaultyToken(_Proxy):
    """A token whose flags can be faked and whose sessions are wrapped."""

    @property
    def flags(self) -> int:
        return (int(self._real.flags) | self._faults.flags_set) & ~self._faults.flags_clear

    def open(self, **kwargs: Any) -> FaultySession:
        if kwargs.get("user_pin") is not None:
            name = "login"
        elif kwargs.get("so_pin") is not None:
            name = "login_so"
        else:
            name = "open"
        session = self._faults.through(name, None, self._real.open, **kwargs)
        return FaultySession(session, self._faults)


class FaultySlot(_Proxy):
    def get_token(self) -> FaultyToken:
        return FaultyToken(self._real.get_token(), self._faults)


class FaultyLib(_Proxy):
    def get_slots(self, *args: Any, **kwargs: Any) -> list[FaultySlot]:
        return [FaultySlot(s, self._faults) for s in self._real.get_slots(*args, **kwargs)]


def install(session: TokenSession) -> Faults:
    """Put the wrappers under ``session`` and under its module (call on the core thread).

    The module's library is wrapped, so tokens found later (login, a reopened session) come
    wrapped too; the session already open is wrapped in place, with the audit key objects it
    holds. ``uninstall`` gives the module its own library back.
    """
    module = session.module
    faults = Faults(module)
    faults._real_lib = module._lib
    module._lib = FaultyLib(module._lib, faults)
    session._session = faults.wrap_session(session._session)
    audit = session._audit  # the audit key handles it keeps (app.hsm.audit_objects)
    audit.found = {k: faults.wrap_object(v) for k, v in audit.found.items()}
    return faults


def install_on_module(module: Pkcs11Module) -> Faults:
    """Wrap a module's library only (for logins: no session is open yet)."""
    faults = Faults(module)
    faults._real_lib = module._lib
    module._lib = FaultyLib(module._lib, faults)
    return faults


def uninstall(faults: Faults) -> None:
    faults.disarm()
    faults.flags_set = faults.flags_clear = 0
    if isinstance(faults.module._lib, FaultyLib):
        faults.module._lib = faults.real_lib


# --- looking at the token without Keystead -----------------------------------------------------


def token_objects(faults: Faults, serial: str) -> Counter[tuple[str, str, str]]:
    """(class, CKA_ID hex, label) of every object on the token, counted (two objects alike are
    two), through a fresh session on the real library, outside the wrappers. Private objects
    show while this process is logged in (a PKCS#11 login belongs to the application). Call on
    the core thread."""
    for slot in faults.real_lib.get_slots(token_present=True):
        token = slot.get_token()
        if _serial_text(token.serial) == serial:
            with token.open() as fresh:
                found: Counter[tuple[str, str, str]] = Counter()
                for obj in fresh.get_objects():
                    attrs = obj.get_attributes([Attribute.CLASS, Attribute.ID, Attribute.LABEL])
                    found[
                        (
                            ObjectClass(attrs[Attribute.CLASS]).name,
                            bytes(attrs.get(Attribute.ID) or b"").hex(),
                            str(attrs.get(Attribute.LABEL) or ""),
                        )
                    ] += 1
                return found
    raise AssertionError(f"token {serial} is not present")


__all__ = [
    "AFTER",
    "BEFORE",
    "CKF_USER_PIN_COUNT_LOW",
    "CKF_USER_PIN_FINAL_TRY",
    "CKF_USER_PIN_LOCKED",
    "CKF_USER_PIN_TO_BE_CHANGED",
    "CODES",
    "LOST_HANDLE",
    "Faults",
    "FaultyObject",
    "FaultySession",
    "install",
    "install_on_module",
    "token_objects",
    "uninstall",
]
