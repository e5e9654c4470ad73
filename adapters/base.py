"""The chain-neutral contract between Ferry's core and a chain: the `ChainAdapter` Protocol and
the event types it returns.

Owns: `ChainAdapter`, `LockEvent`, `BlockRef`, `ReleaseOrder`, `TxStatus`, `Clock`, `event_id`.
Must not import web3, bitcoin, cosmpy or solana, nor any `adapters.<chain>` package.

Identity conventions (used by every package):
- A chain is named by its CAIP-2 id: ``"eip155:1"`` for Ethereum mainnet, ``"eip155:56"`` for BSC.
- An asset is (chain, address/denom). EVM addresses are lowercase ``0x`` hex, 20 bytes; the
  native coin of an EVM chain is the zero address ``NATIVE_TOKEN``.
- A lock event is keyed by ``event_id(chain, contract, nonce)``; that key is the idempotency key
  of the mint it causes, on the relayer and on the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

NATIVE_TOKEN = "0x0000000000000000000000000000000000000000"


def event_id(chain: str, contract: str, nonce: int) -> str:
    """Stable id of a lock event: ``"<caip2>/<contract lowercase>/<nonce>"``.

    Example: ``event_id("eip155:31337", "0xAbC...", 7) == "eip155:31337/0xabc.../7"``.
    """
    return f"{chain}/{contract.lower()}/{nonce}"


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block by height and hash (``0x`` hex, 32 bytes)."""

    number: int
    hash: str


@dataclass(frozen=True, slots=True)
class LockEvent:
    """One `Locked(nonce, token, sender, amount, recipient)` event from a bridge contract.

    Attributes:
        chain: CAIP-2 chain id the event was read from.
        contract: bridge address that emitted the log (lowercase hex); adapters return only
            logs whose emitter equals the configured bridge.
        nonce: the bridge's strictly increasing lock nonce.
        token: locked token (lowercase hex; `NATIVE_TOKEN` for the native coin).
        sender: locking account (lowercase hex).
        amount: amount the bridge actually received, in the token's base units.
        recipient: native-ledger account, 32 bytes (an Ed25519 public key).
        tx_hash, log_index, block_number, block_hash: where the log sits (on UTXO chains:
            the transaction id, output index, height and block hash of the deposit output).
        uncredited: None for a lock to mint; otherwise why the chain's adapter will not credit
            this deposit (dust, a payment without a recipient commitment, ...): the relayer
            stores it held with that reason and validators never sign it.
    """

    chain: str
    contract: str
    nonce: int
    token: str
    sender: str
    amount: int
    recipient: bytes
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    uncredited: str | None = None

    @property
    def event_id(self) -> str:
        return event_id(self.chain, self.contract, self.nonce)


@dataclass(frozen=True, slots=True)
class ReleaseOrder:
    """Everything a bridge `release` call needs.

    Attributes:
        burn_id: 32-byte burn id assigned by the native ledger.
        token: token to pay out (lowercase hex; `NATIVE_TOKEN` for the native coin).
        recipient: payee (lowercase hex, 20 bytes).
        amount: base units.
        signatures: 65-byte (r || s || v) EIP-712 signatures, sorted by ascending signer address.
    """

    burn_id: bytes
    token: str
    recipient: str
    amount: int
    signatures: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class PreparedTx:
    """A signed transaction not yet broadcast: persist it (intent) before `broadcast`.

    Attributes:
        tx_hash: ``0x`` hex hash the transaction will have on chain.
        raw: the signed transaction bytes, re-broadcastable as they are (same hash).
        sender_nonce: the sender account nonce it consumes.
    """

    tx_hash: str
    raw: bytes
    sender_nonce: int


class TxStatus(StrEnum):
    """Where a submitted transaction stands."""

    UNKNOWN = "unknown"  # not in the mempool nor in a block (dropped, or never seen)
    PENDING = "pending"  # in the mempool
    INCLUDED = "included"  # in a block, not yet at confirmation depth
    FINAL = "final"  # at or past confirmation depth, succeeded
    FAILED = "failed"  # included and reverted


