"""One chain's HTLC operations for the swap engine: the terms of a leg, the reference to a lock,
what the chain shows of it, and the `HtlcLeg` Protocol (consumed by `relayer.swap_engine`).

Owns: `LegTerms`, `LegRef`, `PreparedLock`, `LegView`, `HtlcLeg` and the helpers every driver
shares (`check_terms`, `lock_status`). Must not import a chain library nor persist anything:
one driver per chain family implements the Protocol (htlc/legs_evm.py, htlc/legs_bitcoin.py,
htlc/legs_ledger.py), and the engine stores what it needs (a `PreparedLock` before
`broadcast_lock`, the `LegRef` after).

A leg's life, as the engine drives it::

    LegTerms --prepare_lock--> PreparedLock --(engine persists it)--> broadcast_lock --> LegRef
    LegRef --observe--> LegView(status, confirmations, expiry, amount, secret)
    LegRef --find_secret--> the secret, from a redeem in the mempool or a block
    LegRef --redeem(secret)--> tx id           LegRef --refund (from the expiry on)--> tx id
    LegTerms --find_lock--> LegRef | None      (the counterparty's lock, read from the chain)

Identities are raw bytes on every chain: an EVM address is 20 bytes, a Bitcoin party is its
33-byte compressed secp256k1 key (BIP-199 HTLC keys), a ledger account is its 32-byte Ed25519
key. The asset is the EVM token address (``0x`` hex; `adapters.base.NATIVE_TOKEN` for the
native coin), ``"btc"``, or the ledger asset key (`adapters.base.asset_key`). Amounts are int
base units (wei, token units, sat, ledger units). Expiries are `BlockHeight` on Bitcoin (CLTV,
BIP-65) and `UnixTime` on EVM chains (``block.timestamp``) and the ledger (its clock).

Status (`htlc.machine.LegStatus`): ``none`` (no lock seen), ``locked`` (funded, in the mempool or
shallower than the driver's confirmation depth), ``confirmed`` (funded at depth), ``redeemed`` /
``refunded`` (the settling transaction is in a block; a settlement seen only in a mempool does
not change the status, but `find_secret` reads a mempool redeem's secret).

Idempotency, the same on every chain: `broadcast_lock` of the same `PreparedLock` again returns
the same `LegRef`; `redeem` of a leg already redeemed returns that redeem's tx id (whoever sent
it), and of a leg already refunded raises `HtlcAlreadySettled`; `refund` mirrors it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from adapters.errors import ValidationError
from htlc.hashlock import HASHLOCK_LEN
from htlc.machine import LegStatus
from htlc.timelock import BlockHeight, ChainTiming, Instant, UnixTime


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _hashlock(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASHLOCK_LEN:
        raise ValidationError(f"a hashlock is {HASHLOCK_LEN} bytes")
    return value


def _instant(value: object) -> Instant:
    if not isinstance(value, BlockHeight | UnixTime):
        raise TypeError(f"an expiry is a BlockHeight or a UnixTime, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class LegTerms:
    """What one leg must be, exactly (see the module docstring for units and identities).

    Attributes:
        chain: CAIP-2 id (``eip155:1``, ``bip122:<genesis prefix>``, ``ferry:ledger``).
        asset: EVM token address, ``"btc"``, or the ledger asset key.
        amount: base units locked (Bitcoin: the HTLC output's value, before the spend's fee).
        hashlock: SHA-256 of the 32-byte secret (32 bytes).
        expiry: `BlockHeight` (Bitcoin) or `UnixTime` (EVM, ledger): refund from then on.
        sender: who locks and is refunded (20 / 33 / 32 bytes).
        recipient: who a redeem pays (20 / 33 / 32 bytes).

    Raises:
        ValidationError: an empty chain or asset, amount < 1, a hashlock not 32 bytes, or an
            identity that is not non-empty bytes.
        TypeError: `expiry` is not an instant.
    """

    chain: str
    asset: str
    amount: int
    hashlock: bytes
    expiry: Instant
    sender: bytes
    recipient: bytes

    def __post_init__(self) -> None:
        if not (isinstance(self.chain, str) and self.chain and isinstance(self.asset, str)
                and self.asset):
            raise ValidationError("a leg needs a chain and an asset")
        _positive_int(self.amount, "amount")
        _hashlock(self.hashlock)
        _instant(self.expiry)
        for name in ("sender", "recipient"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or not value:
                raise ValidationError(f"{name} must be non-empty bytes")


@dataclass(frozen=True, slots=True)
class LegRef:
    """A lock on one chain: enough to observe, redeem and refund it later (persist it).

    Attributes:
        chain: CAIP-2 id.
        id: EVM: the 32-byte HTLC id as ``0x`` hex; Bitcoin: ``"<txid display hex>:<vout>"`` of
            the funding output; ledger: the 32-byte HTLC id as ``0x`` hex.
        hashlock: 32 bytes.
        amount: base units locked.
        expiry: the lock's expiry (`BlockHeight` or `UnixTime`).
        since_block: first block to search for the lock's events (EVM logs, Bitcoin spends
            and secrets): the head when it was prepared or the block it was found in; the
            journal seq of the lock on the ledger.
        witness_script: Bitcoin only: the HTLC witness script, lowercase hex (else "").
    """

    chain: str
    id: str
    hashlock: bytes
    amount: int
    expiry: Instant
    since_block: int = 0
    witness_script: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.chain, str) and self.chain and isinstance(self.id, str)
                and self.id):
            raise ValidationError("a leg reference needs a chain and an id")
        _hashlock(self.hashlock)
        _positive_int(self.amount, "amount")
        _instant(self.expiry)
        if isinstance(self.since_block, bool) or not isinstance(self.since_block, int) or (
                self.since_block < 0):
            raise ValidationError(f"since_block must be an int >= 0, got {self.since_block!r}")

    def to_json(self) -> dict[str, Any]:
        """JSON object; integers as decimal strings, bytes as ``0x`` hex."""
        return {"chain": self.chain, "id": self.id, "hashlock": "0x" + self.hashlock.hex(),
                "amount": str(self.amount), "expiry_kind": self.expiry.kind,
                "expiry": str(self.expiry.value), "since_block": str(self.since_block),
                "witness_script": self.witness_script}

    @classmethod
    def from_json(cls, data: object) -> LegRef:
        """Parse `to_json` output.

        Raises:
            ValidationError: missing or malformed fields.
        """
        if not isinstance(data, dict):
            raise ValidationError("a leg reference is a JSON object")
        try:
            kind, value = data["expiry_kind"], int(data["expiry"])
            if kind not in ("height", "time"):
                raise ValueError(f"expiry_kind {kind!r}")
            expiry: Instant = BlockHeight(value) if kind == "height" else UnixTime(value)
            return cls(
                chain=str(data["chain"]), id=str(data["id"]),
                hashlock=bytes.fromhex(str(data["hashlock"]).removeprefix("0x")),
                amount=int(data["amount"]), expiry=expiry,
                since_block=int(data["since_block"]),
                witness_script=str(data.get("witness_script", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"not a leg reference: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class PreparedLock:
    """A lock signed but not sent: the engine persists it, then calls `broadcast_lock`.

    Attributes:
        ref: the `LegRef` the lock creates.
        raw_txs: what `broadcast_lock` sends, in order. EVM: signed transactions (EIP-2718
            bytes; an ERC-20 ``approve`` before the ``lock`` when the allowance is short);
            Bitcoin: the funding transaction (BIP-144); ledger: the ``htlc_lock`` request body
            (`ledger.transactions.SignedTx.to_json`, canonical JSON, UTF-8).
        tx_ids: one id per raw tx (EVM tx hash, Bitcoin txid, ledger htlc id), for logs and
            lookups.
    """

    ref: LegRef
    raw_txs: tuple[bytes, ...]
    tx_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.raw_txs or len(self.raw_txs) != len(self.tx_ids):
            raise ValidationError("a prepared lock has one id per raw transaction, at least one")

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref.to_json(), "raw_txs": ["0x" + r.hex() for r in self.raw_txs],
                "tx_ids": list(self.tx_ids)}

    @classmethod
    def from_json(cls, data: object) -> PreparedLock:
        """Parse `to_json` output. Raises ValidationError when malformed."""
        if not isinstance(data, dict):
            raise ValidationError("a prepared lock is a JSON object")
        try:
            raws = tuple(bytes.fromhex(str(r).removeprefix("0x")) for r in data["raw_txs"])
            return cls(LegRef.from_json(data["ref"]), raws, tuple(map(str, data["tx_ids"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"not a prepared lock: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class LegView:
    """A leg as its chain shows it now.

    Attributes:
        status: see the module docstring.
        confirmations: blocks on top of (and including) the transaction that set the status:
            the lock for ``locked`` / ``confirmed`` (0 in a mempool), the redeem or refund for
            ``redeemed`` / ``refunded``; 0 for ``none``. The ledger applies at once: 1.
        expiry: as on chain (the reference's when nothing is on chain).
        amount: base units locked, as on chain (the reference's when nothing is on chain).
        secret: the 32-byte secret once ``redeemed``, else None.
    """

    status: LegStatus
    confirmations: int
    expiry: Instant
    amount: int
    secret: bytes | None = None


class HtlcLeg(Protocol):
    """One chain's HTLC operations (see the module docstring for the shared rules)."""

    @property
    def chain(self) -> str:
        """CAIP-2 id of the chain."""
        ...

    @property
    def timing(self) -> ChainTiming:
        """Block time, the confirmation depth this driver reports ``confirmed`` at, and kind."""
        ...

    def now(self) -> Instant:
        """The chain's own clock: tip height (Bitcoin), latest block timestamp (EVM), ledger
        clock (ledger). Compare it with expiries via `htlc.timelock.expired`."""
        ...

    def prepare_lock(self, terms: LegTerms) -> PreparedLock:
        """Sign our lock of `terms` (sender = this driver's key) without sending anything."""
        ...

    def broadcast_lock(self, prepared: PreparedLock) -> LegRef:
        """Send a prepared lock; idempotent (sending it again is harmless)."""
        ...

    def observe(self, ref: LegRef) -> LegView:
        """The leg's status as the chain shows it now."""
        ...

    def find_secret(self, ref: LegRef) -> bytes | None:
        """A 32-byte preimage of ``ref.hashlock`` revealed by a redeem of this leg (mempool or
        blocks), checked against the hashlock; None if none is seen."""
        ...

    def redeem(self, ref: LegRef, secret: bytes) -> str:
        """Redeem with `secret` (this driver's key must be the recipient on Bitcoin); the tx id."""
        ...

    def refund(self, ref: LegRef) -> str:
        """Refund to the sender once the chain's clock reached the expiry; the tx id."""
        ...

    def find_lock(self, terms: LegTerms) -> LegRef | None:
        """SECURITY: the lock on chain that matches `terms` exactly (sender, recipient, asset,
        amount, hashlock, expiry), in any state; None if there is none. The engine verifies
        the user's leg with this, never with what the user says."""
        ...


def check_terms(terms: LegTerms, chain: str, timing: ChainTiming, id_lens: tuple[int, int]
                ) -> None:
    """Check `terms` belong to this driver: its chain, its clock kind, identity lengths.

    Args:
        id_lens: (sender, recipient) byte lengths the chain uses.

    Raises:
        ValidationError: another chain, or an identity of the wrong length.
        TypeError: the expiry is of the other kind (a height on a time chain, or the reverse).
    """
    if terms.chain != chain:
        raise ValidationError(f"terms are for {terms.chain}, this leg is {chain}")
    timing.check(terms.expiry)
    if (len(terms.sender), len(terms.recipient)) != id_lens:
        raise ValidationError(f"{chain} identities are {id_lens[0]} and {id_lens[1]} bytes")


def lock_status(confirmations: int, depth: int) -> LegStatus:
    """``confirmed`` at `depth` or more confirmations, else ``locked``."""
    return LegStatus.CONFIRMED if confirmations >= depth else LegStatus.LOCKED
