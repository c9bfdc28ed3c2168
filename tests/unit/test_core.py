"""The core thread, the error hierarchy, and where a workstation keeps its files."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app import errors
from app.paths import HOME_ENV, Home, resolve_home
from app.services.executor import CoreExecutor, assert_core_thread
from tests.conftest import OnCore


def test_jobs_run_on_the_one_named_core_thread(core: CoreExecutor, on_core: OnCore) -> None:
    names = {on_core(lambda: threading.current_thread().name) for _ in range(5)}
    assert len(names) == 1 and next(iter(names)).startswith("keystead-core")
    assert on_core(assert_core_thread) is None  # passes there
    with pytest.raises(RuntimeError, match="keystead-core"):
        assert_core_thread()  # and refuses here, on the test's own thread


def test_an_error_on_the_core_reaches_the_caller(on_core: OnCore) -> None:
    def fail() -> None:
        raise errors.ValidationError("refused on the core")

    with pytest.raises(errors.ValidationError, match="refused on the core"):
        on_core(fail)
    assert on_core(lambda a, b=0: a + b, 2, b=3) == 5  # the thread survives an error


@pytest.mark.parametrize(
    ("error", "base"),
    [
        (errors.WrongPassphrase, errors.AuthenticationError),
        (errors.UnknownOperator, errors.AuthenticationError),
        (errors.PinLocked, errors.AuthenticationError),
        (errors.ModuleLoadError, errors.TokenError),
        (errors.TokenNotPresent, errors.TokenError),
        (errors.TokenRemoved, errors.TokenError),
        (errors.UnsupportedAlgorithm, errors.TokenError),
        (errors.TemplateMismatch, errors.TokenError),
        (errors.WorkstationMissing, errors.StorageError),
        (errors.WorkstationExists, errors.StorageError),
        (errors.DatabaseDamaged, errors.StorageError),
        (errors.DatabaseRolledBack, errors.StorageError),
        (errors.DiskFull, errors.StorageError),
        (errors.ValidationError, errors.KeysteadError),
        (errors.NotFoundError, errors.KeysteadError),
    ],
)
def test_error_hierarchy(error: type[errors.KeysteadError], base: type[Exception]) -> None:
    assert issubclass(error, base) and issubclass(error, errors.KeysteadError)
    instance = error("what happened; what to do")
    assert str(instance) == instance.message == "what happened; what to do"


def test_errors_with_data() -> None:
    assert errors.WrongPin("wrong", failures=2).failures == 2
    assert errors.PinBackoff("wait", retry_after=4.5).retry_after == 4.5
    policy = errors.PolicyError("Refused", rule="dual-control")
    assert policy.rule == "dual-control" and policy.message == "Refused [dual-control]"


def test_home_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(tmp_path / "ks")
    assert home.database == tmp_path / "ks" / "keystead.db"
    assert home.keyslots == tmp_path / "ks" / "keyslots.json"
    assert home.softhsm_conf == tmp_path / "ks" / "softhsm" / "softhsm2.conf"
    assert not home.exists()
    home.ensure()
    assert home.root.stat().st_mode & 0o777 == 0o700
    assert not home.exists()  # an empty directory is not a workstation
    home.keyslots.write_text("{}")
    assert home.exists()
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "from-env"))
    assert resolve_home(None).root == tmp_path / "from-env"
    assert resolve_home(str(tmp_path / "explicit")).root == tmp_path / "explicit"


def test_softhsm_conf_is_written_from_the_home_and_a_foreign_store_is_never_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.errors import StorageError
    from app.hsm import softhsm

    home = Home(tmp_path / "ks")
    home.ensure()
    softhsm.ensure_config(home)
    assert softhsm.configured_tokendir(home.softhsm_conf.read_text()) == str(home.softhsm_tokens)
    foreign = softhsm.config_text(Home(tmp_path / "other")).encode()
    home.softhsm_conf.write_bytes(foreign)
    softhsm.ensure_config(home)  # rewritten from the home
    assert softhsm.configured_tokendir(home.softhsm_conf.read_text()) == str(home.softhsm_tokens)
    home.softhsm_conf.write_bytes(foreign)

    def read_only(path: Path, data: bytes, mode: int = 0o600) -> None:
        raise StorageError(f"Could not write {path}: Read-only file system.")

    monkeypatch.setattr(softhsm, "write_atomic", read_only)
    with pytest.raises(StorageError, match=r"names the token store .*other.* not this home's"):
        softhsm.ensure_config(home)
    home.softhsm_conf.write_bytes(b"directories.tokendir = " + str(home.softhsm_tokens).encode())
    assert softhsm.ensure_config(home) == home.softhsm_conf  # its own store: usable as is
