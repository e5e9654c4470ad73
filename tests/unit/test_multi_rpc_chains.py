"""Several nodes behind the Bitcoin (`MultiBtcRpc`) and Cosmos (`MultiCometRpc`) clients:
failover, cool-down, the identity check at start (genesis hash, chain id), quorum agreement of
the reads that decide minting, and `check_block`, over fake nodes and a fake clock (no network,
no sleeping). The chain-neutral pool itself is also exercised by `test_evm_multi.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from bitcoin import core as bc
from bitcoin.core import script as bs
from pydantic import SecretStr

from adapters.bitcoin.adapter import BitcoinAdapter, check_block
from adapters.bitcoin.config import GENESIS, BitcoinChainConfig
from adapters.bitcoin.multi import MultiBtcRpc
from adapters.bitcoin.rpc import BtcRpcError
from adapters.cosmos.adapter import CosmosAdapter
from adapters.cosmos.config import CosmosChainConfig
from adapters.cosmos.rpc import BlockTxs, CosmosRpcError, MultiCometRpc, blocks_digest
from adapters.errors import RpcDisagreement, RpcUnavailable, WrongChain

REGTEST = GENESIS["regtest"]
BTC_CHAIN = f"bip122:{REGTEST[:32]}"
COSMOS_CHAIN = "cosmos:ferry-sim-1"
SIMNET = "683e86bd5c6d110d91b94b97137ba6bfe02dbbdb8e3dff722a669b5d69d77af6"  # btcd --simnet
H1, H2, H3 = "aa" * 32, "bb" * 32, "cc" * 32
PUBKEY = "02" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"


@dataclass
class Clock:
    """Monotonic seconds, moved by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeNode:
    """A node client whose every method answers from `answers` (a value, or a callable of the
    call's arguments) and records the call; `down` makes every call `RpcUnavailable`.
    `genesis_hash` and `status` answer the identity unless `answers` overrides them."""

    def __init__(self, name: str, *, chain: str, genesis: str = REGTEST,
                 network: str = "ferry-sim-1", **answers: Any) -> None:
        self.url = self.rpc_url = f"http://{name}.example:8332/secret-path?key=secret"
        self.rest_url, self.chain = f"http://{name}.example:1317", chain
        self.answers: dict[str, Any] = {"genesis_hash": genesis,
                                        "status": (network, 10, H1), **answers}
        self.down = False
        self.calls: list[str] = []

    def __getattr__(self, method: str) -> Any:
        if method.startswith("__") or method not in self.answers and method != "close":
            raise AttributeError(method)

        def call(*args: Any) -> Any:
            self.calls.append(method)
            if self.down:
                raise RpcUnavailable(f"{method}: ConnectError", chain=self.chain)
            answer = self.answers.get(method)
            return answer(*args) if callable(answer) else answer

        return call


def btc_node(name: str, **answers: Any) -> FakeNode:
    return FakeNode(name, chain=BTC_CHAIN, **answers)


def cosmos_node(name: str, **answers: Any) -> FakeNode:
    return FakeNode(name, chain=COSMOS_CHAIN, **answers)


def btc(*nodes: FakeNode, quorum: int = 1, clock: Clock | None = None,
        attempts: int = 1) -> MultiBtcRpc:
    return MultiBtcRpc(nodes, genesis_hash=REGTEST, quorum=quorum,  # type: ignore[arg-type]
                       read_attempts=attempts, cooldown_s=10.0, clock=clock or Clock())


def comet(*nodes: FakeNode, quorum: int = 1, rest: FakeNode | None = None) -> MultiCometRpc:
    return MultiCometRpc(nodes, chain_id="ferry-sim-1", quorum=quorum,  # type: ignore[arg-type]
                         rest=rest, read_attempts=1, cooldown_s=10.0,  # type: ignore[arg-type]
                         clock=Clock())


def heights(tips: dict[int, str]) -> Any:
    """A `block_hash(height)` answer from a {height: hash} map (None above it)."""
    return lambda height: tips.get(height)


