"""Deposit-address registry: the (origin chain, account) pairs whose per-account deposit
addresses the scanners derive and watch. Not journaled; `seq` is the table's own order.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Frozen: later changes go in new revisions; this file never imports `ledger.models`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = "ledger_deposit_addresses"
INDEX = "ix_ledger_deposit_addresses_chain_seq"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("account", sa.String(66), nullable=False),
        sa.Column("registered_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("chain", "account", name="uq_ledger_deposit_addresses_chain_account"),
        sqlite_autoincrement=True,  # SQLite never reuses a seq (readers page by seq)
    )
    op.create_index(INDEX, TABLE, ["chain", "seq"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.drop_table(TABLE)
