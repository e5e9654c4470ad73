"""The swap API (`api.swaps`) with the relayer's `SwapEngine` behind it, on real btcd and anvil,
and a user acting through `relayer.cli.swap_user.SwapUser` (what `ferry swap` runs): quotes,
starting a swap, locking, the relayer locking its leg, the user redeeming, the relayer
redeeming; and the walk-away path where the relayer broadcasts the user's pre-signed Bitcoin
refund at the timelock. Chain time moves with ``generate`` and ``evm_increaseTime``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from bitcoin.core import CMutableTransaction
from fastapi import FastAPI
from fastapi.testclient import TestClient
from nacl.signing import SigningKey
from web3 import Web3

from adapters.base import NATIVE_TOKEN
from adapters.bitcoin.devnet import p2wpkh_script
from adapters.bitcoin.keys import public_key
from adapters.bitcoin.tx import decode_tx
from adapters.errors import ValidationError
from adapters.evm.devnet import ANVIL_DEV_KEY, fund
from api.ledger import install_error_handlers
from api.swaps import swaps_router
from htlc.bitcoin import build_refund
from htlc.evm import deploy_htlc
from htlc.hashlock import hashlock_of, new_secret
from htlc.machine import LegStatus, SwapStatus
from relayer.cli.swap_user import SwapLegInfo, SwapUser
from relayer.cli.swaps import build_swap_runtime
from relayer.config import FerryConfig
from validators.eip712 import address_of

ETHER = 10**18
DEPTH = 2


def _config(tmp: Path, btcd: Any, w3: Web3, htlc: str) -> FerryConfig:
    btc, eth = btcd.node.chain, f"eip155:{w3.eth.chain_id}"
    common = {"fee_bps": 30, "user_timelock_s": 600, "relayer_timelock_s": 300,
              "lock_deadline_s": 120}
    return FerryConfig(
        relayer={"database_url": f"sqlite:///{tmp}/relayer.sqlite"},
        chains=[{"name": "ethereum", "chain_id": w3.eth.chain_id,
                 "rpc_url": w3.provider.endpoint_uri,  # type: ignore[attr-defined]
                 "bridge_address": "0x" + "11" * 20, "confirmation_depth": DEPTH}],
        bitcoin=[{"name": "bitcoin", "network": "regtest", "rpc_url": btcd.node.rpc_url,
                  "rpc_user": btcd.node.rpc_user, "rpc_password": btcd.node.rpc_password,
                  "validator_pubkeys": [public_key(os.urandom(32)).hex()], "threshold": 1,
                  "confirmation_depth": DEPTH}],
        swaps={"keystore": str(tmp / "unused.json"),
               "chains": [{"chain": btc, "block_time_s": 1},
                          {"chain": eth, "htlc_address": htlc, "block_time_s": 1}],
               "pairs": [{"name": "BTC/ETH", "user_chain": btc, "user_asset": "btc",
                          "relayer_chain": eth, "relayer_asset": NATIVE_TOKEN,
                          "rate_num": 10**10, "rate_den": 1, "min_amount": 10_000,
                          "max_amount": 10**8, **common}]})


class Stack:
    """The relayer's swap runtime behind its API; a user with BTC and a funded EVM key."""

    def __init__(self, tmp: Path, btcd: Any, w3: Web3) -> None:
        self.btcd, self.w3 = btcd, w3
        self.cfg = _config(tmp, btcd, w3, deploy_htlc(w3, sender_key=ANVIL_DEV_KEY))
        relayer_secp, user_secp = os.urandom(32), os.urandom(32)
        fund(w3, address_of(relayer_secp), 100 * ETHER)
        fund(w3, address_of(user_secp), ETHER)  # gas for the user's redeem
        start = btcd.rpc.block_count()
        runtime = build_swap_runtime(self.cfg, (SigningKey.generate(), relayer_secp))
        assert runtime is not None
        self.runtime = runtime
        app = FastAPI()
        app.include_router(swaps_router(runtime.engine, runtime.section))
        install_error_handlers(app)
        self.client = TestClient(app)
        self.user = SwapUser(self.cfg, "http://testserver", SigningKey.generate(), user_secp,
                             btc_wallet_start=start, http=self.client)
        self.user_evm, self.user_secp = address_of(user_secp), user_secp
        btcd.faucet.pay(p2wpkh_script(public_key(user_secp)), 5_000_000)
        btcd.rpc.generate(1)

    def mine(self, btc_blocks: int = 1, eth_seconds: int = 0) -> None:
        if btc_blocks:
            self.btcd.rpc.generate(btc_blocks)
        if eth_seconds:
            self.w3.provider.make_request("evm_increaseTime", [eth_seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def run(self, rounds: int = 1) -> None:
        for _ in range(rounds):
            self.runtime.run()
            self.mine()

    def eth_balance(self, address: str) -> int:
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))



@pytest.fixture
def stack(tmp_path: Path, btcd: Any, w3_eth: Web3) -> Stack:
    return Stack(tmp_path, btcd, w3_eth)


