"""Several CometBFT endpoints behind one `CosmosAdapter` (``rpc_urls``, ``rpc_quorum``).

The session's simd is listed as ``127.0.0.1`` and ``localhost`` (two distinct endpoints of one
node, which always agree), next to a dead port (a node that is down). The wrong-chain case uses
a second simd started with another chain id (it starts in a few seconds); it is stopped when
the test ends and its log tail printed if the test failed. Disagreement between two different
nodes is covered with fake nodes in ``tests/unit/test_multi_rpc_chains.py``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.bitcoin.keys import public_key
from adapters.cosmos.adapter import CosmosAdapter
from adapters.cosmos.config import CosmosChainConfig
from adapters.cosmos.devnet import CosmosWallet, SimdNode
from adapters.devnode import free_port
from adapters.errors import RpcUnavailable, WrongChain
from tests.integration.conftest import SimdDevnet

pytestmark = pytest.mark.integration


def adapter(simd: SimdDevnet, urls: list[str], **over: Any) -> CosmosAdapter:
    """An adapter of the session's chain through `urls`, with an escrow of its own."""
    validators = [public_key(secrets.token_bytes(32)).hex() for _ in range(3)]
    values: dict[str, Any] = {
        "name": "sim", "chain_id": simd.chain_id, "rpc_url": urls[0], "rpc_urls": urls[1:],
        "rest_url": simd.node.rest_url, "validator_pubkeys": validators, "threshold": 2,
        "denoms": [{"denom": "stake"}], "request_timeout_s": 2.0}
    # One attempt per read: what is shown is failover across nodes, not a retry.
    return CosmosAdapter(CosmosChainConfig(**{**values, **over}), read_attempts=1)


def twice(simd: SimdDevnet) -> list[str]:
    return [simd.node.rpc_url, simd.node.rpc_url.replace("127.0.0.1", "localhost")]


def dead() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_one_node_listed_twice_agrees_on_head_and_a_deposit(simd: SimdDevnet) -> None:
    a = adapter(simd, twice(simd), rpc_quorum=2)
    a.verify_chain()
    user = secrets.token_bytes(32)
    txhash = simd.new_wallet().send(a.escrow, 1_000_000, "stake", memo="0x" + user.hex())
    included = simd.faucet.wait_tx(txhash).height
    deadline = time.monotonic() + 10.0  # results are read one block behind the latest
    while a.head().number < included:
        assert time.monotonic() < deadline, f"head never reached {included} (blocks ~250 ms)"
        time.sleep(0.05)
    assert a.finalized().number >= included
    [event] = a.lock_events(included, included)
    assert (event.amount, event.recipient, event.tx_hash) == (1_000_000, user, txhash)
    assert a.block_hash(included) == event.block_hash
    a.rpc.close()


def test_quorum_one_fails_over_past_a_dead_endpoint(
    simd: SimdDevnet, caplog: pytest.LogCaptureFixture
) -> None:
    down = dead()
    a = adapter(simd, [down, simd.node.rpc_url])
    caplog.set_level(logging.WARNING, logger="adapters.cosmos.rpc")
    a.verify_chain()  # down at start: allowed, checked before its first use
    head = a.head()
    assert a.lock_events(head.number, head.number) == []
    failovers = [r.getMessage() for r in caplog.records if "failing over" in r.getMessage()]
    assert failovers and f"host={down.removeprefix('http://')}" in failovers[0]
    a.rpc.close()


def test_quorum_two_with_a_dead_endpoint_is_rpc_unavailable(simd: SimdDevnet) -> None:
    a = adapter(simd, [simd.node.rpc_url, dead()], rpc_quorum=2)
    a.verify_chain()
    with pytest.raises(RpcUnavailable, match="1 of rpc_quorum 2"):
        a.head()
    with pytest.raises(RpcUnavailable, match="1 of rpc_quorum 2"):
        a.lock_events(1, 1)
    a.rpc.close()


@pytest.fixture
def other_chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SimdNode]:
    """A second simd serving chain id ``other-sim-1``; always stopped."""
    node = SimdNode(tmp_path / "other",
                    accounts={CosmosWallet.address_of(secrets.token_bytes(32)): 10**12},
                    chain_id="other-sim-1")
    failed_before = request.session.testsfailed
    try:
        node.start()
        node.wait_ready()
        yield node
    finally:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if request.session.testsfailed > failed_before and reporter is not None:
            reporter.write_line(f"simd other-sim-1 log tail:\n{node.log_tail()}")
        node.stop()


def test_an_endpoint_serving_another_chain_id_is_refused_at_start(
    simd: SimdDevnet, other_chain: SimdNode
) -> None:
    a = adapter(simd, [simd.node.rpc_url, other_chain.rpc_url])
    with pytest.raises(WrongChain,
                       match=f"{other_chain.rpc_url} serves chain id other-sim-1, configured "
                             f"{simd.chain_id}"):
        a.verify_chain()
    with pytest.raises(WrongChain):
        a.head()  # refused for good, though the first node alone could answer
    a.rpc.close()
