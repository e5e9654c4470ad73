"""Initial relayer schema: transfers, their history, attestations, cursors, scanned blocks.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event_key", sa.String(200), nullable=False, unique=True),
        sa.Column("source_chain", sa.String(64), nullable=False),
        sa.Column("dest_chain", sa.String(64), nullable=False),
        sa.Column("token", sa.String(66), nullable=False),
        sa.Column("asset", sa.String(140), nullable=False),
        sa.Column("amount", sa.String(80), nullable=False),
        sa.Column("sender", sa.String(66), nullable=False),
        sa.Column("recipient", sa.String(66), nullable=False),
        sa.Column("src_tx_hash", sa.String(66), nullable=False),
        sa.Column("log_index", sa.Integer, nullable=False, server_default="0"),
        sa.Column("block_number", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("block_hash", sa.String(66), nullable=False, server_default=""),
        sa.Column("nonce", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("dest_tx_hash", sa.String(66)),
        sa.Column("dest_raw_tx", sa.Text),
        sa.Column("dest_sender_nonce", sa.BigInteger),
        sa.Column("ledger_seq", sa.BigInteger),
    )
    op.create_index("ix_transfers_status_kind", "transfers", ["status", "kind", "dest_chain"])
    op.create_index("ix_transfers_src_tx", "transfers", ["src_tx_hash"])
    op.create_table(
        "transfer_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("transfer_id", sa.Integer, sa.ForeignKey("transfers.id"), nullable=False),
        sa.Column("from_status", sa.String(32)),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_transfer_history_transfer", "transfer_history", ["transfer_id"])
    op.create_table(
        "attestations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event_key", sa.String(200), nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("validator", sa.String(66), nullable=False),
        sa.Column("signature", sa.String(140), nullable=False),
        sa.Column("message_hash", sa.String(66), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.UniqueConstraint("kind", "event_key", "epoch", "validator", name="uq_attestation"),
    )
    op.create_index("ix_attestations_event", "attestations", ["event_key"])
    op.create_table(
        "cursors",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(66), nullable=False, server_default=""),
    )
    op.create_table(
        "scanned_blocks",
        sa.Column("chain", sa.String(64), primary_key=True),
        sa.Column("number", sa.BigInteger, primary_key=True),
        sa.Column("hash", sa.String(66), nullable=False),
    )


def downgrade() -> None:
    for table in ("scanned_blocks", "cursors", "attestations", "transfer_history", "transfers"):
        op.drop_table(table)