@runtime_checkable
class ChainAdapter(Protocol):
    """What the chain-neutral core may ask of a chain. Finality is adapter config.

    Reads raise `RpcUnavailable` (retryable) or `WrongChain`; optional capabilities raise
    `Unsupported` rather than guess.
    """

    chain: str
    confirmation_depth: int

    def head(self) -> BlockRef:
        """The latest block."""
        ...

    def finalized(self, head: BlockRef | None = None) -> BlockRef:
        """The newest block at or past confirmation depth (or the `finalized` tag if configured).

        Args:
            head: the head the caller just read, so it is not fetched again.
        """
        ...

    def block_hash(self, number: int) -> str | None:
        """Canonical hash at `number`, or None above the head."""
        ...

    def lock_events(self, from_block: int, to_block: int) -> list[LockEvent]:
        """Lock events emitted by the bridge address in [from_block, to_block], in log order."""
        ...

    def prepare_release(self, order: ReleaseOrder) -> PreparedTx:
        """Sign a `release` transaction without broadcasting it."""
        ...

    def broadcast(self, prepared: PreparedTx) -> str:
        """Send a prepared transaction; idempotent for the same bytes. Returns its hash."""
        ...

    def submit_release(self, order: ReleaseOrder) -> str:
        """`prepare_release` then `broadcast`; returns the transaction hash (``0x`` hex)."""
        ...

    def release_message_hash(
        self, burn_id: bytes, token: str, recipient: str, amount: int, set_nonce: int
    ) -> bytes:
        """The 32-byte message validators sign to release `amount` of `token` for `burn_id`."""
        ...

    def recover_release_signer(self, message_hash: bytes, signature: bytes) -> str:
        """The validator identity (address) that made `signature`; raises `InvalidSignature`."""
        ...

    def validator_set(self) -> tuple[int, tuple[str, ...], int]:
        """(set nonce, member addresses lowercase, threshold) of the bridge's current set."""
        ...

    def tx_status(self, tx_hash: str) -> TxStatus:
        ...

    def is_released(self, burn_id: bytes) -> bool:
        """Whether the bridge has already paid out `burn_id` (chain state, at head)."""
        ...

    def custody_totals(self, token: str) -> tuple[int, int]:
        """(total locked, total released) for `token` in base units, read from the bridge."""
        ...


