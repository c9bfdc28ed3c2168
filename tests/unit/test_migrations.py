"""Numbered migrations upgrade a database file saved by schema version 1."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.domain.keys import KeyState, TokenSync, TrustedWrap
from app.paths import Home
from app.services.executor import CoreExecutor
from app.services.workstation import Workstation
from app.storage.migrations import LATEST

V1_HOME = Path(__file__).resolve().parents[1] / "data" / "v1-home"


def test_schema_1_file_is_upgraded_and_keeps_its_records(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    shutil.copytree(V1_HOME, home.root)
    core = CoreExecutor()
    try:

        def open_and_read() -> tuple[int, object]:
            ws = Workstation.unlock(home, "legacy officer", "migration test passphrase")
            try:
                return int(ws.db.scalar("PRAGMA user_version")), ws.keys.resolve("legacy-kek")
            finally:
                ws.lock()

        version, key = core.call(open_and_read)
    finally:
        core.shutdown()
    assert version == LATEST >= 2
    assert key.state is KeyState.PRE_ACTIVE  # type: ignore[attr-defined]
    assert key.kcv == "C0FFEE" and key.tags == ("ops",)  # type: ignore[attr-defined]
    assert key.notes == "saved by schema 1"  # type: ignore[attr-defined]
    assert key.activation_date is None and key.replaced_by is None  # type: ignore[attr-defined]
    assert key.token_sync is TokenSync.OK  # type: ignore[attr-defined]
    # Schema 5: a backup-able key saved before CKA_WRAP_WITH_TRUSTED waits for its token.
    expected = TrustedWrap.PENDING if key.extractable else TrustedWrap.NOT_APPLICABLE  # type: ignore[attr-defined]
    assert key.wrap_trusted is expected  # type: ignore[attr-defined]
    assert (V1_HOME / "keystead.db").read_bytes() != home.database.read_bytes()


def test_migration_numbers_run_one_to_latest_without_gaps_or_repeats() -> None:
    """Two branches once both appended a step numbered 9: a database already at 9 would have
    skipped the second step forever (the exposure column). Numbers must be 1, 2, … LATEST."""
    from app.storage.migrations import MIGRATIONS

    numbers = [version for version, _ in MIGRATIONS]
    assert numbers == list(range(1, len(numbers) + 1))
    assert numbers[-1] == LATEST
