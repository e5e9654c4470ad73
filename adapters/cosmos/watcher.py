"""Decode one Cosmos SDK block into Ferry deposit events: pure, no network.

Owns: what counts as a deposit to the escrow. Must not talk to a node.

Rules, per transaction (protobuf `cosmos.tx.v1beta1.Tx`, decoded with cosmpy's generated types):
- a transaction whose DeliverTx result code is not 0 moved nothing: it is skipped entirely;
- every coin paid to the escrow by a bank ``MsgSend``, by an output of a ``MsgMultiSend``, or by
  either of those inside an authz ``MsgExec`` is one deposit, numbered in that traversal order
  (the nonce is derived from the tx hash and that number, so it is stable across re-scans);
- the memo must be exactly the ledger account as ``0x`` + 64 hex: otherwise the deposit is
  reported (``bad_memo``) and is to be refunded to its sender;
- a denom not in the configured list (including an ``ibc/`` look-alike) is reported
  (``unknown_denom``); an amount below the denom's minimum is reported (``dust``).
Reported deposits come back as `LockEvent`s with ``uncredited`` set and a zero recipient.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping

from cosmpy.protos.cosmos.authz.v1beta1.tx_pb2 import MsgExec
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgMultiSend, MsgSend
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import Tx
from google.protobuf.any_pb2 import Any as ProtoAny
from google.protobuf.message import DecodeError

from adapters.base import LockEvent

NO_RECIPIENT = bytes(32)
BAD_MEMO, UNKNOWN_DENOM, DUST = "bad_memo", "unknown_denom", "dust"
_ACCOUNT = re.compile(r"^0x[0-9a-fA-F]{64}$")
SEND = "/cosmos.bank.v1beta1.MsgSend"
MULTI_SEND = "/cosmos.bank.v1beta1.MsgMultiSend"
EXEC = "/cosmos.authz.v1beta1.MsgExec"


def deposit_nonce(txhash: str, index: int) -> int:
    """Stable id of deposit `index` of transaction `txhash` (hex): the first 28 bytes of the
    hash followed by the index as 4 big-endian bytes, as one 256-bit integer."""
    return int.from_bytes(bytes.fromhex(txhash)[:28] + index.to_bytes(4, "big"), "big")


def memo_account(memo: str) -> bytes | None:
    """The 32-byte ledger account a memo names, or None if it names none exactly."""
    text = memo.strip()
    return bytes.fromhex(text[2:]) if _ACCOUNT.match(text) else None


def deposits_in_block(
    height: int, block_hash: str, txs: tuple[bytes, ...], codes: tuple[int, ...], *,
    chain: str, escrow: str, min_deposit: Mapping[str, int],
) -> list[LockEvent]:
    """Deposit events in one block, in transaction and message order.

    Args:
        height, block_hash: where the block sits (hash lowercase hex).
        txs, codes: the block's raw transactions and their DeliverTx result codes.
        chain: CAIP-2 id; escrow: the escrow's bech32 address.
        min_deposit: accepted denom -> smallest creditable amount (base units).
    """
    events: list[LockEvent] = []
    for raw, code in zip(txs, codes, strict=True):
        if code != 0:
            continue
        txhash = hashlib.sha256(raw).hexdigest()
        try:
            tx = Tx.FromString(raw)
        except DecodeError:
            continue  # not an SDK transaction: it cannot have paid the escrow
        account = memo_account(tx.body.memo)
        for index, (sender, denom, amount) in enumerate(_payments(tx.body.messages, escrow)):
            reason = None
            if denom not in min_deposit:
                reason = UNKNOWN_DENOM
            elif account is None:
                reason = BAD_MEMO
            elif amount < min_deposit[denom]:
                reason = DUST
            events.append(LockEvent(
                chain=chain, contract=escrow, nonce=deposit_nonce(txhash, index), token=denom,
                sender=sender, amount=amount,
                recipient=NO_RECIPIENT if reason or account is None else account,
                tx_hash=txhash, log_index=index, block_number=height, block_hash=block_hash,
                uncredited=reason))
    return events


def _payments(messages: Iterable[ProtoAny], escrow: str,
              depth: int = 0) -> Iterator[tuple[str, str, int]]:
    """(sender, denom, amount) of every coin the messages pay to `escrow`."""
    for any_msg in messages:
        url = any_msg.type_url
        if url == SEND:
            msg = MsgSend.FromString(any_msg.value)
            if msg.to_address == escrow:
                for coin in msg.amount:
                    yield msg.from_address, coin.denom, int(coin.amount)
        elif url == MULTI_SEND:
            multi = MsgMultiSend.FromString(any_msg.value)
            sender = multi.inputs[0].address if multi.inputs else ""
            for out in multi.outputs:
                if out.address == escrow:
                    for coin in out.coins:
                        yield sender, coin.denom, int(coin.amount)
        elif url == EXEC and depth == 0:  # the SDK forbids nesting MsgExec deeper than this
            yield from _payments(MsgExec.FromString(any_msg.value).msgs, escrow, depth + 1)
