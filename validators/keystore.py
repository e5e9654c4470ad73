"""A validator's two private keys, encrypted at rest under a passphrase.

Owns: the keystore file format, its encryption, and `ValidatorKeys`, the only object that holds
a validator's secrets in memory. Must not touch the network, decide what to sign, or ever put a
secret into a log line, an exception message or a ``repr``.

File format (Ferry validator keystore, version 1). One UTF-8 JSON object per validator::

    {
      "format": "ferry-validator-keystore",
      "version": 1,
      "ed25519_public": "0x<32 B>",          # informational; checked against the secret on load
      "evm_address": "0x<20 B>",             # informational; checked against the secret on load
      "secp256k1_public": "0x<33 B SEC1>",   # informational (absent in older files); checked
      "kdf": {"name": "argon2id", "version": 19, "salt": "0x<16 B>",
              "time_cost": 3, "memory_cost_kib": 65536, "parallelism": 4},
      "cipher": {"name": "xsalsa20-poly1305", "nonce": "0x<24 B>"},
      "ciphertext": "0x<64 B plaintext + 16 B Poly1305 tag>"
    }

- Key derivation: Argon2id (RFC 9106, version 0x13) via argon2-cffi ``hash_secret_raw`` over the
  UTF-8 passphrase and the random salt, 32-byte output. All parameters live in the file so they
  can be raised later without breaking old files.
- Encryption: XSalsa20-Poly1305 (NaCl ``crypto_secretbox``, PyNaCl ``SecretBox``) with a random
  24-byte nonce. A wrong passphrase, a changed KDF parameter or salt, or any flipped ciphertext
  bit fails authentication.
- Plaintext (64 bytes): ``ed25519_seed (32 B, RFC 8032) || secp256k1_private_key (32 B)``.
- Production KDF defaults (`PRODUCTION_KDF`): RFC 9106 section 4 "second recommended option":
  ``time_cost`` (ops limit) 3 passes, ``memory_cost`` 64 MiB (65536 KiB), parallelism 4. Unlocking
  costs about 0.1-0.3 s and 64 MiB once at start. Tests pass a cheap `KdfParams` explicitly.
- The public fields let `ferry keys show` print a file's identity without its passphrase; they
  are not trusted: `load_keystore` refuses a file whose public fields disagree with its secrets.
- Files are written atomically (temp file in the same directory, ``fsync``, ``os.replace``) and
  created with mode 0600.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import nacl.exceptions
import nacl.secret
from argon2.exceptions import HashingError
from argon2.low_level import ARGON2_VERSION, Type, hash_secret_raw
from coincurve import PrivateKey as CoincurvePrivateKey
from nacl.signing import SigningKey

from adapters.errors import InvalidAddress, InvalidSignature, KeystoreError
from validators.attestation import ValidatorInfo, parse_hex
from validators.eip712 import SECP256K1_N, address_of, sign_digest

logger = logging.getLogger(__name__)

FORMAT = "ferry-validator-keystore"
VERSION = 1
SALT_BYTES = 16
SEED_BYTES = 32
# Upper bounds accepted when *loading*, so a hostile file cannot make us allocate unbounded
# memory or spin for hours before failing.
MAX_MEMORY_COST_KIB = 4 * 1024 * 1024  # 4 GiB
MAX_TIME_COST = 64
MAX_PARALLELISM = 64


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost parameters (RFC 9106).

    Attributes:
        time_cost: number of passes over memory (the "ops limit"), >= 1.
        memory_cost_kib: memory in KiB (the "mem limit"), >= 8 * parallelism.
        parallelism: lanes, >= 1.
    """

    time_cost: int
    memory_cost_kib: int
    parallelism: int

    def check(self) -> None:
        """Raises KeystoreError if a parameter is out of the accepted range."""
        if not 1 <= self.time_cost <= MAX_TIME_COST:
            raise KeystoreError(f"argon2id time_cost {self.time_cost} out of range")
        if not 1 <= self.parallelism <= MAX_PARALLELISM:
            raise KeystoreError(f"argon2id parallelism {self.parallelism} out of range")
        if not 8 * self.parallelism <= self.memory_cost_kib <= MAX_MEMORY_COST_KIB:
            raise KeystoreError(f"argon2id memory_cost_kib {self.memory_cost_kib} out of range")


PRODUCTION_KDF = KdfParams(time_cost=3, memory_cost_kib=64 * 1024, parallelism=4)


