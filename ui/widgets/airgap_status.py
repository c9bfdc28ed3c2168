"""The air gap in the status bar: a small self-contained label.

It looks at start and every minute (``CHECK_INTERVAL_S``) through the core thread, and turns red
naming what is open (interfaces up with an address, radios not blocked, or that the look failed).
Its context menu turns the air-gap policy on or off (the core refuses anyone but a security
officer, and records the change).
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QLabel, QMenu, QWidget

from app.domain.airgap import AirGapReport
from app.services.airgap import CHECK_INTERVAL_S
from ui.errors import show_error
from ui.session import GuiSession


class AirGapStatus(QLabel):
    def __init__(self, session: GuiSession, parent: QWidget | None = None) -> None:
        super().__init__("Air gap: checking…", parent)
        self.session = session
        self.setObjectName("airgap")
        self.setProperty("state", "unknown")
        self.report: AirGapReport | None = None
        self.blocking = False
        self._busy = False
        self.timer = QTimer(self)
        self.timer.setInterval(CHECK_INTERVAL_S * 1000)
        self.timer.timeout.connect(self.check)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)

    def start(self) -> None:
        self.check()
        self.timer.start()

    def check(self) -> None:
        """Look again (one look at a time)."""
        if self._busy:
            return
        self._busy = True
        self.session.run(
            lambda ws: (ws.airgap.probe(), ws.airgap.blocking()), self._shown, self._failed
        )

    def _shown(self, result: tuple[AirGapReport, bool]) -> None:
        self._busy = False
        self.report, self.blocking = result
        report = self.report
        checked = report.checked_at.strftime("%H:%M:%S UTC")
        policy = (
            "Policy: key generation is refused while the workstation is not air-gapped."
            if self.blocking
            else "Policy: sensitive actions are allowed while connected (a security officer "
            "can block them: right-click)."
        )
        if report.air_gapped:
            self.setText("Air-gapped")
            self._state("ok")
            self.setToolTip(
                f"No network interface is up with an address and no radio is unblocked "
                f"(checked {checked}).\n{policy}"
            )
            return
        blocked = " — key generation blocked" if self.blocking else ""
        what = "could not check" if report.problem else report.names()
        title = "AIR GAP UNKNOWN" if report.problem else "NOT AIR-GAPPED"
        self.setText(f"{title}: {what}{blocked}")
        self._state("open")
        self.setToolTip(f"{report.describe()} (checked {checked}).\n{policy}")

    def _failed(self, error: BaseException) -> None:
        self._busy = False
        self.setText("Air gap: unknown")
        self._state("open")
        self.setToolTip(f"The air gap could not be checked: {error}")

    def _state(self, state: str) -> None:
        self.setProperty("state", state)
        self.style().unpolish(self)
        self.style().polish(self)

    def _menu(self, where: QPoint) -> None:
        menu = QMenu(self)
        action = menu.addAction("Refuse key generation while not air-gapped (security officer)")
        action.setCheckable(True)
        action.setChecked(self.blocking)
        action.toggled.connect(self.set_blocking)
        menu.addAction("Check now", self.check)
        menu.popup(self.mapToGlobal(where))

    def set_blocking(self, on: bool) -> None:
        """Ask the core to change the policy (it checks the role and records the change)."""

        def done(_: object) -> None:
            self.check()

        self.session.run(
            lambda ws: ws.airgap.set_blocking(on), done, lambda error: show_error(self, error)
        )
