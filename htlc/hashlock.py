"""Hashlocks of Ferry's HTLC swaps: the 32-byte secret and its SHA-256.

Owns: making a secret, hashing it into a hashlock, checking a preimage against a hashlock, and
parsing both from ``0x`` hex at the edge. Must not log, persist or print a secret (callers log
the hashlock only), nor know any chain: every chain's HTLC uses these rules
(Ferry HTLC rules v1: this module is their reference).

Format (the same on every chain; BIP-199's Bitcoin shape checks the size in script)::

    secret   (preimage) = exactly 32 bytes, uniformly random
    hashlock            = SHA-256(secret), 32 bytes (FIPS 180-4)

A preimage of any other length is refused even if its SHA-256 equals the hashlock: Bitcoin's
``OP_SIZE 32 OP_EQUALVERIFY`` and a Solidity ``bytes32`` argument refuse it on chain, so a
swap that accepted one on a chain without such a check could be completed on one side only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from adapters.errors import ValidationError
from htlc.errors import BadPreimage

SECRET_LEN = 32  # bytes
HASHLOCK_LEN = 32  # bytes (SHA-256 digest)


def new_secret() -> bytes:
    """A fresh swap secret: 32 bytes from the OS CSPRNG (`secrets.token_bytes`).

    SECURITY: whoever holds the secret can redeem every leg locked to its hashlock; never log it.
    """
    return secrets.token_bytes(SECRET_LEN)


def _check_hashlock(hashlock: bytes) -> bytes:
    if not isinstance(hashlock, bytes | bytearray) or len(hashlock) != HASHLOCK_LEN:
        raise ValidationError(f"a hashlock is {HASHLOCK_LEN} bytes")
    return bytes(hashlock)


def hashlock_of(secret: bytes) -> bytes:
    """The hashlock of `secret`: SHA-256 (32 bytes).

    Args:
        secret: the 32-byte preimage.

    Raises:
        BadPreimage: `secret` is not exactly 32 bytes.
    """
    if not isinstance(secret, bytes | bytearray) or len(secret) != SECRET_LEN:
        got = len(secret) if isinstance(secret, bytes | bytearray) else type(secret).__name__
        raise BadPreimage(f"a swap secret is exactly {SECRET_LEN} bytes, got {got}")
    return hashlib.sha256(secret).digest()


def check_preimage(preimage: bytes, hashlock: bytes) -> None:
    """Check that `preimage` opens `hashlock` (the rule every HTLC enforces on chain).

    Args:
        preimage: the claimed secret; must be exactly 32 bytes.
        hashlock: 32 bytes.

    Raises:
        BadPreimage: `preimage` is not 32 bytes, or its SHA-256 is not `hashlock`.
        ValidationError: `hashlock` is not 32 bytes.
    """
    expected = _check_hashlock(hashlock)
    if not hmac.compare_digest(hashlock_of(preimage), expected):
        raise BadPreimage("the preimage's SHA-256 is not the hashlock")


def _parse_hex32(text: str) -> bytes | None:
    """`text` as ``0x`` + 64 hex digits (either case), or None when it is not that."""
    if not isinstance(text, str) or len(text) != 2 + 2 * SECRET_LEN or text[:2] not in ("0x", "0X"):
        return None
    if text[2:].strip("0123456789abcdefABCDEF"):  # bytes.fromhex would skip whitespace
        return None
    return bytes.fromhex(text[2:])


def parse_secret(text: str) -> bytes:
    """Parse a secret written as ``0x`` + 64 hex digits.

    Raises:
        BadPreimage: anything else (no ``0x``, wrong length, not hex).
    """
    value = _parse_hex32(text)
    if value is None:
        raise BadPreimage("a secret is written 0x + 64 hex digits (32 bytes)")
    return value


def parse_hashlock(text: str) -> bytes:
    """Parse a hashlock written as ``0x`` + 64 hex digits.

    Raises:
        ValidationError: anything else (no ``0x``, wrong length, not hex).
    """
    value = _parse_hex32(text)
    if value is None:
        raise ValidationError("a hashlock is written 0x + 64 hex digits (32 bytes)")
    return value


def to_hex(value: bytes) -> str:
    """``0x`` + lowercase hex of a hashlock (or, SECURITY: never for logs, a secret)."""
    return "0x" + bytes(value).hex()
