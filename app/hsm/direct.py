"""Direct PKCS#11 calls (ctypes on the module's function list) for the backup's bulk loop.

python-pkcs11 asks the token twice for everything of unknown size: C_GetAttributeValue first
for the lengths, then for the values, and C_WrapKey first for the length, then for the blob;
and its search reads ten attributes of every object it finds (to build a Python class with
the object's capabilities). SoftHSM decrypts a private object's byte-string attributes, and
decrypts and wraps the key, on each of those calls. A profile of a backup of 11,000 keys spent
36 of its 51 seconds in those calls. With buffers of a size that holds the answer, each call
is made once; a search returns bare handles.

A call that fails raises the python-pkcs11 exception its CKR code maps to, so callers translate
it inside ``pkcs11_errors`` as any other. Handles are plain ints; nothing here outlives the
python-pkcs11 session it was given.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from typing import Any

import pkcs11.exceptions as px

from app.errors import TokenError

CK_UNAVAILABLE_INFORMATION = ctypes.c_ulong(-1).value
CKR_OK = 0x0
CKR_ATTRIBUTE_SENSITIVE = 0x11
CKR_ATTRIBUTE_TYPE_INVALID = 0x12
CKR_BUFFER_TOO_SMALL = 0x150
_BATCH = 1024  # handles per C_FindObjects call

# CKR codes the bulk loop can meet, as python-pkcs11 names them (errors.translate words them).
_ERRORS: dict[int, type[px.PKCS11Error]] = {
    0x05: px.GeneralError,
    0x06: px.FunctionFailed,
    0x07: px.ArgumentsBad,
    0x30: px.DeviceError,
    0x31: px.DeviceMemory,
    0x32: px.DeviceRemoved,
    0x60: px.KeyHandleInvalid,
    0x69: px.KeyNotWrappable,
    0x6A: px.KeyUnextractable,
    0x70: px.MechanismInvalid,
    0x82: px.ObjectHandleInvalid,
    0x90: px.OperationActive,
    0x91: px.OperationNotInitialized,
    0xB0: px.SessionClosed,
    0xB3: px.SessionHandleInvalid,
    0xE0: px.TokenNotPresent,
    0xE1: px.TokenNotRecognised,
    0x101: px.UserNotLoggedIn,
    0x113: px.WrappingKeyHandleInvalid,
}


def _check(rv: int) -> None:
    if rv != CKR_OK:
        error = _ERRORS.get(rv)
        # The text python-pkcs11 gives codes it does not map (errors.unmapped_code reads it).
        raise error() if error else px.PKCS11Error(f"Unmapped error code {rv:#x}")


class _Attribute(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_ulong),
        ("pValue", ctypes.c_void_p),
        ("ulValueLen", ctypes.c_ulong),
    ]


class _Mechanism(ctypes.Structure):
    _fields_ = [
        ("mechanism", ctypes.c_ulong),
        ("pParameter", ctypes.c_void_p),
        ("ulParameterLen", ctypes.c_ulong),
    ]


_ULONG_P = ctypes.POINTER(ctypes.c_ulong)
_ATTR_P = ctypes.POINTER(_Attribute)


_FUNCTION_NAMES = """
    C_Initialize C_Finalize C_GetInfo C_GetFunctionList C_GetSlotList C_GetSlotInfo
    C_GetTokenInfo C_GetMechanismList C_GetMechanismInfo C_InitToken C_InitPIN C_SetPIN
    C_OpenSession C_CloseSession C_CloseAllSessions C_GetSessionInfo C_GetOperationState
    C_SetOperationState C_Login C_Logout C_CreateObject C_CopyObject C_DestroyObject
    C_GetObjectSize C_GetAttributeValue C_SetAttributeValue C_FindObjectsInit C_FindObjects
    C_FindObjectsFinal C_EncryptInit C_Encrypt C_EncryptUpdate C_EncryptFinal C_DecryptInit
    C_Decrypt C_DecryptUpdate C_DecryptFinal C_DigestInit C_Digest C_DigestUpdate C_DigestKey
    C_DigestFinal C_SignInit C_Sign C_SignUpdate C_SignFinal C_SignRecoverInit C_SignRecover
    C_VerifyInit C_Verify C_VerifyUpdate C_VerifyFinal C_VerifyRecoverInit C_VerifyRecover
    C_DigestEncryptUpdate C_DecryptDigestUpdate C_SignEncryptUpdate C_DecryptVerifyUpdate
    C_GenerateKey C_GenerateKeyPair C_WrapKey
