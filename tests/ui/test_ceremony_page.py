"""The Ceremony page renders the core's state machine: the root-CA template run from the GUI
with three participants (administrator, an operator witness, an external witness) produces the
root key, its self-signed certificate and the signed intermediate, and a PDF transcript."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from app.ceremony.runner import Phase, State
from tests.hsm.ceremony_kit import EXTERNAL, write_csr
from tests.support import WITNESS, WITNESS_PASS, enrol_witness
from tests.ui.conftest import PIN, SO_PIN

pytestmark = pytest.mark.hsm


@pytest.fixture
def page(qtbot, gui_session, workstation, bridge, tmp_path: Path):  # type: ignore[no-untyped-def]
    def prepare() -> None:
        enrol_witness(workstation)
        workstation.tokens.create_soft_token("Rehearsal", SO_PIN, PIN)
        workstation.tokens.login("Rehearsal", PIN)

    bridge.executor.call(prepare)
    from ui.pages.ceremony_page import CeremonyPage

    shown = CeremonyPage(gui_session)
    qtbot.addWidget(shown)
    shown.resize(1200, 900)
    shown.show()
    return shown


def _wait(qtbot, page, condition) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: page.view is not None and condition(page.view), timeout=60_000)


def test_root_ca_from_the_gui(qtbot, page, tmp_path: Path, workstation, bridge) -> None:  # type: ignore[no-untyped-def]
    work = tmp_path / "work"
    work.mkdir()
    write_csr(work)
    page.template_box.setCurrentIndex(page.template_box.findText("root-ca"))
    page.profile_box.setCurrentText("rehearsal")
    page.workdir_edit.setText(str(work))
    page.begin_button.click()
    _wait(qtbot, page, lambda v: v.state is State.REGISTERING)
    assert page.hash_label.text().startswith("SHA-256")
    assert len(page.words_label.text().split()) == 32
    assert not page.perform_button.isEnabled()
    # The administrator cannot witness: refused in the page, nothing registered.
    page.role_box.setCurrentText("witness")
    page.kind_box.setCurrentText("operator")
    page.name_edit.setText("officer")
    page.person_pass.setText("whatever")
    page.register_button.click()
    qtbot.waitUntil(lambda: "ADMINISTRATOR" in page.error_line.text(), timeout=60_000)
    page.name_edit.setText(WITNESS)
    page.person_pass.setText(WITNESS_PASS)
    page.register_button.click()
    _wait(qtbot, page, lambda v: len(v.participants) == 2)
    page.kind_box.setCurrentText("external")
    page.name_edit.setText(EXTERNAL[0])
    page.org_edit.setText(EXTERNAL[1])
    page.register_button.click()
    _wait(qtbot, page, lambda v: len(v.participants) == 3)
    assert page.people_list.count() == 3
    page.start_button.click()
    _wait(qtbot, page, lambda v: v.state is State.RUNNING)
    steps = len(page.view.steps)
    for position in range(steps):
        assert page.perform_button.isEnabled()
        assert page.step_heading.text().startswith(f"Step {position + 1} of {steps}")
        page.perform_button.click()
        _wait(qtbot, page, lambda v: v.phase is Phase.SIGN_OFF or v.state is not State.RUNNING)
        assert page.view.state is State.RUNNING, page.error_line.text()
        if page.view.steps[position].outputs:
            assert page.outputs_label.text()
        # Alternate the two witnesses: the operator signs with initials and passphrase, the
        # external witness by typing their name.
        if position % 2 == 0:
            page.signer_box.setCurrentText(WITNESS)
            page.initials_edit.setText("WI")
            page.signer_pass.setText(WITNESS_PASS)
        else:
            page.signer_box.setCurrentText(EXTERNAL[0])
            page.initials_edit.setText(EXTERNAL[0])
        page.sign_button.click()
        _wait(qtbot, page, lambda v, p=position: v.index > p or v.state is State.COMPLETED)
    assert page.view.state is State.COMPLETED
    assert "COMPLETED" in page.state_label.text()
    assert page.view.transcript_sha256
    root = x509.load_pem_x509_certificate((work / "root-ca.pem").read_bytes())
    intermediate = x509.load_pem_x509_certificate((work / "intermediate-ca.pem").read_bytes())
    intermediate.verify_directly_issued_by(root)
    key = bridge.executor.call(workstation.keys.resolve, "root-ca-2026")
    assert key.state.value == "ACTIVE" and key.token_label == "Rehearsal"
    # The PDF transcript, rendered to PNG pages.
    pdf = tmp_path / "transcript.pdf"
    page.save_pdf(pdf)
    qtbot.waitUntil(pdf.exists, timeout=60_000)
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "p")], check=True)
        assert list(tmp_path.glob("p-*.png"))


def test_a_backup_ceremony_hands_out_share_cards_from_the_gui(  # type: ignore[no-untyped-def]
    qtbot, page, tmp_path: Path, workstation, bridge
) -> None:
    """The backup template from the page: PINs from the desk's prompter, each custodian's
    card in turn (Show, written down), the backup written and verified."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.domain.algorithms import Algorithm, Purpose
    from app.services.prompter import ScriptedPrompter, SecretKind
    from ui.dialogs.share_cards import ShareCardDialog

    bridge.executor.call(
        workstation.keys.generate,
        "Rehearsal",
        Algorithm.AES_256,
        "data-kek",
        Purpose.KEY_WRAPPING,
        True,
    )
    page.desk.prompter = ScriptedPrompter({SecretKind.SO_PIN: [SO_PIN], SecretKind.USER_PIN: [PIN]})
    cards: list[str] = []

    def answer_cards() -> None:
        modal = QApplication.activeModalWidget()
        if isinstance(modal, ShareCardDialog):
            cards.append(modal.windowTitle())
            modal.show_button.click()
            modal.done_button.click()

    timer = QTimer()
    timer.timeout.connect(answer_cards)
    timer.start(50)
    work = tmp_path / "work"
    work.mkdir()
    page.template_box.setCurrentIndex(page.template_box.findText("backup"))
    page.workdir_edit.setText(str(work))
    page.begin_button.click()
    _wait(qtbot, page, lambda v: v.state is State.REGISTERING)
    page.role_box.setCurrentText("custodian")
    page.kind_box.setCurrentText("operator")
    page.name_edit.setText(WITNESS)
    page.person_pass.setText(WITNESS_PASS)
    page.register_button.click()
    _wait(qtbot, page, lambda v: len(v.participants) == 2)
    page.role_box.setCurrentText("witness")
    page.kind_box.setCurrentText("external")
    page.name_edit.setText(EXTERNAL[0])
    page.org_edit.setText(EXTERNAL[1])
    page.register_button.click()
    _wait(qtbot, page, lambda v: len(v.participants) == 3)
    page.start_button.click()
    _wait(qtbot, page, lambda v: v.state is State.RUNNING)
    for position in range(len(page.view.steps)):
        page.perform_button.click()
        _wait(qtbot, page, lambda v: v.phase is Phase.SIGN_OFF or v.state is not State.RUNNING)
        assert page.view.state is State.RUNNING, page.error_line.text()
        for name in page.view.eligible[: page.view.current.quorum]:
            page.signer_box.setCurrentText(name)
            page.initials_edit.setText(name if name == EXTERNAL[0] else "WI")
            if name == WITNESS:
                page.signer_pass.setText(WITNESS_PASS)
            before = len(page.view.steps[position].signed_by)
            page.sign_button.click()
            _wait(
                qtbot,
                page,
                lambda v, p=position, b=before: len(v.steps[p].signed_by) > b,
            )
    timer.stop()
    assert page.view.state is State.COMPLETED
    assert cards == [f"Share {i} of 3: Custodian {c}" for i, c in ((1, "A"), (2, "B"), (3, "C"))]
    outputs = dict(page.view.steps[1].outputs)
    assert outputs["keys"] == "data-kek" and outputs["kek_check_value"]
    assert (work / "backup" / outputs["directory"] / "manifest.json").is_file()


