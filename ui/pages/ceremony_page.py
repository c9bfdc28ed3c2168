"""Ceremony page: renders the core's ceremony state machine (``app.ceremony.runner``).

The page never decides anything: each button sends one job to the core thread (begin,
register, start, done, sign off, pause, resume, abandon) and redraws from the snapshot the job
returns (``app.ceremony.view``). The script's SHA-256 and every step's outputs are shown in
large type with their PGP words, for the room to read aloud and compare with paper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.ceremony.runner import Phase, State
from app.ceremony.view import CeremonySummary, CeremonyView
from app.ceremony.words import grouped, spoken
from app.services.prompter import SecretKind
from ui.errors import message
from ui.session import GuiSession
from ui.widgets.form import ErrorLine, hint
from ui.widgets.secret_field import SecretField


class GuiDesk:
    """The ceremony desk of the GUI: PINs through the Qt prompter's dialog, share cards one
    custodian at a time and shares typed back through ``ui/dialogs/share_cards.py`` (all asked
    from the core thread, answered on the GUI thread)."""

    def __init__(self, prompter: Any, shares: Any) -> None:
        self.prompter = prompter
        self.shares = shares

    def secret(self, kind: SecretKind, prompt: str) -> str | None:
        answer: str | None = self.prompter.secret(kind, prompt)
        return answer

    def deliver_shares(self, card: Any) -> None:
        self.shares.deliver_shares(card)

    def collect_shares(self, needed: int | None) -> tuple[str, ...]:
        collected: tuple[str, ...] = self.shares.collect_shares(needed)
        return collected


def _big(size: int, mono: bool = False, bold: bool = False) -> QFont:
    font = QFont("DejaVu Sans Mono" if mono else "")
    if mono:
        font.setStyleHint(QFont.StyleHint.Monospace)
    font.setPointSize(size)
    font.setBold(bold)
    return font


def _label(parent: QWidget, font: QFont | None = None, name: str = "") -> QLabel:
    label = QLabel(parent)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if font is not None:
        label.setFont(font)
    if name:
        label.setObjectName(name)
    return label


class CeremonyPage(QWidget):
    done = Signal(str)

    def __init__(self, session: GuiSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.view: CeremonyView | None = None
        self.script_path: Path | None = None
        from ui.dialogs.share_cards import QtShareDesk
        from ui.qt_prompter import QtPrompter

        self.desk: Any = GuiDesk(QtPrompter(self), QtShareDesk(self))
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        outer.addWidget(scroll)
        body = QWidget(scroll)
        scroll.setWidget(body)
        layout = QVBoxLayout(body)

        # --- the script -------------------------------------------------------------------
        script_box = QGroupBox("Script", body)
        script_layout = QVBoxLayout(script_box)
        self.selector = QWidget(script_box)
        selector_layout = QVBoxLayout(self.selector)
        selector_layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.template_box = QComboBox(script_box)
        self.template_box.setObjectName("templateBox")
        self.open_button = QPushButton("Open script…", script_box)
        self.profile_box = QComboBox(script_box)
        self.profile_box.setObjectName("profileBox")
        self.profile_box.addItems(["rehearsal", "production"])
        self.workdir_edit = QLineEdit(str(Path.home()), script_box)
        self.workdir_edit.setObjectName("workdirEdit")
        self.workdir_edit.setToolTip("Where the ceremony reads inputs (a CSR) and writes outputs")
        self.begin_button = QPushButton("Begin ceremony", script_box)
        self.begin_button.setObjectName("beginButton")
        row.addWidget(QLabel("Template:", script_box))
        row.addWidget(self.template_box, 1)
        row.addWidget(self.open_button)
        row.addWidget(QLabel("Profile:", script_box))
        row.addWidget(self.profile_box)
        selector_layout.addLayout(row)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Working directory:", script_box))
        row2.addWidget(self.workdir_edit, 1)
        row2.addWidget(self.begin_button)
        selector_layout.addLayout(row2)
        script_layout.addWidget(self.selector)
        self.title_label = _label(script_box, _big(15, bold=True), "ceremonyTitle")
        self.hash_label = _label(script_box, _big(17, mono=True, bold=True), "scriptHash")
        self.words_label = _label(script_box, _big(13), "scriptWords")
        self.state_label = _label(script_box, _big(11), "ceremonyState")
        for label in (self.title_label, self.hash_label, self.words_label, self.state_label):
            script_layout.addWidget(label)
        self.compare_hint = hint(
            "Witnesses compare the SHA-256 and its words with the reviewed paper copy "
            "before the ceremony begins.",
            script_box,
        )
        script_layout.addWidget(self.compare_hint)
        layout.addWidget(script_box)

        # --- participants -------------------------------------------------------------------
        people_box = QGroupBox("Participants", body)
        people_layout = QVBoxLayout(people_box)
        self.people_list = QListWidget(people_box)
        self.people_list.setObjectName("participants")
        self.people_list.setMaximumHeight(72)
        people_layout.addWidget(self.people_list)
        self.needs_label = _label(people_box, None, "participantsNeeded")
        people_layout.addWidget(self.needs_label)
        self.people_form = QWidget(people_box)
        form = QHBoxLayout(self.people_form)
        form.setContentsMargins(0, 0, 0, 0)
        self.role_box = QComboBox(people_box)
        self.role_box.setObjectName("roleBox")
        self.role_box.addItems(["witness", "custodian", "auditor"])
        self.kind_box = QComboBox(people_box)
        self.kind_box.setObjectName("kindBox")
        self.kind_box.addItems(["operator", "external"])
        self.name_edit = QLineEdit(people_box)
        self.name_edit.setObjectName("participantName")
        self.name_edit.setPlaceholderText("Name")
        self.org_edit = QLineEdit(people_box)
        self.org_edit.setObjectName("participantOrg")
        self.org_edit.setPlaceholderText("Organisation (external)")
        self.person_pass = SecretField("Their passphrase (operator)", people_box)
        self.person_pass.setObjectName("participantPass")
        self.register_button = QPushButton("Register", people_box)
        self.register_button.setObjectName("registerButton")
        self.start_button = QPushButton("Start ceremony", people_box)
        self.start_button.setObjectName("startButton")
        for widget in (
            self.role_box,
            self.kind_box,
            self.name_edit,
            self.org_edit,
            self.person_pass,
            self.register_button,
        ):
            form.addWidget(widget)
        people_layout.addWidget(self.people_form)
        people_layout.addWidget(self.start_button, 0, Qt.AlignmentFlag.AlignRight)
        self.people_box = people_box

        # --- the current step -----------------------------------------------------------
        step_box = QGroupBox("Current step", body)
        step_layout = QVBoxLayout(step_box)
        self.step_heading = _label(step_box, _big(16, bold=True), "stepHeading")
        self.instruction = _label(step_box, _big(14), "stepInstruction")
        self.details = _label(step_box, None, "stepDetails")
        self.perform_button = QPushButton("Done — carry out this step", step_box)
        self.perform_button.setObjectName("performButton")
        self.outputs_label = _label(step_box, _big(14, mono=True), "stepOutputs")
        self.outputs_label.setTextFormat(Qt.TextFormat.RichText)
        for label in (self.step_heading, self.instruction, self.details):
            step_layout.addWidget(label)
        step_layout.addWidget(self.perform_button, 0, Qt.AlignmentFlag.AlignLeft)
        step_layout.addWidget(self.outputs_label)
        self.sign_area = QWidget(step_box)
        sign = QFormLayout(self.sign_area)
        sign.setContentsMargins(0, 0, 0, 0)
        self.signer_box = QComboBox(step_box)
        self.signer_box.setObjectName("signerBox")
        self.initials_edit = QLineEdit(step_box)
        self.initials_edit.setObjectName("initials")
        self.initials_edit.setPlaceholderText("Initials (external: full name)")
        self.signer_pass = SecretField("Passphrase (operators)", step_box)
        self.signer_pass.setObjectName("signerPass")
        self.sign_button = QPushButton("Sign off this step", step_box)
        self.sign_button.setObjectName("signButton")
        sign.addRow("Witness", self.signer_box)
        sign.addRow("Initials", self.initials_edit)
        sign.addRow("Passphrase", self.signer_pass)
        sign.addRow("", self.sign_button)
        step_layout.addWidget(self.sign_area)
        self.step_box = step_box
        layout.addWidget(step_box)  # the step first: it is what the room reads
        layout.addWidget(people_box)

        controls = QHBoxLayout()
        self.pause_button = QPushButton("Pause", body)
        self.resume_button = QPushButton("Resume", body)
        self.abandon_button = QPushButton("Abandon…", body)
        self.pdf_button = QPushButton("Save transcript PDF…", body)
        self.pdf_button.setObjectName("pdfButton")
        for widget in (self.pause_button, self.resume_button, self.abandon_button, self.pdf_button):
            controls.addWidget(widget)
        controls.addStretch(1)
        layout.addLayout(controls)
        self.error_line = ErrorLine(body)
        layout.addWidget(self.error_line)

        # --- earlier ceremonies (the CLI's ceremony list / resume / abandon) ----------------
        history_box = QGroupBox("Ceremonies of this workstation", body)
        history_layout = QVBoxLayout(history_box)
        self.history = QTableWidget(0, len(HISTORY_COLUMNS), history_box)
        self.history.setObjectName("ceremonyHistory")
        self.history.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.history.verticalHeader().setVisible(False)
        self.history.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.history.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.history.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.history.setMinimumHeight(150)
        history_layout.addWidget(self.history)
        history_buttons = QHBoxLayout()
        self.open_history_button = QPushButton("Open", history_box)
        self.open_history_button.setObjectName("openCeremony")
        self.open_history_button.setToolTip("Show this ceremony: its steps, outputs, sign-offs")
        self.resume_history_button = QPushButton("Resume", history_box)
        self.resume_history_button.setObjectName("resumeCeremony")
        self.resume_history_button.setToolTip(
            "Continue a paused ceremony, or one a closed window left running (its "
            "administrator, with its token logged in)"
        )
        self.abandon_history_button = QPushButton("Abandon…", history_box)
        self.abandon_history_button.setObjectName("abandonCeremony")
        for widget in (
            self.open_history_button,
            self.resume_history_button,
            self.abandon_history_button,
        ):
            history_buttons.addWidget(widget)
        history_buttons.addStretch(1)
        history_layout.addLayout(history_buttons)
        layout.addWidget(history_box)
        self.summaries: list[CeremonySummary] = []
        layout.addStretch(1)
        gate = session.gate
        for button in (
            self.resume_history_button,
            self.abandon_history_button,
            self.resume_button,
            self.abandon_button,
            self.begin_button,
        ):
            gate.guard(button, "ceremony.run")

        self.kind_box.currentTextChanged.connect(self._kind_changed)
        self.open_button.clicked.connect(self._open)
        self.begin_button.clicked.connect(self._begin)
        self.register_button.clicked.connect(self._register)
        self.start_button.clicked.connect(lambda: self._act(lambda run: run.start()))
        self.perform_button.clicked.connect(self._perform)
        self.sign_button.clicked.connect(self._sign)
        self.pause_button.clicked.connect(lambda: self._act(lambda run: run.pause("paused")))
        self.resume_button.clicked.connect(lambda: self._act(lambda run: run.resume()))
        self.abandon_button.clicked.connect(self._abandon)
        self.pdf_button.clicked.connect(self._save_pdf)
        self.history.itemSelectionChanged.connect(self._history_selection)
        self.history.itemDoubleClicked.connect(lambda _item: self._open_selected())
        self.open_history_button.clicked.connect(self._open_selected)
        self.resume_history_button.clicked.connect(self._resume_selected)
        self.abandon_history_button.clicked.connect(self._abandon_selected)
        self._load_templates()
        self._render()
        self.reload_history()

    # --- earlier ceremonies ----------------------------------------------------------------

    def reload_history(self) -> None:
        """Read the workstation's ceremonies (a core job) into the table."""

        def job(ws: Any) -> list[CeremonySummary]:
            from app.ceremony.runner import Ceremonies
            from app.ceremony.view import summaries

            return summaries(Ceremonies(ws))

        self.session.run(job, self._show_history, self._failed_quietly)

    def _show_history(self, rows: list[CeremonySummary]) -> None:
        chosen = self.selected_summary()
        self.summaries = rows
        self.history.setRowCount(len(rows))
        for index, row in enumerate(rows):
            at = f", step {row.step + 1} of {row.steps}" if row.resumable else ""
            cells = (
                _when(row.started_at or row.created_at),
                f"{row.title} ({row.name}, {row.profile})",
                row.state.value + at,
                _when(row.ended_at) if row.ended_at else "—",
                row.administrator,
                row.id[:8],
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, row.id)
                if column == len(cells) - 1:
                    item.setToolTip(row.id)
                elif column == 1:
                    item.setToolTip(
                        f"{row.title} — {row.name}, {row.profile}, token {row.token_label}"
                    )
                self.history.setItem(index, column, item)
            if chosen is not None and chosen.id == row.id:
                self.history.selectRow(index)
        self._history_selection()

    def selected_summary(self) -> CeremonySummary | None:
        rows = self.history.selectionModel().selectedRows() if self.history.model() else []
        if not rows or not 0 <= rows[0].row() < len(self.summaries):
            return None
        return self.summaries[rows[0].row()]

    def _history_selection(self) -> None:
        chosen = self.selected_summary()
        self.open_history_button.setEnabled(chosen is not None)
        self.resume_history_button.setEnabled(chosen is not None and chosen.resumable)
        self.abandon_history_button.setEnabled(chosen is not None and not chosen.state.ended)

    def _open_selected(self) -> None:
        chosen = self.selected_summary()
        if chosen is None:
            return
        self.error_line.clear_error()
        ident = chosen.id
        self.session.run(lambda ws: _snapshot(ws, ident), self._shown, self._failed_quietly)

    def _on_selected(self, action: Any) -> None:
        chosen = self.selected_summary()
        if chosen is None:
            return
        ident = chosen.id
        self.error_line.clear_error()

        def job(ws: Any) -> CeremonyView:
            from app.ceremony.runner import Ceremonies
            from app.ceremony.view import snapshot

            run = Ceremonies(ws).get(ident)
            action(run)
            return snapshot(run)

        self.session.run(job, self._shown, self._failed)

    def _resume_selected(self) -> None:
        self._on_selected(lambda run: run.resume())

    def _abandon_selected(self) -> None:
        chosen = self.selected_summary()
        if chosen is None:
            return
        reason, ok = QInputDialog.getText(
            self, "Abandon the ceremony", f"Why is '{chosen.title}' abandoned?"
        )
        if ok and reason.strip():
            self._on_selected(lambda run: run.abandon(reason.strip()))

    # --- jobs ------------------------------------------------------------------------------

    def _load_templates(self) -> None:
        from app.ceremony.templates import template_dir

        self.template_box.clear()
        for path in sorted(template_dir().glob("*.toml")):
            self.template_box.addItem(path.stem, str(path))

    def _open(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "Ceremony script", "", "TOML (*.toml)")
        if chosen:
            self.template_box.addItem(Path(chosen).name, chosen)
            self.template_box.setCurrentIndex(self.template_box.count() - 1)

    def _failed(self, error: BaseException) -> None:
        self.error_line.show_error(message(error))
        self.refresh()

    def _shown(self, view: CeremonyView) -> None:
        self.view = view
        self._render()
        self.reload_history()  # its state in the list follows

    def refresh(self) -> None:
        if self.view is None:
            self._render()
            return
        ident = self.view.id
        self.session.run(lambda ws: _snapshot(ws, ident), self._shown, self._failed_quietly)

    def _failed_quietly(self, error: BaseException) -> None:
        self.error_line.show_error(message(error))

    def _begin(self) -> None:
        path = Path(str(self.template_box.currentData()))
        profile = self.profile_box.currentText()
        workdir = Path(self.workdir_edit.text().strip() or ".")
        self.error_line.clear_error()

        def job(ws: Any) -> CeremonyView:
            from app.ceremony import script as scripts
            from app.ceremony.runner import Ceremonies
            from app.ceremony.view import snapshot

            return snapshot(Ceremonies(ws).begin(scripts.load(path), profile, workdir))

        self.session.run(job, self._shown, self._failed_quietly)

    def _act(self, action: Any, after: Any = None) -> None:
        if self.view is None:
            return
        ident = self.view.id
        self.error_line.clear_error()

        def job(ws: Any) -> CeremonyView:
            from app.ceremony.runner import Ceremonies
            from app.ceremony.view import snapshot

            run = Ceremonies(ws).get(ident)
            action(run)
            return snapshot(run)

        def shown(view: CeremonyView) -> None:
            self._shown(view)
            if after is not None:
                after()

        self.session.run(job, shown, self._failed)

    def _register(self) -> None:
        role = self.role_box.currentText()
        name = self.name_edit.text().strip()
        if self.kind_box.currentText() == "external":
            organisation = self.org_edit.text().strip()
            self._act(
                lambda run: run.register_external(name, organisation, role), self._clear_person
            )
        else:
            passphrase = self.person_pass.take()
            self._act(lambda run: run.register_operator(name, role, passphrase), self._clear_person)

    def _kind_changed(self, kind: str) -> None:
        """An external participant has an organisation and no passphrase; an operator the
        reverse."""
        self.org_edit.setEnabled(kind == "external")
        self.person_pass.setEnabled(kind != "external")
        if kind == "external":
            self.person_pass.clear()
        else:
            self.org_edit.clear()

    def _clear_person(self) -> None:
        self.name_edit.clear()
        self.org_edit.clear()

    def _perform(self) -> None:
        desk = self.desk
        self._act(lambda run: run.perform(desk))

    def _sign(self) -> None:
        name = self.signer_box.currentText()
        initials = self.initials_edit.text()
        passphrase = self.signer_pass.take() or None
        self._act(lambda run: run.sign_off(name, initials, passphrase), self.initials_edit.clear)

    def _abandon(self) -> None:
        reason, ok = QInputDialog.getText(self, "Abandon the ceremony", "Why is it abandoned?")
        if ok and reason.strip():
            self._act(lambda run: run.abandon(reason.strip()))

    def _save_pdf(self) -> None:
        if self.view is None:
            return
        target, _ = QFileDialog.getSaveFileName(
            self, "Transcript PDF", f"ceremony-{self.view.id[:8]}.pdf", "PDF (*.pdf)"
        )
        if target:
            self.save_pdf(Path(target))

    def save_pdf(self, target: Path) -> None:
        """Render the transcript (read on the core thread) to ``target`` on the GUI thread."""
        if self.view is None:
            return
        ident = self.view.id

        def job(ws: Any) -> tuple[dict[str, Any], str, bool]:
            from app.ceremony import transcript
            from app.ceremony.runner import Ceremonies

            run = Ceremonies(ws).get(ident)
            data = run.transcript_bytes()
            return (
                run.transcript_document(),
                transcript.sha256(data),
                bool(run.row.transcript_sha256),
            )

        def write(result: tuple[dict[str, Any], str, bool]) -> None:
            from ui.transcript_pdf import render_pdf

            try:
                render_pdf(result[0], result[1], result[2], target)
            except OSError as exc:
                self.error_line.show_error(f"The PDF could not be written: {exc}")
                return
            self.done.emit(f"Transcript written to {target}.")

        self.session.run(job, write, self._failed_quietly)

    # --- rendering -------------------------------------------------------------------------

    def _render(self) -> None:
        view = self.view
        begun = view is not None
        self.begin_button.setEnabled(not begun or (view is not None and view.state.ended))
        for widget in (self.template_box, self.open_button, self.profile_box, self.workdir_edit):
            widget.setEnabled(self.begin_button.isEnabled())
        if view is None:
            self.title_label.setText("No ceremony yet: choose a script and a profile, then begin.")
            self.hash_label.clear()
            self.words_label.clear()
            self.state_label.clear()
            self._render_step(None)
            self._enable(registering=False, running=False, paused=False)
            return
        self.title_label.setText(f"{view.title}  ({view.script_name}, {view.profile})")
        groups = grouped(view.script_sha256).split(":")
        self.hash_label.setText(
            "SHA-256  " + ":".join(groups[:8]) + "\n         " + ":".join(groups[8:])
        )
        words = view.script_words
        self.words_label.setText("\n".join(" ".join(words[i : i + 8]) for i in range(0, 32, 8)))
        state = view.state.value.upper()
        extra = f" — {view.reason}" if view.reason else ""
        if view.transcript_sha256:
            extra += f"\nTranscript SHA-256 {view.transcript_sha256} (in the audit chain)"
        self.state_label.setText(
            f"Ceremony {view.id}: {state}{extra}\nToken {view.token}; administrator "
            f"{view.administrator}"
        )
        needs = [f"at least {view.witnesses_needed} witness(es)"]
        if view.custodians_needed:
            needs.append(
                f"{view.custodians_needed} custodian(s) (operators holding the key-custodian role)"
            )
        if view.auditor_needed:
            needs.append("an auditor")
        self.needs_label.setText(
            "The script needs " + ", ".join(needs) + ". Operators prove who they are with their "
            "passphrase; external witnesses are recorded by name and organisation."
        )
        self.people_list.clear()
        for p in view.participants:
            org = f", {p.organisation}" if p.organisation else ""
            self.people_list.addItem(f"{p.role}: {p.name} ({p.kind}{org})")
        self.signer_box.clear()
        self.signer_box.addItems(list(view.eligible))
        self._render_step(view)
        self._enable(
            registering=view.state is State.REGISTERING,
            running=view.state is State.RUNNING,
            paused=view.state is State.PAUSED,
        )

    def _render_step(self, view: CeremonyView | None) -> None:
        step = view.current if view is not None else None
        if view is None or step is None:
            self.step_heading.setText(
                ""
                if view is None
                else (
                    "Ceremony " + view.state.value + "."
                    if view.state.ended
                    else "Register the participants, then start."
                )
            )
            self.instruction.clear()
            self.details.clear()
            self.outputs_label.clear()
            if view is not None and view.state.ended:
                # The record of every step, as the transcript will say it.
                self.details.setText(
                    "\n".join(
                        f"{s.position + 1}. {s.title} [{s.id}]: "
                        + (f"signed by {', '.join(s.signed_by)}" if s.signed_by else s.state)
                        + (f" — {s.reason}" if s.reason else "")
                        for s in view.steps
                    )
                )
            return
        self.step_heading.setText(
            f"Step {step.position + 1} of {len(view.steps)}: {step.title}  [{step.id}]"
        )
        self.instruction.setText(step.instruction)
        lines = [f"{k}: {v}" for k, v in step.params]
        lines += [f"expected {k}: {v}" for k, v in step.expect]
        lines.append(
            f"Signed off by {step.quorum} of: {', '.join(step.signers)}"
            + (f" — signed by {', '.join(step.signed_by)}" if step.signed_by else "")
        )
        self.details.setText("\n".join(lines))
        if step.outputs:
            rows = []
            for name, value in step.outputs:
                words = spoken(value)
                said = (
                    f"<br/><span style='font-family: sans-serif; font-size: 12pt'>"
                    f"{_lines(words)}</span>"
                    if words
                    else ""
                )
                rows.append(f"<b>{_esc(name)}</b>: {_esc(grouped(value))}{said}")
            self.outputs_label.setText("<br/>".join(rows))
        else:
            self.outputs_label.setText("")

    def _enable(self, registering: bool, running: bool, paused: bool) -> None:
        view = self.view
        self.selector.setVisible(view is None or view.state.ended)
        self.compare_hint.setVisible(view is None or registering)
        self.people_form.setVisible(registering)
        self.needs_label.setVisible(registering)
        self.start_button.setVisible(registering)
        self.people_box.setVisible(view is not None)
        self.step_box.setVisible(view is not None and not registering)
        phase = view.phase if view is not None else Phase.NONE
        for widget in (
            self.role_box,
            self.kind_box,
            self.name_edit,
            self.org_edit,
            self.person_pass,
            self.register_button,
            self.start_button,
        ):
            widget.setEnabled(registering)
        external = self.kind_box.currentText() == "external"
        self.org_edit.setEnabled(registering and external)
        self.person_pass.setEnabled(registering and not external)
        self.perform_button.setEnabled(running and phase is Phase.PERFORM)
        ended = view is not None and view.state.ended
        self.perform_button.setVisible(not ended)
        self.sign_area.setVisible(not ended)
        signing = running and phase is Phase.SIGN_OFF
        for widget in (self.signer_box, self.initials_edit, self.signer_pass, self.sign_button):
            widget.setEnabled(signing)
        self.pause_button.setEnabled(running)
        self.resume_button.setEnabled(paused)
        self.abandon_button.setEnabled(view is not None and not view.state.ended)
        self.pdf_button.setEnabled(view is not None)
        # The open ceremony's own controls only with one open: the list below has its own.
        for widget in (self.pause_button, self.resume_button, self.abandon_button, self.pdf_button):
            widget.setVisible(view is not None)


HISTORY_COLUMNS = ["Started (UTC)", "Ceremony", "State", "Ended (UTC)", "Administrator", "Id"]


def _when(text: str) -> str:
    """A stored UTC ISO 8601 time as ``YYYY-MM-DD HH:MM``."""
    return text[:16].replace("T", " ")


def _lines(words: list[str]) -> str:
    """PGP words eight to a line, as they are read aloud."""
    return "<br/>".join(" ".join(words[i : i + 8]) for i in range(0, len(words), 8))


def _esc(text: str) -> str:
    import html

    return html.escape(text)


def _snapshot(ws: Any, ident: str) -> CeremonyView:
    from app.ceremony.runner import Ceremonies
    from app.ceremony.view import snapshot

    return snapshot(Ceremonies(ws).get(ident))
