"""Benchmark: transfer status lookups through the HTTP API under 200 concurrent clients, with
100,000 transfers stored (issue 6; target: p99 under 50 ms).

Builds a relayer database (SQLite file) of N transfers (default 100,000) through the relayer's
own store (`Store.record_lock_events`, then `Store.advance`: every transfer confirmed, half
executed, so each has 2-3 history rows), starts the real ledger (`ferry ledger serve`) and the
real API (`ferry api serve`, one uvicorn process) on that config, then runs the load from a
separate process (aiohttp, one connection per client):

  closed loop   200 clients, each sends its next ``GET /v1/transfers/{id}`` as soon as the last
                answer arrives, for ``--seconds``: the API's throughput; latency is then mostly
                queueing (Little's law: latency = clients / throughput).
  paced         200 clients, each polling one transfer every ``--interval-s`` (a status page or
                a wallet polling; 200 / interval requests/s offered): the latency a user sees.

Ids are drawn at random from all N transfers. Every answer must be 200 with the transfer's id,
else the run FAILs. Printed: requests/s, p50/p95/p99/max latency per phase, errors, the API's
peak RSS. RESULT PASS when the paced phase's p99 is under 50 ms.

Run: .venv/bin/python bench/api_status.py [--transfers 100000] [--clients 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import _support
from _support import bound_runtime, print_table, vm_hwm_mb

CHAIN = "eip155:31337"
BRIDGE = "0x" + "b1" * 20
NATIVE = "0x" + "00" * 20
TARGET_P99_MS = 50.0


def _config(root: Path, ledger_port: int, api_port: int) -> Path:
    from nacl.signing import SigningKey

    members = "".join(
        f'[[validator_set.members]]\nname = "v{i}"\n'
        f'ed25519 = "0x{bytes(SigningKey.generate().verify_key).hex()}"\n'
        f'evm_address = "0x{os.urandom(20).hex()}"\n\n' for i in range(5))
    path = root / "ferry.toml"
    path.write_text(
        'network = "ferry-bench"\n\n'
        f'[ledger]\ndatabase_url = "sqlite:///{root}/ledger.sqlite"\nport = {ledger_port}\n\n'
        f'[relayer]\ndatabase_url = "sqlite:///{root}/relayer.sqlite"\n\n'
        f'[api]\nport = {api_port}\nrate_limit_per_ip = "100000000/minute"\n\n'
        f'[[chains]]\nname = "ethereum"\nchain_id = 31337\nrpc_url = "http://127.0.0.1:9"\n'
        f'bridge_address = "{BRIDGE}"\nblock_time_s = 1\n\n'
        f'[[assets]]\nsymbol = "wETH"\norigin_chain = "{CHAIN}"\norigin_token = "{NATIVE}"\n'
        'decimals = 18\n\n'
        f'[validator_set]\nthreshold = 3\n\n{members}')
    return path


def seed(database_url: str, n: int) -> list[str]:
    """Store `n` lock transfers through the relayer's store; return their event keys."""
    from adapters.base import BlockRef, LockEvent, asset_key
    from relayer.machine import TransferStatus
    from relayer.store import Change, Store

    store = Store.open(database_url)
    assets = {NATIVE: asset_key(CHAIN, NATIVE)}
    keys: list[str] = []
    batch = 5000
    for start in range(0, n, batch):
        events = [LockEvent(
            chain=CHAIN, contract=BRIDGE, nonce=i + 1, token=NATIVE,
            sender="0x" + (i % 997).to_bytes(20, "big").hex(), amount=10**15 + i,
            recipient=(i % 5003).to_bytes(32, "big"), tx_hash="0x" + (i + 1).to_bytes(32, "big").hex(),
            log_index=0, block_number=1 + i // 10, block_hash="0x" + (1 + i // 10).to_bytes(32, "big").hex())
            for i in range(start, min(n, start + batch))]
        last = events[-1]
        store.record_lock_events(CHAIN, events, BlockRef(last.block_number, last.block_hash), assets)
        keys.extend(e.event_id for e in events)
    from sqlalchemy import text

    with store.engine.connect() as conn:
        ids = [row[0] for row in conn.execute(text("SELECT id FROM transfers ORDER BY id"))]
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        store.advance(Change(i, TransferStatus.CONFIRMED, "depth reached") for i in chunk)
        store.advance(Change(i, TransferStatus.EXECUTED, "minted") for i in chunk[::2])
    return keys


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")


async def _client(session: Any, base: str, keys: list[str], stop_at: float,
                  interval_s: float | None, lat: list[float], errors: list[str]) -> None:
    rng = random.Random()
    next_at = time.monotonic() + (rng.random() * interval_s if interval_s else 0)
    while True:
        if interval_s:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval_s
        if time.monotonic() >= stop_at:
            return
        key = rng.choice(keys)
        t0 = time.perf_counter()
        try:
            async with session.get(f"{base}/v1/transfers/{key}") as resp:
                body = await resp.json()
                ok = resp.status == 200 and body.get("event_key") == key
        except Exception as exc:  # noqa: BLE001 - a benchmark counts every failure
            ok = False
            body = repr(exc)
        lat.append(time.perf_counter() - t0)
        if not ok:
            errors.append(str(body)[:200])


def _load(args: tuple[str, list[str], int, float, float | None]) -> dict[str, Any]:
    import aiohttp

    base, keys, clients, seconds, interval_s = args

    async def main() -> dict[str, Any]:
        lat: list[float] = []
        errors: list[str] = []
        conn = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=conn) as session:
            t0 = time.monotonic()
            stop_at = t0 + seconds
            await asyncio.gather(*(_client(session, base, keys, stop_at, interval_s, lat, errors)
                                   for _ in range(clients)))
            wall = time.monotonic() - t0
        return {"lat": lat, "errors": errors, "wall": wall}

    return asyncio.run(main())


