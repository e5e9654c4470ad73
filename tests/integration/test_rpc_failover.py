"""Several RPC endpoints behind one `EvmAdapter`, with two real anvil nodes.

Node A is a private automining anvil with a bridge and one lock; node B is started with
``--fork-url`` A at A's head (the fork block), so both serve the same chain id and the same
history up to that block and diverge only by what is sent to each afterwards. Each test gets its
own pair (tests kill A or make the nodes diverge) and both are always stopped; their log tails
are printed when a test fails. Chain time is moved with ``anvil_mine``, never by sleeping.

In fork mode B answers for blocks up to the fork block by asking A, so agreement there shows the
comparison path end to end; divergence is made in the blocks after the fork. Reads that must
survive A's death therefore use B's own blocks (after the fork).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import pytest
from web3 import Web3

from adapters.base import NATIVE_TOKEN
from adapters.devnode import free_port
from adapters.errors import RpcDisagreement, RpcUnavailable, WrongChain
from adapters.evm.adapter import EvmAdapter
from adapters.evm.config import EvmChainConfig
from adapters.evm.devnet import (
    ANVIL_DEV_KEY,
    AnvilNode,
    anvil_binary,
    connect,
    deploy_bridge,
    fund,
    transact,
)
from contracts import load_artifact
from validators.eip712 import address_of

pytestmark = pytest.mark.integration

CHAIN_ID = 31345
ETHER = 10**18
LOCKER_KEY = hashlib.sha256(b"ferry/tests/rpc-failover/locker").digest()
VALIDATORS = [address_of(hashlib.sha256(f"ferry/tests/rpc-failover/v{i}".encode()).digest())
              for i in range(3)]


class ForkedAnvil(AnvilNode):
    """An anvil that forks `fork_url` at `fork_block` (``--fork-url``), serving `chain_id`."""

    def __init__(self, chain_id: int, fork_url: str, fork_block: int) -> None:
        super().__init__(chain_id)
        self.fork_url, self.fork_block = fork_url, fork_block

    def start(self) -> Self:
        self.port = free_port()
        cmd = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(self.port),
               "--chain-id", str(self.chain_id), "--cache-path", str(self.workdir / "cache"),
               "--fork-url", self.fork_url, "--fork-block-number", str(self.fork_block)]
        self._proc.spawn(cmd, self.workdir)
        return self


@dataclass
class Pair:
    """Node A (bridge deployed, one lock before the fork) and node B forked from A."""

    a: AnvilNode
    b: ForkedAnvil
    bridge: str
    fork_block: int
    first_lock_block: int

    def config(self, urls: list[str], **over: Any) -> EvmChainConfig:
        values: dict[str, Any] = {"name": "ethereum", "chain_id": CHAIN_ID, "rpc_url": urls[0],
                                  "rpc_urls": urls[1:], "bridge_address": self.bridge,
                                  "confirmation_depth": 0}
        return EvmChainConfig(**{**values, **over})

    def adapter(self, urls: list[str], **over: Any) -> EvmAdapter:
        # One attempt per read: what is shown is failover across endpoints, not a retry.
        return EvmAdapter(self.config(urls, **over), read_attempts=1)

    def lock(self, node: AnvilNode, amount: int) -> int:
        """Lock `amount` wei of the native coin on `node` only; returns the block number."""
        w3 = connect(node.rpc_url)
        contract = w3.eth.contract(address=Web3.to_checksum_address(self.bridge),
                                   abi=load_artifact("Bridge").abi)
        call = contract.functions.lock(NATIVE_TOKEN, amount, b"\x42" * 32)
        receipt = transact(w3, call, sender_key="0x" + LOCKER_KEY.hex(), value_wei=amount)
        return int(receipt["blockNumber"])


def mine(node: AnvilNode, blocks: int = 1) -> None:
    connect(node.rpc_url).provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    failed_before = request.session.testsfailed
    a = AnvilNode(CHAIN_ID)
    b: ForkedAnvil | None = None
    try:
        a.start()
        a.wait_ready()
        w3 = connect(a.rpc_url)
        fund(w3, address_of(LOCKER_KEY), 10**6 * ETHER)
        bridge = deploy_bridge(w3, VALIDATORS, 2, [NATIVE_TOKEN], sender_key=ANVIL_DEV_KEY)
        pair = Pair(a, ForkedAnvil(CHAIN_ID, a.rpc_url, 0), bridge, 0, 0)
        pair.first_lock_block = pair.lock(a, 10**15)
        pair.fork_block = w3.eth.block_number
        b = pair.b = ForkedAnvil(CHAIN_ID, a.rpc_url, pair.fork_block)
        b.start()
        b.wait_ready()
        yield pair
    finally:
        if request.session.testsfailed > failed_before:
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            for node in (a, b):
                if node is not None and reporter is not None:
                    reporter.write_line(f"anvil :{node.port} log tail:\n{node.log_tail()}")
        if b is not None:
            b.stop()
        a.stop()


def test_quorum_of_two_agreeing_nodes_reads_the_same_locks(pair: Pair) -> None:
    both = [pair.a.rpc_url, pair.b.rpc_url]
    adapter = pair.adapter(both, rpc_quorum=2)
    adapter.verify_chain()
    head = adapter.head()
    assert head.number == pair.fork_block
    events = adapter.lock_events(0, head.number)
    assert [e.block_number for e in events] == [pair.first_lock_block]
    assert events[0].amount == 10**15
    only_a = pair.adapter([pair.a.rpc_url]).lock_events(0, head.number)
    only_b = pair.adapter([pair.b.rpc_url]).lock_events(0, head.number)
    assert events == only_a == only_b
    assert adapter.finalized(head) == head
    assert adapter.block_hash(pair.first_lock_block) == events[0].block_hash


def test_a_lock_only_one_node_has_is_refused_as_a_disagreement(pair: Pair) -> None:
    adapter = pair.adapter([pair.a.rpc_url, pair.b.rpc_url], rpc_quorum=2)
    adapter.verify_chain()
    lock_block = pair.lock(pair.a, 7 * 10**14)  # sent to A only, after the fork
    assert lock_block == pair.fork_block + 1
    assert adapter.head().number == pair.fork_block  # B is behind: the lowest head is used
    mine(pair.b)  # B builds its own block at the same height
    with pytest.raises(RpcDisagreement):
        adapter.lock_events(pair.fork_block + 1, lock_block)
    with pytest.raises(RpcDisagreement):
        adapter.head()
    with pytest.raises(RpcDisagreement):
        adapter.block_hash(lock_block)
    # The shared history still agrees, and a single endpoint still sees A's lock.
    assert len(adapter.lock_events(0, pair.fork_block)) == 1
    assert len(pair.adapter([pair.a.rpc_url]).lock_events(lock_block, lock_block)) == 1


def test_quorum_one_fails_over_to_b_when_a_is_killed(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = pair.adapter([pair.a.rpc_url, pair.b.rpc_url], rpc_quorum=1)
    adapter.verify_chain()
    b_lock = pair.lock(pair.b, 3 * 10**14)  # only B has it: tells the answers apart
    assert adapter.head().number == pair.fork_block  # A answers first
    pair.a.stop()  # terminates the process
    caplog.set_level(logging.WARNING, logger="adapters.evm.multi")
    assert adapter.head().number == b_lock
    events = adapter.lock_events(pair.fork_block + 1, b_lock)
    assert [(e.block_number, e.amount) for e in events] == [(b_lock, 3 * 10**14)]
    failovers = [r.getMessage() for r in caplog.records if "failing over" in r.getMessage()]
    assert failovers and f"host=127.0.0.1:{pair.a.port}" in failovers[0]
    assert f"chain=eip155:{CHAIN_ID}" in failovers[0]


def test_quorum_two_with_a_down_is_rpc_unavailable(pair: Pair) -> None:
    adapter = pair.adapter([pair.a.rpc_url, pair.b.rpc_url], rpc_quorum=2)
    adapter.verify_chain()
    mine(pair.b)  # B's head is its own block (the fork block itself is served from A)
    pair.a.stop()
    with pytest.raises(RpcUnavailable, match="1 of rpc_quorum 2"):
        adapter.head()
    with pytest.raises(RpcUnavailable):
        adapter.lock_events(pair.fork_block + 1, pair.fork_block + 1)  # B alone has it


def test_an_endpoint_on_another_chain_id_is_refused_at_start(
    pair: Pair, anvil_bsc: AnvilNode
) -> None:
    adapter = pair.adapter([pair.a.rpc_url, anvil_bsc.rpc_url, pair.b.rpc_url])
    with pytest.raises(WrongChain, match=f"{anvil_bsc.rpc_url} serves chain id 31338"):
        adapter.verify_chain()
    with pytest.raises(WrongChain):
        adapter.head()  # refused for good, even though A alone could answer


def test_an_endpoint_down_at_start_is_allowed_and_the_others_serve(pair: Pair) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    adapter = pair.adapter([dead, pair.b.rpc_url])
    adapter.verify_chain()
    assert adapter.head().number == pair.fork_block


def test_a_relayer_pass_records_only_the_locks_the_quorum_agrees_on(
    pair: Pair, tmp_path: Any
) -> None:
    from relayer.engine import ChainPlan, Engine
    from relayer.machine import TransferStatus
    from relayer.service import guarded
    from relayer.store import Store

    class Clock:
        def now(self) -> float:
            return 1_000.0

    class NoLedger:  # watch_chain never reaches the ledger
        def status(self) -> Any:
            raise AssertionError("watch_chain must not touch the ledger")

    adapter = pair.adapter([pair.a.rpc_url, pair.b.rpc_url], rpc_quorum=2)
    adapter.verify_chain()
    chain = adapter.chain
    plan = ChainPlan(adapter=adapter, max_block_range=100,
                     assets={NATIVE_TOKEN: f"{chain}/{NATIVE_TOKEN}"})
    engine = Engine(Store.open(f"sqlite:///{tmp_path}/relayer.sqlite", Clock()), {chain: plan},
                    ledger=NoLedger(), network="ferry-test", mint_request=None,  # type: ignore[arg-type]
                    clock=Clock())  # type: ignore[arg-type]
    a_only = pair.lock(pair.a, 5 * 10**14)  # after the fork, on A only
    engine.watch_chain(chain)  # the agreed head is the fork block: A's new lock is not seen
    assert engine.store.cursor(f"chain:{chain}").number == pair.fork_block  # type: ignore[union-attr]
    mine(pair.b)  # B now has another block at A's lock height
    guarded(engine, "chain", chain, lambda: engine.watch_chain(chain))()  # logged, not raised
    assert engine.store.cursor(f"chain:{chain}").number == pair.fork_block  # type: ignore[union-attr]
    assert engine.metrics.registry.get_sample_value(
        "ferry_relayer_rpc_errors_total", {"chain": chain}) == 1.0
    observed = engine.store.transfers(tuple(TransferStatus), limit=10)
    amounts = sorted(int(r.amount) for r in observed)
    assert amounts == [10**15] and a_only == pair.fork_block + 1
