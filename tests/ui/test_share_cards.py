"""Share cards at a GUI ceremony: each custodian's words appear only when they press Show,
cannot be selected or copied, are cleared when they confirm; cancelling any card cancels the
backup; a drill's shares come back from non-echoing fields. Driven from the core thread as a
ceremony step does."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from app.errors import OperationCancelled
from ui.dialogs.share_cards import QtShareDesk, ShareCardDialog, ShareEntryDialog

WORDS = "academic acid acrobat romp " * 5


def card() -> SimpleNamespace:
    return SimpleNamespace(
        kek_check_value="A1B2C3",
        share_set=SimpleNamespace(
            custodians=("Custodian A", "Custodian B"),
            mnemonics=(WORDS.strip(), ("zero " * 20).strip()),
        ),
    )


def test_a_card_shows_its_words_only_on_request(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = ShareCardDialog("Custodian A", 1, 3, WORDS.strip(), "A1B2C3")
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.words.isVisible() and not dialog.done_button.isEnabled()
    assert dialog.words.textInteractionFlags() == Qt.TextInteractionFlag.NoTextInteraction
    dialog.show_button.click()
    assert dialog.words.isVisible() and dialog.done_button.isEnabled()
    assert "1. academic" in dialog.words.text() and "20. romp" in dialog.words.text()
    dialog.done_button.click()
    assert dialog.result() == dialog.DialogCode.Accepted and dialog.words.text() == ""


def _answer(cancel_second: bool = False):  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def step() -> None:
        modal = QApplication.activeModalWidget()
        if isinstance(modal, ShareCardDialog):
            seen.append(modal.windowTitle())
            if cancel_second and len(seen) == 2:
                modal.reject()
                return
            modal.show_button.click()
            modal.done_button.click()
        elif isinstance(modal, ShareEntryDialog):
            for entry, text in zip(modal.fields, ("one two", " three  four"), strict=True):
                entry.setText(text)
            modal.accept()

    timer = QTimer()
    timer.timeout.connect(step)
    timer.start(50)
    return timer, seen


@pytest.mark.parametrize("cancel", [False, True])
def test_cards_go_to_each_custodian_in_turn(qtbot, bridge, cancel: bool) -> None:  # type: ignore[no-untyped-def]
    desk = QtShareDesk()
    timer, seen = _answer(cancel_second=cancel)
    future = bridge.executor.submit(desk.deliver_shares, card())
    qtbot.waitUntil(future.done, timeout=20_000)
    timer.stop()
    assert seen[:2] == ["Share 1 of 2: Custodian A", "Share 2 of 2: Custodian B"]
    if cancel:
        with pytest.raises(OperationCancelled):
            future.result()
    else:
        future.result()


def test_a_drill_takes_the_shares_typed(qtbot, bridge) -> None:  # type: ignore[no-untyped-def]
    desk = QtShareDesk()
    timer, _ = _answer()
    future = bridge.executor.submit(desk.collect_shares, 2)
    qtbot.waitUntil(future.done, timeout=20_000)
    timer.stop()
    assert future.result() == ("one two", "three four")
