"""The Cosmos escrow: an m-of-n legacy Amino multisig of the validators' secp256k1 keys.

Owns: building the escrow's `LegacyAminoPubKey` (keys sorted ascending bytewise), its Amino
binary encoding and bech32 address, single-key account addresses, and bech32 address parsing.
Must not: talk to a node, sign anything, or hold keys.

Formats (Cosmos SDK v0.50):
- A member key is a 33-byte compressed SEC1 secp256k1 point, wrapped as
  `Any("/cosmos.crypto.secp256k1.PubKey", PubKey{key})` inside the `LegacyAminoPubKey`.
- Escrow address = sha256(amino(LegacyAminoPubKey))[:20] (`multisig.LegacyAminoPubKey.Address`,
  CometBFT `tmhash.SumTruncated`), where amino is the registered concrete type
  "tendermint/PubKeyMultisigThreshold" (prefix 22C1F7E2) with field 1 threshold (uvarint) and
  field 2 repeated, each the length-prefixed Amino encoding of "tendermint/PubKeySecp256k1"
  (prefix EB5AE987 then the length-prefixed 33 key bytes).
- Account address of a single key = ripemd160(sha256(key33)) (ADR-028 legacy secp256k1).
- Addresses are BIP-173 bech32 (not bech32m) with the chain's human-readable prefix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import bech32
from coincurve import PublicKey
from cosmpy.crypto.hashfuncs import ripemd160
from cosmpy.protos.cosmos.crypto.multisig.keys_pb2 import LegacyAminoPubKey
from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey
from google.protobuf.any_pb2 import Any as AnyProto

from adapters.errors import ConfigError, InvalidAddress

SECP256K1_PUBKEY_TYPE_URL = "/cosmos.crypto.secp256k1.PubKey"
MULTISIG_PUBKEY_TYPE_URL = "/cosmos.crypto.multisig.LegacyAminoPubKey"
AMINO_PREFIX_MULTISIG = bytes.fromhex("22c1f7e2")  # "tendermint/PubKeyMultisigThreshold"
AMINO_PREFIX_SECP256K1 = bytes.fromhex("eb5ae987")  # "tendermint/PubKeySecp256k1"
DEFAULT_PREFIX = "cosmos"
# x/auth's default `tx_sig_limit`: the ante handler refuses a multisig with more member keys.
DEFAULT_TX_SIG_LIMIT = 7
ADDRESS_LENGTHS = (20, 32)  # legacy accounts and ADR-028 module / derived accounts


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def parse_pubkey(data: bytes) -> bytes:
    """Check `data` is a 33-byte compressed secp256k1 point and return it.

    Raises:
        ConfigError: wrong length, not compressed, or not on the curve.
    """
    data = bytes(data)
    if len(data) != 33 or data[0] not in (2, 3):
        raise ConfigError(f"not a compressed secp256k1 public key: {data.hex()}")
    try:
        PublicKey(data)
    except ValueError as exc:
        raise ConfigError(f"not a point on secp256k1: {data.hex()}") from exc
    return data


def sorted_pubkeys(pubkeys: Iterable[bytes]) -> tuple[bytes, ...]:
    """The member keys validated and sorted ascending bytewise (the escrow's key order).

    Raises:
        ConfigError: a bad key, a duplicate, or no keys at all.
    """
    keys = sorted(parse_pubkey(k) for k in pubkeys)
    if not keys:
        raise ConfigError("an escrow needs at least one member key")
    if len(set(keys)) != len(keys):
        raise ConfigError("duplicate member key in the escrow")
    return tuple(keys)


def escrow_pubkey(
    pubkeys: Iterable[bytes], threshold: int, *, tx_sig_limit: int = DEFAULT_TX_SIG_LIMIT
) -> LegacyAminoPubKey:
    """The escrow's `cosmos.crypto.multisig.LegacyAminoPubKey`, keys sorted ascending bytewise.

    Args:
        pubkeys: the validators' 33-byte compressed secp256k1 keys, in any order.
        threshold: m, the signatures a release needs; 1 <= m <= n.
        tx_sig_limit: the chain's x/auth `tx_sig_limit` (default 7); more keys than this
            could never sign a transaction on that chain.

    Raises:
        ConfigError: a bad or duplicate key, m out of range, or n above `tx_sig_limit`.
    """
    keys = sorted_pubkeys(pubkeys)
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise ConfigError("threshold must be an int")
    if not 1 <= threshold <= len(keys):
        raise ConfigError(f"threshold {threshold} out of range 1..{len(keys)}")
    if len(keys) > tx_sig_limit:
        raise ConfigError(f"{len(keys)} keys exceed the chain's tx_sig_limit of {tx_sig_limit}")
    anys = []
    for key in keys:
        wrapped = AnyProto(type_url=SECP256K1_PUBKEY_TYPE_URL,
                           value=PubKey(key=key).SerializeToString())
        anys.append(wrapped)
    return LegacyAminoPubKey(threshold=threshold, public_keys=anys)


def member_keys(legacy_pubkey: LegacyAminoPubKey) -> tuple[bytes, ...]:
    """The 33-byte member keys of a `LegacyAminoPubKey`, in its stored order.

    Raises:
        ConfigError: a member is not a secp256k1 `PubKey` Any or not a valid key.
    """
    keys = []
    for wrapped in legacy_pubkey.public_keys:
        if wrapped.type_url != SECP256K1_PUBKEY_TYPE_URL:
            raise ConfigError(f"unsupported member key type {wrapped.type_url!r}")
        inner = PubKey()
        inner.ParseFromString(wrapped.value)
        keys.append(parse_pubkey(inner.key))
    return tuple(keys)


def amino_bytes(legacy_pubkey: LegacyAminoPubKey) -> bytes:
    """The Amino binary encoding the SDK hashes for the multisig address.

    Layout: 22C1F7E2 | 0x08 uvarint(threshold) | per key: 0x12 uvarint(38) EB5AE987 0x21 key33.
    Source: cosmos-sdk crypto/keys/multisig (LegacyAminoPubKey.Bytes via its Amino codec) and
    CometBFT's Amino registration of the two concrete types.

    Raises:
        ConfigError: a member key is not secp256k1.
    """
    out = bytearray(AMINO_PREFIX_MULTISIG)
    out += b"\x08" + _uvarint(legacy_pubkey.threshold)
    for key in member_keys(legacy_pubkey):
        inner = AMINO_PREFIX_SECP256K1 + _uvarint(len(key)) + key
        out += b"\x12" + _uvarint(len(inner)) + inner
    return bytes(out)


def encode_address(data: bytes, prefix: str = DEFAULT_PREFIX) -> str:
    """bech32 (BIP-173) of raw address bytes under `prefix`."""
    words = bech32.convertbits(list(data), 8, 5, True)
    if words is None:  # pragma: no cover - 8-bit input always converts
        raise InvalidAddress("cannot convert address bytes")
    return str(bech32.bech32_encode(prefix, words))


def escrow_address(
    pubkeys: Iterable[bytes], threshold: int, prefix: str = DEFAULT_PREFIX,
    *, tx_sig_limit: int = DEFAULT_TX_SIG_LIMIT,
) -> str:
    """The escrow's bech32 account address: bech32(prefix, sha256(amino_bytes)[:20]).

    Raises:
        ConfigError: as `escrow_pubkey`.
    """
    legacy = escrow_pubkey(pubkeys, threshold, tx_sig_limit=tx_sig_limit)
    digest = hashlib.sha256(amino_bytes(legacy)).digest()
    return encode_address(digest[:20], prefix)


def account_address(pubkey33: bytes, prefix: str = DEFAULT_PREFIX) -> str:
    """The bech32 account address of one secp256k1 key: ripemd160(sha256(pubkey33)).

    Raises:
        ConfigError: `pubkey33` is not a valid compressed key.
    """
    key = parse_pubkey(pubkey33)
    return encode_address(ripemd160(hashlib.sha256(key).digest()), prefix)


def parse_address(text: str, prefix: str = DEFAULT_PREFIX) -> bytes:
    """Decode a bech32 account address, checking its checksum, prefix and length.

    Args:
        text: the address; all-lowercase or all-uppercase (BIP-173).
        prefix: the human-readable part it must carry ("cosmos").

    Returns:
        The 20- or 32-byte address.

    Raises:
        InvalidAddress: not a string, bad characters or checksum, mixed case, another prefix,
            or a payload that is not 20 or 32 bytes.
    """
    if not isinstance(text, str) or len(text) > 90:
        raise InvalidAddress(f"not a bech32 address: {text!r}")
    hrp, words = bech32.bech32_decode(text)
    if hrp is None or words is None:
        raise InvalidAddress(f"bad bech32 address {text!r}")
    if hrp != prefix:
        raise InvalidAddress(f"address {text!r} has prefix {hrp!r}, want {prefix!r}")
    data = bech32.convertbits(words, 5, 8, False)
    if data is None or len(data) not in ADDRESS_LENGTHS:
        raise InvalidAddress(f"address {text!r} is not 20 or 32 bytes")
    return bytes(data)


def canonical_address(text: str, prefix: str = DEFAULT_PREFIX) -> str:
    """`text` re-encoded in lowercase after `parse_address` (the form Ferry signs and compares).

    Raises:
        InvalidAddress: as `parse_address`.
    """
    return encode_address(parse_address(text, prefix), prefix)
