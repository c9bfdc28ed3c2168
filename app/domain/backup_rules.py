"""Which keys a Keystead backup can carry: the one rule generation, import, the backup plan and
the GUI's generate dialog ask, so "must be backed up" is never accepted for a key no backup
could ever hold.

The backup wrapper (``app.hsm.backup_wrap``) wraps, inside the token, AES keys with RFC 5649 and
RSA / EC private keys as PKCS#8; it has no way for Ed25519 private keys, which SoftHSM 2.6.1
refuses to wrap at all (``CKR_KEY_NOT_WRAPPABLE``). A token whose capability probe found that it
cannot wrap a family's private keys (``private_key_wrap`` False) narrows this further. Pure:
no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.domain.algorithms import Algorithm, Family

RULE_NOT_WRAPPABLE = "KS-BACKUP-NOT-WRAPPABLE"

# The capability probe's names for the private-key families (``Capabilities.private_key_wrap``).
PROBE_FAMILY = {Family.RSA: "RSA", Family.EC: "EC", Family.EDDSA: "Ed25519"}
_NEVER = {
    Family.EDDSA: (
        "Ed25519 private keys cannot be wrapped out of the token (SoftHSM 2.6.1 answers "
        "CKR_KEY_NOT_WRAPPABLE, and the backup format has no Ed25519 entry)"
    )
}


def unwrappable_reason(algorithm: Algorithm) -> str | None:
    """Why no Keystead backup can hold a key of ``algorithm`` (None: the wrapper handles it).
    The reason is a clause, e.g. for a backup plan's list of keys left out."""
    return _NEVER.get(algorithm.family)


def backup_refusal(
    algorithm: Algorithm,
    token_label: str,
    private_key_wrap: Mapping[str, bool] | None = None,
) -> str | None:
    """The sentence refusing a "must be backed up" key of ``algorithm`` on token
    ``token_label``, or None when it can be backed up. ``private_key_wrap`` is the token's
    capability probe (family name → wraps its private keys), None when never probed."""
    never = unwrappable_reason(algorithm)
    if never is not None:
        return (
            f"An {algorithm.value} key cannot be made backup-able: {never}, so it could never "
            "be backed up. Make it without 'backup-able', or choose AES, RSA or EC. "
            f"[{RULE_NOT_WRAPPABLE}]"
        )
    if algorithm.symmetric or private_key_wrap is None:
        return None
    family = PROBE_FAMILY.get(algorithm.family)
    if family is None or private_key_wrap.get(family, True):
        return None
    return (
        f"Token '{token_label}' cannot wrap {family} private keys (its capability probe found "
        f"so), so a {family} key made there could never be backed up. Make it without "
        f"'backup-able', or choose another algorithm. [{RULE_NOT_WRAPPABLE}]"
    )