class ValidatorKeys:
    """A validator's Ed25519 key (ledger attestations) and secp256k1 key (EVM releases).

    SECURITY: holds private keys. Its ``repr`` shows public identities only, it refuses to be
    pickled, and no method returns a private key. Callers decide *what* to sign
    (`validators.signer`); this class only signs.
    """

    __slots__ = ("_ed25519", "_evm_address", "_secp256k1")

    def __init__(self, ed25519_seed: bytes, secp256k1_key: bytes) -> None:
        """Build from raw secrets.

        Args:
            ed25519_seed: 32-byte Ed25519 seed (RFC 8032 private key).
            secp256k1_key: 32-byte big-endian secp256k1 scalar in [1, n-1].

        Raises:
            KeystoreError: wrong length or out-of-range scalar (the value is never echoed).
        """
        if len(ed25519_seed) != SEED_BYTES:
            raise KeystoreError("ed25519 seed must be 32 bytes")
        if len(secp256k1_key) != 32 or not 0 < int.from_bytes(secp256k1_key, "big") < SECP256K1_N:
            raise KeystoreError("secp256k1 private key must be 32 bytes in [1, n-1]")
        self._ed25519 = SigningKey(bytes(ed25519_seed))
        self._secp256k1 = bytes(secp256k1_key)
        self._evm_address = address_of(self._secp256k1)

    @classmethod
    def generate(cls) -> ValidatorKeys:
        """Fresh random keys from the OS CSPRNG."""
        while True:
            secp = secrets.token_bytes(32)
            if 0 < int.from_bytes(secp, "big") < SECP256K1_N:
                return cls(secrets.token_bytes(SEED_BYTES), secp)

    @property
    def ed25519_public(self) -> bytes:
        """32-byte Ed25519 public key."""
        return bytes(self._ed25519.verify_key)

    @property
    def ed25519_public_hex(self) -> str:
        """Ed25519 public key as lowercase ``0x`` hex (the ledger/relayer validator id)."""
        return "0x" + self.ed25519_public.hex()

    @property
    def evm_address(self) -> str:
        """Lowercase ``0x`` address of the secp256k1 key."""
        return self._evm_address

    @property
    def info(self) -> ValidatorInfo:
        """Public identity, as it appears in a `ValidatorSet`."""
        return ValidatorInfo(ed25519=self.ed25519_public, evm_address=self._evm_address)

    def sign_attestation(self, message: bytes) -> bytes:
        """Ed25519 (RFC 8032) signature over `message`; 64 bytes, deterministic.

        SECURITY: the caller must have decided `message` is one this validator may attest.
        """
        return bytes(self._ed25519.sign(message).signature)

    def sign_digest(self, digest: bytes) -> bytes:
        """secp256k1 signature over a 32-byte digest; 65 bytes ``r || s || v`` (v 27/28, low s).

        SECURITY: the caller must have built `digest` from its own observation
        (see `validators.eip712.sign_digest`).

        Raises:
            InvalidSignature: `digest` is not 32 bytes.
        """
        if len(digest) != 32:
            raise InvalidSignature("digest must be 32 bytes")
        return sign_digest(self._secp256k1, digest)

    @property
    def secp256k1_public(self) -> bytes:
        """Compressed (33-byte SEC1) public key of the secp256k1 key (a Bitcoin vault member)."""
        return CoincurvePrivateKey(self._secp256k1).public_key.format(compressed=True)

    def sign_der(self, digest: bytes) -> bytes:
        """secp256k1 ECDSA over a 32-byte digest as strict DER with low S (BIP-66, BIP-146),
        without a sighash byte: a Bitcoin input signature (RFC 6979, deterministic).

        SECURITY: the caller must have built `digest` (a BIP-143 sighash) from a spend it checked.

        Raises:
            InvalidSignature: `digest` is not 32 bytes.
        """
        if len(digest) != 32:
            raise InvalidSignature("digest must be 32 bytes")
        return CoincurvePrivateKey(self._secp256k1).sign(digest, hasher=None)

    def sign_compact(self, digest: bytes) -> bytes:
        """secp256k1 ECDSA over a 32-byte digest as 64 bytes r || s with low S (RFC 6979): a
        Cosmos SDK signature (the member signature of a legacy amino multisig).

        SECURITY: the caller must have checked what `digest` commits to.

        Raises:
            InvalidSignature: `digest` is not 32 bytes.
        """
        if len(digest) != 32:
            raise InvalidSignature("digest must be 32 bytes")
        return bytes(CoincurvePrivateKey(self._secp256k1).sign_recoverable(digest, hasher=None)[:64])

    def _plaintext(self) -> bytes:
        return bytes(self._ed25519) + self._secp256k1

    def __repr__(self) -> str:
        return f"ValidatorKeys(ed25519={self.ed25519_public_hex}, evm_address={self._evm_address})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("ValidatorKeys holds private keys and cannot be pickled or copied")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValidatorKeys):
            return NotImplemented
        return secrets.compare_digest(self._plaintext(), other._plaintext())

    def __hash__(self) -> int:
        return hash(self.ed25519_public)


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    raw = passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)
    if not raw:
        raise KeystoreError("passphrase must not be empty")
    return raw


