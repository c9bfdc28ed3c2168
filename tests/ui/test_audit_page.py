"""Audit page: paged loading, SQL filters, Verify banners (green, and red on the bad entry)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from app.domain.algorithms import Algorithm
from app.services.audit import Outcome, record
from ui.models.audit_model import PAGE, AuditModel
from ui.pages.audit_page import AuditPage

pytestmark = pytest.mark.ui


def load(qtbot, page: AuditPage) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(page.model.loaded, timeout=10000):
        page.refresh()


def test_page_filters_and_shows_details(qtbot, bridge, workstation, gui_session):  # type: ignore[no-untyped-def]
    bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "audited")
    page = AuditPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    load(qtbot, page)
    actions = [page.model.entry_at(r).action for r in range(page.model.rowCount())]  # type: ignore[union-attr]
    assert "key.generate" in actions and "workstation.initialize" in actions
    page.action.setText("key.gen")
    load(qtbot, page)
    assert page.model.total == 1 and page.model.rowCount() == 1
    page.table.selectRow(0)
    shown = json.loads(page.details.toPlainText())
    assert shown["action"] == "key.generate" and len(shown["entry_hash"]) == 64
    assert shown["token_mac"] != "none (audit token not logged in)"
    page.outcome.setCurrentText("denied")
    load(qtbot, page)
    assert page.model.total == 0


def test_verify_banner_green_then_red_on_the_bad_entry(
    qtbot,
    bridge,
    workstation,  # type: ignore[no-untyped-def]
    gui_session,
):
    for i in range(3):
        bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, f"k{i}")
    page = AuditPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    load(qtbot, page)
    page.verify()
    qtbot.waitUntil(lambda: page.banner.property("state") == "ok", timeout=10000)
    assert "entries verified" in page.banner.text()

    def tamper() -> None:
        with workstation.db.transaction():
            workstation.db.execute("UPDATE events SET subject = 'key:forged' WHERE seq = 5")

    bridge.executor.call(tamper)
    page.verify()
    qtbot.waitUntil(lambda: page.banner.property("state") == "bad", timeout=10000)
    assert "entry 5" in page.banner.text() and "modified" in page.banner.text()
    qtbot.waitUntil(lambda: bool(page.table.selectionModel().selectedRows()), timeout=10000)
    selected = page.model.entry_at(page.table.selectionModel().selectedRows()[0].row())
    assert selected is not None and selected.seq == 5


def test_model_fetches_more_pages_on_demand(
    qtbot,
    qtmodeltester,
    bridge,
    workstation,  # type: ignore[no-untyped-def]
    gui_session,
):
    def many() -> None:
        with workstation.db.transaction():
            for i in range(PAGE + 20):
                record(
                    workstation.db,
                    when=datetime.now(UTC),
                    operators=("officer",),
                    action="test.entry",
                    subject=f"n:{i}",
                    outcome=Outcome.SUCCESS,
                )

    bridge.executor.call(many)
    model = AuditModel(lambda job, done: gui_session.run(lambda ws: job(ws.audit), done))
    with qtbot.waitSignal(model.loaded, timeout=10000):
        model.set_filter(model._filter)
    assert model.rowCount() == PAGE and model.total > PAGE and model.canFetchMore()
    with qtbot.waitSignal(model.loaded, timeout=10000):
        model.fetchMore()
    assert model.rowCount() == model.total and not model.canFetchMore()
    qtmodeltester.check(model)


def test_verify_banner_red_when_a_key_record_was_edited_outside_keystead(  # type: ignore[no-untyped-def]
    qtbot, bridge, workstation, gui_session
):
    """F22: the GUI's verification is the same service: a key state edited in the database
    turns the banner red, names the key and the entry, and selects that entry."""
    from app.domain.lifecycle import Action

    key = bridge.executor.call(workstation.keys.generate, "UiToken", Algorithm.AES_128, "k6")
    bridge.executor.call(workstation.lifecycle.transition, key.id, Action.ACTIVATE)
    bridge.executor.call(workstation.lifecycle.transition, key.id, Action.COMPROMISE, "lost")

    def tamper() -> None:
        with workstation.db.transaction():
            workstation.db.execute("UPDATE keys SET state = 'ACTIVE' WHERE id = ?", (key.id,))

    bridge.executor.call(tamper)
    page = AuditPage(gui_session)
    qtbot.addWidget(page)
    page.show()
    load(qtbot, page)
    page.verify()
    qtbot.waitUntil(lambda: page.banner.property("state") == "bad", timeout=10000)
    text = page.banner.text()
    assert "'k6' has state ACTIVE in the inventory" in text and "COMPROMISED" in text
    qtbot.waitUntil(lambda: bool(page.table.selectionModel().selectedRows()), timeout=10000)
    selected = page.model.entry_at(page.table.selectionModel().selectedRows()[0].row())
    assert selected is not None and selected.action == "key.compromise"
