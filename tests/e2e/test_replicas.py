"""Two relayer replicas against one PostgreSQL database, one SIGKILLed mid-run: every transfer
is executed exactly once and none is left behind (issue 7, section 1).

The whole network runs as processes (`relayer.cli.devnet.Devnet`, `relayer_replicas=2`) with the
relayer database on a real PostgreSQL server started by the session fixture `postgres`
(tests/pg.py). The ledger stays on SQLite. Checks are made where the outcome lives: the relayer's
PostgreSQL tables, the ledger's journal and balances over its HTTP API, the Ethereum bridge and
the surviving replica's own ``/metrics``.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from eth_account import Account
from nacl.signing import SigningKey
from web3 import Web3

from adapters.base import NATIVE_TOKEN, asset_key
from adapters.evm import devnet as evm
from contracts import load_artifact
from ledger.client import LedgerClient
from ledger.transactions import sign_burn
from relayer.cli.devnet import Devnet
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e
ETH = "eip155:31337"
WAVE = 250  # locks per wave; two waves: the second is sent after the kill
TOKEN_SHARE = 5  # every 5th lock is of the ERC-20 (TEST), the rest native ETH
RECIPIENTS = 10
BURNS = 3
EXECUTED = "transfer.executed"
# This test's transfers: the Ethereum locks and the ledger burns. The devnet itself makes one
# more, the operator's uatom fee reserve paid to the Cosmos escrow, which is held by design
# ("not credited: unknown_denom": uatom is no bridged denom).
OURS = f"source_chain IN ('{ETH}', 'ferry:ledger')"




@pytest.fixture
def replicated(devnet_factory, postgres, monkeypatch) -> Devnet:
    """The devnet with two relayer replicas on one fresh PostgreSQL database. Small mint pages
    and short lease and claim lifetimes (environment, read by every ``ferry`` process), so both
    replicas share the mint work and the survivor takes over within seconds."""
    monkeypatch.setenv("FERRY_RELAYER__BATCH_SIZE", "40")
    monkeypatch.setenv("FERRY_RELAYER__LEASE_TTL_S", "4")
    monkeypatch.setenv("FERRY_RELAYER__CLAIM_TTL_S", "6")
    return devnet_factory(block_time_s=0.5,
                          database_url=postgres.create_database("relayer_replicas"),
                          relayer_replicas=2)


@pytest.fixture
def relayer_db(replicated) -> Iterator[sa.Engine]:
    """The replicas' PostgreSQL database, read directly; its connections closed afterwards."""
    db = sa.create_engine(replicated.database_url)
    yield db
    db.dispose()


class Locker:
    """Sends lock transactions to the Ethereum bridge from one funded EOA, signed locally with
    explicit nonces, as JSON-RPC batches (interval mining spreads them over several blocks)."""

    def __init__(self, net: Devnet) -> None:
        assert net.info is not None
        self.url = net.info.rpc["ethereum"]
        self.w3 = evm.connect(self.url)
        self.account = Account.create()
        self.bridge = self.w3.eth.contract(
            address=Web3.to_checksum_address(net.info.bridges["ethereum"]),
            abi=load_artifact("Bridge").abi)
        self.token = Web3.to_checksum_address(net.info.test_token)
        evm.fund(self.w3, self.account.address, 10**24)
        erc20 = self.w3.eth.contract(address=self.token, abi=load_artifact("TestToken").abi)
        key = self.account.key.to_0x_hex()
        evm.transact(self.w3, erc20.functions.mint(self.account.address, 10**24),
                     sender_key=evm.ANVIL_DEV_KEY)
        evm.transact(self.w3, erc20.functions.approve(self.bridge.address, 10**24),
                     sender_key=key)
        self.nonce = int(self.w3.eth.get_transaction_count(self.account.address))

    def send(self, locks: list[tuple[str, int, bytes]], per_batch: int = 50) -> None:
        """Send `locks` (token, amount, recipient) in batches of `per_batch`, a little apart, and
        wait until every one is mined successfully."""
        hashes = []
        for start in range(0, len(locks), per_batch):
            base = self.w3.eth.get_block("latest")["baseFeePerGas"]
            batch: list[dict[str, Any]] = []
            for token, amount, recipient in locks[start:start + per_batch]:
                native = token == NATIVE_TOKEN
                data = self.bridge.encode_abi("lock", [Web3.to_checksum_address(token), amount,
                                                       recipient])
                tx = {"to": self.bridge.address, "value": amount if native else 0, "data": data,
                      "gas": 200_000, "maxFeePerGas": base * 4 + 2 * 10**9,
                      "maxPriorityFeePerGas": 10**9, "nonce": self.nonce, "chainId": 31337,
                      "type": 2}
                self.nonce += 1
                raw = Account.sign_transaction(tx, self.account.key).raw_transaction
                batch.append({"jsonrpc": "2.0", "id": len(batch),
                              "method": "eth_sendRawTransaction", "params": [raw.to_0x_hex()]})
            for reply in httpx.post(self.url, json=batch, timeout=30).json():
                assert "error" not in reply, reply
                hashes.append(reply["result"])
            time.sleep(0.3)

        def all_mined() -> bool:
            calls = [{"jsonrpc": "2.0", "id": i, "method": "eth_getTransactionReceipt",
                      "params": [h]} for i, h in enumerate(hashes)]
            receipts = [r["result"] for r in httpx.post(self.url, json=calls, timeout=30).json()]
            if any(r is None for r in receipts):
                return False
            assert all(r["status"] == "0x1" for r in receipts), "a lock reverted"
            return True
        wait_until(all_mined, 60, "every lock mined")


