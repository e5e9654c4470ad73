"""Decoding of the bridge's `Locked` event from raw ``eth_getLogs`` JSON.

Owns: the `Locked` topic, the fixed-layout decoder and its checks. Must not touch the network,
web3's result formatters or eth_abi: the layout is fixed, so plain slicing of the JSON hex is
exact and an order of magnitude faster than ``contract.events.Locked.get_logs``.

Layout (Solidity ABI spec, "Events"; contracts/src/Bridge.sol):
``Locked(uint256 indexed nonce, address indexed token, address indexed sender, uint256 amount,
bytes32 recipient)``::

    topics[0] = keccak256("Locked(uint256,address,address,uint256,bytes32)")
    topics[1] = nonce   (uint256, 32 bytes big-endian)
    topics[2] = token   (address, left-padded with 12 zero bytes)
    topics[3] = sender  (address, left-padded with 12 zero bytes)
    data      = amount (32 bytes big-endian) || recipient (32 bytes)

SECURITY: every log is re-checked here, whatever filter the node was given: the emitter must be
the configured bridge, topic 0 must be `Locked`, and the layout must be exact. A log failing a
check raises `MalformedLog`; it is never skipped silently, so a broken or lying RPC halts the
scan of that range instead of losing or inventing a lock. Logs flagged ``removed`` (a reorg
notice) are skipped: they are not part of the canonical chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import pairwise
from typing import Any

from eth_utils import keccak

from adapters.base import LockEvent
from adapters.evm.errors import MalformedLog

LOCKED_SIGNATURE = "Locked(uint256,address,address,uint256,bytes32)"
LOCKED_TOPIC = "0x" + keccak(text=LOCKED_SIGNATURE).hex()

_WORD_HEX = 66  # "0x" + 64 hex digits
_DATA_HEX = 2 + 128  # "0x" + amount(32 bytes) + recipient(32 bytes)
_ADDRESS_PAD = "0" * 24  # 12 zero bytes in front of a 20-byte address


def _word_address(word: str) -> str:
    """Address in a 32-byte topic word; the 12 pad bytes must be zero."""
    if len(word) != _WORD_HEX or word[2:26] != _ADDRESS_PAD:
        raise ValueError(f"not an address word: {word!r}")
    int(word, 16)  # reject non-hex digits
    return "0x" + word[26:].lower()


def decode_locked_log(log: Mapping[str, Any], *, chain: str, bridge: str) -> LockEvent:
    """Decode one raw ``eth_getLogs`` log object into a `LockEvent`.

    Args:
        log: one element of the JSON-RPC ``eth_getLogs`` result, untouched (hex strings:
            ``address``, ``topics``, ``data``, ``blockNumber``, ``blockHash``,
            ``transactionHash``, ``logIndex``).
        chain: CAIP-2 id stamped on the event.
        bridge: the configured bridge address, lowercase ``0x`` hex (20 bytes).

    Returns:
        The event; addresses and hashes lowercase ``0x`` hex, `recipient` 32 raw bytes.

    Raises:
        MalformedLog: the emitter is not `bridge`, topic 0 is not `Locked`, there are not
            exactly 4 topics, ``data`` is not exactly 64 bytes, a field is not hex, or an
            address topic has nonzero padding.
    """
    try:
        address = log["address"].lower()
        if address != bridge:
            raise MalformedLog(f"log from {address}, not the bridge {bridge}", chain=chain)
        topics = log["topics"]
        if len(topics) != 4 or topics[0].lower() != LOCKED_TOPIC:
            raise MalformedLog(f"not a Locked log: topics={topics!r}", chain=chain)
        nonce_word, data = topics[1], log["data"]
        if len(nonce_word) != _WORD_HEX or len(data) != _DATA_HEX or data[:2] != "0x":
            raise MalformedLog(f"bad Locked layout: data={data!r}", chain=chain)
        block_hash = log["blockHash"]
        tx_hash = log["transactionHash"]
        if len(block_hash) != _WORD_HEX or len(tx_hash) != _WORD_HEX:
            raise MalformedLog("bad block or transaction hash", chain=chain)
        int(block_hash, 16), int(tx_hash, 16)  # reject non-hex digits
        return LockEvent(
            chain=chain,
            contract=address,
            nonce=int(nonce_word, 16),
            token=_word_address(topics[2]),
            sender=_word_address(topics[3]),
            amount=int(data[2:66], 16),
            recipient=bytes.fromhex(data[66:]),
            tx_hash=tx_hash.lower(),
            log_index=int(log["logIndex"], 16),
            block_number=int(log["blockNumber"], 16),
            block_hash=block_hash.lower(),
        )
    except MalformedLog:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedLog(f"undecodable Locked log: {exc}", chain=chain) from exc


def decode_locked_logs(
    logs: Iterable[Mapping[str, Any]], *, chain: str, bridge: str
) -> list[LockEvent]:
    """Decode an ``eth_getLogs`` result, skipping ``removed`` logs, sorted by (block, index).

    Args:
        logs: the raw JSON-RPC result list.
        chain: CAIP-2 id stamped on each event.
        bridge: configured bridge address, ``0x`` hex (any case).

    Returns:
        Events in canonical log order (block number, then log index).

    Raises:
        MalformedLog: any log fails `decode_locked_log`'s checks, or two logs share a position.
    """
    bridge = bridge.lower()
    events = [
        decode_locked_log(log, chain=chain, bridge=bridge)
        for log in logs
        if log.get("removed") is not True
    ]
    events.sort(key=lambda e: (e.block_number, e.log_index))
    for before, after in pairwise(events):
        if (before.block_number, before.log_index) == (after.block_number, after.log_index):
            raise MalformedLog(
                f"duplicate log at block {after.block_number} index {after.log_index}",
                chain=chain,
            )
    return events
