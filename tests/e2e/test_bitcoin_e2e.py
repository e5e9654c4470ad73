"""Bitcoin end to end: separate processes (ledger, relayer, five validators) over btcd regtest,
driven as a user would (the `ferry` command line, the HTTP APIs, an ordinary wallet)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from bitcoin.core import CBlock
from nacl.signing import SigningKey

from adapters.bitcoin.devnet import address_p2wpkh
from adapters.bitcoin.keys import public_key
from adapters.bitcoin.scripts import script_pubkey_from_address
from ledger.client import LedgerClient
from ledger.transactions import sign_burn
from relayer.cli.devnet import Devnet
from relayer.cli.wiring import deposit_address
from relayer.config import load_config

pytestmark = pytest.mark.e2e
SAT = 10**8


def _ferry(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relayer.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, **(env or {})})


def _mine_until(net: Devnet, check: Any, what: str, timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        net.mine_bitcoin(1)
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _payments_to(net: Devnet, spk: bytes, from_height: int) -> list[tuple[str, int]]:
    """Every output paying `spk` in the best chain above `from_height`: (txid, sats)."""
    rpc = net.btcd.rpc()  # type: ignore[union-attr]
    found = []
    for height in range(from_height + 1, rpc.block_count() + 1):
        block = CBlock.deserialize(rpc.raw_block(rpc.block_hash(height) or ""))
        for tx in block.vtx:
            found += [(tx.GetTxid()[::-1].hex(), o.nValue) for o in tx.vout
                      if bytes(o.scriptPubKey) == spk]
    return found


def test_a_user_deposits_btc_and_burns_wbtc_back_with_the_ferry_command_line(devnet, tmp_path):
    info = devnet.info
    secret = {"FERRY_PASSPHRASE": "a user's passphrase"}
    made = _ferry("keys", "new", "--out", str(tmp_path / "user.json"), env=secret)
    assert made.returncode == 0, made.stderr
    account = json.loads(made.stdout)["ed25519"]
    shown = _ferry("btc", "deposit-address", account, "--config", info.config)
    assert shown.returncode == 0, shown.stderr
    address = json.loads(shown.stdout)
    assert address["registered"] is True and address["deposit_address"].startswith("bcrt1q")
    devnet.faucet.pay(script_pubkey_from_address(address["deposit_address"], "regtest"),
                      SAT // 2)

    def balance() -> dict:
        out = _ferry("ledger", "balance", account, "--config", info.config)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["balances"]
    _mine_until(devnet, lambda: balance().get("wBTC") == str(SAT // 2), "wBTC minted")

    payee = address_p2wpkh(public_key(secrets.token_bytes(32)), "regtest")
    wrong = _ferry("ledger", "burn", "--keystore", str(tmp_path / "user.json"), "--asset",
                   "wBTC", "--amount", "1000000", "--to",
                   "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "--config", info.config,
                   env=secret)
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
    assert balance()["wBTC"] == str(SAT // 2)  # a mainnet address is refused before burning
    height = devnet.btcd.rpc().block_count()
    burned = _ferry("ledger", "burn", "--keystore", str(tmp_path / "user.json"), "--asset",
                    "wBTC", "--amount", str(SAT // 5), "--to", payee, "--config", info.config,
                    env=secret)
    assert burned.returncode == 0, burned.stderr
    spk = script_pubkey_from_address(payee, "regtest")
    [(_, received)] = _mine_until(devnet, lambda: _payments_to(devnet, spk, height),
                                  "the BTC payout")
    assert SAT // 5 - 100_000 < received < SAT // 5
    assert balance()["wBTC"] == str(SAT // 2 - SAT // 5)


def test_relayer_sigkilled_right_after_broadcast_pays_the_burn_once(devnet):
    info = devnet.info
    user = _user_account(devnet)
    payee = address_p2wpkh(public_key(secrets.token_bytes(32)), "regtest")
    spk = script_pubkey_from_address(payee, "regtest")
    height = devnet.btcd.rpc().block_count()
    burn_id = _burn(devnet, user, SAT // 10, payee)
    relayer = httpx.Client(base_url=info.relayer_url, timeout=5)

    def submitted() -> Any:
        r = relayer.get(f"/v1/transfers/{burn_id}")
        return r.status_code == 200 and r.json()["status"] == "transfer.submitted" and r.json()

    deadline = time.monotonic() + 60
    while not submitted():  # validators sign, the relayer assembles and broadcasts
        assert time.monotonic() < deadline, "the release was never broadcast"
        time.sleep(0.05)
    devnet.services["relayer"].kill()  # SIGKILL right after the broadcast
    devnet.start_relayer()
    relayer = httpx.Client(base_url=info.relayer_url, timeout=5)
    _mine_until(devnet, lambda: relayer.get(f"/v1/transfers/{burn_id}").json()["status"]
                == "transfer.executed", "the release executed after the restart")
    devnet.mine_bitcoin(3)
    time.sleep(2)  # a second payment would be broadcast within a few relayer runs
    devnet.mine_bitcoin(3)
    payments = _payments_to(devnet, spk, height)
    assert len(payments) == 1, payments
    assert SAT // 10 - 100_000 < payments[0][1] < SAT // 10


def _user_account(devnet: Devnet) -> Any:
    """A ledger account holding 0.5 wBTC from a real deposit: (key, cfg, ledger, asset)."""
    cfg = load_config(Path(devnet.info.config))
    user = SigningKey.generate()
    address = deposit_address(cfg, "0x" + bytes(user.verify_key).hex(), None, False)
    devnet.faucet.pay(script_pubkey_from_address(address["deposit_address"], "regtest"), SAT // 2)
    ledger = LedgerClient(devnet.info.ledger_url)
    asset = f"{cfg.bitcoin[0].caip2}/btc"
    _mine_until(devnet, lambda: ledger.account(bytes(user.verify_key)).balances.get(asset),
                "the deposit minted")
    return user, cfg, ledger, asset


def _burn(devnet: Devnet, user: Any, sats: int, payee: str) -> str:
    key, cfg, ledger, asset = user
    nonce = ledger.account(bytes(key.verify_key)).nonce
    signed = sign_burn(key, cfg.network, nonce, asset, sats, cfg.bitcoin[0].caip2, payee)
    ledger.submit_transaction(signed)
    return "0x" + signed.tx_id.hex()
