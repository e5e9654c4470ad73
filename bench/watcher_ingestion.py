"""Benchmark: EVM watcher ingestion of 10,000 `Locked` events, Ferry's path vs web3.py.

Starts its own anvil (loopback, temp datadir), deploys the real `Bridge`, makes 10,000
native-coin locks (signed locally, batched, automine off, 250 per block), then times on the same
node, interleaved, several repetitions each:

  ferry  EvmAdapter.lock_events(first, last): raw eth_getLogs JSON + fixed-layout decode
  web3   bridge.events.Locked.get_logs(from_block=, to_block=) (web3.py 8), over the SAME block
         chunks the adapter uses (chunks of EvmChainConfig.max_block_range)

and, for context only, the raw eth_getLogs round trip without decoding. Checks both paths
return 10,000 events with equal (nonce, amount, recipient), equal to what was locked.
Target: ferry >= 5x web3 events/s (best run vs best run). Exit status 1 on FAIL or error.
Bounded to 170 s.

Run: .venv/bin/python bench/watcher_ingestion.py [--events N] [--reps R]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import _support
from _support import (
    best_median,
    bound_runtime,
    flood_locks,
    lock_amount,
    lock_recipient,
    print_table,
    timed,
)
from eth_account import Account
from web3 import Web3

from adapters.base import NATIVE_TOKEN
from adapters.evm.adapter import EvmAdapter
from adapters.evm.config import EvmChainConfig
from adapters.evm.devnet import ANVIL_DEV_KEY, AnvilNode, connect, deploy_bridge
from adapters.evm.logs import LOCKED_TOPIC
from adapters.evm.rpc import JsonRpc
from contracts import load_artifact

TARGET_RATIO = 5.0
CHAIN_ID = 31337


def chunks(first: int, last: int, step: int) -> list[tuple[int, int]]:
    """The adapter's chunking of [first, last] (adapters/evm/adapter.py lock_events)."""
    return [(s, min(s + step - 1, last)) for s in range(first, last + 1, step)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    bound_runtime(170)
    n = args.events
    t_setup = time.perf_counter()
    with AnvilNode(CHAIN_ID) as node:
        w3 = connect(node.rpc_url, timeout_s=60.0)
        validators = [Account.create().address for _ in range(3)]
        bridge = deploy_bridge(w3, validators, 2, [NATIVE_TOKEN], sender_key=ANVIL_DEV_KEY)
        first = w3.eth.block_number + 1
        flood_locks(node.rpc_url, Web3.to_checksum_address(bridge), n, key=ANVIL_DEV_KEY,
                    chain_id=CHAIN_ID)
        last = w3.eth.block_number
        print(f"setup: anvil {node.rpc_url}, bridge {bridge}, {n} locks in blocks "
              f"{first}..{last} ({last - first + 1} blocks), {time.perf_counter() - t_setup:.1f}s")

        config = EvmChainConfig(name="bench", chain_id=CHAIN_ID, rpc_url=node.rpc_url,
                                bridge_address=bridge, confirmation_depth=0,
                                request_timeout_s=60.0)
        adapter = EvmAdapter(config)
        adapter.verify_chain()
        ranges = chunks(first, last, config.max_block_range)
        contract = w3.eth.contract(address=Web3.to_checksum_address(bridge),
                                   abi=load_artifact("Bridge").abi)
        raw_rpc = JsonRpc(node.rpc_url, chain=config.caip2, timeout_s=60.0)

        def ferry() -> list:
            return adapter.lock_events(first, last)

        def web3py() -> list:
            out: list = []
            for a, b in ranges:
                out.extend(contract.events.Locked.get_logs(from_block=a, to_block=b))
            return out

        def raw_getlogs() -> list:
            out: list = []
            for a, b in ranges:
                out.extend(raw_rpc.request("eth_getLogs", [{
                    "address": bridge, "topics": [LOCKED_TOPIC],
                    "fromBlock": hex(a), "toBlock": hex(b)}]))
            return out

        # Warm-up (connection pools, web3's ABI caches), then correctness.
        ferry_events, web3_events = ferry(), web3py()
        expected = [(i + 1, lock_amount(i), lock_recipient(i)) for i in range(n)]
        got_ferry = [(e.nonce, e.amount, e.recipient) for e in ferry_events]
        got_web3 = [(e["args"]["nonce"], e["args"]["amount"], bytes(e["args"]["recipient"]))
                    for e in web3_events]
        same = got_ferry == got_web3 == expected
        print(f"check: ferry {len(got_ferry)} events, web3 {len(got_web3)} events, "
              f"(nonce, amount, recipient) equal to each other and to the locks: {same}")
        del ferry_events, web3_events, got_ferry, got_web3

        cases = {"ferry EvmAdapter.lock_events": ferry,
                 "web3 contract.events.Locked.get_logs": web3py,
                 "(context) raw eth_getLogs, no decode": raw_getlogs}
        samples: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.reps):  # interleaved so node/CPU drift hits all paths alike
            for name, fn in cases.items():
                gc.collect()
                seconds, events = timed(fn)
                if len(events) != n:
                    raise RuntimeError(f"{name} returned {len(events)} events, expected {n}")
                samples[name].append(seconds)
                del events

    print(f"\n{n} Locked events, blocks {first}..{last}, {len(ranges)} eth_getLogs request(s) "
          f"per run (max_block_range={config.max_block_range}; web3 given the same ranges), "
          f"{args.reps} interleaved runs each, same anvil node, loopback HTTP")
    rows = []
    for name, secs in samples.items():
        best, median = best_median(secs)
        rows.append([name, n, f"{best:.3f}", f"{median:.3f}", f"{n / best:,.0f}", f"{n / median:,.0f}"])
    print_table(["path", "events", "best s", "median s", "best events/s", "median events/s"], rows)
    f_best, f_med = best_median(samples["ferry EvmAdapter.lock_events"])
    w_best, w_med = best_median(samples["web3 contract.events.Locked.get_logs"])
    ratio_best, ratio_med = w_best / f_best, w_med / f_med
    ok = same and ratio_best >= TARGET_RATIO
    print(f"\nratio ferry/web3 events/s: best {ratio_best:.2f}x, median {ratio_med:.2f}x "
          f"(target >= {TARGET_RATIO:.0f}x on best)")
    print(f"RESULT watcher_ingestion: {'PASS' if ok else 'FAIL'}"
          + ("" if same else " (event sets differ)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_support.run_main("watcher_ingestion", main))
