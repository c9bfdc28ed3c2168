"""Adopt shows what is being adopted: live attributes, the purpose inferred from the usage
flags (editable), a red warning and a required tick when the key may have been outside the
token; after adopting, the panel shows the managed key."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QLabel

from app.domain.keys import Presence
from tests.hsm.kit import pkcs11_tool
from tests.ui.conftest import PIN
from ui.models.inventory_model import Column

pytestmark = pytest.mark.ui


def test_adopt_dialog_shows_attributes_purpose_and_exposure(  # type: ignore[no-untyped-def]
    qtbot, bridge, workstation, gui_session, ui_home
):
    from ui.pages.inventory_page import InventoryPage

    pkcs11_tool(
        ui_home,
        "--token-label",
        "UiToken",
        "--keygen",
        "--key-type",
        "AES:16",
        "--label",
        "foreign-aes",
        "--id",
        "0a0b",
        "--usage-decrypt",
        pin=PIN,
    )
    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    with qtbot.waitSignal(page.loaded, timeout=10000):
        page.refresh()
    model = page.model
    rows = [
        row
        for row in range(model.rowCount())
        if model.index(row, Column.NAME).data() == "foreign-aes"
    ]
    assert rows and page.model.item_at(rows[0]).presence is Presence.UNMANAGED  # type: ignore[union-attr]
    page.table.selectRow(rows[0])
    page.adopt_action.trigger()
    qtbot.waitUntil(lambda: getattr(page, "adopt_dialog", None) is not None, timeout=10000)
    dialog = page.adopt_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    names = [
        dialog.attributes.verticalHeaderItem(r).text() for r in range(dialog.attributes.rowCount())
    ]
    assert "SENSITIVE" in names and "EXTRACTABLE" in names  # the live attributes
    # what decides exposure is listed first, and the value that exposes the key is red
    assert names[:4] == ["SENSITIVE", "ALWAYS_SENSITIVE", "EXTRACTABLE", "NEVER_EXTRACTABLE"]
    sensitive = dialog.attributes.item(0, 0)
    assert sensitive.text() == "no" and sensitive.foreground().color().name() == "#b3261e"
    assert dialog.purpose.count() >= 1 and dialog.chosen_purpose() is not None  # inferred
    assert dialog.name.text() == "foreign-aes"
    assert dialog.candidate.exposure  # pkcs11-tool made it without CKA_SENSITIVE
    texts = " ".join(label.text() for label in dialog.findChildren(QLabel))
    assert "may have been outside the token" in texts
    assert not dialog.ok_button.isEnabled()  # the exposure needs a tick
    assert dialog.exposure_box is not None
    dialog.exposure_box.setChecked(True)
    assert dialog.ok_button.isEnabled()
    with qtbot.waitSignal(page.loaded, timeout=15000):
        dialog.ok_button.click()
    item = page.detail.item
    assert item is not None and item.record is not None and item.record.name == "foreign-aes"
    assert not page.adopt_action.isEnabled()  # no longer "Unmanaged" with Adopt enabled
    # The panel never calls a key the token reports as not sensitive "never extractable" or
    # "extractable for wrapped backup": it says what the token allows, and the exposure in red.
    backup = page.detail.value_text("Backup")
    assert "never extractable" not in backup and "wrapped backup" not in backup
    assert "not sensitive" in backup
    exposure = page.detail.values["Exposure"]
    assert exposure.objectName() == "errorLine" and "EXPOSED" in page.detail.value_text("Exposure")
