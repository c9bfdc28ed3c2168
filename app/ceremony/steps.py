"""The step types: each one small function over the services the workstation already has.

A step function receives the ``StepContext`` and the script's parameters (already validated
against its declaration) and returns its outputs as text (shown in large type with PGP words,
compared with the script's expectations, kept in the transcript). Dual control, air-gap
checks, write-ahead intents and audit entries are the services' own: a step adds nothing of
its own to them. Secrets (PINs) are asked through the desk at the moment they are needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.ceremony.context import StepContext
from app.ceremony.registry import Kind, Outputs, step_type
from app.domain.algorithms import parse_algorithm, parse_purpose
from app.domain.keys import KeyRecord
from app.domain.lifecycle import Action
from app.errors import AuditIntegrityError, CeremonyError
from app.services.prompter import SecretKind

RULE_PRECHECK = "KS-CEREMONY-EXPECTATION"
KEY_OUTPUTS = ("key_id", "name", "algorithm", "kcv", "fingerprint")
KEY_VARYING = ("key_id", "kcv", "fingerprint")


def _key_outputs(key: KeyRecord, prefix: str = "") -> Outputs:
    found = {
        f"{prefix}key_id": key.id,
        f"{prefix}name": key.name,
        f"{prefix}algorithm": key.algorithm.value,
    }
    if key.kcv:
        found[f"{prefix}kcv"] = key.kcv
    if key.fingerprint:
        found[f"{prefix}fingerprint"] = key.fingerprint
    return found


def _precheck(ctx: StepContext, name: str, actual: str) -> None:
    wanted = ctx.expect.get(name)
    if wanted is not None and wanted.strip().lower() != actual.strip().lower():
        raise CeremonyError(
            f"Expected {name} {wanted} but found {actual}; nothing was done.", RULE_PRECHECK
        )


# --- workstation and token -------------------------------------------------------------------


@step_type(
    "workstation.check",
    "Check the workstation: audit chain and air gap",
    params={},
    outputs=("audit_entries", "audit_head", "air_gapped"),
    varying=("audit_entries", "audit_head", "air_gapped"),
)
def workstation_check(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    report = ctx.ws.audit.verify()
    if not report.ok:
        raise AuditIntegrityError(f"The audit history does not verify: {report.summary()}")
    from app.storage.events import head

    seq, digest = head(ctx.ws.db)
    return {
        "audit_entries": str(report.entries),
        "audit_head": f"{seq}:{digest.hex()}",
        "air_gapped": "yes" if ctx.ws.airgap.probe().air_gapped else "no",
    }


@step_type(
    "token.check",
    "Show the ceremony token for the room to compare",
    params={},
    outputs=("serial", "label", "manufacturer", "model"),
    varying=("serial", "label", "manufacturer", "model"),
)
def token_check(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    info = ctx.ws.tokens.find(ctx.token)
    return {
        "serial": info.serial,
        "label": info.label,
        "manufacturer": info.manufacturer,
        "model": info.model,
    }


@step_type(
    "token.init",
    "Erase the ceremony token, label it and set its user PIN (SO PIN)",
    params={"label": Kind.TEXT},
    required=("label",),
    outputs=("serial", "label"),
    varying=("serial",),
)
def token_init(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    ws = ctx.ws
    info = ws.tokens.find(ctx.token)
    so_pin = ctx.secret(SecretKind.SO_PIN, f"SO PIN of token '{info.label}'")
    made = ws.admin.init_token(info.serial, info.label, str(params["label"]), so_pin)
    new_pin = ctx.secret(SecretKind.NEW_USER_PIN, f"New user PIN for token '{made.label}'")
    ws.admin.init_pin(made.serial, so_pin, new_pin)
    ws.tokens.login(made.serial, new_pin)
    return {"serial": made.serial, "label": made.label}


@step_type(
    "audit.checkpoint",
    "Sign an audit checkpoint on the audit token",
    params={},
    outputs=("seq", "head"),
    varying=("seq", "head"),
)
def audit_checkpoint(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    made = ctx.ws.audit.checkpoint("ceremony step")
    return {"seq": str(made.seq), "head": made.head.hex()}


# --- keys ------------------------------------------------------------------------------------


@step_type(
    "key.generate",
    "Generate a key on the ceremony token",
    params={
        "name": Kind.TEXT,
        "algorithm": Kind.TEXT,
        "purpose": Kind.TEXT,
        "backup": Kind.BOOL,
    },
    required=("name", "algorithm"),
    outputs=KEY_OUTPUTS,
    varying=KEY_VARYING,
)
def key_generate(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    algorithm = parse_algorithm(str(params["algorithm"]))
    purpose = parse_purpose(str(params["purpose"])) if "purpose" in params else None
    key = ctx.ws.keys.generate(
        ctx.token,
        algorithm,
        str(params["name"]),
        purpose,
        backup_able=bool(params.get("backup", False)),
    )
    return _key_outputs(key)


def _transition(ctx: StepContext, params: Mapping[str, Any], action: Action) -> Outputs:
    key = ctx.key(str(params["key"]))
    _precheck(ctx, "kcv", key.kcv or "")
    _precheck(ctx, "fingerprint", key.fingerprint or "")
    done = ctx.ws.lifecycle.transition(
        key.id,
        action,
        reason=str(params.get("reason", "")),
        confirm_name=key.name if action is Action.DESTROY else None,
    )
    return {**_key_outputs(done), "state": done.state.value}


@step_type(
    "key.activate",
    "Activate a key (dual control for key-wrapping and signing keys)",
    params={"key": Kind.TEXT},
    required=("key",),
    outputs=(*KEY_OUTPUTS, "state"),
    varying=KEY_VARYING,
    prechecked=("kcv", "fingerprint"),
)
def key_activate(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    return _transition(ctx, params, Action.ACTIVATE)


@step_type(
    "key.deactivate",
    "Deactivate a key (it keeps only decrypt, verify and unwrap)",
    params={"key": Kind.TEXT, "reason": Kind.TEXT},
    required=("key", "reason"),
    outputs=(*KEY_OUTPUTS, "state"),
    varying=KEY_VARYING,
    prechecked=("kcv", "fingerprint"),
)
def key_deactivate(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    return _transition(ctx, params, Action.DEACTIVATE)


@step_type(
    "key.destroy",
    "Destroy a key on the token (dual control)",
    params={"key": Kind.TEXT},
    required=("key",),
    outputs=(*KEY_OUTPUTS, "state"),
    varying=KEY_VARYING,
    prechecked=("kcv", "fingerprint"),
)
def key_destroy(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    return _transition(ctx, params, Action.DESTROY)


@step_type(
    "key.rotate",
    "Generate the pre-active successor of a key",
    params={"key": Kind.TEXT},
    required=("key",),
    outputs=(*KEY_OUTPUTS, "successor_id", "successor", "successor_kcv", "successor_fingerprint"),
    varying=(*KEY_VARYING, "successor_id", "successor_kcv", "successor_fingerprint"),
    prechecked=("kcv", "fingerprint"),
)
def key_rotate(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    key = ctx.key(str(params["key"]))
    _precheck(ctx, "kcv", key.kcv or "")
    _precheck(ctx, "fingerprint", key.fingerprint or "")
    successor = ctx.ws.lifecycle.rotate(key.id)
    found = _key_outputs(key)
    found["successor_id"] = successor.id
    found["successor"] = successor.name
    if successor.kcv:
        found["successor_kcv"] = successor.kcv
    if successor.fingerprint:
        found["successor_fingerprint"] = successor.fingerprint
    return found


# --- certificates ----------------------------------------------------------------------------

CERT_OUTPUTS = ("serial", "certificate_sha256", "subject", "file")
CERT_VARYING = ("serial", "certificate_sha256")


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@step_type(
    "cert.self-sign",
    "Make the root CA's self-signed certificate with its key on the token",
    params={
        "key": Kind.TEXT,
        "subject": Kind.TEXT,
        "profile": Kind.TEXT,
        "days": Kind.INT,
        "out": Kind.TEXT,
    },
    required=("key", "subject", "days", "out"),
    outputs=CERT_OUTPUTS,
    varying=CERT_VARYING,
)
def cert_self_sign(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    key = ctx.key(str(params["key"]))
    target = ctx.file(str(params["out"]), new=True)
    issued = ctx.ws.certs.self_sign(
        key.id,
        str(params.get("profile", "root-ca")),
        str(params["subject"]),
        int(params["days"]),
        target,
    )
    return _cert_outputs(issued.der, target.name)


def _cert_outputs(der: bytes, file: str) -> Outputs:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    return {
        "serial": format(cert.serial_number, "x"),
        "certificate_sha256": _sha256(der),
        "subject": cert.subject.rfc4514_string(),
        "file": file,
    }


@step_type(
    "cert.sign-csr",
    "Issue a certificate (an intermediate CA) for a reviewed CSR",
    params={
        "issuer": Kind.TEXT,
        "csr": Kind.TEXT,
        "profile": Kind.TEXT,
        "days": Kind.INT,
        "out": Kind.TEXT,
    },
    required=("issuer", "csr", "days", "out"),
    outputs=(*CERT_OUTPUTS, "csr_sha256"),
    varying=(*CERT_VARYING, "csr_sha256"),
    prechecked=("csr_sha256",),
)
def cert_sign_csr(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    issuer = ctx.key(str(params["issuer"]))
    source = ctx.file(str(params["csr"]), new=False)
    csr_sha = _sha256(source.read_bytes())
    _precheck(ctx, "csr_sha256", csr_sha)
    target = ctx.file(str(params["out"]), new=True)
    issued = ctx.ws.certs.sign_csr(
        issuer.id,
        source,
        str(params.get("profile", "intermediate-ca")),
        int(params["days"]),
        target,
    )
    return {**_cert_outputs(issued.der, target.name), "csr_sha256": csr_sha}


@step_type(
    "cert.csr",
    "Make a certificate signing request with a key on the token",
    params={"key": Kind.TEXT, "subject": Kind.TEXT, "out": Kind.TEXT},
    required=("key", "subject", "out"),
    outputs=("csr_sha256", "file"),
    varying=("csr_sha256",),
)
def cert_csr(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    key = ctx.key(str(params["key"]))
    target = ctx.file(str(params["out"]), new=True)
    issued = ctx.ws.certs.csr(key.id, str(params["subject"]), target)
    return {"csr_sha256": _sha256(issued.der), "file": target.name}


# --- backups ---------------------------------------------------------------------------------


@step_type(
    "backup.create",
    "Back up the token's backup-able keys; the KEK split among the custodians",
    params={"to": Kind.TEXT, "custodians": Kind.NAMES, "threshold": Kind.INT, "keys": Kind.NAMES},
    required=("to", "custodians", "threshold"),
    outputs=("backup_id", "generation", "kek_check_value", "keys", "directory"),
    varying=("backup_id", "generation", "kek_check_value", "directory"),
)
def backup_create(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    ws = ctx.ws
    name = str(params["to"])
    target = ctx.workdir / name
    if not name or Path(name).name != name or name in {".", ".."}:
        raise CeremonyError(f"'{name}' must be a plain directory name.", "KS-CEREMONY-FILE")
    target.mkdir(mode=0o700, exist_ok=True)
    info = ws.tokens.find(ctx.token)
    so_pin = ctx.secret(
        SecretKind.SO_PIN, f"SO PIN of token '{info.label}' (marks the KEK trusted)"
    )
    user_pin = ctx.secret(SecretKind.USER_PIN, f"User PIN of token '{info.label}'")
    chosen = {str(k) for k in params.get("keys", [])} or None
    created = ws.backup.create(
        target,
        info.serial,
        so_pin,
        user_pin,
        threshold=int(params["threshold"]),
        custodians=[str(c) for c in params["custodians"]],
        chosen=chosen,
        deliver=ctx.desk.deliver_shares,
    )
    manifest = created.manifest
    return {
        "backup_id": manifest.backup_id,
        "generation": str(manifest.generation),
        "kek_check_value": manifest.kek_check_value,
        "keys": ", ".join(sorted(e.name for e in manifest.keys)),
        "directory": created.directory.name,
    }


@step_type(
    "backup.drill",
    "Restore drill: the custodians' shares open the newest backup; every key is unwrapped "
    "in a session on the token and its check value compared",
    params={"backup": Kind.TEXT},
    outputs=("backup_id", "kek_check_value", "drilled", "keys"),
    varying=("backup_id", "kek_check_value"),
)
def backup_drill(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    from app.backup import format as fmt
    from app.services.backup import KekSecret

    ws = ctx.ws
    wanted = str(params.get("backup", "latest"))
    records = ws.backup.backups()
    record = (
        max(records, key=lambda r: r.generation, default=None)
        if wanted == "latest"
        else next((r for r in records if r.id == wanted), None)
    )
    if record is None:
        raise CeremonyError(
            f"No backup '{wanted}' was made by this workstation.", "KS-CEREMONY-BACKUP"
        )
    directory = Path(record.directory)
    manifest = fmt.Manifest.parse((directory / fmt.MANIFEST).read_bytes())
    needed = int(manifest.shares["threshold"]) if manifest.shares else None
    secret = KekSecret(mnemonics=ctx.desk.collect_shares(needed))
    report = ws.backup.verify(directory, secret, ctx.token)
    if report.problems:
        raise CeremonyError(
            "The drill found problems: " + "; ".join(report.problems), "KS-CEREMONY-DRILL"
        )
    return {
        "backup_id": manifest.backup_id,
        "kek_check_value": manifest.kek_check_value,
        "drilled": str(report.drilled),
        "keys": ", ".join(sorted(e.name for e in manifest.keys)),
    }
