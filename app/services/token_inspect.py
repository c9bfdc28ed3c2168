"""What the Tokens page and ``keystead tokens show`` say about modules and tokens.

Module descriptions, p11-kit's registered modules, a token's details (sessions, PIN limits,
memory), its mechanisms and the capability probe. The probe runs once per token (it needs a
login) and its answer is kept in the database, so generation and backup can use it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from app.domain.algorithms import Algorithm, Purpose
from app.domain.backup_rules import backup_refusal as rules_refusal
from app.errors import KeysteadError
from app.hsm.capabilities import Capabilities, probe
from app.hsm.errors import pkcs11_errors
from app.hsm.module import ModuleInfo, TokenInfo
from app.hsm.trials import TrialResult
from app.services.audit import Outcome, record
from app.services.executor import assert_core_thread
from app.services.tokens import TokenService, TokenStatus
from app.storage.database import Database
from app.storage.repository import SettingsRepository, utc_text

if TYPE_CHECKING:  # mechanism tables, p11-kit and C_GetTokenInfo: imported where read (issue 17)
    from app.hsm.mechanisms import MechanismRow
    from app.hsm.p11kit import RegisteredModule
    from app.hsm.tokeninfo import TokenDetails

log = logging.getLogger(__name__)

_CAPABILITIES_KEY = "capabilities:"
# Generation trials run after a refused generation (JSON: {"ALG/purpose": TrialResult json}).
_TRIALS_KEY = "generation-trials:"
# An enforcement trial run at a state change (JSON {"enforced": bool|null, "note": str}).
_ENFORCEMENT_KEY = "usage-enforcement:"


@dataclass(frozen=True)
class ModuleRow:
    """A configured module: what it says of itself, or why it did not load."""

    path: str
    embedded: bool
    info: ModuleInfo | None
    error: str | None


@dataclass(frozen=True)
class TokenView:
    """Everything shown about one present token."""

    status: TokenStatus
    details: TokenDetails | None
    details_error: str | None
    objects: int | None  # objects this workstation can see now (None: not logged in)
    capabilities: Capabilities | None
    probed_at: str | None


class TokenInspector:
    """Core-thread, read-mostly view of modules and tokens."""

    def __init__(self, db: Database, tokens: TokenService, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.tokens = tokens
        self.clock = clock
        self.settings = SettingsRepository(db)

    def modules(self) -> list[ModuleRow]:
        assert_core_thread()
        rows = []
        for path, embedded in self.settings.modules():
            module = self.tokens.modules.get(path)
            rows.append(
                ModuleRow(
                    path=path,
                    embedded=embedded,
                    info=module.info() if module else None,
                    error=self.tokens.module_errors.get(path),
                )
            )
        return rows

    def offered_modules(self) -> list[RegisteredModule]:
        """Modules registered with p11-kit that are not configured here yet."""
        from app.hsm.p11kit import registered_modules

        configured = {_resolved(p) for p, _embedded in self.settings.modules()}
        return [m for m in registered_modules() if _resolved(m.path) not in configured]

    def view(self, ref: str) -> TokenView:
        from app.hsm.tokeninfo import token_details

        assert_core_thread()
        info = self.tokens.find(ref)
        status = next(s for s in self.tokens.statuses() if s.info.serial == info.serial)
        details: TokenDetails | None = None
        details_error: str | None = None
        try:
            details = token_details(info.module_path, info.slot_id)
        except KeysteadError as exc:
            details_error = exc.message
        objects: int | None = None
        if status.logged_in:
            objects = self._count_objects(info)
        capabilities, probed_at = self.stored_capabilities(info.serial)
        return TokenView(status, details, details_error, objects, capabilities, probed_at)

    def mechanisms(self, ref: str) -> list[MechanismRow]:
        from app.hsm.mechanisms import mechanism_table

        assert_core_thread()
        info = self.tokens.find(ref)
        token = self.tokens.module_of(info).token(info.serial)
        return mechanism_table(token.slot, info.module_path)

    def stored_capabilities(self, serial: str) -> tuple[Capabilities | None, str | None]:
        return stored_capabilities(self.db, serial)

    def capabilities(self, ref: str, refresh: bool = False) -> Capabilities:
        """The token's capabilities: probed once (needs a login), then kept."""
        assert_core_thread()
        info = self.tokens.find(ref)
        stored, _when = self.stored_capabilities(info.serial)
        if stored is not None and not refresh:
            return stored
        self.tokens.session(info.serial)  # raises TokenNotLoggedIn: the probe needs a login
        token = self.tokens.module_of(info).token(info.serial)
        # A second session shares the workstation's login; the probe only makes session
        # objects in it, and closing it does not log the workstation out.
        with pkcs11_errors(f"probing token '{info.label}'"):
            session = token.open(rw=True)
        try:
            found = probe(session)
        finally:
            try:
                with pkcs11_errors("closing the probe's session"):
                    session.close()
            except KeysteadError:  # never hide the probe's own error behind this one
                log.warning("closing the probe's session on %s failed", info.serial)
        document = {"capabilities": found.to_json(), "probed_at": utc_text(self.clock())}
        token_objects = sorted({t.key for t in found.generation if t.objects == "token"})
        with self.db.transaction():
            # Recorded: the probe may have made (and destroyed) objects on the token itself.
            record(
                self.db,
                when=self.clock(),
                operators=(self.tokens.operator,),
                action="token.probe",
                subject=info.serial,
                outcome=Outcome.SUCCESS,
                details={
                    "label": info.label,
                    "enforces_usage": found.enforces_usage,
                    "token_object_trials": token_objects,
                    "token_objects_left": 0,
                },
            )
            self.settings.put(_CAPABILITIES_KEY + info.serial, json.dumps(document))
            self.settings.put(_TRIALS_KEY + info.serial, "{}")  # the probe measured afresh
            self.settings.put(_ENFORCEMENT_KEY + info.serial, "")
        return found

    def _count_objects(self, info: TokenInfo) -> int | None:
        """Objects visible to this workstation (its login is shared by a new session)."""
        try:
            token = self.tokens.module_of(info).token(info.serial)
            with pkcs11_errors(f"counting the objects on token '{info.label}'"):
                session = token.open()
                try:
                    return sum(1 for _ in session.get_objects())
                finally:
                    session.close()
        except KeysteadError as exc:
            log.warning("could not count objects on %s: %s", info.serial, exc.message)
            return None