def _derive(passphrase: bytes, salt: bytes, kdf: KdfParams) -> bytes:
    kdf.check()
    try:
        return hash_secret_raw(
            secret=passphrase,
            salt=salt,
            time_cost=kdf.time_cost,
            memory_cost=kdf.memory_cost_kib,
            parallelism=kdf.parallelism,
            hash_len=nacl.secret.SecretBox.KEY_SIZE,
            type=Type.ID,
            version=ARGON2_VERSION,
        )
    except HashingError as exc:
        raise KeystoreError(f"argon2id key derivation failed: {exc}") from exc


def _encrypt(keys: ValidatorKeys, passphrase: str | bytes, kdf: KdfParams) -> dict[str, object]:
    salt = secrets.token_bytes(SALT_BYTES)
    nonce = secrets.token_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(_derive(_passphrase_bytes(passphrase), salt, kdf))
    ciphertext = box.encrypt(keys._plaintext(), nonce).ciphertext
    return {
        "format": FORMAT,
        "version": VERSION,
        "ed25519_public": keys.ed25519_public_hex,
        "evm_address": keys.evm_address,
        "secp256k1_public": "0x" + keys.secp256k1_public.hex(),
        "kdf": {
            "name": "argon2id",
            "version": ARGON2_VERSION,
            "salt": "0x" + salt.hex(),
            "time_cost": kdf.time_cost,
            "memory_cost_kib": kdf.memory_cost_kib,
            "parallelism": kdf.parallelism,
        },
        "cipher": {"name": "xsalsa20-poly1305", "nonce": "0x" + nonce.hex()},
        "ciphertext": "0x" + ciphertext.hex(),
    }


