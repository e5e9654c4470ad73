"""Operator API keys and webhook delivery cursors.

- api_keys (`api.auth`): id, name, key_sha256 (hex SHA-256 of the token; the token itself is
  never stored; unique), scopes (space-separated), created_at, revoked_at (NULL while live).
- webhook_cursors (`relayer.webhooks`): one row per ``[[api.webhooks]]`` subscription name:
  transfer_after / swap_after (the last ``transfer_history`` / ``swap_history`` id delivered),
  attempts (consecutive failures of the next event), next_attempt_at (clock seconds),
  last_error.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
        sa.UniqueConstraint("key_sha256", name="uq_api_keys_key_sha256"),
    )
    op.create_table(
        "webhook_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("transfer_after", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("swap_after", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(500)),
    )


def downgrade() -> None:
    op.drop_table("webhook_cursors")
    op.drop_table("api_keys")
