"""Relayer replicas sharing one database: job leases (`relayer.leases`), mint claims
(`Store.claim_mint_page`), and two engines minting concurrently against a real in-process ledger,
on SQLite and on a real PostgreSQL server (tests/pg.py)."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from adapters.base import BlockRef
from ledger.testing import Harness, open_harness
from ledger.types import MintRequest
from relayer.db import migrate
from relayer.engine import Engine
from relayer.leases import Leases
from relayer.machine import TransferStatus
from relayer.store import Change, Store
from validators.attestation import lock_attestation_message
from validators.delivery import relayer_client

S = TransferStatus


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def now(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/relayer.sqlite"
    pg = request.getfixturevalue("postgres")
    return pg.create_database(f"replicas_{hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]}")


# ------------------------------------------------------------------------------------- leases
def test_a_lease_is_held_by_one_replica_until_it_lapses(db_url):
    clock = FakeClock()
    store = Store.open(db_url, clock)
    a = Leases(store.engine, "replica-a", ttl_s=15, clock=clock)
    b = Leases(store.engine, "replica-b", ttl_s=15, clock=clock)
    assert a.hold("chain:eip155:1") and not b.hold("chain:eip155:1")
    clock.t += 10
    assert a.hold("chain:eip155:1")  # renewed: lapses at +25 now
    clock.t += 14
    assert not b.hold("chain:eip155:1")
    clock.t += 2  # a stopped renewing 16 s ago: lapsed
    assert b.hold("chain:eip155:1") and not a.hold("chain:eip155:1")
    lease = b.holders()["chain:eip155:1"]
    assert lease["holder"] == "replica-b" and lease["token"] == 2 and lease["live"]


def test_renew_keeps_live_leases_and_release_hands_them_over_at_once(db_url):
    clock = FakeClock()
    store = Store.open(db_url, clock)
    a = Leases(store.engine, "replica-a", ttl_s=15, clock=clock)
    b = Leases(store.engine, "replica-b", ttl_s=15, clock=clock)
    assert a.hold("burns") and a.hold("webhooks")
    clock.t += 10
    assert a.renew_held() == 2
    clock.t += 10
    assert not b.hold("burns")  # renewed at +10: still a's at +20
    assert a.release_all() == 2
    assert b.hold("burns") and b.hold("webhooks")


def test_concurrent_replicas_never_hold_one_lease_together(db_url):
    store = Store.open(db_url)
    winners: list[str] = []
    barrier = threading.Barrier(6)

    def contend(leases: Leases) -> None:
        barrier.wait()
        if leases.hold("accountant"):
            winners.append(leases.holder)

    replicas = [Leases(_engine_of(db_url), f"r{i}",
                       ttl_s=60) for i in range(6)]
    threads = [threading.Thread(target=contend, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert Leases(store.engine, "x").holders()["accountant"]["holder"] == winners[0]


def _engine_of(db_url: str) -> sa.Engine:
    from relayer.db import make_engine

    return make_engine(db_url)


# ------------------------------------------------------------------------------------- claims
def _seed(store: Store, h: Harness, n: int, signers: int = 3) -> list[Any]:
    """`n` confirmed ETH locks in `store` with `signers` attestations each."""
    events = [h.lock(i + 1, 10**15 * (i + 1), bytes([1 + i % 200]) * 32) for i in range(n)]
    store.record_lock_events(h.chain, events, BlockRef(100 + n, "0x" + "ee" * 32),
                             {"0x" + "00" * 20: h.native_asset})
    rows = [store.get(e.event_id) for e in events]
    store.advance(Change(r.id, S.CONFIRMED, "final") for r in rows)
    atts = []
    for e in events:
        msg = lock_attestation_message(h.network, e, 1)
        digest = "0x" + hashlib.sha256(msg).hexdigest()
        for k in h.keys[:signers]:
            atts.append({"kind": "lock", "event_key": e.event_id, "epoch": 1,
                         "validator": "0x" + bytes(k.verify_key).hex(),
                         "signature": "0x" + k.sign(msg).signature.hex(),
                         "message_hash": digest})
    assert store.add_attestations(atts) == len(atts)
    assert store.add_attestations(atts) == 0  # repeats are ignored and counted as such
    return rows


def test_claims_split_work_and_lapse_when_a_replica_dies(db_url, tmp_path):
    clock = FakeClock()
    store = Store.open(db_url, clock)
    h = open_harness(f"sqlite:///{tmp_path}/ledger.sqlite")
    rows = _seed(store, h, 30)
    a = store.claim_mint_page("replica-a", 30, epoch=1, at_least=3, limit=20)
    b = store.claim_mint_page("replica-b", 30, epoch=1, at_least=3, limit=20)
    assert [r.id for r in a] == [r.id for r in rows[:20]]
    assert [r.id for r in b] == [r.id for r in rows[20:]]  # disjoint: only the rest
    assert store.claim_mint_page("replica-c", 30, epoch=1, at_least=3) == []
    assert store.claim_mint_page("replica-c", 30, epoch=1, at_least=2) == []
    # replica a dies holding its claims; they are free again once they lapse.
    clock.t += 31
    again = store.claim_mint_page("replica-b", 30, epoch=1, at_least=3)
    assert {r.id for r in again} == {r.id for r in rows}  # its own lapsed ones included
    store.release_claims("replica-b", [r.id for r in again])
    assert len(store.claim_mint_page("replica-c", 30, epoch=1, at_least=3)) == 30


class InProcessLedger:
    """`relayer.engine.Ledger` over an in-process `ledger.service.Ledger`, counting calls."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.submitted: list[str] = []
        self._lock = threading.Lock()

    def status(self) -> Any:
        return self.h.ledger.status()

    def submit_mints(self, requests: list[MintRequest]) -> list[Any]:
        with self._lock:
            self.submitted.extend(r.event.event_id for r in requests)
        return self.h.ledger.mint_batch(requests)

    def burns(self, after_seq: int, limit: int) -> list[Any]:
        return self.h.ledger.burns(after_seq, limit)


