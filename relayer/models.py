"""Relayer tables (SQLModel). The schema itself is created by the Alembic migrations in
`relayer/migrations`; these classes describe the same tables for queries.

Owns: table definitions only. Must not hold logic. Amounts are decimal strings (TEXT): wei
amounts exceed 64-bit integers.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, String, false
from sqlmodel import Field, SQLModel

from ledger.models import U256


class Transfer(SQLModel, table=True):
    __tablename__ = "transfers"

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # relayer.machine.TransferKind
    event_key: str = Field(unique=True)  # lock: event_id(); burn: 0x burn id
    source_chain: str
    dest_chain: str
    token: str  # origin-chain token, lowercase hex
    asset: str  # ledger asset key
    amount: str  # base units, decimal string
    sender: str
    recipient: str
    src_tx_hash: str
    log_index: int = 0
    block_number: int = 0
    block_hash: str = ""
    # lock nonce on the bridge (uint256; Bitcoin: outpoint-derived), or the burn's ledger seq
    nonce: int = Field(default=0, sa_column=Column(U256(), nullable=False))
    status: str = Field(index=True)
    reason: str = ""
    created_at: float
    updated_at: float
    dest_tx_hash: str | None = None
    dest_raw_tx: str | None = None  # signed release, hex: persisted before broadcast
    dest_sender_nonce: int | None = None
    ledger_seq: int | None = None
    # migration 0004 (relayer.risk_gate): why it waits (validators.risk.WaitReason value) and
    # the earliest time it could move; an operator release skips the delay and volume limit.
    wait_reason: str | None = None
    wait_until: float | None = None
    operator_released: bool = Field(default=False, sa_column=Column(
        Boolean, nullable=False, server_default=false()))
    # migration 0007 (relayer replicas): the replica working on this lock's mint, until when.
    claimed_by: str | None = None
    claim_expires_at: float | None = None


class JobLease(SQLModel, table=True):
    """A singleton job's lease among relayer replicas (`relayer.leases`; migration 0007)."""

    __tablename__ = "job_leases"

    name: str = Field(primary_key=True, max_length=200)
    holder: str = Field(max_length=200)
    token: int = Field(default=1, sa_column=Column(BigInteger, nullable=False))
    expires_at: float


class TransferHistory(SQLModel, table=True):
    __tablename__ = "transfer_history"

    id: int | None = Field(default=None, primary_key=True)
    transfer_id: int = Field(index=True, foreign_key="transfers.id")
    from_status: str | None
    to_status: str
    reason: str
    at: float


class Attestation(SQLModel, table=True):
    """A verified validator signature, stored as received (one per validator, key and epoch)."""

    __tablename__ = "attestations"

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # "lock" or "release"
    event_key: str = Field(index=True)
    epoch: int  # validator-set epoch (lock) or bridge set nonce (release)
    validator: str  # 0x Ed25519 public key (lock) or 0x EVM address (release)
    signature: str  # 0x hex
    message_hash: str  # 0x sha256 of the attested bytes (lock) or the EIP-712 digest (release)
    received_at: float


class Cursor(SQLModel, table=True):
    __tablename__ = "cursors"

    name: str = Field(primary_key=True)  # "chain:<caip2>" or "ledger:burns"
    number: int
    hash: str = ""


class ScannedBlock(SQLModel, table=True):
    """Recent (height, hash) pairs the watcher scanned up to: the reorg walk-back trail."""

    __tablename__ = "scanned_blocks"

    chain: str = Field(primary_key=True)
    number: int = Field(primary_key=True)
    hash: str


class CustodyCoin(SQLModel, table=True):
    """An output the custody (Bitcoin vault) holds.

    status: ``unspent`` (spendable), ``reserved`` (an input of a proposed spend, persisted before
    any signature is asked for), ``spent`` (that spend is final). origin: ``deposit`` (a minted
    deposit) or ``change`` (change of Ferry's own spend).
    """

    __tablename__ = "coins"

    id: int | None = Field(default=None, primary_key=True)
    chain: str
    txid: str
    vout: int
    amount: int = Field(sa_column=Column(U256(), nullable=False))
    account: str | None = None  # 0x hex ledger account of a deposit script; None: the vault
    origin: str
    status: str
    spent_by: str | None = Field(default=None, sa_column=Column(String(64)))  # plan txid
    created_at: float
    updated_at: float


class CustodyPlan(SQLModel, table=True):
    """A proposed custody spend (`adapters.base.ReleasePlan` as JSON) and, once assembled, its
    signed bytes. status: ``signing`` (validators asked), ``broadcast`` (raw persisted, sent),
    ``replaced`` (a fee bump superseded it), ``final``, ``abandoned``."""

    __tablename__ = "custody_plans"

    id: int | None = Field(default=None, primary_key=True)
    chain: str
    txid: str = Field(unique=True)
    kind: str
    transfer_id: int | None = Field(default=None, foreign_key="transfers.id")
    version: int
    status: str
    plan: str
    raw_tx: str | None = None
    broadcast_height: int | None = None
    created_at: float
    updated_at: float


class Swap(SQLModel, table=True):
    """An HTLC swap the relayer takes part in (`relayer.swap_store`; migration 0003).

    id: ``0x`` hex SHA-256 of the canonical terms (`relayer.swap_store.SwapTerms.canonical`).
    status: `htlc.machine.SwapStatus` value, written only by `SwapStore.advance`. Each leg
    (``initiator_*``: the user's, ``participant_*``: the relayer's) has its chain (CAIP-2),
    asset (token address or denom on that chain), amount (base units), sender and recipient
    (chain-native identities), expiry (kind ``height`` or ``time`` and value), leg status
    (`htlc.machine.LegStatus` value, as the chain last showed it), lock ref (the HTLC's
    id or outpoint) and lock tx. The lock deadline is on the participant leg's clock.
    """

    __tablename__ = "swaps"

    id: str = Field(primary_key=True)
    pair: str
    status: str = Field(index=True)
    initiator_chain: str = Field(index=True)
    initiator_asset: str
    initiator_amount: int = Field(sa_column=Column(U256(), nullable=False))
    initiator_sender: str
    initiator_recipient: str
    initiator_expiry_kind: str  # "height" | "time"
    initiator_expiry: int
    initiator_status: str
    initiator_lock_ref: str | None = None
    initiator_lock_tx: str | None = None
    participant_chain: str = Field(index=True)
    participant_asset: str
    participant_amount: int = Field(sa_column=Column(U256(), nullable=False))
    participant_sender: str
    participant_recipient: str
    participant_expiry_kind: str
    participant_expiry: int
    participant_status: str
    participant_lock_ref: str | None = None
    participant_lock_tx: str | None = None  # signed raw lock, hex: persisted before broadcast
    hashlock: str = Field(unique=True)  # 0x hex, 32 bytes
    secret: str | None = None  # 0x hex, 32 bytes, once learnt; never logged
    lock_deadline: int  # participant leg's clock (same kind as participant_expiry)
    user_refund: str | None = None  # the user's pre-signed refund of its leg, raw tx hex
    quote_rate_num: int = Field(sa_column=Column(U256(), nullable=False))
    quote_rate_den: int = Field(sa_column=Column(U256(), nullable=False))
    quote_fee: int = Field(sa_column=Column(U256(), nullable=False))  # participant asset units
    reason: str = ""
    created_at: float
    updated_at: float


class SwapHistory(SQLModel, table=True):
    __tablename__ = "swap_history"

    id: int | None = Field(default=None, primary_key=True)
    swap_id: str = Field(index=True, foreign_key="swaps.id")
    from_status: str | None
    to_status: str
    reason: str
    at: float
