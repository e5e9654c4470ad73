"""HTLC mint intents: the terms (account, hashlock, refund key, BTC expiry height, ledger
timelock) whose mint-HTLC scripts the scanners derive and watch. Not journaled; `seq` is the
table's own order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

Frozen: later changes go in new revisions; this file never imports `ledger.models`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = "ledger_mint_intents"
INDEX = "ix_ledger_mint_intents_chain_seq"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("intent_id", sa.String(66), nullable=False, unique=True),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("account", sa.String(66), nullable=False),
        sa.Column("hashlock", sa.String(66), nullable=False),
        sa.Column("refund_pubkey", sa.String(68), nullable=False),
        sa.Column("btc_expiry", sa.BigInteger(), nullable=False),
        sa.Column("ledger_timelock", sa.BigInteger(), nullable=False),
        sa.Column("registered_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("chain", "hashlock", name="uq_ledger_mint_intents_chain_hashlock"),
        sqlite_autoincrement=True,
    )
    op.create_index(INDEX, TABLE, ["chain", "seq"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.drop_table(TABLE)
