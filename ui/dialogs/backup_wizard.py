"""The backup wizard: target, keys, protection, approval, shares, writing, safe to remove.

Every token and database call runs on the core thread (``GuiSession.run``); the core's
``BackupService.create`` drives the ceremony and this dialog renders it (``BackupCeremony``
carries its share hand-out and progress here). Shares are shown one custodian at a time, the
screen cleared between; Keystead never writes a share to disk (printing goes to a printer only:
the print dialog's "print to file" is switched off).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.backup.media import Volume
from app.domain.keys import KeyRecord
from app.domain.names import validate_name
from app.errors import OperationCancelled, ValidationError
from app.services.backup import (
    BackupPlan,
    CreatedBackup,
    ShareCard,
    check_passphrase_strength,
)
from ui.backup_ceremony import BackupCeremony, ShareHandout
from ui.dialogs.approval import shown
from ui.errors import message
from ui.session import GuiSession
from ui.widgets.form import ErrorLine, heading, hint
from ui.widgets.secret_field import SecretField

STEPS = ("Target", "Keys", "Protection", "Approval", "Shares", "Writing", "Safe to remove")
TARGET, KEYS, PROTECTION, APPROVAL, SHARES, WRITING, DONE = range(len(STEPS))
_STAGES = {
    "wrap": "Wrapping keys inside the token",
    "seal": "Sealing the metadata and audit history (and deriving the passphrase key)",
    "write": "Writing and syncing files",
    "verify": "Reading every file back",
}


def size_text(count: int) -> str:
    """Bytes as people read them (binary units)."""
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{count} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} bytes"


def _table(columns: list[str], parent: QWidget) -> QTableWidget:
    table = QTableWidget(0, len(columns), parent)
    table.setHorizontalHeaderLabels(columns)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().hide()
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


class TargetStep(QWidget):
    """Removable volumes mounted now, or any directory."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.volumes: list[Volume] = []
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Where should the backup go?", self))
        layout.addWidget(
            hint(
                "Removable volumes mounted now. Free space is checked again before anything is "
                "written; a new directory is made and nothing is ever written over.",
                self,
            )
        )
        self.table = _table(["Label", "File system", "Free", "Size", "Device", "Mounted at"], self)
        self.table.setObjectName("volumesTable")
        self.table.itemSelectionChanged.connect(self._picked)
        layout.addWidget(self.table, 1)
        self.none_label = hint("No removable volume is mounted. Insert one, or choose a directory.")
        self.none_label.hide()
        layout.addWidget(self.none_label)
        row = QHBoxLayout()
        self.refresh_button = QPushButton("Look again", self)
        self.browse_button = QPushButton("Other directory…", self)
        self.browse_button.clicked.connect(self._browse)
        row.addWidget(self.refresh_button)
        row.addWidget(self.browse_button)
        row.addStretch(1)
        layout.addLayout(row)
        form = QFormLayout()
        self.path = QLineEdit(self)
        self.path.setObjectName("targetPath")
        self.path.setPlaceholderText("the directory the backup's own directory is made in")
        form.addRow("Write into:", self.path)
        layout.addLayout(form)

    def show_volumes(self, volumes: list[Volume]) -> None:
        self.volumes = volumes
        self.table.setRowCount(len(volumes))
        for row, volume in enumerate(volumes):
            for column, text in enumerate(
                (
                    volume.label or "(no label)",
                    volume.fstype,
                    size_text(volume.free_bytes),
                    size_text(volume.total_bytes),
                    volume.device,
                    volume.mountpoint,
                )
            ):
                self.table.setItem(row, column, QTableWidgetItem(shown(text)))
        self.none_label.setVisible(not volumes)
        if len(volumes) == 1 and not self.path.text():
            self.table.selectRow(0)

    def _picked(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self.volumes):
            self.path.setText(self.volumes[rows[0].row()].mountpoint)

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Write the backup into", self.path.text())
        if chosen:
            self.table.clearSelection()
            self.path.setText(chosen)

    def target(self) -> Path:
        text = self.path.text().strip()
        if not text:
            raise ValidationError("Choose a removable volume or a directory for the backup.")
        return Path(text)

    def volume(self) -> Volume | None:
        target = self.path.text().strip()
        return next((v for v in self.volumes if v.mountpoint == target), None)


