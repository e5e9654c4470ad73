"""The deposit-address registry (`Ledger.register_deposit_account` / `deposit_accounts`, table
``ledger_deposit_addresses``, migration 0002) and the lookup of one burn by id, in process and
over HTTP through `LedgerClient`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from nacl.signing import SigningKey
from sqlalchemy import func, inspect, select

from adapters.base import NATIVE_TOKEN
from adapters.errors import BridgeError, InvalidAddress, ValidationError
from api.ledger import create_ledger_app
from ledger import store
from ledger.client import LedgerClient
from ledger.config import AssetConfig, LedgerGenesis
from ledger.db import MIGRATIONS_DIR, VERSION_TABLE, make_engine, migrate
from ledger.errors import UnknownBridge
from ledger.models import metadata
from ledger.service import Ledger
from ledger.testing import Harness, downgrade, make_validator_set
from ledger.transactions import SignedTx, sign_burn
from ledger.types import DepositRegistration, MintStatus

PAYEE = "0x" + "22" * 20
UNCONFIGURED = ["eip155:999", "bip122:000000000019d6689c085ae165831e93"]
T0 = 1_700_000_000.25
ABSENT = b"\x00" * 32  # a burn id no burn has


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


def account(n: int) -> bytes:
    return n.to_bytes(32, "big")


def hexed(raw: bytes) -> str:
    return "0x" + raw.hex()


def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/ledger.sqlite"  # the `h` fixture's database (conftest.py)


def stored_rows(tmp_path) -> int:
    engine = make_engine(db_url(tmp_path))
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(store.DEPOSITS)).scalar_one()
    finally:
        engine.dispose()


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def ledger(h: Harness, tmp_path, clock: FakeClock) -> Iterator[Ledger]:
    """`h`'s database (two origin chains with a bridge each) under a ledger on the test clock."""
    opened = Ledger(make_engine(db_url(tmp_path)), h.network, clock)
    yield opened
    opened.close()


@pytest.fixture()
def http(ledger: Ledger) -> Iterator[TestClient]:
    with TestClient(create_ledger_app(ledger)) as client:
        yield client


@pytest.fixture()
def client(http: TestClient) -> LedgerClient:
    return LedgerClient("http://testserver", http=http)


def burned(h: Harness) -> SignedTx:
    """Mint 1000 to a fresh key and burn 400 of it; returns the burn transaction."""
    key = SigningKey.generate()
    assert h.ledger.mint(h.certify(h.lock(1, 1000, bytes(key.verify_key)))).status is \
        MintStatus.MINTED
    tx = sign_burn(key, h.network, 0, h.native_asset, 400, h.chain, PAYEE)
    h.ledger.submit_transaction(tx)
    return tx


# -- registry in process ------------------------------------------------------------------------


def test_registered_account_is_listed_with_its_seq_and_clock_time(h, ledger, alice):
    reg = ledger.register_deposit_account(h.chain, alice)
    assert reg == DepositRegistration(1, h.chain, alice, T0, created=True)
    assert ledger.deposit_accounts(h.chain) == [replace(reg, created=False)]
    assert ledger.deposit_accounts(h.other_chain) == []


def test_registering_again_returns_the_stored_registration_and_stores_nothing(
    h, ledger, clock, alice, tmp_path
):
    first = ledger.register_deposit_account(h.chain, alice)
    clock.t += 60
    again = ledger.register_deposit_account(h.chain, alice)
    assert again == replace(first, created=False)  # same seq, original time
    assert stored_rows(tmp_path) == 1


def test_pages_ascend_by_seq_after_after_seq(h, ledger):
    regs = [ledger.register_deposit_account(h.chain, account(i)) for i in range(1, 6)]
    assert [r.seq for r in regs] == [1, 2, 3, 4, 5]
    pages = [ledger.deposit_accounts(h.chain, after, 2) for after in (0, 2, 4, 5)]
    assert [[r.account for r in p] for p in pages] == [
        [account(1), account(2)], [account(3), account(4)], [account(5)], []]
    assert ledger.deposit_accounts(h.chain, 0, 1000) == [replace(r, created=False) for r in regs]


def test_listing_is_per_chain_and_one_account_may_be_on_several_chains(h, ledger, alice):
    ledger.register_deposit_account(h.chain, alice)
    ledger.register_deposit_account(h.other_chain, account(7))
    ledger.register_deposit_account(h.other_chain, alice)
    assert [(r.seq, r.account) for r in ledger.deposit_accounts(h.chain)] == [(1, alice)]
    assert [(r.seq, r.account) for r in ledger.deposit_accounts(h.other_chain)] == [
        (2, account(7)), (3, alice)]


