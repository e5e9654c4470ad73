"""SQLModel tables of the native ledger (schema created by Alembic, `ledger/migrations/`).

Owns: the table definitions and the `U256` column type. Must not hold business rules: the
service decides what is written; these classes only say how it is stored. The API never returns
these classes (its schemas live in `api/ledger.py`).

Storage conventions:
- Tables are prefixed ``ledger_`` and live in their own metadata (`metadata`), so the ledger can
  share a PostgreSQL database with the relayer without clashes.
- Amounts (uint256) use `U256`: ``NUMERIC(78, 0)`` on PostgreSQL, a decimal string
  ``VARCHAR(78)`` elsewhere (SQLite integers are 64-bit); Python sees `int` either way.
- Byte strings (accounts, hashes, burn ids, signatures) are lowercase ``0x`` hex text.
- `seq` is the journal sequence number of the entry that created a row, except in
  `DepositAddressRow`, which is not journaled and numbers its rows itself.
- Times (`registered_at`, `created_at`, `settled_at`) are seconds since the epoch from the
  ledger's injected clock; HTLC timelocks are whole ledger-clock seconds (``BIGINT``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import registry
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, SQLModel

SEQ = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite


class U256(TypeDecorator[int]):
    """An unsigned 256-bit integer column (amounts in base units)."""

    impl = String(78)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(String(78))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> object:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**256:
            raise ValueError(f"U256 column needs an int in 0..2**256-1, got {value!r}")
        return value if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: object, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return int(value)
        return int(str(value))


class LedgerTable(SQLModel, registry=registry()):
    """Base of every ledger table (own metadata)."""


metadata = LedgerTable.metadata


def _u256() -> Any:
    return Field(sa_column=Column(U256(), nullable=False))


class LedgerStateRow(LedgerTable, table=True):
    """The single row (``id = 1``) holding the journal head; every write locks it first."""

    __tablename__ = "ledger_state"
    id: int = Field(primary_key=True)
    network: str = Field(sa_type=String(64))
    epoch: int = Field(sa_type=BigInteger)
    journal_seq: int = Field(sa_type=BigInteger)
    journal_head: str = Field(sa_type=String(66))


class JournalRow(LedgerTable, table=True):
    """Append-only hash chain: ``hash = sha256(prev_hash || payload)`` (see `ledger.journal`)."""

    __tablename__ = "ledger_journal"
    seq: int = Field(sa_column=Column(SEQ, primary_key=True, autoincrement=False))
    kind: str = Field(sa_type=String(32))
    payload: str = Field(sa_type=Text)
    prev_hash: str = Field(sa_type=String(66))
    hash: str = Field(sa_type=String(66))


class ValidatorSetRow(LedgerTable, table=True):
    """Every validator set the ledger has had; the current one has the highest epoch."""

    __tablename__ = "ledger_validator_sets"
    epoch: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    threshold: int
    members: str = Field(sa_type=Text)  # canonical JSON of ValidatorSet.to_json()["members"]
    seq: int = Field(sa_type=BigInteger, foreign_key="ledger_journal.seq", unique=True)


class BridgeRow(LedgerTable, table=True):
    """The bridge contract of each origin chain (CAIP-2)."""

    __tablename__ = "ledger_bridges"
    chain: str = Field(sa_type=String(64), primary_key=True)
    contract: str = Field(sa_type=String(128))
    seq: int = Field(sa_type=BigInteger, foreign_key="ledger_journal.seq", unique=True)


class AssetRow(LedgerTable, table=True):
    """A wrapped asset, id ``asset_key(origin_chain, origin_token)``, with supply counters."""

    __tablename__ = "ledger_assets"
    asset: str = Field(sa_type=String(200), primary_key=True)
    symbol: str = Field(sa_type=String(32))
    origin_chain: str = Field(sa_type=String(64))
    origin_token: str = Field(sa_type=String(135))
    decimals: int
    supply: int = _u256()
    minted_total: int = _u256()
    burned_total: int = _u256()
    seq: int = Field(sa_type=BigInteger, foreign_key="ledger_journal.seq", unique=True)


class AccountRow(LedgerTable, table=True):
    """An account (``0x`` hex Ed25519 key) and its next transaction nonce."""

    __tablename__ = "ledger_accounts"
    account: str = Field(sa_type=String(66), primary_key=True)
    nonce: int = Field(sa_type=BigInteger)


class BalanceRow(LedgerTable, table=True):
    __tablename__ = "ledger_balances"
    account: str = Field(sa_type=String(66), primary_key=True, foreign_key="ledger_accounts.account")
    asset: str = Field(sa_type=String(200), primary_key=True, foreign_key="ledger_assets.asset")
    amount: int = _u256()


class MintRow(LedgerTable, table=True):
    """A minted lock event. SECURITY: the primary key on `event_id` is what makes a second mint
    of the same event impossible, whatever the code above it does."""

    __tablename__ = "ledger_mints"
    event_id: str = Field(sa_type=String(300), primary_key=True)
    seq: int = Field(sa_type=BigInteger, foreign_key="ledger_journal.seq", unique=True)
    chain: str = Field(sa_type=String(64))
    contract: str = Field(sa_type=String(128))
    nonce: int = _u256()
    token: str = Field(sa_type=String(135))
    sender: str = Field(sa_type=String(135))
    asset: str = Field(sa_type=String(200), foreign_key="ledger_assets.asset")
    recipient: str = Field(sa_type=String(66), foreign_key="ledger_accounts.account")
    amount: int = _u256()
    epoch: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(sa_type=String(130))
    log_index: int = Field(sa_type=BigInteger)
    block_number: int = Field(sa_type=BigInteger)
    block_hash: str = Field(sa_type=String(130))


class BurnRow(LedgerTable, table=True):
    """A burn waiting to be (or already) paid out on `dest_chain`."""

    __tablename__ = "ledger_burns"
    burn_id: str = Field(sa_type=String(66), primary_key=True)
    seq: int = Field(sa_type=BigInteger, foreign_key="ledger_journal.seq", unique=True)
    account: str = Field(sa_type=String(66), foreign_key="ledger_accounts.account")
    asset: str = Field(sa_type=String(200), foreign_key="ledger_assets.asset")
    amount: int = _u256()
    dest_chain: str = Field(sa_type=String(64))
    dest_address: str = Field(sa_type=String(128))
    tx: str = Field(sa_type=Text)  # canonical JSON of the signed body
    signature: str = Field(sa_type=String(130))


class TransferRow(LedgerTable, table=True):
    """A transfer between two accounts; `tx_id` = sha256 of the signed bytes."""

    __tablename__ = "ledger_transfers"
    tx_id: str = Field(sa_type=String(66), primary_key=True)
    seq: int = Field(sa_type=BigInteger, foreign_key="ledger_journal.seq", unique=True)
    account: str = Field(sa_type=String(66), foreign_key="ledger_accounts.account")
    to_account: str = Field(sa_type=String(66), foreign_key="ledger_accounts.account")
    asset: str = Field(sa_type=String(200), foreign_key="ledger_assets.asset")
    amount: int = _u256()
    tx: str = Field(sa_type=Text)
    signature: str = Field(sa_type=String(130))


class DepositAddressRow(LedgerTable, table=True):
    """An (origin chain, account) pair whose deposit address scanners derive and watch.

    Only the pair is stored: the address or script is derived by the chain's adapter, never
    here. Not journaled (registering moves no balance), so `seq` is this table's own order:
    never reused (``AUTOINCREMENT`` on SQLite, ``BIGSERIAL`` on PostgreSQL) and assigned under
    the ledger write lock, so rows commit in `seq` order and a reader paging by
    ``seq > after_seq`` never skips one. `registered_at` is seconds since the epoch from the
    ledger's injected clock.
    """

    __tablename__ = "ledger_deposit_addresses"
    __table_args__ = (
        UniqueConstraint("chain", "account", name="uq_ledger_deposit_addresses_chain_account"),
        Index("ix_ledger_deposit_addresses_chain_seq", "chain", "seq"),
        {"sqlite_autoincrement": True},
    )
    seq: int = Field(sa_column=Column(SEQ, primary_key=True, autoincrement=True))
    chain: str = Field(sa_type=String(64))
    account: str = Field(sa_type=String(66))
    registered_at: float


class HtlcRow(LedgerTable, table=True):
    """A hashed-timelock contract (rules: `ledger.htlcs`; format: `htlc.hashlock`).

    `htlc_id` is the ``htlc_lock`` tx id (sha256 of the signed bytes); `seq` the journal seq of
    the entry that created the row. `origin` is ``lock`` (debited from `sender` by a signed
    ``htlc_lock``) or, reserved for HTLC-driven minting, ``mint`` (`sender` NULL; a refund then
    burns). `state` moves ``locked`` -> ``redeemed`` | ``refunded`` once; `preimage` (32 bytes,
    ``0x`` hex) is set by the redeem and stays readable. `timelock` is in ledger-clock seconds.
    """

    __tablename__ = "ledger_htlcs"
    __table_args__ = (
        Index("ix_ledger_htlcs_hashlock", "hashlock"),
        Index("ix_ledger_htlcs_state_timelock", "state", "timelock"),
    )
    htlc_id: str = Field(sa_type=String(66), primary_key=True)
    seq: int = Field(sa_type=BigInteger, foreign_key="ledger_journal.seq", unique=True)
    origin: str = Field(sa_type=String(16))
    sender: str | None = Field(default=None, sa_type=String(66),
                               foreign_key="ledger_accounts.account")
    recipient: str = Field(sa_type=String(66), foreign_key="ledger_accounts.account")
    asset: str = Field(sa_type=String(200), foreign_key="ledger_assets.asset")
    amount: int = _u256()
    hashlock: str = Field(sa_type=String(66))
    timelock: int = Field(sa_type=BigInteger)
    state: str = Field(sa_type=String(16))
    preimage: str | None = Field(default=None, sa_type=String(66))
    created_at: float
    settled_at: float | None = None


class MintIntentRow(LedgerTable, table=True):
    """A registered HTLC mint intent (terms: `htlc.mint_intent.MintIntent`).

    Not journaled (registering moves no balance): `seq` is this table's own order, assigned
    under the ledger write lock like the deposit registry's. One intent per (chain, hashlock):
    a hashlock opens one script, so a funding output maps to exactly one intent.
    """

    __tablename__ = "ledger_mint_intents"
    __table_args__ = (
        UniqueConstraint("chain", "hashlock", name="uq_ledger_mint_intents_chain_hashlock"),
        Index("ix_ledger_mint_intents_chain_seq", "chain", "seq"),
        {"sqlite_autoincrement": True},
    )
    seq: int = Field(sa_column=Column(SEQ, primary_key=True, autoincrement=True))
    intent_id: str = Field(sa_type=String(66), unique=True)
    chain: str = Field(sa_type=String(64))
    account: str = Field(sa_type=String(66))
    hashlock: str = Field(sa_type=String(66))
    refund_pubkey: str = Field(sa_type=String(68))
    btc_expiry: int = Field(sa_type=BigInteger)
    ledger_timelock: int = Field(sa_type=BigInteger)
    registered_at: float
