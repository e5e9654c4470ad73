"""Several btcd nodes behind one `BitcoinAdapter` (``rpc_urls``, ``rpc_quorum``).

Node A is the session's btcd (regtest, matured faucet). "A twice" lists it as ``127.0.0.1`` and
``localhost``: two distinct endpoints of one node, which always agree. Node B is a second
regtest btcd that is not connected to A and mines its own blocks, so A and B share only the
genesis block: every later height differs (a disagreement). Node S runs on simnet (another
genesis block). Every node a test starts is stopped, and its log tail printed on failure.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.base import BlockRef
from adapters.bitcoin.adapter import BitcoinAdapter
from adapters.bitcoin.config import GENESIS, BitcoinChainConfig
from adapters.bitcoin.devnet import BtcdNode, address_p2wpkh
from adapters.bitcoin.keys import public_key
from adapters.devnode import free_port
from adapters.errors import RpcDisagreement, RpcUnavailable, WrongChain
from tests.integration.conftest import BtcdDevnet

pytestmark = pytest.mark.integration

SIMNET_GENESIS = "683e86bd5c6d110d91b94b97137ba6bfe02dbbdb8e3dff722a669b5d69d77af6"
VALIDATORS = [public_key(secrets.token_bytes(32)).hex() for _ in range(3)]


def _regtest_node(workdir: Path) -> BtcdNode:
    """A regtest btcd of its own (its own mining key), not connected to any other node."""
    mining = address_p2wpkh(public_key(secrets.token_bytes(32)), "regtest")
    return BtcdNode(workdir, mining_address=mining)


class SimnetBtcd(BtcdNode):
    """btcd on simnet: `BtcdNode`'s command line with ``--simnet`` for ``--regtest`` and no
    mining address (a regtest address is refused there). Ready when it answers its genesis:
    `BtcdNode.wait_ready` then raises `WrongChain` (it expects the regtest genesis)."""

    def start(self) -> SimnetBtcd:
        spawn = self._proc.spawn

        def simnet(cmd: list[str], cwd: Path) -> None:
            spawn([a.replace("--regtest", "--simnet") for a in cmd
                   if not a.startswith("--miningaddr")], cwd)

        self._proc.spawn = simnet  # type: ignore[method-assign]
        super().start()
        return self


@pytest.fixture
def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[BtcdNode]]:
    """Started nodes a test adds (`start`); all stopped after it, logs shown if it failed."""
    started: list[BtcdNode] = []
    failed_before = request.session.testsfailed
    try:
        yield started
    finally:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        for node in started:
            if request.session.testsfailed > failed_before and reporter is not None:
                reporter.write_line(f"btcd :{node.rpc_port} log tail:\n{node.log_tail()}")
            node.stop()


def start(nodes: list[BtcdNode], node: BtcdNode) -> BtcdNode:
    nodes.append(node)
    node.start()
    if isinstance(node, SimnetBtcd):
        with pytest.raises(WrongChain, match=SIMNET_GENESIS):
            node.wait_ready()
    else:
        node.wait_ready()
    return node


def adapter(btcd: BtcdDevnet, urls: list[str], **over: Any) -> BitcoinAdapter:
    node = btcd.node
    values: dict[str, Any] = {
        "name": "bitcoin", "network": "regtest", "rpc_url": urls[0], "rpc_urls": urls[1:],
        "rpc_user": node.rpc_user, "rpc_password": SecretStr(node.rpc_password),
        "validator_pubkeys": VALIDATORS, "threshold": 2, "confirmation_depth": 1,
        "request_timeout_s": 2.0}
    # One attempt per read: what is shown is failover across nodes, not a retry.
    return BitcoinAdapter(BitcoinChainConfig(**{**values, **over}), read_attempts=1)


def tip(btcd: BtcdDevnet) -> BlockRef:
    """Node A's own tip, read without the adapter."""
    return BlockRef(*btcd.rpc.best_block())


def twice(btcd: BtcdDevnet) -> list[str]:
    return [btcd.node.rpc_url, btcd.node.rpc_url.replace("127.0.0.1", "localhost")]


