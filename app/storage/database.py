"""The SQLCipher database: opened with a raw 256-bit key, checked on every open, migrated.

Every open asserts the SQLCipher 4 settings and runs ``cipher_integrity_check`` and
``quick_check``; a failure is ``DatabaseDamaged`` and the file is left as it was. The connection
belongs to the thread that opened it (the core worker): ``check_same_thread`` stays on.

The two whole-file checks (about 0.9 s at 100,000 keys) may be deferred (``defer_checks``,
DESIGN.md "Storage": paint first, integrity checks after): reads are served at once (every page
read is still HMAC-checked by SQLCipher), and no write of any kind is accepted until both checks
have passed. The first write runs them itself (``require_checked``), so a write can never land
before them; a SQLite authorizer refuses any write statement that reaches the connection another
way while they are pending. A failure is kept: every later write raises the same
``DatabaseDamaged``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import sqlcipher3

from app.errors import (
    RESTORE_HOME_ADVICE,
    DatabaseDamaged,
    DiskFull,
    ReadOnlyHome,
    StorageError,
    WorkstationExists,
)
from app.storage.migrations import LATEST, MIGRATIONS

log = logging.getLogger(__name__)

# What every open insists on (SQLCipher 4 defaults; a raw key skips the KDF).
EXPECTED_SETTINGS = {
    "cipher_page_size": "4096",
    "cipher_hmac_algorithm": "HMAC_SHA512",
    "cipher_kdf_algorithm": "PBKDF2_HMAC_SHA512",
    "cipher_use_hmac": "1",
    "cipher_plaintext_header_size": "0",
}

Row = tuple[Any, ...]


class Checks(Enum):
    """Where the open's two whole-file integrity checks stand."""

    PENDING = "pending"  # deferred: reads only until they pass
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"  # the file is damaged: nothing is ever written through this connection


# Statement kinds a SQLite authorizer sees that change the file (sqlite3.h action codes):
# CREATE/DROP of indexes, tables, triggers and views (1-17), INSERT 18, PRAGMA 19 (only
# setting ones write), TRANSACTION 22 is allowed (reads use none), UPDATE 23, ATTACH 24,
# DETACH 25, ALTER 26, REINDEX 27, ANALYZE 28, CREATE/DROP VTABLE 29-30, SAVEPOINT 32 allowed.
_WRITE_ACTIONS = frozenset({*range(1, 19), 23, 24, 26, 27, 28, 29, 30})
_SQLITE_OK = 0
_SQLITE_DENY = 1


def _damaged(path: Path, detail: str) -> DatabaseDamaged:
    return DatabaseDamaged(
        f"The database {path} is damaged ({detail}). The file was left untouched. "
        + RESTORE_HOME_ADVICE
    )


