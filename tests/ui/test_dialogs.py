"""Dialogs: what they refuse, what they emit, and that secrets cannot be copied out."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import QLineEdit

from app.domain.algorithms import Algorithm, Purpose
from app.hsm.module import TokenInfo
from app.services.prompter import SecretKind
from ui.dialogs.generate import GenerateKeyDialog, GenerateRequest
from ui.dialogs.initialize import InitializeDialog, InitializeRequest
from ui.dialogs.secret import SecretDialog
from ui.dialogs.unlock import UnlockDialog
from ui.widgets.secret_field import SecretField

pytestmark = pytest.mark.ui

TOKEN = TokenInfo(
    "/x/libsofthsm2.so", 7, "Vault", "abc123", "SoftHSM project", "SoftHSM v2", 0x40D, "2.6", "2.6"
)


def fill_initialize(dialog: InitializeDialog, **overrides: str) -> None:
    values = {
        "operator": "Alice",
        "passphrase": "long enough passphrase",
        "confirmation": "long enough passphrase",
        "user_pin": "123456",
        "user_pin_confirm": "123456",
        "so_pin": "87654321",
        "so_pin_confirm": "87654321",
    }
    values.update(overrides)
    for field, value in values.items():
        getattr(dialog, field).setText(value)


def test_initialize_refuses_mismatched_passphrase(qtbot):  # type: ignore[no-untyped-def]
    dialog = InitializeDialog("/tmp/x")
    qtbot.addWidget(dialog)
    fill_initialize(dialog, confirmation="something else entirely")
    with qtbot.assertNotEmitted(dialog.submitted):
        dialog.create_button.click()
    assert "differ" in dialog.error.text()
    assert dialog.error.isVisibleTo(dialog)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"passphrase": "short", "confirmation": "short"}, "at least 12"),
        ({"operator": "  "}, "empty"),
        ({"operator": "bad\x07name"}, "control"),
        ({"so_pin": "123456", "so_pin_confirm": "123456"}, "differ from the user PIN"),
        ({"user_pin_confirm": "654321"}, "user PIN and its confirmation differ"),
        ({"user_pin": "12", "user_pin_confirm": "12"}, "4 to 255 bytes in UTF-8"),
    ],
)
def test_initialize_explains_each_refusal(qtbot, overrides, expected):  # type: ignore[no-untyped-def]
    dialog = InitializeDialog("/tmp/x")
    qtbot.addWidget(dialog)
    fill_initialize(dialog, **overrides)
    with qtbot.assertNotEmitted(dialog.submitted):
        dialog.create_button.click()
    assert expected in dialog.error.text()


def test_initialize_emits_request_with_token(qtbot):  # type: ignore[no-untyped-def]
    dialog = InitializeDialog("/tmp/x")
    qtbot.addWidget(dialog)
    fill_initialize(dialog)
    with qtbot.waitSignal(dialog.submitted) as signal:
        dialog.create_button.click()
    request: InitializeRequest = signal.args[0]
    assert request.operator == "Alice"
    assert request.soft_token is not None
    assert (request.soft_token.label, request.soft_token.user_pin, request.soft_token.so_pin) == (
        "Keystead",
        "123456",
        "87654321",
    )
    assert not dialog.create_button.isEnabled()  # busy until the controller answers
    dialog.failed("database damaged")
    assert dialog.create_button.isEnabled() and "damaged" in dialog.error.text()


def test_initialize_without_token(qtbot):  # type: ignore[no-untyped-def]
    dialog = InitializeDialog("/tmp/x")
    qtbot.addWidget(dialog)
    fill_initialize(dialog, user_pin="", user_pin_confirm="", so_pin="", so_pin_confirm="")
    dialog.create_token.setChecked(False)
    assert not dialog.token_box.isEnabled()
    with qtbot.waitSignal(dialog.submitted) as signal:
        dialog.create_button.click()
    assert signal.args[0].soft_token is None


def test_unlock_requires_both_fields_and_clears_passphrase(qtbot):  # type: ignore[no-untyped-def]
    dialog = UnlockDialog("/tmp/x", ["alice", "bob"])
    qtbot.addWidget(dialog)
    with qtbot.assertNotEmitted(dialog.submitted):
        dialog.unlock_button.click()
    assert "passphrase" in dialog.error.text()
    dialog.operator.setCurrentText("bob")
    dialog.passphrase.setText("the passphrase")
    with qtbot.waitSignal(dialog.submitted) as signal:
        dialog.unlock_button.click()
    assert signal.args == ["bob", "the passphrase"]
    assert dialog.passphrase.text() == ""
    dialog.failed("The passphrase for operator 'bob' is wrong.")
    assert "wrong" in dialog.error.text() and dialog.unlock_button.isEnabled()


def test_pin_dialog_hands_over_secret_once(qtbot):  # type: ignore[no-untyped-def]
    dialog = SecretDialog(SecretKind.USER_PIN, "Log in to token 'Vault'", note="Wrong PIN (1)")
    qtbot.addWidget(dialog)
    assert "Wrong PIN" in dialog.error.text()
    dialog._accept()
    assert dialog.result() == 0 and "Enter the value" in dialog.error.text()
    dialog.field.setText("2468")
    dialog._accept()
    assert dialog.result() == 1
    assert dialog.field.text() == ""
    assert dialog.secret() == "2468"
    assert dialog.secret() == ""


def test_secret_field_cannot_be_copied(qtbot):  # type: ignore[no-untyped-def]
    field = SecretField()
    qtbot.addWidget(field)
    field.show()
    clipboard = QGuiApplication.clipboard()
    clipboard.setText("before")
    field.setText("sentinel-secret-5150")
    field.selectAll()
    qtbot.keySequence(field, QKeySequence.StandardKey.Copy)
    qtbot.keySequence(field, QKeySequence.StandardKey.Cut)
    field.copy()
    assert clipboard.text() == "before"
    assert field.text() == "sentinel-secret-5150"
    assert field.echoMode() == QLineEdit.EchoMode.Password
    assert field.contextMenuPolicy() == Qt.ContextMenuPolicy.NoContextMenu
    assert not field.dragEnabled()


def test_generate_purposes_follow_algorithm(qtbot):  # type: ignore[no-untyped-def]
    dialog = GenerateKeyDialog([TOKEN])
    qtbot.addWidget(dialog)
    dialog.algorithm.setCurrentIndex(list(Algorithm).index(Algorithm.ED25519))
    purposes = [dialog.purpose.itemData(i) for i in range(dialog.purpose.count())]
    assert purposes == [Purpose.SIGNING]
    assert "Private key: SIGN. Public key: VERIFY." in dialog.preview.text()
    dialog.algorithm.setCurrentIndex(list(Algorithm).index(Algorithm.AES_128))
    purposes = [dialog.purpose.itemData(i) for i in range(dialog.purpose.count())]
    assert purposes == [Purpose.ENCRYPTION, Purpose.KEY_WRAPPING, Purpose.MAC]
    dialog.purpose.setCurrentIndex(1)
    assert "Usage: UNWRAP, WRAP." in dialog.preview.text()
    assert "Extractable: no" in dialog.preview.text()
    dialog.backup.setChecked(True)
    assert "Extractable: yes" in dialog.preview.text()


def test_generate_offers_no_backup_for_keys_no_backup_can_hold(qtbot):  # type: ignore[no-untyped-def]
    """The dialog asks the backup's own rule: Ed25519 cannot be ticked "must be backed up"."""
    dialog = GenerateKeyDialog([TOKEN])
    qtbot.addWidget(dialog)
    dialog.backup.setChecked(True)
    dialog.algorithm.setCurrentIndex(list(Algorithm).index(Algorithm.ED25519))
    assert not dialog.backup.isChecked() and not dialog.backup.isEnabled()
    assert "CKR_KEY_NOT_WRAPPABLE" in dialog.backup.toolTip()
    assert "Extractable: no" in dialog.preview.text()
    dialog.set_busy(True)
    dialog.set_busy(False)
    assert not dialog.backup.isEnabled()  # not re-enabled after a refused generation
    dialog.algorithm.setCurrentIndex(list(Algorithm).index(Algorithm.EC_P256))
    assert dialog.backup.isEnabled() and dialog.backup.toolTip() == ""


