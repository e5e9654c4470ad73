"""Fixtures shared by every test layer: a throwaway PostgreSQL server (tests/pg.py), started
once per session on first use and always stopped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import PostgresServer


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A running PostgreSQL server; `postgres.create_database(name)` gives a fresh database URL."""
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
