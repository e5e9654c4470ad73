"""Atomic swaps end to end: the relayer process with its swap job and API over btcd and anvil,
a user on the `ferry swap` command line; the relayer SIGKILLed while the user reveals the
secret, restarted, and still redeeming its leg before the user's timelock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey
from web3 import Web3

from adapters.bitcoin.devnet import p2wpkh_script
from adapters.evm import devnet as evm
from relayer.cli.swap_user import SwapUser
from relayer.config import load_config
from tests.e2e.test_bitcoin_e2e import _mine_until
from validators.keystore import hot_wallet_secrets, load_keystore

pytestmark = pytest.mark.e2e
SAT = 10**8
PASS = {"FERRY_PASSPHRASE": "a user's passphrase"}


def _ferry(*args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "relayer.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, **PASS})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_user_swaps_btc_for_eth_with_the_cli_across_a_relayer_sigkill(devnet, tmp_path):
    cfg_path = devnet.info.config
    keyfile, secret_file = tmp_path / "user.json", tmp_path / "secret.hex"
    made = _ferry("keys", "new", "--out", str(keyfile))
    pub = bytes.fromhex(made["secp256k1_pubkey"])
    devnet.faucet.pay(p2wpkh_script(pub), SAT // 10)
    devnet.mine_bitcoin(1)
    w3 = evm.connect(devnet.info.rpc["ethereum"])
    evm.fund(w3, made["evm_address"], 10**18)

    q = _ferry("swap", "quote", "BTC/ETH", "2000000", "--config", cfg_path)["quote"]
    assert q["relayer_amount"] == str(2_000_000 * 2 * 10**11)
    swap = _ferry("swap", "start", "BTC/ETH", "2000000", "--keystore", str(keyfile),
                  "--secret-file", str(secret_file), "--config", cfg_path)
    assert swap["user_action"]["step"] == "lock"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    _ferry("swap", "lock", swap["id"], "--keystore", str(keyfile), "--config", cfg_path)

    def status() -> dict[str, Any]:
        return _ferry("swap", "status", swap["id"], "--config", cfg_path)
    ready = _mine_until(devnet, lambda: (s := status())["user_action"]["step"] == "redeem" and s,
                        "the relayer's ETH lock")
    assert ready["participant"]["status"] == "leg.confirmed"

    devnet.services["relayer"].kill()  # SIGKILL: the secret appears while the relayer is down
    cfg = load_config(Path(cfg_path))
    seed, secp = hot_wallet_secrets(load_keystore(keyfile, PASS["FERRY_PASSPHRASE"]))
    user = SwapUser(cfg, devnet.info.relayer_url, SigningKey(seed), secp)
    before = w3.eth.get_balance(Web3.to_checksum_address(made["evm_address"]))
    user.redeem(ready, bytes.fromhex(secret_file.read_text().strip()))
    gained = w3.eth.get_balance(Web3.to_checksum_address(made["evm_address"])) - before
    assert int(q["lock_amount"]) - 10**16 < gained <= int(q["lock_amount"])

    devnet.start_relayer()  # restarted: it must find the secret on chain and redeem the BTC
    done = _mine_until(devnet, lambda: (s := status())["status"] == "swap.redeemed" and s,
                       "the relayer's BTC redeem after its restart")
    assert done["initiator"]["status"] == "leg.redeemed"
    height = devnet.btcd.rpc().block_count()
    assert height < int(done["initiator"]["expiry"]["value"])  # before the user's timelock

