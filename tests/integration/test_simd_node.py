"""`SimdNode` and `CosmosWallet` against a real simd (Cosmos SDK v0.50.3 simapp).

The shared node comes from the session fixture `simd`; each test takes its own funded wallets
(`SimdDevnet.new_wallet`), so tests do not depend on each other's balances. Tests that need a
dead node or another chain id start a private `SimdNode`. Blocks come every ~250 ms by
themselves: tests poll with a bound instead of sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from cosmpy.protos.cosmos.authz.v1beta1.tx_pb2 import MsgExec
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgMultiSend, MsgSend
from cosmpy.protos.cosmos.tx.v1beta1.service_pb2 import GetTxsEventRequest
from cosmpy.protos.cosmos.tx.v1beta1.service_pb2_grpc import ServiceStub
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import Tx

from adapters.cosmos.devnet import (
    DEFAULT_GAS_LIMIT,
    CosmosWallet,
    SimdNode,
    min_fee_stake,
    simd_binary,
)
from adapters.errors import ChainError, ConfigError, SubmissionReverted, WrongChain

if TYPE_CHECKING:
    from tests.integration.conftest import SimdDevnet

MEMO = "0x" + "ab" * 32  # a ledger account, as a deposit memo carries it


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll `condition` until true; fail after `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"condition still false after {timeout_s}s")
        time.sleep(0.05)


def comet(node: SimdNode, method: str, **params: Any) -> Any:
    """``result`` of a CometBFT RPC GET (URI form), e.g. ``comet(node, "block", height=3)``."""
    reply = httpx.get(f"{node.rpc_url}/{method}", params=params, timeout=5.0).json()
    assert "error" not in reply, reply
    return reply["result"]


def height(node: SimdNode) -> int:
    return int(comet(node, "status")["sync_info"]["latest_block_height"])


def block_txs(node: SimdNode, at: int) -> dict[str, Tx]:
    """The txs of block `at` from CometBFT ``/block``, by lowercase hex hash (sha256 of bytes)."""
    raw = [base64.b64decode(t) for t in comet(node, "block", height=at)["block"]["data"]["txs"]]
    return {hashlib.sha256(b).hexdigest(): Tx.FromString(b) for b in raw}


def paid(sender: CosmosWallet, recipient: CosmosWallet) -> str:
    """A CometBFT query of txs with a transfer from `sender` and one to `recipient` (a wallet
    topped up by the faucet also has the faucet's transfer to it)."""
    return f"transfer.sender='{sender.address}' AND transfer.recipient='{recipient.address}'"


def unpack(any_msg: Any, cls: type[Any]) -> Any:
    msg = cls()
    assert any_msg.Unpack(msg), any_msg.type_url
    return msg


# ============================================================================ node


def test_blocks_advance_by_themselves(simd: SimdDevnet) -> None:
    start = height(simd.node)
    assert start >= 1
    wait_until(lambda: height(simd.node) >= start + 2, timeout_s=10.0)


def test_node_reports_its_chain_id_and_caip2(simd: SimdDevnet) -> None:
    assert simd.chain_id == "ferry-sim-1"
    assert simd.node.caip2 == "cosmos:ferry-sim-1"
    assert comet(simd.node, "status")["node_info"]["network"] == "ferry-sim-1"
    assert simd.node.pid is not None


def test_wallet_address_is_bech32_of_ripemd160_sha256_of_the_pubkey(simd: SimdDevnet) -> None:
    wallet = simd.new_wallet()
    assert len(wallet.pubkey) == 33 and wallet.address.startswith("cosmos1")
    assert len(wallet.address) == len("cosmos1") + 32 + 6  # 20 bytes in base32 + checksum


def test_genesis_funds_stake_uatom_and_the_look_alike_uatomm(simd: SimdDevnet) -> None:
    assert simd.faucet.balance("stake") > 10**14  # 10^15 at genesis, minus top-ups and fees
    assert all(10**11 < simd.faucet.balance(d) <= 10**12 for d in ("uatom", "uatomm"))


# ============================================================================ transactions


def test_send_with_memo_is_included_and_found_by_tx_search_and_block(simd: SimdDevnet) -> None:
    sender, recipient = simd.new_wallet(), simd.new_wallet()
    received, staked = recipient.balance("uatom"), sender.balance("stake")
    tx_hash = sender.send(recipient.address, 12_345, "uatom", memo=MEMO)
    result = sender.wait_tx(tx_hash)
    assert result.code == 0 and result.height >= 1
    assert recipient.balance("uatom") == received + 12_345
    assert sender.balance("stake") == staked - min_fee_stake(DEFAULT_GAS_LIMIT)

    found = comet(simd.node, "tx_search", query=f'"{paid(sender, recipient)}"')
    assert [t["hash"].lower() for t in found["txs"]] == [tx_hash]
    assert found["txs"][0]["tx_result"]["code"] == 0
    assert int(found["txs"][0]["height"]) == result.height

    tx = block_txs(simd.node, result.height)[tx_hash]
    assert tx.body.memo == MEMO
    assert [m.type_url for m in tx.body.messages] == ["/cosmos.bank.v1beta1.MsgSend"]
    send = unpack(tx.body.messages[0], MsgSend)
    assert (send.from_address, send.to_address) == (sender.address, recipient.address)
    assert [(c.denom, int(c.amount)) for c in send.amount] == [("uatom", 12_345)]


def test_over_balance_send_is_included_with_code_5_and_pays_the_fee(simd: SimdDevnet) -> None:
    sender, recipient = simd.new_wallet(), simd.new_wallet()
    held, received, staked = (sender.balance("uatom"), recipient.balance("uatom"),
                              sender.balance("stake"))
    tx_hash = sender.send_failing(recipient.address, "uatom", memo=MEMO)
    result = sender.wait_tx(tx_hash)
    assert result.code == 5  # sdk ErrInsufficientFunds, raised in FinalizeBlock
    assert "insufficient funds" in result.raw_log
    assert tx_hash in block_txs(simd.node, result.height)
    found = comet(simd.node, "tx", hash="0x" + tx_hash.upper())
    assert found["tx_result"]["code"] == 5
    assert (sender.balance("uatom"), recipient.balance("uatom")) == (held, received)
    assert sender.balance("stake") == staked - min_fee_stake(DEFAULT_GAS_LIMIT)
    # a failed tx keeps only its ante events (the fee transfer), so no query by recipient
    # finds it; a watcher must read blocks, not rely on events of failed txs
    assert comet(simd.node, "tx_search", query=f'"{paid(sender, recipient)}"')["txs"] == []


def test_multi_send_pays_every_output(simd: SimdDevnet) -> None:
    sender, first, second = simd.new_wallet(), simd.new_wallet(), simd.new_wallet()
    wallets = (sender, first, second)
    before = {(w.address, d): w.balance(d) for w in wallets for d in ("uatom", "uatomm")}
    tx_hash = sender.send_multi([(first.address, 7, "uatom"), (second.address, 9, "uatomm"),
                                 (second.address, 11, "uatom")], memo=MEMO)
    after = {(w.address, d): w.balance(d) for w in wallets for d in ("uatom", "uatomm")}
    assert {k: after[k] - before[k] for k in before} == {
        (sender.address, "uatom"): -18, (sender.address, "uatomm"): -9,
        (first.address, "uatom"): 7, (first.address, "uatomm"): 0,
        (second.address, "uatom"): 11, (second.address, "uatomm"): 9}
    tx = block_txs(simd.node, sender.wait_tx(tx_hash).height)[tx_hash]
    multi = unpack(tx.body.messages[0], MsgMultiSend)
    assert [o.address for o in multi.outputs] == [first.address, second.address, second.address]


def test_authz_exec_sends_on_behalf_of_the_granter(simd: SimdDevnet) -> None:
    granter, grantee, recipient = simd.new_wallet(), simd.new_wallet(), simd.new_wallet()
    granter.grant_send(grantee.address)
    wallets = (granter, grantee, recipient)
    before = [w.balance("uatom") for w in wallets] + [grantee.balance("stake")]
    tx_hash = grantee.exec_send(granter.address, recipient.address, 500, "uatom", memo=MEMO)
    after = [w.balance("uatom") for w in wallets] + [grantee.balance("stake")]
    fee = min_fee_stake(DEFAULT_GAS_LIMIT)
    assert [a - b for a, b in zip(after, before, strict=True)] == [-500, 0, 500, -fee]
    tx = block_txs(simd.node, grantee.wait_tx(tx_hash).height)[tx_hash]
    assert tx.body.messages[0].type_url == "/cosmos.authz.v1beta1.MsgExec"
    inner = unpack(unpack(tx.body.messages[0], MsgExec).msgs[0], MsgSend)
    assert (inner.from_address, inner.to_address) == (granter.address, recipient.address)


def test_exec_without_a_grant_is_refused(simd: SimdDevnet) -> None:
    granter, grantee = simd.new_wallet(), simd.new_wallet()
    held = granter.balance("uatom")
    with pytest.raises(SubmissionReverted, match="authorization not found"):
        grantee.exec_send(granter.address, grantee.address, 1, "uatom")
    assert granter.balance("uatom") == held


def test_node_refuses_a_tx_below_the_minimum_gas_price(
    simd: SimdDevnet, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender, recipient = simd.new_wallet(), simd.new_wallet()
    received = recipient.balance("uatom")
    monkeypatch.setattr(simd.node, "min_gas_price_stake", Decimal(0))  # the wallet pays no fee
    with pytest.raises(ChainError, match="(?i)insufficient fee"):
        sender.send(recipient.address, 1, "uatom")
    assert recipient.balance("uatom") == received


def test_new_wallet_is_funded_in_every_denom_before_and_after_the_spares_run_out(
    simd: SimdDevnet,
) -> None:
    for _ in range(7):  # more than the fixture's 6 genesis spares: one at least is a top-up
        wallet = simd.new_wallet()
        assert all(wallet.balance(d) >= 10**9 for d in ("stake", "uatom", "uatomm"))


# ============================================================================ queries


def test_rest_and_grpc_balances_agree(simd: SimdDevnet) -> None:
    wallet = simd.new_wallet()
    rest = httpx.get(f"{simd.node.rest_url}/cosmos/bank/v1beta1/balances/{wallet.address}"
                     "/by_denom", params={"denom": "uatomm"}, timeout=5.0).json()
    held = wallet.balance("uatomm")  # gRPC bank Balance through cosmpy
    assert held > 0 and rest["balance"] == {"denom": "uatomm", "amount": str(held)}


def test_get_txs_event_takes_query_not_events(simd: SimdDevnet) -> None:
    """v0.50 GetTxsEvent reads the ``query`` string; the old ``events`` list is ignored."""
    sender, recipient = simd.new_wallet(), simd.new_wallet()
    tx_hash = sender.send(recipient.address, 3, "uatom", memo=MEMO)
    condition = paid(sender, recipient)
    address = simd.node.grpc_url.removeprefix("http://")
    with grpc.insecure_channel(address) as channel:
        reply = ServiceStub(channel).GetTxsEvent(GetTxsEventRequest(query=condition, limit=10))
        assert [r.txhash.lower() for r in reply.tx_responses] == [tx_hash]
        assert reply.txs[0].body.memo == MEMO
        with pytest.raises(grpc.RpcError, match="query cannot be empty"):
            ServiceStub(channel).GetTxsEvent(GetTxsEventRequest(events=[condition]))
    rest = httpx.get(f"{simd.node.rest_url}/cosmos/tx/v1beta1/txs",
                     params={"query": condition}, timeout=5.0).json()
    assert [r["txhash"].lower() for r in rest["tx_responses"]] == [tx_hash]


# ============================================================================ private nodes


def test_missing_binary_is_a_config_error(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("FERRY_SIMD", str(tmp_path / "no-simd"))
    with pytest.raises(ConfigError, match="make install"):
        simd_binary()


def test_wait_ready_refuses_a_home_of_another_chain_and_fails_fast_on_death(
    tmp_path: Path,
) -> None:
    """One private home: first it serves ferry-sim-1 to a node expecting ferry-sim-2
    (WrongChain), then a corrupt genesis makes simd exit (ChainError, well before the bound)."""
    first = SimdNode(tmp_path, accounts={CosmosWallet.address_of(b"\x01" * 32): 10**6})
    with first:
        assert first.pid is not None
    impostor = SimdNode(tmp_path, chain_id="ferry-sim-2")
    try:
        impostor.start()
        with pytest.raises(WrongChain, match="ferry-sim-1"):
            impostor.wait_ready(timeout_s=60.0)
    finally:
        impostor.stop()

    genesis = tmp_path / "home" / "config" / "genesis.json"
    genesis.write_text("{not json", encoding="utf-8")
    broken = SimdNode(tmp_path)
    try:
        broken.start()
        started = time.monotonic()
        with pytest.raises(ChainError, match="exited"):
            broken.wait_ready(timeout_s=60.0)
        assert time.monotonic() - started < 30.0
    finally:
        broken.stop()
