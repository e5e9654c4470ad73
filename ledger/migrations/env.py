"""Alembic environment of the ledger schema. Run it through `ledger.db.migrate`, which passes an
open connection in ``config.attributes["connection"]``; the ``alembic`` CLI also works with
``-c ledger/alembic.ini -x url=<database url>``.

The version table is ``ledger_alembic_version`` so the ledger can share a database with the
relayer's own migrations.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ledger.db import VERSION_TABLE, make_engine
from ledger.models import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database url: pass -x url=... or use ledger.db.migrate(url)")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported for the ledger")
run_migrations_online()