class KeysStep(QWidget):
    """The token, its backup-able keys (all ticked), and the keys that cannot be backed up."""

    token_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.keys: list[KeyRecord] = []
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Which keys?", self))
        form = QFormLayout()
        self.token = QComboBox(self)
        self.token.setObjectName("backupToken")
        self.token.currentIndexChanged.connect(
            lambda _i: self.token_changed.emit(self.token.currentData() or "")
        )
        form.addRow("Token:", self.token)
        layout.addLayout(form)
        layout.addWidget(
            hint("Every key that can be backed up is ticked. Untick to leave one out.", self)
        )
        self.table = _table(["Key", "Algorithm", "Purpose", "State", "KCV / fingerprint"], self)
        self.table.setObjectName("backupKeys")
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        layout.addWidget(self.table, 2)
        self.refused_title = QLabel("Not in this backup (nothing has been written yet):", self)
        self.refused_title.setObjectName("warningLine")
        layout.addWidget(self.refused_title)
        self.refused = _table(["Key", "Why it cannot be backed up"], self)
        self.refused.setObjectName("refusedKeys")
        layout.addWidget(self.refused, 1)

    def show_tokens(self, tokens: list[tuple[str, str]]) -> None:
        """(serial, text) of logged-in tokens."""
        self.token.blockSignals(True)
        self.token.clear()
        for serial, text in tokens:
            self.token.addItem(text, serial)
        self.token.blockSignals(False)
        if tokens:
            self.token_changed.emit(tokens[0][0])

    def show_plan(self, plan: BackupPlan) -> None:
        self.keys = list(plan.keys)
        self.table.setRowCount(len(self.keys))
        for row, key in enumerate(self.keys):
            for column, text in enumerate(
                (
                    key.name,
                    key.algorithm.value,
                    key.purpose.value,
                    key.state.title,
                    key.kcv or (key.fingerprint or "")[:16],
                )
            ):
                item = QTableWidgetItem(shown(text))
                if column == 0:
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setCheckState(Qt.CheckState.Checked)
                self.table.setItem(row, column, item)
        # Keys that were meant to be backed up but cannot be come first: they are the surprise.
        refused = sorted(
            plan.refused, key=lambda r: (r.reason.startswith("not extractable"), r.name)
        )
        self.refused.setRowCount(len(refused))
        for row, refusal in enumerate(refused):
            self.refused.setItem(row, 0, QTableWidgetItem(shown(refusal.name)))
            self.refused.setItem(row, 1, QTableWidgetItem(refusal.reason))
        self.refused_title.setText(
            f"Not in this backup — {len(plan.refused)} key(s) (nothing has been written yet):"
            if plan.refused
            else "Every key on this token that exists can be backed up."
        )

    def serial(self) -> str:
        return str(self.token.currentData() or "")

    def chosen(self) -> list[KeyRecord]:
        picked = []
        for row, key in enumerate(self.keys):
            item = self.table.item(row, 0)
            if item is not None and item.checkState() == Qt.CheckState.Checked:
                picked.append(key)
        if not picked:
            raise ValidationError("Tick at least one key to back up.")
        return picked

    def all_chosen(self) -> bool:
        return len(self.chosen()) == len(self.keys)


