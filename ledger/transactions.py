"""User-signed ledger transactions (burn, transfer, htlc_lock): their byte format, how clients
build and sign them, and how the ledger parses and verifies them.

Owns: `SignedTx`, `BurnTx`, `TransferTx`, `HtlcLockTx`, `sign_burn`, `sign_transfer`,
`sign_htlc_lock`, `parse_transaction`, `verify_transaction`. Must not touch a database or the
network, nor decide whether the account can pay or the timelock is still ahead (the ledger
does, under its lock and with its clock).

Format (Ferry tx v1, docs: notes/DESIGN.md "POST /v1/ledger/transactions")::

    body   = {"network", "kind": "burn"|"transfer"|"htlc_lock", "account": "0x<32 B>",
              "nonce": "<n>", "asset": "<asset_key>", "amount": "<int>",
              burn: "dest_chain": "<caip2>", "dest_address": "<address>"; transfer: "to": "0x<32 B>";
              htlc_lock: "recipient": "0x<32 B account>", "hashlock": "0x<32 B>",
                         "timelock": "<ledger-clock seconds, 1..2**63-1>"}
    signed = b"ferry/tx/v1\\n" + canonical(body)        (validators.attestation.canonical)
    sig    = Ed25519(account secret key, signed)         (RFC 8032, 64 bytes)
    tx_id  = sha256(signed)                              (32 bytes; a burn's burn_id, an
                                                          htlc_lock's htlc_id)

htlc_lock (Ferry HTLC rules v1, `htlc.hashlock`): hashlock = sha256(32-byte preimage), lowercase hex; the
timelock is absolute ledger-clock seconds (never a height). The three kinds share the account
nonce sequence.

Every body value is a string; integers are canonical decimals (see `ledger.fields`). Exactly the
keys of the kind are allowed: an unknown key would be signed but ignored, so it is refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from adapters.errors import InvalidSignature, ValidationError
from ledger.errors import WrongNetwork
from ledger.fields import (
    parse_account,
    parse_amount,
    parse_asset_id,
    parse_chain,
    parse_dest_address,
    parse_uint,
)
from validators.attestation import canonical, parse_hex

TX_DOMAIN = b"ferry/tx/v1\n"
MAX_NONCE = 2**63 - 1  # nonces are stored as BIGINT
MAX_TIMELOCK = 2**63 - 1  # timelocks are stored as BIGINT
_HASH32 = re.compile(r"0x[0-9a-f]{64}")


class TxKind(StrEnum):
    BURN = "burn"
    TRANSFER = "transfer"
    HTLC_LOCK = "htlc_lock"


_COMMON_FIELDS = frozenset({"network", "kind", "account", "nonce", "asset", "amount"})
_FIELDS = {
    TxKind.BURN: _COMMON_FIELDS | {"dest_chain", "dest_address"},
    TxKind.TRANSFER: _COMMON_FIELDS | {"to"},
    TxKind.HTLC_LOCK: _COMMON_FIELDS | {"recipient", "hashlock", "timelock"},
}


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A transaction body and its 64-byte Ed25519 signature, as submitted (not yet verified).

    Attributes:
        body: the body, every value a string (see the module docstring).
        signature: 64-byte Ed25519 signature over `signed_bytes`.
    """

    body: Mapping[str, str]
    signature: bytes

    @property
    def signed_bytes(self) -> bytes:
        """``b"ferry/tx/v1\\n" + canonical(body)``."""
        return TX_DOMAIN + canonical(dict(self.body))

    @property
    def tx_id(self) -> bytes:
        """sha256 of `signed_bytes` (32 bytes)."""
        return hashlib.sha256(self.signed_bytes).digest()

    @property
    def burn_id(self) -> bytes | None:
        """The 32-byte burn id (= `tx_id`) for a burn, else None."""
        return self.tx_id if self.body.get("kind") == TxKind.BURN.value else None

    @property
    def htlc_id(self) -> bytes | None:
        """The 32-byte HTLC id (= `tx_id`) for an ``htlc_lock``, else None."""
        return self.tx_id if self.body.get("kind") == TxKind.HTLC_LOCK.value else None

    def to_json(self) -> dict[str, object]:
        """The ``POST /v1/ledger/transactions`` request body."""
        return {"tx": dict(self.body), "signature": "0x" + self.signature.hex()}

    @classmethod
    def from_json(cls, data: object) -> SignedTx:
        """Parse ``{"tx": {...}, "signature": "0x<64 B>"}`` (shape only; see `parse_transaction`).

        Raises:
            ValidationError: not that shape. InvalidSignature: signature not 64 bytes of hex.
        """
        if not isinstance(data, Mapping):
            raise ValidationError("transaction must be an object")
        body = data.get("tx")
        if not isinstance(body, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in body.items()
        ):
            raise ValidationError("tx must be an object of string values")
        return cls(body=dict(body), signature=parse_signature(data.get("signature")))


