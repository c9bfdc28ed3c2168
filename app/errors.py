"""The one error hierarchy of Keystead.

Every error carries a message written for the person at the workstation: what happened and what
to do. Library exceptions (PKCS#11, SQLCipher) are translated where the library is called and
chained with ``raise ... from``. The CLI and the GUI each turn these into words at one boundary.
"""

from __future__ import annotations


class KeysteadError(Exception):
    """Base of every error Keystead reports to a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ValidationError(KeysteadError):
    """Input that Keystead refuses before doing anything (a name, a date, an algorithm)."""


class NotFoundError(KeysteadError):
    """A key, operator or token that does not exist."""


class PolicyError(KeysteadError):
    """An action the rules forbid; ``rule`` is a stable identifier used in errors and audit."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(f"{message} [{rule}]")
        self.rule = rule


# --- authentication -------------------------------------------------------------------------


class AuthenticationError(KeysteadError):
    """A passphrase, PIN or operator name was not accepted."""


class WrongPassphrase(AuthenticationError):
    """The operator's passphrase does not open their keyslot."""


class PassphraseBackoff(AuthenticationError):
    """Too many wrong passphrases in a row for this operator name: no try before
    ``retry_after`` seconds (a lockout when ``locked_out``)."""

    def __init__(self, message: str, retry_after: float, failures: int, locked_out: bool) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.failures = failures
        self.locked_out = locked_out


class OperatorDisabled(AuthenticationError):
    """The operator exists but is disabled or removed."""


class UnknownOperator(AuthenticationError):
    """No keyslot exists for this operator name."""


class WrongPin(AuthenticationError):
    """The token refused the PIN. ``failures`` counts consecutive failures kept by Keystead."""

    def __init__(self, message: str, failures: int) -> None:
        super().__init__(message)
        self.failures = failures


class PinBackoff(AuthenticationError):
    """Too many wrong PINs in a row: Keystead refuses to try again before ``retry_after`` s."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PinLocked(AuthenticationError):
    """The token itself has locked the PIN."""


# --- tokens ---------------------------------------------------------------------------------


class TokenError(KeysteadError):
    """A PKCS#11 module or token failed or refused."""


class TokenStoreConflict(TokenError):
    """The embedded token store holds something SoftHSM cannot start with (two token
    directories with one serial, a file that exists but cannot be read): refused before
    C_Initialize, nothing changed."""


class KeyUseRefused(TokenError):
    """The token refuses an operation with a key: its usage flag for it is off, or the key's
    type lacks the operation. Nothing was done."""


class AmbiguousKey(TokenError):
    """More than one object on the token could be the key asked for; nothing is acted on."""


class ModuleLoadError(TokenError):
    """The PKCS#11 module path is missing or is not a PKCS#11 library."""


class TokenNotPresent(TokenError):
    """No token with this label or serial is present."""


class AmbiguousToken(TokenError):
    """Two present tokens answer to one identity; Keystead acts on neither."""


class TokenRemoved(TokenError):
    """The token went away during an operation."""


class TokenNotLoggedIn(TokenError):
    """The operation needs a PIN login to the token first."""


class UnsupportedAlgorithm(TokenError):
    """The token's mechanism list lacks what the algorithm needs."""


class TemplateMismatch(TokenError):
    """A generated key's attributes differ from the template; the key was destroyed."""


# --- storage --------------------------------------------------------------------------------


class StorageError(KeysteadError):
    """The encrypted database or the keyslot file cannot be used."""


class WorkstationMissing(StorageError):
    """No workstation has been initialised in this home directory."""


class WorkstationExists(StorageError):
    """Initialisation refused: a workstation already exists here."""


class WorkstationInUse(StorageError):
    """Another process has this workstation open (``holder``: its process id and program)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


# What to do when the database cannot be trusted (damaged, or older than the token says).
# A Keystead backup (``keystead backup``) holds keys, their records and the audit history but
# not the database file, the keyslots, operators or policy: the words say both ways back.
RESTORE_HOME_ADVICE = (
    "Restore keystead.db together with keyslots.json from a copy of this workstation's home "
    "if you keep one; otherwise initialise a new workstation and run 'keystead backup "
    "restore' from your latest Keystead backup, which brings back the keys, their records "
    "and the audit history (operators and policy are set up again)."
)


class DatabaseDamaged(StorageError):
    """The database file fails SQLCipher's page authentication or SQLite's checks."""


class DatabaseRolledBack(StorageError):
    """The database is older than evidence kept outside it says it should be."""


class ReadOnlyHome(StorageError):
    """The workstation's home is on a read-only mount: only reading commands work."""


class DiskFull(StorageError):
    """The disk is full; nothing was written."""


# --- later subsystems -----------------------------------------------------------------------


class BackupIntegrityError(KeysteadError):
    """A backup failed verification."""


class AuditIntegrityError(KeysteadError):
    """The audit history failed verification."""


class AuditTokenNotLoggedIn(AuditIntegrityError):
    """A change must be sealed by the audit token, which is not logged in (nothing changed).
    The GUI answers it by asking for the audit token's PIN in place and trying again."""


class OperationCancelled(KeysteadError):
    """A person cancelled an operation before it changed anything."""


class NotAuthentic(KeysteadError):
    """A signature, or an encrypted file's authentication tag, does not match its data."""


class CeremonyScriptError(ValidationError):
    """A ceremony script Keystead refuses before anything is done: ``line``/``column`` (1-based)
    where the TOML parser stopped, ``step`` the step id it concerns, ``rule`` a stable id."""

    def __init__(
        self,
        message: str,
        rule: str,
        *,
        line: int | None = None,
        column: int | None = None,
        step: str | None = None,
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.line = line
        self.column = column
        self.step = step


class CeremonyError(KeysteadError):
    """A ceremony refused or stopped; ``rule`` is a stable identifier recorded in the audit."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(f"{message} [{rule}]")
        self.rule = rule
