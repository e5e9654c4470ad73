"""Benchmark: 500 concurrent HTLC swaps through one `SwapEngine` on the devnets (issue 5).

Starts its own btcd (regtest) with a matured faucet and its own anvil (automine), deploys the
HTLC contract, and builds the relayer as the tests do (tests/integration/swap_world.py): a
`SwapStore` on a sqlite file, `BitcoinLeg` + `EvmLeg` drivers under the relayer's keys, one
`SwapEngine`. Then, for N swaps at once (default 500, of which 100 ETH->BTC):

  BTC->ETH  (N - K) the engine offers; the users' BTC locks are paid by the faucet to
            the N HTLC scripts (fan-out: 100 HTLC outputs per transaction, one block); the
            engine finds each lock, waits for depth 2, locks ETH; the users redeem their ETH
            (signed locally, batched, one block); the engine reads each secret and redeems
            the user's BTC; until all N are ``swap.redeemed``.
  ETH->BTC  (``--eth-btc K``, default 100) the users lock ETH (funded from anvil's dev key,
            signed locally, batched); the engine locks BTC from a wallet of fanned-out coins;
            the users redeem their BTC (the secret in the witness); the engine redeems ETH.

The loop: ``engine.run()`` (one pass over every open swap), then the simulated users act on
what is on chain, then one block on each chain; until every swap is terminal. Measured:

  swaps/min       N / wall seconds from the first offer to the last ``swap.redeemed``
                  (users' actions and mining included: that is the system's rate)
  relayer CPU     `time.process_time` deltas around the engine's calls only (offers and
                  ``run`` passes; not the simulated users, not btcd/anvil) per swap
  pass seconds    wall seconds of each ``run`` pass (the slowest shows the per-pass cost)
  peak RSS        VmHWM of this process (engine + simulated users), btcd and anvil

Issue 5 sets no numeric target: ``RESULT swaps: INFO`` (exit 0), FAIL (exit 1) if a swap does
not end ``swap.redeemed``. Bounded to 230 s.

Run: .venv/bin/python bench/swaps.py [--swaps 500] [--eth-btc 100] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _support
from _support import bound_runtime, print_table, rpc, rpc_batch
from eth_account import Account

from adapters.bitcoin.devnet import BtcdNode, Faucet, address_p2wpkh
from adapters.bitcoin.keys import public_key
from adapters.bitcoin.scripts import p2wsh
from adapters.evm.devnet import ANVIL_DEV_KEY, AnvilNode, connect, fund
from htlc.bitcoin import HtlcScript, build_redeem
from htlc.evm import compute_id, deploy_htlc, htlc_contract
from htlc.hashlock import hashlock_of, new_secret
from htlc.legs import HtlcLeg
from htlc.legs_bitcoin import BitcoinLeg, CoinWallet
from htlc.legs_evm import EvmLeg
from htlc.machine import LegStatus, SwapStatus
from htlc.timelock import BITCOIN_DEVNET, EVM_DEVNET, BlockHeight
from relayer.quotes import SwapPair
from relayer.swap_engine import SwapEngine, _ref
from relayer.swap_store import SwapRecord, SwapStore
from validators.eip712 import address_of

ETHER = 10**18
DEPTH = 2
BTC_SATS = 1_000_000  # each BTC->ETH user's lock
ETH_WEI = 10**16  # each ETH->BTC user's lock
FANOUT = 100  # HTLC outputs (or wallet coins) per faucet transaction
GAS = 150_000
MAX_FEE = 10 * 10**9
TIP = 10**9
LIMIT_S = 230


class Bench:
    def __init__(self, btcd: BtcdNode, anvil: AnvilNode, workdir: Path) -> None:
        self.btc_rpc = btcd.rpc(timeout_s=60.0)
        self.faucet = Faucet(self.btc_rpc, _faucet_secret)
        self.faucet.mature(101 + 20)  # more mature coinbases for the fan-outs
        self.url = anvil.rpc_url
        self.w3 = connect(anvil.rpc_url, timeout_s=60.0)
        self.htlc = deploy_htlc(self.w3, sender_key=ANVIL_DEV_KEY)
        self.contract = htlc_contract(self.w3, self.htlc)
        self.relayer_btc = os.urandom(32)
        self.relayer_btc_pub = public_key(self.relayer_btc)
        relayer_evm_secret = os.urandom(32)
        self.relayer_evm = bytes.fromhex(address_of(relayer_evm_secret)[2:])
        fund(self.w3, "0x" + self.relayer_evm.hex(), 10_000 * ETHER)
        self.helper_key = "0x" + os.urandom(32).hex()  # pays the users' EVM gas
        self.helper = Account.from_key(self.helper_key).address
        fund(self.w3, self.helper, 1_000 * ETHER)
        self.helper_nonce = 0
        self.wallet = CoinWallet(self.relayer_btc)
        btc = BitcoinLeg(self.btc_rpc, "regtest", self.relayer_btc, BITCOIN_DEVNET, DEPTH, 2,
                         self.wallet)
        eth = EvmLeg(self.w3, self.htlc, "0x" + relayer_evm_secret.hex(), EVM_DEVNET, DEPTH)
        self.btc_chain, self.eth_chain = btc.chain, eth.chain
        self.store = SwapStore.open(f"sqlite:///{workdir}/swaps.sqlite")
        legs: dict[str, HtlcLeg] = {btc.chain: btc, eth.chain: eth}
        self.engine = SwapEngine(self.store, legs,
                                 {btc.chain: self.relayer_btc_pub, eth.chain: self.relayer_evm},
                                 anyone_can_refund=frozenset({eth.chain}))
        common: dict[str, Any] = {"fee_bps": 30, "user_timelock_s": 3_000,
                                  "relayer_timelock_s": 1_500, "lock_deadline_s": 1_000}
        self.btc_eth = SwapPair(
            name="BTC/ETH", user_chain=btc.chain, user_asset="btc", relayer_chain=eth.chain,
            relayer_asset="0x" + "00" * 20, rate_num=10**10, rate_den=1, min_amount=10_000,
            max_amount=10**8, **common)
        self.eth_btc = SwapPair(
            name="ETH/BTC", user_chain=eth.chain, user_asset="0x" + "00" * 20,
            relayer_chain=btc.chain, relayer_asset="btc", rate_num=1, rate_den=10**10,
            min_amount=10**14, max_amount=10**18, **common)
        self.cpu_s = 0.0
        self.pass_s: list[float] = []
        self.secrets: dict[str, bytes] = {}  # swap id -> the user's secret
        self.user_keys: dict[str, bytes] = {}  # swap id -> the user's BTC or EVM key
        self.user_redeemed: set[str] = set()

    # ------------------------------------------------------------------ the relayer (timed)
    def relayer(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            self.cpu_s += time.process_time() - start

    def run_pass(self) -> None:
        start = time.perf_counter()
        self.relayer(self.engine.run, limit=10_000)
        self.pass_s.append(time.perf_counter() - start)

    # ------------------------------------------------------------------ the users (untimed)
    def offer_btc_eth(self, n: int) -> list[SwapRecord]:
        offers = []
        for _ in range(n):
            secret, user = new_secret(), os.urandom(32)
            record = self.relayer(
                self.engine.offer, self.btc_eth, BTC_SATS, hashlock_of(secret),
                user_sender=public_key(user), user_recipient=os.urandom(20))
            self.secrets[record.id], self.user_keys[record.id] = secret, user
            offers.append(record)
        for start in range(0, n, FANOUT):  # the users' locks: faucet fan-out to the HTLCs
            outputs = []
            for record in offers[start:start + FANOUT]:
                leg = record.initiator
                script = HtlcScript(record.hashlock, self.relayer_btc_pub,
                                    public_key(self.user_keys[record.id]),
                                    BlockHeight(leg.expiry.value)).witness_script
                outputs.append((p2wsh(script), leg.amount))
            self.faucet.pay_many(outputs)
        self.btc_rpc.generate(1)
        return offers

    def offer_eth_btc(self, n: int) -> list[SwapRecord]:
        if n == 0:
            return []
        for start in range(0, n, FANOUT):  # coins for the relayer's n BTC locks
            chunk = min(FANOUT, n - start)
            txid = self.faucet.pay_many([(self.wallet.script_pubkey, 2 * BTC_SATS)] * chunk)
            raw = self.btc_rpc.raw_transaction(txid)
            assert raw is not None and self.wallet.add_outputs(raw)
        offers, funding, locks = [], [], []
        chain_id = int(self.w3.eth.chain_id)
        for _ in range(n):
            secret, user_btc, user_evm = new_secret(), os.urandom(32), os.urandom(32)
            user_addr = Account.from_key(user_evm).address
            record = self.relayer(
                self.engine.offer, self.eth_btc, ETH_WEI, hashlock_of(secret),
                user_sender=bytes.fromhex(user_addr[2:]), user_recipient=public_key(user_btc))
            self.secrets[record.id], self.user_keys[record.id] = secret, user_btc
            offers.append(record)
            funding.append(self._helper_tx({"to": user_addr, "value": ETH_WEI + ETHER // 100,
                                            "data": b""}, chain_id))
            leg = record.initiator
            htlc_id = compute_id(
                chain_id=chain_id, contract=self.htlc, sender=user_addr.lower(),
                recipient=leg.recipient, token="0x" + "00" * 20, amount=leg.amount,
                hashlock=record.hashlock, timelock=leg.expiry.value)
            data = self.contract.encode_abi("lock", args=[
                htlc_id, _cs(leg.recipient), _cs("0x" + "00" * 20), leg.amount,
                record.hashlock, leg.expiry.value])
            locks.append(_sign(user_evm, {"to": self.htlc, "value": leg.amount, "data": data,
                                          "nonce": 0}, chain_id))
        self._send_batched(funding)
        self._send_batched(locks)
        self.btc_rpc.generate(1)
        return offers

    def users_redeem(self, chain_id: int) -> None:
        """Each user whose relayer leg is confirmed redeems it (EVM: batched raw txs paid by
        the helper; Bitcoin: the user's own redeem with the secret in the witness)."""
        evm_txs = []
        for record in self.store.open_swaps(10_000):
            if (record.id in self.user_redeemed or record.status != SwapStatus.PARTICIPANT_LOCKED
                    or record.participant.status != LegStatus.CONFIRMED):
                continue
            ref, secret = _ref(record.participant), self.secrets[record.id]
            if record.participant.chain == self.eth_chain:
                data = self.contract.encode_abi("redeem", args=[bytes.fromhex(ref.id[2:]),
                                                                secret])
                evm_txs.append(self._helper_tx({"to": self.htlc, "value": 0, "data": data},
                                               chain_id))
            else:
                user = self.user_keys[record.id]
                txid, vout = ref.id.split(":")
                self.btc_rpc.send_raw_transaction(build_redeem(
                    (txid, int(vout)), ref.amount, bytes.fromhex(ref.witness_script), secret,
                    user, b"\x00\x14" + bytes(20), 2))
            self.user_redeemed.add(record.id)
        self._send_batched(evm_txs)

    def _helper_tx(self, tx: dict[str, Any], chain_id: int) -> str:
        raw = _sign(self.helper_key, {**tx, "nonce": self.helper_nonce}, chain_id)
        self.helper_nonce += 1
        return raw

    def _send_batched(self, raws: list[str]) -> None:
        if not raws:
            return
        rpc(self.url, "evm_setAutomine", [False])
        try:
            for start in range(0, len(raws), 250):
                rpc_batch(self.url, [("eth_sendRawTransaction", [r])
                                     for r in raws[start:start + 250]])
                rpc(self.url, "evm_mine", [])
        finally:
            rpc(self.url, "evm_setAutomine", [True])

    def mine(self) -> None:
        self.btc_rpc.generate(1)
        rpc(self.url, "evm_mine", [])


_faucet_secret = os.urandom(32)


def _cs(hex_address: str) -> str:
    from web3 import Web3

    return Web3.to_checksum_address(hex_address)


def _sign(key: str | bytes, tx: dict[str, Any], chain_id: int) -> str:
    full = {"type": 2, "chainId": chain_id, "gas": GAS, "maxFeePerGas": MAX_FEE,
            "maxPriorityFeePerGas": TIP, **tx}
    full["to"] = _cs(full["to"])
    return "0x" + bytes(Account.from_key(key).sign_transaction(full).raw_transaction).hex()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swaps", type=int, default=500)
    parser.add_argument("--eth-btc", type=int, default=100, help="how many of them ETH->BTC")
    parser.add_argument("--profile", action="store_true", help="cProfile the engine's passes")
    args = parser.parse_args()
    bound_runtime(LIMIT_S)
    t_start = time.perf_counter()
    n_eth_btc = min(args.eth_btc, args.swaps)
    n_btc_eth = args.swaps - n_eth_btc
    with tempfile.TemporaryDirectory(prefix="ferry-bench-swaps-") as workdir, BtcdNode(
            Path(workdir), mining_address=address_p2wpkh(
                public_key(_faucet_secret), "regtest")) as btcd, AnvilNode(
            31337, workdir=Path(workdir)) as anvil:
        bench = Bench(btcd, anvil, Path(workdir))
        chain_id = int(bench.w3.eth.chain_id)
        setup_s = time.perf_counter() - t_start
        profiler = cProfile.Profile() if args.profile else None
        t0 = time.perf_counter()
        offers = bench.offer_btc_eth(n_btc_eth) + bench.offer_eth_btc(n_eth_btc)
        ids = [o.id for o in offers]
        passes = 0
        while True:
            if profiler is not None:
                profiler.enable()
            bench.run_pass()
            if profiler is not None:
                profiler.disable()
            passes += 1
            statuses = Counter(bench.store.get(i).status for i in ids)  # type: ignore[union-attr]
            done = sum(statuses[s] for s in (SwapStatus.REDEEMED, SwapStatus.REFUNDED,
                                             SwapStatus.EXPIRED))
            print(f"pass {passes:3d}: {bench.pass_s[-1]:6.2f}s  "
                  + "  ".join(f"{s.value.removeprefix('swap.')}={c}"
                              for s, c in sorted(statuses.items())), flush=True)
            if done == len(ids):
                break
            bench.users_redeem(chain_id)
            bench.mine()
        wall_s = time.perf_counter() - t0
        btcd_hwm, anvil_hwm = _support.vm_hwm_mb(btcd.pid or 0), _support.vm_hwm_mb(
            anvil.pid or 0)
        bench.btc_rpc.close()
    redeemed = statuses[SwapStatus.REDEEMED]
    n = len(ids)
    print(f"\n{n} swaps ({n_btc_eth} BTC->ETH, {n_eth_btc} ETH->BTC) through one SwapEngine, "
          f"btcd regtest + anvil automine, depth {DEPTH}; setup {setup_s:.1f}s")
    print_table(["figure", "value"], [
        ["swaps redeemed", f"{redeemed} / {n}"],
        ["engine passes", passes],
        ["wall seconds, first offer to last redeem", f"{wall_s:.1f}"],
        ["swaps completed per minute", f"{redeemed / wall_s * 60:,.0f}"],
        ["relayer CPU seconds (offers + passes)", f"{bench.cpu_s:.1f}"],
        ["relayer CPU seconds per swap", f"{bench.cpu_s / n:.4f}"],
        ["slowest pass, s", f"{max(bench.pass_s):.2f}"],
        ["median pass, s", f"{sorted(bench.pass_s)[len(bench.pass_s) // 2]:.2f}"],
        ["peak RSS this process (VmHWM), MB", f"{_support.vm_hwm_mb():.0f}"],
        ["peak RSS btcd / anvil, MB", f"{btcd_hwm:.0f} / {anvil_hwm:.0f}"],
    ])
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
    print(f"total runtime {time.perf_counter() - t_start:.1f}s")
    ok = redeemed == n
    print(f"RESULT swaps: {'INFO (no numeric target)' if ok else 'FAIL (not all redeemed)'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_support.run_main("swaps", main))
