"""Benchmark: the relayer's peak resident memory (RSS) with 100,000 stored transfers.

What runs (all real Ferry code, loopback only, in a temp dir removed at the end):
  1. an anvil (`AnvilNode`) with the real `Bridge` deployed and 2,000 mined blocks;
  2. a BUILD subprocess: the relayer store (`Store.open("sqlite:///...")`) filled with 90,000
     locks (`record_lock_events`, batches of 1,000 `LockEvent`s in real blocks of that anvil,
     50 per block) and 10,000 burns (`record_burns`), statuses spread with `Store.advance`
     (`Change`), and real Ed25519 lock attestations (3 of 4 validators) for the confirmed and
     attested locks (`add_attestations`);
  3. the real ledger service (`Ledger.open` + `create_ledger_app` under uvicorn) with the same
     validator set, bridge and asset, so mints are really verified and written;
  4. an IDLE child: imports what `ferry relayer run` imports, nothing else;
  5. a JOBS child: builds the relayer as `relayer.cli.wiring.build_relayer` does (`Store.open`,
     `EvmAdapter`, `LedgerClient`, `Engine`, `AttestationInbox`, the FastAPI app), then runs
     3 rounds of `Engine.tick()` (watch_chain, confirm_chain, mint, watch_ledger, release),
     `Engine.refresh_gauges`, `Store.counts_by_status` and the first 500-row `Store.transfers`
     page of every (status, kind); then, as a stress, lists every row of every status with
     `Store.transfers(status, limit=<count>)` twice (the Store has no cursor/offset parameter, so
     that is the only way to walk all rows through it).

Each child reports its own peak: `resource.getrusage(RUSAGE_SELF).ru_maxrss` (KiB on Linux),
VmHWM from /proc/self/status and the maximum of psutil samples taken every 5 ms; MB = 2**20 B.
The orchestrating parent stays small on purpose (Linux starts a child's ru_maxrss from the
parent's high-water mark at exec). Target: JOBS child peak (ru_maxrss) < 300 MB.
Bounded to 175 s; exit status 1 on FAIL or error.

Run: .venv/bin/python bench/relayer_rss.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _support
from _support import REPO, bound_runtime, print_table, rpc, rpc_batch

TARGET_MB = 300.0
CHAIN_ID = 31337
CHAIN = f"eip155:{CHAIN_ID}"
NETWORK = "bench"
NATIVE = "0x" + "00" * 20
ASSET = f"{CHAIN}/{NATIVE}"
BLOCKS = 2_000
LOCKS_PER_BLOCK = 50
N_LOCKS, N_BURNS = 90_000, 10_000
ROUNDS, WALKS = 3, 2
CHILD_TIMEOUT_S = 90

# Status spread (by transfer id; locks are ids 1..90000, burns 90001..100000).
LOCK_SPREAD = [  # (count, path of statuses after `observed`)
    (20_000, ["transfer.confirmed", "transfer.executed"]),
    (12_000, ["transfer.confirmed"]),
    (3_000, ["transfer.confirmed", "transfer.attested"]),
    (1_500, ["transfer.held"]),
    (1_500, ["transfer.dropped"]),
    (52_000, []),  # observed, in blocks already at confirmation depth
]
BURN_SPREAD = [  # after `confirmed`
    (2_000, ["transfer.attested", "transfer.submitted", "transfer.executed"]),
    (500, ["transfer.attested"]),
    (500, ["transfer.held"]),
    (7_000, []),
]


def mb(n_bytes: float) -> float:
    return n_bytes / 2**20


# ============================================================================ memory probes


def vm_hwm_bytes() -> int:
    """Peak RSS of this process's own address space (VmHWM), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def ru_maxrss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class Sampler:
    """Background thread: psutil RSS every `period_s` seconds, keeps the maximum."""

    def __init__(self, period_s: float = 0.005) -> None:
        import threading

        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period_s,), daemon=True)
        self._thread.start()

    def _run(self, period_s: float) -> None:
        while not self._stop.wait(period_s):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def rss(self) -> int:
        return int(self._proc.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())
        return self.peak