# ----------------------------------------------------------------------------- Bitcoin failover


def test_bitcoin_reads_fail_over_to_the_next_node_and_log_the_host_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = btc_node("a", read=lambda m, p: 7), btc_node("b", read=lambda m, p: 8)
    a.down = True
    assert btc(a, b).block_count() == 8
    assert b.calls == ["genesis_hash", "read"]  # checked before its first use
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"chain={BTC_CHAIN}" in m and "host=a.example:8332" in m for m in warnings)
    assert not any("secret" in r.getMessage() for r in caplog.records)


def test_bitcoin_reads_with_every_node_down_are_rpc_unavailable() -> None:
    a, b = btc_node("a", read=0), btc_node("b", read=0)
    a.down = b.down = True
    with pytest.raises(RpcUnavailable):
        btc(a, b, attempts=2).block_count()


def test_a_down_bitcoin_node_is_skipped_during_its_cool_down_then_preferred_again() -> None:
    clock = Clock()
    a, b = btc_node("a", read=lambda m, p: 7), btc_node("b", read=lambda m, p: 8)
    rpc = btc(a, b, clock=clock)
    a.down = True
    assert rpc.block_count() == 8
    a.down = False
    a.calls.clear()
    clock.now += 9.0
    assert rpc.block_count() == 8 and a.calls == []
    clock.now += 2.0
    assert rpc.block_count() == 7


def test_a_node_error_answer_is_not_failed_over() -> None:
    def refuse(method: str, params: list[Any]) -> Any:
        raise BtcRpcError("getblock: boom", chain=BTC_CHAIN, rpc_code=-8)

    a, b = btc_node("a", read=refuse), btc_node("b", read=lambda m, p: "00")
    with pytest.raises(BtcRpcError):
        btc(a, b).raw_block(H1)
    assert b.calls == []


def test_a_not_found_answer_stays_an_answer() -> None:
    def not_found(method: str, params: list[Any]) -> Any:
        raise BtcRpcError("no such tx", chain=BTC_CHAIN, rpc_code=-5)

    a, b = btc_node("a", read=not_found), btc_node("b", read=lambda m, p: "00")
    assert btc(a, b).raw_transaction(H1) is None
    assert b.calls == []


def test_a_broadcast_asks_each_bitcoin_node_at_most_once() -> None:
    a, b = btc_node("a", request=H2), btc_node("b", request=H2)
    a.down = b.down = True
    with pytest.raises(RpcUnavailable):
        btc(a, b, attempts=5).request("sendrawtransaction", ["00"])
    assert a.calls.count("request") == b.calls.count("request") == 0  # identity failed first
    a.down = False
    assert btc(a, b).request("sendrawtransaction", ["00"]) == H2


# ----------------------------------------------------------------------------- Bitcoin identity


def test_a_bitcoin_node_on_another_network_is_refused_at_start_and_for_good() -> None:
    a = btc_node("a", read=lambda m, p: 7)
    simnet = btc_node("sim", genesis=SIMNET)
    rpc = btc(a, simnet)
    with pytest.raises(WrongChain, match="http://sim.example:8332 serves genesis 683e86") as info:
        rpc.verify_all()
    assert "secret" not in str(info.value)
    with pytest.raises(WrongChain):
        rpc.block_count()  # a alone could answer: refused anyway


def test_a_bitcoin_node_down_at_start_is_checked_before_its_first_use() -> None:
    a = btc_node("a", read=lambda m, p: 7)
    b = btc_node("b", genesis=GENESIS["testnet"], read=lambda m, p: 8)
    b.down = True
    rpc = btc(a, b)
    rpc.verify_all()
    a.down, b.down = True, False
    with pytest.raises(WrongChain, match="b.example"):
        rpc.block_count()
    assert "read" not in b.calls


# ----------------------------------------------------------------------------- Bitcoin agreement


