"""The key's detail panel lists its certificates (RFC 5280) and says how to export them; a
revoked one says REVOKED."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm, Purpose
from app.domain.lifecycle import Action

pytestmark = pytest.mark.ui


def test_the_panel_lists_the_keys_certificates(
    qtbot, bridge, workstation, gui_session, tmp_path: Path
):  # type: ignore[no-untyped-def]
    from ui.pages.inventory_page import InventoryPage

    def make_root():  # type: ignore[no-untyped-def]
        key = workstation.keys.generate("UiToken", Algorithm.EC_P256, "root", Purpose.SIGNING)
        workstation.lifecycle.transition(key.id, Action.ACTIVATE)
        issued = workstation.certs.self_sign(
            key.id, "root-ca", "CN=Panel Root,O=Keystead,C=DE", 3650, tmp_path / "root.pem"
        )
        return key, issued

    key, issued = bridge.executor.call(make_root)
    page = InventoryPage(gui_session)
    qtbot.addWidget(page)
    page.resize(1600, 1000)
    page.show()
    with qtbot.waitSignal(page.loaded, timeout=10000):
        page.refresh()
    page.table.selectRow(0)
    label = page.detail.certificates
    qtbot.waitUntil(label.isVisible, timeout=10000)
    text = label.text()
    assert "CN=Panel Root" in text and issued.serial in text and "valid" in text
    assert "keystead certs export" in text

    bridge.executor.call(workstation.certs.revoke, issued.serial, "cessation_of_operation")
    page.table.clearSelection()
    page.table.selectRow(0)
    qtbot.waitUntil(lambda: "REVOKED" in label.text(), timeout=10000)
    assert key.name == "root"
