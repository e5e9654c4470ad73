"""Initial ledger schema: state, journal, validator sets, bridges, assets, accounts, balances,
mints, burns, transfers.

Revision ID: 0001
Revises:
Create Date: 2025-11-21

Frozen: later changes go in new revisions; this file never imports `ledger.models`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
U256 = sa.String(78).with_variant(sa.Numeric(78, 0), "postgresql")
HEX32 = sa.String(66)


def _seq_fk() -> sa.Column:
    return sa.Column(
        "seq", sa.BigInteger(), sa.ForeignKey("ledger_journal.seq"), nullable=False, unique=True
    )


def upgrade() -> None:
    op.create_table(
        "ledger_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("journal_seq", sa.BigInteger(), nullable=False),
        sa.Column("journal_head", HEX32, nullable=False),
    )
    op.create_table(
        "ledger_journal",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", HEX32, nullable=False),
        sa.Column("hash", HEX32, nullable=False),
    )
    op.create_table(
        "ledger_validator_sets",
        sa.Column("epoch", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("members", sa.Text(), nullable=False),
        _seq_fk(),
    )
    op.create_table(
        "ledger_bridges",
        sa.Column("chain", sa.String(64), primary_key=True),
        sa.Column("contract", sa.String(128), nullable=False),
        _seq_fk(),
    )
    op.create_table(
        "ledger_assets",
        sa.Column("asset", sa.String(200), primary_key=True),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("origin_chain", sa.String(64), nullable=False),
        sa.Column("origin_token", sa.String(135), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("supply", U256, nullable=False),
        sa.Column("minted_total", U256, nullable=False),
        sa.Column("burned_total", U256, nullable=False),
        _seq_fk(),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("account", HEX32, primary_key=True),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "ledger_balances",
        sa.Column("account", HEX32, sa.ForeignKey("ledger_accounts.account"), primary_key=True),
        sa.Column("asset", sa.String(200), sa.ForeignKey("ledger_assets.asset"), primary_key=True),
        sa.Column("amount", U256, nullable=False),
    )
    op.create_table(
        "ledger_mints",
        sa.Column("event_id", sa.String(300), primary_key=True),
        _seq_fk(),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("contract", sa.String(128), nullable=False),
        sa.Column("nonce", U256, nullable=False),
        sa.Column("token", sa.String(135), nullable=False),
        sa.Column("sender", sa.String(135), nullable=False),
        sa.Column("asset", sa.String(200), sa.ForeignKey("ledger_assets.asset"), nullable=False),
        sa.Column("recipient", HEX32, sa.ForeignKey("ledger_accounts.account"), nullable=False),
        sa.Column("amount", U256, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(130), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(130), nullable=False),
    )
    op.create_table(
        "ledger_burns",
        sa.Column("burn_id", HEX32, primary_key=True),
        _seq_fk(),
        sa.Column("account", HEX32, sa.ForeignKey("ledger_accounts.account"), nullable=False),
        sa.Column("asset", sa.String(200), sa.ForeignKey("ledger_assets.asset"), nullable=False),
        sa.Column("amount", U256, nullable=False),
        sa.Column("dest_chain", sa.String(64), nullable=False),
        sa.Column("dest_address", sa.String(128), nullable=False),
        sa.Column("tx", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(130), nullable=False),
    )
    op.create_table(
        "ledger_transfers",
        sa.Column("tx_id", HEX32, primary_key=True),
        _seq_fk(),
        sa.Column("account", HEX32, sa.ForeignKey("ledger_accounts.account"), nullable=False),
        sa.Column("to_account", HEX32, sa.ForeignKey("ledger_accounts.account"), nullable=False),
        sa.Column("asset", sa.String(200), sa.ForeignKey("ledger_assets.asset"), nullable=False),
        sa.Column("amount", U256, nullable=False),
        sa.Column("tx", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(130), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "ledger_transfers", "ledger_burns", "ledger_mints", "ledger_balances", "ledger_accounts",
        "ledger_assets", "ledger_bridges", "ledger_validator_sets", "ledger_journal",
        "ledger_state",
    ):
        op.drop_table(table)
