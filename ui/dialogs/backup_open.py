"""Opening a backup for verification, a restore drill or a restore: the directory, the token,
and the backup key's secret (custodians' shares entered one at a time, or the recovery
passphrase). Nothing here touches a token or the database; the page submits the job."""

from __future__ import annotations

from pathlib import Path

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
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.backup import shares
from app.errors import KeysteadError, ValidationError
from app.services.backup import KekSecret
from ui.widgets.form import ErrorLine, heading, hint
from ui.widgets.secret_field import SecretField


class OpenBackupDialog(QDialog):
    """``restore``: a token is required and so is the secret. Otherwise (verify) the secret
    is optional: without it only the signature, hashes and structure are checked; with it the
    sealed files too, and with "drill" every key is unwrapped into session objects."""

    def __init__(
        self,
        tokens: list[tuple[str, str]],
        directory: str = "",
        restore: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.restore = restore
        self.setWindowTitle("Restore from a backup" if restore else "Verify a backup")
        self.setMinimumWidth(640)
        self._shares: list[str] = []
        layout = QVBoxLayout(self)
        layout.addWidget(
            heading(
                "Restore keys from a backup" if restore else "Verify a backup without restoring",
                self,
            )
        )
        layout.addWidget(
            hint(
                "Everything is verified before the token or the database is touched: the "
                "signature, every file's SHA-256, the KEK check value and the sealed files. "
                "Keys already here, or recorded as destroyed or compromised, are not brought back."
                if restore
                else "Signature, manifest, file hashes and structure are checked without any "
                "secret. With the custodians' shares or the passphrase the sealed files are "
                "checked too; a drill also unwraps every key into session objects on a token, "
                "compares its KCV and destroys it.",
                self,
            )
        )
        form = QFormLayout()
        row = QHBoxLayout()
        self.directory = QLineEdit(directory, self)
        self.directory.setObjectName("backupDirectory")
        browse = QPushButton("Choose…", self)
        browse.clicked.connect(self._browse)
        row.addWidget(self.directory, 1)
        row.addWidget(browse)
        form.addRow("Backup directory:", row)
        self.token = QComboBox(self)
        self.token.setObjectName("openToken")
        for serial, text in tokens:
            self.token.addItem(text, serial)
        self.drill = QCheckBox("Restore drill on this token (session objects only)", self)
        self.drill.setObjectName("drill")
        if restore:
            form.addRow("Restore onto token:", self.token)
            self.drill.hide()  # a restore checks every key anyway; no drill box here
        else:
            form.addRow("Drill token:", self.token)
            form.addRow("", self.drill)
        layout.addLayout(form)

        self.by_shares = QRadioButton("Custodians' shares", self)
        self.by_passphrase = QRadioButton("Recovery passphrase", self)
        self.by_nothing = QRadioButton("No secret: signature, hashes and structure only", self)
        self.by_shares.setChecked(True)
        modes = QHBoxLayout()
        choices = [self.by_shares, self.by_passphrase] + ([] if restore else [self.by_nothing])
        for button in choices:
            modes.addWidget(button)
            button.toggled.connect(self._mode)
        self.by_nothing.setVisible(not restore)  # a restore always needs the secret
        modes.addStretch(1)
        layout.addLayout(modes)

        self.share_box = QWidget(self)
        sform = QFormLayout(self.share_box)
        sform.setContentsMargins(0, 0, 0, 0)
        share_row = QHBoxLayout()
        self.share = QLineEdit(self)
        self.share.setObjectName("shareEntry")
        self.share.setPlaceholderText("one custodian's words, in order; cleared when accepted")
        self.share.returnPressed.connect(self._take_share)
        accept_share = QPushButton("Accept share", self)
        accept_share.setObjectName("acceptShare")
        accept_share.clicked.connect(self._take_share)
        share_row.addWidget(self.share, 1)
        share_row.addWidget(accept_share)
        sform.addRow("Share:", share_row)
        self.count = QLabel("No share entered yet.", self)
        self.count.setObjectName("shareCount")
        sform.addRow("", self.count)
        self.share_passphrase = SecretField("only if the shares were made with one", self)
        sform.addRow("Share passphrase:", self.share_passphrase)
        layout.addWidget(self.share_box)
        self.pass_box = QWidget(self)
        pform = QFormLayout(self.pass_box)
        pform.setContentsMargins(0, 0, 0, 0)
        self.passphrase = SecretField("", self)
        self.passphrase.setObjectName("openPassphrase")
        pform.addRow("Recovery passphrase:", self.passphrase)
        layout.addWidget(self.pass_box)
        self.override = QCheckBox(
            "Disaster recovery: allow an older generation (a security officer approves)", self
        )
        self.override.setToolTip(
            "Needed only when this workstation knows a newer backup generation; recorded as "
            "its own approved action (backup.restore-override)."
        )
        self.override.setVisible(restore)
        layout.addWidget(self.override)
        self.error = ErrorLine(self)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Restore" if restore else "Verify")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._mode()

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Backup directory", self.directory.text())
        if chosen:
            self.directory.setText(chosen)

    def _mode(self) -> None:
        self.share_box.setVisible(self.by_shares.isChecked())
        self.pass_box.setVisible(self.by_passphrase.isChecked())
        self.drill.setEnabled(not self.by_nothing.isChecked())
        if self.by_nothing.isChecked():
            self.drill.setChecked(False)

    def _take_share(self) -> None:
        """Check one share's words (checksum) and keep it; the field is cleared either way
        for the next custodian. Messages never repeat a word."""
        words = self.share.text()
        self.share.clear()
        if not words.strip():
            return
        try:
            parsed = shares.parse(words)
        except KeysteadError as exc:
            self.error.show_error(exc.message)
            return
        indexes = [shares.parse(s).index for s in self._shares]
        if parsed.index in indexes:
            self.error.show_error(
                "That share was already entered; each custodian enters their own."
            )
            return
        self._shares.append(" ".join(words.split()))
        self.error.clear_error()
        self.count.setText(
            f"{len(self._shares)} share(s) entered (this backup needs "
            f"{parsed.member_threshold}). Next custodian, please."
        )

    def _accept(self) -> None:
        try:
            self.values()
        except ValidationError as exc:
            self.error.show_error(exc.message)
            return
        self.accept()

    def values(self) -> tuple[Path, str | None, KekSecret | None, bool]:
        """(directory, token serial or None, secret or None, override generation)."""
        text = self.directory.text().strip()
        if not text:
            raise ValidationError("Choose the backup's directory (it holds manifest.json).")
        secret: KekSecret | None = None
        if self.by_shares.isChecked():
            if not self._shares:
                raise ValidationError("Enter the custodians' shares, one at a time.")
            secret = KekSecret(
                mnemonics=tuple(self._shares),
                share_passphrase=self.share_passphrase.text().encode("utf-8"),
            )
        elif self.by_passphrase.isChecked():
            if not self.passphrase.text():
                raise ValidationError("Enter the recovery passphrase.")
            secret = KekSecret(recovery_passphrase=self.passphrase.text())
        serial = str(self.token.currentData() or "") or None
        if (self.restore or self.drill.isChecked()) and serial is None:
            raise ValidationError("Log in to a token first.")
        token = serial if (self.restore or self.drill.isChecked()) else None
        return Path(text), token, secret, self.override.isChecked()
