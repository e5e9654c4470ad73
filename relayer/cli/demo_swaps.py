"""`ferry demo`, atomic-swap part: a user swaps BTC for ETH against the running relayer through
its swap API (`relayer.cli.swap_user.SwapUser`, what `ferry swap` runs), and a second user
walks away after locking: the relayer refunds its ETH at its timelock and broadcasts the user's
pre-signed Bitcoin refund at the user's.

Owns: that narrative. Sees what a user sees (the relayer's swap API, btcd, anvil); regtest
blocks are mined on demand and the devnet's EVM clock is fast-forwarded (``evm_increaseTime``)
to reach the timelocks without waiting minutes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from nacl.signing import SigningKey
from web3 import Web3

from adapters.bitcoin.devnet import p2wpkh_script
from adapters.bitcoin.keys import public_key
from adapters.evm import devnet as evm
from htlc.hashlock import hashlock_of, new_secret
from relayer.cli.demo_bitcoin import wait_mining
from relayer.cli.swap_user import SwapUser
from validators.eip712 import address_of

SAT = 10**8
SWAP_SATS = 1_000_000  # 0.01 BTC


def _user(net: Any, cfg: Any, w3: Web3) -> tuple[SwapUser, str]:
    """A user with 0.05 BTC in a P2WPKH wallet and 1 ETH for gas."""
    secp = os.urandom(32)
    start = net.btcd.rpc().block_count()
    net.faucet.pay(p2wpkh_script(public_key(secp)), 5 * SAT // 100)
    net.mine_bitcoin(1)
    evm.fund(w3, address_of(secp), 10**18)
    return SwapUser(cfg, net.info.relayer_url, SigningKey.generate(), secp,
                    btc_wallet_start=start), address_of(secp)


def run_swap_story(out: Any, net: Any, cfg: Any, fmt: Callable[[int, int], str],
                   fail: Callable[[str], Exception]) -> None:
    w3 = evm.connect(net.info.rpc["ethereum"])
    user, user_evm = _user(net, cfg, w3)
    q = user.quote("BTC/ETH", SWAP_SATS)["quote"]
    out.step("swap quote BTC/ETH from the relayer", user_pays_btc=fmt(SWAP_SATS, 8),
             relayer_pays_eth=fmt(int(q["lock_amount"]), 18), fee_eth=fmt(int(q["fee"]), 18))
    secret = new_secret()
    swap = user.start("BTC/ETH", SWAP_SATS, hashlock_of(secret))
    ini, par = swap["initiator"], swap["participant"]
    out.step("swap agreed (the secret stays with the user; only its SHA-256 is sent)",
             swap_id=swap["id"], btc_htlc=ini["htlc"]["address"],
             btc_refund_from_height=ini["expiry"]["value"],
             eth_htlc_timelock=par["expiry"]["value"], next=swap["user_action"]["step"])
    ref = user.lock(swap)
    out.step("user locked 0.01 BTC in the Bitcoin HTLC", outpoint=ref.id)

    def relayer_locked() -> Any:
        s = user.status(swap["id"])
        return s if s["participant"]["status"] == "leg.confirmed" else None
    swap = wait_mining(net, "the relayer's ETH lock", relayer_locked, fail)
    out.step("relayer locked ETH for the user after the BTC lock reached depth",
             eth_htlc=swap["participant"]["lock_ref"], amount_eth=fmt(int(q["lock_amount"]), 18),
             user_action=swap["user_action"]["step"])
    before = w3.eth.get_balance(Web3.to_checksum_address(user_evm))
    tx = user.redeem(swap, secret)
    received = w3.eth.get_balance(Web3.to_checksum_address(user_evm)) - before
    out.step("user redeemed the ETH with the secret (revealing it)", tx=tx,
             received_eth_after_gas=fmt(received, 18))
    if not int(q["lock_amount"]) - 10**16 < received <= int(q["lock_amount"]):
        raise fail(f"user received {received} wei, expected about {q['lock_amount']}")

    def redeemed() -> Any:
        s = user.status(swap["id"])
        return s if s["status"] == "swap.redeemed" else None
    swap = wait_mining(net, "the relayer's redeem of the BTC", redeemed, fail)
    out.step("relayer learnt the secret from the ETH redeem and redeemed the BTC",
             status=swap["status"], btc_leg=swap["initiator"]["status"],
             eth_leg=swap["participant"]["status"])
    _walk_away_story(out, net, cfg, w3, fmt, fail)


def _walk_away_story(out: Any, net: Any, cfg: Any, w3: Web3, fmt: Callable[[int, int], str],
                     fail: Callable[[str], Exception]) -> None:
    user, _ = _user(net, cfg, w3)
    swap = user.start("BTC/ETH", SWAP_SATS, hashlock_of(new_secret()))
    user.lock(swap)

    def relayer_locked() -> Any:
        s = user.status(swap["id"])
        return s if s["participant"]["status"] == "leg.confirmed" else None
    wait_mining(net, "the relayer's ETH lock", relayer_locked, fail)
    swap = user.presign_refund(user.status(swap["id"]))
    out.step("second swap: user locked 0.01 BTC, handed the relayer a pre-signed refund, and "
             "walks away", swap_id=swap["id"], user_refund_held=swap["user_refund_held"])
    w3.provider.make_request("evm_increaseTime", [int(cfg.swaps.pair("BTC/ETH")  # type: ignore[arg-type]
                                                      .relayer_timelock_s) + 10])
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def eth_refunded() -> Any:
        s = user.status(swap["id"])
        return s if s["participant"]["status"] == "leg.refunded" else None
    swap = wait_mining(net, "the relayer's ETH refund", eth_refunded, fail)
    out.step("devnet EVM clock moved past the relayer's timelock: relayer refunded its ETH",
             eth_leg=swap["participant"]["status"])
    wallet = user.leg(swap["initiator"]["chain"], swap["initiator"]["htlc"]).wallet
    wallet.sync()
    before = wallet.balance_sats
    expiry = int(swap["initiator"]["expiry"]["value"])
    net.mine_bitcoin(max(0, expiry - net.btcd.rpc().block_count()))

    def btc_refunded() -> Any:
        s = user.status(swap["id"])
        return s if s["status"] == "swap.refunded" else None
    swap = wait_mining(net, "the broadcast of the user's refund", btc_refunded, fail)
    wallet.sync()
    back = wallet.balance_sats - before
    out.step("BTC timelock reached: relayer broadcast the user's pre-signed refund",
             status=swap["status"], btc_leg=swap["initiator"]["status"],
             refunded_btc=fmt(back, 8), miner_fee_sats=SWAP_SATS - back)
    if not 0 < SWAP_SATS - back < 10_000:
        raise fail(f"user got {back} sats back of {SWAP_SATS}")
