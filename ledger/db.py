"""Database plumbing of the ledger: engines for SQLite and PostgreSQL, Alembic migrations, and
the write transaction every state change runs in.

Owns: `make_engine`, `migrate`, `write_transaction`, `read_transaction`. Must not decide
what is written (that is `ledger.service`), nor create the real schema with
``metadata.create_all`` (the schema is Alembic's, `ledger/migrations/`).

SQLite: WAL journal, ``synchronous=FULL`` (a committed mint survives power loss), foreign keys
on, 30 s busy timeout. Write transactions start with ``BEGIN IMMEDIATE`` so two processes on one
file serialize instead of failing on lock upgrade. PostgreSQL: URLs ``postgresql://`` are driven
by psycopg 3; writers serialize on ``SELECT ... FOR UPDATE`` of the single `ledger_state` row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from adapters.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATE_LOCK_KEY = 0x6665727279_02  # pg advisory lock id of ledger migrations ("ferry", 2)
VERSION_TABLE = "ledger_alembic_version"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE = "ferry_write"


def normalize_url(database_url: str) -> str:
    """Map ``postgres://``/``postgresql://`` to the psycopg 3 driver; other URLs unchanged.

    Raises:
        ConfigError: not a SQLite or PostgreSQL URL.
    """
    for prefix in ("postgres://", "postgresql://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix):]
    try:
        backend = make_url(database_url).get_backend_name()
    except Exception as exc:  # sqlalchemy raises ArgumentError; any parse failure is config
        raise ConfigError(f"bad database url: {exc}") from exc
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"ledger supports sqlite and postgresql, not {backend!r}")
    return database_url


def make_engine(database_url: str) -> Engine:
    """An engine for `database_url` with the ledger's connection settings (see module docs).

    Raises:
        ConfigError: unsupported URL.
    """
    url = make_url(normalize_url(database_url))
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    kwargs: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    }
    if url.database in (None, "", ":memory:"):
        kwargs["poolclass"] = StaticPool  # one shared in-memory database
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction: commits on normal exit, rolls back on any exception.

    On SQLite it holds the database write lock from the start (``BEGIN IMMEDIATE``); on
    PostgreSQL the caller must lock the `ledger_state` row first (``FOR UPDATE``).
    """
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction over a consistent snapshot (SQLite WAL read transaction;
    REPEATABLE READ on PostgreSQL)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def migrate_engine(engine: Engine, revision: str = "head") -> None:
    """Upgrade the ledger schema on `engine` to `revision` with Alembic.

    The script location is set by path, so this works from an installed package.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # concurrent starts migrate one at a time
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def migrate(database_url: str, revision: str = "head") -> None:
    """Create or upgrade the ledger schema at `database_url` (Alembic ``upgrade head``).

    Raises:
        ConfigError: unsupported URL.
    """
    engine = make_engine(database_url)
    try:
        migrate_engine(engine, revision)
    finally:
        engine.dispose()
