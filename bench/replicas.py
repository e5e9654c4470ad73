"""Benchmark: lock -> mint throughput with one and with two relayer replicas on PostgreSQL.

Starts one PostgreSQL server (tests/pg.py: Debian's binaries, a throwaway cluster), then, once
per configuration, a fresh local Ferry network as processes (`relayer.cli.devnet.Devnet`: two
anvil chains, the ledger on SQLite, five validators with threshold 3, the API) whose relayer
database is a fresh PostgreSQL database:

- one replica: ``relayer`` alone;
- two replicas: ``relayer`` and ``relayer-2`` on the same database; singleton jobs (chain
  watchers, burns, accountant...) run on whichever replica holds their lease, both replicas run
  the mint job over disjoint claimed pages (``SELECT ... FOR UPDATE SKIP LOCKED``).

Each network starts empty, so neither run inherits the other's transfers, attestations or
validator risk records. In each, `--locks` native-coin locks to a fresh ledger recipient go
into ONE Ethereum block with the confirmation depth mined on top at once (bench/lock_to_mint.py's
`send_locks_final_at_once`); the time runs from that instant until the ledger shows all of them
minted. Prints transfers/s of both, the ratio two / one, the mints each replica executed, and
the CPU seconds each process (PostgreSQL included) used in each timed window. Issue 7 sets no
target: ``RESULT replicas: INFO`` (exit 0); FAIL (exit 1) if a run did not mint exactly what was
locked.

Run: `.venv/bin/python bench/replicas.py [--locks 5000] [--keep]` (about 4-6 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from _support import bound_runtime, print_table, run_main
from lock_to_mint import UNIT, cpu_by_process, send_locks_final_at_once
from nacl.signing import SigningKey

from adapters.base import NATIVE_TOKEN, asset_key
from ledger.client import LedgerClient
from relayer.cli.devnet import Devnet
from tests.pg import PostgresServer
from validators.keystore import KdfParams

LIMIT_S = 900
MINT_TIMEOUT_S = 300
EXECUTED = 'ferry_relayer_transfers_executed_total{chain="ferry:ledger"}'
MINT_TIMED_OUT = "job=mint chain=ferry:ledger retryable: POST /mints"


@dataclass
class Run:
    """One timed run: seconds from final to all minted, the amount minted, CPU seconds by
    process, mints each replica executed, and mint calls to the ledger that timed out."""

    seconds: float
    minted: int
    cpu_s: dict[str, float]
    mints: dict[str, float]
    mint_timeouts: int


def mints_by_replica(net: Devnet) -> dict[str, float]:
    """Each replica's count of mints executed so far (its own ``/metrics``)."""
    assert net.info is not None
    out = {}
    for name, urls in net.info.relayers.items():
        text = httpx.get(urls["metrics_url"], timeout=5).text
        out[name] = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith(EXECUTED))
    return out


def postgres_cpu(pg: PostgresServer) -> dict[int, float]:
    """pid -> user + system CPU seconds of the PostgreSQL server and each of its backends."""
    assert pg.proc is not None
    root = psutil.Process(pg.proc.pid)
    out = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass  # a backend that just exited
    return out


def cpu_seconds(net: Devnet, pg: PostgresServer, since: dict[str, float] | None = None,
                pg_since: dict[int, float] | None = None
                ) -> tuple[dict[str, float], dict[int, float]]:
    """CPU seconds by process (`lock_to_mint.cpu_by_process` and ``postgresql``: the server
    and its backends) and by PostgreSQL pid; with `since` / `pg_since` (an earlier reading),
    what was used after it. A backend that exited in between is not counted."""
    out, pg_now = cpu_by_process(net), postgres_cpu(pg)
    if since is None or pg_since is None:
        return out, pg_now
    used = {n: out[n] - since.get(n, 0.0) for n in out}
    used["postgresql"] = sum(c - pg_since.get(pid, 0.0) for pid, c in pg_now.items())
    return used, pg_now


