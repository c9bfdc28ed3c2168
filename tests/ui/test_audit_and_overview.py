"""Audit page: newest first and sortable by time, subjects named, filter by key name, Enter
applies, a verification banner with its time that goes stale, a tamper banner saying what to
do, the bad row not shown as sealed. Overview: the figures and their links."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app.domain.algorithms import Algorithm
from app.domain.lifecycle import Action
from ui.models.audit_model import AuditColumn
from ui.pages.audit_page import AuditPage

pytestmark = pytest.mark.ui


def load(qtbot, page: AuditPage) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(page.model.loaded, timeout=10000):
        page.refresh()


def seqs(page: AuditPage) -> list[int]:
    return [page.model.entry_at(r).seq for r in range(page.model.rowCount())]  # type: ignore[union-attr]


def test_newest_first_sortable_by_time_with_key_names(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    key = bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "kek-7")
    page = AuditPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    load(qtbot, page)
    order = seqs(page)
    assert order == sorted(order, reverse=True)  # newest first
    newest = page.model.index(0, AuditColumn.SUBJECT)
    assert newest.data() == "key 'kek-7'"  # the name, not the id
    assert newest.data(Qt.ItemDataRole.ToolTipRole) == f"key:{key.id}"
    with qtbot.waitSignal(page.model.loaded, timeout=10000):
        page.table.sortByColumn(AuditColumn.TIME, Qt.SortOrder.AscendingOrder)
    assert seqs(page) == sorted(order)
    page.table.sortByColumn(AuditColumn.ACTION, Qt.SortOrder.AscendingOrder)  # only time sorts
    assert page.table.horizontalHeader().sortIndicatorSection() == AuditColumn.TIME


def test_filter_by_key_name_and_enter_applies(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    kek = bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "kek-a")
    bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "other")
    bridge.executor.call(workstation.lifecycle.transition, kek.id, Action.ACTIVATE)
    page = AuditPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    load(qtbot, page)
    page.key_name.setText("kek-a")
    with qtbot.waitSignal(page.model.loaded, timeout=10000):
        qtbot.keyClick(page.key_name, Qt.Key.Key_Return)  # Enter applies
    actions = [page.model.entry_at(r).action for r in range(page.model.rowCount())]  # type: ignore[union-attr]
    assert actions == ["key.activate", "key.generate"]


def test_verify_banner_has_its_time_goes_stale_and_tamper_says_what_to_do(
    qtbot, bridge, workstation, gui_session
):  # type: ignore[no-untyped-def]
    bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "k1")
    page = AuditPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    load(qtbot, page)
    page.verify()
    qtbot.waitUntil(lambda: page.banner.property("state") == "ok", timeout=10000)
    assert "verified at" in page.banner.text() and "UTC" in page.banner.text()
    bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "k2")
    load(qtbot, page)
    assert page.banner.property("state") == "stale" and "Verify again" in page.banner.text()

    sealed = bridge.executor.call(
        lambda: workstation.db.scalar("SELECT min(seq) FROM events WHERE action = 'key.generate'")
    )

    def tamper() -> None:
        with workstation.db.transaction():
            forge = "UPDATE events SET subject = 'key:forged' WHERE seq = ?"
            workstation.db.execute(forge, (sealed,))

    bridge.executor.call(tamper)
    page.verify()
    qtbot.waitUntil(lambda: page.banner.property("state") == "bad", timeout=10000)
    text = page.banner.text()
    assert "Export the evidence" in text and "stop work" in text and "call" in text
    qtbot.waitUntil(lambda: page.model.row_of_seq(sealed) >= 0, timeout=10000)
    row = page.model.row_of_seq(sealed)
    assert page.model.entry_at(row).mac is not None  # type: ignore[union-attr]
    assert page.model.index(row, AuditColumn.SEALED).data() == "FAILS VERIFICATION"


def test_overview_figures_link_to_filtered_views(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    from ui.main_window import MainWindow

    gone = bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "gone")
    bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "kept")
    bridge.executor.call(
        lambda: workstation.tokens.session("UiToken").destroy_generated(gone.cka_id)
    )
    window = MainWindow(gui_session)
    qtbot.addWidget(window)
    window.presence_timer.stop()
    window.show()
    assert window.pages.currentWidget() is window.overview  # the first page
    window.start()
    overview = window.overview
    qtbot.waitUntil(lambda: overview.missing.figure.text().startswith("1 missing"), timeout=10000)
    assert overview.missing.state == "bad"
    assert overview.tokens.figure.text() == "1 present, 1 logged in"
    qtbot.waitUntil(lambda: "not verified" in overview.audit.figure.text(), timeout=10000)
    assert "Attention needed" in overview.verdict.text()
    assert overview.backup.figure.text() == "no backup yet" and overview.backup.state == "warn"
    overview.missing.link.click()
    assert window.pages.currentWidget() is window.inventory
    qtbot.waitUntil(lambda: window.inventory.model.rowCount() == 1, timeout=5000)
    assert window.inventory.model.item_at(0).name == "gone"  # type: ignore[union-attr]
    overview.logins.link.click()
    assert window.pages.currentWidget() is window.audit
    assert window.audit.action.text() == "token.login"
    overview.audit.link.click()  # verify now
    qtbot.waitUntil(lambda: overview.audit.figure.text().startswith("verified at"), timeout=10000)


def test_overview_counts_compromised_keys(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    """New-user trial F1: the overview had no figure for a compromised key still on a token."""
    from app.domain.lifecycle import Action
    from ui.main_window import MainWindow

    leaked = bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "leak")
    bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "fine")
    bridge.executor.call(
        workstation.lifecycle.transition, leaked.id, Action.COMPROMISE, reason="laptop lost"
    )
    window = MainWindow(gui_session)
    qtbot.addWidget(window)
    window.presence_timer.stop()
    window.show()
    window.start()
    overview = window.overview
    qtbot.waitUntil(lambda: overview.compromised.state == "bad", timeout=10000)
    assert overview.compromised.figure.text() == "1 compromised, not destroyed"
    assert "compromised keys" in overview.verdict.text()
    overview.compromised.link.click()
    assert window.pages.currentWidget() is window.inventory
    qtbot.waitUntil(lambda: window.inventory.model.rowCount() == 1, timeout=5000)
    assert window.inventory.model.item_at(0).name == "leak"  # type: ignore[union-attr]
