"""The approval dialog: what exactly will happen, its SHA-256 as PGP words, and one name +
passphrase per approver, typed by each approver at this workstation."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QLabel,
    QLineEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.domain.approval import ApprovalRequest, Credential, PolicyRule
from app.domain.approval_text import parameter_lines
from app.domain.roles import describe
from ui.widgets.form import ErrorLine, heading, hint
from ui.widgets.secret_field import SecretField


def shown(text: str) -> str:
    """Control and invisible characters escaped (a name cannot hide what it is)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


class ApprovalDialog(QDialog):
    """Shows ``request`` and collects ``rule.approvals`` credentials."""

    def __init__(
        self, request: ApprovalRequest, rule: PolicyRule, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Approval needed — {request.title}")
        self.setMinimumWidth(620)
        self.request = request
        layout = QVBoxLayout(self)
        layout.addWidget(heading(f"Approval needed: {request.title}", self))
        layout.addWidget(
            hint(
                f"'{shown(request.initiator)}' asks for this. It needs {rule.approvals} "
                f"approver(s), each {describe(rule.roles)} other than "
                f"'{shown(request.initiator)}'. Each approver reads what will happen, checks the "
                "words below with the initiator, and types their own name and passphrase.",
                self,
            )
        )
        facts = QWidget(self)
        what = QFormLayout(facts)
        what.addRow("Action:", QLabel(f"{request.action}", self))
        what.addRow("Subject:", QLabel(shown(request.subject), self))
        for label_text, values in parameter_lines(request.parameters):
            # One item per line; the request's SHA-256 covers the values exactly as given.
            label = QLabel("\n".join(shown(v) for v in values), self)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            what.addRow(f"{label_text}:", label)
        what.addRow("Requested at:", QLabel(request.requested_at, self))
        # Every parameter stays readable on a small screen: the list scrolls, never squeezes.
        scroll = QScrollArea(self)
        scroll.setObjectName("approvalFacts")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(facts)
        # Small enough that the whole dialog fits a 1024x700 screen (a dialog taller than the
        # screen is squeezed below its minimum and its parts are drawn over each other).
        scroll.setMinimumHeight(min(facts.sizeHint().height() + 4, 150))
        layout.addWidget(scroll, 1)
        layout.addSpacing(12)  # the group box's title sits above its frame
        # Two lines of eight groups: one unbroken line of 16 groups is cut off at 1024 px
        # (word wrap never breaks inside it), and a hash read aloud must be read whole.
        groups = request.fingerprint.split(":")
        half = (len(groups) + 1) // 2
        digest = QLabel(":".join(groups[:half]) + ":\n" + ":".join(groups[half:]), self)
        digest.setObjectName("approvalDigest")
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        digest.setFont(mono)
        digest.setWordWrap(True)
        digest.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        words = request.words
        self.words = QLabel("\n".join(" ".join(words[i : i + 8]) for i in range(0, 32, 8)), self)
        self.words.setObjectName("approvalWords")
        self.words.setFont(mono)
        box = QGroupBox("Request SHA-256 (read aloud)", self)
        inner = QVBoxLayout(box)
        inner.addWidget(digest)
        inner.addWidget(self.words)
        layout.addWidget(box)
        self.rows: list[tuple[QLineEdit, SecretField]] = []
        for index in range(rule.approvals):
            group = QGroupBox(f"Approver {index + 1}", self)
            form = QFormLayout(group)
            name_edit = QLineEdit(group)
            name_edit.setObjectName(f"approverName{index}")
            name_edit.setPlaceholderText("operator name")
            passphrase = SecretField("passphrase", group)
            passphrase.setObjectName(f"approverPassphrase{index}")
            form.addRow("Name:", name_edit)
            form.addRow("Passphrase:", passphrase)
            layout.addWidget(group)
            self.rows.append((name_edit, passphrase))
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Approve")
        ok.setObjectName("approveButton")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._credentials: list[Credential] = []
        if self.rows:
            self.rows[0][0].setFocus()
        self._fit_screen()

    def _fit_screen(self) -> None:
        """Open at the size the content asks for, but never taller than the screen's free
        area: the facts list scrolls instead (every fact stays reachable, none overlaps)."""
        screen = self.screen()
        if screen is None:
            return
        room = screen.availableGeometry()
        wanted = self.sizeHint()
        width = min(wanted.width(), room.width() - 40)
        self.resize(width, min(wanted.height(), room.height() - 40))

    def _accept(self) -> None:
        for name, passphrase in self.rows:
            if not name.text().strip() or not passphrase.text():
                self.error.show_error("Each approver types their name and passphrase, or Cancel.")
                return
        self._credentials = [Credential(n.text().strip(), p.take()) for n, p in self.rows]
        self.accept()

    def credentials(self) -> list[Credential]:
        taken, self._credentials = self._credentials, []
        return taken