def _pct(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(p / 100 * len(sorted_ms)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transfers", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--interval-s", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=1, help="`ferry api serve --workers`")
    a = ap.parse_args()
    bound_runtime(300)
    from adapters.evm.devnet import free_port

    root = Path(tempfile.mkdtemp(prefix="ferry-bench-api-"))
    ledger_port, api_port = free_port(), free_port()
    cfg = _config(root, ledger_port, api_port)
    t0 = time.monotonic()
    keys = seed(f"sqlite:///{root}/relayer.sqlite", a.transfers)
    seed_s = time.monotonic() - t0
    ferry = str(Path(sys.executable).with_name("ferry"))
    logs = open(root / "services.log", "wb")  # noqa: SIM115 - closed in finally
    procs = [subprocess.Popen([ferry, "ledger", "serve", "-c", str(cfg)], stdout=logs, stderr=logs)]
    try:
        _wait_http(f"http://127.0.0.1:{ledger_port}/v1/ledger/status", 60, procs[0])
        procs.append(subprocess.Popen([ferry, "api", "serve", "-c", str(cfg),
                                       "--workers", str(a.workers)], stdout=logs, stderr=logs))
        base = f"http://127.0.0.1:{api_port}"
        _wait_http(f"{base}/healthz", 60, procs[1])
        _load((base, keys[:100], 20, 2.0, None))  # warm-up
        rows = []
        failed = False
        paced_p99 = None
        with get_context("spawn").Pool(1) as pool:
            for name, interval in (("closed loop", None), (f"paced {a.interval_s:g} s", a.interval_s)):
                r = pool.apply(_load, ((base, keys, a.clients, a.seconds, interval),))
                ms = sorted(x * 1000 for x in r["lat"])
                if r["errors"]:
                    failed = True
                    print(f"{name}: {len(r['errors'])} errors, first: {r['errors'][0]}")
                p99 = _pct(ms, 99)
                if interval is not None:
                    paced_p99 = p99
                rows.append([name, a.clients, len(ms), f"{len(ms) / r['wall']:.0f}",
                             f"{_pct(ms, 50):.1f}", f"{_pct(ms, 95):.1f}", f"{p99:.1f}",
                             f"{ms[-1]:.1f}", len(r["errors"])])
        api_rss = vm_hwm_mb(procs[1].pid)  # with --workers: the supervisor only
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)
        logs.close()
    print(f"{a.transfers} transfers stored (seeded through relayer.store in {seed_s:.1f} s), "
          f"GET /v1/transfers/{{id}} on random ids, {a.workers} uvicorn worker(s), load from another "
          "process")
    print_table(["phase", "clients", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                 "errors"], rows)
    print(f"API peak RSS (VmHWM), MB: {api_rss:.0f}")
    if failed:
        print("RESULT api_status: FAIL (errors)")
        return 1
    verdict = "PASS" if paced_p99 is not None and paced_p99 < TARGET_P99_MS else "BELOW TARGET"
    print(f"RESULT api_status: {verdict} (paced p99 {paced_p99:.1f} ms, target < {TARGET_P99_MS:g} ms)")
    return 0


if __name__ == "__main__":
    _ = _support
    sys.exit(_support.run_main("api_status", main))