@dataclass(frozen=True, slots=True)
class BurnTx:
    """A parsed burn: debit `amount` of `asset` from `account`, pay out on `dest_chain`."""

    network: str
    account: bytes
    nonce: int
    asset: str
    amount: int
    dest_chain: str
    dest_address: str
    signed: SignedTx

    @property
    def burn_id(self) -> bytes:
        return self.signed.tx_id


@dataclass(frozen=True, slots=True)
class TransferTx:
    """A parsed transfer of `amount` of `asset` from `account` to `to` (another account)."""

    network: str
    account: bytes
    nonce: int
    asset: str
    amount: int
    to: bytes
    signed: SignedTx

    @property
    def tx_id(self) -> bytes:
        return self.signed.tx_id


@dataclass(frozen=True, slots=True)
class HtlcLockTx:
    """A parsed ``htlc_lock``: move `amount` of `asset` from `account` into an HTLC that pays
    `recipient` against the preimage of `hashlock` before `timelock`, else refunds `account`.

    Attributes:
        hashlock: 32 bytes, sha256 of the 32-byte preimage.
        timelock: absolute ledger-clock seconds, 1..2**63-1.
    """

    network: str
    account: bytes
    nonce: int
    asset: str
    amount: int
    recipient: bytes
    hashlock: bytes
    timelock: int
    signed: SignedTx

    @property
    def htlc_id(self) -> bytes:
        return self.signed.tx_id


ParsedTx = BurnTx | TransferTx | HtlcLockTx


def parse_signature(value: object) -> bytes:
    """Parse a ``0x`` hex 64-byte Ed25519 signature. Raises `InvalidSignature`."""
    if not isinstance(value, str):
        raise InvalidSignature("signature must be 0x hex")
    try:
        return parse_hex(value, 64)
    except ValidationError as exc:
        raise InvalidSignature(f"signature must be 64 bytes of 0x hex: {exc}") from exc


def parse_transaction(signed: SignedTx) -> ParsedTx:
    """Parse a body into typed values (no signature or network check: `verify_transaction`).

    Raises:
        ValidationError: unknown kind, missing or extra keys, a non-canonical value, amount not
            in 1..2**256-1, nonce too large, a transfer or HTLC to oneself, a hashlock that is
            not 32 bytes of lowercase hex, a timelock not in 1..2**63-1.
        InvalidAddress: a malformed account, recipient, asset token or destination address.
    """
    body = signed.body
    kind_text = body.get("kind")
    if kind_text not in tuple(k.value for k in TxKind):
        raise ValidationError(
            f"kind must be one of {[k.value for k in TxKind]}, got {kind_text!r}")
    kind = TxKind(kind_text)
    keys = set(body)
    if keys != _FIELDS[kind]:
        raise ValidationError(
            f"{kind} body keys: missing {sorted(_FIELDS[kind] - keys)}, "
            f"unexpected {sorted(keys - _FIELDS[kind])}"
        )
    if not all(isinstance(v, str) for v in body.values()):
        raise ValidationError("every body value must be a string")
    network = body["network"]
    if not network:
        raise ValidationError("network must not be empty")
    account = parse_account(body["account"])
    nonce = parse_uint(body["nonce"], "nonce", allow_int=False)
    if nonce > MAX_NONCE:
        raise ValidationError(f"nonce {nonce} too large")
    parse_asset_id(body["asset"])
    asset = body["asset"]
    amount = parse_amount(body["amount"], allow_int=False)
    if kind is TxKind.BURN:
        dest_chain = parse_chain(body["dest_chain"], "dest_chain")
        dest_address = parse_dest_address(dest_chain, body["dest_address"])
        return BurnTx(network, account, nonce, asset, amount, dest_chain, dest_address, signed)
    if kind is TxKind.HTLC_LOCK:
        recipient = parse_account(body["recipient"], "recipient")
        if recipient == account:
            raise ValidationError("an HTLC to the sending account is refused")
        if not _HASH32.fullmatch(body["hashlock"]):
            raise ValidationError(
                f"hashlock must be lowercase 0x + 64 hex chars, got {body['hashlock']!r}")
        timelock = parse_uint(body["timelock"], "timelock", allow_int=False)
        if not 0 < timelock <= MAX_TIMELOCK:
            raise ValidationError(f"timelock must be in 1..2**63-1, got {timelock}")
        return HtlcLockTx(network, account, nonce, asset, amount, recipient,
                          bytes.fromhex(body["hashlock"][2:]), timelock, signed)
    to = parse_account(body["to"], "to")
    if to == account:
        raise ValidationError("a transfer to the sending account is refused")
    return TransferTx(network, account, nonce, asset, amount, to, signed)


