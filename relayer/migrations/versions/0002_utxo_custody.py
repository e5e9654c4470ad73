"""UTXO custody: coins held in custody and proposed spends; widen transfer fields for Bitcoin.

- transfers.nonce becomes a uint256 (decimal text on SQLite, NUMERIC(78,0) on PostgreSQL): a
  Bitcoin deposit's nonce is derived from its outpoint (`adapters.bitcoin.scripts.outpoint_nonce`).
- transfers.sender / recipient widen to 140 characters ("<txid>:<vout>", Bitcoin addresses).
- coins: outputs the vault holds (deposits credited and minted, change of Ferry's own spends).
- custody_plans: unsigned spends proposed to validators, and the signed bytes (persisted before
  broadcast).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _u256() -> sa.types.TypeEngine:
    return sa.String(78).with_variant(sa.Numeric(78, 0), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.alter_column("nonce", existing_type=sa.BigInteger, type_=_u256(),
                           existing_nullable=False, server_default="0",
                           postgresql_using="nonce::numeric(78,0)")
        batch.alter_column("sender", existing_type=sa.String(66), type_=sa.String(140),
                           existing_nullable=False)
        batch.alter_column("recipient", existing_type=sa.String(66), type_=sa.String(140),
                           existing_nullable=False)
    op.create_table(
        "coins",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("txid", sa.String(64), nullable=False),
        sa.Column("vout", sa.Integer, nullable=False),
        sa.Column("amount", _u256(), nullable=False),
        sa.Column("account", sa.String(66)),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spent_by", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("chain", "txid", "vout", name="uq_coins_outpoint"),
    )
    op.create_index("ix_coins_chain_status", "coins", ["chain", "status"])
    op.create_table(
        "custody_plans",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("txid", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("transfer_id", sa.Integer, sa.ForeignKey("transfers.id")),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("raw_tx", sa.Text),
        sa.Column("broadcast_height", sa.BigInteger),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_custody_plans_chain_status", "custody_plans", ["chain", "status"])


def downgrade() -> None:
    op.drop_index("ix_custody_plans_chain_status", "custody_plans")
    op.drop_table("custody_plans")
    op.drop_index("ix_coins_chain_status", "coins")
    op.drop_table("coins")
    with op.batch_alter_table("transfers") as batch:
        batch.alter_column("recipient", existing_type=sa.String(140), type_=sa.String(66))
        batch.alter_column("sender", existing_type=sa.String(140), type_=sa.String(66))
        batch.alter_column("nonce", existing_type=_u256(), type_=sa.BigInteger,
                           postgresql_using="nonce::bigint")
