"""HTLC swaps: one row per swap (both legs as explicit columns) and its status history.

- swaps: id (0x hex SHA-256 of the canonical terms, `relayer.swap_store.SwapTerms`), pair,
  status (`htlc.machine.SwapStatus`), per leg (initiator_* = the user's, participant_* = the
  relayer's): chain, asset, amount (uint256: decimal text on SQLite, NUMERIC(78,0) on
  PostgreSQL), sender, recipient, expiry kind ("height" | "time") and value, leg status
  (`htlc.machine.LegStatus`), lock ref, lock tx; then hashlock (unique), secret, lock deadline
  (on the participant leg's clock), the user's pre-signed refund, the quote snapshot (rate
  numerator and denominator, fee in participant-asset base units), reason and times.
- swap_history: every status change (from, to, reason, at), written with the change.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _u256() -> sa.types.TypeEngine:
    return sa.String(78).with_variant(sa.Numeric(78, 0), "postgresql")


def _leg(role: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column(f"{role}_chain", sa.String(64), nullable=False),
        sa.Column(f"{role}_asset", sa.String(140), nullable=False),
        sa.Column(f"{role}_amount", _u256(), nullable=False),
        sa.Column(f"{role}_sender", sa.String(140), nullable=False),
        sa.Column(f"{role}_recipient", sa.String(140), nullable=False),
        sa.Column(f"{role}_expiry_kind", sa.String(8), nullable=False),
        sa.Column(f"{role}_expiry", sa.BigInteger, nullable=False),
        sa.Column(f"{role}_status", sa.String(32), nullable=False),
        sa.Column(f"{role}_lock_ref", sa.String(200)),
        sa.Column(f"{role}_lock_tx", sa.Text),
        sa.CheckConstraint(f"{role}_expiry_kind IN ('height', 'time')",
                           name=f"ck_swaps_{role}_expiry_kind"),
    ]


def upgrade() -> None:
    op.create_table(
        "swaps",
        sa.Column("id", sa.String(66), primary_key=True),
        sa.Column("pair", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        *_leg("initiator"),
        *_leg("participant"),
        sa.Column("hashlock", sa.String(66), nullable=False),
        sa.Column("secret", sa.String(66)),
        sa.Column("lock_deadline", sa.BigInteger, nullable=False),
        sa.Column("user_refund", sa.Text),
        sa.Column("quote_rate_num", _u256(), nullable=False),
        sa.Column("quote_rate_den", _u256(), nullable=False),
        sa.Column("quote_fee", _u256(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("hashlock", name="uq_swaps_hashlock"),
    )
    op.create_index("ix_swaps_status", "swaps", ["status"])
    op.create_index("ix_swaps_initiator_chain", "swaps", ["initiator_chain", "initiator_status"])
    op.create_index("ix_swaps_participant_chain", "swaps",
                    ["participant_chain", "participant_status"])
    op.create_table(
        "swap_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("swap_id", sa.String(66), sa.ForeignKey("swaps.id"), nullable=False),
        sa.Column("from_status", sa.String(32)),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_swap_history_swap", "swap_history", ["swap_id"])


def downgrade() -> None:
    op.drop_index("ix_swap_history_swap", "swap_history")
    op.drop_table("swap_history")
    for name in ("ix_swaps_participant_chain", "ix_swaps_initiator_chain", "ix_swaps_status"):
        op.drop_index(name, "swaps")
    op.drop_table("swaps")
