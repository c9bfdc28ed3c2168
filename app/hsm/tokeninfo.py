"""The CK_TOKEN_INFO fields python-pkcs11's Token does not expose: session counts, PIN length
limits, memory and the token clock, read with C_GetTokenInfo through the module's function list.

The module must already be loaded and initialised (``app.hsm.module.Pkcs11Module``): this reuses
the library python-pkcs11 opened and never calls C_Initialize itself.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass
from typing import Final

from app.domain.text import safe_token_text
from app.errors import ModuleLoadError, TokenError, TokenNotPresent, UnsupportedAlgorithm
from app.hsm.module import _CkVersion, _function_list, _FunctionListHead

CK_ULONG = ctypes.c_ulong  # Linux and macOS; Windows modules use 32-bit ULONG and pack(1)
CK_UNAVAILABLE_INFORMATION: Final = (1 << (8 * ctypes.sizeof(CK_ULONG))) - 1  # ~0UL
CK_EFFECTIVELY_INFINITE: Final = 0
UNLIMITED: Final = 0
"""The value of ``max_sessions``/``max_rw_sessions`` for no limit (PKCS#11's
CK_EFFECTIVELY_INFINITE; a real limit of zero sessions would be meaningless)."""

CKF_CLOCK_ON_TOKEN: Final = 0x00000040

_CKR_NAMES: Final = {
    0x002: "CKR_HOST_MEMORY",
    0x003: "CKR_SLOT_ID_INVALID",
    0x005: "CKR_GENERAL_ERROR",
    0x006: "CKR_FUNCTION_FAILED",
    0x007: "CKR_ARGUMENTS_BAD",
    0x030: "CKR_DEVICE_ERROR",
    0x031: "CKR_DEVICE_MEMORY",
    0x032: "CKR_DEVICE_REMOVED",
    0x070: "CKR_MECHANISM_INVALID",
    0x0E0: "CKR_TOKEN_NOT_PRESENT",
    0x0E1: "CKR_TOKEN_NOT_RECOGNIZED",
    0x150: "CKR_BUFFER_TOO_SMALL",
    0x190: "CKR_CRYPTOKI_NOT_INITIALIZED",
}
_NOT_PRESENT: Final = frozenset({0x003, 0x032, 0x0E0})


class CkTokenInfo(ctypes.Structure):
    """CK_TOKEN_INFO with the platform's natural alignment (PKCS#11 3.0 section 5.5); 208 bytes
    on 64-bit Linux, which is what SoftHSM 2.6.1 fills."""

    _fields_ = [
        ("label", ctypes.c_char * 32),
        ("manufacturerID", ctypes.c_char * 32),
        ("model", ctypes.c_char * 16),
        ("serialNumber", ctypes.c_char * 16),
        ("flags", CK_ULONG),
        ("ulMaxSessionCount", CK_ULONG),
        ("ulSessionCount", CK_ULONG),
        ("ulMaxRwSessionCount", CK_ULONG),
        ("ulRwSessionCount", CK_ULONG),
        ("ulMaxPinLen", CK_ULONG),
        ("ulMinPinLen", CK_ULONG),
        ("ulTotalPublicMemory", CK_ULONG),
        ("ulFreePublicMemory", CK_ULONG),
        ("ulTotalPrivateMemory", CK_ULONG),
        ("ulFreePrivateMemory", CK_ULONG),
        ("hardwareVersion", _CkVersion),
        ("firmwareVersion", _CkVersion),
        ("utcTime", ctypes.c_char * 16),
    ]


_GetTokenInfo = ctypes.CFUNCTYPE(CK_ULONG, CK_ULONG, ctypes.POINTER(CkTokenInfo))


@dataclass(frozen=True)
class TokenDetails:
    """What a token says about its sessions, PIN and memory.

    ``None`` means the token does not report the value (CK_UNAVAILABLE_INFORMATION).
    ``max_sessions``/``max_rw_sessions`` equal to ``UNLIMITED`` (0) mean there is no limit.
    Memory is in bytes. ``utc_time`` is ISO 8601 and only set when the token has a clock.
    """

    max_sessions: int | None
    sessions: int | None
    max_rw_sessions: int | None
    rw_sessions: int | None
    min_pin: int
    max_pin: int
    total_public_memory: int | None
    free_public_memory: int | None
    total_private_memory: int | None
    free_private_memory: int | None
    utc_time: str | None

    def words(self) -> list[str]:
        """One line per subject, for a details panel."""
        lines = [
            _sessions_words("sessions", self.sessions, self.max_sessions),
            _sessions_words("read/write sessions", self.rw_sessions, self.max_rw_sessions),
            f"PIN length {self.min_pin}–{self.max_pin}",
            _memory_words("public memory", self.free_public_memory, self.total_public_memory),
            _memory_words("private memory", self.free_private_memory, self.total_private_memory),
        ]
        if self.utc_time is not None:
            lines.append(f"clock: {self.utc_time}")
        return lines


def _sessions_words(what: str, count: int | None, limit: int | None) -> str:
    if limit is None and count is None:
        return f"{what}: not reported"
    if limit is None:
        return f"{what}: {count} open (limit not reported)"
    limit_text = "unlimited" if limit == UNLIMITED else str(limit)
    if count is not None:
        return f"{what}: {count} open of {limit_text}"
    bound = limit_text if limit == UNLIMITED else f"at most {limit_text}"
    return f"{what}: {bound} (open count not reported)"


def _memory_words(what: str, free: int | None, total: int | None) -> str:
    if free is not None and total is not None:
        return f"{what}: {free:,} of {total:,} bytes free"
    if free is not None:
        return f"{what}: {free:,} bytes free (total not reported)"
    if total is not None:
        return f"{what}: {total:,} bytes (free not reported)"
    return f"{what}: not reported"


def _reported(value: int) -> int | None:
    return None if value == CK_UNAVAILABLE_INFORMATION else int(value)


def _clock(raw: bytes) -> str | None:
    """CK_TOKEN_INFO.utcTime ("YYYYMMDDhhmmss00") as ISO 8601; other text as given."""
    text = safe_token_text(raw.strip(b" \x00"))
    match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})\d{2}", text)
    if match:
        y, mo, d, h, mi, s = match.groups()
        return f"{y}-{mo}-{d}T{h}:{mi}:{s}Z"
    return text or None


def details_from_info(info: CkTokenInfo) -> TokenDetails:
    """Map a filled CK_TOKEN_INFO to ``TokenDetails``."""
    return TokenDetails(
        max_sessions=_reported(info.ulMaxSessionCount),
        sessions=_reported(info.ulSessionCount),
        max_rw_sessions=_reported(info.ulMaxRwSessionCount),
        rw_sessions=_reported(info.ulRwSessionCount),
        min_pin=int(info.ulMinPinLen),
        max_pin=int(info.ulMaxPinLen),
        total_public_memory=_reported(info.ulTotalPublicMemory),
        free_public_memory=_reported(info.ulFreePublicMemory),
        total_private_memory=_reported(info.ulTotalPrivateMemory),
        free_private_memory=_reported(info.ulFreePrivateMemory),
        utc_time=_clock(bytes(info.utcTime)) if info.flags & CKF_CLOCK_ON_TOKEN else None,
    )


def raise_for_rv(rv: int, action: str, where: str) -> None:
    """Raise the Keystead error for a CK_RV other than CKR_OK returned while ``action`` (e.g.
    "reading the token information") on ``where`` (e.g. "slot 3 of /usr/lib/x.so")."""
    if rv == 0:
        return
    code = f"{_CKR_NAMES.get(rv, 'CKR')} {rv:#x}"
    if rv in _NOT_PRESENT:
        raise TokenNotPresent(f"No token in {where} ({code}). Insert it and try again.")
    if rv == 0x070:
        raise UnsupportedAlgorithm(
            f"The token in {where} does not support this while {action} ({code})."
        )
    if rv == 0x190:
        raise TokenError(
            f"The module is not initialised ({code}) while {action} on {where}. Load the module "
            "before asking about its tokens."
        )
    raise TokenError(f"The module failed while {action} on {where} ({code}).")


def function_list(module_path: str) -> _FunctionListHead:
    """The head of the module's CK_FUNCTION_LIST (the library python-pkcs11 already opened)."""
    try:
        return _function_list(module_path)
    except (OSError, AttributeError) as exc:  # not loadable, or no C_GetFunctionList
        raise ModuleLoadError(f"{module_path} is not a usable PKCS#11 module ({exc}).") from exc


def read_token_info(module_path: str, slot_id: int) -> CkTokenInfo:
    """C_GetTokenInfo for ``slot_id`` into a zeroed CK_TOKEN_INFO."""
    if slot_id < 0 or slot_id >= CK_UNAVAILABLE_INFORMATION:
        raise TokenNotPresent(f"{slot_id} is not a slot id of {module_path}.")
    get_token_info = _GetTokenInfo(function_list(module_path).C_GetTokenInfo)
    info = CkTokenInfo()
    rv = int(get_token_info(slot_id, ctypes.byref(info)))
    raise_for_rv(rv, "reading the token information", f"slot {slot_id} of {module_path}")
    return info


def token_details(module_path: str, slot_id: int) -> TokenDetails:
    """Sessions, PIN limits, memory and clock of the token in ``slot_id``.

    Raises ``TokenNotPresent`` for an empty, removed or unknown slot, ``TokenError`` otherwise.
    """
    return details_from_info(read_token_info(module_path, slot_id))
