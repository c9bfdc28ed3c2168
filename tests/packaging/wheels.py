"""Minimal wheels written by hand (PEP 427), so packaging tests run pip for real with no index.

``write_wheel`` makes ``NAME-VERSION-py3-none-any.whl`` holding one module and the dist-info
files (METADATA, WHEEL, RECORD); ``BACKEND_SOURCE`` is an in-tree PEP 517/660 build backend
that builds such a wheel for an editable install, so a test project needs no setuptools.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def write_wheel(directory: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """Write a pure-Python wheel with ``files`` (archive path → text); return its path."""
    dist_info = f"{name}-{version}.dist-info"
    contents = dict(files)
    contents[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    contents[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: keystead-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [
        f"{path},{_record_hash(text.encode())},{len(text.encode())}"
        for path, text in contents.items()
    ]
    record.append(f"{dist_info}/RECORD,,")
    contents[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in contents.items():
            archive.writestr(member, text)
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


BACKEND_SOURCE = '''
"""In-tree build backend of a test project: an editable wheel whose .pth points here."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from wheels import write_wheel  # noqa: E402
from pathlib import Path  # noqa: E402

NAME, VERSION = "stampdemo", "1.0"


def get_requires_for_build_editable(config_settings=None):
    return []


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    here = os.path.dirname(os.path.abspath(__file__))
    path = write_wheel(Path(wheel_directory), NAME, VERSION, {"stampdemo.pth": here + "\\n"})
    return path.name
'''
