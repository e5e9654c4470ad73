"""Relayer tables (SQLModel). The schema itself is created by the Alembic migrations in
`relayer/migrations`; these classes describe the same tables for queries.

Owns: table definitions only. Must not hold logic. Amounts are decimal strings (TEXT): wei
amounts exceed 64-bit integers.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


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
    nonce: int = 0  # lock nonce on the bridge, or the burn's ledger seq
    status: str = Field(index=True)
    reason: str = ""
    created_at: float
    updated_at: float
    dest_tx_hash: str | None = None
    dest_raw_tx: str | None = None  # signed release, hex: persisted before broadcast
    dest_sender_nonce: int | None = None
    ledger_seq: int | None = None


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
