"""`EvmAdapter`, and chain-neutral fork finding over it, against real anvil nodes.

Shared, automining nodes come from the session fixtures (`anvil_eth`, `anvil_bsc`). Tests that
rewrite history (`anvil_reorg`), stop automining or stop the node use a private `AnvilNode`, so
no other module ever sees a chain rewritten under it. Fake HTTP servers stand in for a node that
times out or answers 5xx. Chain time is moved with `anvil_mine`, never by sleeping.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import eth_abi
import pytest
from web3 import Web3
from web3.contract import Contract

from adapters.base import NATIVE_TOKEN, BlockRef, LockEvent, PreparedTx, ReleaseOrder, TxStatus
from adapters.errors import (
    InvalidSignature,
    NonceTooLow,
    RpcUnavailable,
    Unsupported,
    WrongChain,
)
from adapters.evm.adapter import EvmAdapter
from adapters.evm.config import EvmChainConfig
from adapters.evm.devnet import (
    ANVIL_DEV_KEY,
    AnvilNode,
    connect,
    deploy_bridge,
    deploy_test_token,
    free_port,
    fund,
    transact,
)
from adapters.reorg import fork_point
from contracts import load_artifact
from validators.eip712 import address_of, release_digest, sign_digest

try:  # pytest's default rootdir import mode puts this directory on sys.path
    from chain_conformance import ChainAdapterConformance, EmitLocks
except ImportError:  # the tests directories were made packages
    from tests.integration.chain_conformance import ChainAdapterConformance, EmitLocks

pytestmark = pytest.mark.integration

ETHER = 10**18
PRIVATE_CHAIN_ID = 31339


def role_key(label: str) -> bytes:
    """Deterministic secp256k1 key per role, so a failure replays identically."""
    return hashlib.sha256(f"ferry/tests/evm-adapter/{label}".encode()).digest()


VALIDATOR_KEYS = sorted((role_key(f"validator-{i}") for i in range(3)), key=address_of)
THRESHOLD = 2
LOCKER_KEY = role_key("locker")
SUBMITTER_KEY = role_key("submitter")


@dataclass
class Env:
    """One deployed bridge (native coin and a test token allowed) on one node."""

    node: AnvilNode
    w3: Web3
    bridge: str
    contract: Contract
    token: Contract

    def config(self, **over: Any) -> EvmChainConfig:
        values: dict[str, Any] = {
            "name": "ethereum",
            "chain_id": self.node.chain_id,
            "rpc_url": self.node.rpc_url,
            "bridge_address": self.bridge,
        }
        return EvmChainConfig(**{**values, **over})

    def adapter(self, submitter_key: bytes | None = None, **over: Any) -> EvmAdapter:
        return EvmAdapter(self.config(**over), submitter_key)

    def lock(
        self, amount: int, recipient: bytes = b"\x42" * 32, *, token: str = NATIVE_TOKEN
    ) -> Any:
        call = self.contract.functions.lock(Web3.to_checksum_address(token), amount, recipient)
        value = amount if token == NATIVE_TOKEN else 0
        return transact(self.w3, call, sender_key="0x" + LOCKER_KEY.hex(), value_wei=value)

    def wait_mined(self, tx_hash: str, timeout_s: float = 10.0) -> None:
        """Anvil's automine may finish just after `eth_sendRawTransaction` returns."""
        self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s, poll_latency=0.02)  # type: ignore[arg-type]

    def mine(self, blocks: int) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


def deploy_env(node: AnvilNode) -> Env:
    w3 = connect(node.rpc_url)
    for key in (LOCKER_KEY, SUBMITTER_KEY):
        fund(w3, address_of(key), 10**6 * ETHER)
    token_address = deploy_test_token(w3, sender_key=ANVIL_DEV_KEY)
    bridge = deploy_bridge(
        w3,
        [address_of(k) for k in VALIDATOR_KEYS],
        THRESHOLD,
        [NATIVE_TOKEN, token_address],
        sender_key=ANVIL_DEV_KEY,
    )
    contract = w3.eth.contract(
        address=Web3.to_checksum_address(bridge), abi=load_artifact("Bridge").abi
    )
    token = w3.eth.contract(
        address=Web3.to_checksum_address(token_address), abi=load_artifact("TestToken").abi
    )
    return Env(node, w3, bridge, contract, token)


@pytest.fixture(scope="module")
def env(anvil_eth: AnvilNode) -> Env:
    return deploy_env(anvil_eth)