class ProtectionStep(QWidget):
    """M-of-N custodians and/or a recovery passphrase, and the token's PINs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("How is the backup key protected?", self))
        self.use_shares = QGroupBox("Custodians' shares (SLIP-39, M of N)", self)
        self.use_shares.setCheckable(True)
        self.use_shares.setChecked(True)
        shares = QGridLayout(self.use_shares)
        self.custodians = QListWidget(self.use_shares)
        self.custodians.setObjectName("custodians")
        self.custodian_name = QLineEdit(self.use_shares)
        self.custodian_name.setObjectName("custodianName")
        self.custodian_name.setPlaceholderText("custodian's name, as on their ID")
        self.custodian_name.returnPressed.connect(self._add)
        add = QPushButton("Add", self.use_shares)
        add.clicked.connect(self._add)
        remove = QPushButton("Remove", self.use_shares)
        remove.clicked.connect(self._remove)
        self.threshold = QSpinBox(self.use_shares)
        self.threshold.setObjectName("threshold")
        self.threshold.setRange(2, 16)
        self.threshold_text = QLabel(self.use_shares)
        self.threshold.valueChanged.connect(self._counted)
        shares.addWidget(self.custodian_name, 0, 0)
        shares.addWidget(add, 0, 1)
        shares.addWidget(remove, 0, 2)
        shares.addWidget(self.custodians, 1, 0, 1, 3)
        row = QHBoxLayout()
        row.addWidget(QLabel("Any", self.use_shares))
        row.addWidget(self.threshold)
        row.addWidget(self.threshold_text, 1)
        shares.addLayout(row, 2, 0, 1, 3)
        layout.addWidget(self.use_shares, 2)

        self.use_passphrase = QGroupBox("Recovery passphrase (Argon2id)", self)
        self.use_passphrase.setCheckable(True)
        self.use_passphrase.setChecked(False)
        pform = QFormLayout(self.use_passphrase)
        self.passphrase = SecretField("at least 16 characters; several unrelated words", self)
        self.passphrase.setObjectName("recoveryPassphrase")
        self.confirm = SecretField("the same again", self)
        self.strength = QLabel(self.use_passphrase)
        self.strength.setObjectName("passphraseStrength")
        self.passphrase.textChanged.connect(self._strength)
        pform.addRow("Passphrase:", self.passphrase)
        pform.addRow("Again:", self.confirm)
        pform.addRow("", self.strength)
        layout.addWidget(self.use_passphrase)

        pins = QGroupBox("The token's PINs", self)
        pins.setObjectName("tokenPins")
        self.pins = pins
        form = QFormLayout(pins)
        self.so_pin = SecretField("marks the backup KEK trusted, for this backup only", self)
        self.so_pin.setObjectName("soPin")
        self.user_pin = SecretField("logs the token back in afterwards", self)
        self.user_pin.setObjectName("userPin")
        form.addRow("SO PIN:", self.so_pin)
        form.addRow("User PIN:", self.user_pin)
        layout.addWidget(pins)
        self._counted()
        self._strength()

    def for_token(self, token: str) -> None:
        """Name the token whose PINs are asked for (the one chosen on the keys step)."""
        self.pins.setTitle(f"PINs of token {token}" if token else "The token's PINs")

    def _add(self) -> None:
        name = self.custodian_name.text()
        try:
            cleaned = validate_name(name, "A custodian's name")
        except ValidationError as exc:
            self.custodian_name.setToolTip(exc.message)
            self.custodian_name.setStyleSheet("border: 1px solid #b00020;")
            self.window().findChild(ErrorLine, "wizardError").show_error(exc.message)  # type: ignore[union-attr]
            return
        if cleaned in self.names():
            self.window().findChild(ErrorLine, "wizardError").show_error(  # type: ignore[union-attr]
                f"'{cleaned}' is already a custodian; each custodian is named once."
            )
            return
        self.custodian_name.setStyleSheet("")
        self.custodians.addItem(cleaned)
        self.custodian_name.clear()
        self._counted()

    def _remove(self) -> None:
        for item in self.custodians.selectedItems():
            self.custodians.takeItem(self.custodians.row(item))
        self._counted()

    def _counted(self) -> None:
        count = self.custodians.count()
        self.threshold.setMaximum(max(2, count))
        self.threshold_text.setText(
            f"of {count} custodians together recover the backup key "
            f"({count - self.threshold.value()} may be lost or unavailable)."
            if count >= 2
            else "of N custodians: add at least two custodians."
        )

    def _strength(self) -> None:
        text = self.passphrase.text()
        try:
            check_passphrase_strength(text)
        except ValidationError:
            self.strength.setText(
                f"Too weak: {len(text)} characters, {len(set(text))} different (needs 16 and 8)."
            )
            self.strength.setObjectName("warningLine")
        else:
            self.strength.setText(f"Accepted: {len(text)} characters.")
            self.strength.setObjectName("hint")
        self.strength.style().unpolish(self.strength)
        self.strength.style().polish(self.strength)

    def names(self) -> list[str]:
        return [self.custodians.item(i).text() for i in range(self.custodians.count())]

    def check(self) -> None:
        """ValidationError naming what is missing (nothing has been sent to the core)."""
        if not self.use_shares.isChecked() and not self.use_passphrase.isChecked():
            raise ValidationError(
                "Protect the backup with custodians' shares, a passphrase, or both."
            )
        if self.use_shares.isChecked() and len(self.names()) < 2:
            raise ValidationError("Name at least two custodians (or untick the shares).")
        if self.use_passphrase.isChecked():
            check_passphrase_strength(self.passphrase.text())
            if self.passphrase.text() != self.confirm.text():
                raise ValidationError("The recovery passphrase and its confirmation differ.")
        if not self.so_pin.text() or not self.user_pin.text():
            raise ValidationError("Enter the token's SO PIN and user PIN.")


class ShareCardView(QFrame):
    """One custodian's share card. ``clear`` removes every word from the screen."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shareCard")
        self.setFrameShape(QFrame.Shape.Box)
        layout = QVBoxLayout(self)
        self.facts = QLabel(self)
        self.facts.setObjectName("shareFacts")
        self.facts.setTextFormat(Qt.TextFormat.RichText)
        self.facts.setWordWrap(True)
        self.words = QLabel(self)
        self.words.setObjectName("shareWords")
        self.words.setTextFormat(Qt.TextFormat.RichText)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setPointSize(font.pointSize() + 1)
        self.words.setFont(font)
        self.words.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        layout.addWidget(self.facts)
        layout.addWidget(self.words, 1)
        self.card_html = ""

    def show_card(self, card: ShareCard, index: int) -> None:
        share_set = card.share_set
        custodian = share_set.custodians[index]
        words = share_set.mnemonics[index].split()
        facts = (
            f"<b>Custodian:</b> {html.escape(shown(custodian))}<br>"
            f"<b>Backup:</b> {card.backup_id} (generation {card.generation})<br>"
            f"<b>Share:</b> {index + 1} of {len(share_set.custodians)} — any "
            f"{share_set.threshold} recover the backup key<br>"
            f"<b>KEK check value:</b> {card.kek_check_value}<br>"
            f"<b>Manifest signed by key:</b> {card.signer_fingerprint}"
        )
        columns = 3
        rows = (len(words) + columns - 1) // columns
        cells = []
        for r in range(rows):
            line = []
            for c in range(columns):
                n = c * rows + r
                if n < len(words):
                    line.append(f"<td style='padding:2px 18px 2px 0'>{n + 1:>2}. {words[n]}</td>")
            cells.append("<tr>" + "".join(line) + "</tr>")
        table = "<table>" + "".join(cells) + "</table>"
        self.facts.setText(facts)
        self.words.setText(table)
        self.card_html = (
            "<h2>Keystead backup share card</h2>"
            f"<p>{facts}</p>{table}"
            "<p>Keep this card sealed. Anyone with enough cards can recover every key in "
            "the backup.</p>"
        )

    def clear(self) -> None:
        self.facts.clear()
        self.words.clear()
        self.card_html = ""