def test_generate_refuses_bad_name_and_emits_request(qtbot):  # type: ignore[no-untyped-def]
    dialog = GenerateKeyDialog([TOKEN])
    qtbot.addWidget(dialog)
    dialog.show()
    with qtbot.assertNotEmitted(dialog.submitted):
        dialog.generate_button.click()
    assert "empty" in dialog.error.text()
    dialog.name.setText("payments-kek")
    dialog.algorithm.setCurrentIndex(list(Algorithm).index(Algorithm.RSA_4096))
    with qtbot.waitSignal(dialog.submitted) as signal:
        dialog.generate_button.click()
    request: GenerateRequest = signal.args[0]
    assert (request.token_serial, request.algorithm, request.purpose, request.name) == (
        "abc123",
        Algorithm.RSA_4096,
        Purpose.SIGNING,
        "payments-kek",
    )
    # Busy: progress shown, Cancel refused because the token cannot be interrupted.
    assert dialog.progress.isVisibleTo(dialog)
    assert not dialog.cancel_button.isEnabled()
    dialog.reject()  # Escape / window close while the token works: ignored
    assert dialog.isVisible()
    dialog.failed("Token refused")
    assert dialog.cancel_button.isEnabled() and not dialog.progress.isVisibleTo(dialog)


def test_generate_without_tokens_says_log_in_first(qtbot):  # type: ignore[no-untyped-def]
    dialog = GenerateKeyDialog([])
    qtbot.addWidget(dialog)
    assert "Log in to a token first" in dialog.error.text()
    assert not dialog.generate_button.isEnabled()


