"""`adapters.evm.multi`: failover order, cool-down, chain-id checks, quorum agreement and the
normalisation of answers, over fake endpoints and a fake clock (no network, no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.errors import RpcDisagreement, RpcUnavailable, WrongChain
from adapters.evm.config import EvmChainConfig
from adapters.evm.errors import RpcError
from adapters.evm.multi import MultiRpc, block_key, logs_key, redact

CHAIN_ID = 31337
CHAIN = "eip155:31337"
H1, H2 = "0x" + "aa" * 32, "0x" + "bb" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeEndpoint:
    """Answers `eth_chainId` with `chain_id` and other methods from `answers` (a value, or a
    callable of the params); `down` makes every request `RpcUnavailable`."""

    def __init__(self, name: str, chain_id: int = CHAIN_ID, **answers: Any) -> None:
        self.url = f"https://{name}.example:8545/v2/secret-api-key"
        self.chain_id = chain_id
        self.answers = answers
        self.down = False
        self.calls: list[str] = []

    def request(self, method: str, params: list[Any]) -> Any:
        self.calls.append(method)
        if self.down:
            raise RpcUnavailable(f"{method}: ConnectionError", chain=CHAIN)
        if method == "eth_chainId":
            return hex(self.chain_id)
        answer = self.answers[method]
        return answer(params) if callable(answer) else answer


def multi(*endpoints: FakeEndpoint, quorum: int = 1, clock: Clock | None = None,
          attempts: int = 1) -> MultiRpc:
    return MultiRpc(list(endpoints), chain=CHAIN, chain_id=CHAIN_ID, quorum=quorum,
                    read_attempts=attempts, cooldown_s=10.0, clock=clock or Clock())


def block(number: int, hash_: str) -> dict[str, Any]:
    return {"number": hex(number), "hash": hash_, "parentHash": "0x" + "00" * 32}


def log_entry(**over: Any) -> dict[str, Any]:
    entry = {
        "address": "0x" + "11" * 20, "topics": ["0x" + "22" * 32, "0x" + "33" * 32],
        "data": "0x" + "44" * 64, "blockNumber": "0x5", "blockHash": H1,
        "transactionHash": "0x" + "55" * 32, "logIndex": "0x0", "removed": False,
    }
    return {**entry, **over}


# ----------------------------------------------------------------------------- failover


def test_reads_go_to_the_first_endpoint_when_it_answers() -> None:
    a, b = FakeEndpoint("a", eth_call="0x01"), FakeEndpoint("b", eth_call="0x02")
    assert multi(a, b).read("eth_call", []) == "0x01"
    assert b.calls == []


def test_a_down_endpoint_fails_over_to_the_next() -> None:
    a, b = FakeEndpoint("a", eth_call="0x01"), FakeEndpoint("b", eth_call="0x02")
    a.down = True
    assert multi(a, b).read("eth_call", []) == "0x02"
    assert a.calls == ["eth_chainId"] and b.calls == ["eth_chainId", "eth_call"]


def test_every_endpoint_down_is_rpc_unavailable_chained_from_the_fault() -> None:
    a, b = FakeEndpoint("a"), FakeEndpoint("b")
    a.down = b.down = True
    with pytest.raises(RpcUnavailable) as info:
        multi(a, b).read("eth_call", [])
    assert info.value.chain == CHAIN


def test_a_failed_endpoint_is_skipped_during_its_cool_down_then_preferred_again() -> None:
    clock = Clock()
    a, b = FakeEndpoint("a", eth_call="0x01"), FakeEndpoint("b", eth_call="0x02")
    rpc = multi(a, b, clock=clock)
    a.down = True
    assert rpc.read("eth_call", []) == "0x02"
    a.down = False
    a.calls.clear()
    clock.now += 9.0  # still cooling down: not asked
    assert rpc.read("eth_call", []) == "0x02"
    assert a.calls == []
    clock.now += 2.0  # cool-down over: first again
    assert rpc.read("eth_call", []) == "0x01"
    assert a.calls == ["eth_chainId", "eth_call"]  # down at first: checked before first use


def test_cooling_endpoints_are_still_tried_when_no_healthy_one_answers() -> None:
    clock = Clock()
    a, b = FakeEndpoint("a", eth_call="0x01"), FakeEndpoint("b", eth_call="0x02")
    rpc = multi(a, b, clock=clock)
    a.down = True
    rpc.read("eth_call", [])  # a cools down
    a.down, b.down = False, True
    assert rpc.read("eth_call", []) == "0x01"  # b failed; a, still cooling, is the last resort


def test_failover_is_logged_with_the_host_and_never_the_url_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = FakeEndpoint("a", eth_call="0x01"), FakeEndpoint("b", eth_call="0x02")
    a.down = True
    multi(a, b).read("eth_call", [])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("chain=eip155:31337" in m and "host=a.example:8545" in m for m in warnings)
    assert not any("secret-api-key" in r.getMessage() for r in caplog.records)


def test_a_json_rpc_error_is_the_nodes_answer_and_is_not_failed_over() -> None:
    def revert(params: list[Any]) -> Any:
        raise RpcError("execution reverted", chain=CHAIN, rpc_code=3)

    a, b = FakeEndpoint("a", eth_call=revert), FakeEndpoint("b", eth_call="0x02")
    with pytest.raises(RpcError):
        multi(a, b).read("eth_call", [])
    assert b.calls == []


def test_send_asks_each_endpoint_at_most_once() -> None:
    a, b = FakeEndpoint("a"), FakeEndpoint("b")
    a.down = b.down = True
    with pytest.raises(RpcUnavailable):
        multi(a, b, attempts=5).send("eth_sendRawTransaction", ["0x02"])
    assert a.calls.count("eth_chainId") == 1 and b.calls.count("eth_chainId") == 1


def test_send_goes_to_the_first_endpoint_that_accepts() -> None:
    a, b = FakeEndpoint("a"), FakeEndpoint("b", eth_sendRawTransaction=H1)
    a.down = True
    assert multi(a, b).send("eth_sendRawTransaction", ["0x02"]) == H1


# ----------------------------------------------------------------------------- chain id


def test_verify_all_refuses_any_endpoint_on_another_chain_and_names_it() -> None:
    a, b = FakeEndpoint("a"), FakeEndpoint("bad", chain_id=1)
    rpc = multi(a, b)
    with pytest.raises(WrongChain, match="https://bad.example:8545 serves chain id 1") as info:
        rpc.verify_all()
    assert "secret-api-key" not in str(info.value)


def test_a_wrong_chain_is_sticky_even_for_calls_a_good_endpoint_could_serve() -> None:
    a, b = FakeEndpoint("a", eth_call="0x01"), FakeEndpoint("bad", chain_id=1)
    rpc = multi(a, b)
    with pytest.raises(WrongChain):
        rpc.verify_all()
    with pytest.raises(WrongChain):
        rpc.read("eth_call", [])


def test_an_endpoint_down_at_start_is_allowed_and_checked_before_its_first_use() -> None:
    a, b = FakeEndpoint("a", eth_call="0x01"), FakeEndpoint("b", chain_id=1, eth_call="0x02")
    b.down = True
    rpc = multi(a, b)
    rpc.verify_all()  # b could not be asked: allowed
    b.down, a.down = False, True
    with pytest.raises(WrongChain, match="b.example"):
        rpc.read("eth_call", [])  # a fails over to b, whose chain id is checked first
    assert "eth_call" not in b.calls  # never used unchecked


def test_verify_all_with_every_endpoint_down_is_rpc_unavailable() -> None:
    a = FakeEndpoint("a")
    a.down = True
    with pytest.raises(RpcUnavailable):
        multi(a).verify_all()


def test_each_endpoint_is_asked_its_chain_id_once() -> None:
    a = FakeEndpoint("a", eth_call="0x01")
    rpc = multi(a)
    rpc.verify_all()
    rpc.read("eth_call", [])
    rpc.verify_all()
    assert a.calls == ["eth_chainId", "eth_call"]


# ----------------------------------------------------------------------------- agreement


def test_quorum_reads_that_agree_return_the_answer() -> None:
    logs = [log_entry()]
    a, b = FakeEndpoint("a", eth_getLogs=logs), FakeEndpoint("b", eth_getLogs=logs)
    assert multi(a, b, quorum=2).agreed("eth_getLogs", [{}], logs_key) == logs
    assert "eth_getLogs" in b.calls


def test_quorum_reads_that_differ_raise_rpc_disagreement() -> None:
    a = FakeEndpoint("a", eth_getLogs=[log_entry()])
    b = FakeEndpoint("b", eth_getLogs=[])
    with pytest.raises(RpcDisagreement) as info:
        multi(a, b, quorum=2).agreed("eth_getLogs", [{}], logs_key)
    assert info.value.code == "rpc_disagreement" and info.value.chain == CHAIN


def test_quorum_one_asks_one_endpoint_only() -> None:
    a, b = FakeEndpoint("a", eth_getLogs=[log_entry()]), FakeEndpoint("b", eth_getLogs=[])
    assert multi(a, b, quorum=1).agreed("eth_getLogs", [{}], logs_key) == [log_entry()]
    assert b.calls == []


def test_quorum_skips_a_down_endpoint_when_enough_others_answer() -> None:
    logs = [log_entry()]
    a, b, c = (FakeEndpoint(n, eth_getLogs=logs) for n in "abc")
    a.down = True
    assert multi(a, b, c, quorum=2).agreed("eth_getLogs", [{}], logs_key) == logs


def test_fewer_than_quorum_reachable_is_rpc_unavailable() -> None:
    a, b = FakeEndpoint("a", eth_getLogs=[]), FakeEndpoint("b", eth_getLogs=[])
    b.down = True
    with pytest.raises(RpcUnavailable, match="1 of rpc_quorum 2"):
        multi(a, b, quorum=2).agreed("eth_getLogs", [{}], logs_key)


def test_head_is_the_lowest_of_the_quorum_when_its_hash_is_agreed() -> None:
    a = FakeEndpoint("a", eth_getBlockByNumber=lambda p: block(10, H1) if p[0] == "latest"
                     else block(int(p[0], 16), H1 if p[0] == hex(9) else H2))
    b = FakeEndpoint("b", eth_getBlockByNumber=block(9, H1))
    assert multi(a, b, quorum=2).agreed_block("latest") == block(9, H1)


def test_head_hash_differing_at_the_lowest_height_raises_rpc_disagreement() -> None:
    a = FakeEndpoint("a", eth_getBlockByNumber=lambda p: block(10, H1) if p[0] == "latest"
                     else block(9, H1))
    b = FakeEndpoint("b", eth_getBlockByNumber=block(9, H2))
    with pytest.raises(RpcDisagreement):
        multi(a, b, quorum=2).agreed_block("latest")


def test_same_head_height_with_different_hashes_raises_rpc_disagreement() -> None:
    a = FakeEndpoint("a", eth_getBlockByNumber=block(9, H1))
    b = FakeEndpoint("b", eth_getBlockByNumber=block(9, H2))
    with pytest.raises(RpcDisagreement):
        multi(a, b, quorum=2).agreed_block("finalized")


def test_a_quorum_member_without_the_block_at_a_tag_is_an_rpc_error() -> None:
    a = FakeEndpoint("a", eth_getBlockByNumber=block(9, H1))
    b = FakeEndpoint("b", eth_getBlockByNumber=None)
    with pytest.raises(RpcError):
        multi(a, b, quorum=2).agreed_block("finalized")


def test_block_by_number_missing_on_one_endpoint_is_a_disagreement() -> None:
    a = FakeEndpoint("a", eth_getBlockByNumber=block(9, H1))
    b = FakeEndpoint("b", eth_getBlockByNumber=None)
    with pytest.raises(RpcDisagreement):
        multi(a, b, quorum=2).agreed("eth_getBlockByNumber", ["0x9", False], block_key)


def test_disagreement_is_not_retried_inside_the_client() -> None:
    a = FakeEndpoint("a", eth_getLogs=[log_entry()])
    b = FakeEndpoint("b", eth_getLogs=[])
    with pytest.raises(RpcDisagreement):
        multi(a, b, quorum=2, attempts=5).agreed("eth_getLogs", [{}], logs_key)
    assert a.calls.count("eth_getLogs") == 1


# ----------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "left,right,equal",
    [
        ([log_entry()], [log_entry()], True),
        ([log_entry()], [log_entry(blockHash=H1.upper().replace("0X", "0x"))], True),
        ([log_entry()], [log_entry(blockNumber="0x05", logIndex="0x00")], True),
        ([log_entry(), log_entry(logIndex="0x1")], [log_entry(logIndex="0x1"), log_entry()], True),
        ([log_entry()], [log_entry(), log_entry(removed=True, logIndex="0x7")], True),
        ([log_entry()], [log_entry(extra="ignored field")], True),
        ([log_entry()], [], False),
        ([log_entry()], [log_entry(blockHash=H2)], False),
        ([log_entry()], [log_entry(transactionHash=H2)], False),
        ([log_entry()], [log_entry(logIndex="0x1")], False),
        ([log_entry()], [log_entry(address="0x" + "12" * 20)], False),
        ([log_entry()], [log_entry(topics=["0x" + "22" * 32])], False),
        ([log_entry()], [log_entry(data="0x" + "45" * 64)], False),
        ([log_entry()], [log_entry(), log_entry()], False),
        ([log_entry()], None, False),
        ([log_entry()], ["not a log"], False),
    ],
)
def test_logs_are_compared_by_position_hashes_emitter_topics_and_data(
    left: Any, right: Any, equal: bool
) -> None:
    assert (logs_key(left) == logs_key(right)) is equal


@pytest.mark.parametrize(
    "left,right,equal",
    [
        (block(9, H1), {**block(9, H1), "totalDifficulty": "0x0"}, True),
        (block(9, H1), {**block(9, H1.upper().replace("0X", "0x"))}, True),
        (None, None, True),
        (block(9, H1), block(9, H2), False),
        (block(9, H1), block(8, H1), False),
        (block(9, H1), None, False),
        (block(9, H1), "0x9", False),
    ],
)
def test_blocks_are_compared_by_number_and_hash(left: Any, right: Any, equal: bool) -> None:
    assert (block_key(left) == block_key(right)) is equal


def test_redact_keeps_scheme_host_and_port_only() -> None:
    assert redact("https://user:pw@rpc.example:8545/v3/KEY?x=1") == "https://rpc.example:8545"
    assert redact("http://127.0.0.1/") == "http://127.0.0.1"


# ----------------------------------------------------------------------------- config


def config(**over: Any) -> EvmChainConfig:
    values: dict[str, Any] = {"name": "eth", "chain_id": 1, "rpc_url": "https://a.example",
                              "bridge_address": "0x" + "11" * 20}
    return EvmChainConfig(**{**values, **over})


def test_endpoints_are_rpc_url_then_rpc_urls_without_repeats() -> None:
    cfg = config(rpc_urls=["https://b.example", "https://a.example/", "https://b.example"])
    assert cfg.endpoints == ("https://a.example", "https://b.example")
    assert config().endpoints == ("https://a.example",) and config().rpc_quorum == 1


@pytest.mark.parametrize(
    "over,message",
    [
        ({"rpc_quorum": 2}, "rpc_quorum 2 exceeds the 1 distinct"),
        ({"rpc_urls": ["https://a.example/"], "rpc_quorum": 2}, "exceeds"),
        ({"rpc_quorum": 0}, "greater than or equal to 1"),
        ({"rpc_urls": ["ws://b.example"]}, "http:// or https://"),
    ],
)
def test_bad_rpc_endpoint_config_is_refused(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**over)


def test_a_quorum_up_to_the_number_of_endpoints_is_accepted() -> None:
    assert config(rpc_urls=["https://b.example"], rpc_quorum=2).rpc_quorum == 2