def _history(page) -> list[tuple[str, ...]]:  # type: ignore[no-untyped-def]
    table = page.history
    return [
        tuple(table.item(r, c).text() for c in range(table.columnCount()))
        for r in range(table.rowCount())
    ]


def test_earlier_ceremonies_are_listed_and_resumed_or_abandoned(  # type: ignore[no-untyped-def]
    qtbot, page, tmp_path: Path, gui_session, monkeypatch
) -> None:
    """Outside testers: the page did not list earlier ceremonies, so a paused one could only be
    resumed from the CLI. The list shows each (started, name, state, ended, administrator, id);
    Resume and Abandon act on the chosen one as the CLI does, gated by role."""
    from PySide6.QtWidgets import QInputDialog

    from app.domain.roles import Role
    from ui.pages.ceremony_page import CeremonyPage

    work = tmp_path / "work"
    work.mkdir()
    write_csr(work)
    page.template_box.setCurrentIndex(page.template_box.findText("root-ca"))
    page.workdir_edit.setText(str(work))
    page.begin_button.click()
    _wait(qtbot, page, lambda v: v.state is State.REGISTERING)
    page.kind_box.setCurrentText("operator")
    page.name_edit.setText(WITNESS)
    page.person_pass.setText(WITNESS_PASS)
    page.register_button.click()
    _wait(qtbot, page, lambda v: len(v.participants) == 2)
    page.kind_box.setCurrentText("external")
    page.name_edit.setText(EXTERNAL[0])
    page.org_edit.setText(EXTERNAL[1])
    page.register_button.click()
    _wait(qtbot, page, lambda v: len(v.participants) == 3)
    page.start_button.click()
    _wait(qtbot, page, lambda v: v.state is State.RUNNING)
    page.pause_button.click()
    _wait(qtbot, page, lambda v: v.state is State.PAUSED)
    paused_id = page.view.id

    # A fresh page (the window opened again): the paused ceremony is listed.
    again = CeremonyPage(gui_session)
    qtbot.addWidget(again)
    again.resize(1024, 700)
    again.show()
    qtbot.waitUntil(lambda: again.history.rowCount() == 1, timeout=60_000)
    [row] = _history(again)
    assert "root-ca" in row[1] and row[2].startswith("paused, step 1 of")
    assert row[3] == "—" and row[4] == "officer" and row[5] == paused_id[:8]
    assert not again.resume_history_button.isEnabled()  # nothing chosen yet
    again.history.selectRow(0)
    assert again.resume_history_button.isEnabled() and again.abandon_history_button.isEnabled()
    # An auditor sees the list but may not resume or abandon.
    gui_session.gate.set_roles(frozenset({Role.AUDITOR}))
    assert not again.resume_history_button.isEnabled()
    assert "auditor" in again.resume_history_button.toolTip()
    gui_session.gate.set_roles(frozenset({Role.SECURITY_OFFICER, Role.KEY_CUSTODIAN}))
    again._history_selection()
    again.resume_history_button.click()
    qtbot.waitUntil(
        lambda: again.view is not None and again.view.state is State.RUNNING, timeout=60_000
    )
    assert again.view.id == paused_id and again.perform_button.isEnabled()
    qtbot.waitUntil(lambda: _history(again)[0][2].startswith("running"), timeout=60_000)

    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("rehearsal stopped", True))
    again.history.selectRow(0)
    again.abandon_history_button.click()
    qtbot.waitUntil(
        lambda: again.view is not None and again.view.state is State.ABANDONED, timeout=60_000
    )
    qtbot.waitUntil(lambda: _history(again)[0][2] == "abandoned", timeout=60_000)
    row = _history(again)[0]
    assert row[3] != "—"  # ended at
    assert not again.resume_history_button.isEnabled()
    assert not again.abandon_history_button.isEnabled()