@pytest.mark.parametrize("chain", UNCONFIGURED)
def test_chain_without_a_bridge_is_refused_and_nothing_is_stored(h, ledger, alice, tmp_path,
                                                                 chain):
    with pytest.raises(UnknownBridge):
        ledger.register_deposit_account(chain, alice)
    with pytest.raises(UnknownBridge):
        ledger.deposit_accounts(chain)
    assert stored_rows(tmp_path) == 0
    assert ledger.register_deposit_account(h.chain, alice).seq == 1  # no seq was used


def test_malformed_chain_is_refused_as_invalid_input(ledger, alice, tmp_path):
    for bad in ("ethereum", "EIP155:1", ""):
        with pytest.raises(ValidationError) as info:
            ledger.register_deposit_account(bad, alice)
        assert type(info.value) is ValidationError
    assert stored_rows(tmp_path) == 0


@pytest.mark.parametrize("bad", [b"", b"\x01" * 31, b"\x01" * 33, "0x" + "11" * 32, "1" * 32])
def test_account_that_is_not_32_bytes_is_refused(h, ledger, tmp_path, bad):
    with pytest.raises(InvalidAddress):
        ledger.register_deposit_account(h.chain, bad)
    assert stored_rows(tmp_path) == 0


@pytest.mark.parametrize(("after_seq", "limit"), [(-1, 10), (0, 0), (0, 1001)])
def test_listing_page_bounds_are_checked(h, ledger, after_seq, limit):
    with pytest.raises(ValidationError):
        ledger.deposit_accounts(h.chain, after_seq, limit)


def test_registration_leaves_the_journal_and_balances_alone(h, ledger, alice):
    before = ledger.status()
    ledger.register_deposit_account(h.chain, alice)
    after = ledger.status()
    assert (after.journal_seq, after.journal_head) == (before.journal_seq, before.journal_head)
    assert ledger.verify_journal() == before.journal_seq
    assert ledger.account(alice).balances == {}


def test_concurrent_registrations_of_one_pair_store_it_once(h, ledger, alice, tmp_path):
    results: list[DepositRegistration] = []
    threads = [threading.Thread(target=lambda: results.append(
        ledger.register_deposit_account(h.chain, alice))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 8 and {r.seq for r in results} == {1}
    assert sum(r.created for r in results) == 1
    assert stored_rows(tmp_path) == 1


# -- registry over HTTP -------------------------------------------------------------------------


def test_http_register_and_list_answer_the_documented_shapes(h, http, client, alice):
    body = {"chain": h.chain, "account": hexed(alice)}
    first = http.post("/v1/ledger/deposit-accounts", json=body)
    assert first.status_code == 200
    assert first.json() == {"seq": 1, "chain": h.chain, "account": hexed(alice),
                            "registered_at": T0, "created": True}
    assert http.post("/v1/ledger/deposit-accounts", json=body).json()["created"] is False
    listed = http.get("/v1/ledger/deposit-accounts",
                      params={"chain": h.chain, "after_seq": 0, "limit": 100})
    assert listed.json() == {"accounts": [
        {"seq": 1, "chain": h.chain, "account": hexed(alice), "registered_at": T0}]}


def test_client_registers_idempotently_and_pages(h, client, alice):
    reg = client.register_deposit_account(h.chain, alice)
    assert reg == DepositRegistration(1, h.chain, alice, T0, created=True)
    assert client.register_deposit_account(h.chain, alice) == replace(reg, created=False)
    client.register_deposit_account(h.chain, account(2))
    client.register_deposit_account(h.other_chain, account(3))
    assert [r.seq for r in client.deposit_accounts(h.chain)] == [1, 2]
    assert [r.seq for r in client.deposit_accounts(h.chain, after_seq=1, limit=1)] == [2]
    assert [r.account for r in client.deposit_accounts(h.other_chain)] == [account(3)]


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "AB" * 32, "11" * 32, "0x" + "11" * 33])
def test_http_refuses_a_malformed_account_with_invalid_address(h, http, tmp_path, bad):
    answer = http.post("/v1/ledger/deposit-accounts", json={"chain": h.chain, "account": bad})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_address"
    assert stored_rows(tmp_path) == 0


def test_http_refuses_a_chain_without_a_bridge_with_unknown_bridge(http, client, alice, tmp_path):
    chain = UNCONFIGURED[0]
    answer = http.post("/v1/ledger/deposit-accounts", json={"chain": chain,
                                                            "account": hexed(alice)})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "unknown_bridge")
    listed = http.get("/v1/ledger/deposit-accounts", params={"chain": chain})
    assert (listed.status_code, listed.json()["error"]["code"]) == (400, "unknown_bridge")
    with pytest.raises(UnknownBridge):
        client.register_deposit_account(chain, alice)
    with pytest.raises(UnknownBridge):
        client.deposit_accounts(chain)
    assert stored_rows(tmp_path) == 0
    missing = http.get("/v1/ledger/deposit-accounts")
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "invalid_input")