class SharesStep(QWidget):
    """Hand-over (the screen empty of words), then one custodian's card, then cleared."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.handout: ShareHandout | None = None
        self.index = 0
        layout = QVBoxLayout(self)
        self.title = heading("Shares", self)
        layout.addWidget(self.title)
        self.status = hint("", self)
        self.status.setObjectName("shareStatus")
        layout.addWidget(self.status)
        self.card = ShareCardView(self)
        self.card.hide()
        layout.addWidget(self.card, 1)
        self.spacer = QWidget(self)
        layout.addWidget(self.spacer, 1)
        row = QHBoxLayout()
        self.show_button = QPushButton("Show the share", self)
        self.show_button.setObjectName("showShare")
        self.print_button = QPushButton("Print card…", self)
        self.print_button.setObjectName("printShare")
        self.done_button = QPushButton("Written down — clear the screen", self)
        self.done_button.setObjectName("shareDone")
        for button in (self.show_button, self.print_button, self.done_button):
            row.addWidget(button)
            button.hide()
        row.addStretch(1)
        layout.addLayout(row)
        self.show_button.clicked.connect(self._reveal)
        self.done_button.clicked.connect(self._next)
        self.print_button.clicked.connect(self._print)
        self.finished: Any = None  # called with True when every custodian has their share

    def waiting(self, text: str) -> None:
        self.handout = None
        self.title.setText("Approval and shares")
        self.status.setText(text)
        self.card.clear()
        self.card.hide()
        for button in (self.show_button, self.print_button, self.done_button):
            button.hide()

    def start(self, handout: ShareHandout) -> None:
        self.handout = handout
        self.index = 0
        self._handover()

    def _handover(self) -> None:
        if self.handout is None:
            return
        total = len(self.handout.card.share_set.custodians)
        name = shown(self.handout.card.share_set.custodians[self.index])
        self.card.clear()
        self.card.hide()
        self.spacer.show()
        self.title.setText(f"Share {self.index + 1} of {total}: {name}")
        self.status.setText(
            f"Only {name} should see the screen now; everyone else please step away. "
            "The share appears when they press the button. Nothing has been written yet: the "
            "backup is written after every custodian has their share."
        )
        self.show_button.setText(f"I am {name}: show my share")
        self.show_button.show()
        self.print_button.hide()
        self.done_button.hide()

    def _reveal(self) -> None:
        if self.handout is None:
            return
        self.card.show_card(self.handout.card, self.index)
        self.spacer.hide()
        self.card.show()
        self.status.setText(
            "Write the words on the card in this order (or print it), then check them word by "
            "word. Keystead never stores this share: this is the only time it is shown."
        )
        self.show_button.hide()
        self.print_button.show()
        self.done_button.show()

    def _next(self) -> None:
        if self.handout is None:
            return
        self.card.clear()
        self.card.hide()
        self.index += 1
        if self.index < len(self.handout.card.share_set.custodians):
            self._handover()
        else:
            handout, self.handout = self.handout, None
            self.waiting("Every custodian has their share. Writing the backup…")
            if self.finished is not None:
                self.finished(handout)

    def _print(self) -> None:
        """The card to a printer; print-to-file is switched off (a share never goes to disk)."""
        from PySide6.QtGui import QTextDocument
        from PySide6.QtPrintSupport import QAbstractPrintDialog, QPrintDialog, QPrinter

        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        printer.setOutputFormat(QPrinter.OutputFormat.NativeFormat)
        dialog = QPrintDialog(printer, self)
        dialog.setOption(QAbstractPrintDialog.PrintDialogOption.PrintToFile, False)
        if dialog.exec() and printer.outputFileName() == "":
            document = QTextDocument()
            document.setHtml(self.card.card_html)
            document.print_(printer)


class WritingStep(QWidget):
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Writing the backup", self))
        self.stage = QLabel("Starting…", self)
        self.stage.setObjectName("writingStage")
        self.bar = QProgressBar(self)
        self.bar.setObjectName("backupProgress")
        layout.addWidget(self.stage)
        layout.addWidget(self.bar)
        layout.addWidget(
            hint(
                "Cancel stops after the current key or file; the new backup directory is then "
                "removed, earlier backups are untouched and nothing is marked backed up. Do not "
                "remove the medium while this runs.",
                self,
            )
        )
        self.cancel_button = QPushButton("Cancel the backup", self)
        self.cancel_button.setObjectName("cancelBackup")
        self.cancel_button.clicked.connect(self.cancel_requested.emit)
        row = QHBoxLayout()
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(1)

    def show_progress(self, stage: str, done: int, total: int) -> None:
        self.stage.setText(f"{_STAGES.get(stage, stage)}: {done} of {total}")
        self.bar.setMaximum(max(total, 1))
        self.bar.setValue(done)


class DoneStep(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.title = heading("Safe to remove", self)
        layout.addWidget(self.title)
        self.summary = QLabel(self)
        self.summary.setObjectName("doneSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.summary)
        self.safe = QLabel(self)
        self.safe.setObjectName("safeToRemove")
        self.safe.setWordWrap(True)
        layout.addWidget(self.safe)
        layout.addStretch(1)

    def show_result(self, created: CreatedBackup, volume: Volume | None) -> None:
        manifest = created.manifest
        refused = "".join(
            f"<li>{html.escape(shown(r.name))}: {html.escape(r.reason)}</li>"
            for r in created.refused
        )
        self.summary.setText(
            f"<p>Backup generation <b>{manifest.generation}</b> written, read back from the "
            f"medium and verified: <b>{len(manifest.keys)}</b> key(s) in "
            f"<code>{html.escape(str(created.directory))}</code>.</p>"
            f"<p>Backup id {manifest.backup_id}<br>KEK check value {manifest.kek_check_value}"
            f"<br>Manifest signed by key {manifest.signer_fingerprint}</p>"
            + (f"<p>Not in this backup:</p><ul>{refused}</ul>" if refused else "")
        )
        self.safe.setText("Syncing the medium…")
        self.volume = volume

    def settled(self) -> None:
        volume = getattr(self, "volume", None)
        if volume is not None:
            where = f"'{shown(volume.label) or '(no label)'}' ({volume.device})"
            self.safe.setText(
                f"Safe to remove: every file is synced and was read back. Unmount {where} "
                "and pull it out, then store it as your site's backup procedure says."
            )
        else:
            self.safe.setText(
                "Safe: every file is synced and was read back. The directory is not on a "
                "removable volume; copy it to offline media as your procedure says."
            )


class BackupWizard(QDialog):
    """The backup ceremony, step by step. ``created`` holds the result once it is written."""

    backed_up = Signal(object)  # CreatedBackup

    def __init__(self, session: GuiSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Back up keys")
        self.setObjectName("backupWizard")
        self.setMinimumSize(760, 560)
        self.created: CreatedBackup | None = None
        self.ceremony: BackupCeremony | None = None
        self._running = False
        layout = QVBoxLayout(self)
        self.steps = QLabel(self)
        self.steps.setObjectName("wizardSteps")
        self.steps.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.steps)
        line = QFrame(self)
        line.setFrameShape(QFrame.Shape.HLine)
        layout.addWidget(line)
        self.stack = QStackedWidget(self)
        self.target = TargetStep(self)
        self.keys = KeysStep(self)
        self.protection = ProtectionStep(self)
        self.approval = QWidget(self)
        alayout = QVBoxLayout(self.approval)
        alayout.addWidget(heading("Check, then create the backup", self.approval))
        self.review = QLabel(self.approval)
        self.review.setObjectName("backupReview")
        self.review.setWordWrap(True)
        self.review.setTextFormat(Qt.TextFormat.RichText)
        alayout.addWidget(self.review)
        alayout.addWidget(
            hint(
                "Create backup asks for the approvals your policy requires (the approval "
                "dialog, one name and passphrase per approver). Then each custodian receives "
                "their share, one at a time, before anything is written.",
                self.approval,
            )
        )
        alayout.addStretch(1)
        self.shares = SharesStep(self)
        self.shares.finished = self._shares_delivered
        self.writing = WritingStep(self)
        self.writing.cancel_requested.connect(self._cancel_writing)
        self.done_step = DoneStep(self)
        for page in (
            self.target,
            self.keys,
            self.protection,
            self.approval,
            self.shares,
            self.writing,
            self.done_step,
        ):
            self.stack.addWidget(page)
        layout.addWidget(self.stack, 1)
        self.error = ErrorLine(self)
        self.error.setObjectName("wizardError")
        layout.addWidget(self.error)
        buttons = QHBoxLayout()
        self.back_button = QPushButton("Back", self)
        self.next_button = QPushButton("Next", self)
        self.next_button.setObjectName("wizardNext")
        self.next_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("wizardCancel")
        buttons.addStretch(1)
        for button in (self.back_button, self.next_button, self.cancel_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.back_button.clicked.connect(self._back)
        self.next_button.clicked.connect(self._next)
        self.cancel_button.clicked.connect(self.reject)
        self.target.refresh_button.clicked.connect(self.load_volumes)
        self.keys.token_changed.connect(self._load_plan)
        self.keys.token_changed.connect(
            lambda _serial: self.protection.for_token(self.keys.token.currentText())
        )
        self._go(TARGET)
        self.load_volumes()
        self.keys.show_tokens(
            [
                (s.info.serial, f"{s.info.label} (serial {s.info.serial})")
                for s in session.tokens
                if s.logged_in
            ]
        )

    # --- data from the core -----------------------------------------------------------------

    def load_volumes(self) -> None:
        from app.backup.media import removable_volumes

        self.session.run(lambda _ws: removable_volumes(), self.target.show_volumes, self._failed)

    def _load_plan(self, serial: str) -> None:
        if serial:
            self.session.run(lambda ws: ws.backup.plan(serial), self.keys.show_plan, self._failed)

    # --- navigation -------------------------------------------------------------------------

    def step(self) -> int:
        return self.stack.currentIndex()

    def _go(self, index: int) -> None:
        self.error.clear_error()
        self.stack.setCurrentIndex(index)
        marks = []
        for n, name in enumerate(STEPS):
            text = f"{n + 1}. {name}"
            marks.append(f"<b><u>{text}</u></b>" if n == index else text)
        self.steps.setText(" &nbsp;›&nbsp; ".join(marks))
        running = index in (SHARES, WRITING)
        self.back_button.setVisible(index in (KEYS, PROTECTION, APPROVAL))
        self.next_button.setVisible(index in (TARGET, KEYS, PROTECTION, APPROVAL, DONE))
        self.next_button.setText({APPROVAL: "Create backup", DONE: "Finish"}.get(index, "Next"))
        self.cancel_button.setVisible(not running and index != DONE)
        if index == APPROVAL:
            self._review()

    def _back(self) -> None:
        self._go(max(TARGET, self.step() - 1))

    def _next(self) -> None:
        try:
            index = self.step()
            if index == TARGET:
                self.target.target()
            elif index == KEYS:
                if not self.keys.serial():
                    raise ValidationError("Log in to a token that holds keys first.")
                self.keys.chosen()
            elif index == PROTECTION:
                self.protection.check()
            elif index == APPROVAL:
                self.protection.check()  # the PINs are taken by each attempt
                self._start()
                return
            elif index == DONE:
                self.accept()
                return
        except ValidationError as exc:
            self.error.show_error(exc.message)
            return
        self._go(self.step() + 1)

    def _review(self) -> None:
        keys = self.keys.chosen() if self.keys.keys else []
        protection = self.protection
        parts = []
        if protection.use_shares.isChecked():
            names = ", ".join(html.escape(shown(n)) for n in protection.names())
            parts.append(
                f"{protection.threshold.value()} of {len(protection.names())} custodians: {names}"
            )
        if protection.use_passphrase.isChecked():
            parts.append("a recovery passphrase (Argon2id)")
        listed = ", ".join(html.escape(shown(k.name)) for k in keys[:12])
        more = f" and {len(keys) - 12} more" if len(keys) > 12 else ""
        self.review.setText(
            "<table cellspacing='6'>"
            f"<tr><td><b>Write into</b></td><td>{html.escape(self.target.path.text())}</td></tr>"
            f"<tr><td><b>Token</b></td><td>{html.escape(self.keys.token.currentText())}</td></tr>"
            f"<tr><td><b>Keys</b></td><td>{len(keys)}: {listed}{more}</td></tr>"
            f"<tr><td><b>Not backed up</b></td><td>{self.keys.refused.rowCount()} key(s), "
            "listed on the Keys step</td></tr>"
            f"<tr><td><b>Protection</b></td><td>{' and '.join(parts)}</td></tr>"
            "</table>"
        )

    # --- the ceremony -----------------------------------------------------------------------

    def _start(self) -> None:
        target = self.target.target()
        volume = self.target.volume()
        serial = self.keys.serial()
        chosen = None if self.keys.all_chosen() else {k.id for k in self.keys.chosen()}
        protection = self.protection
        custodians = protection.names() if protection.use_shares.isChecked() else []
        threshold = protection.threshold.value() if custodians else 0
        passphrase = protection.passphrase.text() if protection.use_passphrase.isChecked() else None
        so_pin = protection.so_pin.take()
        user_pin = protection.user_pin.take()
        ceremony = BackupCeremony(self)
        ceremony.shares_ready.connect(self._shares_ready)
        ceremony.progressed.connect(self._progressed)
        self.ceremony = ceremony
        self._running = True
        self.shares.waiting("Waiting for the approvals the policy requires (the approval dialog)…")
        self._go(SHARES)

        def job(ws: Any) -> CreatedBackup:
            from app.backup.media import removable_volumes, volume_of

            medium = volume or volume_of(target, removable_volumes())
            return ws.backup.create(  # type: ignore[no-any-return]
                target,
                serial,
                so_pin,
                user_pin,
                threshold=threshold,
                custodians=custodians,
                recovery_passphrase=passphrase,
                chosen=chosen,
                volume=medium,
                deliver=ceremony.deliver,
                progress=ceremony.progress,
            )

        self.session.run(job, lambda created: self._created(created, volume), self._create_failed)

    def _shares_ready(self, handout: ShareHandout) -> None:
        self._go(SHARES)
        self.shares.start(handout)

    def _shares_delivered(self, handout: ShareHandout) -> None:
        handout.delivered = True
        handout.done.set()
        self._go(WRITING)

    def _progressed(self, stage: str, done: int, total: int) -> None:
        if self.step() != WRITING:
            self._go(WRITING)
        self.writing.show_progress(stage, done, total)

    def _cancel_writing(self) -> None:
        if self.ceremony is not None:
            self.ceremony.cancel()
            self.writing.stage.setText("Cancelling after the current key or file…")
            self.writing.cancel_button.setEnabled(False)

    def _created(self, created: CreatedBackup, volume: Volume | None) -> None:
        self._running = False
        self.created = created
        self.done_step.show_result(created, volume or self._volume_for(created.directory))
        self._go(DONE)
        self.next_button.setEnabled(False)
        from app.backup.media import settle

        def settled(_: object) -> None:
            self.done_step.settled()
            self.next_button.setEnabled(True)

        self.session.run(lambda _ws: settle(), settled, self._failed)
        self.backed_up.emit(created)

    def _volume_for(self, directory: Path) -> Volume | None:
        return next(
            (v for v in self.target.volumes if directory.is_relative_to(v.mountpoint)), None
        )

    def _create_failed(self, error: BaseException) -> None:
        self._running = False
        self.ceremony = None
        self.writing.cancel_button.setEnabled(True)
        self._go(APPROVAL)
        self.shares.waiting("")
        again = " To try again, enter the PINs on the Protection step."
        if isinstance(error, OperationCancelled):
            self.error.show_error(message(error) + again)
        else:
            self.error.show_error(f"The backup was not made: {message(error)}{again}")

    def _failed(self, error: BaseException) -> None:
        self.error.show_error(message(error))

    # --- leaving ----------------------------------------------------------------------------

    def reject(self) -> None:
        """While the core runs the ceremony the dialog stays: Cancel answers the share
        hand-out 'stopped' or stops the writing, and the core's answer closes nothing."""
        if self._running:
            if self.ceremony is not None:
                self.ceremony.cancel()
            self.shares.waiting("Stopping: nothing will be written…")  # no word stays up
            return
        super().reject()
