"""Closing the user-PIN wrap hole on keys recorded before CKA_WRAP_WITH_TRUSTED was set.

Schema 5 marks every live backup-able key 'pending'. At each login to a token its pending keys
are given CKA_WRAP_WITH_TRUSTED; where the token refuses, the key is marked 'refused' (shown in
the inventory, the key detail and ``keys show``) so the officer knows that anyone holding the
user PIN can still wrap it out. Each outcome is one audit entry, committed with the record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from app.domain.keys import KeyState, TrustedWrap
from app.errors import KeysteadError
from app.hsm.session import TokenSession
from app.services.audit import Outcome, failure_outcome, record, record_alone
from app.storage.database import Database
from app.storage.repository import KeyRepository

log = logging.getLogger(__name__)

ACTION = "key.wrap-trusted"
_GONE = (KeyState.DESTROYED, KeyState.DESTROYED_COMPROMISED)


def protect_pending(
    db: Database, session: TokenSession, operator: str, clock: Callable[[], datetime]
) -> int:
    """Apply CKA_WRAP_WITH_TRUSTED to this token's pending keys; returns how many were
    settled (set or refused). A key whose token call fails stays pending (recorded
    ``failed``/``aborted``) and is tried again at the next login."""
    repo = KeyRepository(db)
    settled = 0
    if db.sealer is None:
        # No token change without its sealed entry (issue 9): while the audit token is not
        # logged in the keys stay pending; a login to this token alone changes nothing.
        return 0
    for key in repo.trusted_wrap_pending(session.info.serial):
        subject = f"key:{key.id}"
        if key.state in _GONE:
            with db.transaction():
                repo.update(key._replace(wrap_trusted=TrustedWrap.NOT_APPLICABLE))
            continue
        try:
            applied = session.require_trusted_wrap(key.cka_id)
        except KeysteadError as exc:
            log.error("CKA_WRAP_WITH_TRUSTED on %s failed: %s", key.id, exc.message)
            record_alone(
                db,
                when=clock(),
                operators=(operator,),
                action=ACTION,
                subject=subject,
                outcome=failure_outcome(exc),
                details={"error": exc.message},
            )
            continue
        result = TrustedWrap.OK if applied else TrustedWrap.REFUSED
        with db.transaction():
            repo.update(key._replace(wrap_trusted=result))
            record(
                db,
                when=clock(),
                operators=(operator,),
                action=ACTION,
                subject=subject,
                outcome=Outcome.SUCCESS if applied else Outcome.DENIED,
                details={
                    "wrap_with_trusted": result.value,
                    **({} if applied else {"by": "token", "reason": result.title}),
                },
            )
        settled += 1
    return settled