def mock_client(handler) -> LedgerClient:
    return LedgerClient("http://ledger", http=httpx.Client(
        transport=httpx.MockTransport(handler), base_url="http://ledger"))


@pytest.mark.parametrize("items", [
    [{"seq": 2, "chain": "eip155:31337"}, {"seq": 1, "chain": "eip155:31337"}],  # descending
    [{"seq": 1, "chain": "eip155:31338"}],  # another chain
])
def test_client_refuses_a_listing_a_scanner_could_not_page_on(items):
    accounts = [{**i, "account": hexed(account(1)), "registered_at": T0} for i in items]
    client = mock_client(lambda _req: httpx.Response(200, json={"accounts": accounts}))
    with pytest.raises(BridgeError):
        client.deposit_accounts("eip155:31337")


# -- one burn by id ---------------------------------------------------------------------------


def test_burn_by_id_is_found_or_none(h, ledger):
    tx = burned(h)
    assert tx.burn_id is not None
    assert ledger.burn(tx.burn_id) == ledger.burns()[0]
    assert ledger.burn(ABSENT) is None
    with pytest.raises(InvalidAddress):
        ledger.burn(tx.burn_id[:31])


def test_burn_by_id_over_http_matches_the_burns_listing(h, http, client):
    tx = burned(h)
    assert tx.burn_id is not None
    raw = http.get(f"/v1/ledger/burns/{hexed(tx.burn_id)}")
    assert raw.status_code == 200
    assert raw.json() == http.get("/v1/ledger/burns").json()["burns"][0]
    assert client.burn(tx.burn_id) == client.burns()[0]


def test_absent_burn_is_404_unknown_burn_and_none_from_the_client(h, http, client):
    burned(h)
    absent = http.get(f"/v1/ledger/burns/{hexed(ABSENT)}")
    assert (absent.status_code, absent.json()["error"]["code"]) == (404, "unknown_burn")
    assert client.burn(ABSENT) is None


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "zz" * 32, "0x" + "11" * 33])
def test_malformed_burn_id_is_400(http, bad):
    answer = http.get(f"/v1/ledger/burns/{bad}")
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_address")


def test_client_burn_refuses_a_short_id_without_asking(client):
    with pytest.raises(InvalidAddress):
        client.burn(b"\x00" * 31)


def test_client_burn_raises_when_the_ledger_lacks_the_route():
    """An older ledger answers 404 ``not_found``: that is not "no such burn"."""
    client = mock_client(lambda _req: httpx.Response(
        404, json={"error": {"code": "not_found", "message": "Not Found"}}))
    with pytest.raises(BridgeError) as info:
        client.burn(ABSENT)
    assert info.value.code == "not_found"


# -- migration 0002 ---------------------------------------------------------------------------


def version(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar())
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migration_upgrades_a_0001_ledger_in_place(tmp_path, clock, alice):
    url = f"sqlite:///{tmp_path}/old.sqlite"
    migrate(url)  # written at head, then downgraded: a 0001 database holding data
    vset, keys = make_validator_set(5, 3)
    h = Harness(ledger=None, validator_set=vset, keys=keys)  # type: ignore[arg-type]
    genesis = LedgerGenesis(vset, {h.chain: h.bridge}, [
        AssetConfig(symbol="wETH", origin_chain=h.chain, origin_token=NATIVE_TOKEN, decimals=18)])
    h.ledger = Ledger.open(url, h.network, genesis, migrate=False)
    assert h.ledger.mint(h.certify(h.lock(1, 500, alice))).status is MintStatus.MINTED
    before = h.ledger.status()
    h.ledger.close()
    downgrade(url, "0001")
    assert version(url) == "0001" and "ledger_deposit_addresses" not in tables(url)

    migrate(url, "0002")  # pinned: later revisions are tested in their own files
    assert version(url) == "0002" and "ledger_deposit_addresses" in tables(url)
    upgraded = Ledger.open(url, h.network, genesis, clock=clock)
    try:
        assert upgraded.status() == before
        assert upgraded.account(alice).balances == {h.native_asset: 500}
        assert upgraded.verify_journal() == before.journal_seq
        reg = upgraded.register_deposit_account(h.chain, alice)
        assert reg == DepositRegistration(1, h.chain, alice, T0, created=True)
        assert upgraded.deposit_accounts(h.chain) == [replace(reg, created=False)]
        assert upgraded.status() == before
    finally:
        upgraded.close()


def test_migrated_schema_matches_the_models_and_downgrades_to_0001(tmp_path):
    url = f"sqlite:///{tmp_path}/fresh.sqlite"
    migrate(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
            assert compare_metadata(context, metadata) == []
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
    finally:
        engine.dispose()
    assert version(url) == "0001" and "ledger_deposit_addresses" not in tables(url)
    migrate(url, "0002")
    assert version(url) == "0002"
