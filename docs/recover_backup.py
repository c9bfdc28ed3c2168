#!/usr/bin/env python3
"""Recover keys from a Keystead backup WITHOUT Keystead (docs/backup-format.md).

Needs only Python 3.11+, ``cryptography`` and ``shamir-mnemonic``:

    python3 recover_backup.py BACKUP_DIR --out OUT_DIR [--shares-file FILE | --passphrase]

Without --shares-file the custodians type their shares (not echoed), one per prompt, an empty
line ending the list. The script checks the manifest's signature and every file's size and
SHA-256, recovers the KEK and checks its check value, decrypts metadata and audit history,
and unwraps every key. It writes into OUT_DIR (created, mode 0700, must not exist):
metadata.json, audit.json, and per key ``<key id>.key``: the raw key value (AES), or the
PKCS#8 PrivateKeyInfo in DER (RSA, EC); handle these files as the key material they are. It
prints the signing key's fingerprint: compare it with the one on the custodians' share cards.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import json
import os
import sys
from pathlib import Path

import shamir_mnemonic
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

DATA_FILES = ("keys.bin", "metadata.enc", "audit.enc")
ALL_FILES = (*DATA_FILES, "manifest.json", "manifest.sig")
# An AES key's value length by algorithm; every other algorithm is a private key (PKCS#8).
AES_VALUE_LEN = {"AES-128": 16, "AES-192": 24, "AES-256": 32}
INFO = {"metadata.enc": b"keystead-backup-v1 metadata", "audit.enc": b"keystead-backup-v1 audit"}


class Refused(Exception):
    pass


def der_length(data: bytes) -> int:
    """Total length (tag + length octets + content) of the DER SEQUENCE ``data`` starts with."""
    if len(data) < 2 or data[0] != 0x30:
        raise Refused("a private key does not unwrap to a DER SEQUENCE")
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if not 1 <= count <= 4 or len(data) < 2 + count:
        raise Refused("a private key has a malformed DER length")
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def private_key_value(unwrapped: bytes, fingerprint: str | None) -> bytes:
    """The PKCS#8 DER of a private key, cut at its DER length (the token zero-pads it), after
    checking that its public key's SHA-256 (SubjectPublicKeyInfo, DER) is ``fingerprint``."""
    value = unwrapped[: der_length(unwrapped)]
    key = serialization.load_der_private_key(value, password=None)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not fingerprint or hashlib.sha256(spki).hexdigest() != fingerprint.lower():
        raise Refused("a private key does not match its public key fingerprint")
    return value


def key_value(kek: bytes, entry: dict, unwrapped: bytes) -> bytes:
    """One key's value from its unwrapped bytes: the AES key cut to its algorithm's length and
    checked against its KCV, or the PKCS#8 of a private key checked against its fingerprint.
    A manifest from Keystead before 2026-11-30 may give an AES key value_len 0 (the length of
    a restored or imported key was not read from the token): the algorithm decides."""
    secret = AES_VALUE_LEN.get(entry["algorithm"])
    if secret is None:  # RSA / EC: PKCS#8, zero-padded by the token
        if entry["value_len"] != 0:
            raise Refused(f"a {entry['algorithm']} key with a secret value length")
        return private_key_value(unwrapped, entry["fingerprint"])
    if entry["value_len"] not in (0, secret):
        raise Refused(f"an {entry['algorithm']} key with value_len {entry['value_len']}")
    value = unwrapped[:secret]
    if any(unwrapped[secret:]) or len(value) != secret:
        raise Refused(f"an {entry['algorithm']} key does not unwrap to {secret} bytes")
    if not entry["kcv"] or kek_check_value(value) != entry["kcv"].upper():
        raise Refused("the key does not match its KCV")
    return value