class Database:
    """An open, checked, migrated SQLCipher database."""

    def __init__(self, conn: sqlcipher3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        # Set by the audit service while the audit token is logged in: the token's HMAC over
        # an entry hash. Events that need it are refused while it is None.
        self.sealer: Callable[[bytes], bytes] | None = None
        self.read_only = False  # opened from a read-only home: every transaction is refused
        self.checks = Checks.PASSED  # open() sets PENDING when the checks are deferred
        self._checks_error: DatabaseDamaged | None = None
        # Run once, right after deferred checks pass and before the write that ran them (the
        # workstation's own unlock records, which must precede any other change).
        self.before_first_write: Callable[[], None] | None = None

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, key: bytes) -> Database:
        if path.exists():
            raise WorkstationExists(f"A database already exists at {path}; nothing was changed.")
        db = cls._connect(path, key)
        os.chmod(path, 0o600)  # whatever the umask: only the owner reads the database
        db._migrate()
        return db

    @classmethod
    def open(
        cls, path: Path, key: bytes, read_only: bool = False, defer_checks: bool = False
    ) -> Database:
        """Open and check the database. With ``read_only`` (a home on a read-only mount, as
        an auditor's copy) SQLite opens it with ``mode=ro``: nothing can be written, and a
        database that needs a migration is refused rather than changed.

        With ``defer_checks`` the two whole-file checks are left PENDING (reads only) until
        ``require_checked`` runs them, which the first write does itself; a database that
        needs a migration (a write) is checked now. Raises DatabaseDamaged (the key does not
        open the file, or a check failed), StorageError (settings, schema version)."""
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            # Only an existing workstation (its keyslot file opened) gets here: damage, not a
            # new start. Nothing is created.
            raise _damaged(path, "the file is missing") from None
        if size == 0:
            raise _damaged(path, "the file is empty (0 bytes)")
        db = cls._connect(path, key, read_only)
        try:
            current = db._schema_version()
            if defer_checks and not read_only and current == LATEST:
                db.checks = Checks.PENDING
                db._conn.set_authorizer(_refuse_writes)
                return db
            db._check()
            if read_only:
                if int(db.scalar("PRAGMA user_version")) != LATEST:
                    raise StorageError(
                        "This read-only copy needs a schema upgrade, which cannot be written. "
                        "Open a writable copy; nothing was changed."
                    )
            else:
                db._migrate()
        except BaseException:
            db.close()
            raise
        return db

    @classmethod
    def _connect(cls, path: Path, key: bytes, read_only: bool = False) -> Database:
        if len(key) != 32:
            raise StorageError("The database key must be 32 bytes.")
        if read_only:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            conn = sqlcipher3.connect(uri, isolation_level=None, uri=True)
        else:
            conn = sqlcipher3.connect(str(path), isolation_level=None)
        # SQLCipher would print its own errors to stderr; Keystead reports them in words.
        conn.execute("PRAGMA cipher_log_level = NONE")
        # A raw key in SQLCipher's x'..' form; hex only, never text from a person.
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        db = cls(conn, path)
        try:
            version = db.scalar("PRAGMA cipher_version")
            if not version or not str(version).startswith("4."):
                raise StorageError(f"SQLCipher 4 is required; this build reports {version!r}.")
            for pragma, expected in EXPECTED_SETTINGS.items():
                actual = str(db.scalar(f"PRAGMA {pragma}"))
                if actual != expected:
                    raise StorageError(f"SQLCipher setting {pragma} is {actual}, not {expected}.")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("PRAGMA synchronous = FULL")
            db.read_only = read_only
        except sqlcipher3.DatabaseError as exc:
            conn.close()
            raise _damaged(path, str(exc)) from exc
        except BaseException:
            conn.close()
            raise
        return db

    def _schema_version(self) -> int:
        """``user_version``, reading page 1 (a wrong key or a damaged header fails here)."""
        try:
            self.scalar("SELECT count(*) FROM sqlite_master")
            return int(self.scalar("PRAGMA user_version"))
        except sqlcipher3.DatabaseError as exc:
            raise _damaged(self.path, str(exc)) from exc

    @property
    def checks_pending(self) -> bool:
        """True until deferred integrity checks have passed (or failed)."""
        return self.checks in (Checks.PENDING, Checks.RUNNING)

    def require_checked(self) -> None:
        """Make sure both whole-file checks have passed before anything is written: run them
        now if they are pending (core thread), then ``before_first_write``. Raises the same
        DatabaseDamaged on every call once they failed."""
        if self.checks is Checks.PASSED and self.before_first_write is None:
            return
        if self.checks is Checks.FAILED:
            raise self._checks_error or _damaged(self.path, "an integrity check failed")
        if self.checks is Checks.RUNNING:
            raise StorageError("A write was attempted while the integrity checks ran.")
        if self.checks is Checks.PENDING:
            self.checks = Checks.RUNNING
            try:
                self._check()
            except DatabaseDamaged as exc:
                self.checks = Checks.FAILED
                self._checks_error = exc
                raise
            except BaseException:
                self.checks = Checks.PENDING  # not a verdict (e.g. interrupted): run again
                raise
            self._conn.set_authorizer(None)
            self.checks = Checks.PASSED
            log.info("database integrity checks passed (deferred)")
        first, self.before_first_write = self.before_first_write, None
        if first is not None:
            first()

    def _check(self) -> None:
        try:
            self.scalar("SELECT count(*) FROM sqlite_master")
            problems = self.query("PRAGMA cipher_integrity_check")
            if problems:
                raise _damaged(self.path, f"{len(problems)} page(s) fail authentication")
            quick = self.query("PRAGMA quick_check")
            if [row[0] for row in quick] != ["ok"]:
                raise _damaged(self.path, "SQLite quick_check failed")
        except sqlcipher3.DatabaseError as exc:
            raise _damaged(self.path, str(exc)) from exc

    def _migrate(self) -> None:
        current = int(self.scalar("PRAGMA user_version"))
        if current > LATEST:
            raise StorageError(
                f"The database has schema version {current}, newer than this Keystead "
                f"({LATEST}). Use the newer Keystead; nothing was changed."
            )
        for version, script in MIGRATIONS:
            if version <= current:
                continue
            log.info("applying database migration %d", version)
            with self.transaction():
                if callable(script):
                    script(self)
                else:
                    for statement in _statements(script):
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {int(version)}")

    # --- use -------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One IMMEDIATE transaction; rolled back on any exception. Deferred integrity
        checks run first (``require_checked``)."""
        if self.read_only:
            raise ReadOnlyHome(
                f"{self.path.parent} is read-only: this command would change the workstation. "
                "Use a writable copy; nothing was changed."
            )
        self.require_checked()
        with self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        else:
            with self._errors():
                self._conn.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLCipher errors during use, in Keystead's words."""
        try:
            yield
        except sqlcipher3.OperationalError as exc:
            text = str(exc)
            if "full" in text:
                raise DiskFull(
                    f"The disk holding {self.path.parent} is full; the change was not saved."
                ) from exc
            raise StorageError(f"The database refused the change ({text}).") from exc
        except sqlcipher3.IntegrityError as exc:  # a constraint refused it: not damage
            if "UNIQUE constraint failed: keys.name" in str(exc):
                raise StorageError(
                    "Another key got this name at the same moment (another command running in "
                    "parallel); names are unique. Choose another name; nothing was changed."
                ) from exc
            raise StorageError(f"The database refused the change ({exc}).") from exc
        except sqlcipher3.DatabaseError as exc:
            raise _damaged(self.path, str(exc)) from exc

    @property
    def in_transaction(self) -> bool:
        return bool(self._conn.in_transaction)

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        """Run one statement (a change: deferred integrity checks run first)."""
        self.require_checked()
        with self._errors():
            cursor = self._conn.execute(sql, params)
        return int(cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.require_checked()
        with self._errors():
            self._conn.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._errors():
            return list(self._conn.execute(sql, params).fetchall())

    def batches(
        self, sql: str, params: Sequence[Any] = (), size: int = 4096
    ) -> Iterator[list[Row]]:
        """The rows of ``sql`` in lists of up to ``size``: a caller that turns each row into
        something else never holds every raw row at once (the inventory's 100,000 rows)."""
        with self._errors():
            cursor = self._conn.execute(sql, params)
        while True:
            with self._errors():
                rows = cursor.fetchmany(size)
            if not rows:
                return
            yield rows

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        self._conn.close()

    # --- re-keying -------------------------------------------------------------------------

    def export_to(self, path: Path, key: bytes) -> None:
        """Copy the whole database into a new file under ``key`` (``sqlcipher_export``, the
        SQLCipher-documented way to re-key into a new file), same schema version, fsync'd."""
        if len(key) != 32:
            raise StorageError("The database key must be 32 bytes.")
        if path.exists():
            raise StorageError(f"{path} exists; nothing was exported.")
        self.require_checked()  # never copy a file that has not passed its checks
        version = int(self.scalar("PRAGMA user_version"))
        with self._errors():
            # A raw key in SQLCipher's x'..' form; hex only, never text from a person.
            self._conn.execute(
                f"ATTACH DATABASE ? AS rekeyed KEY \"x'{key.hex()}'\"", (str(path),)
            )
            try:
                self._conn.execute("SELECT sqlcipher_export('rekeyed')")
                self._conn.execute(f"PRAGMA rekeyed.user_version = {version}")
            finally:
                self._conn.execute("DETACH DATABASE rekeyed")
        os.chmod(path, 0o600)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def reopen(self, key: bytes) -> None:
        """Open the file at ``path`` again with ``key`` (after a rotation put a new file
        there), checked like any open; the old connection is closed only on success."""
        fresh = Database._connect(self.path, key)
        try:
            fresh._check()
        except BaseException:
            fresh.close()
            raise
        self._conn.close()
        self._conn = fresh._conn


def _refuse_writes(action: int, *_names: str | None) -> int:
    """SQLite authorizer while deferred checks are pending: any statement that would change
    the file is refused at prepare time (a backstop behind ``require_checked``)."""
    return _SQLITE_DENY if action in _WRITE_ACTIONS else _SQLITE_OK


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]