RELAYER_MODULES = (  # what the `ferry relayer run` process imports (CLI, wiring, service, ...)
    "relayer.cli", "relayer.cli.wiring", "relayer.service", "relayer.engine", "relayer.store",
    "relayer.inbox", "api.relayer", "adapters.evm.adapter", "ledger.client", "ledger.types",
)


def import_relayer() -> None:
    import importlib

    for name in RELAYER_MODULES:
        importlib.import_module(name)


# ============================================================================ child modes


def child_idle(p: dict[str, Any]) -> dict[str, Any]:
    sampler = Sampler()
    import_relayer()
    return {"phases": [["imports", ru_maxrss_bytes(), vm_hwm_bytes(), sampler.rss()]],
            "psutil_peak": sampler.stop()}


def child_jobs(p: dict[str, Any]) -> dict[str, Any]:
    sampler = Sampler()
    phases: list[list[Any]] = []

    def phase(name: str) -> None:
        phases.append([name, ru_maxrss_bytes(), vm_hwm_bytes(), sampler.rss()])

    import_relayer()
    phase("imports")
    from adapters.evm.adapter import EvmAdapter
    from adapters.evm.config import EvmChainConfig
    from api.relayer import create_relayer_app
    from ledger.client import LedgerClient
    from ledger.types import MintRequest
    from relayer.engine import ChainPlan, Engine
    from relayer.inbox import AttestationInbox
    from relayer.machine import TransferKind, TransferStatus
    from relayer.store import Store

    t0 = time.perf_counter()
    store = Store.open(p["relayer_db"])
    config = EvmChainConfig(name="bench", chain_id=CHAIN_ID, rpc_url=p["rpc_url"],
                            bridge_address=p["bridge"], confirmation_depth=2)
    adapter = EvmAdapter(config)
    adapter.verify_chain()
    plans = {CHAIN: ChainPlan(adapter=adapter, start_block=0, max_block_range=2000,
                              assets={NATIVE: ASSET})}
    engine = Engine(store, plans, LedgerClient(p["ledger_url"]), NETWORK,
                    mint_request=MintRequest, batch_size=500)
    inbox = AttestationInbox(store, NETWORK, engine.validator_set, {CHAIN: adapter},
                             {c: cache.get for c, cache in engine.bridge_sets.items()},
                             engine.metrics)
    app = create_relayer_app(store, inbox)
    assert app is not None
    phase("relayer built")
    print(f"  jobs child: relayer built in {time.perf_counter() - t0:.1f}s; "
          f"counts {store.counts_by_status()}", flush=True)

    timings: dict[str, float] = {}

    def run(name: str, fn: Any) -> Any:
        start = time.perf_counter()
        out = fn()
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
        return out

    for rnd in range(ROUNDS):
        run("Engine.watch_chain", lambda: engine.watch_chain(CHAIN))
        confirmed = run("Engine.confirm_chain", lambda: engine.confirm_chain(CHAIN))
        minted = run("Engine.mint", engine.mint)
        run("Engine.watch_ledger", engine.watch_ledger)
        run("Engine.release", lambda: engine.release(CHAIN))
        run("Engine.refresh_gauges", engine.refresh_gauges)
        counts = run("Store.counts_by_status", store.counts_by_status)
        paged = 0
        for status in TransferStatus:
            for kind in TransferKind:
                paged += len(run("Store.transfers pages (500)", lambda s=status, k=kind:
                                 store.transfers(s, kind=k, limit=500)))
        print(f"  jobs child: round {rnd + 1}: confirmed {confirmed}, minted {minted}, "
              f"first pages {paged} rows, counts {counts}", flush=True)
        phase(f"jobs round {rnd + 1}")
    jobs_peak = sampler.peak
    for walk in range(WALKS):
        total = 0
        for status, n in store.counts_by_status().items():
            rows = run("Store.transfers full walk", lambda s=status, n=n:
                       store.transfers(TransferStatus(s), limit=max(n, 1)))
            total += len(rows)
            del rows
        print(f"  jobs child: full walk {walk + 1}: {total} rows", flush=True)
        phase(f"full walk {walk + 1}")
    return {"phases": phases, "psutil_peak": sampler.stop(), "psutil_jobs_peak": jobs_peak,
            "timings": timings}


