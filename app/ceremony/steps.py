"""The step types: each one small function over the services the workstation already has.

A step function receives the ``StepContext`` and the script's parameters (already validated
against its declaration) and returns its outputs as text (shown in large type with PGP words,
compared with the script's expectations, kept in the transcript). Dual control, air-gap
checks, write-ahead intents and audit entries are the services' own: a step adds nothing of
its own to them. Secrets (PINs) are asked through the desk at the moment they are needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from app.ceremony.context import StepContext, plain_file_name
from app.ceremony.registry import Kind, Outputs, ParamRefused, Preflight, StepSettle, step_type
from app.domain.algorithms import Algorithm, parse_algorithm, parse_purpose, usage_for
from app.domain.backup_rules import backup_refusal
from app.domain.keys import KeyRecord
from app.domain.lifecycle import Action
from app.domain.names import validate_key_name, validate_token_label
from app.errors import AuditIntegrityError, CeremonyError, KeysteadError
from app.services.prompter import SecretKind

T = TypeVar("T")

if TYPE_CHECKING:
    from app.domain.audit import AuditEntry

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


# --- parameter checks: the rules the services apply when the step runs, callable before -----
# (``ceremony validate``, ``Ceremonies.begin``) and again by ``CeremonyRun.perform``.


def _field(name: str, check: Callable[[], T]) -> T:
    """Run one of the services' own rules on parameter ``name``; its refusal names the field."""
    try:
        return check()
    except KeysteadError as exc:
        raise ParamRefused(name, exc.message) from exc


def _new_key_name(params: Mapping[str, Any], pre: Preflight, field: str = "name") -> None:
    """A key the step creates: the key-name rule, and (on a workstation) not already taken."""
    rule = pre.free_name or validate_key_name
    _field(field, lambda: rule(str(params[field])))


def _new_file(params: Mapping[str, Any], pre: Preflight, field: str = "out") -> None:
    """A file the step writes: a plain name, and (with a working directory) not there yet."""
    name = _field(field, lambda: plain_file_name(str(params[field])))
    if pre.workdir is not None and (pre.workdir / name).exists():
        raise ParamRefused(
            field,
            f"{pre.workdir / name} exists; a ceremony never writes over a file. Move it away "
            "first.",
        )


def _input_file(params: Mapping[str, Any], field: str) -> None:
    """A file the step reads (made before the ceremony or by an earlier step): a plain name."""
    _field(field, lambda: plain_file_name(str(params[field])))


def _algorithm(params: Mapping[str, Any]) -> Algorithm:
    return _field("algorithm", lambda: parse_algorithm(str(params["algorithm"])))


def check_generate(params: Mapping[str, Any], pre: Preflight) -> None:
    algorithm = _algorithm(params)
    if "purpose" in params:
        purpose = _field("purpose", lambda: parse_purpose(str(params["purpose"])))
        _field("purpose", lambda: usage_for(algorithm, purpose))
    if params.get("backup", False):
        refusal = backup_refusal(algorithm, "the ceremony token")
        if refusal is not None:
            raise ParamRefused("backup", refusal)
    _new_key_name(params, pre)


def check_token_init(params: Mapping[str, Any], pre: Preflight) -> None:
    _field("label", lambda: validate_token_label(str(params["label"])))


def check_self_sign(params: Mapping[str, Any], pre: Preflight) -> None:
    from app.pki.build import parse_name
    from app.services.certificates import issuing_profile

    profile = str(params.get("profile", "root-ca"))
    _field("profile", lambda: issuing_profile(profile, 1, self_signed=True))
    _field("days", lambda: issuing_profile(profile, int(params["days"]), self_signed=True))
    _field("subject", lambda: parse_name(str(params["subject"])))
    _new_file(params, pre)


