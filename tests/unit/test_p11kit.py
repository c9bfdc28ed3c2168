"""PKCS#11 modules registered with p11-kit: module files in temporary directories laid out as
p11-kit's user, system and package directories, and once the machine's own."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.hsm.p11kit import (
    PACKAGE_DIR,
    MalformedConfig,
    RegisteredModule,
    parse_config,
    registered_modules,
    resolve_module,
)
from app.hsm.softhsm import find_softhsm_module


class Layout:
    """user/, system/, package/ module file directories and a lib/ module directory."""

    def __init__(self, root: Path) -> None:
        self.user, self.system, self.package = (root / n for n in ("user", "system", "package"))
        self.lib = root / "lib"
        for directory in (self.user, self.system, self.package, self.lib):
            directory.mkdir()

    def library(self, name: str) -> Path:
        path = self.lib / name
        path.write_bytes(b"\x7fELF fake")
        return path

    @property
    def dirs(self) -> list[Path]:
        return [self.user, self.system, self.package]

    def modules(self) -> list[RegisteredModule]:
        return registered_modules(self.dirs, module_dirs=[self.lib])


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path)


def test_good_commented_and_relative_files(layout: Layout) -> None:
    absolute = layout.library("libgood.so")
    layout.library("librel.so")
    (layout.package / "good.module").write_text(f"module: {absolute}\n")
    (layout.package / "commented.module").write_text(
        "# This file describes how to load the module\n"
        "\n"
        "   # an indented comment\n"
        "module:    librel.so   \n"
        "critical: no\n"
    )
    (layout.package / "missing.module").write_text("module: libgone.so\n")
    assert layout.modules() == [
        RegisteredModule(
            "commented",
            str(layout.lib / "librel.so"),
            str(layout.package / "commented.module"),
            True,
        ),
        RegisteredModule("good", str(absolute), str(layout.package / "good.module"), True),
        RegisteredModule(
            "missing",
            str(layout.lib / "libgone.so"),
            str(layout.package / "missing.module"),
            False,
        ),
    ]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("module /usr/lib/libx.so\n", "no colon"),
        ("[module]\nmodule: /usr/lib/libx.so\n", "section"),
        ("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n", "PEM"),
        (": /usr/lib/libx.so\n", "empty key"),
    ],
)
def test_a_malformed_file_is_skipped_and_logged(
    layout: Layout, caplog: pytest.LogCaptureFixture, text: str, why: str
) -> None:
    good = layout.library("libgood.so")
    (layout.package / "good.module").write_text(f"module: {good}\n")
    (layout.package / "bad.module").write_text(text)
    with caplog.at_level(logging.WARNING, logger="app.hsm.p11kit"):
        assert [m.name for m in layout.modules()] == ["good"]
    assert "bad.module" in caplog.text and why in caplog.text


def test_undecodable_and_moduleless_files_are_skipped(
    layout: Layout, caplog: pytest.LogCaptureFixture
) -> None:
    (layout.package / "binary.module").write_bytes(b"module: /usr/lib/\xff\xfe.so\n")
    (layout.package / "empty.module").write_text("# nothing here\n")
    (layout.package / "blank.module").write_text("module:\n")
    with caplog.at_level(logging.WARNING, logger="app.hsm.p11kit"):
        assert layout.modules() == []
    assert "binary.module" in caplog.text
    assert "empty names no module" in caplog.text and "blank names no module" in caplog.text


def test_only_module_files_with_p11kit_names_are_read(layout: Layout) -> None:
    lib = layout.library("libx.so")
    for name in ("README", "x.module~", ".hidden.module", "x.module.dpkg-old", "x.conf"):
        (layout.package / name).write_text(f"module: {lib}\n")
    (layout.package / "sub.module").mkdir()
    assert layout.modules() == []


def test_one_library_registered_twice_is_listed_once(layout: Layout) -> None:
    lib = layout.library("libtwice.so")
    (layout.lib / "libalias.so").symlink_to(lib)
    (layout.package / "a-first.module").write_text(f"module: {lib}\n")
    (layout.package / "b-alias.module").write_text("module: libalias.so\n")
    (layout.system / "c-again.module").write_text(f"module: {layout.lib}/../lib/libtwice.so\n")
    [only] = layout.modules()
    assert (only.name, only.path) == ("a-first", str(lib))


def test_user_then_system_then_package_for_one_name(layout: Layout) -> None:
    user_lib, system_lib, package_lib = (layout.library(f"lib{n}.so") for n in "usp")
    (layout.package / "m.module").write_text(f"module: {package_lib}\nenable-in: firefox\n")
    (layout.system / "m.module").write_text(f"module: {system_lib}\n")
    (layout.user / "m.module").write_text(f"module: {user_lib}\n")
    (layout.package / "n.module").write_text(f"module: {package_lib}\n")
    (layout.user / "n.module").write_text("disable-in: p11-kit-proxy, seahorse\n")
    modules = {m.name: m for m in layout.modules()}
    # The user's m wins; the package's enable-in fills in the key the user file lacks.
    assert modules["m"].path == str(user_lib)
    assert modules["m"].config_file == str(layout.user / "m.module")
    assert modules["m"].enable_in == ("firefox",)
    # n: the user file only adds disable-in; the module comes from the package file.
    assert modules["n"].path == str(package_lib)
    assert modules["n"].config_file == str(layout.package / "n.module")
    assert modules["n"].disable_in == ("p11-kit-proxy", "seahorse")


def test_missing_directories_are_ignored(tmp_path: Path) -> None:
    assert registered_modules([tmp_path / "nope", tmp_path / "file"]) == []
    (tmp_path / "file").write_text("not a directory")
    assert registered_modules([tmp_path / "file"]) == []


def test_parse_config_reads_like_p11kit() -> None:
    assert parse_config("a: 1\n  b :two words \r\n# c: 3\n\na: 4\nd: x: y\ne: /x.so # no\n") == {
        "a": "4",
        "b": "two words",
        "d": "x: y",
        "e": "/x.so # no",  # only whole-line comments, as p11-kit's lexer
    }
    with pytest.raises(MalformedConfig, match="line 2"):
        parse_config("a: 1\nnonsense\n")


def test_relative_module_falls_back_to_the_first_existing_directory(tmp_path: Path) -> None:
    present = tmp_path / "present"
    present.mkdir()
    assert resolve_module("libz.so", [tmp_path / "absent", present]) == present / "libz.so"
    assert resolve_module("libz.so", [tmp_path / "absent"]) == tmp_path / "absent" / "libz.so"
    assert resolve_module("/opt/libz.so", [present]) == Path("/opt/libz.so")


def test_the_machine_registers_softhsm() -> None:
    """Debian's softhsm2 package ships /usr/share/p11-kit/modules/softhsm2.module."""
    if not (PACKAGE_DIR / "softhsm2.module").is_file():
        pytest.skip("this distribution's softhsm2 does not register with p11-kit")
    softhsm = find_softhsm_module()
    assert softhsm is not None
    modules = {m.name: m for m in registered_modules()}
    entry = modules["softhsm2"]
    assert entry.exists
    assert entry.config_file == str(PACKAGE_DIR / "softhsm2.module")
    assert Path(entry.path) == Path(softhsm).resolve()