def verify_transaction(signed: SignedTx, network: str) -> ParsedTx:
    """Parse `signed` and check its network and signature.

    SECURITY: the signature is checked over the exact submitted body bytes (canonical form),
    with the body's own account as the key; a body for another network is refused before that.

    Args:
        signed: the submitted transaction.
        network: this ledger's network name.

    Returns:
        The typed transaction.

    Raises:
        ValidationError, InvalidAddress: see `parse_transaction`.
        WrongNetwork: ``body["network"] != network``.
        InvalidSignature: the signature is not 64 bytes or does not verify.
    """
    tx = parse_transaction(signed)
    if tx.network != network:
        raise WrongNetwork(f"transaction is for network {tx.network!r}, ledger is {network!r}")
    if len(signed.signature) != 64:
        raise InvalidSignature("Ed25519 signature must be 64 bytes")
    try:
        VerifyKey(tx.account).verify(signed.signed_bytes, signed.signature)
    except BadSignatureError as exc:
        raise InvalidSignature("transaction signature does not verify") from exc
    return tx


class KeyFileSigner(Protocol):
    """An unlocked key file (e.g. `validators.keystore.ValidatorKeys`): Ed25519 public key and
    a 64-byte RFC 8032 signature over given bytes."""

    @property
    def ed25519_public(self) -> bytes: ...

    def sign_attestation(self, message: bytes) -> bytes: ...


AccountKey = SigningKey | KeyFileSigner


def _public(key: AccountKey) -> bytes:
    return bytes(key.verify_key) if isinstance(key, SigningKey) else key.ed25519_public


def _sign(signing_key: AccountKey, body: dict[str, str]) -> SignedTx:
    unsigned = SignedTx(body=body, signature=b"\x00" * 64)
    parse_transaction(unsigned)  # refuse to sign what the ledger would refuse to parse
    if isinstance(signing_key, SigningKey):
        signature = bytes(signing_key.sign(unsigned.signed_bytes).signature)
    else:
        signature = signing_key.sign_attestation(unsigned.signed_bytes)
    return SignedTx(body=body, signature=signature)


def sign_burn(
    signing_key: AccountKey,
    network: str,
    nonce: int,
    asset: str,
    amount: int,
    dest_chain: str,
    dest_address: str,
) -> SignedTx:
    """Build and sign a burn.

    Args:
        signing_key: the account's Ed25519 key (its public key is the account): a PyNaCl
            `SigningKey` or an unlocked key file (`KeyFileSigner`).
        network: the ledger's network name.
        nonce: the account's next nonce (``GET /v1/ledger/accounts/{account}``).
        asset: asset id (`adapters.base.asset_key`).
        amount: base units, 1..2**256-1.
        dest_chain: CAIP-2 id of the payout chain (must be the asset's origin chain).
        dest_address: payout address (EVM: 20-byte ``0x`` hex; lowercased here).

    Returns:
        The signed transaction; its `burn_id` is the id the bridge will see.

    Raises:
        ValidationError, InvalidAddress: the ledger would refuse the body.
    """
    body = {
        "network": network,
        "kind": TxKind.BURN.value,
        "account": "0x" + _public(signing_key).hex(),
        "nonce": str(nonce),
        "asset": asset,
        "amount": str(amount),
        "dest_chain": dest_chain,
        "dest_address": dest_address.lower() if dest_chain.startswith("eip155:") else dest_address,
    }
    return _sign(signing_key, body)


def sign_transfer(
    signing_key: AccountKey, network: str, nonce: int, asset: str, amount: int, to: bytes
) -> SignedTx:
    """Build and sign a transfer of `amount` base units of `asset` to account `to` (32 bytes).

    Raises:
        ValidationError, InvalidAddress: the ledger would refuse the body.
    """
    body = {
        "network": network,
        "kind": TxKind.TRANSFER.value,
        "account": "0x" + _public(signing_key).hex(),
        "nonce": str(nonce),
        "asset": asset,
        "amount": str(amount),
        "to": "0x" + to.hex(),
    }
    return _sign(signing_key, body)


def sign_htlc_lock(
    signing_key: AccountKey,
    network: str,
    nonce: int,
    asset: str,
    amount: int,
    recipient: bytes,
    hashlock: bytes,
    timelock: int,
) -> SignedTx:
    """Build and sign an ``htlc_lock``.

    Args:
        signing_key: the sender's Ed25519 key (see `sign_burn`).
        network: the ledger's network name.
        nonce: the account's next nonce (shared with burns and transfers).
        asset: asset id (`adapters.base.asset_key`).
        amount: base units, 1..2**256-1.
        recipient: 32-byte account credited on redeem (not the sender).
        hashlock: 32 bytes, sha256 of the 32-byte preimage (Ferry HTLC rules v1, `htlc.hashlock`).
        timelock: absolute ledger-clock seconds; the ledger refuses it unless it is in the
            future when the lock is applied.

    Returns:
        The signed transaction; its `htlc_id` is the id of the HTLC it creates.

    Raises:
        ValidationError, InvalidAddress: the ledger would refuse the body.
    """
    body = {
        "network": network,
        "kind": TxKind.HTLC_LOCK.value,
        "account": "0x" + _public(signing_key).hex(),
        "nonce": str(nonce),
        "asset": asset,
        "amount": str(amount),
        "recipient": "0x" + recipient.hex(),
        "hashlock": "0x" + hashlock.hex(),
        "timelock": str(timelock),
    }
    return _sign(signing_key, body)
