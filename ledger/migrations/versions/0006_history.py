"""Account history: ``ledger_account_entries``, one row per balance a journal entry moves
(account, seq, n, asset, signed delta, kind, counterparty), backfilled here from the journal
payloads so an existing database upgrades in place.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Frozen: later changes go in new revisions; this file never imports `ledger.models`. The backfill
uses `ledger.history.account_deltas`, the same pure rule the live writer
(`ledger.store.insert_journal`) applies, so backfilled and live rows cannot differ.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from ledger.history import entry_rows

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLE = "ledger_account_entries"
PAGE = 5000


def upgrade() -> None:
    entries = op.create_table(
        TABLE,
        sa.Column("account", sa.String(66), primary_key=True),
        sa.Column("seq", sa.BigInteger(), sa.ForeignKey("ledger_journal.seq"), primary_key=True),
        sa.Column("n", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("asset", sa.String(200), nullable=False),
        sa.Column("delta", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("counterparty", sa.String(66), nullable=True),
    )
    journal = sa.table("ledger_journal", sa.column("seq", sa.BigInteger()),
                       sa.column("kind", sa.String(32)), sa.column("payload", sa.Text()))
    conn = op.get_bind()
    after = 0
    while True:
        page = conn.execute(
            sa.select(journal.c.seq, journal.c.kind, journal.c.payload)
            .where(journal.c.seq > after).order_by(journal.c.seq).limit(PAGE)).all()
        if not page:
            break
        rows = [row for r in page for row in entry_rows(r.seq, r.kind, json.loads(r.payload))]
        if rows:
            conn.execute(sa.insert(entries), rows)
        after = page[-1].seq


def downgrade() -> None:
    op.drop_table(TABLE)
