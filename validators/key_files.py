"""What ``ferry keys show|import|export|rotate`` do to validator key files.

Owns: public identities of key files, export under another passphrase, import from raw key files
or from an export, and rotation (new keys in place, the old file kept as ``<file>.<UTC
time>.retired``). Built on the keystore format and its atomic 0600 writes
(`validators.keystore`).

Must not print, prompt or log a secret, nor write a private key unencrypted: every file written
here is an encrypted keystore (Argon2id + XSalsa20-Poly1305), production KDF unless a caller
passes another. Passphrases come from the caller (the CLI reads the environment or a prompt).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from adapters.errors import InvalidAddress, KeystoreError
from validators.attestation import parse_hex
from validators.key_signer import KeySigner
from validators.keystore import (
    FORMAT,
    PRODUCTION_KDF,
    KdfParams,
    ValidatorKeys,
    import_keystore,
    load_keystore,
    save_keystore,
    write_private_file,
)

logger = logging.getLogger(__name__)

_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def public_identity(keys: KeySigner) -> dict[str, str]:
    """The public keys an operator registers in the validator set.

    Returns:
        ``{"ed25519": "0x<32 B>", "evm_address": "0x<20 B>", "secp256k1_pubkey": "<33 B hex>"}``
        (the ``secp256k1_pubkey`` is unprefixed, as ``[[bitcoin]] validator_pubkeys`` takes it).
    """
    return {"ed25519": keys.ed25519_public_hex, "evm_address": keys.evm_address,
            "secp256k1_pubkey": keys.secp256k1_public.hex()}


def read_public_fields(path: Path) -> dict[str, str] | None:
    """The public identity a keystore file states, without decrypting it; None when the file
    lacks one of the three (files written before ``secp256k1_public`` was stored).

    SECURITY: unverified; only `load_keystore` checks the fields against the secrets.

    Raises:
        KeystoreError: unreadable, not a Ferry keystore, or a malformed public field.
    """
    try:
        doc = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeystoreError(f"corrupt keystore {path}: not JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeystoreError(f"{path} is not a Ferry validator keystore")
    fields = {name: doc.get(name) for name in ("ed25519_public", "evm_address",
                                               "secp256k1_public")}
    if any(not isinstance(v, str) for v in fields.values()):
        return None
    try:
        return {"ed25519": "0x" + parse_hex(str(fields["ed25519_public"]), 32).hex(),
                "evm_address": "0x" + parse_hex(str(fields["evm_address"]), 20).hex(),
                "secp256k1_pubkey": parse_hex(str(fields["secp256k1_public"]), 33).hex()}
    except InvalidAddress as exc:
        raise KeystoreError(f"corrupt keystore {path}: bad public field") from exc


def show(path: Path, passphrase: Callable[[], str], *, verify: bool = False) -> dict[str, object]:
    """Public identity of the key file `path`.

    Args:
        passphrase: asked only when needed: `verify`, or a file without all public fields.
        verify: decrypt and check the public fields against the keys.

    Returns:
        `public_identity` plus ``keystore`` (the path) and ``verified`` (whether it was
        decrypted).

    Raises:
        KeystoreError: unreadable or corrupt file, or a wrong passphrase.
    """
    fields = read_public_fields(path)
    if fields is not None and not verify:
        return {"keystore": str(path), **fields, "verified": False}
    keys = load_keystore(path, passphrase())
    return {"keystore": str(path), **public_identity(keys), "verified": True}


def read_secret_file(path: Path, what: str) -> bytes:
    """A 32-byte secret from `path`: 64 hex digits (optional ``0x``, surrounding whitespace
    ignored) or exactly 32 raw bytes.

    Raises:
        KeystoreError: unreadable, or neither form. The content is never echoed.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise KeystoreError(f"cannot read {what} file {path}: {exc.strerror}") from exc
    text = raw.strip()
    if _HEX_KEY.match(text.decode("ascii", errors="replace")):
        return bytes.fromhex(text.decode()[-64:])
    if len(raw) == 32:
        return raw
    raise KeystoreError(f"{what} file {path} must hold 32 bytes: 64 hex digits or 32 raw bytes")


def import_raw(out: Path, passphrase: str, *, ed25519_seed_file: Path,
               secp256k1_key_file: Path, kdf: KdfParams = PRODUCTION_KDF) -> ValidatorKeys:
    """Encrypt raw keys read from two files into the new keystore `out`.

    Raises:
        KeystoreError: a bad key file, `out` exists, or an empty passphrase.
    """
    return import_keystore(out, passphrase,
                           ed25519_seed=read_secret_file(ed25519_seed_file, "ed25519 seed"),
                           secp256k1_key=read_secret_file(secp256k1_key_file, "secp256k1 key"),
                           kdf=kdf)


def reencrypt(source: Path, source_passphrase: str, out: Path, out_passphrase: str, *,
              kdf: KdfParams = PRODUCTION_KDF) -> ValidatorKeys:
    """Decrypt `source` and write its keys to the new keystore `out` under `out_passphrase`:
    an export (operational file -> export file) or an import of an export (the reverse).

    Raises:
        KeystoreError: wrong passphrase, `out` exists, or the two passphrases are equal (an
            export must not share the passphrase of the file it leaves).
    """
    if secrets.compare_digest(source_passphrase.encode(), out_passphrase.encode()):
        raise KeystoreError("the new file's passphrase must differ from the source file's")
    keys = load_keystore(source, source_passphrase)
    save_keystore(out, keys, out_passphrase, kdf=kdf)
    logger.info("re-encrypted validator keystore from=%s to=%s validator=%s", source, out,
                keys.ed25519_public_hex)
    return keys


def retired_path(path: Path, now: datetime) -> Path:
    """``<path>.<UTC time, YYYYmmddTHHMMSSZ>.retired``; if that file exists already (a second
    rotation within the same second), ``<path>.<time>.<n>.retired`` with the first free n >= 2."""
    stamp = f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    candidate = path.with_name(f"{path.name}.{stamp}.retired")
    n = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.{stamp}.{n}.retired")
        n += 1
    return candidate


def rotate(path: Path, passphrase: str, *, now: datetime, new_passphrase: str | None = None,
           kdf: KdfParams = PRODUCTION_KDF) -> tuple[ValidatorKeys, ValidatorKeys, Path]:
    """Replace the keys in `path` with fresh ones, keeping the old file.

    Steps: decrypt `path` (proves the passphrase and the file); copy its exact bytes to
    `retired_path` (new file, 0600, atomic: the old keys stay encrypted as they were); write
    fresh keys to `path` (atomic replace). A crash between the steps leaves the old keys in
    `path`, the retired copy, or both; never neither.

    Args:
        path: the keystore to rotate.
        passphrase: its passphrase.
        now: the rotation time (names the retired file).
        new_passphrase: passphrase of the new keys (default: `passphrase`).
        kdf: Argon2id costs of the new file.

    Returns:
        (old keys, new keys, retired file).

    Raises:
        KeystoreError: wrong passphrase, corrupt file, or the retired file already exists.
    """
    path = Path(path)
    original = _read(path)
    old = load_keystore(path, passphrase)
    retired = retired_path(path, now)
    write_private_file(retired, original, overwrite=False)
    new = ValidatorKeys.generate()
    save_keystore(path, new, new_passphrase or passphrase, kdf=kdf, overwrite=True)
    logger.info("rotated validator keystore path=%s old=%s new=%s retired=%s", path,
                old.ed25519_public_hex, new.ed25519_public_hex, retired)
    return old, new, retired


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc.strerror}") from exc
