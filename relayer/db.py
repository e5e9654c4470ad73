"""Database engine and migrations for the relayer's store.

Owns: engine creation (SQLite pragmas, PostgreSQL pool) and `migrate`. Must not define tables
(see `relayer.models`) or hold business logic.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(database_url: str) -> Engine:
    """An engine for `database_url` (``sqlite:///file`` or ``postgresql+psycopg://...``).

    SQLite gets WAL, ``synchronous=NORMAL``, foreign keys and a 10 s busy timeout, so a
    reader never blocks the writer and a crash loses no committed transaction.
    """
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 10})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(database_url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def migrate(database_url: str, script_location: Path = MIGRATIONS) -> None:
    """Upgrade the database at `database_url` to the newest Alembic revision (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", database_url)
    command.upgrade(cfg, "head")
