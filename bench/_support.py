"""Shared plumbing of Ferry's benchmark scripts (not a benchmark itself: `run_all.py` skips
files whose name starts with ``_``).

Owns: putting the repository on ``sys.path``, a hard time bound per script that still runs
``finally`` blocks (so every node a script started is stopped), table printing, batched
JSON-RPC, and flooding a devnet `Bridge` with native-coin locks signed locally.
Must not start processes itself (each script owns what it starts) nor hold keys beyond anvil's
public dev key.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the editable install alone does not always resolve `contracts`
    sys.path.insert(0, str(REPO))

# Heavy libraries (web3, eth_account) are imported inside the functions that need them, so a
# script that only orchestrates subprocesses stays small: a child's ru_maxrss on Linux starts
# from its parent's high-water mark at exec, so a fat parent would inflate what it measures.
NATIVE_TOKEN = "0x" + "00" * 20  # adapters.base.NATIVE_TOKEN (not imported: see above)


class BenchTimeout(Exception):
    """The script ran past its time bound (SIGALRM) or was asked to stop (SIGTERM)."""


def bound_runtime(limit_s: int) -> None:
    """Raise `BenchTimeout` in the main thread after `limit_s` seconds or on SIGTERM/SIGINT,
    so ``with``/``finally`` blocks stop the nodes the script started."""

    def _raise(signum: int, _frame: Any) -> None:
        raise BenchTimeout(f"stopped by {signal.Signals(signum).name} (bound {limit_s}s)")

    signal.signal(signal.SIGALRM, _raise)
    signal.signal(signal.SIGTERM, _raise)
    signal.alarm(limit_s)


def run_main(name: str, main: Callable[[], int]) -> int:
    """Run a benchmark's `main`; a `BenchTimeout` becomes one line and exit status 124."""
    try:
        return main()
    except BenchTimeout as exc:
        print(f"RESULT {name}: TIMEOUT ({exc}); nodes stopped", flush=True)
        return 124


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a fixed-width table: first column left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def vm_hwm_mb(pid: int | str = "self") -> float:
    """Peak RSS (VmHWM) of process `pid` in MB (2**20 bytes), 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return 0.0  # the process is gone: nothing to report
    return 0.0


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds, result) of one call, by `time.perf_counter`."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_median(samples: Sequence[float]) -> tuple[float, float]:
    return min(samples), statistics.median(samples)


def rpc_batch(url: str, calls: Sequence[tuple[str, list[Any]]], timeout_s: float = 60.0) -> list[Any]:
    """Send JSON-RPC `calls` as ONE batch request; results in call order.

    Raises:
        RuntimeError: any call answered with an error object.
    """
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                       for i, (m, p) in enumerate(calls)]).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        replies = json.loads(resp.read())
    by_id = {r["id"]: r for r in replies}
    out = []
    for i in range(len(calls)):
        reply = by_id[i]
        if reply.get("error"):
            raise RuntimeError(f"{calls[i][0]} failed: {reply['error']}")
        out.append(reply["result"])
    return out


def rpc(url: str, method: str, params: list[Any], timeout_s: float = 60.0) -> Any:
    return rpc_batch(url, [(method, params)], timeout_s)[0]


# ------------------------------------------------------------------ lock flood

LOCK_SELECTOR = "ca3369c6"  # keccak256("lock(address,uint256,bytes32)")[:4], checked below
LOCK_NONCE_SELECTOR = "b5a9096e"  # keccak256("lockNonce()")[:4], checked below


def lock_amount(i: int) -> int:
    """Amount (wei) of the i-th benchmark lock (0-based): distinct per lock."""
    return 10**15 + i


def lock_recipient(i: int) -> bytes:
    """32-byte ledger recipient of the i-th benchmark lock: sha256 of its index."""
    return hashlib.sha256(i.to_bytes(8, "big")).digest()


def _sign_locks(args: tuple[str, str, int, int, int, int]) -> list[str]:
    """Worker: sign locks ``first..first+count-1`` (EIP-1559 type 2), raw ``0x`` hex each."""
    from eth_account import Account

    key, bridge, chain_id, first_nonce, first, count = args
    acct = Account.from_key(key)
    token_word = NATIVE_TOKEN[2:].rjust(64, "0")
    out = []
    for i in range(first, first + count):
        amount = lock_amount(i)
        data = "0x" + LOCK_SELECTOR + token_word + f"{amount:064x}" + lock_recipient(i).hex()
        tx = {"type": 2, "chainId": chain_id, "nonce": first_nonce + i, "to": bridge,
              "value": amount, "data": data, "gas": 150_000,
              "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9}
        out.append("0x" + bytes(acct.sign_transaction(tx).raw_transaction).hex())
    return out


def flood_locks(
    url: str, bridge_checksum: str, n: int, *, key: str, chain_id: int,
    per_block: int = 250, timeout_s: float = 120.0,
) -> None:
    """Lock native coin `n` times on `bridge` (lock i: `lock_amount(i)` wei to
    `lock_recipient(i)`), signed locally by 2 worker processes with explicit nonces and gas,
    sent as batched ``eth_sendRawTransaction`` with automine off, `per_block` per mined block.
    Returns once every lock is included (the bridge's ``lockNonce`` grew by `n`).

    Raises:
        RuntimeError: a send was refused, or not all locks were included within `timeout_s`.
    """
    from eth_account import Account
    from eth_utils import keccak

    assert keccak(text="lock(address,uint256,bytes32)")[:4].hex() == LOCK_SELECTOR
    assert keccak(text="lockNonce()")[:4].hex() == LOCK_NONCE_SELECTOR
    sender = Account.from_key(key).address
    first_nonce = int(rpc(url, "eth_getTransactionCount", [sender, "pending"]), 16)
    workers = min(2, os.cpu_count() or 1)
    share = -(-n // workers)
    jobs = [(key, bridge_checksum, chain_id, first_nonce, w * share, min(share, n - w * share))
            for w in range(workers) if w * share < n]
    with ProcessPoolExecutor(len(jobs), mp_context=get_context("fork")) as pool:
        raws = [raw for part in pool.map(_sign_locks, jobs) for raw in part]
    lock_nonce_call = [{"to": bridge_checksum, "data": "0x" + LOCK_NONCE_SELECTOR}, "latest"]
    before = int(rpc(url, "eth_call", lock_nonce_call), 16)
    rpc(url, "evm_setAutomine", [False])
    try:
        for start in range(0, n, per_block):
            rpc_batch(url, [("eth_sendRawTransaction", [r]) for r in raws[start:start + per_block]])
            rpc(url, "evm_mine", [])
        deadline = time.monotonic() + timeout_s
        while int(rpc(url, "eth_call", lock_nonce_call), 16) < before + n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not all {n} locks included after {timeout_s}s")
            rpc(url, "evm_mine", [])
    finally:
        rpc(url, "evm_setAutomine", [True])
