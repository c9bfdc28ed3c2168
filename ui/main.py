"""``keystead-gui``: initialise or unlock, then the main window; ``--screenshot`` for docs/CI."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget
from shiboken6 import isValid

from app.cli.secrets import ENV_OPERATOR, ENV_PASSPHRASE, ENV_PIN
from app.paths import Home, resolve_home
from app.services.workstation import Workstation, harden_process
from ui.dialogs.initialize import InitializeDialog, InitializeRequest
from ui.dialogs.unlock import LockScreen, UnlockDialog, failures_note
from ui.display import display_problem
from ui.errors import message
from ui.icons import icon
from ui.main_window import MainWindow
from ui.session import GuiSession
from ui.style import apply_style
from ui.workers import CoreBridge

log = logging.getLogger(__name__)

# Seconds the GUI waits for a CLI command that has the workstation open (one process changes a
# workstation at a time); the unlock runs on the core thread, so the window stays responsive.
LOCK_WAIT = 10.0
PROGRAM = "keystead-gui"  # how another process names this one when it finds the home locked


class AppController(QObject):
    """Runs the start-up flow: initialise or unlock, then the main window."""

    def __init__(
        self, app: QApplication, home: Home, bridge: CoreBridge, screenshot: Path | None = None
    ) -> None:
        super().__init__()
        self.app = app
        self.home = home
        self.bridge = bridge
        self.screenshot = screenshot
        self.window: MainWindow | None = None
        self.dialog: QWidget | None = None
        self.lock_screen: QWidget | None = None
        # Locked windows Qt is about to delete (deleteLater): held here until it has, so that no
        # run of Python's collector (on whichever thread allocates) frees one first.
        self._retired: list[MainWindow] = []
        self.exit_code = 0

    def start(self) -> None:
        if not self.home.exists():
            self._show_initialize()
        elif self.screenshot and os.environ.get(ENV_OPERATOR) and os.environ.get(ENV_PASSPHRASE):
            self._unlock_for_screenshot()
        else:
            self._show_unlock()

    # --- first start -----------------------------------------------------------------------

    def _show_initialize(self) -> None:
        dialog = InitializeDialog(str(self.home.root))
        dialog.setWindowIcon(icon("keystead"))
        self.dialog = dialog

        def created(workstation: Workstation) -> None:
            dialog.clear_secrets()
            dialog.accept()
            self._open_main(workstation)

        def submitted(request: InitializeRequest) -> None:
            home = self.home
            self.bridge.run(
                lambda: Workstation.initialize(
                    home,
                    request.operator,
                    request.passphrase,
                    request.passphrase,
                    request.soft_token,
                    audit_token=request.audit_token,
                    wait=LOCK_WAIT,
                    program=PROGRAM,
                ),
                created,
                lambda error: dialog.failed(message(error)),
            )

        dialog.submitted.connect(submitted)
        dialog.rejected.connect(self.app.quit)
        self._present(dialog)

    # --- later starts ----------------------------------------------------------------------

    def _show_locked(self) -> None:
        """After a lock: a blank window covering where the main window was, under the unlock
        dialog."""
        closing = self.window
        self.window = None
        screen = LockScreen()
        screen.setWindowIcon(icon("keystead"))
        if closing is not None:  # cover where the window was, whatever its size
            screen.setGeometry(closing.geometry())
            # Deleted by Qt on this thread once control is back in the event loop: with it go
            # its pages, its inventory rows (100,000 rows: ~250 MB), its session (a child)
            # and the locked workstation (issue 17). Results still queued for it are dropped
            # by the bridge (ui/workers.py).
            self._retired.append(closing)
            closing.destroyed.connect(self._forget_retired)
            closing.deleteLater()
        self.lock_screen = screen
        screen.show()
        self._show_unlock(parent=screen)

    def _forget_retired(self) -> None:
        """A locked window is deleted: drop the wrappers Qt has invalidated, then (from the
        event loop, not inside the deletion) free what is left of its session."""
        self._retired = [window for window in self._retired if isValid(window)]
        QTimer.singleShot(0, self._collect_locked)

    @staticmethod
    def _collect_locked() -> None:
        """Run Python's cyclic collector now, on the GUI thread. What a deleted window leaves is
        cycles (its inventory rows, the locked workstation): left to the collector's own
        schedule they stayed for rounds (a relock then held two inventories, 100,000 rows each)
        and were freed by whichever thread happened to allocate."""
        gc.collect()

    def _show_unlock(self, parent: QWidget | None = None) -> None:
        home = self.home
        operators = Workstation.operators(home)
        dialog = UnlockDialog(str(home.root), operators, parent, failures_note(home))
        dialog.setWindowIcon(icon("keystead"))
        self.dialog = dialog

        def unlocked(workstation: Workstation) -> None:
            dialog.accept()
            self._open_main(workstation)
            if self.lock_screen is not None:
                self.lock_screen.close()
                self.lock_screen = None

        def submitted(operator: str, passphrase: str) -> None:
            self.bridge.run(
                lambda: Workstation.unlock(
                    home, operator, passphrase, wait=LOCK_WAIT, program=PROGRAM,
                    defer_checks=True,  # paint first; the window runs them right after
                ),
                unlocked,
                lambda error: dialog.failed(message(error), failures_note(home)),
            )

        dialog.submitted.connect(submitted)
        dialog.rejected.connect(self.app.quit)
        self._present(dialog)

    def _unlock_for_screenshot(self) -> None:
        """Automation: unlock and log in with the documented environment variables."""
        home = self.home
        operator = os.environ[ENV_OPERATOR]
        passphrase = os.environ[ENV_PASSPHRASE]
        pin = os.environ.get(ENV_PIN)

        def job() -> Workstation:
            ws = Workstation.unlock(home, operator, passphrase, wait=LOCK_WAIT, program=PROGRAM)
            serial = ws.audit.token_serial
            present = {info.serial for info in ws.tokens.present()}
            if pin and serial in present:  # as the CLI: the audit token's PIN, that token only
                ws.tokens.login(serial, pin)
            return ws

        def failed(error: BaseException) -> None:
            print(f"keystead-gui: error: {message(error)}", file=sys.stderr)
            self.exit_code = 1
            self.app.quit()

        self.bridge.run(job, self._open_main, failed)

    # --- main window -----------------------------------------------------------------------

    def _open_main(self, workstation: Workstation) -> None:
        session = GuiSession(self.bridge, workstation)
        window = MainWindow(session)
        workstation.approvals.source = window.approval_source  # the approval dialog
        self.window = window
        self.dialog = None
        window.locked.connect(self._locked)
        if self.screenshot:
            window.inventory.loaded.connect(self._select_first_then_capture)
        window.show()
        window.start()

    def _locked(self, relock: bool) -> None:
        """The window locked the workstation; after Lock now or the idle lock, a blank
        window (no key name on screen) under the unlock dialog."""
        if relock and not self.screenshot:
            why = self.window.lock_message if self.window is not None else ""
            self._show_locked()
            if why and isinstance(self.dialog, UnlockDialog):
                self.dialog.failed(why, failures_note(self.home))

    def _present(self, widget: QWidget) -> None:
        widget.show()
        if self.screenshot:
            QTimer.singleShot(400, lambda: self._capture(widget))

    def _select_first_then_capture(self, count: int) -> None:
        window = self.window
        if window is None:
            return
        window.inventory.loaded.disconnect(self._select_first_then_capture)
        window.show_page(window.inventory)  # the documented screenshot is the inventory
        if count:
            window.inventory.table.selectRow(0)
        QTimer.singleShot(800, lambda: self._capture(window, lock=True))

    def _capture(self, widget: QWidget, lock: bool = False) -> None:
        saved = widget.grab().save(str(self.screenshot), "PNG")
        if not saved:
            print(f"keystead-gui: error: could not write {self.screenshot}", file=sys.stderr)
            self.exit_code = 1
        if lock and self.window is not None:
            self.window.close()  # locks on the core thread, then closes
            QTimer.singleShot(3000, self.app.quit)
        else:
            self.app.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keystead-gui", description="Keystead workstation GUI")
    parser.add_argument(
        "--home", help="workstation directory (default: KEYSTEAD_HOME or user data dir)"
    )
    parser.add_argument(
        "--screenshot",
        metavar="FILE",
        type=Path,
        help="render the first screen offscreen with the current data, save a PNG, exit",
    )
    args = parser.parse_args(argv)
    harden_process()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    problem = display_problem()
    if problem:
        print(f"keystead-gui: error: {problem}", file=sys.stderr)
        return 1
    app = QApplication(sys.argv[:1])
    app.setApplicationName("Keystead")
    app.setDesktopFileName("org.keystead.Keystead")  # matches the installed desktop entry
    app.setWindowIcon(icon("keystead"))
    apply_style(app)
    bridge = CoreBridge()
    controller = AppController(app, resolve_home(args.home), bridge, args.screenshot)
    controller.start()
    if controller.window is None and controller.dialog is None and not args.screenshot:
        return 1
    app.aboutToQuit.connect(lambda: None)
    app.exec()
    bridge.shutdown()
    return controller.exit_code


if __name__ == "__main__":
    sys.exit(main())
