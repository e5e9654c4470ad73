"""Alembic environment for the relayer database: the connection given by `relayer.db.migrate`
(``config.attributes["connection"]``), or one made from the ``sqlalchemy.url`` option."""

from alembic import context
from sqlalchemy import create_engine, pool


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=None,
        render_as_batch=True,
        version_table="relayer_alembic_version",
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    url = context.config.get_main_option("sqlalchemy.url") or ""
    with create_engine(url, poolclass=pool.NullPool).connect() as connection:
        _run(connection)
