"""Ferry run as a user and an operator run it: separate processes, real chains, HTTP only."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import httpx
import pytest
from eth_account import Account
from nacl.signing import SigningKey
from web3 import Web3

from adapters.base import NATIVE_TOKEN, asset_key
from adapters.evm import devnet as evm
from contracts import load_artifact
from ledger.client import LedgerClient
from ledger.transactions import sign_burn
from relayer.cli.demo import run_demo
from relayer.cli.devnet import Devnet
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e
UNIT = 10**18
ETH = "eip155:31337"




def test_demo_bridges_eth_erc20_and_bnb_in_and_back_out(tmp_path):
    document = run_demo(as_json=True, workdir=tmp_path / "demo")
    steps = {s["step"]: s for s in document["steps"]}
    assert document["ok"] is True
    assert steps["ledger balances"] | {"step": ""} == {
        "step": "", "wETH": "1.5", "wTEST": "250", "wBNB": "2"}
    assert steps["released on Ethereum"]["received_wei"] == str(UNIT // 2)
    assert steps["minted wSTAKE on the ledger"]["wSTAKE"] == "100"
    cosmos = steps["released on Cosmos (3-of-5 amino-JSON multisig)"]
    assert cosmos["received_base_units"] == 40_000_000
    assert steps["supply check wSTAKE"]["result"].startswith("OK")
    for symbol in ("wETH", "wTEST", "wBNB", "wBTC"):
        assert steps[f"supply check {symbol}"]["result"].startswith("OK")
    assert steps["minted wBTC on the ledger"]["wBTC"] == "0.75"
    released = steps["released on Bitcoin (3-of-5 multisig, BIP-143 signatures)"]
    assert released["received_sats"] + released["miner_fee_sats"] == 25_000_000
    assert 0 < released["miner_fee_sats"] < 100_000
    swapped = steps["relayer learnt the secret from the ETH redeem and redeemed the BTC"]
    assert (swapped["status"], swapped["btc_leg"], swapped["eth_leg"]) == (
        "swap.redeemed", "leg.redeemed", "leg.redeemed")
    eth_back = steps["devnet EVM clock moved past the relayer's timelock: relayer refunded its ETH"]
    assert eth_back["eth_leg"] == "leg.refunded"
    btc_back = steps["BTC timelock reached: relayer broadcast the user's pre-signed refund"]
    assert btc_back["status"] == "swap.refunded"
    assert 0 < btc_back["miner_fee_sats"] < 10_000


def _lock(net: Devnet, w3: Web3, bridge_addr: str, amount: int, recipient: bytes) -> str:
    bridge = w3.eth.contract(address=Web3.to_checksum_address(bridge_addr),
                             abi=load_artifact("Bridge").abi)
    receipt = evm.transact(w3, bridge.functions.lock(NATIVE_TOKEN, amount, recipient),
                           sender_key=evm.ANVIL_DEV_KEY, value_wei=amount)
    return str(receipt["transactionHash"].to_0x_hex())


def test_relayer_sigkilled_repeatedly_mid_flight_executes_each_transfer_exactly_once(devnet):
    info = devnet.info
    assert info is not None
    ledger = LedgerClient(info.ledger_url)
    eth = evm.connect(info.rpc["ethereum"])
    user = SigningKey.generate()
    account = bytes(user.verify_key)
    amounts = [UNIT + i for i in range(12)]  # distinct amounts: a double mint would show
    rng = random.Random(7)

    def chaos(rounds: int) -> None:
        for _ in range(rounds):
            time.sleep(rng.uniform(0.1, 0.8))
            devnet.services["relayer"].kill()  # SIGKILL: no cleanup, no flush
            devnet.start_relayer()

    for amount in amounts:
        _lock(devnet, eth, info.bridges["ethereum"], amount, account)
    chaos(4)
    weth = asset_key(ETH, NATIVE_TOKEN)
    wait_until(lambda: ledger.account(account).balances.get(weth) == sum(amounts), 120,
               "every lock minted")

    payees = [Account.create().address.lower() for _ in range(4)]
    for i, payee in enumerate(payees):
        signed = sign_burn(user, "ferry-devnet", ledger.account(account).nonce, weth,
                           UNIT // 4 + i, ETH, payee)
        ledger.submit_transaction(signed)
    chaos(4)

    def paid() -> bool:
        return all(eth.eth.get_balance(Web3.to_checksum_address(p)) == UNIT // 4 + i
                   for i, p in enumerate(payees))
    wait_until(paid, 120, "every burn released")
    time.sleep(2)  # a late duplicate would land within a few blocks
    assert paid()
    assert ledger.account(account).balances[weth] == sum(amounts) - sum(
        UNIT // 4 + i for i in range(len(payees)))
    [asset] = [a for a in ledger.assets() if a.asset == weth]
    assert asset.minted_total == sum(amounts)
    locked, released = _custody(info, eth)
    assert (locked, released) == (sum(amounts), sum(UNIT // 4 + i for i in range(4)))

    # The relayer's own /metrics agrees: 12 mints and 4 releases executed, none left behind.
    wait_until(lambda: _gauge(info.metrics_url, "transfer.executed") == 16.0, 20,
               "the transfers gauge to show 16 executed")
    assert _gauge(info.metrics_url, "transfer.attested") in (None, 0.0)


def _gauge(url: str, state: str) -> float | None:
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line.startswith(f'ferry_relayer_transfers{{state="{state}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def _custody(info, w3: Web3) -> tuple[int, int]:
    bridge = w3.eth.contract(address=Web3.to_checksum_address(info.bridges["ethereum"]),
                             abi=load_artifact("Bridge").abi)
    zero = Web3.to_checksum_address(NATIVE_TOKEN)
    return (bridge.functions.totalLocked(zero).call(),
            bridge.functions.totalReleased(zero).call())


def _ferry(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relayer.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, **(env or {})})


def test_a_user_bridges_in_and_burns_out_with_the_ferry_command_line(devnet, tmp_path):
    info = devnet.info
    assert info is not None
    secret = {"FERRY_PASSPHRASE": "a user's passphrase"}
    made = _ferry("keys", "new", "--out", str(tmp_path / "user.json"), env=secret)
    assert made.returncode == 0, made.stderr
    account = json.loads(made.stdout)["ed25519"]
    eth = evm.connect(info.rpc["ethereum"])
    _lock(devnet, eth, info.bridges["ethereum"], 2 * UNIT, bytes.fromhex(account[2:]))

    def balance() -> dict:
        shown = _ferry("ledger", "balance", account, "--config", info.config)
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)["balances"]
    wait_until(lambda: balance().get("wETH") == str(2 * UNIT), 60, "wETH minted")

    payee = Account.create().address.lower()
    burned = _ferry("ledger", "burn", "--keystore", str(tmp_path / "user.json"), "--asset", "wETH",
                    "--amount", str(UNIT // 2), "--to", payee, "--config", info.config, env=secret)
    assert burned.returncode == 0, burned.stderr
    assert json.loads(burned.stdout)["amount"] == str(UNIT // 2)
    wait_until(lambda: eth.eth.get_balance(Web3.to_checksum_address(payee)) == UNIT // 2, 60,
               "the burn released")
    assert balance()["wETH"] == str(2 * UNIT - UNIT // 2)

    refused = _ferry("ledger", "burn", "--keystore", str(tmp_path / "user.json"), "--asset",
                     "wETH", "--amount", str(10 * UNIT), "--to", payee, "--config", info.config,
                     env=secret)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    wrong = _ferry("ledger", "burn", "--keystore", str(tmp_path / "user.json"), "--asset",
                   "wETH", "--amount", "1", "--to", payee, "--config", info.config,
                   env={"FERRY_PASSPHRASE": "not it"})
    assert wrong.returncode == 1 and "passphrase" in wrong.stderr
    assert balance()["wETH"] == str(2 * UNIT - UNIT // 2)  # refused burns changed nothing