def test_bitcoin_best_block_is_the_lowest_tip_whose_hash_the_others_have() -> None:
    a = btc_node("a", best_block=(11, H2), block_hash=heights({10: H1, 11: H2}))
    b = btc_node("b", best_block=(10, H1), block_hash=heights({10: H1}))
    assert btc(a, b, quorum=2).best_block() == (10, H1)


def test_bitcoin_tips_on_different_branches_are_a_disagreement() -> None:
    a = btc_node("a", best_block=(11, H2), block_hash=heights({10: H3, 11: H2}))
    b = btc_node("b", best_block=(10, H1))
    with pytest.raises(RpcDisagreement):
        btc(a, b, quorum=2).best_block()
    same_height = btc_node("c", best_block=(10, H3))
    with pytest.raises(RpcDisagreement):
        btc(b, same_height, quorum=2).best_block()


def test_bitcoin_block_hash_needs_the_quorum_to_agree() -> None:
    a, b = btc_node("a", block_hash=H1), btc_node("b", block_hash=H1)
    assert btc(a, b, quorum=2).block_hash(5) == H1
    with pytest.raises(RpcDisagreement):
        btc(a, btc_node("c", block_hash=H2), quorum=2).block_hash(5)
    with pytest.raises(RpcDisagreement):  # above one node's tip only
        btc(a, btc_node("d", block_hash=None), quorum=2).block_hash(5)
    with pytest.raises(ValueError):
        btc(a).block_hash(-1)


def test_bitcoin_quorum_one_asks_one_node_only() -> None:
    a, b = btc_node("a", block_hash=H1), btc_node("b", block_hash=H2)
    assert btc(a, b).block_hash(5) == H1
    assert b.calls == []


def test_raw_blocks_come_from_one_node_and_only_their_hashes_from_the_others() -> None:
    blocks = [(H1, b"\x01"), (H2, b"\x02")]
    a = btc_node("a", raw_blocks=blocks)
    b = btc_node("b", block_hashes=[H1, H2], raw_blocks=blocks)
    assert btc(a, b, quorum=2).raw_blocks(5, 6) == blocks
    assert b.calls == ["genesis_hash", "block_hashes"]


def test_raw_blocks_whose_hashes_differ_are_a_disagreement_not_retried() -> None:
    a = btc_node("a", raw_blocks=[(H1, b"\x01"), (H2, b"\x02")])
    b = btc_node("b", block_hashes=[H1, H3])
    with pytest.raises(RpcDisagreement, match="a.example:8332 and b.example:8332"):
        btc(a, b, quorum=2, attempts=5).raw_blocks(5, 6)
    assert a.calls.count("raw_blocks") == 1


def test_raw_blocks_fail_over_when_the_first_node_is_down() -> None:
    a, b = btc_node("a", raw_blocks=[]), btc_node("b", raw_blocks=[(H1, b"\x01")])
    c = btc_node("c", block_hashes=[H1])
    a.down = True
    assert btc(a, b, c, quorum=2).raw_blocks(5, 5) == [(H1, b"\x01")]
    assert "raw_blocks" in b.calls and c.calls == ["genesis_hash", "block_hashes"]


def test_bitcoin_reads_with_fewer_than_quorum_nodes_up_are_rpc_unavailable() -> None:
    a, b = btc_node("a", block_hash=H1), btc_node("b", block_hash=H1)
    b.down = True
    with pytest.raises(RpcUnavailable, match="1 of rpc_quorum 2"):
        btc(a, b, quorum=2).block_hash(5)


# ----------------------------------------------------------------------------- check_block


MAGIC = b"\x6a\x24\xaa\x21\xa9\xed"  # OP_RETURN PUSH36 0xaa21a9ed: BIP-141 commitment
NONCE = bytes(32)


