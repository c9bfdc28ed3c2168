"""Distribution dialogs: wrap a key for another HSM, import a wrapped key, import a public key.

Each names what will happen and what is recorded before anything runs; the work runs on the
core thread, where the approval service asks for the second person (dual control) through the
window's approval dialog. PINs are typed into ``SecretField``s and taken (cleared) when the job
is made; they never reach a log or the audit entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.algorithms import Family, Purpose
from app.domain.keys import KeyRecord
from app.domain.transfer import WrapMechanism
from app.services.workstation import Workstation
from ui.errors import message
from ui.session import GuiSession
from ui.widgets.secret_field import SecretField


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _JobDialog(QDialog):
    """A form, a run button, a status line; ``job()`` builds the core-thread job."""

    verb = "Run"

    def __init__(self, session: GuiSession, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.result_text = ""
        self.result: Any = None
        self.setWindowTitle(title)
        self.setMinimumWidth(640)
        self.layout_ = QVBoxLayout(self)
        self.form = QFormLayout()

    def finish_layout(self) -> None:
        self.layout_.addLayout(self.form)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.status.setObjectName("status")
        self.layout_.addWidget(self.status)
        self.buttons = QDialogButtonBox(self)
        self.run_button = self.buttons.addButton(self.verb, QDialogButtonBox.ButtonRole.AcceptRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.run_button.clicked.connect(self.start)
        self.close_button.clicked.connect(self.reject)
        self.layout_.addWidget(self.buttons)

    def facts(self, html: str) -> QLabel:
        label = QLabel(html, self)
        label.setWordWrap(True)
        label.setObjectName("facts")
        self.layout_.addWidget(label)
        return label

    def file_row(self, label: str, save: bool) -> QLineEdit:
        edit = QLineEdit(self)
        browse = QPushButton("Browse…", self)
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(browse)

        def choose() -> None:
            chooser = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
            path, _ = chooser(self, label)
            if path:
                edit.setText(path)

        browse.clicked.connect(choose)
        self.form.addRow(label, row)
        return edit

    def job(self) -> Any:
        raise NotImplementedError

    def describe(self, result: Any) -> str:
        raise NotImplementedError

    def start(self) -> None:
        try:
            job = self.job()
        except ValueError as exc:
            self.status.setText(str(exc))
            return
        self.run_button.setEnabled(False)
        self.status.setText("Working… (a second person will be asked to approve)")
        self.session.run(job, self._done, self._failed)

    def _done(self, result: Any) -> None:
        self.result = result
        self.result_text = self.describe(result)
        self.status.setText(self.result_text)
        self.run_button.setEnabled(False)
        self.close_button.setText("Close")
        self.session.keys_changed.emit()

    def _failed(self, error: BaseException) -> None:
        self.run_button.setEnabled(True)
        self.result_text = message(error)
        self.status.setText(self.result_text)


_SHORT_NOTES = {
    WrapMechanism.RSA_OAEP_SHA1: (
        "RSA-OAEP with SHA-1: SoftHSM wraps secret keys with OAEP only so. The receiving HSM "
        "must accept SHA-1 OAEP; the file and the audit entry say so."
    ),
    WrapMechanism.AES_KWP: (
        "Compare the KEK's check value with the recipient's before wrapping; it is the file's "
        "recipient."
    ),
}


class WrapForDialog(_JobDialog):
    """Wrap the selected secret key for a recipient HSM into a transfer file."""

    verb = "Wrap"

    def __init__(self, session: GuiSession, key: KeyRecord, parent: QWidget | None = None) -> None:
        super().__init__(session, f"Wrap for a recipient HSM — {key.name}", parent)
        self.key = key
        self.facts(
            f"<b>{_escape(key.name)}</b> · {key.algorithm.value} · {key.purpose.title} · state "
            f"<b>{key.state.title}</b> · KCV <tt>{_escape(key.kcv or '—')}</tt><br>"
            "The key is wrapped inside the token; its value never appears in clear. Recorded "
            "as key.distribute with the recipient's fingerprint, the KCV, the file's SHA-256 "
            f"and the approvers, and kept in the key's distribution record. "
            f"Started by {_escape(session.operator)}; a second person must approve."
        )
        self.by_recipient = QRadioButton("Recipient's RSA public key or certificate", self)
        self.by_kek = QRadioButton("Shared KEK both HSMs hold (AES key wrap, RFC 5649)", self)
        group = QButtonGroup(self)
        group.addButton(self.by_recipient)
        group.addButton(self.by_kek)
        self.by_recipient.setChecked(True)
        self.form.addRow("Wrap with:", self.by_recipient)
        self.form.addRow("", self.by_kek)
        self.recipient = self.file_row("Recipient key (PEM/DER):", save=False)
        self.kek = QComboBox(self)
        self.kek.setPlaceholderText("no shared KEK on this token")
        self.form.addRow("Shared KEK:", self.kek)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setObjectName("hint")
        self.form.addRow("", self.note)
        token = f"token '{key.token_label}'"
        self.so_pin = SecretField(f"SO PIN of {token} (the key's token)", self)
        self.user_pin = SecretField(f"User PIN of {token} (the key's token)", self)
        self.form.addRow(f"SO PIN of {token}:", self.so_pin)
        self.form.addRow(f"User PIN of {token}:", self.user_pin)
        self.target = self.file_row("Transfer file to write:", save=True)
        self.overwrite = QCheckBox("Replace the output file if it exists", self)
        self.form.addRow("", self.overwrite)
        self.finish_layout()
        self.by_recipient.toggled.connect(self._mode)
        self._mode()
        serial = key.token_serial
        session.run(
            lambda ws: [
                k.name
                for k in ws.keys.repo.all()
                if k.algorithm.family is Family.AES
                and k.purpose is Purpose.KEY_WRAPPING
                and k.token_serial == serial
                and k.id != key.id
            ],
            self._keks_loaded,
            lambda error: self.status.setText(message(error)),
        )

    def _keks_loaded(self, names: list[str]) -> None:
        self.kek.clear()
        self.kek.addItems(names)

    def _mode(self) -> None:
        rsa = self.by_recipient.isChecked()
        self.recipient.setEnabled(rsa)
        self.so_pin.setEnabled(rsa)
        self.user_pin.setEnabled(rsa)
        self.kek.setEnabled(not rsa)
        mechanism = WrapMechanism.RSA_OAEP_SHA1 if rsa else WrapMechanism.AES_KWP
        self.note.setText(_SHORT_NOTES[mechanism])
        self.note.setToolTip(mechanism.note)

    def job(self) -> Any:
        target_text = self.target.text().strip()
        if not target_text:
            raise ValueError("Choose the transfer file to write.")
        rsa = self.by_recipient.isChecked()
        recipient = Path(self.recipient.text().strip()) if rsa else None
        if rsa and not self.recipient.text().strip():
            raise ValueError("Choose the recipient's public key or certificate.")
        kek = None if rsa else self.kek.currentText()
        if not rsa and not kek:
            raise ValueError("This token holds no managed AES key-wrapping key to share.")
        if rsa and (not self.so_pin.text() or not self.user_pin.text()):
            raise ValueError("RSA-OAEP needs the token's SO PIN and user PIN.")
        so_pin, user_pin = (self.so_pin.take(), self.user_pin.take()) if rsa else ("", "")
        key_id, target, overwrite = self.key.id, Path(target_text), self.overwrite.isChecked()

        def run(ws: Workstation) -> Any:
            return ws.distribution.wrap_for(
                key_id,
                target,
                so_pin=so_pin,
                user_pin=user_pin,
                recipient=recipient,
                kek_ref=kek,
                overwrite=overwrite,
            )

        return run

    def describe(self, result: Any) -> str:
        return (
            f"Wrapped for {result.recipient_name} [{result.recipient[:16]}…] with "
            f"{result.mechanism.value} into {result.output}; file SHA-256 {result.file_sha256}; "
            f"audit entry #{result.event_seq}. Read the KCV {result.kcv} and the purpose "
            f"'{result.key.purpose.value}' to the recipient."
        )


class ImportWrappedDialog(_JobDialog):
    """Import a key from a transfer file made for a key-wrapping key on one of the tokens."""

    verb = "Import"

    def __init__(self, session: GuiSession, parent: QWidget | None = None) -> None:
        super().__init__(session, "Import a wrapped key", parent)
        self.facts(
            "The key is unwrapped inside the token with its full template and its KCV checked "
            "first; a damaged, altered or other-recipient file leaves nothing on the token. "
            "The key starts <b>pre-active</b>. Recorded as key.import with the file's SHA-256, "
            "the sender's key id and the approvers; a second person must approve."
        )
        self.token = QComboBox(self)
        for status in session.tokens:
            if status.logged_in:
                self.token.addItem(status.info.label, status.info.serial)
        self.form.addRow("Onto token:", self.token)
        self.source = self.file_row("Transfer file:", save=False)
        self.name = QLineEdit(self)
        self.form.addRow("Name:", self.name)
        self.unwrapping = QLineEdit(self)
        self.unwrapping.setPlaceholderText("found by the file's recipient when left empty")
        self.form.addRow("Unwrapping key:", self.unwrapping)
        self.expect_kcv = QLineEdit(self)
        self.expect_kcv.setPlaceholderText("the KCV the sender read out, e.g. 6AF1EC")
        self.form.addRow("Expected KCV:", self.expect_kcv)
        # The file's purpose decides the key's usage and no check value covers it: the officer
        # picks what the sender read out; the service compares (KS-TRANSFER-PURPOSE).
        self.expect_purpose = QComboBox(self)
        self.expect_purpose.addItem("— what the sender read out —", None)
        for purpose in Purpose:
            self.expect_purpose.addItem(purpose.title, purpose)
        self.expect_purpose.setToolTip(
            "The purpose is not covered by the KCV or the file's checksum; an altered file "
            "could change it. Choose the purpose the sender read out with the KCV."
        )
        self.form.addRow("Purpose read out:", self.expect_purpose)
        self.backup_able = QCheckBox("Backup-able (extractable by a trusted KEK only)", self)
        self.form.addRow("", self.backup_able)
        self.finish_layout()

    def job(self) -> Any:
        if self.token.currentData() is None:
            raise ValueError("Log in to the token that holds the unwrapping key first.")
        if not self.source.text().strip() or not self.name.text().strip():
            raise ValueError("Choose the transfer file and give the key a name.")
        token, source, name = (
            self.token.currentData(),
            Path(self.source.text().strip()),
            (self.name.text().strip()),
        )
        unwrapping = self.unwrapping.text().strip() or None
        expect = self.expect_kcv.text().strip() or None
        purpose: Purpose | None = self.expect_purpose.currentData()
        if purpose is None:
            raise ValueError("Choose the purpose the sender read out (with the KCV).")
        backup_able = self.backup_able.isChecked()

        def run(ws: Workstation) -> Any:
            return ws.distribution.import_wrapped(
                token,
                source,
                name,
                unwrapping_key=unwrapping,
                expect_kcv=expect,
                backup_able=backup_able,
                expect_purpose=purpose,
            )

        return run

    def describe(self, result: Any) -> str:
        return (
            f"Imported '{result.key.name}' as pre-active, KCV {result.key.kcv} checked "
            f"({' '.join(result.words)}); audit entry #{result.event_seq}."
        )


class ImportPublicDialog(_JobDialog):
    """Import a public key or a certificate's key as a verify-only key."""

    verb = "Import"

    def __init__(self, session: GuiSession, parent: QWidget | None = None) -> None:
        super().__init__(session, "Import a public key", parent)
        self.facts(
            "A public key (PEM/DER) or a certificate's key becomes a <b>verify-only</b> key, "
            "kept in Keystead's database (no token object). It starts <b>pre-active</b>; "
            "compare its SHA-256 fingerprint with the owner's before activating it. Recorded "
            "as key.import; a second person must approve."
        )
        self.source = self.file_row("Public key or certificate:", save=False)
        self.name = QLineEdit(self)
        self.form.addRow("Name:", self.name)
        self.finish_layout()

    def job(self) -> Any:
        if not self.source.text().strip() or not self.name.text().strip():
            raise ValueError("Choose the file and give the key a name.")
        source, name = Path(self.source.text().strip()), self.name.text().strip()
        return lambda ws: ws.distribution.import_public(source, name)

    def describe(self, result: Any) -> str:
        return (
            f"Imported '{result.key.name}' ({result.key.algorithm.value}) as pre-active; "
            f"SHA-256 {result.kcv_or_fingerprint}; read aloud: {' '.join(result.words)}; "
            f"audit entry #{result.event_seq}."
        )
