"""Database engine and migrations for the relayer's store.

Owns: the relayer's `migrate`. Engines and write transactions are the ledger's
(`ledger.db.make_engine`: SQLite WAL with ``BEGIN IMMEDIATE`` writes, PostgreSQL via psycopg 3). Must not define tables
(see `relayer.models`) or hold business logic.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from ledger.db import make_engine, normalize_url, write_transaction

__all__ = ["make_engine", "migrate", "write_transaction"]

MIGRATIONS = Path(__file__).with_name("migrations")


def migrate(database_url: str, script_location: Path = MIGRATIONS) -> None:
    """Upgrade the database at `database_url` to the newest Alembic revision (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    command.upgrade(cfg, "head")
