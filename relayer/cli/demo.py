"""`ferry demo`: the main job end to end on local devnets, narrated.

Starts two anvil chains and a btcd regtest node, deploys the bridges, starts the ledger, five validators (threshold 3)
and the relayer as separate processes, then acts as a user's wallet: locks 1.5 ETH and 250 TEST
on Ethereum and 2 BNB on BSC, waits for wETH, wTEST and wBNB on the ledger, burns 0.5 wETH to an
Ethereum address, waits for the release, checks the received amount and every asset's supply;
then bridges 1 ETH and 6 ETH through the HTTP API (`ferry api serve`): the large one is delayed
by the risk engine and released by an operator; account history with journal proofs, chains,
validators and signed webhooks (`relayer.cli.demo_api`); then deposits 0.75 BTC to the user's deposit address, waits for 0.75 wBTC, burns 0.25 wBTC to a
Bitcoin address and shows what arrived and the miner fee (`relayer.cli.demo_bitcoin`); then
sends 100 STAKE to the Cosmos escrow with the account in the memo, waits for 100 wSTAKE, burns 40
to a Cosmos address and shows it received (`relayer.cli.demo_cosmos`); then deposits 1.5 SOL
(as wrapped SOL) and 100 FTEST (an SPL token) into the Solana escrow with a Memo, waits for wSOL
and wFTEST, burns 0.5 wSOL and 40 wFTEST to a new Solana wallet and shows exactly that arrived
(`relayer.cli.demo_solana`); then swaps 0.01 BTC for
ETH against the relayer through its swap API and shows a second user walking away, both sides
refunded (`relayer.cli.demo_swaps`); and stops everything.

Owns: the narrative. Must not reach into any service's database: it sees what a user sees
(chain RPC, ledger API, relayer API, the user and operator API).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from nacl.signing import SigningKey

from adapters.base import NATIVE_TOKEN, asset_key
from adapters.errors import BridgeError
from adapters.evm import devnet as evm
from adapters.evm.adapter import EvmAdapter
from contracts import load_artifact
from ledger.client import LedgerClient
from ledger.transactions import sign_burn
from relayer.cli.demo_api import run_api_story
from relayer.cli.demo_bitcoin import run_bitcoin_story
from relayer.cli.demo_cosmos import run_cosmos_story
from relayer.cli.demo_htlc_mint import run_htlc_mint_story
from relayer.cli.demo_solana import run_solana_story
from relayer.cli.demo_swaps import run_swap_story
from relayer.cli.devnet import Devnet
from relayer.config import load_config
from relayer.solvency import supply_report

UNIT = 10**18


class DemoFailed(BridgeError):
    code = "demo_failed"


def fmt(amount: int, decimals: int = 18) -> str:
    """Base units as a decimal string for display only (never used in arithmetic)."""
    return format((Decimal(amount) / (Decimal(10) ** decimals)).normalize(), "f")


class Narrator:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.steps: list[dict[str, Any]] = []

    def step(self, title: str, **facts: Any) -> None:
        self.steps.append({"step": title, **facts})
        if not self.as_json:
            detail = "  ".join(f"{k}={v}" for k, v in facts.items())
            print(f"==> {title}" + (f"\n    {detail}" if detail else ""), flush=True)


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, poll_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll_s)
    raise DemoFailed(f"timed out after {timeout_s}s waiting for {what}")


def run_demo(as_json: bool = False, workdir: Path | None = None) -> dict[str, Any]:
    """Run the demo; returns the JSON document it prints with ``--json``.

    Raises:
        DemoFailed: a balance or supply check did not come out exactly as expected.
    """
    out = Narrator(as_json)
    root = Path(workdir or tempfile.mkdtemp(prefix="ferry-demo-"))
    net = Devnet(root)
    ok = False
    try:
        out.step("starting devnets", ethereum="anvil chain id 31337", bsc="anvil chain id 31338",
                 bitcoin="btcd v0.26.2 regtest", cosmos="simd (SDK v0.50.3) ferry-sim-1",
                 solana="LiteSVM (solders 0.29) behind Ferry's JSON-RPC test server")
        net.start_chains()
        info = net.deploy()
        out.step("deployed contracts", ethereum_bridge=info.bridges["ethereum"],
                 bsc_bridge=info.bridges["bsc"], test_token=info.test_token)
        net.start_services()
        out.step("started ledger, relayer, API and 5 validators (threshold 3)",
                 ledger=info.ledger_url, relayer=info.relayer_url, api=info.api_url,
                 metrics=info.metrics_url)
        cfg = load_config(Path(info.config))
        _run_user_story(out, net, cfg)
        document = {"ok": True, "steps": out.steps}
        ok = True
    finally:
        net.stop()
        out.step("stopped everything the demo started")
        if not ok:
            print(f"ferry demo: logs of every process are in {root / 'logs'}", file=sys.stderr)
        elif workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    if as_json:
        print(json.dumps({"ok": True, "steps": out.steps}, indent=2))
    return document


def _run_user_story(out: Narrator, net: Devnet, cfg: Any) -> None:
    info = net.info
    assert info is not None
    ledger = LedgerClient(info.ledger_url)
    user_key = SigningKey.generate()
    account = bytes(user_key.verify_key)
    user_evm = Account.create()
    eth = evm.connect(info.rpc["ethereum"])
    bsc = evm.connect(info.rpc["bsc"])
    evm.fund(eth, user_evm.address, 10 * UNIT)
    evm.fund(bsc, user_evm.address, 10 * UNIT)
    out.step("user wallet", ledger_account="0x" + account.hex(), evm_address=user_evm.address)

    token = eth.eth.contract(address=eth.to_checksum_address(info.test_token),
                             abi=load_artifact("TestToken").abi)
    evm.transact(eth, token.functions.mint(user_evm.address, 1_000 * UNIT),
                 sender_key=evm.ANVIL_DEV_KEY)
    locks = [
        ("ethereum", eth, NATIVE_TOKEN, 3 * UNIT // 2, "ETH", "wETH"),
        ("ethereum", eth, info.test_token, 250 * UNIT, "TEST", "wTEST"),
        ("bsc", bsc, NATIVE_TOKEN, 2 * UNIT, "BNB", "wBNB"),
    ]
    lock_txs = []
    for chain, w3, tok, amount, sym, _wsym in locks:
        bridge = w3.eth.contract(address=w3.to_checksum_address(info.bridges[chain]),
                                 abi=load_artifact("Bridge").abi)
        if tok != NATIVE_TOKEN:
            evm.transact(w3, token.functions.approve(bridge.address, amount),
                         sender_key=user_evm.key.to_0x_hex())
        receipt = evm.transact(
            w3, bridge.functions.lock(w3.to_checksum_address(tok), amount, account),
            sender_key=user_evm.key.to_0x_hex(), value_wei=amount if tok == NATIVE_TOKEN else 0)
        tx = receipt["transactionHash"].to_0x_hex()
        lock_txs.append((chain, w3, tx, receipt["blockNumber"], sym))
        out.step(f"locked {fmt(amount)} {sym} on {chain}", tx=tx, block=receipt["blockNumber"])

    relayer = httpx.Client(base_url=info.relayer_url, timeout=5)
    for chain, w3, tx, block, sym in lock_txs:
        def executed(tx: str = tx) -> Any:
            rows = relayer.get("/v1/transfers", params={"tx": tx}).json()["items"]
            return rows if rows and rows[0]["status"] == "transfer.executed" else None
        rows = wait_for(f"mint of {sym} lock {tx}", executed, timeout_s=90)
        t = rows[0]
        out.step(f"minted w{sym} on the ledger", lock_tx=tx,
                 confirmations=f"{w3.eth.block_number - block + 1} (needed {net.depth + 1})",
                 attestations=f"{net.threshold} of {net.n}", ledger_seq=t["ledger_seq"],
                 states=" -> ".join(h["status"].removeprefix("transfer.") for h in t["lifecycle"]))
    balances = ledger.account(account).balances
    symbols = {a.asset: a.symbol for a in cfg.assets}
    out.step("ledger balances", **{symbols.get(k, k): fmt(v) for k, v in balances.items()})
    expected = {asset_key("eip155:31337", NATIVE_TOKEN): 3 * UNIT // 2,
                asset_key("eip155:31337", info.test_token): 250 * UNIT,
                asset_key("eip155:31338", NATIVE_TOKEN): 2 * UNIT}
    if balances != expected:
        raise DemoFailed(f"ledger balances {balances} != expected {expected}")

    payee = Account.create().address.lower()
    weth = asset_key("eip155:31337", NATIVE_TOKEN)
    nonce = ledger.account(account).nonce
    signed = sign_burn(user_key, cfg.network, nonce, weth, UNIT // 2, "eip155:31337", payee)
    ledger_receipt = ledger.submit_transaction(signed)
    burn_id = "0x" + signed.tx_id.hex()  # a burn's id is its tx id
    out.step("burned 0.5 wETH to an Ethereum address", burn_id=burn_id, payee=payee,
             ledger_seq=ledger_receipt.seq)

    def released() -> Any:
        r = relayer.get(f"/v1/transfers/{burn_id}")
        return r.json() if r.status_code == 200 and r.json()["status"] == "transfer.executed" \
            else None
    t = wait_for("release of the burn", released, timeout_s=90)
    received = eth.eth.get_balance(eth.to_checksum_address(payee))
    out.step("released on Ethereum", tx=t["dest_tx"], payee=payee,
             received_eth=fmt(received), received_wei=str(received))
    if received != UNIT // 2:
        raise DemoFailed(f"payee received {received} wei, expected exactly {UNIT // 2}")

    adapters = {c.caip2: EvmAdapter(c) for c in cfg.chains}
    lines = supply_report(ledger.assets(), adapters)
    for line in lines:
        out.step(f"supply check {line.symbol}",
                 ledger_supply=fmt(line.supply), bridge_locked=fmt(line.locked),
                 bridge_released=fmt(line.released),
                 result="OK: supply == locked - released" if line.balanced else "MISMATCH")
    if not all(line.balanced for line in lines) or len(lines) != 3:
        raise DemoFailed("supply check failed")
    run_api_story(out, net, cfg, user_key, user_evm, fmt, DemoFailed)
    run_bitcoin_story(out, net, cfg, user_key, fmt, DemoFailed)
    run_htlc_mint_story(out, net, cfg, user_key, fmt, None, DemoFailed)
    run_cosmos_story(out, net, cfg, user_key, fmt, wait_for, DemoFailed)
    run_solana_story(out, net, cfg, user_key, fmt, wait_for, DemoFailed)
    run_swap_story(out, net, cfg, fmt, DemoFailed)
    out.step("demo complete: every asset's ledger supply equals its bridge custody")
