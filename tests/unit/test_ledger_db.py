"""Ledger storage: Alembic schema on a fresh SQLite file, connection settings, reopening, and
the config models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError as PydanticError
from sqlalchemy import inspect

from adapters.base import NATIVE_TOKEN
from adapters.errors import ConfigError
from ledger.config import AssetConfig, LedgerGenesis, LedgerSection
from ledger.db import VERSION_TABLE, make_engine, migrate, normalize_url
from ledger.models import metadata
from ledger.service import Ledger
from ledger.testing import make_validator_set, open_harness

TABLES = {"ledger_state", "ledger_journal", "ledger_validator_sets", "ledger_bridges",
          "ledger_assets", "ledger_accounts", "ledger_balances", "ledger_mints", "ledger_burns",
          "ledger_transfers", "ledger_deposit_addresses", "ledger_htlcs",
          "ledger_mint_intents", "ledger_risk_seen", "ledger_risk_usage", "ledger_risk_pauses",
          "ledger_account_entries", VERSION_TABLE}


def test_migration_creates_schema_on_fresh_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path}/fresh.sqlite"
    migrate(url)
    migrate(url)  # idempotent
    engine = make_engine(url)
    try:
        insp = inspect(engine)
        assert set(insp.get_table_names()) == TABLES
        assert {"event_id"} == set(insp.get_pk_constraint("ledger_mints")["constrained_columns"])
        with engine.connect() as conn:
            version = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar()
            assert version == "0006"
            # the migrated schema is exactly what the models describe
            context = MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
            diff = compare_metadata(context, metadata)
            assert diff == []
    finally:
        engine.dispose()


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/x.sqlite")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///ledger.sqlite", "sqlite:///ledger.sqlite"),
        ("mysql://u@h/db", ConfigError),
        ("not a url", ConfigError),
    ],
)
def test_database_urls(url, expected):
    if isinstance(expected, str):
        assert normalize_url(url) == expected
    else:
        with pytest.raises(expected):
            normalize_url(url)


def test_reopen_keeps_state_and_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path}/l.sqlite"
    h = open_harness(url)
    seq = h.ledger.status().journal_seq
    h.ledger.close()
    genesis = LedgerGenesis(h.validator_set, {h.chain: h.bridge.upper().replace("0X", "0x")}, [
        AssetConfig(symbol="wETH", origin_chain=h.chain, origin_token=NATIVE_TOKEN, decimals=18)])
    again = Ledger.open(url, h.network, genesis)
    assert again.status().journal_seq == seq  # nothing re-registered
    again.verify_journal()
    again.close()


@pytest.mark.parametrize("change", ["network", "genesis set", "bridge", "asset decimals"])
def test_reopen_with_conflicting_config_is_refused(tmp_path, change):
    url = f"sqlite:///{tmp_path}/l.sqlite"
    h = open_harness(url)
    h.ledger.close()
    network, vset = h.network, h.validator_set
    bridges, assets = {h.chain: h.bridge}, []
    if change == "network":
        network = "other"
    elif change == "genesis set":
        vset = make_validator_set(5, 3)[0]
    elif change == "bridge":
        bridges = {h.chain: "0x" + "cc" * 20}
    else:
        assets = [AssetConfig(symbol="wETH", origin_chain=h.chain, origin_token=NATIVE_TOKEN,
                              decimals=8)]
    with pytest.raises(ConfigError):
        Ledger.open(url, network, LedgerGenesis(vset, bridges, assets))


def test_ledger_section_defaults_and_forbids_extra():
    section = LedgerSection()
    assert (section.database_url, section.host, section.port) == (
        "sqlite:///ledger.sqlite", "127.0.0.1", 8600)
    assert section.url == "http://127.0.0.1:8600"
    assert LedgerSection(url="http://ledger:1").url == "http://ledger:1"
    with pytest.raises(PydanticError):
        LedgerSection(databse_url="typo")


@pytest.mark.parametrize(
    ("data", "ok"),
    [
        ({"symbol": "wETH", "origin_chain": "eip155:1", "origin_token": NATIVE_TOKEN,
          "decimals": 18}, True),
        ({"symbol": "wUSDC", "origin_chain": "eip155:1", "origin_token": "0x" + "AB" * 20,
          "decimals": 6}, True),
        ({"symbol": "wETH", "origin_chain": "eip155:1", "origin_token": "0x12", "decimals": 18},
         False),
        ({"symbol": "wETH", "origin_chain": "ethereum", "origin_token": NATIVE_TOKEN,
          "decimals": 18}, False),
        ({"symbol": "wETH", "origin_chain": "eip155:1", "origin_token": NATIVE_TOKEN,
          "decimals": -1}, False),
        ({"symbol": "wETH", "origin_chain": "eip155:1", "origin_token": NATIVE_TOKEN,
          "decimals": 18, "extra": 1}, False),
    ],
)
def test_asset_config(data, ok):
    if ok:
        cfg = AssetConfig(**data)
        assert cfg.asset == f"{data['origin_chain']}/{data['origin_token'].lower()}"
    else:
        with pytest.raises(PydanticError):
            AssetConfig(**data)
