"""Relayer replicas sharing one database: job leases and mint claims.

- job_leases (`relayer.leases`): one row per singleton job (``chain:<caip2>``, ``burns``,
  ``accountant``, ``swaps``, ``webhooks``, ``gauges``): the replica holding it (``holder``), when
  the lease lapses unless renewed (``expires_at``, clock seconds) and a fencing ``token`` that
  grows each time the lease changes hands.
- transfers.claimed_by / claim_expires_at (`relayer.store.Store.claim_mint_page`): the replica
  working on a lock's mint and until when; a claim past its expiry is free again.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(200)))
        batch.add_column(sa.Column("claim_expires_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("claim_expires_at")
        batch.drop_column("claimed_by")
    op.drop_table("job_leases")
