"""How a job on the core thread asks a person for something (PIN, passphrase, a yes/no).

The CLI answers from a TTY or the automation environment variables; the GUI answers through a
dialog on its own thread; tests script the answers.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol


class SecretKind(Enum):
    PASSPHRASE = "passphrase"  # noqa: S105 (a kind of secret, not one)
    USER_PIN = "user PIN"
    SO_PIN = "SO PIN"
    AUDIT_PIN = "audit token PIN"
    NEW_USER_PIN = "new user PIN"
    NEW_SO_PIN = "new SO PIN"
    RECOVERY_PASSPHRASE = "backup recovery passphrase"  # noqa: S105 (a kind of secret)
    SHARE_PASSPHRASE = "share passphrase"  # noqa: S105 (SLIP-39's optional passphrase)


class Prompter(Protocol):
    def secret(self, kind: SecretKind, prompt: str) -> str | None:
        """Return the secret, or None if the person cancelled."""
        ...

    def confirm(self, question: str) -> bool:
        """Return True if the person agreed."""
        ...


class ScriptedPrompter:
    """Answers from a fixed script: for tests and automation."""

    def __init__(
        self,
        secrets: dict[SecretKind, list[str | None]] | None = None,
        confirmations: list[bool] | None = None,
    ) -> None:
        self._secrets = {k: list(v) for k, v in (secrets or {}).items()}
        self._confirmations = list(confirmations or [])
        self.asked: list[str] = []

    def secret(self, kind: SecretKind, prompt: str) -> str | None:
        self.asked.append(prompt)
        answers = self._secrets.get(kind)
        if not answers:
            return None
        return answers.pop(0)

    def confirm(self, question: str) -> bool:
        self.asked.append(question)
        return self._confirmations.pop(0) if self._confirmations else False
