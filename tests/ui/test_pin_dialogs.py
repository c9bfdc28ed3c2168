"""PIN dialogs: a back-off keeps the dialog open with a countdown and OK disabled; token flags
are said in words; one PIN policy (SO PIN differs from the user PIN) everywhere."""

from __future__ import annotations

import pytest

from app.errors import ValidationError
from app.services.prompter import SecretKind
from ui.dialogs.secret import SecretDialog
from ui.dialogs.token_admin import CreateTokenDialog

pytestmark = pytest.mark.ui


def test_backoff_counts_down_with_ok_disabled(qtbot):  # type: ignore[no-untyped-def]
    submitted: list[str] = []
    dialog = SecretDialog(SecretKind.USER_PIN, "Log in", on_submit=submitted.append)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.field.setText("000000")
    dialog._accept()
    assert submitted == ["000000"] and dialog.isVisible()  # kept open while the token answers
    dialog.hold(2.2, "4 wrong PINs in a row for token 'T'. Wait 3 s before the next try.")
    assert not dialog.ok_button.isEnabled()
    assert dialog.countdown.text() == "Next try possible in 3 s."
    dialog.field.setText("111111")
    dialog._accept()  # Enter during the back-off does nothing
    assert submitted == ["000000"]
    dialog.tick()
    assert dialog.countdown.text() == "Next try possible in 2 s."
    assert not dialog.ok_button.isEnabled()
    dialog.tick()
    dialog.tick()
    assert dialog.ok_button.isEnabled() and not dialog.countdown.isVisibleTo(dialog)
    dialog._accept()
    assert submitted == ["000000", "111111"]


def test_wrong_pin_keeps_the_dialog_and_says_so(qtbot):  # type: ignore[no-untyped-def]
    dialog = SecretDialog(SecretKind.USER_PIN, "Log in", on_submit=lambda _pin: None)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.field.setText("000000")
    dialog._accept()
    dialog.failed("Wrong PIN for token 'T' (1 failure in a row).")
    assert dialog.isVisible() and dialog.field.text() == "" and dialog.ok_button.isEnabled()
    assert "1 failure" in dialog.error.text()


def test_new_token_dialog_refuses_equal_pins(qtbot):  # type: ignore[no-untyped-def]
    dialog = CreateTokenDialog()
    qtbot.addWidget(dialog)
    dialog.label.setText("Rehearsal")
    for field in (dialog.so_pin, dialog.so_again, dialog.user_pin, dialog.user_again):
        field.setText("1234")
    dialog._accept()
    assert dialog.result() == 0 and "SO PIN must differ from the user PIN" in dialog.error.text()


def test_core_refuses_equal_pins_for_a_new_embedded_token(bridge, workstation):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="SO PIN must differ"):
        bridge.executor.call(workstation.tokens.create_soft_token, "Same", "1234", "1234")


def test_pin_flags_are_words_not_ckf_names() -> None:
    import inspect

    from app.services import tokens

    assert "CKF_" not in inspect.getsource(tokens.TokenService.login)


def test_a_wrong_so_pin_says_how_many_in_a_row(bridge, workstation):  # type: ignore[no-untyped-def]
    from app.errors import WrongPin

    messages = []
    for _ in range(2):
        with pytest.raises(WrongPin) as caught:
            bridge.executor.call(workstation.admin.change_so_pin, "UiToken", "00000000", "87654321")
        messages.append(caught.value.message)
    assert "(1 wrong SO PIN in a row on this token)" in messages[0]
    assert "(2 wrong SO PINs in a row on this token)" in messages[1]
