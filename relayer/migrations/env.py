"""Alembic environment for the relayer database (URL passed in by `relayer.db.migrate`)."""

from alembic import context
from sqlalchemy import create_engine, pool

url = context.config.get_main_option("sqlalchemy.url") or ""
connectable = create_engine(url, poolclass=pool.NullPool)
with connectable.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=None,
        render_as_batch=True,
        version_table="relayer_alembic_version",
    )
    with context.begin_transaction():
        context.run_migrations()
