"""PKCS#11 access. Only this package imports ``pkcs11``; no ``pkcs11`` object leaves it."""
