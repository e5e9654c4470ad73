"""Database engine and migrations for the relayer's store.

Owns: the relayer's `migrate`. Engines and write transactions are the ledger's
(`ledger.db.make_engine`: SQLite WAL with ``BEGIN IMMEDIATE`` writes, PostgreSQL via psycopg 3). Must not define tables
(see `relayer.models`) or hold business logic.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from ledger.db import make_engine, normalize_url, write_transaction

__all__ = ["make_engine", "migrate", "write_transaction"]

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATE_LOCK_KEY = 0x6665727279_01  # pg advisory lock id of relayer migrations ("ferry", 1)


def migrate(database_url: str, script_location: Path = MIGRATIONS) -> None:
    """Upgrade the database at `database_url` to the newest Alembic revision (idempotent).

    Replicas starting together on one PostgreSQL database migrate one at a time: the upgrade
    runs in one transaction holding a transaction-level advisory lock, so the second replica
    waits, then finds the schema at head and does nothing.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()
