"""The embedded SoftHSM2 file store, made to survive a kill at any instant.

SoftHSM 2.6.1's file object store rewrites a token's files in place: ``ObjectFile::store``
truncates ``token.object`` or ``<uuid>.object`` to zero bytes, then writes the new content
through a stdio buffer that reaches the file only at ``fclose``. ``C_Login`` alone rewrites
``token.object`` (the PIN flags). A SIGKILL or a power cut inside that window leaves the file
empty or cut short, and SoftHSM then drops the whole token (``token.object``) or fails every
listing (a damaged key object). Keystead owns this store (its home, its ``softhsm2.conf``), so it
protects it:

* **Shadow copies.** After every call that can write the store (``Pkcs11Module.wrote``) and at
  open, each token file whose stat changed is read and *verified* (it parses to its end in
  SoftHSM's format and is complete, below); a verified file that differs from its shadow is
  written to ``<home>/softhsm/shadow/<token dir>/<file>`` atomically (temp, fsync, rename, fsync
  the directory). A file deleted by SoftHSM (a destroyed object) loses its shadow.
* **Repair at open**, before ``C_Initialize`` and only while no other Keystead process has the
  store open (an exclusive ``flock`` on ``<home>/softhsm/store.lock``; every process holds it
  shared while its module is initialised): a live file that fails verification is replaced by
  its shadow (atomically), or moved to ``<home>/softhsm/quarantine/`` when it has none (an object
  whose first write was cut short, which no operation reported as done). A missing
  ``token.object`` in a token directory that still exists is restored; other missing files
  are not (SoftHSM deletes a destroyed object's file, and a moved-away token directory is a
  removed token, never re-created from shadows).
* **Complete** means: the file parses exactly to its end; ``token.object`` holds the label,
  serial, flags and SO PIN attributes; a key object holds ``CKA_ALLOWED_MECHANISMS`` and every
  other object ``CKA_DESTROYABLE`` (SoftHSM writes attributes in ascending type order, so the
  last one present proves the rest); and the attribute types are a superset of the shadow's
  (SoftHSM never removes an attribute from an object, so fewer means a cut at an attribute
  boundary). ``token.object`` is exempt from that last rule: re-initialising a token removes its
  user PIN attribute; and it is under 4 KiB, which stdio writes in one piece at ``fclose``, so a
  kill leaves it whole or empty.

Every repair is returned as a ``Repair`` so the caller can record it in the audit log.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app.errors import KeysteadError, TokenStoreConflict
from app.storage.files import write_atomic, write_atomic_many

log = logging.getLogger(__name__)

# SoftHSM's ObjectFile attribute kinds (src/lib/object_store/ObjectFile.h).
_BOOLEAN, _ULONG, _BYTESTR, _ATTRMAP, _MECHSET = 1, 2, 3, 4, 5
_CKA_CLASS = 0x0
_CKA_LABEL = 0x3
_CKA_KEY_TYPE = 0x100
_CKA_ID = 0x102
_CKA_DESTROYABLE = 0x172
_CKA_ALLOWED_MECHANISMS = 0x40000600
_KEY_CLASSES = frozenset({2, 3, 4})  # CKO_PUBLIC_KEY, CKO_PRIVATE_KEY, CKO_SECRET_KEY
_VENDOR_SOFTHSM = 0x80000000 + 0x5348
CKA_OS_TOKENLABEL = _VENDOR_SOFTHSM + 1
CKA_OS_TOKENSERIAL = _VENDOR_SOFTHSM + 2
_TOKEN_REQUIRED = frozenset(
    {_VENDOR_SOFTHSM + 1, _VENDOR_SOFTHSM + 2, _VENDOR_SOFTHSM + 3, _VENDOR_SOFTHSM + 4}
)
TOKEN_OBJECT = "token.object"  # noqa: S105 (a file name)
_ULONG_AT = struct.Struct(">Q").unpack_from
_TWO_ULONGS_AT = struct.Struct(">QQ").unpack_from
_MAX_FILE = 64 * 1024 * 1024  # no SoftHSM object comes near this; a bigger file is not one


@dataclass(frozen=True)
class ObjectFile:
    """A parsed SoftHSM object file: its generation and attributes (type → raw value bytes)."""

    generation: int
    attributes: dict[int, bytes] = field(default_factory=dict)

    @property
    def types(self) -> frozenset[int]:
        return frozenset(self.attributes)


class Damaged(ValueError):
    """The bytes are not a complete SoftHSM object file; ``str`` says how."""


def parse_object_file(data: bytes) -> ObjectFile:
    """Parse SoftHSM 2.6's object file format (big-endian 8-byte integers: generation, then
    per attribute its type, its kind and its value). Raises ``Damaged``.

    Runs over every object file of a token at each open (``FileStore.repair``), so it is one
    loop with no helper calls: 10,000 objects are ~750,000 attribute headers."""
    if not data:
        raise Damaged("empty")
    end = len(data)
    if end < 8:
        raise Damaged("truncated")
    generation: int = _ULONG_AT(data, 0)[0]
    pos = 8
    attributes: dict[int, bytes] = {}
    while pos < end:
        kind_at = pos
        if pos + 16 > end:  # the attribute's type and kind
            raise Damaged("truncated")
        kind_type, kind = _TWO_ULONGS_AT(data, pos)
        pos += 16
        if kind == _BOOLEAN:
            size = 1
        elif kind == _ULONG:
            size = 8
        elif kind in (_BYTESTR, _ATTRMAP, _MECHSET):
            if pos + 8 > end:  # the value's length (bytes, or mechanisms for a set)
                raise Damaged("truncated")
            count: int = _ULONG_AT(data, pos)[0]
            pos += 8
            if kind == _MECHSET and count > end:
                raise Damaged("truncated")
            size = 8 * count if kind == _MECHSET else count
        else:
            raise Damaged(f"unreadable (attribute kind {kind} at byte {kind_at})")
        if size > end - pos:
            raise Damaged("truncated")
        attributes[kind_type] = data[pos : pos + size]
        pos += size
    return ObjectFile(generation, attributes)


def verify_object_file(
    data: bytes, name: str, shadow_types: frozenset[int] | None = None
) -> ObjectFile:
    """Parse and check that the file is complete (see the module text). Raises ``Damaged``."""
    parsed = parse_object_file(data)
    types = parsed.types
    if name == TOKEN_OBJECT:
        if not types >= _TOKEN_REQUIRED:
            raise Damaged("truncated (token attributes missing)")
    else:
        raw_class = parsed.attributes.get(_CKA_CLASS)
        if raw_class is None or len(raw_class) != 8:
            raise Damaged("truncated (no object class)")
        last = (
            _CKA_ALLOWED_MECHANISMS
            if int.from_bytes(raw_class, "big") in _KEY_CLASSES
            else _CKA_DESTROYABLE
        )
        if last not in types:
            raise Damaged("truncated (attributes missing)")
    if name != TOKEN_OBJECT and shadow_types is not None and not shadow_types <= types:
        raise Damaged("truncated (fewer attributes than its last good copy)")
    return parsed


@dataclass(frozen=True)
class Repair:
    """One file put right at open. ``action``: restored (from its shadow), quarantined (no good
    copy; moved aside), unrepairable (damaged and no copy; left as found)."""

    token_dir: str
    file: str
    action: str
    fault: str
    serial: str = ""
    label: str = ""

    def details(self) -> dict[str, str]:
        return {
            "token_dir": self.token_dir,
            "file": self.file,
            "repair": self.action,
            "fault": self.fault,
            "label": self.label,
        }


def _read(path: Path | str) -> bytes | None:
    """The file's bytes (at most ``_MAX_FILE`` + 1 of them); None if it does not exist.

    Read in chunks of the file's size (usually one read, then the end): a single
    ``read(_MAX_FILE + 1)`` made Python allocate 64 MiB for every small object file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    try:
        chunk_size = min(os.fstat(fd).st_size + 1, _MAX_FILE + 1)
        chunks: list[bytes] = []
        total = 0
        while total <= _MAX_FILE:
            chunk = os.read(fd, min(chunk_size, _MAX_FILE + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    except OSError as exc:  # a directory in a file's place (EISDIR), an I/O error
        raise _unreadable(path, exc) from exc
    finally:
        os.close(fd)


def _holds_objects(directory: Path) -> bool:
    """True when ``directory`` holds a ``.object`` file (or cannot be listed: then it is
    checked, and the check says what is wrong)."""
    try:
        with os.scandir(directory) as entries:
            return any(e.name.endswith(".object") for e in entries)
    except OSError:
        return True


def _unreadable(path: Path | str, exc: OSError) -> TokenStoreConflict:
    """The refusal for a token store file that exists but cannot be read: named, with what to
    do. Keystead neither quarantines nor rewrites it (its owner or permissions may simply be
    wrong, e.g. after ``sudo pkcs11-tool``), and nothing starts until it is readable."""
    return TokenStoreConflict(
        f"The embedded token store file {path} cannot be read ({exc.strerror or exc}). "
        "Give it back to the user Keystead runs as (owner and permissions, as its neighbours "
        "have), or move it out of the store if it does not belong there; nothing was changed."
    )


def _read_quietly(path: Path) -> bytes | None:
    """``_read``, with a file that cannot be read (permissions, a directory) as None."""
    try:
        return _read(path)
    except TokenStoreConflict:
        return None


def token_identity(data: bytes | None) -> tuple[str, str]:
    """(serial, label) read from ``token.object`` bytes; empty strings when unreadable."""
    if not data:
        return "", ""
    try:
        parsed = parse_object_file(data)
    except Damaged:
        return "", ""
    serial = parsed.attributes.get(CKA_OS_TOKENSERIAL, b"")
    label = parsed.attributes.get(CKA_OS_TOKENLABEL, b"")
    return (
        serial.decode("ascii", "replace").strip(),
        label.decode("utf-8", "replace").strip(),
    )


class FileStore:
    """The shadows, the quarantine and the store lock of one embedded token directory."""

    def __init__(self, tokens: Path, shadow: Path, quarantine: Path, lock: Path) -> None:
        self.tokens = tokens
        self.shadow = shadow
        self.quarantine = quarantine
        self.lock_path = lock
        self._lock_fd: int | None = None
        self._seen: dict[str, tuple[int, int, int]] = {}  # live file -> (ino, size, mtime_ns)
        self.read_only = False

    # --- open / close --------------------------------------------------------------------

    def open(self, may_repair: bool = True) -> list[Repair]:
        """Take the store lock; if this process is the only user (and ``may_repair``: SoftHSM
        is not initialised here), repair damaged files. Then bring the shadows up to date.
        Returns what was repaired."""
        repairs: list[Repair] = []
        if self._lock_fd is None:
            self.check_serials()  # before the lock and any repair: refused, nothing changed
            try:
                self.shadow.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise
                self.read_only = True  # a read-only copy: nothing to protect, nothing to write
                log.warning("token store %s is read-only: no shadow copies", self.tokens)
                return repairs
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                alone = False
            try:
                if alone and may_repair:
                    repairs = self.repair()
                fcntl.flock(fd, fcntl.LOCK_SH)  # others may use the store, none may repair it
            except BaseException:
                # A refused or failed repair gives the lock back: kept, the next open in this
                # process (the GUI's next unlock) waited for it for ever.
                os.close(fd)
                raise
            self._lock_fd = fd
        self.sync()
        return repairs

    def close(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
        self._seen.clear()

    def check_serials(self) -> None:
        """Refuse a store SoftHSM 2.6 cannot start with: two token directories whose
        ``token.object`` names one serial (a copied directory). SoftHSM's slot manager then
        fails an assertion and aborts the whole process (SIGABRT) inside ``C_Initialize``, so
        this runs before it. Raises TokenStoreConflict naming both directories; reads only.
        Directories whose ``token.object`` is missing or damaged name no serial (SoftHSM skips
        them; ``repair`` deals with them)."""
        seen: dict[str, Path] = {}
        for directory in self._token_dirs():
            serial, label = token_identity(_read_quietly(directory / TOKEN_OBJECT))
            if not serial:
                continue
            first = seen.setdefault(serial, directory)
            if first is directory:
                continue
            raise TokenStoreConflict(
                f"The embedded token store holds two copies of token '{label}' (serial "
                f"{serial}): {first} and {directory}; SoftHSM cannot start with both. Move the "
                f"one that is a copy out of {self.tokens} (keep it: it may hold keys), then "
                "run the command again. Nothing was changed."
            )

    # --- repair ----------------------------------------------------------------------------

    def _token_dirs(self) -> list[Path]:
        """The token directories to check: every directory in the store, except one holding no
        object file that Keystead never copied (no shadow): it is no token (SoftHSM skips it,
        leaving only its ``generation`` file there), and reporting it wrote a failed repair
        entry at every command (outside tester, attack2 A7). An emptied directory of a token
        Keystead knew still has its shadow and is reported."""
        try:
            found = sorted(p for p in self.tokens.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []
        return [p for p in found if _holds_objects(p) or (self.shadow / p.name).is_dir()]

    def _shadow_of(self, live: Path) -> Path:
        return self.shadow / live.parent.name / live.name

    def _shadow_types(self, live: Path) -> frozenset[int] | None:
        data = _read(self._shadow_of(live))
        if data is None:
            return None
        try:
            return parse_object_file(data).types
        except Damaged:
            return None

    def repair(self) -> list[Repair]:
        """Put every damaged file of every token directory right (caller holds the lock
        exclusively and SoftHSM is not initialised in this process)."""
        repairs: list[Repair] = []
        for directory in self._token_dirs():
            for leftover in directory.glob(".*.tmp"):  # an atomic write of ours, cut short
                leftover.unlink(missing_ok=True)
            with os.scandir(directory) as entries:
                names = {e.name for e in entries if e.name.endswith(".object")}
            shadow_dir = str(self.shadow / directory.name)
            for name in sorted(names | {TOKEN_OBJECT}):
                repair = self._repair_file(directory, name, shadow_dir)
                if repair is not None:
                    repairs.append(repair)
            if repairs:
                serial, label = token_identity(_read(directory / TOKEN_OBJECT))
                repairs = [
                    Repair(r.token_dir, r.file, r.action, r.fault, serial, label)
                    if r.token_dir == directory.name
                    else r
                    for r in repairs
                ]
        for repair in repairs:
            log.warning(
                "token store: %s/%s %s (%s)",
                repair.token_dir,
                repair.file,
                repair.action,
                repair.fault,
            )
        return repairs

    def _repair_file(self, directory: Path, name: str, shadow_dir: str) -> Repair | None:
        # Plain strings: this runs for every object file of every token at each open.
        live_path = os.path.join(directory, name)
        shadow = os.path.join(shadow_dir, name)
        before = _stat_key(live_path)
        data = _read(live_path)
        shadow_data = _read(shadow)
        good_shadow: bytes | None = None
        shadow_types: frozenset[int] | None = None
        if shadow_data is not None:
            try:
                shadow_types = verify_object_file(shadow_data, name).types
                good_shadow = shadow_data
            except Damaged:
                log.error("shadow copy %s is damaged; it is not used", shadow)
        if data is None:
            if name != TOKEN_OBJECT:
                return None  # deleted by SoftHSM: a destroyed object stays destroyed
            fault = "missing"
        elif data == good_shadow:
            # The file is its verified copy byte for byte: the same bytes pass the same
            # checks. The open's sync need not read it again while its stat is unchanged.
            if before is not None and _stat_key(live_path) == before:
                self._seen[live_path] = before
            return None
        else:
            try:
                verify_object_file(data, name, shadow_types)
                return None
            except Damaged as exc:
                fault = str(exc)
        live = Path(live_path)
        token_dir = directory.name
        if good_shadow is not None:
            write_atomic(live, good_shadow)
            return Repair(token_dir, name, "restored", fault)
        if data is None or name == TOKEN_OBJECT:
            return Repair(token_dir, name, "unrepairable", fault)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.quarantine / token_dir / f"{name}.{stamp}"
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(live, target)
        return Repair(token_dir, name, "quarantined", fault)

    # --- what a token directory holds ------------------------------------------------------

    def directory_of(self, serial: str) -> Path | None:
        """The token directory whose ``token.object`` names this serial, or None."""
        for directory in self._token_dirs():
            if token_identity(_read(directory / TOKEN_OBJECT))[0] == serial:
                return directory
        return None

    def object_files(self, serial: str) -> frozenset[str] | None:
        """Names of the object files (not ``token.object``) of the token with this serial;
        None when the store holds no such token."""
        directory = self.directory_of(serial)
        if directory is None:
            return None
        return frozenset(p.name for p in directory.glob("*.object") if p.name != TOKEN_OBJECT)

    def blank_key_files(self, serial: str, key_type: int) -> frozenset[str] | None:
        """Object files of this token holding a key object of ``key_type`` (CKK number) whose
        CKA_ID and CKA_LABEL are empty: the state SoftHSM leaves when ``C_GenerateKey`` /
        ``C_GenerateKeyPair`` stops after creating the object with its defaults (class and key
        type come first) and before the template (ID, label, value) is committed. None when
        the store holds no such token."""
        directory = self.directory_of(serial)
        if directory is None:
            return None
        blank: set[str] = set()
        for path in directory.glob("*.object"):
            if path.name == TOKEN_OBJECT:
                continue
            try:
                attrs = parse_object_file(_read(path) or b"").attributes
            except Damaged:
                continue
            raw_class = attrs.get(_CKA_CLASS, b"")
            raw_type = attrs.get(_CKA_KEY_TYPE, b"")
            if (
                len(raw_class) == 8
                and int.from_bytes(raw_class, "big") in _KEY_CLASSES
                and len(raw_type) == 8
                and int.from_bytes(raw_type, "big") == key_type
                and not attrs.get(_CKA_ID)
                and not attrs.get(_CKA_LABEL)
            ):
                blank.add(path.name)
        return frozenset(blank)

    # --- shadows ---------------------------------------------------------------------------

    def sync(self) -> None:
        """Copy every changed, verified token file to its shadow; drop shadows of deleted
        files. A file that fails verification keeps its last good shadow."""
        if self.read_only or self._lock_fd is None:
            return
        try:
            self._sync()
        except (OSError, KeysteadError) as exc:
            # The live store is untouched; the next sync tries again. Logged, never silent.
            log.error("token store shadow copies not updated: %s", exc)

    def sync_token_objects(self) -> None:
        """``sync`` for each token's ``token.object`` alone: after C_Login, which rewrites that
        file (the PIN flags) and no other. The other files keep their known state; the next
        full ``sync`` looks at them again."""
        if self.read_only or self._lock_fd is None:
            return
        try:
            for directory in self._token_dirs():
                path = directory / TOKEN_OBJECT
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
                if self._seen.get(str(path)) != key:
                    self._copy(path)
                    self._seen[str(path)] = key
        except (OSError, KeysteadError) as exc:
            log.error("token store shadow copies not updated: %s", exc)

    def _sync(self) -> None:
        # Runs after every token write, over every object file: plain strings and scandir
        # (no Path per file), so a login on a token of 10,000 objects stays a stat per file.
        seen_now: dict[str, tuple[int, int, int]] = {}
        seen = self._seen
        # Changed files are copied in one batch: one fsync per file and one per directory
        # (a restore of 11,000 keys made 22,000 fsyncs one file at a time).
        copies: list[tuple[Path, bytes]] = []
        for directory in self._token_dirs():
            live_names: set[str] = set()
            with os.scandir(directory) as entries:
                for entry in entries:
                    if not entry.name.endswith(".object") or not entry.is_file():
                        continue
                    live_names.add(entry.name)
                    stat = entry.stat()
                    key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
                    seen_now[entry.path] = key
                    if seen.get(entry.path) != key:
                        copy = self._shadow_update(Path(entry.path))
                        if copy is not None:
                            copies.append(copy)
            shadow_dir = self.shadow / directory.name
            if shadow_dir.is_dir() and (directory / TOKEN_OBJECT).exists():
                with os.scandir(shadow_dir) as shadows:
                    stale = [
                        e.path
                        for e in shadows
                        if e.name.endswith(".object") and e.name not in live_names
                    ]
                for path in stale:
                    Path(path).unlink(missing_ok=True)
        write_atomic_many(copies)
        self._seen = seen_now

    def _copy(self, live: Path) -> None:
        copy = self._shadow_update(live)
        if copy is not None:
            write_atomic(*copy)

    def _shadow_update(self, live: Path) -> tuple[Path, bytes] | None:
        """(shadow path, content) when ``live`` differs from its shadow and verifies as a
        complete file; None otherwise (a file that fails verification keeps its old shadow)."""
        data = _read(live)
        if data is None:
            return None
        shadow = self._shadow_of(live)
        old = _read(shadow)
        if old == data:
            return None
        try:
            verify_object_file(data, live.name, None if old is None else _types_or_none(old))
        except Damaged as exc:
            log.warning("token file %s not copied: %s", live, exc)
            return None
        shadow.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return shadow, data


def _stat_key(path: str) -> tuple[int, int, int] | None:
    """(inode, size, mtime in ns) of a file, as ``FileStore._seen`` keeps them; None if gone."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _types_or_none(data: bytes) -> frozenset[int] | None:
    try:
        return parse_object_file(data).types
    except Damaged:
        return None
