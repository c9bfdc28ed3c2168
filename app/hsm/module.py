"""Loading a PKCS#11 module and describing its slots and tokens."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
import pkcs11.exceptions as px
from pkcs11.constants import TokenFlag

from app.domain.text import safe_token_text
from app.errors import (
    AmbiguousToken,
    ModuleLoadError,
    PinLocked,
    TokenError,
    TokenNotPresent,
    TokenRemoved,
    ValidationError,
    WrongPin,
)
from app.hsm.errors import ckr_name, pkcs11_errors
from app.hsm.filestore import FileStore

log = logging.getLogger(__name__)

# What a slot answers when its token went away. SoftHSM answers CKR_GENERAL_ERROR once its
# token directory is gone (and keeps answering it until the module is initialised again).
_GONE = (px.TokenNotPresent, px.TokenNotRecognised, px.DeviceRemoved, px.GeneralError)

# Flags of CK_TOKEN_INFO, in words (PKCS#11 3.0 section 5.5).
_FLAG_WORDS: list[tuple[int, str]] = [
    (0x00000001, "RNG"),
    (0x00000002, "write protected"),
    (0x00000004, "login required"),
    (0x00000008, "user PIN initialised"),
    (0x00000040, "clock"),
    (0x00000100, "protected authentication path"),
    (0x00000400, "token initialised"),
    (0x00010000, "user PIN count low"),
    (0x00020000, "user PIN final try"),
    (0x00040000, "user PIN locked"),
    (0x00080000, "user PIN to be changed"),
    (0x00100000, "SO PIN count low"),
    (0x00200000, "SO PIN final try"),
    (0x00400000, "SO PIN locked"),
    (0x00800000, "SO PIN to be changed"),
]


@dataclass(frozen=True)
class ModuleInfo:
    path: str
    description: str
    manufacturer: str
    cryptoki_version: str
    library_version: str


@dataclass(frozen=True)
class TokenInfo:
    """A token in a slot, as the module reports it. Identify tokens by ``serial``.

    ``serial`` is the token's identity in Keystead: the serial number the token reports
    (``reported_serial``) or, when that number cannot tell tokens apart (empty, or one
    character repeated, as tpm2-pkcs11's ``0000000000000000`` for every token), the number and
    the label joined by '/' (``token_identity``). Keys are bound to it. Two present tokens with
    one identity are ambiguous: Keystead acts on neither (``TokenService.find``).
    """

    module_path: str
    slot_id: int
    label: str
    serial: str
    manufacturer: str
    model: str
    flags: int
    hardware_version: str
    firmware_version: str
    reported_serial: str = ""
    slot_description: str = ""

    @property
    def initialized(self) -> bool:
        return bool(self.flags & TokenFlag.TOKEN_INITIALIZED)

    @property
    def flag_words(self) -> list[str]:
        return [word for bit, word in _FLAG_WORDS if self.flags & bit]


def _version(value: tuple[int, int] | object) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}.{value[1]}"
    return str(value)


def _serial_text(serial: bytes | str) -> str:
    text = serial.decode("ascii", "replace") if isinstance(serial, bytes) else serial
    return text.strip()


def placeholder_serial(serial: str) -> bool:
    """True for a serial number that tells no token apart: empty, or one character repeated
    (tpm2-pkcs11 1.9 reports ``0000000000000000`` for every token)."""
    return len(set(serial.strip())) <= 1


def token_identity(serial: str, label: str) -> str:
    """The identity Keystead binds keys to: the serial, or ``serial/label`` when the serial is
    a placeholder (see ``TokenInfo``)."""
    serial = serial.strip()
    return f"{serial}/{label.strip()}" if placeholder_serial(serial) else serial


def _describe(path: str, slot: pkcs11.Slot, token: pkcs11.Token) -> TokenInfo:
    reported = _serial_text(token.serial)
    label = token.label.strip()
    return TokenInfo(
        module_path=path,
        slot_id=int(slot.slot_id),
        label=safe_token_text(label),  # untrusted token text, shown escaped
        serial=token_identity(reported, label),
        manufacturer=safe_token_text(token.manufacturer_id.strip()),
        model=safe_token_text(token.model.strip()),
        flags=int(token.flags),
        hardware_version=_version(getattr(token, "hardware_version", "")),
        firmware_version=_version(getattr(token, "firmware_version", "")),
        reported_serial=reported,
        slot_description=safe_token_text(str(getattr(slot, "slot_description", "")).strip()),
    )


class Pkcs11Module:
    """One loaded PKCS#11 library. Use from the core thread only."""

    def __init__(self, path: str, store: FileStore | None = None) -> None:
        self.path = path
        # The embedded store's guard (``app.hsm.filestore``): told after every call that can
        # write the token files, so their verified shadow copies follow each change.
        self.store = store
        if not Path(path).is_file():
            raise ModuleLoadError(
                f"No PKCS#11 module at {path}. Check the path, or install the token's driver."
            )
        error: px.PKCS11Error | None = None
        with _ModuleOutput() as said:
            try:
                self._lib = _load_library(path)
            except px.PKCS11Error as exc:
                error = exc
        if error is not None:
            raise _load_error(path, error, said.text) from error
        log.info("loaded PKCS#11 module %s", path)

    @property
    def raw(self) -> Any:
        """The python-pkcs11 library object; for app.hsm only."""
        return self._lib

    def wrote(self, token_object_only: bool = False) -> None:
        """A call that may have changed token files returned (or failed): refresh shadows.
        ``token_object_only``: the call can only have rewritten ``token.object`` (C_Login's
        PIN flags), so the other object files are not looked at (a stat each: O(objects))."""
        if self.store is not None:
            if token_object_only:
                self.store.sync_token_objects()
            else:
                self.store.sync()

    def info(self) -> ModuleInfo:
        lib = self._lib
        return ModuleInfo(
            path=self.path,
            description=safe_token_text(lib.library_description),
            manufacturer=safe_token_text(lib.manufacturer_id),
            cryptoki_version=_version(lib.cryptoki_version),
            library_version=_version(lib.library_version),
        )

    def _slots(self) -> list[pkcs11.Slot]:
        with pkcs11_errors("listing slots"):
            return list(self._lib.get_slots(token_present=True))

    def tokens(self, include_uninitialized: bool = False) -> list[TokenInfo]:
        """Tokens present now, in slot order."""
        result: list[TokenInfo] = []
        for slot in self._slots():
            try:
                token = slot.get_token()
            except _GONE:
                continue
            info = _describe(self.path, slot, token)
            if info.initialized or include_uninitialized:
                result.append(info)
        return result

    def token(self, serial: str) -> pkcs11.Token:
        """The python-pkcs11 token with this identity (``TokenInfo.serial``); raises
        TokenNotPresent, or AmbiguousToken when two of this module's slots answer to it."""
        found = []
        for slot in self._slots():
            try:
                token = slot.get_token()
            except _GONE:
                continue
            if token_identity(_serial_text(token.serial), token.label) == serial:
                found.append(token)
        if len(found) > 1:
            raise AmbiguousToken(
                f"{len(found)} tokens of {self.path} answer to serial and label {serial}; "
                "Keystead acts on neither. Remove one, or initialise one with another label."
            )
        if found:
            return found[0]
        raise TokenNotPresent(f"The token with serial {serial} is not present. Insert it.")

    def mechanisms(self, serial: str) -> set[str]:
        token = self.token(serial)
        with pkcs11_errors("reading the mechanism list"):
            return {
                m.name if hasattr(m, "name") else hex(int(m)) for m in token.slot.get_mechanisms()
            }

    def mechanism_range(self, serial: str, mechanism: str) -> tuple[int | None, int | None]:
        token = self.token(serial)
        with pkcs11_errors("reading mechanism information"):
            info = token.slot.get_mechanism_info(pkcs11.Mechanism[mechanism])
        return info.min_key_length, info.max_key_length

    def init_token(self, slot_id: int, so_pin: str, label: str) -> None:
        """C_InitToken: erase the token in ``slot_id`` and give it ``label`` and ``so_pin``.

        python-pkcs11 has no binding for C_InitToken, so it is called through the module's own
        function list; the PIN goes from memory to the library, never through argv or files.
        """
        encoded_label = label.encode("utf-8")
        if len(encoded_label) > 32:
            raise ValidationError("A token label has at most 32 bytes.")
        padded_label = encoded_label.ljust(32, b" ")
        pin = so_pin.encode("utf-8")
        functions = _function_list(self.path)
        init = ctypes.CFUNCTYPE(
            ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p
        )(functions.C_InitToken)
        pin_buffer = ctypes.create_string_buffer(pin, len(pin))
        try:
            rv = init(slot_id, pin_buffer, len(pin), padded_label)
        finally:
            ctypes.memset(pin_buffer, 0, len(pin))
            self.wrote()
        if rv == 0xA0:  # CKR_PIN_INCORRECT
            raise WrongPin("The token rejected the SO PIN; nothing was erased.", failures=0)
        if rv == 0xA4:  # CKR_PIN_LOCKED
            raise PinLocked("The token has locked its SO PIN; it cannot be initialised.")
        if rv == 0xB3:  # CKR_SESSION_EXISTS
            raise TokenError("The token still has open sessions; log out of it first.")
        if rv in (0x32, 0xE0):  # CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT
            raise TokenRemoved("The token was removed; nothing was erased. Re-insert it.")
        if rv != 0:
            raise TokenError(f"The module refused to initialise the token (CKR {rv:#x}).")

    def init_user_pin(self, serial: str, so_pin: str, user_pin: str) -> None:
        """C_InitPIN as the security officer: set (or reset) the token's user PIN."""
        token = self.token(serial)
        try:
            with (
                pkcs11_errors("setting the user PIN"),
                token.open(rw=True, so_pin=so_pin) as session,
            ):
                session.init_pin(user_pin)
        finally:
            self.wrote()

    def change_so_pin(self, serial: str, old_so_pin: str, new_so_pin: str) -> None:
        """C_SetPIN in a security officer session."""
        token = self.token(serial)
        try:
            with (
                pkcs11_errors("changing the SO PIN"),
                token.open(rw=True, so_pin=old_so_pin) as session,
            ):
                session.set_pin(old_so_pin, new_so_pin)
        finally:
            self.wrote()

    def reinit_token(self, serial: str, so_pin: str, label: str) -> None:
        """C_InitToken on the token with this serial, wherever its slot is now."""
        token = self.token(serial)
        self.init_token(int(token.slot.slot_id), so_pin, label)

    def close_all_sessions(self, slot_id: int) -> None:
        """C_CloseAllSessions: end this process's sessions (and so its login) on a slot."""
        functions = _function_list(self.path)
        close_all = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong)(functions.C_CloseAllSessions)
        rv = close_all(slot_id)
        if rv not in (0, 0x32, 0xE0, 0x3):  # OK, DEVICE_REMOVED, TOKEN_NOT_PRESENT, SLOT_ID_INVALID
            raise TokenError(f"The module could not close its sessions (CKR {rv:#x}).")

    def session_state(self, handle: int) -> int:
        """C_GetSessionInfo's CK_STATE for a session handle (python-pkcs11 has no binding)."""
        functions = _function_list(self.path)
        get_info = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong, ctypes.POINTER(_SessionInfo))(
            functions.C_GetSessionInfo
        )
        info = _SessionInfo()
        rv = get_info(handle, ctypes.byref(info))
        if rv != 0:
            raise TokenError(f"The module could not describe a session (CKR {rv:#x}).")
        return int(info.state)

    def login_handle(self, handle: int, so: bool, pin: str) -> int:
        """C_Login on an open session handle as the SO (``so``) or the user; returns the CKR
        code (0 on success) for the caller to translate. python-pkcs11 logs in only when it
        opens a session; switching roles inside one session (the backup KEK must outlive the
        SO's login) needs the raw call. The PIN buffer is zeroed afterwards."""
        functions = _function_list(self.path)
        login = ctypes.CFUNCTYPE(
            ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong
        )(functions.C_Login)
        encoded = pin.encode("utf-8")
        buffer = ctypes.create_string_buffer(encoded, len(encoded))
        try:
            return int(login(handle, 0 if so else 1, buffer, len(encoded)))
        finally:
            ctypes.memset(buffer, 0, len(encoded))

    def logout_handle(self, handle: int) -> int:
        """C_Logout; returns the CKR code (USER_NOT_LOGGED_IN, 0x101, when nobody was)."""
        functions = _function_list(self.path)
        logout = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong)(functions.C_Logout)
        return int(logout(handle))

    def reinitialize(self) -> None:
        """C_Finalize then C_Initialize: every session of this module ends and the module
        looks at its tokens afresh (SoftHSM re-reads its token directory only then). The
        embedded store is checked first (``FileStore.check_serials``): a copied token
        directory would abort the process inside C_Initialize."""
        if self.store is not None:
            self.store.check_serials()
        with pkcs11_errors("re-initialising the module"):
            if self._lib.initialized:
                self._lib.finalize()
            self._lib.initialize()

    def close(self) -> None:
        """C_Finalize the library; it stays loaded for the next open (see ``_load_library``)."""
        try:
            if self._lib.initialized:
                self._lib.finalize()
        except px.PKCS11Error:
            log.warning("C_Finalize failed for %s", self.path)


