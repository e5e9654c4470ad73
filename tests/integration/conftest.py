"""Session fixtures for integration tests: real nodes on free loopback ports.

Owns: starting each node once per session in a pytest temp dir, bounded readiness, always
stopping it, and attaching its log tail to failing tests. Must not sleep for chain time
(move it with RPC calls instead) nor leave processes behind.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from web3 import Web3

from adapters.bitcoin.devnet import BtcdNode, Faucet, address_p2wpkh
from adapters.bitcoin.keys import public_key
from adapters.bitcoin.rpc import BtcRpc
from adapters.cosmos.devnet import BOND_DENOM, DEFAULT_EXTRA_DENOMS, CosmosWallet, SimdNode
from adapters.evm.devnet import AnvilNode, connect
from adapters.solana.svm_node import SvmNode

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
        btcd = _running_btcds.get(name)
        if btcd is not None:
            report.sections.append((f"btcd {btcd.chain} log tail", btcd.log_tail()))
        simd = _running_simds.get(name)
        if simd is not None:
            report.sections.append((f"simd {simd.chain} log tail", simd.log_tail()))
        svm = _running_svms.get(name)
        if svm is not None:
            report.sections.append((f"solana devnet {svm.caip2} log tail", svm.log_tail()))


# ============================================================================ end EVM devnets


# ============================================================================ Bitcoin devnet (btcd)
# One btcd regtest node per session, its RPC client, and a faucet whose key is fresh each run
# (the node's --miningaddr). The faucet has matured 101 blocks, so it holds spendable coinbases.
# Tests that rewrite history (invalidateblock) restore the tip before they return.

BTCD_READY_TIMEOUT_S = 30.0
_running_btcds: dict[str, BtcdNode] = {}


@dataclass(frozen=True)
class BtcdDevnet:
    """The session's btcd node, an RPC client of it and its faucet."""

    node: BtcdNode
    rpc: BtcRpc
    faucet: Faucet


@pytest.fixture(scope="session")
def btcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BtcdDevnet]:
    """btcd in regtest ("bip122:0f9188f13cb7b2c71f2a335e3a4fc328") with a matured faucet.

    A missing binary fails (ConfigError: run `make install`); it is never skipped.
    """
    secret = secrets.token_bytes(32)
    node = BtcdNode(tmp_path_factory.mktemp("btcd"),
                    mining_address=address_p2wpkh(public_key(secret), "regtest"))
    rpc: BtcRpc | None = None
    try:
        node.start()
        node.wait_ready(timeout_s=BTCD_READY_TIMEOUT_S)  # error message carries the log tail
        rpc = node.rpc()
        faucet = Faucet(rpc, secret)
        try:
            faucet.mature()
        except Exception:
            print(f"btcd log tail:\n{node.log_tail()}")  # shown with the setup error
            raise
        _running_btcds["btcd"] = node
        yield BtcdDevnet(node, rpc, faucet)
    finally:
        _running_btcds.pop("btcd", None)
        if rpc is not None:
            rpc.close()
        node.stop()


# ============================================================================ end Bitcoin devnet


# ============================================================================ Cosmos devnet (simd)
# One simd (Cosmos SDK v0.50.3 simapp) validator per session, chain id "ferry-sim-1". A faucet
# and SIMD_GENESIS_WALLETS spare wallets are funded at genesis with stake, uatom and the
# look-alike uatomm; `new_wallet` hands out the spares, then wallets the faucet funds.
# Blocks come every ~250 ms on their own: tests poll for inclusion with a bound.

SIMD_READY_TIMEOUT_S = 60.0
SIMD_GENESIS_WALLETS = 6
SIMD_FAUCET_STAKE = 10**15  # stake base units
SIMD_WALLET_STAKE = 10**12  # stake base units per genesis wallet (and each extra denom)
SIMD_TOPUP = 10**9  # base units of each denom the faucet gives a wallet made after genesis
_running_simds: dict[str, SimdNode] = {}


class SimdDevnet:
    """The session's simd node, its faucet and a supply of funded wallets."""

    def __init__(self, node: SimdNode, faucet: CosmosWallet,
                 spares: list[CosmosWallet]) -> None:
        self.node = node
        self.faucet = faucet
        self.chain_id = node.chain_id
        self._spares = spares

    def new_wallet(self) -> CosmosWallet:
        """A fresh funded wallet: a spare funded at genesis (10^12 of stake, uatom, uatomm),
        else a new random key the faucet pays 10^9 of each (one MsgMultiSend)."""
        if self._spares:
            return self._spares.pop(0)
        wallet = CosmosWallet(self.node)
        denoms = [BOND_DENOM, *DEFAULT_EXTRA_DENOMS]
        self.faucet.send_multi([(wallet.address, SIMD_TOPUP, d) for d in denoms])
        return wallet


@pytest.fixture(scope="session")
def simd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimdDevnet]:
    """simd ("cosmos:ferry-sim-1") with a faucet and funded wallets (`SimdDevnet.new_wallet`).

    A missing binary fails (ConfigError: run `make install`); it is never skipped.
    """
    keys = [secrets.token_bytes(32) for _ in range(1 + SIMD_GENESIS_WALLETS)]
    accounts = {CosmosWallet.address_of(k): SIMD_WALLET_STAKE for k in keys[1:]}
    accounts[CosmosWallet.address_of(keys[0])] = SIMD_FAUCET_STAKE
    node = SimdNode(tmp_path_factory.mktemp("simd"), accounts=accounts)
    try:
        node.start()
        node.wait_ready(timeout_s=SIMD_READY_TIMEOUT_S)  # error message carries the log tail
        _running_simds["simd"] = node
        yield SimdDevnet(node, CosmosWallet(node, keys[0]),
                         [CosmosWallet(node, k) for k in keys[1:]])
    finally:
        _running_simds.pop("simd", None)
        node.stop()


# ============================================================================ end Cosmos devnet


# ============================================================================ Solana devnet (LiteSVM)
# One LiteSVM-backed JSON-RPC server per session (adapters.solana.devnet_rpc): a slot every
# 100 ms, finalized = slot - 8, genesis seed "ferry-solana-devnet". requestAirdrop funds any
# key. Tests that need exact slot control start a private `SvmNode.start(dir, slot_ms=0)` and
# move slots with `SvmNode.advance_slots`.

SVM_READY_TIMEOUT_S = 30.0
_running_svms: dict[str, SvmNode] = {}


@pytest.fixture(scope="session")
def svm_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvmNode]:
    """The session's Solana devnet server ("solana:" + genesis hash[:32]), always stopped."""
    node = SvmNode.start(tmp_path_factory.mktemp("solana-svm"),
                         ready_timeout_s=SVM_READY_TIMEOUT_S)  # errors carry the log tail
    try:
        _running_svms["svm_node"] = node
        yield node
    finally:
        _running_svms.pop("svm_node", None)
        node.stop()


# ============================================================================ end Solana devnet
