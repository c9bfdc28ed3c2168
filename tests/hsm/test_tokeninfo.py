"""CK_TOKEN_INFO read through ctypes on a real SoftHSM token, checked against pkcs11-tool -T,
plus the mapping of PKCS#11's special values (no token needed for those)."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path
from typing import Any

import pytest

from app.errors import ModuleLoadError, TokenError, TokenNotPresent, UnsupportedAlgorithm
from app.hsm.module import TokenInfo, _function_list
from app.hsm.tokeninfo import (
    CK_UNAVAILABLE_INFORMATION,
    CKF_CLOCK_ON_TOKEN,
    UNLIMITED,
    CkTokenInfo,
    TokenDetails,
    details_from_info,
    raise_for_rv,
    read_token_info,
    token_details,
)
from tests.support import TOKEN, Bench, pkcs11_tool

UNAVAILABLE = CK_UNAVAILABLE_INFORMATION


def peer_token(bench: Bench, serial: str) -> dict[str, str]:
    """pkcs11-tool's -T block for the token with ``serial``, as field -> value."""
    out = pkcs11_tool(bench.home, "-T", pin=None)
    for block in re.split(r"\n(?=Slot )", out):
        fields = dict(re.findall(r"^\s+([a-z/ ]+?)\s*:\s+(.*?)\s*$", block, re.MULTILINE))
        if fields.get("serial num") == serial:
            return fields
    raise AssertionError(f"pkcs11-tool -T does not list serial {serial}:\n{out}")


def our_token(bench: Bench) -> TokenInfo:
    info: TokenInfo = bench(bench.ws.tokens.find, TOKEN)
    return info


# --- against the real token ---------------------------------------------------------------


@pytest.mark.hsm
def test_fields_decode_as_pkcs11_tool_prints_them(bench: Bench) -> None:
    info = our_token(bench)
    peer = peer_token(bench, info.serial)
    raw = bench(read_token_info, info.module_path, info.slot_id)
    details = bench(token_details, info.module_path, info.slot_id)

    # The text fields at the start and the versions at the end decode: the layout is right.
    assert raw.label.decode().rstrip() == peer["token label"] == TOKEN
    assert raw.serialNumber.decode().rstrip() == peer["serial num"]
    assert raw.manufacturerID.decode().rstrip() == peer["token manufacturer"]
    assert raw.model.decode().rstrip() == peer["token model"]
    hardware = raw.hardwareVersion
    assert f"{hardware.major}.{hardware.minor}" == peer["hardware version"]
    assert raw.flags == info.flags  # python-pkcs11's reading of the same field
    assert f"{details.min_pin}/{details.max_pin}" == peer["pin min/max"] == "4/255"


@pytest.mark.hsm
def test_the_structure_is_exactly_what_softhsm_fills(bench: Bench) -> None:
    """SoftHSM writes nothing past our CK_TOKEN_INFO, and its last field lands where ours is."""
    info = our_token(bench)
    size = ctypes.sizeof(CkTokenInfo)
    assert size == (208 if ctypes.sizeof(ctypes.c_ulong) == 8 else 160)
    buffer = ctypes.create_string_buffer(b"\xa5" * (size + 64), size + 64)
    proto = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p)

    def call() -> int:
        get = proto(_function_list(info.module_path).C_GetTokenInfo)
        return int(get(info.slot_id, buffer))

    assert bench(call) == 0
    assert buffer.raw[size:] == b"\xa5" * 64
    utc = buffer.raw[CkTokenInfo.utcTime.offset : CkTokenInfo.utcTime.offset + 16]
    assert re.fullmatch(rb"20\d{12}00", utc), utc  # SoftHSM fills it: YYYYMMDDhhmmss00


@pytest.mark.hsm
def test_softhsm_reports_no_session_counts_even_with_sessions_open(bench: Bench) -> None:
    """SoftHSM 2.6.1 reports ulSessionCount/ulRwSessionCount as CK_UNAVAILABLE_INFORMATION
    whatever is open (the workstation holds a read/write session; one more is opened here), no
    session limit, no memory figures, and no clock flag although it fills utcTime."""
    info = our_token(bench)
    module = bench(bench.ws.tokens.module_of, info)
    with_login = bench(token_details, info.module_path, info.slot_id)
    extra = bench(lambda: module.token(info.serial).open())
    try:
        with_extra = bench(token_details, info.module_path, info.slot_id)
    finally:
        bench(extra.close)
    expected = TokenDetails(
        max_sessions=UNLIMITED,
        sessions=None,
        max_rw_sessions=UNLIMITED,
        rw_sessions=None,
        min_pin=4,
        max_pin=255,
        total_public_memory=None,
        free_public_memory=None,
        total_private_memory=None,
        free_private_memory=None,
        utc_time=None,
    )
    assert with_login == with_extra == expected
    assert not info.flags & CKF_CLOCK_ON_TOKEN
    assert expected.words() == [
        "sessions: unlimited (open count not reported)",
        "read/write sessions: unlimited (open count not reported)",
        "PIN length 4–255",
        "public memory: not reported",
        "private memory: not reported",
    ]