def _load_error(path: str, exc: px.PKCS11Error, said: str) -> ModuleLoadError:
    """Why a module did not start, in words that point at the real cause."""
    if type(exc) is px.PKCS11Error:  # python-pkcs11's own: dlopen or C_GetFunctionList failed
        return ModuleLoadError(
            f"{path} could not be loaded as a PKCS#11 module ({exc}). Choose the token "
            "vendor's PKCS#11 library (a .so file exporting C_GetFunctionList)."
        )
    own = f" The module said: {said}." if said else " The module said nothing more."
    return ModuleLoadError(
        f"{path} is a PKCS#11 module, but it failed to start (C_Initialize answered "
        f"{ckr_name(exc)}).{own} Its device, daemon or configuration is missing or "
        "unreachable (for tpm2-pkcs11: the TPM, its resource manager and TPM2_PKCS11_TCTI); "
        "start or connect it, then add the module again."
    )


class _ModuleOutput:
    """Collect what a module writes to standard error (file descriptor 2) while it starts:
    modules such as tpm2-pkcs11 explain a failed C_Initialize only there. The text is kept
    printable and short; nothing a module prints at start-up is secret."""

    _LIMIT = 600

    def __init__(self) -> None:
        self.text = ""
        self._saved: int | None = None
        self._file: Any = None

    def __enter__(self) -> _ModuleOutput:
        try:
            self._file = tempfile.TemporaryFile()
            sys.stderr.flush()
            self._saved = os.dup(2)
            os.dup2(self._file.fileno(), 2)
        except OSError:
            self._saved = None  # no capture: the load goes on without it
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._saved is None:
            return
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        raw = self._file.read(64 * 1024)
        self._file.close()
        lines = [
            "".join(c if c.isprintable() else "?" for c in line).strip()
            for line in raw.decode("utf-8", "replace").splitlines()
        ]
        meaningful = [line for line in lines if line and "WARNING" not in line[:12]]
        text = " | ".join(meaningful[:5]).rstrip(".")
        self.text = text if len(text) <= self._LIMIT else "…" + text[-self._LIMIT :]
        if raw:
            os.write(2, raw)  # still shown where it would have been


