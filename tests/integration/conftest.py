"""Session fixtures for integration tests: real nodes on free loopback ports.

Owns: starting each node once per session in a pytest temp dir, bounded readiness, always
stopping it, and attaching its log tail to failing tests. Must not sleep for chain time
(move it with RPC calls instead) nor leave processes behind.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import Web3

from adapters.evm.devnet import AnvilNode, connect

# ============================================================================ EVM devnets (anvil)
# Two automining anvil nodes, "eip155:31337" (Ethereum) and "eip155:31338" (BSC), and a Web3
# client for the first. Each node is started once per session and always stopped.

ANVIL_READY_TIMEOUT_S = 30.0
_ANVIL_FIXTURES = {"anvil_eth": 31337, "anvil_bsc": 31338}
_running_anvils: dict[str, AnvilNode] = {}


def _run_anvil(
    fixture_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AnvilNode]:
    chain_id = _ANVIL_FIXTURES[fixture_name]
    node = AnvilNode(chain_id, workdir=tmp_path_factory.mktemp(f"anvil-{chain_id}"))
    try:
        node.start()
        node.wait_ready(timeout_s=ANVIL_READY_TIMEOUT_S)  # error message carries the log tail
        _running_anvils[fixture_name] = node
        yield node
    finally:
        _running_anvils.pop(fixture_name, None)
        node.stop()


@pytest.fixture(scope="session")
def anvil_eth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    """Automining anvil serving chain id 31337 ("eip155:31337")."""
    yield from _run_anvil("anvil_eth", tmp_path_factory)


@pytest.fixture(scope="session")
def anvil_bsc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    """Automining anvil serving chain id 31338 ("eip155:31338")."""
    yield from _run_anvil("anvil_bsc", tmp_path_factory)


@pytest.fixture(scope="session")
def w3_eth(anvil_eth: AnvilNode) -> Web3:
    """`Web3` HTTP client of `anvil_eth`."""
    return connect(anvil_eth.rpc_url)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the log tail of every anvil a failing test used to its report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    for name in getattr(item, "fixturenames", ()):
        node = _running_anvils.get(name)
        if node is not None:
            report.sections.append((f"anvil {node.chain} log tail", node.log_tail()))


# ============================================================================ end EVM devnets
