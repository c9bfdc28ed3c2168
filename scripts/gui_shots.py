"""Open one view of the GUI on a demo workstation, for screenshots under a real X server.

    /work/shared/tools/xshot out.png --size 1024x700 --wait 12 -- \
        .venv/bin/python scripts/gui_shots.py inventory

Makes a fresh demo workstation (test values only: fixed passphrase and PINs, a fast KDF) in a
temporary directory, with keys in several states, then shows VIEW full screen: a page
(overview, inventory, integrity-pending: the inventory painted before the deferred integrity
checks, held there; large-loading: 20,000 more records, the first screenful painted and the
whole load held; large-loaded: the same, every key in; tokens, audit, audit-verified;
ceremony: the root-CA template waiting for a sign-off; ceremony-register: registering; ceremony-done: completed; ceremony-history: the
list of earlier ceremonies, one paused and one abandoned) or a dialog (destroy, compromise,
suspend, rotate, successor, edit, init-token, remove-module, login, backoff, seal, history,
adopt, adopted, wrap-for, import-wrapped, import-public, distribution, use-menu,
use-menu-auditor), or the backup views: backup-page, each wizard step (backup-target,
backup-keys, backup-protection, backup-review, backup-approval, backup-handover, backup-share,
backup-writing, backup-done), backup-verify and backup-restore. Under Xvfb no removable volume
is mounted: backup-target shows one demo volume row so the table can be seen. Not part of the
product; never run it against a real workstation.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.domain.algorithms import Algorithm, Purpose  # noqa: E402
from app.domain.approval import Credential  # noqa: E402
from app.domain.lifecycle import Action  # noqa: E402
from app.domain.roles import FIRST_OPERATOR_ROLES  # noqa: E402
from app.hsm.softhsm import find_softhsm_module  # noqa: E402
from app.paths import Home  # noqa: E402
from app.services.approvals import ScriptedApprovers  # noqa: E402
from app.services.workstation import SoftTokenRequest, Workstation  # noqa: E402
from app.storage.keyslots import KdfCost  # noqa: E402

PIN = "246810"  # demo value
SO_PIN = "13579135"  # demo value
PASSPHRASE = "demo passphrase 1"  # demo value
WITNESS_PASS = "demo witness passphrase"  # demo value


def demo(ws: Workstation) -> None:
    keys = ws.keys
    life = ws.lifecycle
    kek = keys.generate("Demo", Algorithm.AES_256, "payments-kek-2026", Purpose.KEY_WRAPPING)
    life.transition(kek.id, Action.ACTIVATE)
    sig = keys.generate("Demo", Algorithm.EC_P256, "release-signing", Purpose.SIGNING)
    life.transition(sig.id, Action.ACTIVATE)
    life.rotate(sig.id)
    old = keys.generate("Demo", Algorithm.AES_128, "legacy-data-key", Purpose.ENCRYPTION)
    life.transition(old.id, Action.DESTROY, "", None, "legacy-data-key")
    gone = keys.generate("Demo", Algorithm.AES_128, "vanished-key", Purpose.ENCRYPTION)
    life.transition(gone.id, Action.ACTIVATE)
    ws.tokens.session("Demo").destroy_generated(gone.cka_id)  # as another tool would
    sus = keys.generate("Demo", Algorithm.RSA_2048, "partner-tls", Purpose.SIGNING)
    life.transition(sus.id, Action.ACTIVATE)
    life.transition(sus.id, Action.SUSPEND, "partner asked to pause the integration")
    leaked = keys.generate("Demo", Algorithm.AES_256, "hr-export-key", Purpose.ENCRYPTION)
    life.transition(leaked.id, Action.ACTIVATE)
    life.transition(leaked.id, Action.COMPROMISE, "laptop with the export lost")
    for n in range(12):
        keys.generate("Demo", Algorithm.AES_128, f"tenant-{n:02d}-dek", Purpose.ENCRYPTION)
    # Distribution: a backup-able key used a few times and wrapped for a partner's HSM.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    zmk = keys.generate("Demo", Algorithm.AES_256, "payments-zmk", Purpose.ENCRYPTION, True)
    life.transition(zmk.id, Action.ACTIVATE)
    work = ws.home.root.parent
    plain = work / "settlement.csv"
    plain.write_bytes(b"id,amount\n" * 40_000)
    for n in range(3):
        ws.use.encrypt_file(zmk.id, plain, work / f"settlement-{n}.ksenc")
    partner = work / "partner-hsm.pem"
    partner.write_bytes(
        rsa.generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    ws.distribution.wrap_for(
        zmk.id, work / "payments-zmk.transfer", so_pin=SO_PIN, user_pin=PIN, recipient=partner
    )


def foreign_key(home: Home) -> None:
    """A key another tool made, as pkcs11-tool makes it: AES, not sensitive (its value
    readable in clear), decrypt only; Keystead lists it as unmanaged, to be adopted."""
    subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            find_softhsm_module() or "/usr/lib/softhsm/libsofthsm2.so",
            "--token-label",
            "Demo",
            "--login",
            "--pin",
            PIN,  # the demo token's test value
            "--keygen",
            "--key-type",
            "AES:32",
            "--label",
            "partner-import-key",
            "--id",
            "5a5a",
            "--usage-decrypt",
        ],
        env={"SOFTHSM2_CONF": str(home.softhsm_conf), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )


def main() -> int:
    view = sys.argv[1] if len(sys.argv) > 1 else "inventory"
    if view in ("-h", "--help"):  # the views are listed in the docstring
        print(__doc__)
        return 0
    app = QApplication(sys.argv[:1])
    from ui.main_window import MainWindow
    from ui.session import GuiSession
    from ui.style import apply_style
    from ui.workers import CoreBridge

    apply_style(app)
    home = Home(Path(tempfile.mkdtemp(prefix="keystead-shots-")) / "home")
    bridge = CoreBridge()

    def make() -> Workstation:
        ws = Workstation.initialize(
            home,
            "officer",
            PASSPHRASE,
            PASSPHRASE,
            SoftTokenRequest("Demo", SO_PIN, PIN),
            cost=KdfCost(1024, 1, 1),
        )
        ws.tokens.login("Demo", PIN)
        # Dual control: a second demo operator approves the demo's activations and destroys,
        # then the window's own approval dialog takes over.
        ws.roster.add("witness", FIRST_OPERATOR_ROLES, WITNESS_PASS, WITNESS_PASS)
        ws.approvals.source = ScriptedApprovers([Credential("witness", WITNESS_PASS)])
        demo(ws)
        if view in ("adopt", "adopted"):
            foreign_key(home)
        if view.startswith("ceremony"):
            CEREMONY.append(ceremony_demo(ws, view))
        if view.startswith("backup"):
            backup_demo(ws, view)
        ws.approvals.source = None
        if view in ("seal", "overview-alert"):
            ws.tokens.logout(ws.tokens.find("Demo").serial)
        if view.startswith("large-"):  # 20,000 more records (tokens not attached here)
            from app.storage.repository import KeyRepository
            from benchmarks.inventory_db import records

            repo = KeyRepository(ws.db)
            with ws.db.transaction():
                for record, spki in records(LARGE):
                    repo.insert(record, spki)
        if view in ("integrity-pending", "large-loading", "large-loaded"):
            ws.lock()  # unlocked as the window's unlock dialog does
            ws = Workstation.unlock(home, "officer", PASSPHRASE, defer_checks=True)
        if view == "large-loading":  # the whole load held: the first screenful stays
            ws.keys.inventory = hold_forever  # type: ignore[method-assign]
        return ws

    ws = bridge.executor.call(make)
    session = GuiSession(bridge, ws)
    window = MainWindow(session)
    window.presence_timer.stop()
    window.resize(app.primaryScreen().availableGeometry().size())  # no window manager here
    window.show()
    window.start()
    if view == "integrity-pending":  # held in the state between paint and the checks
        window.inventory.settled.disconnect(window._finish_unlock)
        view = "inventory"
    if view.startswith("large-"):
        view = "large"
    QTimer.singleShot(2500, lambda: open_view(window, view))
    app.exec()
    bridge.shutdown()
    return 0


CEREMONY: list[str] = []


def ceremony_demo(ws: Workstation, view: str) -> str:
    """The root-CA template on a Rehearsal token with three participants: stopped after the
    root key's generation (waiting for the sign-off), or run to the end ("ceremony-done")."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from app.ceremony import script as scripts
    from app.ceremony.runner import Ceremonies
    from app.ceremony.templates import template_dir

    ws.tokens.create_soft_token("Rehearsal", SO_PIN, PIN)
    ws.tokens.login("Rehearsal", PIN)
    work = Path(tempfile.mkdtemp(prefix="keystead-ceremony-"))
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Demo Issuing CA")]))
        .sign(ec.generate_private_key(ec.SECP384R1()), hashes.SHA384())
    )
    (work / "intermediate.csr").write_bytes(request.public_bytes(serialization.Encoding.PEM))
    run = Ceremonies(ws).begin(scripts.load(template_dir() / "root-ca.toml"), "rehearsal", work)
    run.register_operator("witness", "witness", WITNESS_PASS)
    if view == "ceremony-register":
        return run.id
    run.register_external("Eve Example", "Example Audit LLP", "witness")
    run.start()
    if view == "ceremony-history":  # a paused rehearsal and an abandoned one, listed
        run.perform(None)  # type: ignore[arg-type]
        run.pause("paused for the lunch break")
        other = Ceremonies(ws).begin(
            scripts.load(template_dir() / "destroy-key.toml"), "rehearsal", work
        )
        other.abandon("wrong key named in the script; a corrected script is being reviewed")
        return run.id
    steps = len(run.script.steps) if view == "ceremony-done" else 2
    for position in range(steps):
        run.perform(None)  # type: ignore[arg-type]  (the root-CA steps ask for nothing)
        if position < steps - 1 or view == "ceremony-done":
            if position % 2:
                run.sign_off("Eve Example", "Eve Example", None)
            else:
                run.sign_off("witness", "WI", WITNESS_PASS)
    return run.id
