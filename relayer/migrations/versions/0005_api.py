"""The user API (`ferry api serve`): idempotency keys, transfer requests, chain heads, and the
indexes the API's lookups need.

- idempotency_keys (`api.idempotency`): (scope = sha256 hex of the caller's Authorization
  header, key) primary key, request_hash (sha256 hex of method, path, body), the stored answer
  (status_code, content_type, body; status_code NULL while the first call runs), created_at,
  expires_at (indexed: expired rows are deleted).
- transfer_requests (`api.transfers`): id (``tr_`` + 32 hex), kind (lock | burn), route
  (source_chain, dest_chain, asset), amount (uint256: decimal text on SQLite, NUMERIC(78,0) on
  PostgreSQL), recipient, sender, expected_event_key (a burn's id known in advance), the
  instructions given (JSON text), created_at, and the transfer it was linked to (unique) and
  when.
- chain_heads (`relayer.heads`): per chain (CAIP-2, primary key) head, finalized and scanned
  heights and updated_at, written by the engine each chain pass.
- indexes: transfers by (recipient, id), (sender, id) and dest_tx_hash (lookups by account and
  transaction; src_tx_hash is indexed since 0001), attestations by (validator, received_at)
  (each validator's last attestation; attestations by event_key are indexed since 0001).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _u256() -> sa.types.TypeEngine:
    return sa.String(78).with_variant(sa.Numeric(78, 0), "postgresql")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("content_type", sa.String(200)),
        sa.Column("body", sa.LargeBinary),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires_at"])
    op.create_table(
        "transfer_requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source_chain", sa.String(64), nullable=False),
        sa.Column("dest_chain", sa.String(64), nullable=False),
        sa.Column("asset", sa.String(140), nullable=False),
        sa.Column("amount", _u256(), nullable=False),
        sa.Column("recipient", sa.String(140), nullable=False),
        sa.Column("sender", sa.String(140)),
        sa.Column("expected_event_key", sa.String(200)),
        sa.Column("instructions", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("transfer_id", sa.Integer, sa.ForeignKey("transfers.id"), unique=True),
        sa.Column("linked_at", sa.Float),
    )
    op.create_table(
        "chain_heads",
        sa.Column("chain", sa.String(64), primary_key=True),
        sa.Column("head", sa.BigInteger, nullable=False),
        sa.Column("finalized", sa.BigInteger, nullable=False),
        sa.Column("scanned", sa.BigInteger),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_transfers_recipient", "transfers", ["recipient", "id"])
    op.create_index("ix_transfers_sender", "transfers", ["sender", "id"])
    op.create_index("ix_transfers_dest_tx", "transfers", ["dest_tx_hash"])
    op.create_index("ix_attestations_validator", "attestations", ["validator", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_attestations_validator", "attestations")
    op.drop_index("ix_transfers_dest_tx", "transfers")
    op.drop_index("ix_transfers_sender", "transfers")
    op.drop_index("ix_transfers_recipient", "transfers")
    op.drop_table("chain_heads")
    op.drop_table("transfer_requests")
    op.drop_index("ix_idempotency_keys_expires", "idempotency_keys")
    op.drop_table("idempotency_keys")