""".split()  # noqa: SIM905 (the order of CK_FUNCTION_LIST, as the standard prints it)


class _Functions(ctypes.Structure):
    """CK_FUNCTION_LIST (PKCS#11 v2.40, section 5.16) up to C_WrapKey."""

    _fields_ = [("version", ctypes.c_ubyte * 2)] + [
        (name, ctypes.c_void_p) for name in _FUNCTION_NAMES
    ]


class DirectSession:
    """Raw calls on one open python-pkcs11 session (``session.handle``) of the module at
    ``path`` (already loaded and initialised by python-pkcs11: the same library handle)."""

    def __init__(self, path: str, session: Any) -> None:
        library = ctypes.CDLL(path)
        pointer = ctypes.POINTER(_Functions)()
        rv = library.C_GetFunctionList(ctypes.byref(pointer))
        if rv != 0 or not pointer:
            raise TokenError(f"C_GetFunctionList failed in {path} (CKR {rv:#x}).")
        functions = pointer.contents
        ulong = ctypes.c_ulong
        self._handle = int(getattr(session, "handle"))  # noqa: B009
        self._find_init = ctypes.CFUNCTYPE(ulong, ulong, _ATTR_P, ulong)(
            functions.C_FindObjectsInit
        )
        self._find = ctypes.CFUNCTYPE(ulong, ulong, _ULONG_P, ulong, _ULONG_P)(
            functions.C_FindObjects
        )
        self._find_final = ctypes.CFUNCTYPE(ulong, ulong)(functions.C_FindObjectsFinal)
        self._get = ctypes.CFUNCTYPE(ulong, ulong, ulong, _ATTR_P, ulong)(
            functions.C_GetAttributeValue
        )
        self._wrap = ctypes.CFUNCTYPE(
            ulong, ulong, ctypes.POINTER(_Mechanism), ulong, ulong, ctypes.c_void_p, _ULONG_P
        )(functions.C_WrapKey)

    def find(self, object_class: int) -> list[int]:
        """Handles of every object of this CKA_CLASS the session sees (one search)."""
        value = ctypes.c_ulong(object_class)
        template = _Attribute(0x0, ctypes.cast(ctypes.byref(value), ctypes.c_void_p).value,
                              ctypes.sizeof(value))  # fmt: skip
        _check(self._find_init(self._handle, ctypes.byref(template), 1))
        handles: list[int] = []
        batch = (ctypes.c_ulong * _BATCH)()
        count = ctypes.c_ulong(0)
        try:
            while True:
                _check(self._find(self._handle, batch, _BATCH, ctypes.byref(count)))
                if count.value == 0:
                    break
                handles.extend(batch[: count.value])
        finally:
            rv = self._find_final(self._handle)
        _check(rv)
        return handles

    def attributes(self, handle: int, sizes: Mapping[int, int]) -> dict[int, bytes | None]:
        """Raw values of these attributes (type -> buffer size in bytes) in one call; None for
        one the object lacks or keeps sensitive. A value longer than its buffer is read again
        with its length asked first (the usual two calls)."""
        types = list(sizes)
        buffers = [ctypes.create_string_buffer(sizes[t]) for t in types]
        template = (_Attribute * len(types))(
            *(
                _Attribute(t, ctypes.cast(b, ctypes.c_void_p).value, sizes[t])
                for t, b in zip(types, buffers, strict=True)
            )
        )
        rv = self._get(self._handle, handle, template, len(types))
        if rv == CKR_BUFFER_TOO_SMALL:
            return self._attributes_measured(handle, types)
        if rv not in (CKR_OK, CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID):
            _check(rv)
        return {
            t: None
            if template[i].ulValueLen == CK_UNAVAILABLE_INFORMATION
            else buffers[i].raw[: template[i].ulValueLen]
            for i, t in enumerate(types)
        }

    def _attributes_measured(self, handle: int, types: Sequence[int]) -> dict[int, bytes | None]:
        template = (_Attribute * len(types))(*(_Attribute(t, None, 0) for t in types))
        rv = self._get(self._handle, handle, template, len(types))
        if rv not in (CKR_OK, CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID):
            _check(rv)
        sizes = {
            t: int(template[i].ulValueLen)
            for i, t in enumerate(types)
            if template[i].ulValueLen != CK_UNAVAILABLE_INFORMATION
        }
        values: dict[int, bytes | None] = dict.fromkeys(types)
        if sizes:
            values.update(self.attributes(handle, {t: max(n, 1) for t, n in sizes.items()}))
        return values

    def wrap(self, mechanism: int, wrapping_key: int, key: int, size: int) -> bytes:
        """C_WrapKey (mechanism without parameters) into a buffer of ``size`` bytes; asked for
        the length first only when the blob does not fit."""
        mech = _Mechanism(mechanism, None, 0)
        buffer = ctypes.create_string_buffer(size)
        length = ctypes.c_ulong(size)
        rv = self._wrap(self._handle, ctypes.byref(mech), wrapping_key, key, buffer,
                        ctypes.byref(length))  # fmt: skip
        if rv == CKR_BUFFER_TOO_SMALL:
            length = ctypes.c_ulong(0)
            _check(self._wrap(self._handle, ctypes.byref(mech), wrapping_key, key, None,
                              ctypes.byref(length)))  # fmt: skip
            buffer = ctypes.create_string_buffer(length.value)
            rv = self._wrap(self._handle, ctypes.byref(mech), wrapping_key, key, buffer,
                            ctypes.byref(length))  # fmt: skip
        _check(rv)
        return buffer.raw[: length.value]
