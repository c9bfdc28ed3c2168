"""The status bar's air-gap label: quiet when air-gapped, red and naming what is open when not,
and its menu changes the policy through the core (recorded)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.airgap import AirGapReport, LiveInterface, LiveRadio
from app.storage.events import list_events
from ui.main_window import MainWindow
from ui.widgets.airgap_status import AirGapStatus

pytestmark = pytest.mark.ui

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OPEN = AirGapReport(NOW, (LiveInterface("eth0", ("192.0.2.7",)),), (LiveRadio("phy0", "wlan"),))


def shown(qtbot, widget: AirGapStatus, report: AirGapReport) -> None:  # type: ignore[no-untyped-def]
    widget.session._workstation.airgap.probe = lambda: report
    widget.report = None
    widget.check()
    qtbot.waitUntil(lambda: widget.report is report, timeout=10000)


def test_red_warning_names_what_is_open_and_quiet_when_gapped(qtbot, gui_session) -> None:  # type: ignore[no-untyped-def]
    widget = AirGapStatus(gui_session)
    qtbot.addWidget(widget)
    shown(qtbot, widget, OPEN)
    assert widget.text() == "NOT AIR-GAPPED: eth0, wlan radio phy0"
    assert widget.property("state") == "open"
    assert "192.0.2.7" in widget.toolTip()

    shown(qtbot, widget, AirGapReport(NOW))
    assert widget.text() == "Air-gapped"
    assert widget.property("state") == "ok"

    failed = AirGapReport(NOW, problem="the network interfaces could not be listed (EMFILE)")
    shown(qtbot, widget, failed)
    assert widget.text() == "AIR GAP UNKNOWN: could not check"
    assert "could not be listed" in widget.toolTip()


def test_policy_from_the_menu_is_recorded_and_shown(
    qtbot, gui_session, bridge, workstation
) -> None:  # type: ignore[no-untyped-def]
    widget = AirGapStatus(gui_session)
    qtbot.addWidget(widget)
    shown(qtbot, widget, OPEN)
    widget.set_blocking(True)
    qtbot.waitUntil(lambda: widget.blocking, timeout=10000)
    qtbot.waitUntil(lambda: widget.text().endswith("key generation blocked"), timeout=10000)
    events = bridge.executor.call(list_events, workstation.db, "policy:airgap")
    assert [(e.action, e.outcome, e.details["value"]) for e in events] == [
        ("policy.airgap", "success", "on")
    ]


def test_main_window_carries_it_in_the_status_bar(qtbot, gui_session) -> None:  # type: ignore[no-untyped-def]
    gui_session._workstation.airgap.probe = lambda: OPEN
    window = MainWindow(gui_session)
    qtbot.addWidget(window)
    window.show()
    window.start()
    qtbot.waitUntil(lambda: window.airgap.report is OPEN, timeout=10000)
    assert window.airgap.isVisibleTo(window)
    assert window.airgap.timer.interval() == 60_000
    assert window.statusBar().findChildren(AirGapStatus) == [window.airgap]
    window.close()  # locks behind the jobs start() queued, so none lands on a deleted widget
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10000)


def test_errors_after_closing_began_are_logged_not_shown(  # type: ignore[no-untyped-def]
    qtbot, gui_session, monkeypatch, caplog
) -> None:
    """Jobs queued behind the lock fail with the database closed; a modal box for each would
    stack up (seen hanging a test under load) and keep the window from closing."""
    from app.errors import DatabaseDamaged

    shown: list[BaseException] = []
    monkeypatch.setattr("ui.main_window.show_error", lambda parent, error: shown.append(error))
    window = MainWindow(gui_session)
    qtbot.addWidget(window)
    window.show()
    before = DatabaseDamaged("shown while open")
    gui_session.error.emit(before)
    assert shown == [before]
    window.close()  # starts locking on the core thread
    gui_session.error.emit(DatabaseDamaged("Cannot operate on a closed database."))
    assert shown == [before]
    assert "Cannot operate on a closed database" in caplog.text
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10000)
    assert not window.cryptoperiod_timer.isActive() and not window.airgap.timer.isActive()
