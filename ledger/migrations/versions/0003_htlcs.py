"""Native-ledger HTLCs: one row per hashed-timelock contract (``htlc_lock`` transactions; later
HTLC-driven mints), with its state, the revealed preimage and the settlement time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Frozen: later changes go in new revisions; this file never imports `ledger.models`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

U256 = sa.String(78).with_variant(sa.Numeric(78, 0), "postgresql")
HEX32 = sa.String(66)
TABLE = "ledger_htlcs"
INDEXES = {
    "ix_ledger_htlcs_hashlock": ["hashlock"],  # GET /v1/ledger/htlcs?hashlock= (watchers)
    "ix_ledger_htlcs_state_timelock": ["state", "timelock"],  # locked HTLCs due for refund
}


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("htlc_id", HEX32, primary_key=True),
        sa.Column("seq", sa.BigInteger(), sa.ForeignKey("ledger_journal.seq"), nullable=False,
                  unique=True),
        sa.Column("origin", sa.String(16), nullable=False),  # "lock" | "mint" (reserved)
        sa.Column("sender", HEX32, sa.ForeignKey("ledger_accounts.account"), nullable=True),
        sa.Column("recipient", HEX32, sa.ForeignKey("ledger_accounts.account"), nullable=False),
        sa.Column("asset", sa.String(200), sa.ForeignKey("ledger_assets.asset"), nullable=False),
        sa.Column("amount", U256, nullable=False),
        sa.Column("hashlock", HEX32, nullable=False),
        sa.Column("timelock", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),  # locked | redeemed | refunded
        sa.Column("preimage", HEX32, nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("settled_at", sa.Float(), nullable=True),
    )
    for name, columns in INDEXES.items():
        op.create_index(name, TABLE, columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name=TABLE)
    op.drop_table(TABLE)