def timed_run(replicas: int, pg: PostgresServer, root: Path, args: argparse.Namespace) -> Run:
    """Start a fresh network with `replicas` relayer replicas on a fresh database, lock
    ``args.locks`` x `UNIT` wei to a fresh recipient final at one instant, wait until all are
    minted, stop the network."""
    net = Devnet(root / f"devnet-{replicas}", block_time_s=args.block_time_s,
                 confirmation_depth=2, poll_interval_s=args.poll_s,
                 database_url=pg.create_database(f"relayer_{replicas}"),
                 relayer_replicas=replicas, solana=False,
                 kdf=KdfParams(time_cost=1, memory_cost_kib=8 * 1024, parallelism=1))
    try:
        net.start_chains()
        info = net.deploy()
        net.start_services()
        ledger = LedgerClient(info.ledger_url)
        time.sleep(2.0)  # every replica running its jobs before the clock starts
        print(f"{replicas} replica(s): {args.locks} locks in one block ...", flush=True)
        recipient = bytes(SigningKey.generate().verify_key)
        weth = asset_key("eip155:31337", NATIVE_TOKEN)
        send_locks_final_at_once(info.rpc["ethereum"], info.bridges["ethereum"], args.locks,
                                 recipient, net.depth, args.block_time_s)
        t_final = time.perf_counter()
        cpu_before, pg_before = cpu_seconds(net, pg)
        expected = args.locks * UNIT
        deadline = time.monotonic() + MINT_TIMEOUT_S
        while ledger.account(recipient).balances.get(weth, 0) < expected:
            if time.monotonic() > deadline:
                raise SystemExit(f"not all locks minted within {MINT_TIMEOUT_S} s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t_final
        cpu_used, _ = cpu_seconds(net, pg, cpu_before, pg_before)
        time.sleep(1.0)  # a double mint would show within a few polls
        timeouts = sum(net.services[n].log_path.read_text(errors="replace").count(MINT_TIMED_OUT)
                       for n in net.relayer_names)
        return Run(elapsed, ledger.account(recipient).balances.get(weth, 0), cpu_used,
                   mints_by_replica(net), timeouts)
    finally:
        net.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--locks", type=int, default=5_000)
    parser.add_argument("--poll-s", type=float, default=0.1,
                        help="poll interval of the relayer's jobs and the validators")
    parser.add_argument("--block-time-s", type=float, default=1.0, help="anvil block time")
    parser.add_argument("--keep", action="store_true",
                        help="keep the networks' directories (logs, configs)")
    args = parser.parse_args()
    bound_runtime(LIMIT_S)
    root = Path(tempfile.mkdtemp(prefix="ferry-bench-replicas-"))
    pg = PostgresServer(root / "postgres")
    try:
        pg.start()
        one = timed_run(1, pg, root, args)
        two = timed_run(2, pg, root, args)
    finally:
        pg.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    expected = args.locks * UNIT
    tps_one, tps_two = args.locks / one.seconds, args.locks / two.seconds
    print(f"\nlock -> mint, {args.locks} locks, 5 validators (threshold 3), relayer DB on "
          f"PostgreSQL, ledger on SQLite, {os.cpu_count()} cores, polling every {args.poll_s} s")
    print_table(["replicas", "final -> all minted s", "transfers/s", "minted exactly",
                 "mints by replica", "mint calls timed out"],
                [[n, f"{r.seconds:.2f}", f"{tps:,.0f}", r.minted == expected,
                  " ".join(f"{k}={v:.0f}" for k, v in sorted(r.mints.items())), r.mint_timeouts]
                 for n, r, tps in ((1, one, tps_one), (2, two, tps_two))])
    print(f"ratio two / one replicas: {tps_two / tps_one:.2f}")
    print("\nCPU seconds used in each timed window, by process:")
    names = sorted(set(one.cpu_s) | set(two.cpu_s), key=lambda n: -two.cpu_s.get(n, 0.0))
    print_table(["process", "1 replica", "2 replicas"],
                [[n, f"{one.cpu_s.get(n, 0.0):.2f}", f"{two.cpu_s.get(n, 0.0):.2f}"]
                 for n in names])
    ok = one.minted == two.minted == expected
    print(f"RESULT replicas: {'INFO' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_main("replicas", main))