@pytest.fixture(scope="module")
def private_node(request: pytest.FixtureRequest) -> Iterator[AnvilNode]:
    """An anvil only this module uses, for history rewrites and automine switches. Its log
    tail is written to the terminal if any test failed while it ran."""
    failed_before = request.session.testsfailed
    with AnvilNode(PRIVATE_CHAIN_ID) as node:
        yield node
        if request.session.testsfailed > failed_before:
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"private anvil {node.chain} log tail:\n{node.log_tail()}")


@pytest.fixture(scope="module")
def private_env(private_node: AnvilNode) -> Env:
    return deploy_env(private_node)


def release_order(
    adapter: EvmAdapter, burn_id: bytes, recipient: str, amount: int, token: str = NATIVE_TOKEN
) -> ReleaseOrder:
    """An order signed by the first `THRESHOLD` validators, in ascending address order."""
    digest = release_digest(
        adapter.config.chain_id,
        adapter.bridge,
        burn_id=burn_id,
        token=token,
        recipient=recipient,
        amount=amount,
        set_nonce=adapter.set_nonce(),
    )
    sigs = tuple(sign_digest(k, digest) for k in VALIDATOR_KEYS[:THRESHOLD])
    return ReleaseOrder(burn_id, token, recipient, amount, sigs)


def fresh_address(label: str) -> str:
    return address_of(role_key(f"{label}/{time.monotonic_ns()}"))


# ----------------------------------------------------------------------------- identity


def test_wrong_chain_id_is_refused_before_any_read(env: Env) -> None:
    adapter = env.adapter(chain_id=31338)
    with pytest.raises(WrongChain) as info:
        adapter.verify_chain()
    assert info.value.chain == "eip155:31338"
    with pytest.raises(WrongChain):
        adapter.head()


def test_the_bsc_devnet_is_accepted_under_its_own_chain_id(anvil_bsc: AnvilNode) -> None:
    config = EvmChainConfig(
        name="bsc", chain_id=31338, rpc_url=anvil_bsc.rpc_url, bridge_address="0x" + "00" * 20
    )
    adapter = EvmAdapter(config)
    adapter.verify_chain()
    assert adapter.chain == "eip155:31338"
    assert adapter.head().number >= 0


# ----------------------------------------------------------------------------- lock events


def test_lock_events_come_only_from_the_configured_bridge(env: Env) -> None:
    other = deploy_env(env.node)
    start = env.w3.eth.block_number + 1
    env.lock(7)
    other.lock(9)
    end = env.w3.eth.block_number
    mine = env.adapter().lock_events(start, end)
    theirs = other.adapter().lock_events(start, end)
    assert [(e.contract, e.amount) for e in mine] == [(env.bridge, 7)]
    assert [(e.contract, e.amount) for e in theirs] == [(other.bridge, 9)]


def test_lock_events_are_decoded_exactly(env: Env) -> None:
    adapter = env.adapter()
    locker = address_of(LOCKER_KEY)
    transact(
        env.w3,
        env.token.functions.mint(Web3.to_checksum_address(locker), 10 * ETHER),
        sender_key=ANVIL_DEV_KEY,
    )
    transact(
        env.w3,
        env.token.functions.approve(env.contract.address, 10 * ETHER),
        sender_key="0x" + LOCKER_KEY.hex(),
    )
    start = env.w3.eth.block_number + 1
    native = env.lock(123_456_789, bytes(range(32)))
    erc20 = env.lock(3 * ETHER, b"\xee" * 32, token=env.token.address.lower())
    nonce_before = env.contract.functions.lockNonce().call() - 2

    events = adapter.lock_events(start, env.w3.eth.block_number)

    assert len(events) == 2
    for event, receipt in zip(events, (native, erc20), strict=True):
        assert event.tx_hash == receipt["transactionHash"].to_0x_hex()
        assert event.block_number == receipt["blockNumber"]
        assert event.block_hash == receipt["blockHash"].to_0x_hex()
        assert event.log_index == receipt["logs"][-1]["logIndex"]
        assert (event.chain, event.contract, event.sender) == ("eip155:31337", env.bridge, locker)
    first, second = events
    assert (first.nonce, first.token, first.amount) == (
        nonce_before + 1,
        NATIVE_TOKEN,
        123_456_789,
    )
    assert first.recipient == bytes(range(32))
    assert (second.nonce, second.token, second.amount) == (
        nonce_before + 2,
        env.token.address.lower(),
        3 * ETHER,
    )
    assert second.recipient == b"\xee" * 32
    assert first.event_id == f"eip155:31337/{env.bridge}/{nonce_before + 1}"


