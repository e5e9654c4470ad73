"""Benchmark: Cosmos deposit ingestion, 5,000 deposit transactions (issue 4).

Starts its own simd (simapp of cosmos-sdk v0.50.3, `adapters/cosmos/devnet.SimdNode`, loopback,
temp home) with 40 accounts funded at genesis, derives an escrow from 3 random secp256k1 keys
(threshold 2), and lands 5,000 deposits: deposit i is one bank MsgSend of 1,000 + i stake from
account i mod 40 to the escrow, memo "0x" + sha256(i) (the ledger account, 64 hex). The
transactions are signed offline (SIGN_MODE_DIRECT, protobufs built here, coincurve, explicit
account numbers and per-account sequences), sent as JSON-RPC batches of `broadcast_tx_sync`
in sequence order per account, and left to the node to pack into blocks (~250 ms apart).
Then times on the same node, same blocks, interleaved, several repetitions each:

  ferry      CosmosAdapter.lock_events(lo, hi) over windows of max_block_range (50), as the
             relayer calls it: one JSON-RPC batch of `block` and one of `block_results` per
             window (`CometRpc.blocks`), then `adapters/cosmos/watcher.py` decodes
  cosmpy     a plain cosmpy loop over the 5,000 tx hashes: LedgerClient's TxService `GetTx`
             (gRPC) one by one, the MsgSend to the escrow and the memo read from the Tx.
             (`LedgerClient.query_tx(hash)` makes the same GetTx call, then keeps only the
             TxResponse, which has no memo, so it cannot credit a deposit; not timed)
  txs_event  (context) cosmpy TxService `GetTxsEvent`, query "tx.height>=lo AND tx.height<=hi"
             per Ferry window, pages of 100, bodies read as in the cosmpy row
  comet tx   (context) CometBFT `tx` per hash over JSON-RPC (`CometRpc.request`), the Tx
             decoded from its bytes as in the cosmpy row
  blocks     (context) `CometRpc.blocks` alone over Ferry's windows: node, transport and
             JSON cost of the ferry row, no protobuf decoding

Checks that ferry and the cosmpy loop each return the 5,000 deposits, all credited, with the
tx hash, sender, amount and recipient sent. The issue sets no numeric target, so the result
line is INFO (exit 0) unless a check fails (FAIL, exit 1). Bounded to 220 s.

Run: .venv/bin/python bench/cosmos_ingest.py [--deposits N] [--accounts A] [--reps R]
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import re
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import _support
from _support import best_median, bound_runtime, lock_recipient, print_table, timed
from coincurve import PrivateKey
from cosmpy.aerial.client import LedgerClient, NetworkConfig
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin
from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey
from cosmpy.protos.cosmos.tx.signing.v1beta1.signing_pb2 import SignMode
from cosmpy.protos.cosmos.tx.v1beta1.service_pb2 import GetTxRequest, GetTxsEventRequest
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import (
    AuthInfo,
    Fee,
    ModeInfo,
    SignDoc,
    SignerInfo,
    Tx,
    TxBody,
    TxRaw,
)
from google.protobuf.any_pb2 import Any as ProtoAny

from adapters.cosmos.adapter import CosmosAdapter
from adapters.cosmos.config import CosmosChainConfig, DenomConfig
from adapters.cosmos.devnet import BOND_DENOM, CosmosWallet, SimdNode, min_fee_stake
from adapters.cosmos.multisig import escrow_address
from adapters.cosmos.rpc import CometRpc

AMOUNT_BASE = 1_000  # deposit i pays AMOUNT_BASE + i stake (distinct; >= the min_deposit)
GAS_LIMIT = 100_000  # gas units per deposit; a MsgSend with a 66-char memo uses ~70k
FUNDING = 10**10  # stake base units per sending account at genesis
BROADCAST_BATCH = 250  # broadcast_tx_sync calls per JSON-RPC batch
MEMPOOL_HEADROOM = 4_000  # keep fewer unconfirmed txs than the 5,000 both mempools hold
PAGE = 100  # GetTxsEvent page size (CometBFT tx_search caps per_page at 100)
_MSG_SEND = "/cosmos.bank.v1beta1.MsgSend"
_ACCOUNT = re.compile(r"^0x[0-9a-fA-F]{64}$")

# (tx hash lowercase hex, sender bech32, amount stake, 32-byte recipient): one deposit
Deposit = tuple[str, str, int, bytes]


@dataclass(frozen=True)
class Landed:
    """The deposits as sent and where they landed."""

    expected: dict[str, Deposit]  # tx hash (lowercase hex) -> the deposit it makes
    first: int  # lowest height holding a deposit
    last: int  # highest height holding a deposit
    per_block: list[int]  # deposit count of each height first..last


def sign_deposits(keys: list[bytes], accounts: list[tuple[int, int]], escrow: str,
                  chain_id: str, n: int) -> tuple[list[bytes], dict[str, Deposit]]:
    """`n` signed deposit TxRaws, in send order, and the deposit each makes by tx hash.

    Deposit i: key ``i % len(keys)`` (its (account number, sequence) in `accounts`, the
    sequence growing by one per transaction), one MsgSend of ``AMOUNT_BASE + i`` stake to
    `escrow`, memo ``"0x" + lock_recipient(i).hex()``, fee ``min_fee_stake(GAS_LIMIT)`` stake.
    Signature: SIGN_MODE_DIRECT, secp256k1 over sha256(SignDoc{body_bytes, auth_info_bytes,
    chain_id, account_number}), 64-byte r||s with low S (libsecp256k1 always normalises).
    """
    signers = [PrivateKey(k) for k in keys]
    senders = [CosmosWallet.address_of(k) for k in keys]
    pubkeys = [ProtoAny(type_url="/cosmos.crypto.secp256k1.PubKey",
                        value=PubKey(key=s.public_key.format()).SerializeToString())
               for s in signers]
    fee = Fee(amount=[Coin(denom=BOND_DENOM, amount=str(min_fee_stake(GAS_LIMIT)))],
              gas_limit=GAS_LIMIT)
    direct = ModeInfo(single=ModeInfo.Single(mode=SignMode.SIGN_MODE_DIRECT))
    sequences = [seq for _, seq in accounts]
    raws: list[bytes] = []
    expected: dict[str, Deposit] = {}
    for i in range(n):
        a = i % len(keys)
        amount, recipient = AMOUNT_BASE + i, lock_recipient(i)
        send = MsgSend(from_address=senders[a], to_address=escrow,
                       amount=[Coin(denom=BOND_DENOM, amount=str(amount))])
        body = TxBody(messages=[ProtoAny(type_url=_MSG_SEND, value=send.SerializeToString())],
                      memo="0x" + recipient.hex()).SerializeToString()
        auth_info = AuthInfo(signer_infos=[SignerInfo(
            public_key=pubkeys[a], mode_info=direct, sequence=sequences[a])],
            fee=fee).SerializeToString()
        sequences[a] += 1
        doc = SignDoc(body_bytes=body, auth_info_bytes=auth_info, chain_id=chain_id,
                      account_number=accounts[a][0]).SerializeToString()
        signature = signers[a].sign_recoverable(hashlib.sha256(doc).digest(), hasher=None)[:64]
        raw = TxRaw(body_bytes=body, auth_info_bytes=auth_info,
                    signatures=[signature]).SerializeToString()
        raws.append(raw)
        tx_hash = hashlib.sha256(raw).hexdigest()
        expected[tx_hash] = (tx_hash, senders[a], amount, recipient)
    return raws, expected


def land_deposits(comet: CometRpc, raws: list[bytes], expected: dict[str, Deposit],
                  timeout_s: float = 120.0) -> Landed:
    """Broadcast `raws` in order (JSON-RPC batches of `broadcast_tx_sync`, keeping the
    mempool under `MEMPOOL_HEADROOM`) and wait until every one is in a block with code 0.

    Raises:
        RuntimeError: CheckTx refused one, one failed in its block, or not all were included
            within `timeout_s`.
    """
    _, start, _ = comet.status()
    deadline = time.monotonic() + timeout_s
    for lo in range(0, len(raws), BROADCAST_BATCH):
        while int(comet.request("num_unconfirmed_txs", {})["n_txs"]) > MEMPOOL_HEADROOM:
            if time.monotonic() > deadline:
                raise RuntimeError("the mempool did not drain")
            time.sleep(0.05)
        replies = comet.batch([("broadcast_tx_sync", {"tx": base64.b64encode(r).decode()})
                               for r in raws[lo:lo + BROADCAST_BATCH]])
        for reply in replies:
            if not isinstance(reply, dict) or int(reply.get("code", 0)) != 0:
                raise RuntimeError(f"CheckTx refused a deposit: {reply}")
    counts: dict[int, int] = {}
    next_height = start + 1
    while sum(counts.values()) < len(raws):
        # the block store moves to height H before H's results are saved: read up to H - 1
        tip = comet.status()[1] - 1
        if next_height > tip:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{sum(counts.values())} of {len(raws)} deposits included "
                                   f"after {timeout_s}s")
            time.sleep(0.05)
            continue
        for block in comet.blocks(next_height, tip):
            for raw, code in zip(block.txs, block.codes, strict=True):
                if hashlib.sha256(raw).hexdigest() in expected:
                    if code != 0:
                        raise RuntimeError(f"a deposit failed at height {block.height}: {code}")
                    counts[block.height] = counts.get(block.height, 0) + 1
        next_height = tip + 1
    first, last = min(counts), max(counts)
    return Landed(expected, first, last, [counts.get(h, 0) for h in range(first, last + 1)])


def deposits_of(tx_hash: str, tx: Tx, escrow: str) -> Iterable[Deposit]:
    """The deposits a successful transaction makes, read plainly (the cosmpy-side rows): every
    stake coin of a MsgSend paying `escrow`, credited to the memo's 32-byte account."""
    memo = tx.body.memo.strip()
    recipient = bytes.fromhex(memo[2:]) if _ACCOUNT.match(memo) else bytes(32)
    for any_msg in tx.body.messages:
        if any_msg.type_url == _MSG_SEND:
            send = MsgSend.FromString(any_msg.value)
            if send.to_address == escrow:
                for coin in send.amount:
                    if coin.denom == BOND_DENOM:
                        yield tx_hash, send.from_address, int(coin.amount), recipient


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deposits", type=int, default=5_000)
    parser.add_argument("--accounts", type=int, default=40, help="sending accounts")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    bound_runtime(220)
    t_start = time.perf_counter()
    n = args.deposits
    keys = [secrets.token_bytes(32) for _ in range(args.accounts)]
    escrow_keys = [PrivateKey(secrets.token_bytes(32)).public_key.format() for _ in range(3)]
    with tempfile.TemporaryDirectory(prefix="ferry-bench-cosmos-") as workdir, SimdNode(
            Path(workdir), accounts={CosmosWallet.address_of(k): FUNDING for k in keys}
    ) as node:
        config = CosmosChainConfig(
            name="bench", chain_id=node.chain_id, rpc_url=node.rpc_url, rest_url=node.rest_url,
            validator_pubkeys=tuple(k.hex() for k in escrow_keys), threshold=2,
            denoms=(DenomConfig(denom=BOND_DENOM, min_deposit=AMOUNT_BASE),),
            request_timeout_s=60.0)
        adapter = CosmosAdapter(config)
        comet = CometRpc(node.rpc_url, node.rest_url, chain=node.chain, timeout_s=60.0)
        client = LedgerClient(NetworkConfig(
            chain_id=node.chain_id, url=f"grpc+{node.grpc_url}", fee_minimum_gas_price=0,
            fee_denomination=BOND_DENOM, staking_denomination=BOND_DENOM))
        try:
            adapter.verify_chain()
            escrow = adapter.escrow
            assert escrow == escrow_address(escrow_keys, 2)
            accounts = [comet.account(CosmosWallet.address_of(k)) for k in keys]
            if any(a is None for a in accounts):
                raise RuntimeError("a genesis account is missing on chain")
            t_sign = time.perf_counter()
            raws, expected = sign_deposits(keys, [a for a in accounts if a is not None],
                                           escrow, node.chain_id, n)
            sign_s = time.perf_counter() - t_sign
            landed = land_deposits(comet, raws, expected)
            first, last = landed.first, landed.last
            n_blocks = last - first + 1
            hashes = list(expected)
            setup_s = time.perf_counter() - t_start
            print(f"setup: simd {node.rpc_url}, escrow {escrow} (2 of 3), {n} deposits from "
                  f"{args.accounts} accounts signed offline in {sign_s:.1f}s, landed in "
                  f"{n_blocks} blocks {first}..{last} (deposits per block min "
                  f"{min(landed.per_block)}, median {statistics.median(landed.per_block):.0f}, "
                  f"max {max(landed.per_block)}), {setup_s:.1f}s")

            step = config.max_block_range
            windows = [(lo, min(lo + step - 1, last)) for lo in range(first, last + 1, step)]

            def ferry() -> int:
                return sum(len(adapter.lock_events(lo, hi)) for lo, hi in windows)

            def cosmpy_get_tx(some: list[str] = hashes) -> list[Deposit]:
                out: list[Deposit] = []
                for tx_hash in some:
                    reply = client.txs.GetTx(GetTxRequest(hash=tx_hash.upper()))
                    if reply.tx_response.code == 0:
                        out.extend(deposits_of(tx_hash, reply.tx, escrow))
                return out

            def txs_event() -> int:
                found = 0
                for lo, hi in windows:
                    query, page, total = f"tx.height>={lo} AND tx.height<={hi}", 1, 1
                    while (page - 1) * PAGE < total:
                        reply = client.txs.GetTxsEvent(GetTxsEventRequest(
                            query=query, page=page, limit=PAGE))
                        for tx, resp in zip(reply.txs, reply.tx_responses, strict=True):
                            if resp.code == 0:
                                found += len(list(deposits_of(resp.txhash.lower(), tx, escrow)))
                        total, page = reply.total, page + 1
                return found

            def comet_tx() -> int:
                found = 0
                for tx_hash in hashes:
                    result = comet.request(
                        "tx", {"hash": base64.b64encode(bytes.fromhex(tx_hash)).decode()})
                    if int(result["tx_result"].get("code", 0)) == 0:
                        tx = Tx.FromString(base64.b64decode(result["tx"]))
                        found += len(list(deposits_of(tx_hash, tx, escrow)))
                return found

            def blocks_only() -> int:
                return sum(len(b.txs) for lo, hi in windows for b in comet.blocks(lo, hi))

            # Warm-up and checks (not timed).
            events = [e for lo, hi in windows for e in adapter.lock_events(lo, hi)]
            credited = [e for e in events if e.uncredited is None]
            got = {e.tx_hash: (e.tx_hash, e.sender, e.amount, e.recipient) for e in credited}
            ferry_ok = (len(events) == n and len(credited) == n and got == expected
                        and all(e.contract == escrow and e.token == BOND_DENOM
                                and e.log_index == 0 for e in credited))
            print(f"check: ferry {len(events)} events, {len(credited)} credited, tx hashes, "
                  f"senders, amounts and recipients equal to those sent: {ferry_ok}")
            del events, credited, got
            # The cosmpy loop takes ~20 s a pass: warm its channel on 100 hashes here and check
            # the full result of every timed pass below instead of spending a pass on it.
            cosmpy_ok = all(expected[d[0]] == d for d in cosmpy_get_tx(hashes[:100]))
            cases: dict[str, Callable[[], object]] = {
                "ferry CosmosAdapter.lock_events": ferry,
                "cosmpy TxService GetTx per hash (gRPC)": cosmpy_get_tx,
                "(context) cosmpy GetTxsEvent per window": txs_event,
                "(context) CometBFT tx per hash (JSON-RPC)": comet_tx,
                "(context) CometRpc.blocks only, no decode": blocks_only}
            samples: dict[str, list[float]] = {k: [] for k in cases}
            for _ in range(args.reps):  # interleaved so node/CPU drift hits all paths alike
                for name, fn in cases.items():
                    gc.collect()
                    seconds, result = timed(fn)
                    if isinstance(result, list):  # the cosmpy loop's deposits: check them all
                        cosmpy_ok = cosmpy_ok and {d[0]: d for d in result} == expected
                        result = len(result)
                    if result != n:
                        raise RuntimeError(f"{name} returned {result} deposits, expected {n}")
                    samples[name].append(seconds)
            ok = ferry_ok and cosmpy_ok
            print(f"check: cosmpy GetTx deposits of every timed run equal to those sent: "
                  f"{cosmpy_ok}")
            simd_hwm = _support.vm_hwm_mb(node.pid or 0)
        finally:
            comet.close()
            adapter.rpc.close()

    print(f"\n{n} deposit transactions in {n_blocks} blocks ({first}..{last}); ferry in "
          f"{len(windows)} lock_events window(s) of max_block_range={step}; {args.reps} "
          "interleaved runs each, same simd, loopback (CometBFT JSON-RPC over HTTP/1.1, gRPC "
          "over HTTP/2)")
    rows = []
    for name, secs in samples.items():
        best, median = best_median(secs)
        rows.append([name, f"{best:.3f}", f"{median:.3f}", f"{n / best:,.0f}",
                     f"{n / median:,.0f}", f"{n_blocks / best:,.1f}"])
    print_table(["path", "best s", "median s", "best deposits/s", "median deposits/s",
                 "best blocks/s"], rows)
    f_best, f_med = best_median(samples["ferry CosmosAdapter.lock_events"])
    c_best, c_med = best_median(samples["cosmpy TxService GetTx per hash (gRPC)"])
    print(f"\nratio ferry/cosmpy deposits/s: best {c_best / f_best:.2f}x, "
          f"median {c_med / f_med:.2f}x")
    print(f"peak RSS (VmHWM): this process {_support.vm_hwm_mb():.0f} MB (ru_maxrss "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB), simd "
          f"{simd_hwm:.0f} MB; setup {setup_s:.1f}s; total runtime "
          f"{time.perf_counter() - t_start:.1f}s")
    print(f"RESULT cosmos_ingest: {'INFO (no numeric target)' if ok else 'FAIL (event check)'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_support.run_main("cosmos_ingest", main))
