"""Benchmark: end-to-end lock -> mint throughput with five validators (threshold 3).

Starts a whole local Ferry network as separate processes (two anvil chains, the ledger, the
relayer and five validators, exactly as `ferry demo` does), puts 2,000 native-coin locks to the
Ethereum bridge into one block, mines the confirmation depth on top at once (so every lock
becomes final at the same instant and none can be attested earlier), and times from that
instant to the moment the ledger has minted all of them. Prints transfers/s next to this
machine's own Ed25519 sign and verify rates, measured in the same run.

Target: at least 1,000 transfers/s. Run: `.venv/bin/python bench/lock_to_mint.py [--locks N]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from eth_account import Account
from nacl.signing import SigningKey
from web3 import Web3

from adapters.base import NATIVE_TOKEN, asset_key
from adapters.evm import devnet as evm
from contracts import load_artifact
from ledger.client import LedgerClient
from relayer.cli.devnet import Devnet
from validators.keystore import KdfParams

TARGET_TPS = 1_000
UNIT = 10**15


def ed25519_rates(n: int = 5_000) -> tuple[float, float]:
    key = SigningKey.generate()
    msgs = [os.urandom(200) for _ in range(n)]
    t = time.perf_counter()
    sigs = [key.sign(m).signature for m in msgs]
    sign_rate = n / (time.perf_counter() - t)
    vk = key.verify_key
    t = time.perf_counter()
    for m, s in zip(msgs, sigs, strict=True):
        vk.verify(m, s)
    return sign_rate, n / (time.perf_counter() - t)


def cpu_by_process(net: Devnet) -> dict[str, float]:
    """User + system CPU seconds so far of each service process and both anvil nodes."""
    pids = {n: p.pid for n, p in net.services.items()}
    pids.update({f"anvil-{n}": node.pid for n, node in net.nodes.items() if node.pid})
    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


def rpc(w3: Web3, method: str, params: list) -> object:
    reply = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if reply.get("error"):
        raise SystemExit(f"{method} failed: {reply['error']}")
    return reply.get("result")


def send_locks_final_at_once(rpc_url: str, bridge_address: str, n: int, recipient: bytes,
                             depth: int, block_time_s: float) -> None:
    """Put `n` locks into ONE block and mine `depth` blocks on top at once, so every lock
    becomes final at the same instant and nothing could be attested earlier: the timed window
    then holds the whole pipeline. Mining is paused meanwhile and resumed afterwards."""
    w3 = evm.connect(rpc_url)
    sender = Account.create()
    evm.fund(w3, sender.address, 10**24)
    bridge = w3.eth.contract(address=Web3.to_checksum_address(bridge_address),
                             abi=load_artifact("Bridge").abi)
    data = bridge.encode_abi("lock", [Web3.to_checksum_address(NATIVE_TOKEN), UNIT, recipient])
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    raws = []
    for nonce in range(n):
        tx = {"to": bridge.address, "value": UNIT, "data": data, "gas": 120_000,
              "maxFeePerGas": base * 4 + 2 * 10**9, "maxPriorityFeePerGas": 10**9,
              "nonce": nonce, "chainId": w3.eth.chain_id, "type": 2}
        raws.append(Account.sign_transaction(tx, sender.key).raw_transaction.to_0x_hex())
    rpc(w3, "evm_setIntervalMining", [0])
    rpc(w3, "evm_setAutomine", [False])
    rpc(w3, "evm_setBlockGasLimit", [hex(130_000 * n + 1_000_000)])
    with httpx.Client(timeout=60) as client:
        for i in range(0, n, 250):
            batch = [{"jsonrpc": "2.0", "id": j, "method": "eth_sendRawTransaction",
                      "params": [raw]} for j, raw in enumerate(raws[i:i + 250])]
            for reply in client.post(rpc_url, json=batch).json():
                if "error" in reply:
                    raise SystemExit(f"send failed: {reply['error']}")
    rpc(w3, "evm_mine", [])
    block = w3.eth.get_block("latest")
    if len(block["transactions"]) != n:
        raise SystemExit(f"expected {n} locks in one block, got {len(block['transactions'])}")
    rpc(w3, "anvil_mine", [hex(depth)])  # every lock is final from this instant
    rpc(w3, "evm_setIntervalMining", [max(1, round(block_time_s))])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--locks", type=int, default=2_000)
    parser.add_argument("--poll-s", type=float, default=0.1,
                        help="poll interval of the relayer's jobs and the validators")
    parser.add_argument("--block-time-s", type=float, default=1.0, help="anvil block time")
    args = parser.parse_args()
    sign_rate, verify_rate = ed25519_rates()
    root = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    net = Devnet(root, block_time_s=args.block_time_s, confirmation_depth=2,
                 poll_interval_s=args.poll_s, solana=False,
                 kdf=KdfParams(time_cost=1, memory_cost_kib=8 * 1024, parallelism=1))
    try:
        net.start_chains()
        info = net.deploy()
        net.start_services()
        recipient = bytes(SigningKey.generate().verify_key)
        weth = asset_key("eip155:31337", NATIVE_TOKEN)
        ledger = LedgerClient(info.ledger_url)
        print(f"sending {args.locks} locks into one block ...", flush=True)
        send_locks_final_at_once(info.rpc["ethereum"], info.bridges["ethereum"], args.locks,
                                 recipient, net.depth, args.block_time_s)
        t_final = time.perf_counter()
        cpu_before = cpu_by_process(net)
        if os.environ.get("FERRY_BENCH_MARK"):  # lets an outside profiler time the window
            Path(os.environ["FERRY_BENCH_MARK"]).touch()
        expected = args.locks * UNIT
        deadline = time.monotonic() + 300
        while ledger.account(recipient).balances.get(weth, 0) < expected:
            if time.monotonic() > deadline:
                raise SystemExit("not all locks minted within 300 s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t_final
        cpu_after = cpu_by_process(net)
        minted = ledger.account(recipient).balances.get(weth, 0)
    finally:
        net.stop()
        shutil.rmtree(root, ignore_errors=True)
    tps = args.locks / elapsed
    print("\nlock -> mint, 5 validators (threshold 3), relayer + ledger on SQLite, "
          f"{os.cpu_count()} cores, polling every {args.poll_s} s")
    print(f"  locks                      {args.locks}")
    print(f"  final -> all minted        {elapsed:.2f} s")
    print(f"  throughput                 {tps:,.0f} transfers/s   (target >= {TARGET_TPS:,})")
    print(f"  minted exactly             {minted == expected}")
    print(f"  Ed25519 sign (this host)   {sign_rate:,.0f} /s")
    print(f"  Ed25519 verify (this host) {verify_rate:,.0f} /s")
    print("  CPU seconds used in that window, by process:")
    for name in sorted(cpu_after, key=lambda n: -(cpu_after[n] - cpu_before.get(n, 0.0))):
        print(f"    {name:14s} {cpu_after[name] - cpu_before.get(name, 0.0):6.2f}")
    ok = tps >= TARGET_TPS and minted == expected
    print(f"  result                     {'PASS' if ok else 'BELOW TARGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