def _write_atomic(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write `data` to `path` via a 0600 temp file in the same directory and ``os.replace``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise KeystoreError(f"refusing to overwrite existing keystore {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # in case the umask or filesystem altered the creation mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_private_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write `data` to `path` as this module writes keystores: a 0600 temp file in the same
    directory, ``fsync``, ``os.replace`` (`validators.key_files` keeps retired keystores so).

    Raises:
        KeystoreError: `path` exists and not `overwrite`.
    """
    _write_atomic(Path(path), data, overwrite=overwrite)


def save_keystore(
    path: Path,
    keys: ValidatorKeys,
    passphrase: str | bytes,
    *,
    kdf: KdfParams = PRODUCTION_KDF,
    overwrite: bool = False,
) -> None:
    """Encrypt `keys` under `passphrase` and write them to `path` (atomic, mode 0600).

    Args:
        path: keystore file; its directory is created if missing.
        keys: the keys to store.
        passphrase: non-empty; UTF-8 encoded when a ``str``.
        kdf: Argon2id costs; keep `PRODUCTION_KDF` outside tests.
        overwrite: replace an existing file (off by default so a key is never lost by accident).

    Raises:
        KeystoreError: empty passphrase, bad KDF parameters, or the file exists.
    """
    document = _encrypt(keys, passphrase, kdf)
    _write_atomic(Path(path), (json.dumps(document, indent=2) + "\n").encode(), overwrite=overwrite)


def new_keystore(
    path: Path, passphrase: str | bytes, *, kdf: KdfParams = PRODUCTION_KDF
) -> ValidatorKeys:
    """Generate fresh validator keys and store them encrypted at `path`.

    Returns:
        The new keys (already on disk).

    Raises:
        KeystoreError: `path` exists, empty passphrase, or bad KDF parameters.
    """
    keys = ValidatorKeys.generate()
    save_keystore(path, keys, passphrase, kdf=kdf)
    logger.info("created validator keystore path=%s validator=%s", path, keys.ed25519_public_hex)
    return keys


def import_keystore(
    path: Path,
    passphrase: str | bytes,
    *,
    ed25519_seed: bytes,
    secp256k1_key: bytes,
    kdf: KdfParams = PRODUCTION_KDF,
) -> ValidatorKeys:
    """Store existing raw keys encrypted at `path` (for keys generated elsewhere, e.g. an HSM export).

    Args:
        ed25519_seed: 32-byte Ed25519 seed.
        secp256k1_key: 32-byte secp256k1 private key.

    Raises:
        KeystoreError: bad key material, `path` exists, empty passphrase, or bad KDF parameters.
    """
    keys = ValidatorKeys(ed25519_seed, secp256k1_key)
    save_keystore(path, keys, passphrase, kdf=kdf)
    logger.info("imported validator keystore path=%s validator=%s", path, keys.ed25519_public_hex)
    return keys


def _int_field(doc: dict[str, object], name: str) -> int:
    value = doc.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise KeystoreError(f"corrupt keystore: field {name!r} missing or not an integer")
    return value


def _str_field(doc: dict[str, object], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise KeystoreError(f"corrupt keystore: field {name!r} missing or not a string")
    return value


def _dict_field(doc: dict[str, object], name: str) -> dict[str, object]:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise KeystoreError(f"corrupt keystore: field {name!r} missing or not an object")
    return value


def load_keystore(path: Path, passphrase: str | bytes) -> ValidatorKeys:
    """Decrypt the keystore at `path`.

    Args:
        path: a version-1 keystore file.
        passphrase: the passphrase it was written with.

    Returns:
        The validator's keys.

    Raises:
        KeystoreError: unreadable or corrupt file, unknown version, KDF parameters out of range,
            wrong passphrase (or tampered file: indistinguishable by design), or public fields
            that do not match the decrypted keys. Messages never contain key material.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc.strerror}") from exc
    if mode & 0o077:
        logger.warning("keystore path=%s has mode %o; expected 0600", path, mode)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeystoreError(f"corrupt keystore {path}: not JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeystoreError(f"{path} is not a Ferry validator keystore")
    if doc.get("version") != VERSION:
        raise KeystoreError(f"unsupported keystore version {doc.get('version')!r} in {path}")
    kdf_doc = _dict_field(doc, "kdf")
    cipher_doc = _dict_field(doc, "cipher")
    if kdf_doc.get("name") != "argon2id" or kdf_doc.get("version") != ARGON2_VERSION:
        raise KeystoreError(f"unsupported KDF in {path}")
    if cipher_doc.get("name") != "xsalsa20-poly1305":
        raise KeystoreError(f"unsupported cipher in {path}")
    kdf = KdfParams(
        time_cost=_int_field(kdf_doc, "time_cost"),
        memory_cost_kib=_int_field(kdf_doc, "memory_cost_kib"),
        parallelism=_int_field(kdf_doc, "parallelism"),
    )
    try:
        salt = parse_hex(_str_field(kdf_doc, "salt"))
        nonce = parse_hex(_str_field(cipher_doc, "nonce"), nacl.secret.SecretBox.NONCE_SIZE)
        ciphertext = parse_hex(_str_field(doc, "ciphertext"))
    except InvalidAddress as exc:  # parse_hex's error, translated to this module's
        raise KeystoreError(f"corrupt keystore {path}: bad hex field") from exc
    if len(salt) < 8:
        raise KeystoreError(f"corrupt keystore {path}: salt too short")
    box = nacl.secret.SecretBox(_derive(_passphrase_bytes(passphrase), salt, kdf))
    try:
        plaintext = box.decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError as exc:
        raise KeystoreError(
            f"cannot decrypt keystore {path}: wrong passphrase or corrupted file"
        ) from exc
    if len(plaintext) != 2 * SEED_BYTES:
        raise KeystoreError(f"corrupt keystore {path}: bad plaintext length")
    keys = ValidatorKeys(plaintext[:SEED_BYTES], plaintext[SEED_BYTES:])
    secp_public = doc.get("secp256k1_public")
    if (
        str(doc.get("ed25519_public", "")).lower() != keys.ed25519_public_hex
        or str(doc.get("evm_address", "")).lower() != keys.evm_address
        or (secp_public is not None
            and str(secp_public).lower() != "0x" + keys.secp256k1_public.hex())
    ):
        raise KeystoreError(f"corrupt keystore {path}: public fields do not match the keys")
    return keys


def hot_wallet_secrets(keys: ValidatorKeys) -> tuple[bytes, bytes]:
    """(32-byte Ed25519 seed, 32-byte secp256k1 key) of a key file used as a hot wallet: the
    relayer's swap keys (`relayer.quotes.SwapsSection.keystore`), whose HTLC drivers sign with
    the raw keys (`htlc.legs_*`). Never call it for a validator's keys.

    SECURITY: the caller holds private keys from here on; never log or persist them.
    """
    plain = keys._plaintext()
    return plain[:SEED_BYTES], plain[SEED_BYTES:]
