"""`BtcRpc`, `BtcdNode` and `Faucet` against a real btcd v0.26.2 in regtest.

The shared node comes from the session fixture `btcd`; tests that rewrite history restore the
tip before returning. Tests that need another relay policy, or a dead node, start a private
`BtcdNode`. Fake HTTP servers stand in for a proxy answering HTTP 5xx. Chain time is moved
with ``generate``, never by sleeping.
"""

from __future__ import annotations

import http.server
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from bitcoin.core import CBlock, b2lx

from adapters.bitcoin.config import GENESIS
from adapters.bitcoin.devnet import BtcdNode, Faucet, address_p2wpkh
from adapters.bitcoin.errors import FeeTooLow, TxRejected
from adapters.bitcoin.keys import public_key
from adapters.bitcoin.rpc import BtcRpc, BtcRpcError, sats_from_btc
from adapters.errors import ConfigError, RpcUnavailable

if TYPE_CHECKING:
    from tests.integration.conftest import BtcdDevnet


def p2wsh(script_hash: bytes | None = None) -> bytes:
    """A P2WSH scriptPubKey (``OP_0 <32 bytes>``) of a random (or given) script hash."""
    return bytes([0x00, 0x20]) + (script_hash or os.urandom(32))


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll `condition` until true; fail after `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"condition still false after {timeout_s}s")
        time.sleep(0.02)


@pytest.fixture
def private_node(tmp_path: Path) -> Iterator[Callable[..., tuple[BtcdNode, BtcRpc, Faucet]]]:
    """Factory of extra btcd nodes (with a matured faucet), all stopped at the end."""
    started: list[tuple[BtcdNode, BtcRpc]] = []

    def start(min_relay_fee_btc_kvb: Decimal | None = None) -> tuple[BtcdNode, BtcRpc, Faucet]:
        secret = secrets.token_bytes(32)
        node = BtcdNode(tmp_path / f"btcd-{len(started)}",
                        mining_address=address_p2wpkh(public_key(secret), "regtest"),
                        min_relay_fee_btc_kvb=min_relay_fee_btc_kvb)
        node.start()
        rpc = node.rpc(timeout_s=2.0)
        started.append((node, rpc))
        node.wait_ready(timeout_s=30.0)
        faucet = Faucet(rpc, secret)
        faucet.mature()
        return node, rpc, faucet

    yield start
    for node, rpc in started:
        rpc.close()
        node.stop()


# ============================================================================ chain reads


def test_generate_advances_the_height(btcd: BtcdDevnet) -> None:
    height, _ = btcd.rpc.best_block()
    hashes = btcd.rpc.generate(3)
    assert len(hashes) == 3
    assert btcd.rpc.best_block() == (height + 3, hashes[-1])
    assert btcd.rpc.block_count() == height + 3
    assert [btcd.rpc.block_hash(height + i) for i in (1, 2, 3)] == hashes


def test_block_hash_above_the_tip_is_none(btcd: BtcdDevnet) -> None:
    height, tip = btcd.rpc.best_block()
    assert btcd.rpc.block_hash(height) == tip
    assert btcd.rpc.block_hash(height + 1) is None
    assert btcd.rpc.block_hash(height + 1000) is None
    with pytest.raises(ValueError):
        btcd.rpc.block_hash(-1)


def test_genesis_hash_is_the_regtest_genesis(btcd: BtcdDevnet) -> None:
    assert btcd.rpc.genesis_hash() == GENESIS["regtest"]
    assert btcd.node.chain == "bip122:0f9188f13cb7b2c71f2a335e3a4fc328"


def test_unknown_transaction_and_output_read_as_none(btcd: BtcdDevnet) -> None:
    txid = os.urandom(32).hex()
    assert btcd.rpc.raw_transaction(txid) is None
    assert btcd.rpc.transaction_info(txid) is None
    assert btcd.rpc.tx_out(txid, 0) is None


def test_unknown_block_raises_rpc_error(btcd: BtcdDevnet) -> None:
    with pytest.raises(BtcRpcError) as caught:
        btcd.rpc.raw_block(os.urandom(32).hex())
    assert caught.value.rpc_code == -5


def test_fee_estimate_is_none_or_a_positive_rate(btcd: BtcdDevnet) -> None:
    estimate = btcd.rpc.estimate_fee_sat_vb(6)
    assert estimate is None or estimate >= 1


# ============================================================================ faucet payments


def test_faucet_payment_to_p2wsh_reaches_mempool_then_a_block(btcd: BtcdDevnet) -> None:
    spk = p2wsh()
    txid = btcd.faucet.pay(spk, 123_456)
    assert txid in btcd.rpc.mempool_txids()
    out = btcd.rpc.tx_out(txid, 0)
    assert out is not None
    assert (out["value_sats"], out["script_pubkey"], out["confirmations"]) == (123_456, spk, 0)
    assert btcd.rpc.transaction_info(txid)["confirmations"] == 0  # type: ignore[index]

    [block_hash] = btcd.rpc.generate(1)
    assert txid not in btcd.rpc.mempool_txids()
    block = CBlock.deserialize(btcd.rpc.raw_block(block_hash))
    [tx] = [tx for tx in block.vtx if b2lx(tx.GetTxid()) == txid]
    assert (bytes(tx.vout[0].scriptPubKey), tx.vout[0].nValue) == (spk, 123_456)
    info = btcd.rpc.transaction_info(txid)
    assert info is not None
    assert (info["confirmations"], info["blockhash"]) == (1, block_hash)
    assert info["vout"][0]["value_sats"] == 123_456
    assert btcd.rpc.raw_transaction(txid) == tx.serialize()


def test_pay_many_puts_twenty_outputs_and_change_in_one_transaction(btcd: BtcdDevnet) -> None:
    outputs = [(p2wsh(), 10_000 + i) for i in range(20)]
    txid = btcd.faucet.pay_many(outputs, fee_rate_sat_vb=3)
    info = btcd.rpc.transaction_info(txid)
    assert info is not None
    paid = [(bytes.fromhex(o["scriptPubKey"]["hex"]), o["value_sats"]) for o in info["vout"]]
    assert paid[:20] == outputs
    assert paid[20][0] == btcd.faucet.script_pubkey  # change last
    assert len(paid) == 21


def test_resending_a_known_transaction_returns_its_txid(btcd: BtcdDevnet) -> None:
    txid = btcd.faucet.pay(p2wsh(), 50_000)
    raw = btcd.rpc.raw_transaction(txid)
    assert raw is not None
    assert btcd.rpc.send_raw_transaction(raw) == txid  # "already have transaction in mempool"
    btcd.rpc.generate(1)
    assert btcd.rpc.send_raw_transaction(raw) == txid  # "transaction already exists"


def test_undecodable_transaction_raises_tx_rejected(btcd: BtcdDevnet) -> None:
    with pytest.raises(TxRejected):
        btcd.rpc.send_raw_transaction(b"\x02\x00\x00")


# ============================================================================ reorgs


def test_invalidated_block_returns_its_tx_to_the_mempool_and_reconsider_restores_it(
    btcd: BtcdDevnet,
) -> None:
    txid = btcd.faucet.pay(p2wsh(), 77_000)
    height, parent = btcd.rpc.best_block()
    [block_hash] = btcd.rpc.generate(1)
    assert txid not in btcd.rpc.mempool_txids()
    try:
        btcd.rpc.invalidate_block(block_hash)
        assert btcd.rpc.best_block() == (height, parent)
        assert btcd.rpc.block_hash(height + 1) is None
        wait_until(lambda: txid in btcd.rpc.mempool_txids())
        info = btcd.rpc.transaction_info(txid)
        assert info is not None and info["confirmations"] == 0
    finally:
        btcd.rpc.reconsider_block(block_hash)
    assert btcd.rpc.best_block() == (height + 1, block_hash)
    assert txid not in btcd.rpc.mempool_txids()


# ============================================================================ fees and RBF


def test_rbf_replacement_at_higher_fee_replaces_the_original(btcd: BtcdDevnet) -> None:
    original = btcd.faucet.pay(p2wsh(), 200_000, fee_rate_sat_vb=2)
    replacement = btcd.faucet.replace(original, p2wsh(), 200_000, fee_rate_sat_vb=10)
    mempool = btcd.rpc.mempool_txids()
    assert replacement in mempool
    assert original not in mempool
    assert btcd.rpc.transaction_info(original) is None


def test_replacement_without_a_higher_fee_rate_raises_fee_too_low(btcd: BtcdDevnet) -> None:
    original = btcd.faucet.pay(p2wsh(), 200_000, fee_rate_sat_vb=5)
    with pytest.raises(FeeTooLow, match="insufficient fee rate"):
        btcd.faucet.replace(original, p2wsh(), 200_000, fee_rate_sat_vb=5)
    assert original in btcd.rpc.mempool_txids()


def test_conflict_with_a_non_rbf_transaction_raises_tx_rejected(btcd: BtcdDevnet) -> None:
    original = btcd.faucet.pay(p2wsh(), 200_000, rbf=False)
    with pytest.raises(TxRejected, match="already spent in mempool"):
        btcd.faucet.replace(original, p2wsh(), 200_000, fee_rate_sat_vb=20)
    assert original in btcd.rpc.mempool_txids()


def test_zero_fee_transaction_raises_fee_too_low(btcd: BtcdDevnet) -> None:
    mempool = btcd.rpc.mempool_txids()
    with pytest.raises(FeeTooLow):
        btcd.faucet.pay(p2wsh(), 100_000, fee_rate_sat_vb=0)
    assert btcd.rpc.mempool_txids() == mempool


def test_fee_below_a_raised_min_relay_fee_raises_fee_too_low(
    private_node: Callable[..., tuple[BtcdNode, BtcRpc, Faucet]],
) -> None:
    _, rpc, faucet = private_node(min_relay_fee_btc_kvb=Decimal("0.001"))  # 100 sat/vB
    with pytest.raises(FeeTooLow, match="under the required amount|rate limiter"):
        faucet.pay(p2wsh(), 100_000, fee_rate_sat_vb=50)
    txid = faucet.pay(p2wsh(), 100_000, fee_rate_sat_vb=100)
    assert txid in rpc.mempool_txids()


# ============================================================================ faults


def test_wrong_rpc_password_raises_config_error(btcd: BtcdDevnet) -> None:
    with BtcRpc(btcd.node.rpc_url, btcd.node.rpc_user, "not-the-password",
                chain=btcd.node.chain, timeout_s=2.0) as rpc, pytest.raises(ConfigError):
        rpc.block_count()


def test_dead_node_raises_rpc_unavailable_quickly(
    private_node: Callable[..., tuple[BtcdNode, BtcRpc, Faucet]],
) -> None:
    node, _, _ = private_node()
    node.stop()
    with BtcRpc(node.rpc_url, node.rpc_user, node.rpc_password, chain=node.chain,
                timeout_s=1.0, read_attempts=3, read_deadline_s=2.0) as rpc:
        started = time.monotonic()
        with pytest.raises(RpcUnavailable):
            rpc.best_block()
        assert time.monotonic() - started < 5.0


def test_missing_binary_raises_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERRY_BTCD", str(tmp_path / "no-such-btcd"))
    node = BtcdNode(tmp_path, mining_address="bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
    with pytest.raises(ConfigError, match="make install"):
        node.start()
    assert node.pid is None


class _FakeNode(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the class's `status` and `body`."""

    status = 500
    body = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_node() -> Iterator[Callable[[int, bytes], BtcRpc]]:
    """Factory of `BtcRpc` clients of a local HTTP server answering (status, body)."""
    servers: list[http.server.HTTPServer] = []

    def serve(status: int, body: bytes) -> BtcRpc:
        handler = type("Handler", (_FakeNode,), {"status": status, "body": body})
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return BtcRpc(f"http://127.0.0.1:{server.server_port}", "u", "p", chain="bip122:test",
                      timeout_s=2.0, read_attempts=2, read_deadline_s=1.0)

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_http_500_with_an_error_object_is_an_rpc_error(
    fake_node: Callable[[int, bytes], BtcRpc],
) -> None:
    body = json.dumps({"result": None, "error": {"code": -8, "message": "bad"}, "id": 1})
    with pytest.raises(BtcRpcError) as caught:
        fake_node(500, body.encode()).block_count()
    assert caught.value.rpc_code == -8


def test_http_503_without_json_is_unavailable(fake_node: Callable[[int, bytes], BtcRpc]) -> None:
    with pytest.raises(RpcUnavailable):
        fake_node(503, b"<html>bad gateway</html>").block_count()


def test_sendrawtransaction_fee_refusal_over_http_500_is_fee_too_low(
    fake_node: Callable[[int, bytes], BtcRpc],
) -> None:
    message = "TX rejected: transaction abc has insufficient priority (0 <= 57600000)"
    body = json.dumps({"result": None, "error": {"code": -26, "message": message}, "id": 1})
    with pytest.raises(FeeTooLow):
        fake_node(500, body.encode()).send_raw_transaction(b"\x00")


def test_btc_amounts_convert_to_sats_exactly() -> None:
    assert sats_from_btc(Decimal(50)) == 5_000_000_000
    assert sats_from_btc(0.1) == 10_000_000
    assert sats_from_btc(Decimal("0.00000001")) == 1
    with pytest.raises(ValueError):
        sats_from_btc(Decimal("0.000000001"))
    with pytest.raises(ValueError):
        sats_from_btc("abc")
