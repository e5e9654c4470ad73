"""EIP-712 typed data for the EVM `Bridge` contract, and secp256k1 signing/recovery over it.

Owns: the type strings, struct hashes and digests of `Release`, `UpdateValidatorSet`,
`SetPaused` and `SetTokenAllowed`, exactly as `contracts/src/Bridge.sol` hashes them, and
low-s recoverable signatures over those digests (coincurve / libsecp256k1).
Must not hold keys beyond a call, touch the network, or decide whether to sign.

Source: EIP-712 (typed structured data hashing and signing). Domain:
``EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)`` with
name ``"FerryBridge"`` and version ``"1"``. Digest: ``keccak256(0x1901 || domainSeparator ||
hashStruct(message))``. Signatures are 65 bytes ``r || s || v`` with ``v`` in {27, 28} and
``s <= n/2`` (EIP-2), the form the contract accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

import coincurve
from eth_utils import keccak

from adapters.errors import InvalidSignature

DOMAIN_NAME = "FerryBridge"
DOMAIN_VERSION = "1"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
RELEASE_TYPE = (
    b"Release(bytes32 burnId,address token,address recipient,uint256 amount,uint256 setNonce)"
)
UPDATE_SET_TYPE = b"UpdateValidatorSet(address[] validators,uint256 threshold,uint256 setNonce)"
SET_PAUSED_TYPE = b"SetPaused(bool paused,uint256 opNonce)"
SET_TOKEN_ALLOWED_TYPE = b"SetTokenAllowed(address token,bool allowed,uint256 opNonce)"

# Type definitions in eth_account's `encode_typed_data` form, for cross-checks and wallets.
EIP712_TYPES: dict[str, list[dict[str, str]]] = {
    "Release": [
        {"name": "burnId", "type": "bytes32"},
        {"name": "token", "type": "address"},
        {"name": "recipient", "type": "address"},
        {"name": "amount", "type": "uint256"},
        {"name": "setNonce", "type": "uint256"},
    ],
    "UpdateValidatorSet": [
        {"name": "validators", "type": "address[]"},
        {"name": "threshold", "type": "uint256"},
        {"name": "setNonce", "type": "uint256"},
    ],
    "SetPaused": [{"name": "paused", "type": "bool"}, {"name": "opNonce", "type": "uint256"}],
    "SetTokenAllowed": [
        {"name": "token", "type": "address"},
        {"name": "allowed", "type": "bool"},
        {"name": "opNonce", "type": "uint256"},
    ],
}


def _u256(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _addr(address: str) -> bytes:
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise InvalidSignature(f"not a 20-byte address: {address!r}")
    return b"\x00" * 12 + raw


def domain_separator(chain_id: int, verifying_contract: str) -> bytes:
    """32-byte EIP-712 domain separator of the bridge at `verifying_contract` on `chain_id`."""
    return keccak(
        keccak(DOMAIN_TYPE)
        + keccak(DOMAIN_NAME.encode())
        + keccak(DOMAIN_VERSION.encode())
        + _u256(chain_id)
        + _addr(verifying_contract)
    )


def _digest(chain_id: int, contract: str, struct_hash: bytes) -> bytes:
    return keccak(b"\x19\x01" + domain_separator(chain_id, contract) + struct_hash)


def release_digest(
    chain_id: int,
    contract: str,
    *,
    burn_id: bytes,
    token: str,
    recipient: str,
    amount: int,
    set_nonce: int,
) -> bytes:
    """Digest of ``Release(burnId, token, recipient, amount, setNonce)`` (32 bytes)."""
    if len(burn_id) != 32:
        raise InvalidSignature("burn id must be 32 bytes")
    struct = keccak(
        keccak(RELEASE_TYPE)
        + burn_id
        + _addr(token)
        + _addr(recipient)
        + _u256(amount)
        + _u256(set_nonce)
    )
    return _digest(chain_id, contract, struct)


def update_set_digest(
    chain_id: int, contract: str, *, validators: Sequence[str], threshold: int, set_nonce: int
) -> bytes:
    """Digest of ``UpdateValidatorSet(validators, threshold, setNonce)`` (32 bytes)."""
    members = keccak(b"".join(_addr(v) for v in validators))
    struct = keccak(keccak(UPDATE_SET_TYPE) + members + _u256(threshold) + _u256(set_nonce))
    return _digest(chain_id, contract, struct)


def set_paused_digest(chain_id: int, contract: str, *, paused: bool, op_nonce: int) -> bytes:
    """Digest of ``SetPaused(paused, opNonce)`` (32 bytes)."""
    struct = keccak(keccak(SET_PAUSED_TYPE) + _u256(int(paused)) + _u256(op_nonce))
    return _digest(chain_id, contract, struct)


def set_token_allowed_digest(
    chain_id: int, contract: str, *, token: str, allowed: bool, op_nonce: int
) -> bytes:
    """Digest of ``SetTokenAllowed(token, allowed, opNonce)`` (32 bytes)."""
    struct = keccak(
        keccak(SET_TOKEN_ALLOWED_TYPE) + _addr(token) + _u256(int(allowed)) + _u256(op_nonce)
    )
    return _digest(chain_id, contract, struct)


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """Sign a 32-byte digest; returns 65 bytes ``r || s || v`` (v in {27, 28}, low s).

    SECURITY: the caller must have decided, from its own observation, that `digest` is one it
    may sign. libsecp256k1 signs deterministically (RFC 6979) with normalized low s.
    """
    sig = coincurve.PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


def recover_signer(digest: bytes, signature: bytes) -> str:
    """Address (lowercase ``0x`` hex) that produced `signature` over `digest`.

    Raises:
        InvalidSignature: not 65 bytes, v not 27/28, high s (EIP-2) or unrecoverable.
    """
    if len(signature) != 65:
        raise InvalidSignature("EVM signature must be 65 bytes")
    v = signature[64]
    if v not in (27, 28):
        raise InvalidSignature(f"bad recovery id v={v}")
    s = int.from_bytes(signature[32:64], "big")
    if s == 0 or s > SECP256K1_N // 2:
        raise InvalidSignature("high-s signature (EIP-2) rejected")
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), digest, hasher=None
        )
    except Exception as exc:  # coincurve raises bare Exception subclasses
        raise InvalidSignature("signature does not recover") from exc
    return "0x" + keccak(pub.format(compressed=False)[1:])[-20:].hex()


def address_of(private_key: bytes) -> str:
    """Lowercase ``0x`` address of a 32-byte secp256k1 private key."""
    pub = coincurve.PrivateKey(private_key).public_key.format(compressed=False)
    return "0x" + keccak(pub[1:])[-20:].hex()
