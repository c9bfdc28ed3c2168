"""PKCS#11 access. Only this package imports ``pkcs11``; no ``pkcs11`` object leaves it."""

from app.hsm.lazy_util import defer_pkcs11_util

# Before any module of this package imports ``pkcs11`` (they all come through here first).
defer_pkcs11_util()