def test_lock_events_are_the_same_whatever_the_chunk_size(env: Env) -> None:
    start = env.w3.eth.block_number + 1
    for amount in (1, 2, 3):
        env.lock(amount)
    env.mine(2)
    end = env.w3.eth.block_number
    whole = env.adapter().lock_events(start, end)
    chunked = env.adapter(max_block_range=1).lock_events(start, end)
    assert [e.amount for e in whole] == [1, 2, 3]
    assert chunked == whole


# ----------------------------------------------------------------------------- finality


def test_finalized_is_head_minus_confirmation_depth(env: Env) -> None:
    env.mine(5)
    adapter = env.adapter(confirmation_depth=2)
    head, finalized = adapter.head(), adapter.finalized()
    assert finalized.number == head.number - 2
    assert finalized.hash == adapter.block_hash(head.number - 2)
    assert env.adapter(confirmation_depth=0).finalized() == head


def test_finalized_tag_mode_follows_the_nodes_finalized_block(env: Env) -> None:
    adapter = env.adapter(use_finalized_tag=True)
    tagged = env.w3.eth.get_block("finalized")
    assert adapter.finalized() == BlockRef(tagged["number"], tagged["hash"].to_0x_hex())


# ----------------------------------------------------------------------------- reorgs


def test_reorg_is_located_and_the_removed_lock_is_never_returned(private_env: Env) -> None:
    env = private_env
    adapter = env.adapter(confirmation_depth=0)
    remembered = [adapter.head()]  # what a watcher keeps: the last block of every scan

    def scan_to_head() -> list[LockEvent]:
        last = adapter.head()
        events = adapter.lock_events(remembered[-1].number + 1, last.number)
        remembered.append(last)
        return events

    kept = env.lock(11)
    assert [e.amount for e in scan_to_head()] == [11]
    env.mine(1)
    assert scan_to_head() == []
    removed = env.lock(22)
    assert [e.amount for e in scan_to_head()] == [22]
    assert remembered[-1].number == removed["blockNumber"]
    assert fork_point(adapter, remembered) is None

    env.w3.provider.make_request("anvil_reorg", [2, []])  # type: ignore[arg-type]

    # The empty block above `kept` and the block of `removed` were replaced.
    survivor = fork_point(adapter, remembered)
    assert survivor is not None and survivor.number == kept["blockNumber"]
    remembered = [b for b in remembered if b.number <= survivor.number]
    assert remembered[-1] == BlockRef(kept["blockNumber"], adapter.block_hash(kept["blockNumber"]))
    assert scan_to_head() == []  # rescanning from the fork height: the removed lock is gone
    assert fork_point(adapter, remembered) is None
    assert [e.amount for e in adapter.lock_events(0, adapter.head().number)] == [11]
    assert adapter.tx_status(removed["transactionHash"].to_0x_hex()) is TxStatus.UNKNOWN


# ----------------------------------------------------------------------------- releases


def test_release_pays_exactly_and_is_final_after_depth_blocks(env: Env) -> None:
    adapter = env.adapter(SUBMITTER_KEY, confirmation_depth=2)
    env.lock(5 * ETHER)
    recipient = fresh_address("payee")
    burn_id = hashlib.sha256(b"burn/pays-exactly").digest()
    locked_before, released_before = adapter.custody_totals(NATIVE_TOKEN)
    assert not adapter.is_released(burn_id)

    tx_hash = adapter.submit_release(release_order(adapter, burn_id, recipient, 1_234_567))
    env.wait_mined(tx_hash)

    assert env.w3.eth.get_balance(Web3.to_checksum_address(recipient)) == 1_234_567
    assert adapter.is_released(burn_id)
    assert adapter.custody_totals(NATIVE_TOKEN) == (locked_before, released_before + 1_234_567)
    assert adapter.tx_status(tx_hash) is TxStatus.INCLUDED
    env.mine(1)
    assert adapter.tx_status(tx_hash) is TxStatus.INCLUDED
    env.mine(1)
    assert adapter.tx_status(tx_hash) is TxStatus.FINAL