def same_credentials(node: BtcdNode, btcd: BtcdDevnet) -> BtcdNode:
    node.rpc_user, node.rpc_password = btcd.node.rpc_user, btcd.node.rpc_password
    return node


def test_one_node_listed_twice_agrees_on_head_hashes_and_a_segwit_deposit(
    btcd: BtcdDevnet,
) -> None:
    a = adapter(btcd, twice(btcd), rpc_quorum=2)
    a.verify_chain()
    account = secrets.token_bytes(32)
    a.registry.add([account])
    btcd.faucet.pay(a.vault.deposit(account).script_pubkey, 250_000)
    [block_hash] = btcd.rpc.generate(1)
    head = a.head()
    assert head.hash == block_hash and a.block_hash(head.number) == block_hash
    assert a.finalized(head) == head
    [event] = a.lock_events(head.number - 1, head.number)
    assert (event.amount, event.recipient, event.block_hash) == (250_000, account, block_hash)
    assert event.uncredited is None
    a.rpc.close()


def test_nodes_with_their_own_blocks_disagree_and_nothing_is_read(
    btcd: BtcdDevnet, nodes: list[BtcdNode], tmp_path: Path
) -> None:
    b = start(nodes, same_credentials(_regtest_node(tmp_path / "b"), btcd))
    b.rpc().generate(3)
    both = adapter(btcd, [btcd.node.rpc_url, b.rpc_url], rpc_quorum=2)
    both.verify_chain()  # same network: both accepted
    with pytest.raises(RpcDisagreement):
        both.head()  # B's tip (3) is lower; A has another block at 3
    with pytest.raises(RpcDisagreement):
        both.block_hash(1)
    with pytest.raises(RpcDisagreement):
        both.lock_events(1, 3)
    assert both.block_hash(0) == GENESIS["regtest"]  # the one block they share
    first_only = adapter(btcd, [btcd.node.rpc_url, b.rpc_url])  # quorum 1: A alone answers
    assert first_only.head() == tip(btcd)
    both.rpc.close()
    first_only.rpc.close()


def test_quorum_one_fails_over_when_a_node_stops_and_quorum_two_is_then_unavailable(
    btcd: BtcdDevnet, nodes: list[BtcdNode], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    c = start(nodes, same_credentials(_regtest_node(tmp_path / "c"), btcd))
    c.rpc().generate(2)
    one = adapter(btcd, [c.rpc_url, btcd.node.rpc_url])
    one.verify_chain()
    assert one.head().number == 2  # C answers first
    c.stop()
    caplog.set_level(logging.WARNING, logger="adapters.bitcoin.multi")
    assert one.head() == tip(btcd)
    failovers = [r.getMessage() for r in caplog.records if "failing over" in r.getMessage()]
    assert failovers and f"host=127.0.0.1:{c.rpc_port}" in failovers[0]
    assert btcd.node.rpc_password not in caplog.text
    two = adapter(btcd, [btcd.node.rpc_url, c.rpc_url], rpc_quorum=2)
    two.verify_chain()  # C is down: checked before its first use
    with pytest.raises(RpcUnavailable, match="1 of rpc_quorum 2"):
        two.head()
    with pytest.raises(RpcUnavailable):
        two.lock_events(1, 1)
    one.rpc.close()
    two.rpc.close()


def test_a_node_down_at_start_is_allowed_and_the_other_serves(btcd: BtcdDevnet) -> None:
    a = adapter(btcd, [f"http://127.0.0.1:{free_port()}", btcd.node.rpc_url])
    a.verify_chain()
    assert a.head() == tip(btcd)
    a.rpc.close()


def test_a_simnet_node_among_the_endpoints_is_refused_at_start(
    btcd: BtcdDevnet, nodes: list[BtcdNode], tmp_path: Path
) -> None:
    s = start(nodes, same_credentials(SimnetBtcd(tmp_path / "s", mining_address=""), btcd))
    a = adapter(btcd, [btcd.node.rpc_url, s.rpc_url])
    with pytest.raises(WrongChain, match=f"{s.rpc_url} serves genesis {SIMNET_GENESIS}"):
        a.verify_chain()
    with pytest.raises(WrongChain):
        a.head()  # refused for good, though A alone could answer
    a.rpc.close()

