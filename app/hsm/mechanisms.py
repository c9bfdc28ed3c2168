"""The mechanisms of a token as a table: name, key size range and capabilities.

Read C_GetMechanismInfo through the module's function list (give ``module_path``) whenever
possible: python-pkcs11 0.10 passes an uninitialised CK_MECHANISM_INFO, and SoftHSM 2.6.1 ORs
its flags into it for AES_ECB, AES_CBC_PAD, AES_CTR, AES_GCM, DES3_ECB and DES3_CBC_PAD, so
those rows come back with stack garbage in ``flags`` (seen here: 0x7ffe668f7778).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

import pkcs11
import pkcs11.exceptions as px
from pkcs11 import Mechanism

from app.hsm.errors import pkcs11_errors
from app.hsm.module import _LIBRARIES
from app.hsm.tokeninfo import CK_ULONG, function_list, raise_for_rv

log = logging.getLogger(__name__)

VENDOR_DEFINED: Final = 0x80000000

# CKF_ mechanism flags in words (PKCS#11 3.0 section 5.10, 3.2 for encapsulation), in the
# order they are shown.
FLAG_WORDS: Final[tuple[tuple[int, str], ...]] = (
    (0x00008000, "generate"),
    (0x00010000, "generate key pair"),
    (0x00000100, "encrypt"),
    (0x00000200, "decrypt"),
    (0x00000800, "sign"),
    (0x00002000, "verify"),
    (0x00001000, "sign recover"),
    (0x00004000, "verify recover"),
    (0x00020000, "wrap"),
    (0x00040000, "unwrap"),
    (0x00080000, "derive"),
    (0x00000400, "digest"),
    (0x10000000, "encapsulate"),
    (0x20000000, "decapsulate"),
    (0x00000002, "message encrypt"),
    (0x00000004, "message decrypt"),
    (0x00000008, "message sign"),
    (0x00000010, "message verify"),
    (0x00000020, "multi-message"),
    (0x00000040, "find objects"),
    (0x00000001, "hardware"),
    (0x00100000, "EC F_p"),
    (0x00200000, "EC F_2^m"),
    (0x00400000, "EC parameters"),
    (0x00800000, "named curves"),
    (0x01000000, "uncompressed points"),
    (0x02000000, "compressed points"),
    (0x04000000, "EC curve names"),
    (0x80000000, "extension flags"),
)
KNOWN_FLAGS: Final = sum(bit for bit, _ in FLAG_WORDS)


class CkMechanismInfo(ctypes.Structure):
    """CK_MECHANISM_INFO (PKCS#11 3.0 section 5.10)."""

    _fields_ = [
        ("ulMinKeySize", CK_ULONG),
        ("ulMaxKeySize", CK_ULONG),
        ("flags", CK_ULONG),
    ]


_GetMechanismInfo = ctypes.CFUNCTYPE(CK_ULONG, CK_ULONG, CK_ULONG, ctypes.POINTER(CkMechanismInfo))


@dataclass(frozen=True)
class MechanismRow:
    """One mechanism of a token.

    ``min_key``/``max_key`` are what the token reports, in the mechanism's own unit: bits for
    RSA, DSA, DH and EC (curve size) mechanisms, bytes for AES, DES, generic secret and HMAC
    ones. Both are ``None`` when the token reports 0 for both (no key size applies, e.g.
    digests). SoftHSM reports 2147483648 as the maximum where it has no limit.
    """

    code: int
    name: str
    min_key: int | None
    max_key: int | None
    flags: int

    def can(self) -> list[str]:
        """The CKF_ flags in words; bits PKCS#11 does not define appear as "other flags 0x..."."""
        words = [word for bit, word in FLAG_WORDS if self.flags & bit]
        other = self.flags & ~KNOWN_FLAGS
        if other:
            words.append(f"other flags {other:#x}")
        return words


def mechanism_name(code: int) -> str:
    """PKCS#11 name without CKM_ (python-pkcs11's), "0x210a" if unnamed, "vendor 0x..." for
    vendor-defined codes."""
    if code >= VENDOR_DEFINED:
        return f"vendor {code:#x}"
    try:
        name = Mechanism(code).name
    except ValueError:
        return f"{code:#x}"
    # python-pkcs11 prefixes mechanisms it considers obsolete (DES, MD5...) with "_".
    stripped = name.lstrip("_")
    if stripped and stripped not in Mechanism.__members__:
        return stripped
    return name


def _key_range(low: int | None, high: int | None) -> tuple[int | None, int | None]:
    if not low and not high:
        return None, None
    return low, high


def _row(code: int, low: int | None, high: int | None, flags: int) -> MechanismRow:
    min_key, max_key = _key_range(low, high)
    return MechanismRow(code, mechanism_name(code), min_key, max_key, int(flags))


def mechanism_table(slot: pkcs11.Slot, module_path: str | None = None) -> list[MechanismRow]:
    """Every mechanism the token in ``slot`` lists, sorted by name.

    The information is read into a zeroed CK_MECHANISM_INFO through ``module_path``, the
    library the slot came from; when it is not given it is found among the libraries Keystead
    has loaded. Only when that fails is python-pkcs11's reading used, whose flags may hold
    garbage (see the module docstring; a warning is logged when they visibly do). Call on the
    core thread.
    """
    with pkcs11_errors("reading the mechanism list"):
        codes = sorted(int(m) for m in slot.get_mechanisms())
    if module_path is None:
        module_path = _module_path_of(slot)
    rows: list[MechanismRow] = []
    if module_path is not None:
        get_info = _GetMechanismInfo(function_list(module_path).C_GetMechanismInfo)
        slot_id = int(slot.slot_id)
        for code in codes:
            info = CkMechanismInfo()
            rv = int(get_info(slot_id, code, ctypes.byref(info)))
            raise_for_rv(
                rv,
                f"reading the information of mechanism {mechanism_name(code)}",
                f"slot {slot_id} of {module_path}",
            )
            rows.append(_row(code, info.ulMinKeySize, info.ulMaxKeySize, info.flags))
    else:
        for code in codes:
            with pkcs11_errors(f"reading the information of mechanism {mechanism_name(code)}"):
                info_ = slot.get_mechanism_info(_as_mechanism(code))
            row = _row(code, info_.min_key_length, info_.max_key_length, int(info_.flags))
            if row.flags & ~KNOWN_FLAGS:
                log.warning(
                    "mechanism %s reports undefined flags %#x; read it with module_path",
                    row.name,
                    row.flags,
                )
            rows.append(row)
    return sorted(rows, key=lambda r: (r.name.lower(), r.code))


def _as_mechanism(code: int) -> Mechanism:
    try:
        return Mechanism(code)
    except ValueError:  # python-pkcs11 passes any int through to the module
        return cast(Mechanism, code)


def _module_path_of(slot: pkcs11.Slot) -> str | None:
    """The loaded library ``slot`` belongs to, when exactly one loaded library has a slot with
    its id, description and manufacturer (python-pkcs11's Slot does not say)."""
    key = (int(slot.slot_id), slot.slot_description, slot.manufacturer_id)
    found: dict[Path, str] = {}  # one library may be loaded under two names (a symlink)
    for path, lib in _LIBRARIES.items():
        if not lib.initialized:
            continue
        try:
            slots = lib.get_slots()
        except px.PKCS11Error:
            continue
        if any((int(s.slot_id), s.slot_description, s.manufacturer_id) == key for s in slots):
            found[Path(path).resolve()] = path
    return next(iter(found.values())) if len(found) == 1 else None


def filter_rows(rows: Iterable[MechanismRow], text: str) -> list[MechanismRow]:
    """Rows whose name or one of whose capability words contains ``text`` (case-insensitive,
    surrounding spaces ignored); every row for empty text."""
    needle = text.strip().lower()
    if not needle:
        return list(rows)
    return [
        row
        for row in rows
        if needle in row.name.lower() or any(needle in word.lower() for word in row.can())
    ]