def child_build(p: dict[str, Any]) -> dict[str, Any]:
    """Fill the relayer store through its public API; print timings."""
    import hashlib

    from nacl.signing import SigningKey

    from adapters.base import BlockRef, LockEvent
    from relayer.store import Change, NewBurn, Store
    from validators.attestation import lock_attestation_message

    timings: dict[str, float] = {}
    t = time.perf_counter()
    store = Store.open(p["relayer_db"])
    blocks = rpc_batch(p["rpc_url"], [("eth_getBlockByNumber", [hex(b), False])
                                      for b in range(1, BLOCKS + 1)])
    hashes = {int(b["number"], 16): b["hash"].lower() for b in blocks}
    del blocks
    bridge = p["bridge"]

    def lock_event(i: int) -> LockEvent:
        block = 1 + i // LOCKS_PER_BLOCK
        return LockEvent(
            chain=CHAIN, contract=bridge, nonce=i + 1, token=NATIVE,
            sender="0x" + hashlib.sha256(b"sender%d" % (i % 997)).hexdigest()[:40],
            amount=10**18 + i * 10**9 + (2**70 if i % 10 == 0 else 0),
            recipient=hashlib.sha256(b"recipient%d" % i).digest(),
            tx_hash="0x" + hashlib.sha256(b"tx%d" % i).hexdigest(),
            log_index=i % LOCKS_PER_BLOCK, block_number=block, block_hash=hashes[block])

    for start in range(0, N_LOCKS, 1000):
        events = [lock_event(i) for i in range(start, start + 1000)]
        last = events[-1]
        store.record_lock_events(CHAIN, events, BlockRef(last.block_number, last.block_hash),
                                 {NATIVE: ASSET})
    timings["record_lock_events (90 x 1,000)"] = time.perf_counter() - t

    t = time.perf_counter()
    for start in range(0, N_BURNS, 1000):
        burns = [NewBurn(
            burn_id="0x" + hashlib.sha256(b"burn%d" % i).hexdigest(), seq=i + 1,
            dest_chain=CHAIN, token=NATIVE, asset=ASSET, amount=10**17 + i,
            account="0x" + hashlib.sha256(b"account%d" % (i % 101)).hexdigest(),
            dest_address="0x" + hashlib.sha256(b"dest%d" % i).hexdigest()[:40])
            for i in range(start, start + 1000)]
        store.record_burns(burns, ledger_cursor=start + 1000)
    timings["record_burns (10 x 1,000)"] = time.perf_counter() - t

    # Attestations (real Ed25519 signatures) for the confirmed and attested locks.
    t = time.perf_counter()
    signers = [(SigningKey(bytes.fromhex(v["seed"])), v["ed25519"]) for v in p["validators"]]
    first_att = LOCK_SPREAD[0][0]
    n_att = LOCK_SPREAD[1][0] + LOCK_SPREAD[2][0]
    rows = []
    for i in range(first_att, first_att + n_att):
        e = lock_event(i)
        msg = lock_attestation_message(NETWORK, e, 1)
        digest = "0x" + hashlib.sha256(msg).hexdigest()
        for key, pub in signers[: p["threshold"]]:
            rows.append({"kind": "lock", "event_key": e.event_id, "epoch": 1, "validator": pub,
                         "signature": "0x" + key.sign(msg).signature.hex(),
                         "message_hash": digest})
    for start in range(0, len(rows), 5000):
        store.add_attestations(rows[start:start + 5000])
    timings[f"sign + add_attestations ({len(rows):,})"] = time.perf_counter() - t
    del rows

    # Status spread, through Store.advance only.
    t = time.perf_counter()
    n_changes = 0
    seq = 0

    def moves(first_id: int, spread: list[tuple[int, list[str]]]) -> list[list[Change]]:
        nonlocal seq
        from relayer.machine import TransferStatus as S

        steps: list[list[Change]] = [[], [], []]
        tid = first_id
        for count, path in spread:
            for _ in range(count):
                for depth, to in enumerate(path):
                    fields: dict[str, Any] = {}
                    if to == S.EXECUTED.value and first_id == 1:
                        seq += 1
                        fields = {"ledger_seq": seq}
                    elif to == S.SUBMITTED.value:
                        fields = {"dest_tx_hash": "0x" + hashlib.sha256(b"rel%d" % tid).hexdigest(),
                                  "dest_raw_tx": os.urandom(620).hex(), "dest_sender_nonce": tid}
                    steps[depth].append(Change(tid, S(to), f"bench: {to}", fields))
                tid += 1
        return steps

    for steps in (moves(1, LOCK_SPREAD), moves(N_LOCKS + 1, BURN_SPREAD)):
        for step in steps:
            for start in range(0, len(step), 2000):
                n_changes += store.advance(step[start:start + 2000])
    elapsed = time.perf_counter() - t
    timings[f"Store.advance ({n_changes:,} changes)"] = elapsed
    return {"timings": timings, "counts": store.counts_by_status(),
            "advance_us_per_change": elapsed / max(n_changes, 1) * 1e6,
            "db_mb": mb(Path(p["relayer_db"].removeprefix("sqlite:///")).stat().st_size)}