class NoChain:
    chain = "eip155:31337"


def _engine(db_url: str, ledger: InProcessLedger, replica: str, batch: int) -> Engine:
    return Engine(Store.open(db_url), {}, ledger, ledger.h.network, mint_request=MintRequest,
                  batch_size=batch, replica_id=replica, claim_ttl_s=30)


def test_two_engines_mint_every_lock_exactly_once(db_url, tmp_path):
    h = open_harness(f"sqlite:///{tmp_path}/ledger.sqlite")
    store = Store.open(db_url)
    rows = _seed(store, h, 400)
    ledger = InProcessLedger(h)
    engines = [_engine(db_url, ledger, f"replica-{x}", batch=25) for x in "ab"]
    errors: list[BaseException] = []

    def work(engine: Engine) -> None:
        try:
            for _ in range(200):
                engine.mint()
                if store.counts_by_status() == {S.EXECUTED.value: 400}:
                    return
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert store.counts_by_status() == {S.EXECUTED.value: 400}
    with store.engine.connect() as conn:
        executed = conn.execute(sa.text(
            "select transfer_id, count(*) from transfer_history where to_status = :s "
            "group by transfer_id"), {"s": S.EXECUTED.value}).all()
        claims = conn.execute(sa.text(
            "select count(*) from transfers where claimed_by is not null")).scalar()
    assert len(executed) == 400 and all(n == 1 for _, n in executed)
    assert claims == 0  # every claim given back
    # The work was shared, and nothing was submitted to the ledger twice.
    per_replica = [e.metrics.executed.labels("ferry:ledger")._value.get() for e in engines]
    assert sum(per_replica) == 400 and min(per_replica) > 0, per_replica
    assert sorted(ledger.submitted) == sorted(r.event_key for r in rows)
    # The ledger minted each lock once: supply is exactly the sum locked.
    total = sum(int(r.amount) for r in rows)
    supply = {s.asset: s for s in h.ledger.supply_report()}[h.native_asset]
    assert supply.supply == total


def test_migration_upgrades_a_0006_database_in_place(db_url):
    """A database at revision 0006 holding a transfer upgrades to 0007 without losing it."""
    from alembic import command
    from alembic.config import Config

    from relayer.db import MIGRATIONS, normalize_url

    migrate(db_url)
    store = Store.open(db_url)
    h_rows = _seed(store, open_harness("sqlite://"), 2)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(db_url).replace("%", "%%"))
    store.engine.dispose()
    command.downgrade(cfg, "0006")
    engine = sa.create_engine(normalize_url(db_url))
    with engine.connect() as conn:
        assert "job_leases" not in sa.inspect(conn).get_table_names()
        assert conn.execute(sa.text("select count(*) from transfers")).scalar() == 2
    engine.dispose()
    store = Store.open(db_url)  # upgrades in place
    assert store.get(h_rows[0].event_key).status == S.CONFIRMED.value
    assert Leases(store.engine, "a").hold("burns")
    assert len(store.claim_mint_page("a", 30, epoch=1, at_least=3)) == 2


# ------------------------------------------------------------------------- validator delivery
def test_validator_delivery_fails_over_to_the_next_relayer_replica():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.netloc.decode())
        if request.url.port == 8700:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"accepted": 1, "rejected": []})

    client = relayer_client(["http://relayer-1:8700", "http://relayer-2:8701"],
                            transport=httpx.MockTransport(handler))
    assert client.post("/v1/attestations", json={"attestations": []}).status_code == 200
    assert client.post("/v1/attestations", json={"attestations": []}).status_code == 200
    assert seen == ["relayer-1:8700", "relayer-2:8701", "relayer-2:8701"]  # stays on the live one


def test_validator_delivery_raises_when_no_replica_answers():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = relayer_client(["http://a:1", "http://b:2"], transport=httpx.MockTransport(handler))
    with pytest.raises(httpx.ConnectError):
        client.get("/healthz")


def test_replicas_starting_together_migrate_one_at_a_time(postgres):
    """Four replicas opening a fresh PostgreSQL database at once: one migrates, the others
    wait on the advisory lock and find the schema at head."""
    url = postgres.create_database("replicas_concurrent_migrate")
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        try:
            Store.open(url)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    engine = _engine_of(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select version_num from relayer_alembic_version")).scalar() \
            == "0007"
    engine.dispose()
