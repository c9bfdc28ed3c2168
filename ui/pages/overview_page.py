"""Overview: "is everything all right?" at a glance, each figure a link to the filtered view.

Tokens present and logged in (and the audit token), the audit chain's last verification and
checkpoint, keys due or overdue, keys missing on their token, failed logins since the last
unlock, the air gap. Backups are shown once they exist.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.domain.keys import Presence
from app.services.tokens import TokenStatus
from ui.session import GuiSession
from ui.widgets.form import heading, hint


class AuditFacts(NamedTuple):
    last_checkpoint: tuple[int, str] | None
    failed_logins: int
    head: int
    backups: int = 0
    last_backup: str | None = None  # UTC time text of the newest backup
    last_backup_keys: int = 0


class Card(QFrame):
    """One figure: a title, the figure (coloured by state), a line of detail, a link."""

    def __init__(self, title: str, link_text: str, target: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        layout = QVBoxLayout(self)
        caption = QLabel(title, self)
        caption.setObjectName("caption")
        self.figure = QLabel("…", self)
        self.figure.setObjectName("figure")
        self.figure.setWordWrap(True)
        self.detail = hint("", self)
        self.link = QPushButton(link_text, self)
        self.link.setFlat(True)
        self.link.setCursor(Qt.CursorShape.PointingHandCursor)
        self.target = target
        self.title = title
        layout.addWidget(caption)
        layout.addWidget(self.figure)
        layout.addWidget(self.detail)
        layout.addStretch(1)
        layout.addWidget(self.link, 0, Qt.AlignmentFlag.AlignLeft)

    def set(self, figure: str, state: str, detail: str = "") -> None:
        self.figure.setText(figure)
        self.figure.setProperty("state", state)
        self.figure.style().unpolish(self.figure)
        self.figure.style().polish(self.figure)
        self.detail.setText(detail)
        self.detail.setVisible(bool(detail))

    @property
    def state(self) -> str:
        return str(self.figure.property("state"))


class OverviewPage(QWidget):
    """Listens to the session and the other pages; ``navigate`` names the view to show."""

    navigate = Signal(str)  # "tokens", "inventory:missing", "inventory:due", "audit", ...

    def __init__(self, session: GuiSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 12, 12, 12)
        outer.addWidget(heading("Is everything all right?", self))
        self.verdict = QLabel(self)
        self.verdict.setObjectName("banner")
        self.verdict.setWordWrap(True)
        outer.addWidget(self.verdict)
        body = QWidget(self)
        grid = QGridLayout(body)
        grid.setSpacing(10)
        self.tokens = Card("Tokens", "Show tokens", "tokens", body)
        self.audit = Card("Audit chain", "Verify now", "audit:verify", body)
        self.due = Card("Keys due or overdue", "Show due keys", "inventory:due", body)
        self.missing = Card("Keys missing on token", "Show missing keys", "inventory:missing", body)
        self.logins = Card(
            "Failed logins since unlock", "Show failed logins", "audit:failed-logins", body
        )
        self.airgap = Card("Air gap", "Show tokens", "tokens", body)
        self.backup = Card("Backups", "Show keys not backed up", "inventory:not-backed-up", body)
        self.compromised = Card(
            "Compromised keys", "Show compromised keys", "inventory:compromised", body
        )
        self.at_risk: int | None = None
        self.cards = [
            self.tokens,
            self.audit,
            self.due,
            self.missing,
            self.logins,
            self.airgap,
            self.backup,
            self.compromised,
        ]
        for position, card in enumerate(self.cards):
            grid.addWidget(card, position // 3, position % 3)
            if card.target:
                card.link.clicked.connect(lambda _c=False, t=card.target: self.navigate.emit(t))
        for column in range(3):
            grid.setColumnStretch(column, 1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(body)
        outer.addWidget(scroll, 1)
        session.tokens_changed.connect(self.show_tokens)

    # --- figures ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Ask the core for the audit facts (the rest arrives through signals)."""

        def facts(ws: Any) -> AuditFacts:
            backups = ws.backup.backups()
            newest = max(backups, key=lambda b: b.created_at) if backups else None
            return AuditFacts(
                ws.audit.last_checkpoint(),
                ws.audit.failed_logins_since_unlock(),
                ws.audit.head_seq(),
                len(backups),
                newest.created_at if newest else None,
                newest.keys if newest else 0,
            )

        self.session.run(
            facts,
            self.show_audit,
            lambda error: self.audit.set("could not be read", "bad", str(error)),
        )

    def show_tokens(self, statuses: list[TokenStatus]) -> None:
        present = len(statuses)
        logged_in = sum(1 for s in statuses if s.logged_in)
        audit = self.session.audit_status()
        if self.session.audit_serial is not None and audit is None:
            state = "bad"
            detail = f"The audit token '{self.session.audit_label}' is not attached."
        elif audit is not None and not audit.logged_in:
            state = "warn"
            detail = f"The audit token '{audit.info.label}' is not logged in."
        else:
            state = "ok" if present else "warn"
            detail = "The audit token is logged in." if audit else ""
        self.tokens.set(f"{present} present, {logged_in} logged in", state, detail)
        self._verdict()

    def show_audit(self, facts: AuditFacts) -> None:
        self._facts = facts
        checkpoint = (
            f"Last checkpoint: entry {facts.last_checkpoint[0]} at "
            f"{facts.last_checkpoint[1][:16].replace('T', ' ')} UTC."
            if facts.last_checkpoint
            else "No checkpoint signed yet."
        )
        verified = self._verified
        if verified is None:
            self.audit.set("not verified since unlock", "warn", checkpoint)
        elif not verified[2]:
            self.audit.set("DAMAGED — see the Audit page", "bad", checkpoint)
        else:
            when = f"{verified[0]:%Y-%m-%d %H:%M} UTC"
            added = facts.head - verified[1]
            stale = f" {added} entries added since." if added > 0 else ""
            self.audit.set(f"verified at {when}", "warn" if added > 0 else "ok", checkpoint + stale)
        self._show_backup()
        failed = facts.failed_logins
        self.logins.set(str(failed), "bad" if failed else "ok", "Wrong PINs, refused back-offs.")
        self._verdict()

    def show_at_risk(self, at_risk: int) -> None:
        """Keys at risk: backup-able keys in no verified backup."""
        self.at_risk = at_risk
        self._show_backup()
        self._verdict()

    def _show_backup(self) -> None:
        facts = self._facts
        at_risk = self.at_risk or 0
        risk = (
            f"{at_risk} key(s) at risk: in no verified backup."
            if at_risk
            else "Every backup-able key is in a verified backup."
        )
        if facts is None or facts.last_backup is None:
            self.backup.set(
                f"no backup yet; {at_risk} key(s) at risk" if at_risk else "no backup yet",
                "bad" if at_risk else "warn",
                "Make one on the Backup page.",
            )
        else:
            self.backup.set(
                f"{at_risk} key(s) at risk" if at_risk else "every key backed up",
                "bad" if at_risk else "ok",
                f"{risk} Newest backup {facts.last_backup[:16].replace('T', ' ')} UTC holds "
                f"{facts.last_backup_keys} key(s); {facts.backups} backup(s) in all.",
            )

    def set_verified(self, verified: tuple[datetime, int, bool] | None) -> None:
        self._verified = verified
        if self._facts is not None:
            self.show_audit(self._facts)

    def show_keys(self, due: int, overdue: int, presence: dict[Presence, int]) -> None:
        self.due.set(
            f"{due} due, {overdue} overdue",
            "bad" if overdue else ("warn" if due else "ok"),
            "Live keys whose deactivation date is near or past.",
        )
        missing = presence.get(Presence.MISSING, 0)
        absent = presence.get(Presence.ABSENT, 0)
        self.missing.set(
            f"{missing} missing" + (f", {absent} on a token not attached" if absent else ""),
            "bad" if missing else ("warn" if absent else "ok"),
            "Records whose token object is gone (destroyed keys are not counted).",
        )
        self._verdict()

    def show_compromised(self, count: int) -> None:
        self.compromised.set(
            f"{count} compromised, not destroyed" if count else "none",
            "bad" if count else "ok",
            "Never use them: re-protect what they protected under new keys, then destroy "
            "them."
            if count
            else "",
        )
        self._verdict()

    def show_airgap(self, air_gapped: bool | None, text: str) -> None:
        state = "unknown" if air_gapped is None else ("ok" if air_gapped else "bad")
        self.airgap.set(text, state)
        self._verdict()

    def _verdict(self) -> None:
        bad = [c for c in self.cards if c.state == "bad"]
        warn = [c for c in self.cards if c.state == "warn"]
        if bad:
            names = ", ".join(c.title.lower() for c in bad)
            self.verdict.setText(f"Attention needed: {names}.")
            state = "bad"
        elif warn:
            self.verdict.setText("Mostly fine; see the amber figures.")
            state = "stale"
        else:
            self.verdict.setText(f"Everything checked is fine ({datetime.now(UTC):%H:%M} UTC).")
            state = "ok"
        self.verdict.setProperty("state", state)
        self.verdict.style().unpolish(self.verdict)
        self.verdict.style().polish(self.verdict)

    _facts: AuditFacts | None = None
    _verified: tuple[datetime, int, bool] | None = None