def test_replayed_release_reverts_on_chain_and_reports_failed(env: Env) -> None:
    adapter = env.adapter(SUBMITTER_KEY)
    env.lock(ETHER)
    recipient = fresh_address("replay")
    order = release_order(adapter, hashlib.sha256(b"burn/replay").digest(), recipient, 1000)
    env.wait_mined(adapter.submit_release(order))
    replay = adapter.submit_release(order)  # a new tx (new nonce) for the same burn id
    env.wait_mined(replay)
    assert adapter.tx_status(replay) is TxStatus.FAILED
    assert env.w3.eth.get_balance(Web3.to_checksum_address(recipient)) == 1000


def test_two_submits_in_a_row_get_consecutive_nonces(env: Env) -> None:
    adapter = env.adapter(SUBMITTER_KEY)
    env.lock(ETHER)
    orders = [
        release_order(
            adapter, hashlib.sha256(f"burn/seq/{i}".encode()).digest(), fresh_address(f"s{i}"), 10
        )
        for i in range(2)
    ]
    first, second = adapter.prepare_release(orders[0]), adapter.prepare_release(orders[1])
    assert second.sender_nonce == first.sender_nonce + 1
    assert first.sender_nonce == env.w3.eth.get_transaction_count(
        Web3.to_checksum_address(adapter.submitter or ""), "pending"
    )
    for prepared in (first, second):
        assert adapter.broadcast(prepared) == prepared.tx_hash
        env.wait_mined(prepared.tx_hash)
        assert adapter.tx_status(prepared.tx_hash) in (TxStatus.INCLUDED, TxStatus.FINAL)


