"""Risk engine: why a transfer waits, operator releases, route pauses, and the relayer's own
record of what it let through per route (the rolling window of `validators.risk.decide`).

- transfers.wait_reason: a `validators.risk.WaitReason` value, or NULL (not waiting, or the
  reason follows from the status); transfers.wait_until: earliest time (seconds) it could move,
  NULL if unknown or only an operator can move it; transfers.operator_released: an operator let
  it skip the large-transfer delay and the volume limit (never a pause).
- route_pauses: one row per paused route (route key, reason, who, when); unpausing deletes it.
- route_usage: one row per transfer let through on a route (event key unique: recording is
  idempotent), amount (uint256: decimal text on SQLite, NUMERIC(78,0) on PostgreSQL) and time;
  indexed on (route, at) for the window query.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _u256() -> sa.types.TypeEngine:
    return sa.String(78).with_variant(sa.Numeric(78, 0), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("wait_reason", sa.Text, nullable=True))
        batch.add_column(sa.Column("wait_until", sa.Float, nullable=True))
        batch.add_column(sa.Column("operator_released", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        "route_pauses",
        sa.Column("route", sa.String(300), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("paused_by", sa.String(200), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_table(
        "route_usage",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("route", sa.String(300), nullable=False),
        sa.Column("event_key", sa.String(200), nullable=False, unique=True),
        sa.Column("amount", _u256(), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_route_usage_route_at", "route_usage", ["route", "at"])


def downgrade() -> None:
    op.drop_index("ix_route_usage_route_at", "route_usage")
    op.drop_table("route_usage")
    op.drop_table("route_pauses")
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("operator_released")
        batch.drop_column("wait_until")
        batch.drop_column("wait_reason")
