"""Cosmos end to end: separate processes (ledger, relayer, five validators) over simd, driven as
a user would (the `ferry` command line, the HTTP APIs, an ordinary Cosmos wallet)."""

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

from adapters.cosmos.adapter import CosmosAdapter
from adapters.cosmos.devnet import CosmosWallet
from relayer.cli.devnet import Devnet
from relayer.config import load_config
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e
STAKE = 10**6


def _ferry(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relayer.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, **(env or {})})


def _wait(check: Any, what: str, timeout_s: float = 60) -> Any:
    return wait_until(check, timeout_s, what)


def test_relayer_sigkilled_right_after_broadcast_releases_the_cosmos_burn_once(devnet: Devnet,
                                                                              tmp_path) -> None:
    info = devnet.info
    cfg = load_config(Path(info.config))
    cosmos = cfg.cosmos[0]
    secret = {"FERRY_PASSPHRASE": "a user's passphrase"}
    made = _ferry("keys", "new", "--out", str(tmp_path / "user.json"), env=secret)
    assert made.returncode == 0, made.stderr
    account = json.loads(made.stdout)["ed25519"]
    wallet = CosmosWallet(devnet.simd, devnet.cosmos_user_secret)
    wallet.send(cosmos.escrow_address, 50 * STAKE, "stake", memo=account)

    def balance() -> dict:
        out = _ferry("ledger", "balance", account, "--config", info.config)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["balances"]
    _wait(lambda: balance().get("wSTAKE") == str(50 * STAKE), "wSTAKE minted")

    wrong = _ferry("ledger", "burn", "--keystore", str(tmp_path / "user.json"), "--asset",
                   "wSTAKE", "--amount", str(STAKE), "--to", "osmo1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
                   "--config", info.config, env=secret)
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
    payee = CosmosWallet.address_of(secrets.token_bytes(32))
    burned = _ferry("ledger", "burn", "--keystore", str(tmp_path / "user.json"), "--asset",
                    "wSTAKE", "--amount", str(20 * STAKE), "--to", payee, "--config",
                    info.config, env=secret)
    assert burned.returncode == 0, burned.stderr
    burn_id = json.loads(burned.stdout)["burn_id"]
    relayer = httpx.Client(base_url=info.relayer_url, timeout=5)

    def submitted() -> Any:
        r = relayer.get(f"/v1/transfers/{burn_id}")
        return r.status_code == 200 and r.json()["status"] in ("transfer.submitted",
                                                               "transfer.executed")
    _wait(submitted, "the release broadcast")
    devnet.services["relayer"].kill()  # SIGKILL right after the broadcast
    devnet.start_relayer()
    relayer = httpx.Client(base_url=info.relayer_url, timeout=5)
    _wait(lambda: relayer.get(f"/v1/transfers/{burn_id}").json()["status"]
          == "transfer.executed", "the release executed after the restart")
    time.sleep(3)  # a second payment would land within a few blocks
    adapter = CosmosAdapter(cosmos)
    assert adapter.rpc.balance(payee, "stake") == 20 * STAKE
    assert adapter.escrow_balance("stake") == 30 * STAKE  # supply == escrow balance
    assert balance()["wSTAKE"] == str(30 * STAKE)