class Clock(Protocol):
    """Injected time source; the core never reads the wall clock directly."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


def asset_key(chain: str, token: str) -> str:
    """Ledger id of the wrapped asset for origin (chain, token): ``"<caip2>/<token lowercase>"``."""
    return f"{chain}/{token.lower()}"


# --------------------------------------------------------------------------- UTXO custody
@dataclass(frozen=True, slots=True)
class Coin:
    """An unspent output held in custody on a UTXO chain (Bitcoin's vault and deposit scripts).

    Attributes:
        txid: transaction id, display hex (no ``0x``).
        vout: output index.
        amount: base units (sats).
        account: the native-ledger account (32 bytes) whose deposit script holds it, or None
            for the plain vault script.
    """

    txid: str
    vout: int
    amount: int
    account: bytes | None = None

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"


@dataclass(frozen=True, slots=True)
class ReleasePlan:
    """An unsigned custody spend the relayer proposes and validators co-sign.

    The unsigned transaction is the authority: validators decode and check `unsigned` against
    what they observed themselves; the other fields are the relayer's claims, for display and
    for assembling (SECURITY: on Bitcoin a wrong coin amount or script only yields signatures
    that do not verify, because BIP-143 commits to both).

    Attributes:
        kind: ``"release"`` (pays a burn) or ``"consolidation"`` (merges coins into the vault).
        chain: CAIP-2 id.
        txid: id of the transaction once signed (segwit: the witness does not change it).
        unsigned: the transaction without witnesses.
        coins: the inputs, in input order.
        dest_address: the payee (release) or the vault address (consolidation).
        amount: the burned amount the vault gives up (release), base units.
        payee_amount: what the payee output carries (``amount - fee`` for a release).
        fee: miner fee, base units. fee_rate: sat/vB. change: back to the vault.
        version: 0 for the first plan of a burn, +1 per fee bump (same inputs).
    """

    kind: str
    chain: str
    txid: str
    unsigned: bytes
    coins: tuple[Coin, ...]
    dest_address: str
    amount: int
    payee_amount: int
    fee: int
    fee_rate: int
    change: int
    version: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind, "chain": self.chain, "txid": self.txid,
            "unsigned": self.unsigned.hex(),
            "coins": [{"txid": c.txid, "vout": c.vout, "amount": str(c.amount),
                       "account": None if c.account is None else "0x" + c.account.hex()}
                      for c in self.coins],
            "dest_address": self.dest_address, "amount": str(self.amount),
            "payee_amount": str(self.payee_amount), "fee": str(self.fee),
            "fee_rate": str(self.fee_rate), "change": str(self.change),
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ReleasePlan:
        """Parse `to_json` output. Raises KeyError/ValueError/TypeError on malformed input."""
        coins_raw = data["coins"]
        if not isinstance(coins_raw, list):
            raise TypeError("coins must be a list")
        coins = tuple(
            Coin(txid=str(c["txid"]), vout=int(c["vout"]), amount=int(str(c["amount"])),
                 account=None if c.get("account") is None
                 else bytes.fromhex(str(c["account"]).removeprefix("0x")))
            for c in coins_raw)
        return cls(
            kind=str(data["kind"]), chain=str(data["chain"]), txid=str(data["txid"]),
            unsigned=bytes.fromhex(str(data["unsigned"])), coins=coins,
            dest_address=str(data["dest_address"]), amount=int(str(data["amount"])),
            payee_amount=int(str(data["payee_amount"])), fee=int(str(data["fee"])),
            fee_rate=int(str(data["fee_rate"])), change=int(str(data["change"])),
            version=int(str(data["version"])),
        )


@runtime_checkable
class UtxoCustody(Protocol):
    """What the core asks of a chain whose custody is a multisig over coins (Bitcoin).

    Releases there are proposals: the relayer plans a spend (`plan_release`), validators check
    and sign it independently, the relayer assembles at least m signatures and broadcasts.
    """

    chain: str
    confirmation_depth: int

    def fee_rate(self) -> int:
        """Fee rate to use now (sat/vB): the node's estimate, else config, capped."""
        ...

    def plan_release(self, coins: list[Coin], dest_address: str, amount: int,
                     fee_rate: int) -> ReleasePlan:
        """Select from `coins` and build an unsigned release paying `dest_address`."""
        ...

    def bump_release(self, plan: ReleasePlan, fee_rate: int) -> ReleasePlan:
        """The same spend at a higher fee rate (same inputs; RBF)."""
        ...

    def verify_release_signatures(self, plan: ReleasePlan, signer: str,
                                  signatures: list[bytes]) -> bool:
        """Whether `signatures` (one per input) by member `signer` are valid for `plan`."""
        ...

    def assemble_release(self, plan: ReleasePlan,
                         signatures: Mapping[str, list[bytes]]) -> PreparedTx:
        """The signed transaction from at least m members' signatures; `QuorumNotMet` else."""
        ...

    def plan_consolidation(self, coins: list[Coin], fee_rate: int) -> ReleasePlan:
        """An unsigned spend merging `coins` into one vault output (fee from the coins)."""
        ...

    def coin_depth(self, coin: Coin) -> int | None:
        """Confirmations of `coin` if unspent in the best chain, else None (read from chain)."""
        ...

    def broadcast(self, prepared: PreparedTx) -> str: ...

    def tx_status(self, tx_hash: str) -> TxStatus: ...

    def members(self) -> tuple[str, ...]:
        """Custody members (hex public keys) and, via `threshold`, how many must sign."""
        ...

    @property
    def threshold(self) -> int: ...