def _block(outputs: list[int], spends: tuple[bc.CMutableTransaction, ...] = (), *,
           commit: bool = False) -> bc.CBlock:
    """A block of a coinbase paying `outputs`, then `spends`; with a witness commitment over
    them (and the coinbase's witness nonce) when `commit`."""
    coinbase = bc.CMutableTransaction([bc.CTxIn(bc.COutPoint(), b"\x01\x01")],
                                      [bc.CTxOut(v, b"\x51") for v in outputs])
    if commit:
        wtxids = [NONCE] + [t.GetHash() for t in spends]
        root = bc.CBlock.build_merkle_tree_from_txids(wtxids)[-1]
        coinbase.vout.append(bc.CTxOut(0, MAGIC + bc.Hash(root + NONCE)))
        coinbase.wit = bc.CTxWitness([bc.CTxInWitness(bs.CScriptWitness([NONCE]))])
    return _with_txs([coinbase, *spends])


def _with_txs(txs: list[bc.CMutableTransaction]) -> bc.CBlock:
    """A block on H1 of `txs`, whose header commits to their txids."""
    return bc.CBlock(nVersion=4, hashPrevBlock=bc.lx(H1), nTime=1_700_000_000,
                     nBits=0x207FFFFF, vtx=txs)


def _spend(witness: bool) -> bc.CMutableTransaction:
    spend = bc.CMutableTransaction([bc.CTxIn(bc.COutPoint(bc.lx(H3), 0))],
                                   [bc.CTxOut(40_000, b"\x51")])
    if witness:
        spend.wit = bc.CTxWitness([bc.CTxInWitness(bs.CScriptWitness([b"\x30" * 71, b"\x52"]))])
    return spend


def _hash(block: bc.CBlock) -> str:
    return bc.b2lx(block.GetHash())


@pytest.mark.parametrize("block", [_block([50_000]), _block([50_000], (_spend(False),)),
                                   _block([50_000], (_spend(True),), commit=True),
                                   _block([50_000], (_spend(False),), commit=True)])
def test_check_block_accepts_the_block_its_hash_names(block: bc.CBlock) -> None:
    check_block(block.serialize(), _hash(block), 1, chain=BTC_CHAIN)


def test_check_block_refuses_transactions_that_are_not_the_headers() -> None:
    block, other = _block([50_000]), _block([60_000])
    forged = block.serialize()[:80] + other.serialize()[80:]  # the header (so the hash) kept
    with pytest.raises(RpcDisagreement, match="merkle root"):
        check_block(forged, _hash(block), 1, chain=BTC_CHAIN)


def test_check_block_refuses_a_repeated_transaction() -> None:
    block = _block([50_000], (_spend(False), _spend(False)))
    with pytest.raises(RpcDisagreement, match="CVE-2012-2459"):
        check_block(block.serialize(), _hash(block), 1, chain=BTC_CHAIN)


def test_check_block_refuses_stripped_or_altered_witnesses() -> None:
    block = _block([50_000], (_spend(True),), commit=True)
    stripped = block.serialize({"include_witness": False})  # same txids, so the same hash
    with pytest.raises(RpcDisagreement, match="BIP-141"):
        check_block(stripped, _hash(block), 1, chain=BTC_CHAIN)
    altered = _spend(True)
    altered.wit = bc.CTxWitness([bc.CTxInWitness(bs.CScriptWitness([b"\x31" * 71, b"\x52"]))])
    forged = _with_txs([block.vtx[0], altered])  # same txids: same header and hash
    assert _hash(forged) == _hash(block)
    with pytest.raises(RpcDisagreement, match="BIP-141"):
        check_block(forged.serialize(), _hash(block), 1, chain=BTC_CHAIN)


def test_check_block_refuses_witnesses_without_a_commitment() -> None:
    block = _block([50_000], (_spend(True),))
    with pytest.raises(RpcDisagreement, match="without a commitment"):
        check_block(block.serialize(), _hash(block), 1, chain=BTC_CHAIN)


@pytest.mark.parametrize("raw", [b"", b"\x00" * 10])
def test_check_block_refuses_bytes_that_are_no_block(raw: bytes) -> None:
    with pytest.raises(RpcDisagreement):
        check_block(raw, H1, 1, chain=BTC_CHAIN)