def statuses(db: sa.Engine) -> dict[str, int]:
    with db.connect() as conn:
        rows = conn.execute(sa.text(
            f"SELECT status, count(*) FROM transfers WHERE {OURS} GROUP BY status"))
        return {r[0]: int(r[1]) for r in rows}


def executed_counter(metrics_url: str, chain: str) -> float:
    """``ferry_relayer_transfers_executed_total{chain=...}`` of one replica (0 if absent)."""
    for line in httpx.get(metrics_url, timeout=5).text.splitlines():
        if line.startswith(f'ferry_relayer_transfers_executed_total{{chain="{chain}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def ledger_mints(ledger: LedgerClient) -> Counter[str]:
    """event_id -> number of ``mint`` journal entries for it, over the whole journal."""
    seen: Counter[str] = Counter()
    after = 0
    while entries := ledger.journal(after_seq=after, limit=1000):
        for e in entries:
            if e.kind == "mint":
                seen[json.loads(e.payload)["event_id"]] += 1
        after = entries[-1].seq
    return seen


def unfinished(db: sa.Engine) -> list[tuple[Any, ...]]:
    """(source chain, kind, status, reason) of every transfer not executed."""
    with db.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT source_chain, kind, status, reason FROM transfers WHERE status <> :s "
            "ORDER BY id"), {"s": EXECUTED})]


def chain_lease_holder(db: sa.Engine) -> Any:
    with db.connect() as conn:
        return conn.execute(sa.text("SELECT holder FROM job_leases WHERE name = :n"),
                            {"n": f"chain:{ETH}"}).scalar()


