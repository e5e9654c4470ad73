"""Ledger risk engine: when the ledger first saw each lock event (the large-transfer delay starts
then) and any operator release of it, what it minted per route (the rolling window), and the
routes an operator paused. Not journaled (nothing here moves a balance).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Frozen: later changes go in new revisions; this file never imports `ledger.models`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
U256 = sa.String(78).with_variant(sa.Numeric(78, 0), "postgresql")
SEEN = "ledger_risk_seen"
USAGE = "ledger_risk_usage"
PAUSES = "ledger_risk_pauses"
USAGE_INDEX = "ix_ledger_risk_usage_route_at"


def upgrade() -> None:
    op.create_table(
        SEEN,
        sa.Column("event_id", sa.String(300), primary_key=True),
        sa.Column("route", sa.String(400), nullable=True),  # NULL: released before first sight
        sa.Column("amount", U256, nullable=True),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("released_by", sa.Text(), nullable=True),
        sa.Column("released_at", sa.Float(), nullable=True),
    )
    op.create_table(
        USAGE,
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("route", sa.String(400), nullable=False),
        sa.Column("event_id", sa.String(300), nullable=False, unique=True),
        sa.Column("amount", U256, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index(USAGE_INDEX, USAGE, ["route", "at"])
    op.create_table(
        PAUSES,
        sa.Column("route", sa.String(400), primary_key=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table(PAUSES)
    op.drop_index(USAGE_INDEX, table_name=USAGE)
    op.drop_table(USAGE)
    op.drop_table(SEEN)