def check_sign_csr(params: Mapping[str, Any], pre: Preflight) -> None:
    from app.services.certificates import issuing_profile

    profile = str(params.get("profile", "intermediate-ca"))
    _field("profile", lambda: issuing_profile(profile, 1, self_signed=False))
    _field("days", lambda: issuing_profile(profile, int(params["days"]), self_signed=False))
    _input_file(params, "csr")
    _new_file(params, pre)
    if str(params["csr"]) == str(params["out"]):
        raise ParamRefused("out", "The certificate cannot be written over the CSR it is for.")


def check_csr(params: Mapping[str, Any], pre: Preflight) -> None:
    from app.pki.build import parse_name

    _field("subject", lambda: parse_name(str(params["subject"])))
    _new_file(params, pre)


def check_backup_create(params: Mapping[str, Any], pre: Preflight) -> None:
    from app.backup.shares import custodian_plan

    _field("to", lambda: plain_file_name(str(params["to"]), "directory"))
    custodians = [str(c) for c in params["custodians"]]
    _field("custodians", lambda: custodian_plan(custodians, int(params["threshold"])))


# --- settling a step interrupted between its recorded start and its outputs -----------------


def _rerun(ctx: StepContext, params: Mapping[str, Any], since: Sequence[AuditEntry]) -> None:
    """A step that only reads or signs a checkpoint: doing it again changes nothing that
    matters, so an interrupted one simply runs again."""
    return None


def _completed(
    since: Sequence[AuditEntry], action: str, subject: str | None = None, **details: Any
) -> tuple[str, dict[str, Any]] | None:
    """(subject, details) of the last successful ``action`` entry since the step began (on
    ``subject``, with these detail values), or None."""
    found = None
    for entry in since:
        if entry.action != action or entry.outcome != "success":
            continue
        if subject is not None and entry.subject != subject:
            continue
        values = json.loads(entry.details_json)
        if all(values.get(k) == v for k, v in details.items()):
            found = (entry.subject, values)
    return found


def _subject_key(ctx: StepContext, subject: str) -> KeyRecord:
    return ctx.key(subject.removeprefix("key:"))


def _settle_generate(
    ctx: StepContext, params: Mapping[str, Any], since: Sequence[AuditEntry]
) -> Outputs | None:
    done = _completed(since, "key.generate", name=validate_key_name(str(params["name"])))
    return None if done is None else _key_outputs(_subject_key(ctx, done[0]))


def _settle_transition(action: Action) -> StepSettle:
    def settle(
        ctx: StepContext, params: Mapping[str, Any], since: Sequence[AuditEntry]
    ) -> Outputs | None:
        key = ctx.key(str(params["key"]))
        if _completed(since, f"key.{action.value}", f"key:{key.id}") is None:
            return None
        _precheck(ctx, "kcv", key.kcv or "")
        _precheck(ctx, "fingerprint", key.fingerprint or "")
        return {**_key_outputs(key), "state": key.state.value}

    return settle


def _settle_rotate(
    ctx: StepContext, params: Mapping[str, Any], since: Sequence[AuditEntry]
) -> Outputs | None:
    key = ctx.key(str(params["key"]))
    done = _completed(since, "key.rotate", f"key:{key.id}")
    if done is None:
        return None
    return _rotation_outputs(ctx, key, ctx.ws.keys.resolve(str(done[1]["successor"])))


def _settle_written(action: str, key_param: str) -> StepSettle:
    """A certificate or request written to the working directory: taken up when the entry
    naming the file is there and the file holds what the entry recorded."""

    def settle(
        ctx: StepContext, params: Mapping[str, Any], since: Sequence[AuditEntry]
    ) -> Outputs | None:
        key = ctx.key(str(params[key_param]))
        name = str(params["out"])
        done = _completed(since, action, f"key:{key.id}", output_name=name)
        if done is None:
            return None
        path = ctx.workdir / name
        data = path.read_bytes() if path.is_file() else b""
        if _sha256(data) != done[1].get("output_sha256"):
            raise CeremonyError(
                f"The step wrote {path} before the interruption (recorded in the audit history), "
                "but the file there now is not what was written. Nothing is issued twice: "
                "abandon the ceremony and check the file.",
                "KS-CEREMONY-INTERRUPTED",
            )
        found = _written_outputs(data, name, action)
        if "csr" in params:  # sign-csr: the request it signed, as the run reads it
            found["csr_sha256"] = _sha256(ctx.file(str(params["csr"]), new=False).read_bytes())
        return found

    return settle