def check_files(directory: Path) -> tuple[dict, bytes, dict[str, bytes]]:
    present = sorted(p.name for p in directory.iterdir())
    if sorted(ALL_FILES) != present:
        raise Refused(f"expected exactly {', '.join(ALL_FILES)}; found {', '.join(present)}")
    manifest_bytes = (directory / "manifest.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    if manifest.get("format") != "keystead-backup" or manifest.get("version") != 1:
        raise Refused("not a Keystead backup of format version 1")
    spki = base64.b64decode(manifest["signer_spki"])
    public = serialization.load_der_public_key(spki)
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise Refused("the signing key is not an EC key")
    signature = (directory / "manifest.sig").read_bytes()
    public.verify(signature, manifest_bytes, ec.ECDSA(hashes.SHA256()))  # raises if bad
    data = {}
    for name in DATA_FILES:
        content = (directory / name).read_bytes()
        facts = manifest["files"][name]
        if len(content) != facts["size"] or hashlib.sha256(content).hexdigest() != facts["sha256"]:
            raise Refused(f"{name} does not match the manifest")
        data[name] = content
    return manifest, spki, data


def kek_check_value(kek: bytes) -> str:
    encryptor = Cipher(algorithms.AES(kek), modes.ECB()).encryptor()
    return (encryptor.update(bytes(16)) + encryptor.finalize())[:3].hex().upper()


def recover_kek(manifest: dict, shares: list[str] | None, passphrase: str | None,
                share_passphrase: bytes) -> bytes:
    if shares:
        kek = shamir_mnemonic.combine_mnemonics(shares, share_passphrase)
    elif passphrase is not None:
        slot = manifest["passphrase"]
        derived = Argon2id(
            salt=base64.b64decode(slot["salt"]),
            length=32,
            iterations=slot["iterations"],
            lanes=slot["lanes"],
            memory_cost=slot["memory_kib"],
        ).derive(passphrase.encode("utf-8"))
        kek = aes_key_unwrap_with_padding(derived, base64.b64decode(slot["wrapped_kek"]))
    else:
        raise Refused("give shares or the recovery passphrase")
    if kek_check_value(kek) != manifest["kek_check_value"].upper():
        raise Refused("the KEK's check value differs: wrong shares or share passphrase")
    return kek


def unseal(kek: bytes, backup_id: str, name: str, sealed: bytes) -> bytes:
    salt = bytes.fromhex(backup_id.replace("-", ""))
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=INFO[name]).derive(kek)
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], INFO[name] + salt)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backup", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shares-file", type=Path, help="JSON list of shares, or one per line")
    parser.add_argument("--passphrase", action="store_true", help="use the recovery passphrase")
    args = parser.parse_args()
    try:
        manifest, spki, data = check_files(args.backup)
        print(f"Signature valid; signer fingerprint {hashlib.sha256(spki).hexdigest()}")
        print(f"Backup {manifest['backup_id']}, generation {manifest['generation']}, "
              f"{len(manifest['keys'])} keys, made {manifest['created_at']}")
        shares = None
        passphrase = None
        share_passphrase = b""
        if args.passphrase:
            passphrase = os.environ.get("RECOVERY_PASSPHRASE") or getpass.getpass(
                "Recovery passphrase: ")
        elif args.shares_file:
            text = args.shares_file.read_text(encoding="utf-8")
            try:
                doc = json.loads(text)
                shares = [s["words"] if isinstance(s, dict) else s for s in
                          (doc["shares"] if isinstance(doc, dict) else doc)]
            except ValueError:
                shares = [line.strip() for line in text.splitlines() if line.strip()]
            share_passphrase = os.environ.get("SHARE_PASSPHRASE", "").encode("utf-8")
        else:
            shares = []
            while line := getpass.getpass(f"Share {len(shares) + 1} (empty line ends): "):
                shares.append(line)
            share_passphrase = getpass.getpass("Share passphrase (empty if none): ").encode()
        kek = recover_kek(manifest, shares, passphrase, share_passphrase)
        print(f"KEK recovered; check value {manifest['kek_check_value']} matches")
        metadata = unseal(kek, manifest["backup_id"], "metadata.enc", data["metadata.enc"])
        audit = unseal(kek, manifest["backup_id"], "audit.enc", data["audit.enc"])
        os.mkdir(args.out, 0o700)
        (args.out / "metadata.json").write_bytes(metadata)
        (args.out / "audit.json").write_bytes(audit)
        failed = []
        for entry in manifest["keys"]:  # one bad key never stops the recovery of the others
            wrapped = data["keys.bin"][entry["offset"]: entry["offset"] + entry["wrapped_len"]]
            try:
                value = key_value(kek, entry, aes_key_unwrap_with_padding(kek, wrapped))
            except Exception as exc:  # named per key, then the next key
                reason = str(exc) if isinstance(exc, Refused) else type(exc).__name__
                print(f"NOT RECOVERED: {entry['id']}  {entry['name']}  {entry['algorithm']}: "
                      f"{reason}", file=sys.stderr)
                failed.append(entry["name"])
                continue
            fd = os.open(args.out / f"{entry['id']}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(value)
            check = f"KCV {entry['kcv']}" if entry["kcv"] else f"SHA-256 {entry['fingerprint']}"
            print(f"{entry['id']}  {entry['name']}  {entry['algorithm']}  {check}")
        if failed:
            print(f"refused: {len(failed)} of {len(manifest['keys'])} keys not recovered "
                  f"({', '.join(failed)}); the others are in {args.out}", file=sys.stderr)
            return 1
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a damaged backup: say what failed, never a partial success
        print(f"refused: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