CUSTODIANS = ("Alice Chen", "Bob Okafor", "Carol Diaz")
STICK = Path(tempfile.mkdtemp(prefix="keystead-shots-stick-"))  # demo target directory
DEMO_SHARES: list[str] = []


def backup_demo(ws: Workstation, view: str) -> None:
    """Backup-able keys, and for the page / verify / restore views one real backup."""
    for name, algorithm in (
        ("vault-master-kek", Algorithm.AES_256),
        ("hsm-export-kek", Algorithm.AES_256),
        ("db-column-key", Algorithm.AES_128),
    ):
        ws.keys.generate("Demo", algorithm, name, Purpose.KEY_WRAPPING, backup_able=True)
    ws.keys.generate("Demo", Algorithm.EC_P256, "code-signing-2027", Purpose.SIGNING, True)
    if view in ("backup-page", "backup-verify", "backup-restore"):
        ws.backup.create(
            STICK,
            "Demo",
            SO_PIN,
            PIN,
            threshold=2,
            custodians=CUSTODIANS,
            deliver=lambda card: DEMO_SHARES.extend(card.share_set.mnemonics),
        )


def backup_view(window, view: str) -> None:  # type: ignore[no-untyped-def]
    import threading

    from app.backup.media import Volume
    from ui.backup_ceremony import BackupCeremony
    from ui.dialogs import backup_wizard as bw

    page = window.backup
    window.show_page(page)
    if view == "backup-page":
        return
    if view in ("backup-verify", "backup-restore"):
        page.backups_table.selectRow(0)
        dialog = page.open_dialog(restore=view == "backup-restore")
        dialog.directory.setText(str(next(STICK.iterdir())))
        dialog.share.setText(DEMO_SHARES[0])
        dialog._take_share()
        dialog.open()
        return
    if view == "backup-writing":  # hold the core half-way through wrapping for the picture
        original = BackupCeremony.progress

        def held(self, stage: str, done: int, total: int) -> None:  # type: ignore[no-untyped-def]
            original(self, stage, done, total)
            if stage == "wrap" and done == max(1, total // 2):
                threading.Event().wait()

        BackupCeremony.progress = held  # type: ignore[method-assign]
    wizard = page.create_backup()
    screen = window.screen().availableGeometry()
    wizard.resize(min(980, screen.width() - 40), min(680, screen.height() - 20))
    wizard.move((screen.width() - wizard.width()) // 2, (screen.height() - wizard.height()) // 2)

    def after(ms: int, fn) -> None:  # type: ignore[no-untyped-def]
        QTimer.singleShot(ms, fn)

    def target() -> None:
        if view == "backup-target":
            demo = Volume(
                "/dev/sdb1",
                "/media/officer/KS-BACKUP-A",
                "vfat",
                "KS-BACKUP-A",
                "3A1F-0C2E",
                7_812_000_000,
                7_998_000_000,
            )
            wizard.target.show_volumes([demo])
            return
        wizard.target.path.setText(str(STICK))
        wizard.next_button.click()
        if view != "backup-keys":
            after(800, protection)

    def protection() -> None:
        wizard.next_button.click()
        p = wizard.protection
        for name in CUSTODIANS:
            p.custodian_name.setText(name)
            p._add()
        p.threshold.setValue(2)
        p.use_passphrase.setChecked(True)
        p.passphrase.setText("demo tulip orbit canyon")
        p.confirm.setText("demo tulip orbit canyon")
        p.so_pin.setText(SO_PIN)
        p.user_pin.setText(PIN)
        if view == "backup-protection":
            return
        wizard.next_button.click()
        if view == "backup-review":
            return
        if view == "backup-approval":
            source = window.approval_source
            window.session.run(lambda ws: setattr(ws.approvals, "source", source))
        else:
            credential = Credential("witness", WITNESS_PASS)
            window.session.run(
                lambda ws: setattr(ws.approvals, "source", ScriptedApprovers([credential]))
            )
        after(300, wizard.next_button.click)
        if view != "backup-approval":
            after(1000, shares)

    def shares() -> None:
        if wizard.shares.handout is None:
            after(300, shares)
            return
        if view == "backup-handover":
            return
        wizard.shares.show_button.click()
        if view == "backup-share":
            return
        wizard.shares.done_button.click()
        if wizard.step() == bw.SHARES:
            after(100, shares)

    after(1500, target)


def select(window, name: str) -> None:  # type: ignore[no-untyped-def]
    inventory = window.inventory
    for row in range(inventory.model.rowCount()):
        item = inventory.model.item_at(row)
        if item is not None and item.name == name:
            inventory.table.selectRow(row)
            return


LARGE = 20_000


def hold_forever() -> None:
    """Stands for a whole-inventory load that has not finished (large-loading)."""
    import threading

    threading.Event().wait()


def open_view(window, view: str) -> None:  # type: ignore[no-untyped-def]
    pages = {
        "overview": getattr(window, "overview", None),
        "inventory": window.inventory,
        "tokens": window.tokens,
        "audit": window.audit,
        "audit-verified": window.audit,
    }
    if view.startswith("backup"):
        backup_view(window, view)
        return
    if view == "large":  # the first keys by name shown, or every key
        window.show_page(window.inventory)
        window.inventory.table.selectRow(2)
        return
    if view in pages and pages[view] is not None:
        window.show_page(pages[view])
        if view == "inventory":
            select(window, "release-signing")
        if view == "audit-verified":
            window.audit.verify()
        if view == "tokens":
            window.tokens.tree.setCurrentItem(window.tokens._items()[-1])
        return
    if view.startswith("ceremony"):
        from ui.pages.ceremony_page import _snapshot

        page = window.ceremony
        window.show_page(page)
        if view == "ceremony-history":  # nothing open: the list, the paused one chosen
            page.reload_history()
            QTimer.singleShot(1500, lambda: page.history.selectRow(1))
            return
        ident = CEREMONY[0]
        page.session.run(lambda ws: _snapshot(ws, ident), page._shown)
        return
    window.show_page(window.inventory)
    actions = window.inventory.lifecycle
    target = {
        "destroy": ("release-signing-v2", lambda: actions.transitions[Action.DESTROY].trigger()),
        "compromise": (
            "payments-kek-2026",
            lambda: actions.transitions[Action.COMPROMISE].trigger(),
        ),
        "suspend": ("payments-kek-2026", lambda: actions.transitions[Action.SUSPEND].trigger()),
        "seal": ("payments-kek-2026", lambda: seal(window)),
        "rotate": ("payments-kek-2026", lambda: actions.rotate.trigger()),
        "successor": ("release-signing-v2", lambda: actions.transitions[Action.ACTIVATE].trigger()),
        "edit": ("payments-kek-2026", lambda: actions.edit.trigger()),
        "history": ("partner-tls", lambda: window.inventory.detail.tabs.setCurrentIndex(1)),
        "adopt": ("partner-import-key", lambda: window.inventory.adopt_action.trigger()),
        "adopted": ("partner-import-key", lambda: adopt_it(window)),
        "init-token": ("", lambda: init_token(window)),
        "remove-module": ("", lambda: remove_module(window)),
        "login": ("", lambda: window.banner.log_in()),
        "backoff": ("", lambda: backoff(window)),
        "wrap-for": ("payments-zmk", lambda: window.inventory.use.open("wrap-for")),
        "import-wrapped": ("", lambda: window.inventory.use.open("import-wrapped")),
        "import-public": ("", lambda: window.inventory.use.open("import-public")),
        "distribution": ("payments-zmk", lambda: None),
        "use-menu": ("payments-zmk", lambda: use_menu(window)),
        "use-menu-auditor": ("payments-zmk", lambda: use_menu(window, auditor=True)),
    }[view]
    if target[0]:
        select(window, target[0])
    QTimer.singleShot(800, target[1])


def adopt_it(window) -> None:  # type: ignore[no-untyped-def]
    """Open Adopt, tick the acknowledgement and adopt: the panel then shows the managed key."""
    page = window.inventory
    page.adopt_action.trigger()

    def confirm() -> None:
        dialog = getattr(page, "adopt_dialog", None)
        if dialog is None:
            QTimer.singleShot(300, confirm)
            return
        if dialog.exposure_box is not None:
            dialog.exposure_box.setChecked(True)
        dialog.ok_button.click()

    QTimer.singleShot(1500, confirm)


def use_menu(window, auditor: bool = False) -> None:  # type: ignore[no-untyped-def]
    """The Use menu opened under its button (as an auditor: the role gate's tooltips)."""
    if auditor:
        from app.domain.roles import Role

        window.session.gate.set_roles(frozenset({Role.AUDITOR}))
        window.inventory.use.set_key(window.inventory.use.key)
    button = window.inventory.use.button
    window.inventory.use.menu.popup(button.mapToGlobal(button.rect().bottomLeft()))


def seal(window) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QApplication as App

    for widget in App.topLevelWidgets():  # the PIN asked at start: declined for this view
        if widget.isVisible() and widget is not window:
            widget.close()
    actions = window.inventory.lifecycle
    actions.transitions[Action.SUSPEND].trigger()
    dialog = actions.dialog
    dialog.reason.setPlainText("HSM maintenance window, ticket CHG-4411")
    QTimer.singleShot(300, dialog.ok_button.click)


def init_token(window) -> None:  # type: ignore[no-untyped-def]
    from app.services.token_admin import InitImpact
    from ui.dialogs.token_admin import InitTokenDialog

    status = window.session.tokens[0]
    InitTokenDialog(InitImpact(status.info, (), 2, False, 5), window).open()


def remove_module(window) -> None:  # type: ignore[no-untyped-def]
    from ui.dialogs.token_admin import RemoveAuditModuleDialog

    info = window.session.tokens[0].info
    RemoveAuditModuleDialog(info.module_path, info.label, window).open()


def backoff(window) -> None:  # type: ignore[no-untyped-def]
    from app.services.prompter import SecretKind
    from ui.dialogs.secret import SecretDialog

    dialog = SecretDialog(
        SecretKind.USER_PIN, "Log in to token 'Demo' with its user PIN.", window, on_submit=print
    )
    dialog.open()
    dialog.hold(20, "5 wrong PINs in a row for token 'Demo'. Wait 20 s before the next try.")


if __name__ == "__main__":
    sys.exit(main())
