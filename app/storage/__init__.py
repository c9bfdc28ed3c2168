"""Encrypted storage: the keyslot file, the SQLCipher database, migrations and repositories.

Only this package imports ``sqlcipher3``.
"""