def test_check_block_refuses_a_block_with_another_hash() -> None:
    with pytest.raises(RpcDisagreement, match="hashes to"):
        check_block(_block([50_000]).serialize(), H1, 1, chain=BTC_CHAIN)


# ----------------------------------------------------------------------------- Cosmos


def block_txs(height: int, codes: tuple[int, ...] = (0,), txs: tuple[bytes, ...] = (b"tx",),
              hash_: str = H1) -> BlockTxs:
    return BlockTxs(height, hash_, txs, codes)


def test_cosmos_reads_fail_over_and_rest_reads_go_to_the_rest_endpoint() -> None:
    a, b = cosmos_node("a", tx=None), cosmos_node("b", tx={"height": 3})
    rest = cosmos_node("rest", balance=lambda addr, denom: 42)
    a.down = True
    rpc = comet(a, b, rest=rest)
    assert rpc.tx("AB") == {"height": 3}
    assert rpc.balance("cosmos1x", "stake") == 42
    assert rest.calls == ["balance"]  # not checked as a CometBFT node: REST has no status


def test_a_cosmos_node_on_another_chain_id_is_refused_at_start_and_for_good() -> None:
    a = cosmos_node("a", tx=None)
    other = cosmos_node("other", network="other-chain-1")
    rpc = comet(a, other)
    with pytest.raises(WrongChain, match="http://other.example:8332 serves chain id other-chain-1"):
        rpc.verify_all()
    with pytest.raises(WrongChain):
        rpc.tx("AB")


def test_cosmos_status_is_the_lowest_latest_block_whose_hash_the_others_have() -> None:
    a = cosmos_node("a", status=("ferry-sim-1", 11, H2), block_hash=heights({10: H1}))
    b = cosmos_node("b", status=("ferry-sim-1", 10, H1))
    assert comet(a, b, quorum=2).status() == ("ferry-sim-1", 10, H1)
    forked = cosmos_node("c", status=("ferry-sim-1", 11, H2), block_hash=heights({10: H3}))
    with pytest.raises(RpcDisagreement):
        comet(forked, b, quorum=2).status()


def test_cosmos_block_hashes_and_headers_need_the_quorum_to_agree() -> None:
    a = cosmos_node("a", block_hash=H1, headers=[(5, H1)])
    b = cosmos_node("b", block_hash=H1, headers=[(5, H1)])
    assert comet(a, b, quorum=2).block_hash(5) == H1
    assert comet(a, b, quorum=2).headers(5, 5) == [(5, H1)]
    c = cosmos_node("c", block_hash=None, headers=[(5, None)])
    with pytest.raises(RpcDisagreement):
        comet(a, c, quorum=2).block_hash(5)
    with pytest.raises(RpcDisagreement):
        comet(a, c, quorum=2).headers(5, 5)


def test_cosmos_blocks_that_differ_in_results_are_a_disagreement() -> None:
    a = cosmos_node("a", blocks=[block_txs(5, codes=(0,))])
    b = cosmos_node("b", blocks=[block_txs(5, codes=(0,))])
    assert comet(a, b, quorum=2).blocks(5, 5) == [block_txs(5)]
    failed = cosmos_node("c", blocks=[block_txs(5, codes=(5,))])
    with pytest.raises(RpcDisagreement):
        comet(a, failed, quorum=2).blocks(5, 5)


def test_cosmos_reads_with_fewer_than_quorum_nodes_up_are_rpc_unavailable() -> None:
    a, b = cosmos_node("a", blocks=[]), cosmos_node("b", blocks=[])
    b.down = True
    with pytest.raises(RpcUnavailable, match="1 of rpc_quorum 2"):
        comet(a, b, quorum=2).blocks(5, 5)


def test_a_cosmos_error_answer_is_not_failed_over() -> None:
    def refuse(query: str, per_page: int) -> Any:
        raise CosmosRpcError("tx_search: bad query", chain=COSMOS_CHAIN)

    a, b = cosmos_node("a", tx_search=refuse), cosmos_node("b", tx_search=[])
    with pytest.raises(CosmosRpcError):
        comet(a, b).tx_search("x")
    assert b.calls == []