def test_initialize_can_choose_a_present_audit_token_instead(qtbot):  # type: ignore[no-untyped-def]
    dialog = InitializeDialog("/tmp/x")
    qtbot.addWidget(dialog)
    fill_initialize(dialog)
    assert not dialog.present_box.isEnabled()
    dialog.use_present.setChecked(True)
    assert not dialog.create_token.isChecked() and not dialog.token_box.isEnabled()
    with qtbot.assertNotEmitted(dialog.submitted):
        dialog.create_button.click()
    assert "Name the audit token's module" in dialog.error.text()
    dialog.module_path.setText("/usr/lib/x.so")
    dialog.present_token.setText("hsm1")
    dialog.present_pin.setText("246810")
    with qtbot.waitSignal(dialog.submitted) as signal:
        dialog.create_button.click()
    request: InitializeRequest = signal.args[0]
    assert request.soft_token is None
    assert request.audit_token is not None
    assert (request.audit_token.token, request.audit_token.modules) == ("hsm1", ("/usr/lib/x.so",))
    dialog.create_token.setChecked(True)  # back to the embedded one: the choice is cleared
    assert not dialog.use_present.isChecked()


def test_generate_accepts_wider_usage_only_when_ticked(qtbot):  # type: ignore[no-untyped-def]
    dialog = GenerateKeyDialog([TOKEN])
    qtbot.addWidget(dialog)
    dialog.name.setText("tpm-signer")
    with qtbot.waitSignal(dialog.submitted) as signal:
        dialog.generate_button.click()
    assert signal.args[0].allow_wider is False
    dialog.failed("Token 'tpm1' makes EC-P256 keys only with DECRYPT and ENCRYPT as well")
    dialog.wider.setChecked(True)
    with qtbot.waitSignal(dialog.submitted) as signal:
        dialog.generate_button.click()
    assert signal.args[0].allow_wider is True


def test_first_start_typing_begins_in_name_and_fields_share_one_column(qtbot) -> None:
    # New-user trial: typed text went nowhere and every value landed one field late; the
    # three groups' fields started at three x positions.
    dialog = InitializeDialog("/tmp/x")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    qtbot.waitUntil(lambda: dialog.focusWidget() is dialog.operator)
    qtbot.keyClicks(dialog.focusWidget(), "alice")
    assert dialog.operator.text() == "alice"
    lefts = {
        w.mapTo(dialog, w.rect().topLeft()).x()
        for w in (dialog.operator, dialog.token_label, dialog.module_path)
    }
    assert len(lefts) == 1, lefts


def test_a_long_unlock_error_is_shown_whole(qtbot) -> None:
    # Outside tester (attack2 A5): the damaged-database message was cut off mid-sentence at
    # 1024x700, hiding what to do.
    dialog = UnlockDialog("/tmp/x", ["alice"])
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    message = (
        "The database /tmp/x/keystead.db is damaged (1 page(s) fail authentication). The file "
        "was left exactly as it is. Restore keystead.db from your own copy of the home, or "
        "rebuild the workstation from your latest verified backup; nothing was changed."
    )
    dialog.failed(message)
    qtbot.wait(20)
    label = dialog.error
    assert label.text() == message
    assert label.height() >= label.heightForWidth(label.width())
    assert label.geometry().bottom() <= dialog.rect().bottom()
