"""What a step function gets: the workstation, the ceremony's token, its working directory, the
front end's desk (PINs, share cards) and the outputs of the steps already done."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from app.domain.names import has_control
from app.errors import CeremonyError, OperationCancelled
from app.services.prompter import SecretKind

if TYPE_CHECKING:
    from app.domain.keys import KeyRecord
    from app.services.backup import ShareCard
    from app.services.workstation import Workstation

RULE_FILE = "KS-CEREMONY-FILE"
RULE_KEY_TOKEN = "KS-CEREMONY-KEY-TOKEN"  # noqa: S105 (a rule id)


def plain_file_name(name: str, what: str = "file") -> str:
    """``name`` when it is a plain name of a ``what`` directly in the ceremony's working
    directory: not empty, no directory part (``a/b``, ``../x``, an absolute path), not ``.`` or
    ``..``, no control or invisible character, at most 255 bytes. CeremonyError otherwise."""
    if (
        not name
        or Path(name).name != name
        or name in {".", ".."}
        or "\\" in name
        or has_control(name)
        or len(name.encode("utf-8")) > 255
    ):
        raise CeremonyError(
            f"'{name}' must be a plain {what} name in the ceremony's working directory "
            "(no path, no '..', no control characters).",
            RULE_FILE,
        )
    return name


class CeremonyDesk(Protocol):
    """The front end's side of a step: asked from the core thread, answered by a person."""

    def secret(self, kind: SecretKind, prompt: str) -> str | None:
        """A PIN or passphrase typed now (None: cancelled). Never stored."""
        ...

    def deliver_shares(self, card: ShareCard) -> None:
        """Hand each custodian their share (one at a time); raise to cancel the backup."""
        ...

    def collect_shares(self, needed: int | None) -> tuple[str, ...]:
        """The custodians type their shares (for a restore drill)."""
        ...


@dataclass
class StepContext:
    ws: Workstation
    token: str  # the ceremony token's identity (serial)
    workdir: Path
    desk: CeremonyDesk
    expect: Mapping[str, str] = field(default_factory=dict)  # resolved expectations
    earlier: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def secret(self, kind: SecretKind, prompt: str) -> str:
        value = self.desk.secret(kind, prompt)
        if value is None:
            raise OperationCancelled(f"No {kind.value} was given; the step was not carried out.")
        return value

    def file(self, name: str, *, new: bool) -> Path:
        """A file directly in the ceremony's working directory (no path, no '..'). A new
        output must not exist (never written over); an input must."""
        path = self.workdir / plain_file_name(name)
        if new and path.exists():
            raise CeremonyError(
                f"{path} exists; a ceremony never writes over a file. Move it away first.",
                RULE_FILE,
            )
        if not new and not path.is_file():
            raise CeremonyError(f"{path} is not there; put it in {self.workdir}.", RULE_FILE)
        return path

    def key(self, ref: str) -> KeyRecord:
        """A managed key by name or id, which must be on the ceremony's token."""
        key = self.ws.keys.resolve(ref)
        if key.token_serial != self.token:
            raise CeremonyError(
                f"Key '{key.name}' is on token {key.token_serial}, not on this ceremony's token "
                f"{self.token}.",
                RULE_KEY_TOKEN,
            )
        return key
