"""The alert under the menu bar: the audit token is not logged in, not attached, or a token
was removed. It stays until the situation is over; it names the token and says what to do.

Right after unlock, if the audit token is attached but not logged in, its PIN is asked for
at once (``ask_at_start``): restricting a key must never wait on a missing seal.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from app.services.tokens import TokenStatus
from ui.login import login_to_audit_token
from ui.session import GuiSession


class AuditTokenBanner(QFrame):
    def __init__(
        self, session: GuiSession, parent: QWidget | None = None, ask_at_start: bool = True
    ) -> None:
        super().__init__(parent)
        self.setObjectName("alertBanner")
        self.session = session
        self._ask_at_start = ask_at_start
        self._seen: dict[str, str] = {}  # serial -> label of tokens present at the last look
        self._removed: dict[str, str] = {}  # tokens that went away while the window was open
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.login_button = QPushButton("Log in to the audit token…", self)
        self.login_button.clicked.connect(self.log_in)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.login_button)
        self.hide()
        session.tokens_changed.connect(self.update_from)

    def log_in(self) -> None:
        login_to_audit_token(self.window(), self.session)

    def update_from(self, statuses: list[TokenStatus]) -> None:
        present = {s.info.serial: s.info.label for s in statuses}
        for serial, label in self._seen.items():
            if serial not in present:
                self._removed[serial] = label
        for serial in present:
            self._removed.pop(serial, None)
        self._seen = present
        audit = self.session.audit_status()
        lines: list[str] = []
        state = "warn"
        if self.session.audit_serial is not None and audit is None:
            label = self.session.audit_label or "audit token"
            verb = (
                "was removed" if self.session.audit_serial in self._removed else "is not attached"
            )
            lines.append(
                f"Audit token '{label}' (serial {self.session.audit_serial}) {verb}. Changes "
                "cannot be sealed until it is back (refusals and failures are still recorded). "
                "Insert it, then log in to it."
            )
            state = "bad"
        elif audit is not None and not audit.logged_in:
            lines.append(
                f"Audit token '{audit.info.label}' is not logged in: changes to keys cannot be "
                "recorded until it is. Log in now; a change you start will also ask for it."
            )
        others = {s: n for s, n in self._removed.items() if s != self.session.audit_serial}
        if others:
            names = ", ".join(f"'{label}' (serial {serial})" for serial, label in others.items())
            lines.append(f"Token removed: {names}. Its keys cannot be checked or used.")
            state = "bad"
        self.login_button.setVisible(audit is not None and not audit.logged_in)
        self.text.setText("\n".join(lines))
        self.setProperty("state", state)
        self.style().unpolish(self)
        self.style().polish(self)
        self.setVisible(bool(lines))
        if self._ask_at_start and audit is not None and not audit.logged_in:
            self._ask_at_start = False
            self.log_in()
        elif audit is not None:
            self._ask_at_start = False  # asked once at most, and never after it was in