# One python-pkcs11 library object per module path for the life of the process. Unloading
# (dlclose) and loading SoftHSM 2.6.1 again crashes the process; C_Finalize followed by
# C_Initialize is safe and re-reads SOFTHSM2_CONF, which is all a new workstation needs.
_LIBRARIES: dict[str, Any] = {}


def library_initialized(path: str) -> bool:
    """True while this process has the module at ``path`` initialised (C_Initialize done)."""
    lib = _LIBRARIES.get(path)
    return lib is not None and bool(lib.initialized)


def _load_library(path: str) -> Any:
    lib = _LIBRARIES.get(path)
    if lib is None:
        lib = pkcs11.lib(path)
        _LIBRARIES[path] = lib
    elif not lib.initialized:
        lib.initialize()
    return lib


class _CkVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class _FunctionListHead(ctypes.Structure):
    """The first entries of CK_FUNCTION_LIST, up to C_GetSessionInfo."""

    _fields_ = [
        ("version", _CkVersion),
        ("C_Initialize", ctypes.c_void_p),
        ("C_Finalize", ctypes.c_void_p),
        ("C_GetInfo", ctypes.c_void_p),
        ("C_GetFunctionList", ctypes.c_void_p),
        ("C_GetSlotList", ctypes.c_void_p),
        ("C_GetSlotInfo", ctypes.c_void_p),
        ("C_GetTokenInfo", ctypes.c_void_p),
        ("C_GetMechanismList", ctypes.c_void_p),
        ("C_GetMechanismInfo", ctypes.c_void_p),
        ("C_InitToken", ctypes.c_void_p),
        ("C_InitPIN", ctypes.c_void_p),
        ("C_SetPIN", ctypes.c_void_p),
        ("C_OpenSession", ctypes.c_void_p),
        ("C_CloseSession", ctypes.c_void_p),
        ("C_CloseAllSessions", ctypes.c_void_p),
        ("C_GetSessionInfo", ctypes.c_void_p),
        ("C_GetOperationState", ctypes.c_void_p),
        ("C_SetOperationState", ctypes.c_void_p),
        ("C_Login", ctypes.c_void_p),
        ("C_Logout", ctypes.c_void_p),
    ]


class _SessionInfo(ctypes.Structure):
    _fields_ = [
        ("slotID", ctypes.c_ulong),
        ("state", ctypes.c_ulong),
        ("flags", ctypes.c_ulong),
        ("ulDeviceError", ctypes.c_ulong),
    ]


# CK_STATE values of a session whose application is logged in as the user.
USER_STATES = (1, 3)  # CKS_RO_USER_FUNCTIONS, CKS_RW_USER_FUNCTIONS


def _function_list(path: str) -> _FunctionListHead:
    library = ctypes.CDLL(path)  # same handle python-pkcs11 opened; already initialised
    pointer = ctypes.POINTER(_FunctionListHead)()
    rv = library.C_GetFunctionList(ctypes.byref(pointer))
    if rv != 0 or not pointer:
        raise TokenError(f"C_GetFunctionList failed in {path} (CKR {rv:#x}).")
    return pointer.contents
