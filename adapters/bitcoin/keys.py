"""secp256k1 ECDSA for Bitcoin inputs, through coincurve (libsecp256k1).

Owns: signing a 32-byte sighash into a DER signature, verifying one, and public-key helpers.
Must not compute sighashes (that is `adapters.bitcoin.tx`) nor hold or log keys.

Formats: public keys are 33-byte compressed SEC1 points; signatures are strict DER (BIP-66) with
a low S value (BIP-62 / BIP-146), without the sighash-type byte (callers append it).
"""

from __future__ import annotations

from coincurve import PrivateKey, PublicKey

from adapters.errors import InvalidAddress


def public_key(secret: bytes) -> bytes:
    """Compressed 33-byte public key of a 32-byte secret."""
    return PrivateKey(secret).public_key.format(compressed=True)


def parse_public_key(data: bytes) -> bytes:
    """Check `data` is a 33-byte compressed point on the curve and return it.

    Raises:
        InvalidAddress: wrong length, not compressed, or not on the curve.
    """
    if len(data) != 33 or data[0] not in (2, 3):
        raise InvalidAddress(f"not a compressed secp256k1 public key: {data.hex()}")
    try:
        PublicKey(data)
    except ValueError as exc:
        raise InvalidAddress(f"not a point on secp256k1: {data.hex()}") from exc
    return data


def sign_digest(secret: bytes, digest: bytes) -> bytes:
    """Deterministic (RFC 6979) low-S DER signature of a 32-byte `digest` (no hashing here)."""
    if len(digest) != 32:
        raise ValueError("digest must be 32 bytes")
    return PrivateKey(secret).sign(digest, hasher=None)


def verify_digest(pubkey: bytes, digest: bytes, der: bytes) -> bool:
    """Whether `der` (without sighash byte) is a valid low-S signature of `digest` by `pubkey`."""
    if len(digest) != 32:
        return False
    try:
        # libsecp256k1 verification rejects high-S signatures, as Bitcoin's policy does.
        return bool(PublicKey(pubkey).verify(der, digest, hasher=None))
    except (ValueError, TypeError):
        return False