def test_two_relayer_replicas_execute_each_transfer_exactly_once_when_one_is_sigkilled(
        replicated, relayer_db):
    net, db = replicated, relayer_db
    info = net.info
    assert info is not None and set(info.relayers) == {"relayer", "relayer-2"}
    ledger = LedgerClient(info.ledger_url)
    rng = random.Random(7)
    users = [SigningKey.generate() for _ in range(RECIPIENTS)]
    weth, wtest = asset_key(ETH, NATIVE_TOKEN), asset_key(ETH, info.test_token)
    locks = [(info.test_token if i % TOKEN_SHARE == 0 else NATIVE_TOKEN,
              10**15 + i,  # distinct amounts: a double mint would show in a balance
              bytes(users[rng.randrange(RECIPIENTS)].verify_key))
             for i in range(2 * WAVE)]
    locker = Locker(net)
    locker.send(locks[:WAVE])
    # Mid-flight: some of the first wave executed, most not (the second is not even sent).
    wait_until(lambda: statuses(db).get(EXECUTED, 0) >= 20, 90, "the first mints")
    victim = chain_lease_holder(db) or "relayer"  # the replica watching Ethereum
    survivor = "relayer-2" if victim == "relayer" else "relayer"
    net.kill_relayer(victim)
    at_kill = statuses(db)
    with db.connect() as conn:
        claimed_by_victim = conn.execute(sa.text(
            "SELECT count(*) FROM transfers WHERE claimed_by = :r AND status <> :s"),
            {"r": victim, "s": EXECUTED}).scalar()
    print(f"killed {victim} with statuses {at_kill}; "
          f"{claimed_by_victim} unexecuted transfers claimed by it")
    assert at_kill.get(EXECUTED, 0) < WAVE  # really mid-flight
    locker.send(locks[WAVE:])

    def all_executed() -> bool:
        now = statuses(db)
        return now.get(EXECUTED, 0) == 2 * WAVE and sum(now.values()) == 2 * WAVE
    try:
        wait_until(all_executed, 150, "all 500 transfers executed by the survivor")
    except AssertionError:
        print("not executed:", statuses(db), unfinished(db)[:10])
        raise

    # A few burns -> releases on Ethereum, by the survivor alone.
    payees = [Account.create().address.lower() for _ in range(BURNS)]
    burner = users[0]
    burner_account = bytes(burner.verify_key)
    for i, payee in enumerate(payees):
        ledger.submit_transaction(sign_burn(
            burner, "ferry-devnet", ledger.account(burner_account).nonce, weth,
            10**14 + i, ETH, payee))
    eth = locker.w3
    wait_until(lambda: all(eth.eth.get_balance(Web3.to_checksum_address(p)) == 10**14 + i
                           for i, p in enumerate(payees)), 90, "every burn released")
    time.sleep(3)  # a late duplicate mint or release would land within a few polls

    # Relayer DB: 503 transfers, all executed, each with exactly ONE executed history row.
    with db.connect() as conn:
        kinds = dict(conn.execute(sa.text(
            f"SELECT kind, count(*) FROM transfers WHERE {OURS} GROUP BY kind")).all())
        executed_rows = conn.execute(sa.text(
            "SELECT t.id, count(h.id) FROM transfers t LEFT JOIN transfer_history h "
            f"ON h.transfer_id = t.id AND h.to_status = :s WHERE {OURS} GROUP BY t.id"),
            {"s": EXECUTED}).all()
        lock_keys = {r[0] for r in conn.execute(sa.text(
            f"SELECT event_key FROM transfers WHERE kind = 'lock' AND {OURS}"))}
        holders = {r[0] for r in conn.execute(sa.text("SELECT holder FROM job_leases"))}
    assert statuses(db) == {EXECUTED: 2 * WAVE + BURNS}, unfinished(db)[:10]
    assert kinds == {"lock": 2 * WAVE, "burn": BURNS} and len(lock_keys) == 2 * WAVE
    assert [r for r in unfinished(db) if r[3] != "not credited: unknown_denom"] == []
    assert Counter(n for _, n in executed_rows) == {1: 2 * WAVE + BURNS}

    # Ledger: exactly one mint journal entry per lock event, none for anything else.
    mints = ledger_mints(ledger)
    assert set(mints) == lock_keys
    assert set(mints.values()) == {1}
    expected: dict[bytes, Counter[str]] = {bytes(u.verify_key): Counter() for u in users}
    for token, amount, recipient in locks:
        expected[recipient][weth if token == NATIVE_TOKEN else wtest] += amount
    expected[burner_account][weth] -= sum(10**14 + i for i in range(BURNS))
    for account, want in expected.items():
        have = ledger.account(account).balances
        assert {a: have.get(a, 0) for a in (weth, wtest)} == {
            a: want.get(a, 0) for a in (weth, wtest)}
    zero = Web3.to_checksum_address(NATIVE_TOKEN)
    assert locker.bridge.functions.totalReleased(zero).call() == sum(
        10**14 + i for i in range(BURNS))

    # The survivor took over: it holds every job lease now, and executed at least every
    # mint left when the victim died, plus the releases.
    assert holders == {survivor}
    survivor_metrics = info.relayers[survivor]["metrics_url"]
    assert executed_counter(survivor_metrics, "ferry:ledger") >= (
        2 * WAVE - at_kill.get(EXECUTED, 0))
    assert executed_counter(survivor_metrics, ETH) == BURNS