def test_quotes_and_bad_requests_get_typed_errors_and_store_nothing(stack: Stack) -> None:
    body = stack.client.get("/v1/quotes", params={"pair": "BTC/ETH", "amount": "150000"}).json()
    assert body["quote"] == {"pair": "BTC/ETH", "user_amount": "150000",
                             "relayer_amount": str(150_000 * 10**10),
                             "fee": str(-(-150_000 * 10**10 * 30 // 10_000)),
                             "lock_amount": str(150_000 * 10**10 - 4_500_000_000_000)}
    assert [p["name"] for p in stack.client.get("/v1/quotes").json()["pairs"]] == ["BTC/ETH"]
    r = stack.client.get("/v1/quotes", params={"pair": "BTC/ETH", "amount": "9"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"
    assert stack.client.get("/v1/quotes", params={"pair": "X/Y"}).status_code == 400
    good = {"pair": "BTC/ETH", "amount": "100000", "hashlock": "0x" + "ab" * 32,
            "user_sender": "0x" + public_key(os.urandom(32)).hex(),
            "user_recipient": stack.user_evm}
    for bad in ({"user_sender": "0x" + "02" * 20}, {"user_recipient": "0x" + "aa" * 32},
                {"hashlock": "0x" + "ab" * 31}, {"amount": "1.5"}, {"amount": "-5"}):
        r = stack.client.post("/v1/swaps", json={**good, **bad})
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "invalid_input"
    assert stack.runtime.engine.store.open_swaps() == []
    assert stack.client.get("/v1/swaps/0x" + "00" * 32).status_code == 404


def test_a_btc_to_eth_swap_through_the_api_completes(stack: Stack) -> None:
    secret = new_secret()
    swap = stack.user.start("BTC/ETH", 1_000_000, hashlock_of(secret))
    assert swap["status"] == SwapStatus.OFFERED
    assert swap["user_action"]["step"] == "lock"
    assert swap["initiator"]["htlc"]["address"].startswith("bcrt1q")
    stack.user.lock(swap)
    stack.mine(btc_blocks=DEPTH)
    stack.run(4)
    swap = stack.user.status(swap["id"])
    assert swap["status"] == SwapStatus.PARTICIPANT_LOCKED
    assert swap["participant"]["status"] == LegStatus.CONFIRMED
    assert swap["user_action"]["step"] == "redeem"
    before = stack.eth_balance(stack.user_evm)
    stack.user.redeem(swap, secret)
    paid = stack.eth_balance(stack.user_evm) - before
    assert int(swap["participant"]["amount"]) - ETHER // 100 < paid <= int(
        swap["participant"]["amount"])
    stack.run(3)
    stack.mine(btc_blocks=DEPTH)
    stack.run(2)
    swap = stack.user.status(swap["id"])
    assert swap["status"] == SwapStatus.REDEEMED
    assert swap["initiator"]["status"] == LegStatus.REDEEMED
    assert swap["secret"] == "0x" + secret.hex()
    assert swap["user_action"]["step"] == "none"


def test_the_relayer_broadcasts_the_users_presigned_refund_when_the_user_walks_away(
        stack: Stack) -> None:
    secret = new_secret()
    swap = stack.user.start("BTC/ETH", 1_000_000, hashlock_of(secret))
    with pytest.raises(ValidationError, match="no lock with the agreed terms"):
        stack.user.presign_refund(swap)  # the user's side checks the chain first
    r = stack.client.post(f"/v1/swaps/{swap['id']}/refund", json={"raw_tx": "0x00"})
    assert r.status_code == 400 and "not seen on chain yet" in r.json()["error"]["message"]
    stack.user.lock(swap)
    stack.mine(btc_blocks=DEPTH)
    stack.run(4)
    leg = SwapLegInfo.parse(swap["initiator"])
    driver = stack.user.leg(leg.chain, leg.htlc)
    ref = driver.find_lock(leg.terms(hashlock_of(secret)))
    txid, vout = ref.id.split(":")
    tampered = CMutableTransaction.from_tx(decode_tx(build_refund(
        (txid, int(vout)), ref.amount, bytes.fromhex(ref.witness_script), stack.user_secp,
        driver.wallet.script_pubkey, 2)))
    tampered.vout[0].nValue -= 1  # the signature no longer covers the outputs
    r = stack.client.post(f"/v1/swaps/{swap['id']}/refund",
                          json={"raw_tx": "0x" + tampered.serialize().hex()})
    assert r.status_code == 400 and "does not verify" in r.json()["error"]["message"]
    assert stack.user.status(swap["id"])["user_refund_held"] is False
    swap = stack.user.presign_refund(swap)
    assert swap["user_refund_held"] is True
    stack.mine(eth_seconds=400)  # past the relayer leg's expiry: the user never redeemed
    stack.run(3)
    swap = stack.user.status(swap["id"])
    assert swap["participant"]["status"] == LegStatus.REFUNDED
    wallet = stack.user.leg(swap["initiator"]["chain"], swap["initiator"]["htlc"]).wallet
    wallet.sync()
    before = wallet.balance_sats
    expiry = int(swap["initiator"]["expiry"]["value"])
    stack.mine(btc_blocks=expiry - stack.btcd.rpc.block_count())  # the tip reaches the locktime
    stack.run(2)  # the relayer broadcasts the pre-signed refund; it is mined
    stack.mine(btc_blocks=DEPTH)
    stack.run(2)
    swap = stack.user.status(swap["id"])
    assert swap["initiator"]["status"] == LegStatus.REFUNDED
    assert swap["status"] == SwapStatus.REFUNDED
    wallet.sync()
    assert 1_000_000 - 1_000 < wallet.balance_sats - before < 1_000_000