def test_concurrent_prepares_never_share_a_nonce(env: Env) -> None:
    adapter = env.adapter(SUBMITTER_KEY)
    env.lock(ETHER)
    orders = [
        release_order(
            adapter, hashlib.sha256(f"burn/par/{i}".encode()).digest(), fresh_address(f"p{i}"), 5
        )
        for i in range(6)
    ]
    prepared: list[PreparedTx] = []
    threads = [
        threading.Thread(target=lambda o=o: prepared.append(adapter.prepare_release(o)))
        for o in orders
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    nonces = sorted(p.sender_nonce for p in prepared)
    assert nonces == list(range(nonces[0], nonces[0] + 6))
    for p in sorted(prepared, key=lambda p: p.sender_nonce):
        adapter.broadcast(p)
    for p in prepared:
        env.wait_mined(p.tx_hash)
    assert all(adapter.is_released(o.burn_id) for o in orders)


def test_tx_hash_is_known_before_broadcast_and_rebroadcast_is_idempotent(env: Env) -> None:
    adapter = env.adapter(SUBMITTER_KEY)
    env.lock(ETHER)
    burn_id = hashlib.sha256(b"burn/rebroadcast").digest()
    prepared = adapter.prepare_release(release_order(adapter, burn_id, fresh_address("r"), 7))
    assert adapter.tx_status(prepared.tx_hash) is TxStatus.UNKNOWN
    assert adapter.broadcast(prepared) == prepared.tx_hash
    env.wait_mined(prepared.tx_hash)
    assert adapter.broadcast(prepared) == prepared.tx_hash  # node: "nonce too low", but ours
    assert adapter.tx_status(prepared.tx_hash) in (TxStatus.INCLUDED, TxStatus.FINAL)


def test_nonce_taken_by_another_tx_is_nonce_too_low(env: Env) -> None:
    ours, rival = env.adapter(SUBMITTER_KEY), env.adapter(SUBMITTER_KEY)
    env.lock(ETHER)
    orders = [
        release_order(
            ours, hashlib.sha256(f"burn/race/{i}".encode()).digest(), fresh_address("n"), 3
        )
        for i in range(2)
    ]
    mine, theirs = ours.prepare_release(orders[0]), rival.prepare_release(orders[1])
    assert mine.sender_nonce == theirs.sender_nonce  # two trackers, one account: a race
    env.wait_mined(rival.broadcast(theirs))
    with pytest.raises(NonceTooLow):
        ours.broadcast(mine)
    assert ours.tx_status(mine.tx_hash) is TxStatus.UNKNOWN
    again = ours.prepare_release(orders[0])  # tracker was reset: re-reads the chain
    assert again.sender_nonce == theirs.sender_nonce + 1
    env.wait_mined(ours.broadcast(again))
    assert ours.is_released(orders[0].burn_id)


def test_pending_release_is_reported_pending_and_rebroadcast_while_pending_is_idempotent(
    private_env: Env,
) -> None:
    env = private_env
    adapter = env.adapter(SUBMITTER_KEY, confirmation_depth=0)
    env.lock(ETHER)
    order = release_order(adapter, hashlib.sha256(b"burn/pending").digest(), fresh_address("q"), 9)
    env.w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        prepared = adapter.prepare_release(order)
        assert adapter.broadcast(prepared) == prepared.tx_hash
        assert adapter.tx_status(prepared.tx_hash) is TxStatus.PENDING
        assert adapter.broadcast(prepared) == prepared.tx_hash  # node: "already imported"
        env.mine(1)
    finally:
        env.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    assert adapter.tx_status(prepared.tx_hash) is TxStatus.FINAL


def test_read_only_adapter_refuses_to_submit(env: Env) -> None:
    adapter = env.adapter()
    with pytest.raises(Unsupported):
        adapter.prepare_release(release_order(adapter, b"\x01" * 32, fresh_address("x"), 1))


def test_views_report_the_deployed_set(env: Env) -> None:
    adapter = env.adapter()
    members = tuple(address_of(k) for k in VALIDATOR_KEYS)
    assert adapter.validator_set() == (1, members, THRESHOLD)
    assert (adapter.set_nonce(), adapter.threshold()) == (1, THRESHOLD)


def test_release_message_is_the_contracts_eip712_digest_and_recovers_its_signer(
    env: Env,
) -> None:
    adapter = env.adapter()
    burn_id, recipient = b"\x05" * 32, fresh_address("m")
    digest = adapter.release_message_hash(burn_id, NATIVE_TOKEN, recipient, 99, 1)
    assert digest == release_digest(
        31337,
        env.bridge,
        burn_id=burn_id,
        token=NATIVE_TOKEN,
        recipient=recipient,
        amount=99,
        set_nonce=1,
    )
    signature = sign_digest(VALIDATOR_KEYS[0], digest)
    assert adapter.recover_release_signer(digest, signature) == address_of(VALIDATOR_KEYS[0])
    with pytest.raises(InvalidSignature):
        adapter.recover_release_signer(digest, signature[:64] + b"\x01")


# ----------------------------------------------------------------------------- RPC faults


class FakeRpc:
    """A loopback HTTP server answering `eth_chainId` as `chain_id` and every other method with
    HTTP `status`; counts the requests it gets."""

    def __init__(self, chain_id: int, status: int) -> None:
        self.methods: list[str] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.methods.append(body["method"])
                if body["method"] == "eth_chainId":
                    code, reply = 200, {"jsonrpc": "2.0", "id": body["id"], "result": hex(chain_id)}
                else:
                    code, reply = status, {"error": "upstream down"}
                data = json.dumps(reply).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_rpc() -> Iterator[Callable[[int], FakeRpc]]:
    servers: list[FakeRpc] = []

    def start(status: int) -> FakeRpc:
        servers.append(FakeRpc(31337, status))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _adapter_at(url: str, **kw: Any) -> EvmAdapter:
    timeout = kw.pop("request_timeout_s", 2.0)
    config = EvmChainConfig(
        name="down",
        chain_id=31337,
        rpc_url=url,
        bridge_address="0x" + "11" * 20,
        request_timeout_s=timeout,
    )
    return EvmAdapter(config, SUBMITTER_KEY, **kw)


def test_closed_port_is_rpc_unavailable_after_bounded_retries() -> None:
    adapter = _adapter_at(f"http://127.0.0.1:{free_port()}", read_attempts=3, read_deadline_s=10)
    started = time.monotonic()
    with pytest.raises(RpcUnavailable) as info:
        adapter.head()
    assert time.monotonic() - started < 5.0  # 3 refused connects, 0.2 s + 0.4 s backoff
    assert info.value.chain == "eip155:31337"
    assert info.value.__cause__ is not None  # translated `from` the library error


def test_node_stopping_mid_life_turns_reads_into_rpc_unavailable() -> None:
    with AnvilNode(31337) as node:
        config = EvmChainConfig(
            name="x", chain_id=31337, rpc_url=node.rpc_url, bridge_address="0x" + "11" * 20
        )
        adapter = EvmAdapter(config, read_attempts=2, read_deadline_s=5)
        assert adapter.head().number == 0
    with pytest.raises(RpcUnavailable):
        adapter.head()


def test_http_5xx_is_retried_up_to_the_attempt_bound(fake_rpc: Callable[[int], FakeRpc]) -> None:
    server = fake_rpc(503)
    adapter = _adapter_at(server.url, read_attempts=3, read_deadline_s=30)
    with pytest.raises(RpcUnavailable, match="HTTP 503"):
        adapter.head()
    assert server.methods == ["eth_chainId"] + ["eth_getBlockByNumber"] * 3


def test_retries_stop_at_the_time_bound(fake_rpc: Callable[[int], FakeRpc]) -> None:
    server = fake_rpc(502)
    adapter = _adapter_at(server.url, read_attempts=1000, read_deadline_s=1.0)
    started = time.monotonic()
    with pytest.raises(RpcUnavailable):
        adapter.block_hash(1)
    assert time.monotonic() - started < 1.0 + 2.0 + 0.5  # deadline + one timeout + slack
    assert 2 <= server.methods.count("eth_getBlockByNumber") < 10


def test_broadcast_is_never_retried(fake_rpc: Callable[[int], FakeRpc]) -> None:
    server = fake_rpc(500)
    adapter = _adapter_at(server.url, read_attempts=5)
    with pytest.raises(RpcUnavailable):
        adapter.broadcast(PreparedTx(tx_hash="0x" + "00" * 32, raw=b"\x02\x01", sender_nonce=0))
    assert server.methods.count("eth_sendRawTransaction") == 1


def test_a_node_that_never_answers_times_out_as_rpc_unavailable() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        adapter = _adapter_at(url, request_timeout_s=0.3, read_attempts=2, read_deadline_s=5)
        started = time.monotonic()
        with pytest.raises(RpcUnavailable):
            adapter.head()
        assert time.monotonic() - started < 3.0


# ----------------------------------------------------------------------------- decode speed


def test_lock_events_decode_at_least_5x_faster_than_web3_get_logs(private_env: Env) -> None:
    env, count = private_env, 1000
    w3, locker = env.w3, address_of(LOCKER_KEY)
    from eth_account import Account

    account = Account.from_key(LOCKER_KEY)
    nonce = w3.eth.get_transaction_count(Web3.to_checksum_address(locker), "pending")
    selector = env.contract.encode_abi("lock", [NATIVE_TOKEN, 1, b"\x01" * 32])[:10]
    raws = []
    for i in range(count):
        args = eth_abi.encode(
            ["address", "uint256", "bytes32"], [NATIVE_TOKEN, 1 + i, (i + 1).to_bytes(32, "big")]
        )
        tx = {
            "type": 2,
            "chainId": PRIVATE_CHAIN_ID,
            "nonce": nonce + i,
            "to": env.contract.address,
            "value": 1 + i,
            "data": selector + args.hex(),
            "gas": 150_000,
            "maxFeePerGas": 10**11,
            "maxPriorityFeePerGas": 10**9,
        }
        raws.append(account.sign_transaction(tx).raw_transaction.to_0x_hex())
    start = w3.eth.block_number + 1
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        for i in range(0, count, 250):
            batch = [("eth_sendRawTransaction", [r]) for r in raws[i : i + 250]]
            w3.provider.make_batch_request(batch)  # type: ignore[arg-type]
        for _ in range(50):  # a block holds a few hundred locks; mine until the pool is empty
            if not int(w3.provider.make_request("txpool_status", [])["result"]["pending"], 16):  # type: ignore[arg-type]
                break
            env.mine(1)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    end = w3.eth.block_number
    adapter = env.adapter(max_block_range=10_000)

    def best_of(fn: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
        times, result = [], None
        for _ in range(runs):
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
        return min(times), result

    ours_s, ours = best_of(lambda: adapter.lock_events(start, end))
    web3_s, theirs = best_of(
        lambda: env.contract.events.Locked.get_logs(from_block=start, to_block=end)
    )
    assert len(ours) == len(theirs) == count
    assert [(e.nonce, e.amount, e.recipient) for e in ours] == [
        (e["args"]["nonce"], e["args"]["amount"], e["args"]["recipient"]) for e in theirs
    ]
    print(f"lock_events {ours_s * 1e3:.1f} ms vs get_logs {web3_s * 1e3:.1f} ms for {count}")
    assert web3_s >= 5 * ours_s


# ----------------------------------------------------------------------------- conformance


class TestEvmConformance(ChainAdapterConformance):
    @pytest.fixture
    def adapter(self, env: Env) -> EvmAdapter:
        return env.adapter(confirmation_depth=2)

    @pytest.fixture
    def emit_locks(self, env: Env) -> EmitLocks:
        def emit(count: int) -> None:
            for i in range(count):
                env.lock(1000 + i)
            env.mine(2)  # leave the locks below the head, as a real chain would

        return emit
