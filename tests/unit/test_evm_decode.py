"""Pure tests of the EVM adapter's parts that need no node: the fixed-layout `Locked` decoder
(checked against eth_abi and the Bridge artifact), config validation, JSON-RPC error
translation and finality arithmetic."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import eth_abi
import pytest
from eth_utils import keccak
from pydantic import ValidationError as PydanticValidationError

from adapters.base import NATIVE_TOKEN, LockEvent, ReleaseOrder, TxStatus
from adapters.errors import NonceTooLow, RpcUnavailable, ValidationError
from adapters.evm import finality
from adapters.evm.calls import SELECTORS, check_bridge_abi, encode_release
from adapters.evm.config import EvmChainConfig
from adapters.evm.errors import MalformedLog, RpcError, translate_rpc_error
from adapters.evm.logs import LOCKED_TOPIC, decode_locked_log, decode_locked_logs

CHAIN = "eip155:31337"
BRIDGE = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
TOKEN = "0x" + "11" * 20
SENDER = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
RECIPIENT = bytes(range(32))


def _word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def _addr_word(address: str) -> str:
    return "0x" + "00" * 12 + address[2:]


def make_log(
    *, nonce: int = 7, amount: int = 10**18, block: int = 5, index: int = 0, **over: Any
) -> dict[str, Any]:
    """A raw ``eth_getLogs`` element, exactly as a node sends it (hex strings)."""
    log = {
        "address": BRIDGE,
        "topics": [LOCKED_TOPIC, _word(nonce), _addr_word(TOKEN), _addr_word(SENDER)],
        "data": "0x" + amount.to_bytes(32, "big").hex() + RECIPIENT.hex(),
        "blockNumber": hex(block),
        "blockHash": "0x" + "ab" * 32,
        "transactionHash": "0x" + "cd" * 32,
        "transactionIndex": "0x0",
        "logIndex": hex(index),
        "removed": False,
    }
    log.update(over)
    return log


# ----------------------------------------------------------------------------- Locked decoding


def test_locked_topic_matches_bridge_artifact() -> None:
    from contracts import load_artifact

    (event,) = [e for e in load_artifact("Bridge").abi if e.get("name") == "Locked"]
    sig = f"Locked({','.join(i['type'] for i in event['inputs'])})"
    assert LOCKED_TOPIC == "0x" + keccak(text=sig).hex()
    assert [i.get("indexed") for i in event["inputs"]] == [True, True, True, False, False]


def test_decodes_every_field_of_a_hand_made_log() -> None:
    event = decode_locked_log(make_log(), chain=CHAIN, bridge=BRIDGE)
    assert event == LockEvent(
        chain=CHAIN,
        contract=BRIDGE,
        nonce=7,
        token=TOKEN,
        sender=SENDER,
        amount=10**18,
        recipient=RECIPIENT,
        tx_hash="0x" + "cd" * 32,
        log_index=0,
        block_number=5,
        block_hash="0x" + "ab" * 32,
    )
    assert event.event_id == f"{CHAIN}/{BRIDGE}/7"


@pytest.mark.parametrize("amount", [1, 10**18, 2**256 - 1])
@pytest.mark.parametrize("nonce", [1, 2**64, 2**256 - 1])
def test_decoding_agrees_with_eth_abi(amount: int, nonce: int) -> None:
    log = make_log(nonce=nonce, amount=amount)
    ref_amount, ref_recipient = eth_abi.decode(
        ["uint256", "bytes32"], bytes.fromhex(log["data"][2:])
    )
    (ref_sender,) = eth_abi.decode(["address"], bytes.fromhex(log["topics"][3][2:]))
    event = decode_locked_log(log, chain=CHAIN, bridge=BRIDGE)
    assert (event.nonce, event.amount, event.recipient) == (nonce, ref_amount, ref_recipient)
    assert event.sender == ref_sender.lower()


def test_checksummed_or_uppercase_hex_from_the_node_is_normalised_to_lowercase() -> None:
    log = make_log(address="0x5FbDB2315678afecb367f032d93F642f64180aa3")
    log["topics"] = [t.upper().replace("0X", "0x") for t in log["topics"]]
    event = decode_locked_log(log, chain=CHAIN, bridge=BRIDGE)
    assert (event.contract, event.token, event.sender) == (BRIDGE, TOKEN, SENDER)


def test_log_from_a_different_address_is_rejected() -> None:
    with pytest.raises(MalformedLog, match="not the bridge"):
        decode_locked_log(make_log(address="0x" + "22" * 20), chain=CHAIN, bridge=BRIDGE)


_GOOD = make_log()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("topics", [_word(1)] + _GOOD["topics"][1:]),  # topic 0 is not Locked
        ("topics", _GOOD["topics"][:3]),  # too few topics
        ("topics", _GOOD["topics"] + [_word(0)]),  # too many topics
        ("topics", _GOOD["topics"][:2] + ["0x" + "ff" * 32, _GOOD["topics"][3]]),  # dirty pad
        ("topics", _GOOD["topics"][:3] + ["0x" + "00" * 12 + "zz" * 20]),  # not hex
        ("topics", [_GOOD["topics"][0], "0x07"] + _GOOD["topics"][2:]),  # short nonce word
        ("data", _GOOD["data"][:-2]),  # 63 bytes
        ("data", _GOOD["data"] + "00"),  # 65 bytes
        ("data", "0x" + "g" * 128),  # not hex
        ("data", "00" + _GOOD["data"][2:]),  # no 0x prefix
        ("logIndex", None),
        ("blockHash", "0x1234"),
        ("transactionHash", None),
    ],
)
def test_malformed_log_is_rejected_not_skipped(field: str, value: Any) -> None:
    with pytest.raises(MalformedLog):
        decode_locked_logs([make_log(**{field: value})], chain=CHAIN, bridge=BRIDGE)


def test_missing_field_is_rejected() -> None:
    log = make_log()
    del log["data"]
    with pytest.raises(MalformedLog):
        decode_locked_log(log, chain=CHAIN, bridge=BRIDGE)


def test_removed_logs_are_skipped_and_the_rest_sorted_by_block_then_index() -> None:
    logs = [
        make_log(nonce=3, block=9, index=0),
        make_log(nonce=2, block=8, index=4),
        make_log(nonce=9, block=8, index=5, removed=True),
        make_log(nonce=1, block=8, index=1),
    ]
    events = decode_locked_logs(logs, chain=CHAIN, bridge=BRIDGE.upper().replace("0X", "0x"))
    assert [e.nonce for e in events] == [1, 2, 3]


def test_two_logs_at_the_same_position_are_rejected() -> None:
    with pytest.raises(MalformedLog, match="duplicate"):
        decode_locked_logs([make_log(nonce=1), make_log(nonce=2)], chain=CHAIN, bridge=BRIDGE)


# ----------------------------------------------------------------------------- release call

_ORDER = ReleaseOrder(b"\x09" * 32, NATIVE_TOKEN, SENDER, 5, (b"\x01" * 65,) * 2)


def test_release_call_encoding_matches_web3_with_the_artifact_abi() -> None:
    from web3 import Web3

    from contracts import load_artifact

    check_bridge_abi()
    contract = Web3().eth.contract(abi=load_artifact("Bridge").abi)
    expected = contract.encode_abi(
        "release",
        [_ORDER.burn_id, NATIVE_TOKEN, Web3.to_checksum_address(SENDER), 5, [b"\x01" * 65] * 2],
    )
    assert SELECTORS["release"] + encode_release(_ORDER).hex() == expected


@pytest.mark.parametrize(
    "over",
    [
        {"burn_id": b"\x09" * 31},
        {"token": "0x1234"},
        {"recipient": "0x" + "1_" * 20},
        {"amount": 0},
        {"amount": 2**256},
        {"signatures": ()},
        {"signatures": (b"\x01" * 64,)},
    ],
)
def test_malformed_release_order_is_refused_before_signing(over: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        encode_release(replace(_ORDER, **over))


# ----------------------------------------------------------------------------- config

_CFG = {"name": "ethereum", "chain_id": 31337, "rpc_url": "http://127.0.0.1:8545"}


def test_config_stores_bridge_lowercase_and_names_the_chain() -> None:
    cfg = EvmChainConfig(**_CFG, bridge_address="0x5FbDB2315678afecb367f032d93F642f64180aa3")
    assert cfg.bridge_address == BRIDGE
    assert cfg.caip2 == "eip155:31337"
    assert (cfg.confirmation_depth, cfg.max_block_range, cfg.use_finalized_tag) == (2, 2000, False)


@pytest.mark.parametrize(
    "over",
    [
        {"bridge_address": "0x1234"},
        {"bridge_address": "0x" + "zz" * 20},
        {"bridge_address": "0x5FbDB2315678afecb367f032d93F642f64180aA3"},  # bad EIP-55
        {"bridge_address": BRIDGE, "confirmation_depth": -1},
        {"bridge_address": BRIDGE, "max_block_range": 0},
        {"bridge_address": BRIDGE, "rpc_url": "ws://127.0.0.1:8545"},
        {"bridge_address": BRIDGE, "surprise": 1},  # extra="forbid"
    ],
)
def test_config_rejects_bad_values(over: dict[str, Any]) -> None:
    with pytest.raises(PydanticValidationError):
        EvmChainConfig(**{**_CFG, **over})


# ----------------------------------------------------------------------------- RPC errors


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": -32000, "message": "nonce too low: next nonce 5, tx nonce 4"}, NonceTooLow),
        ({"code": -32000, "message": "already known"}, NonceTooLow),
        ({"code": -32000, "message": "replacement transaction underpriced"}, NonceTooLow),
        ({"code": -32005, "message": "limit exceeded"}, RpcUnavailable),
        ({"code": 429, "message": "Too Many Requests"}, RpcUnavailable),
        ({"code": 3, "message": "execution reverted"}, RpcError),
        ("not an object", RpcError),
    ],
)
def test_json_rpc_errors_are_translated(error: Any, expected: type[Exception]) -> None:
    translated = translate_rpc_error(error, chain=CHAIN, method="m")
    assert type(translated) is expected
    assert translated.chain == CHAIN


# ----------------------------------------------------------------------------- finality


@pytest.mark.parametrize(("head", "depth", "final"), [(10, 2, 8), (10, 0, 10), (1, 5, 0)])
def test_finalized_height_is_head_minus_depth_floored_at_zero(
    head: int, depth: int, final: int
) -> None:
    assert finality.finalized_height(head, depth) == final


def test_finalized_height_rejects_negative_depth() -> None:
    with pytest.raises(ValueError):
        finality.finalized_height(10, -1)


@pytest.mark.parametrize(
    ("status", "block", "in_mempool", "expected"),
    [
        (1, 8, False, TxStatus.FINAL),
        (1, 9, False, TxStatus.INCLUDED),
        (0, 9, False, TxStatus.FAILED),
        (None, None, True, TxStatus.PENDING),
        (None, None, False, TxStatus.UNKNOWN),
    ],
)
def test_tx_status_against_final_height_8(
    status: int | None, block: int | None, in_mempool: bool, expected: TxStatus
) -> None:
    got = finality.tx_status(
        receipt_status=status, included_in=block, final_height=8, in_mempool=in_mempool
    )
    assert got is expected


def test_tx_status_refuses_a_receipt_without_block() -> None:
    with pytest.raises(ValueError):
        finality.tx_status(receipt_status=1, included_in=None, final_height=8, in_mempool=False)