def stored_capabilities(db: Database, serial: str) -> tuple[Capabilities | None, str | None]:
    """The token's probed capabilities and when they were probed, if it was."""
    raw = SettingsRepository(db).get(_CAPABILITIES_KEY + serial)
    if raw is None:
        return None, None
    try:
        document = json.loads(raw)
        return Capabilities.from_json(document["capabilities"]), str(document["probed_at"])
    except (ValueError, KeyError, TypeError):
        log.warning("stored capabilities of %s unreadable; probe again", serial)
        return None, None


def _stored_trials(db: Database, serial: str) -> dict[str, TrialResult]:
    raw = SettingsRepository(db).get(_TRIALS_KEY + serial)
    try:
        document = json.loads(raw) if raw else {}
        return {key: TrialResult.from_json(key, value) for key, value in document.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("stored generation trials of %s unreadable; they will be tried again", serial)
        return {}


def known_trial(
    db: Database, serial: str, algorithm: Algorithm, purpose: Purpose
) -> TrialResult | None:
    """What the token answered when a key of ``algorithm``'s family was generated for
    ``purpose`` in a trial (the capability probe's, or one run after a refused generation);
    the same algorithm's answer first. None when it was never tried."""
    capabilities, _when = stored_capabilities(db, serial)
    answers = list(capabilities.generation) if capabilities else []
    answers += list(_stored_trials(db, serial).values())
    same_purpose = [t for t in answers if t.purpose == purpose.value]
    for trial in reversed(same_purpose):
        if trial.algorithm == algorithm.value:
            return trial
    for trial in reversed(same_purpose):
        try:
            if Algorithm(trial.algorithm).family is algorithm.family:
                return trial
        except ValueError:
            continue
    return None


def usage_enforcement(db: Database, serial: str) -> tuple[bool, bool | None]:
    """(tried, enforced): enforced is True when the token was seen refusing to sign with
    CKA_SIGN cleared, False when it signed anyway, None when it could not be tried."""
    capabilities, _when = stored_capabilities(db, serial)
    if capabilities is not None and capabilities.enforces_usage is not None:
        return True, capabilities.enforces_usage
    raw = SettingsRepository(db).get(_ENFORCEMENT_KEY + serial)
    if not raw:
        return False, None
    try:
        value = json.loads(raw).get("enforced")
    except (ValueError, AttributeError):
        return False, None
    return True, value if isinstance(value, bool) else None


def remember_enforcement(db: Database, serial: str, enforced: bool | None, note: str) -> None:
    """Keep an enforcement trial's answer; call inside a transaction (an unknown answer is
    kept too, so the trial is not repeated at every change)."""
    document = {"enforced": enforced, "note": note}
    SettingsRepository(db).put(_ENFORCEMENT_KEY + serial, json.dumps(document))


def remember_trial(db: Database, serial: str, trial: TrialResult) -> None:
    """Keep a trial's answer for the next generation; call inside a transaction."""
    trials = _stored_trials(db, serial)
    trials[trial.key] = trial
    document = {key: value.to_json() for key, value in trials.items()}
    SettingsRepository(db).put(_TRIALS_KEY + serial, json.dumps(document))


def backup_refusal(db: Database, serial: str, label: str, algorithm: Algorithm) -> str | None:
    """Why a "must be backed up" key of ``algorithm`` cannot be made on this token (None: it
    can): the backup wrapper's own rule (``app.domain.backup_rules``), narrowed by the token's
    capability probe when it was probed."""
    capabilities, _when = stored_capabilities(db, serial)
    return rules_refusal(
        algorithm, label, capabilities.private_key_wrap if capabilities is not None else None
    )


def _resolved(path: str) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return path
