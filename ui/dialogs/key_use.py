"""Use a key on a file (sign, verify, encrypt, decrypt) or export its public key.

The dialog names the key, its state and what the audit log will record before anything runs;
the work runs on the core thread with a progress bar and a Cancel button (the service checks a
``threading.Event`` between chunks, so a cancel leaves no output).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.keys import KeyRecord
from app.domain.public_formats import PublicFormat
from app.domain.usage import Operation, SignatureMechanism, default_signature
from app.errors import KeysteadError
from app.services.workstation import Workstation
from ui.errors import message
from ui.session import GuiSession

EXPORT = "export-public"
_TITLES = {
    Operation.SIGN.value: "Sign a file",
    Operation.VERIFY.value: "Verify a signature",
    Operation.ENCRYPT.value: "Encrypt a file",
    Operation.DECRYPT.value: "Decrypt a file",
    EXPORT: "Export the public key",
}
_RECORDED = {
    Operation.SIGN.value: "key.sign: mechanism, SHA-256 and size of the file and the signature",
    Operation.VERIFY.value: "key.verify: mechanism, SHA-256 of the file and the signature, result",
    Operation.ENCRYPT.value: "key.encrypt: SHA-256 and size of the file and the encrypted file",
    Operation.DECRYPT.value: "key.decrypt: SHA-256 and size of the encrypted and decrypted file",
    EXPORT: "key.export-public: format, fingerprint, SHA-256 of the file",
}


class _Progress(QObject):
    """Carries progress from the core thread to the GUI thread (queued signal)."""

    moved = Signal(int, int)


class KeyUseDialog(QDialog):
    def __init__(
        self, session: GuiSession, key: KeyRecord, operation: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.key = key
        self.operation = operation
        self.cancel_event = threading.Event()
        self.running = False
        self.result_text = ""
        self.setWindowTitle(f"{_TITLES[operation]} — {key.name}")
        self.setMinimumWidth(620)
        layout = QVBoxLayout(self)

        facts = QLabel(
            f"<b>{_escape(key.name)}</b> · {key.algorithm.value} · {key.purpose.title} · "
            f"state <b>{key.state.title}</b><br>"
            f"Identifier: <tt>{_escape(key.identifier or '—')}</tt><br>"
            f"Recorded in the audit log as {_RECORDED[operation]}, with your name "
            f"({_escape(session.operator)}).",
            self,
        )
        facts.setWordWrap(True)
        facts.setObjectName("facts")
        layout.addWidget(facts)

        form = QFormLayout()
        self.source = self._file_row(form, "File:", save=False, visible=operation != EXPORT)
        second = {
            Operation.SIGN.value: "Signature to write:",
            Operation.VERIFY.value: "Signature file:",
            Operation.ENCRYPT.value: "Encrypted file to write:",
            Operation.DECRYPT.value: "Decrypted file to write:",
            EXPORT: "Public key file to write:",
        }[operation]
        self.target = self._file_row(
            form, second, save=operation != Operation.VERIFY.value, visible=True
        )
        self.mechanism = QComboBox(self)
        self.format = QComboBox(self)
        if operation in (Operation.SIGN.value, Operation.VERIFY.value):
            usable = [m for m in SignatureMechanism if m.family is key.algorithm.family]
            for mech in usable:
                self.mechanism.addItem(mech.value, mech.value)
            with contextlib.suppress(KeysteadError):  # not a signing key: the service says so
                self.mechanism.setCurrentText(default_signature(key.algorithm).value)
            form.addRow("Mechanism:", self.mechanism)
        else:
            self.mechanism.hide()  # not in a layout: it must not float over the form
        if operation == EXPORT:
            for fmt in PublicFormat:
                self.format.addItem(fmt.value.upper(), fmt.value)
            form.addRow("Format:", self.format)
        else:
            self.format.hide()
        self.overwrite = QCheckBox("Replace the output file if it exists", self)
        if operation != Operation.VERIFY.value:
            form.addRow("", self.overwrite)
        else:
            self.overwrite.hide()
        layout.addLayout(form)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setVisible(operation != EXPORT)
        layout.addWidget(self.progress)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.status.setObjectName("status")
        layout.addWidget(self.status)

        self.buttons = QDialogButtonBox(self)
        self.run_button = self.buttons.addButton(
            _TITLES[operation].split(" ")[0], QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.run_button.clicked.connect(self.start)
        self.close_button.clicked.connect(self.cancel_or_close)
        layout.addWidget(self.buttons)
        self._progress = _Progress(self)
        self._progress.moved.connect(self._moved)

    def _file_row(self, form: QFormLayout, label: str, save: bool, visible: bool) -> QLineEdit:
        edit = QLineEdit(self)
        browse = QPushButton("Browse…", self)
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(browse)

        def choose() -> None:
            if save:
                path, _ = QFileDialog.getSaveFileName(self, label)
            else:
                path, _ = QFileDialog.getOpenFileName(self, label)
            if path:
                edit.setText(path)

        browse.clicked.connect(choose)
        if visible:
            form.addRow(label, row)
        else:
            edit.hide()
            browse.hide()
        return edit

    # --- running ---------------------------------------------------------------------------

    def job(self) -> Any:
        """The core-thread job for what the form says (raises ValueError for an empty form)."""
        key_id, op = self.key.id, self.operation
        source = Path(self.source.text().strip())
        target_text = self.target.text().strip()
        if (op != EXPORT and not self.source.text().strip()) or not target_text:
            raise ValueError("Choose the files first.")
        target = Path(target_text)
        overwrite = self.overwrite.isChecked()
        mechanism = self.mechanism.currentData()
        fmt = PublicFormat(self.format.currentData()) if op == EXPORT else None
        cancel = self.cancel_event
        moved = self._progress.moved

        def progress(done: int, total: int) -> None:
            moved.emit(done, total)

        def run(ws: Workstation) -> Any:
            use = ws.use
            if op == Operation.SIGN.value:
                return use.sign_file(
                    key_id,
                    source,
                    target,
                    mechanism,
                    overwrite=overwrite,
                    progress=progress,
                    cancel=cancel,
                )
            if op == Operation.VERIFY.value:
                return use.verify_file(
                    key_id, source, target, mechanism, progress=progress, cancel=cancel
                )
            if op == Operation.ENCRYPT.value:
                return use.encrypt_file(
                    key_id, source, target, overwrite=overwrite, progress=progress, cancel=cancel
                )
            if op == Operation.DECRYPT.value:
                return use.decrypt_file(
                    key_id, source, target, overwrite=overwrite, progress=progress, cancel=cancel
                )
            return use.export_public(key_id, fmt or PublicFormat.PEM, target, overwrite=overwrite)

        return run

    def start(self) -> None:
        try:
            job = self.job()
        except ValueError as exc:
            self.status.setText(str(exc))
            return
        self.running = True
        self.cancel_event.clear()
        self.run_button.setEnabled(False)
        self.progress.setValue(0)
        self.status.setText("Working on the token…")
        self.session.run(job, self._done, self._failed)

    def cancel_or_close(self) -> None:
        if self.running:
            self.cancel_event.set()
            self.status.setText("Cancelling…")
        else:
            self.reject()

    def _moved(self, done: int, total: int) -> None:
        self.progress.setValue(100 if total == 0 else int(done * 100 / total))

    def _done(self, result: Any) -> None:
        self.running = False
        self.run_button.setEnabled(True)
        self.progress.setValue(100)
        if self.operation == EXPORT:
            self.result_text = f"Written. SHA-256 {result.fingerprint}\nRead aloud: " + " ".join(
                result.words
            )
        elif self.operation == Operation.VERIFY.value:
            self.result_text = (
                f"Signature OK ({result.mechanism}); audit entry #{result.event_seq}."
            )
        else:
            self.result_text = (
                f"Done: {result.output} — output SHA-256 {result.output_sha256}; "
                f"audit entry #{result.event_seq}."
            )
        self.status.setText(self.result_text)
        self.close_button.setText("Close")

    def _failed(self, error: BaseException) -> None:
        self.running = False
        self.run_button.setEnabled(True)
        self.result_text = message(error)
        self.status.setText(self.result_text)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