@pytest.mark.hsm
def test_a_slot_the_module_does_not_have_is_not_present(bench: Bench) -> None:
    info = our_token(bench)
    module = bench(bench.ws.tokens.module_of, info)
    known = {int(s.slot_id) for s in bench(lambda: list(module.raw.get_slots()))}
    missing = next(n for n in range(0x7FFF0000, 0x7FFFFFFF) if n not in known)
    with pytest.raises(TokenNotPresent, match="CKR_SLOT_ID_INVALID"):
        bench(token_details, info.module_path, missing)
    with pytest.raises(TokenNotPresent):
        token_details(info.module_path, -1)


@pytest.mark.hsm
def test_a_finalised_module_is_a_clear_error(bench: Bench) -> None:
    info = our_token(bench)
    bench(bench.ws.lock)  # C_Finalize; the library stays loaded
    with pytest.raises(TokenError, match="not initialised") as caught:
        bench(token_details, info.module_path, info.slot_id)
    assert not isinstance(caught.value, TokenNotPresent)


def test_a_file_that_is_not_a_library_is_a_module_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.so"
    fake.write_bytes(b"not an ELF file")
    with pytest.raises(ModuleLoadError, match="not a usable PKCS#11 module"):
        token_details(str(fake), 0)


# --- mapping PKCS#11's special values -------------------------------------------------------


def filled(**values: Any) -> CkTokenInfo:
    info = CkTokenInfo()
    defaults: dict[str, Any] = {
        "ulMaxSessionCount": 0,
        "ulSessionCount": UNAVAILABLE,
        "ulMaxRwSessionCount": 0,
        "ulRwSessionCount": UNAVAILABLE,
        "ulMaxPinLen": 255,
        "ulMinPinLen": 4,
        "ulTotalPublicMemory": UNAVAILABLE,
        "ulFreePublicMemory": UNAVAILABLE,
        "ulTotalPrivateMemory": UNAVAILABLE,
        "ulFreePrivateMemory": UNAVAILABLE,
    }
    for name, value in {**defaults, **values}.items():
        setattr(info, name, value)
    return info


def test_unavailable_is_none_and_zero_limit_is_unlimited() -> None:
    details = details_from_info(filled(ulSessionCount=1, ulRwSessionCount=0))
    assert (details.max_sessions, details.sessions) == (UNLIMITED, 1)
    assert (details.max_rw_sessions, details.rw_sessions) == (UNLIMITED, 0)
    assert details.total_public_memory is None and details.free_private_memory is None
    assert details.words()[:2] == [
        "sessions: 1 open of unlimited",
        "read/write sessions: 0 open of unlimited",
    ]


def test_reported_limits_and_memory_are_kept() -> None:
    details = details_from_info(
        filled(
            ulMaxSessionCount=UNAVAILABLE,
            ulSessionCount=2,
            ulMaxRwSessionCount=8,
            ulRwSessionCount=UNAVAILABLE,
            ulMinPinLen=6,
            ulMaxPinLen=8,
            ulTotalPublicMemory=65536,
            ulFreePublicMemory=12345,
            ulTotalPrivateMemory=UNAVAILABLE,
            ulFreePrivateMemory=0,
        )
    )
    assert (details.max_sessions, details.max_rw_sessions) == (None, 8)
    assert (details.total_public_memory, details.free_public_memory) == (65536, 12345)
    assert (details.total_private_memory, details.free_private_memory) == (None, 0)
    assert details.words() == [
        "sessions: 2 open (limit not reported)",
        "read/write sessions: at most 8 (open count not reported)",
        "PIN length 6–8",
        "public memory: 12,345 of 65,536 bytes free",
        "private memory: 0 bytes free (total not reported)",
    ]


def test_the_clock_is_read_only_when_the_token_has_one() -> None:
    info = filled(utcTime=b"2026030109150700")
    assert details_from_info(info).utc_time is None
    info.flags = CKF_CLOCK_ON_TOKEN
    details = details_from_info(info)
    assert details.utc_time == "2026-03-01T09:15:07Z"
    assert details.words()[-1] == "clock: 2026-03-01T09:15:07Z"
    info.utcTime = b" " * 16
    assert details_from_info(info).utc_time is None


@pytest.mark.parametrize(
    ("rv", "error", "words"),
    [
        (0x0E0, TokenNotPresent, "CKR_TOKEN_NOT_PRESENT 0xe0"),
        (0x032, TokenNotPresent, "CKR_DEVICE_REMOVED 0x32"),
        (0x003, TokenNotPresent, "CKR_SLOT_ID_INVALID 0x3"),
        (0x190, TokenError, "not initialised"),
        (0x070, UnsupportedAlgorithm, "CKR_MECHANISM_INVALID"),
        (0x005, TokenError, "CKR_GENERAL_ERROR 0x5"),
        (0x1234, TokenError, "CKR 0x1234"),
    ],
)
def test_return_values_become_keystead_errors(rv: int, error: type, words: str) -> None:
    with pytest.raises(error, match=re.escape(words)) as caught:
        raise_for_rv(rv, "reading the token information", "slot 7 of /x.so")
    assert type(caught.value) is error
    assert "slot 7 of /x.so" in str(caught.value)
    raise_for_rv(0, "anything", "anywhere")  # CKR_OK raises nothing