@pytest.mark.parametrize(
    "left,right,equal",
    [
        ([block_txs(5)], [block_txs(5)], True),
        ([], [], True),
        ([block_txs(5)], [block_txs(6)], False),
        ([block_txs(5)], [block_txs(5, hash_=H2)], False),
        ([block_txs(5)], [block_txs(5, txs=(b"tX",))], False),
        ([block_txs(5)], [block_txs(5, codes=(1,))], False),
        ([block_txs(5, (0, 0), (b"a", b"b"))], [block_txs(5, (0, 0), (b"b", b"a"))], False),
        ([block_txs(5, (1, 11), (b"a",) * 2)], [block_txs(5, (11, 1), (b"a",) * 2)], False),
        ([block_txs(5), block_txs(6)], [block_txs(5)], False),
    ],
)
def test_cosmos_blocks_are_compared_by_height_hash_txs_and_codes(
    left: list[BlockTxs], right: list[BlockTxs], equal: bool
) -> None:
    assert (blocks_digest(left) == blocks_digest(right)) is equal


# ----------------------------------------------------------------------------- config, wiring


def btc_config(**over: Any) -> BitcoinChainConfig:
    values: dict[str, Any] = {"name": "btc", "network": "regtest", "rpc_url": "http://a.example",
                              "rpc_user": "u", "rpc_password": SecretStr("p"),
                              "validator_pubkeys": [PUBKEY], "threshold": 1}
    return BitcoinChainConfig(**{**values, **over})


def cosmos_config(**over: Any) -> CosmosChainConfig:
    values: dict[str, Any] = {"name": "sim", "chain_id": "ferry-sim-1",
                              "rpc_url": "http://a.example", "rest_url": "http://r.example",
                              "validator_pubkeys": [PUBKEY], "threshold": 1,
                              "denoms": [{"denom": "stake"}]}
    return CosmosChainConfig(**{**values, **over})


@pytest.mark.parametrize("make", [btc_config, cosmos_config])
def test_endpoints_are_rpc_url_then_rpc_urls_without_repeats(make: Any) -> None:
    cfg = make(rpc_urls=["http://b.example", "http://a.example/", "http://b.example"])
    assert cfg.endpoints == ("http://a.example", "http://b.example")
    assert make().endpoints == ("http://a.example",) and make().rpc_quorum == 1
    assert make(rpc_urls=["http://b.example"], rpc_quorum=2).rpc_quorum == 2


@pytest.mark.parametrize("make", [btc_config, cosmos_config])
@pytest.mark.parametrize(
    "over,message",
    [
        ({"rpc_quorum": 2}, "rpc_quorum 2 exceeds the 1 distinct"),
        ({"rpc_urls": ["http://a.example/"], "rpc_quorum": 2}, "exceeds"),
        ({"rpc_quorum": 0}, "greater than or equal to 1"),
        ({"rpc_urls": ["ws://b.example"]}, "http:// or https://"),
    ],
)
def test_bad_rpc_endpoint_config_is_refused(make: Any, over: dict[str, Any],
                                            message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**over)


def test_adapters_build_one_client_per_endpoint_with_the_quorum() -> None:
    urls = ["http://b.example:8332", "http://c.example:8332"]
    bitcoin = BitcoinAdapter(btc_config(rpc_urls=urls, rpc_quorum=2))
    assert bitcoin.rpc.pool.urls == ("http://a.example", *urls)
    assert bitcoin.rpc.pool.quorum == 2
    cosmos = CosmosAdapter(cosmos_config(rpc_urls=urls[:1], rpc_quorum=2))
    assert cosmos.rpc.pool.urls == ("http://a.example", urls[0])
    assert cosmos.rpc.pool.quorum == 2 and cosmos.rpc.rest_url == "http://r.example"
    bitcoin.rpc.close()
    cosmos.rpc.close()