def serve_ledger(p: dict[str, Any]) -> None:
    import uvicorn

    from api.ledger import create_ledger_app
    from ledger.config import AssetConfig, LedgerGenesis
    from ledger.service import Ledger
    from validators.attestation import ValidatorInfo, ValidatorSet

    vset = ValidatorSet(epoch=1, threshold=p["threshold"], members=tuple(
        ValidatorInfo(bytes.fromhex(v["ed25519"][2:]), v["evm"]) for v in p["validators"]))
    genesis = LedgerGenesis(validator_set=vset, bridges={CHAIN: p["bridge"]}, assets=[
        AssetConfig(symbol="wETH", origin_chain=CHAIN, origin_token=NATIVE, decimals=18)])
    ledger = Ledger.open(p["ledger_db"], NETWORK, genesis)
    uvicorn.run(create_ledger_app(ledger), host="127.0.0.1", port=p["ledger_port"],
                log_level="warning")


# ============================================================================ orchestration


def run_child(mode: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run this script in `mode` as a child; echo its output; return its RESULT_JSON."""
    cmd = [sys.executable, __file__, "--mode", mode, "--params", json.dumps(params)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=CHILD_TIMEOUT_S)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT_JSON "):
            result = json.loads(line.removeprefix("RESULT_JSON "))
        else:
            print(line)
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"{mode} child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return result


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"ledger exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"ledger not ready after {timeout_s}s")
        time.sleep(0.1)


def orchestrate() -> int:
    from adapters.evm.devnet import ANVIL_DEV_KEY, AnvilNode, connect, deploy_bridge, free_port

    bound_runtime(175)
    workdir = Path(tempfile.mkdtemp(prefix="ferry-bench-rss-"))
    ledger_proc: subprocess.Popen[bytes] | None = None
    (workdir / "anvil").mkdir()
    try:
        with AnvilNode(CHAIN_ID, workdir=workdir / "anvil") as node:
            t = time.perf_counter()
            validators = []
            for k in range(4):
                from eth_account import Account
                from nacl.signing import SigningKey

                seed = bytes([k + 1]) * 32
                validators.append({
                    "seed": seed.hex(),
                    "ed25519": "0x" + SigningKey(seed).verify_key.encode().hex(),
                    "evm": Account.from_key(bytes([k + 101]) * 32).address.lower()})
            validators.sort(key=lambda v: v["evm"])
            w3 = connect(node.rpc_url)
            bridge = deploy_bridge(w3, [v["evm"] for v in validators], 3, [NATIVE],
                                   sender_key=ANVIL_DEV_KEY)
            rpc(node.rpc_url, "anvil_mine", [hex(BLOCKS)])
            params = {"rpc_url": node.rpc_url, "bridge": bridge, "validators": validators,
                      "threshold": 3, "relayer_db": f"sqlite:///{workdir}/relayer.sqlite",
                      "ledger_db": f"sqlite:///{workdir}/ledger.sqlite",
                      "ledger_port": free_port()}
            params["ledger_url"] = f"http://127.0.0.1:{params['ledger_port']}"
            print(f"setup: anvil {node.rpc_url}, bridge {bridge}, head "
                  f"{w3.eth.block_number} ({time.perf_counter() - t:.1f}s)", flush=True)

            with open(workdir / "ledger.log", "wb") as log:
                ledger_proc = subprocess.Popen(
                    [sys.executable, __file__, "--mode", "ledger", "--params", json.dumps(params)],
                    cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            t = time.perf_counter()
            built = run_child("build", params)
            print(f"build: relayer store {built['db_mb']:.1f} MB on disk, counts "
                  f"{built['counts']}")
            for name, secs in built["timings"].items():
                print(f"  {name}: {secs:.1f}s")
            print(f"  Store.advance: {built['advance_us_per_change']:.0f} us per change")
            wait_http(params["ledger_url"] + "/v1/ledger/status", ledger_proc, 30.0)

            idle = run_child("idle", params)
            jobs = run_child("jobs", params)
    except BaseException:
        log_path = workdir / "ledger.log"
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        if tail.strip():
            print(f"ledger log tail:\n{tail}", file=sys.stderr)
        raise
    finally:
        if ledger_proc is not None and ledger_proc.poll() is None:
            ledger_proc.terminate()
            try:
                ledger_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                ledger_proc.kill()
                ledger_proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\njobs child timings (total over {ROUNDS} rounds / {WALKS} walks):")
    for name, secs in jobs["timings"].items():
        print(f"  {name}: {secs:.2f}s")
    print(f"\nRSS in MB (2**20 bytes); orchestrator's own ru_maxrss {mb(ru_maxrss_bytes()):.0f} MB")
    rows = []
    for who, res in (("idle child", idle), ("jobs child", jobs)):
        for name, maxrss, hwm, rss in res["phases"]:
            rows.append([f"{who}: after {name}", f"{mb(rss):.0f}", f"{mb(maxrss):.0f}",
                         f"{mb(hwm):.0f}"])
    print_table(["process / phase", "RSS now", "ru_maxrss", "VmHWM"], rows)
    jobs_phases = [ph for ph in jobs["phases"] if not ph[0].startswith("full walk")]
    relayer_peak = max(mb(ph[1]) for ph in jobs_phases)
    walk_peak = max(mb(ph[1]) for ph in jobs["phases"])
    print(f"\nidle relayer (imports only): peak {mb(idle['phases'][-1][1]):.0f} MB "
          f"(psutil max {mb(idle['psutil_peak']):.0f} MB)")
    print(f"relayer jobs with {N_LOCKS + N_BURNS:,} transfers: peak {relayer_peak:.0f} MB "
          f"(psutil max {mb(jobs['psutil_jobs_peak']):.0f} MB), target < {TARGET_MB:.0f} MB")
    print(f"stress, full listing of every row via Store.transfers: peak {walk_peak:.0f} MB "
          f"(psutil max {mb(jobs['psutil_peak']):.0f} MB) "
          f"{'under' if walk_peak < TARGET_MB else 'OVER'} {TARGET_MB:.0f} MB (not the target)")
    ok = relayer_peak < TARGET_MB
    print(f"RESULT relayer_rss: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["build", "idle", "jobs", "ledger"])
    parser.add_argument("--params", default="{}")
    args = parser.parse_args()
    if args.mode is None:
        return orchestrate()
    params = json.loads(args.params)
    if args.mode == "ledger":
        serve_ledger(params)
        return 0
    fn = {"build": child_build, "idle": child_idle, "jobs": child_jobs}[args.mode]
    print("RESULT_JSON " + json.dumps(fn(params)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_support.run_main("relayer_rss", main))
