"""Approvers at the terminal, or for automation from the environment.

``KEYSTEAD_APPROVER`` names the approvers and ``KEYSTEAD_APPROVER_PASSPHRASE`` holds their
passphrases, comma-separated in the same order when there is more than one approver (with one
approver the whole value is the passphrase, commas included). Without them, at a terminal,
each approver reads the request and its SHA-256 as PGP words, then types their name and
passphrase. Never argv.
"""

from __future__ import annotations

import getpass
import os
import sys
import unicodedata

from app.cli.secrets import interactive
from app.domain.approval import RULE_NO_APPROVER, ApprovalRequest, Credential, PolicyRule
from app.domain.approval_text import parameter_lines
from app.domain.roles import describe
from app.errors import KeysteadError, OperationCancelled, ValidationError

ENV_APPROVER = "KEYSTEAD_APPROVER"
ENV_APPROVER_PASSPHRASE = "KEYSTEAD_APPROVER_PASSPHRASE"  # noqa: S105 (a variable name)


def terminal_text(text: str) -> str:
    """Control and invisible characters shown escaped, so a name cannot rewrite the screen."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}
        else ch
        for ch in text
    )


def request_lines(request: ApprovalRequest, rule: PolicyRule) -> list[str]:
    """What an approver reads before approving (the GUI dialog shows the same)."""
    lines = [
        f"Approval needed: {request.title} ({request.action})",
        f"  requested by : {terminal_text(request.initiator)} at {request.requested_at}",
        f"  subject      : {terminal_text(request.subject)}",
    ]
    for label, values in parameter_lines(request.parameters):
        # One item per line under its label; the request's SHA-256 covers the values as given.
        lines.append(f"  {label:<13}: {terminal_text(values[0])}")
        lines += [f"  {'':<{max(13, len(label))}}  {terminal_text(v)}" for v in values[1:]]
    words = request.words
    lines += [
        f"  SHA-256      : {request.fingerprint}",
        f"  read aloud   : {' '.join(words[:8])}",
        f"                 {' '.join(words[8:16])}",
        f"                 {' '.join(words[16:24])}",
        f"                 {' '.join(words[24:])}",
        f"  needs        : {rule.approvals} approver(s), each {describe(rule.roles)}, "
        f"other than {terminal_text(request.initiator)}",
    ]
    return lines


def refusal_hint(error: KeysteadError) -> str:
    """What to do when a command could not ask for approvers (no terminal, no variables):
    appended to the one error line. Empty for every other error."""
    if getattr(error, "rule", None) != RULE_NO_APPROVER or ENV_APPROVER in os.environ:
        return ""
    if interactive():
        return ""
    return (
        " No approver could be asked: run the command at a terminal, where each approver "
        f"types their name and passphrase, or (automation) set {ENV_APPROVER} and "
        f"{ENV_APPROVER_PASSPHRASE}."
    )


class CliApprovers:
    """The CLI's approval source."""

    def credentials(self, request: ApprovalRequest, rule: PolicyRule) -> list[Credential] | None:
        names_text = os.environ.get(ENV_APPROVER)
        if names_text is not None:
            return _from_environment(names_text, os.environ.get(ENV_APPROVER_PASSPHRASE))
        if not interactive():
            return []  # the service refuses: no approver given (recorded as denied)
        print("\n".join(request_lines(request, rule)), file=sys.stderr)
        found = []
        try:
            for index in range(rule.approvals):
                name = input(f"Approver {index + 1} of {rule.approvals}, name: ").strip()
                passphrase = getpass.getpass(f"Passphrase of {terminal_text(name)}: ")
                found.append(Credential(name, passphrase))
        except (EOFError, KeyboardInterrupt) as exc:
            raise OperationCancelled("Approval cancelled; nothing was changed.") from exc
        return found


def _from_environment(names_text: str, passphrases_text: str | None) -> list[Credential]:
    names = [n.strip() for n in names_text.split(",")]
    if not names_text.strip() or any(not n for n in names):
        raise ValidationError(f"{ENV_APPROVER} is set but names no approver; nothing was tried.")
    if passphrases_text is None:
        raise ValidationError(
            f"{ENV_APPROVER} is set without {ENV_APPROVER_PASSPHRASE}; nothing was tried."
        )
    passphrases = [passphrases_text] if len(names) == 1 else passphrases_text.split(",")
    if len(passphrases) != len(names):
        raise ValidationError(
            f"{ENV_APPROVER} names {len(names)} approver(s) but {ENV_APPROVER_PASSPHRASE} holds "
            f"{len(passphrases)} passphrase(s); give them comma-separated in the same order."
        )
    empty = [n for n, p in zip(names, passphrases, strict=True) if not p]
    if empty:  # as an empty answer at the terminal: never tried, never counted as wrong
        raise ValidationError(
            f"{ENV_APPROVER_PASSPHRASE} is empty for approver '{empty[0]}'; nothing was tried."
        )
    return [Credential(n, p) for n, p in zip(names, passphrases, strict=True)]
