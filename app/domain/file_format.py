"""Keystead's encrypted-file format, version 1 (docs/file-encryption.md). Pure: no I/O.

A file is a 48-byte header followed by the chunks::

    offset size  field
    0      8     magic "KSTDENC1"
    8      1     version = 1
    9      1     algorithm = 1 (AES-GCM, 96-bit nonce, 128-bit tag; SP 800-38D)
    10     2     reserved = 0
    12     4     chunk size in plaintext bytes, big-endian (1 MiB)
    16     16    key id: the UUID of the Keystead key record (RFC 9562 bytes)
    32     8     nonce prefix: random per file
    40     8     plaintext length in bytes, big-endian

Chunk *i* (0-based) is AES-GCM(key, nonce = prefix ‖ uint32_be(i), AAD = header ‖ uint32_be(i))
over plaintext bytes [i·C, min((i+1)·C, L)), stored as ciphertext ‖ 16-byte tag. A file of
length 0 has one empty chunk (its tag alone), so every file is authenticated. Because the
header — with the total length — is in every chunk's AAD and the index in every nonce, a
changed header, a reordered, dropped, truncated or appended chunk each fail a tag check or the
length check. The nonce is unique per chunk as long as no two files under one key share a
random 64-bit prefix (birthday bound ~2^32 files per key, far above SP 800-38D's 2^32
invocation limit that the usage counter watches).
"""

from __future__ import annotations

import secrets
import struct
import uuid
from dataclasses import dataclass

from app.errors import NotAuthentic

MAGIC = b"KSTDENC1"
VERSION = 1
ALGORITHM_AES_GCM = 1
CHUNK_BYTES = 1024 * 1024
TAG_BYTES = 16
_LAYOUT = struct.Struct(">8sBBHI16s8sQ")


def chunk_count(plaintext_bytes: int) -> int:
    """How many chunks a plaintext of this length has (at least one)."""
    return max(1, -(-plaintext_bytes // CHUNK_BYTES))


def chunk_nonce(prefix: bytes, index: int) -> bytes:
    """The 96-bit GCM nonce of chunk ``index``."""
    return prefix + struct.pack(">I", index)


def chunk_aad(header: bytes, index: int) -> bytes:
    """Additional authenticated data of chunk ``index``: the whole header and the index."""
    return header + struct.pack(">I", index)


@dataclass(frozen=True)
class EncryptedHeader:
    """The parsed header of an encrypted file."""

    key_id: uuid.UUID
    nonce_prefix: bytes
    plaintext_bytes: int
    chunk_bytes: int = CHUNK_BYTES

    SIZE = _LAYOUT.size  # 48

    @classmethod
    def new(cls, key_id: uuid.UUID, plaintext_bytes: int) -> EncryptedHeader:
        if plaintext_bytes >= CHUNK_BYTES * 2**32:
            raise ValueError("file too large for 2^32 chunks")
        return cls(key_id, secrets.token_bytes(8), plaintext_bytes)

    def encode(self) -> bytes:
        return _LAYOUT.pack(
            MAGIC,
            VERSION,
            ALGORITHM_AES_GCM,
            0,
            self.chunk_bytes,
            self.key_id.bytes,
            self.nonce_prefix,
            self.plaintext_bytes,
        )

    @staticmethod
    def sealed_size(plaintext_bytes: int) -> int:
        """Length of the encrypted file for a plaintext of this length."""
        return EncryptedHeader.SIZE + plaintext_bytes + chunk_count(plaintext_bytes) * TAG_BYTES


def parse_header(data: bytes) -> tuple[EncryptedHeader, bytes]:
    """The header and its exact bytes; raises NotAuthentic for anything else."""
    if len(data) < EncryptedHeader.SIZE or not data.startswith(MAGIC):
        raise NotAuthentic(
            "This is not a Keystead-encrypted file (no KSTDENC1 header); nothing was written."
        )
    _magic, version, algorithm, reserved, chunk, key_id, prefix, length = _LAYOUT.unpack(
        data[: EncryptedHeader.SIZE]
    )
    if version != VERSION or algorithm != ALGORITHM_AES_GCM or reserved or chunk != CHUNK_BYTES:
        raise NotAuthentic(
            f"This encrypted file has format version {version}, algorithm {algorithm}; this "
            "Keystead reads version 1 with AES-GCM only. Nothing was written."
        )
    header = EncryptedHeader(uuid.UUID(bytes=key_id), prefix, length, chunk)
    return header, bytes(data[: EncryptedHeader.SIZE])