def _written_outputs(pem: bytes, name: str, action: str) -> Outputs:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    if action == "cert.csr":
        request = x509.load_pem_x509_csr(pem)
        return {"csr_sha256": _sha256(request.public_bytes(Encoding.DER)), "file": name}
    cert = x509.load_pem_x509_certificate(pem)
    return _cert_outputs(cert.public_bytes(Encoding.DER), name)


def _settle_backup(
    ctx: StepContext, params: Mapping[str, Any], since: Sequence[AuditEntry]
) -> Outputs | None:
    done = _completed(since, "backup.create")
    if done is None:
        return None  # nothing recorded: no backup of this step exists (shares handed out void)
    record = next((r for r in ctx.ws.backup.backups() if r.id == done[1]["backup_id"]), None)
    if record is None:
        raise CeremonyError(
            f"The audit history records backup {done[1]['backup_id']} of this step, but the "
            "workstation has no record of it. Nothing is written twice: abandon the ceremony.",
            "KS-CEREMONY-INTERRUPTED",
        )
    return _backup_outputs(Path(record.directory))


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
    settle=_rerun,
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
    settle=_rerun,
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
    check=check_token_init,
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
    settle=_rerun,
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
    check=check_generate,
    new_keys=("name",),
    settle=_settle_generate,
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
    settle=_settle_transition(Action.ACTIVATE),
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
    settle=_settle_transition(Action.DEACTIVATE),
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
    settle=_settle_transition(Action.DESTROY),
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
    settle=_settle_rotate,
)
def key_rotate(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    key = ctx.key(str(params["key"]))
    _precheck(ctx, "kcv", key.kcv or "")
    _precheck(ctx, "fingerprint", key.fingerprint or "")
    successor = ctx.ws.lifecycle.rotate(key.id)
    return _rotation_outputs(ctx, key, successor)


def _rotation_outputs(ctx: StepContext, key: KeyRecord, successor: KeyRecord) -> Outputs:
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
    check=check_self_sign,
    new_files=("out",),
    settle=_settle_written("cert.issue", "key"),
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
    check=check_sign_csr,
    new_files=("out",),
    settle=_settle_written("cert.issue", "issuer"),
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
    check=check_csr,
    new_files=("out",),
    settle=_settle_written("cert.csr", "key"),
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
    check=check_backup_create,
    settle=_settle_backup,
)
def backup_create(ctx: StepContext, params: Mapping[str, Any]) -> Outputs:
    ws = ctx.ws
    target = ctx.workdir / plain_file_name(str(params["to"]), "directory")
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
    return _backup_outputs(created.directory)


def _backup_outputs(directory: Path) -> Outputs:
    """What a backup step reads aloud, from the backup's own manifest."""
    from app.backup import format as fmt

    manifest = fmt.Manifest.parse((directory / fmt.MANIFEST).read_bytes())
    return {
        "backup_id": manifest.backup_id,
        "generation": str(manifest.generation),
        "kek_check_value": manifest.kek_check_value,
        "keys": ", ".join(sorted(e.name for e in manifest.keys)),
        "directory": directory.name,
    }


@step_type(
    "backup.drill",
    "Restore drill: the custodians' shares open the newest backup; every key is unwrapped "
    "in a session on the token and its check value compared",
    params={"backup": Kind.TEXT},
    outputs=("backup_id", "kek_check_value", "drilled", "keys"),
    varying=("backup_id", "kek_check_value"),
    settle=_rerun,
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
