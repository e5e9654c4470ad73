"""The relayer as swap counterparty on real chains: a user swaps BTC (btcd) for ETH (anvil)
against the `SwapEngine`; both the happy path and the path where the user walks away.

The user's side is played with the same HTLC drivers under the user's own keys; the relayer's
side is only the engine (its store, its drivers, its keys). Chain time moves with `generate` and
``evm_increaseTime``, never by sleeping.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import coincurve
import pytest
from web3 import Web3

from adapters.base import NATIVE_TOKEN
from adapters.evm.devnet import ANVIL_DEV_KEY, fund
from htlc.evm import deploy_htlc
from htlc.hashlock import hashlock_of, new_secret
from htlc.legs import LegTerms
from htlc.legs_bitcoin import BitcoinLeg, CoinWallet
from htlc.legs_evm import EvmLeg
from htlc.machine import LegStatus, SwapStatus
from htlc.timelock import BITCOIN_DEVNET, EVM_DEVNET
from relayer.quotes import SwapPair
from relayer.swap_engine import SwapEngine
from relayer.swap_store import SwapStore
from validators.eip712 import address_of

ETHER = 10**18
SATS = 1_000_000
DEPTH = 2


def _evm_key() -> tuple[str, bytes]:
    secret = os.urandom(32)
    return "0x" + secret.hex(), bytes.fromhex(address_of(secret)[2:])


class World:
    """btcd + anvil + an HTLC contract; the relayer's engine; a user with BTC and an EVM key."""

    def __init__(self, tmp: Path, btcd: Any, w3: Web3) -> None:
        self.btcd, self.w3 = btcd, w3
        self.htlc = deploy_htlc(w3, sender_key=ANVIL_DEV_KEY)
        relayer_btc, user_btc = os.urandom(32), os.urandom(32)
        (relayer_evm_key, relayer_evm), (user_evm_key, self.user_evm) = _evm_key(), _evm_key()
        fund(w3, "0x" + relayer_evm.hex(), 100 * ETHER)
        fund(w3, "0x" + self.user_evm.hex(), ETHER)  # gas for the user's redeem
        user_wallet = CoinWallet(user_btc)
        txid = btcd.faucet.pay(user_wallet.script_pubkey, 5_000_000)
        raw = btcd.rpc.raw_transaction(txid)
        assert raw is not None and user_wallet.add_outputs(raw)
        btcd.rpc.generate(1)
        btc_chain = BitcoinLeg(btcd.rpc, "regtest", relayer_btc, BITCOIN_DEVNET, DEPTH, 2,
                               CoinWallet(relayer_btc))
        eth_chain = EvmLeg(w3, self.htlc, relayer_evm_key, EVM_DEVNET, DEPTH)
        self.user_btc = BitcoinLeg(btcd.rpc, "regtest", user_btc, BITCOIN_DEVNET, DEPTH, 2,
                                   user_wallet)
        self.user_eth = EvmLeg(w3, self.htlc, user_evm_key, EVM_DEVNET, DEPTH)
        self.user_btc_pub = coincurve.PrivateKey(user_btc).public_key.format()
        self.store = SwapStore.open(f"sqlite:///{tmp}/swaps.sqlite")
        self.engine = SwapEngine(
            self.store, {btc_chain.chain: btc_chain, eth_chain.chain: eth_chain},
            {btc_chain.chain: coincurve.PrivateKey(relayer_btc).public_key.format(),
             eth_chain.chain: relayer_evm},
            anyone_can_refund=frozenset({eth_chain.chain}))
        self.pair = SwapPair(
            name="BTC/ETH", user_chain=btc_chain.chain, user_asset="btc",
            relayer_chain=eth_chain.chain, relayer_asset=NATIVE_TOKEN, rate_num=10**10,
            rate_den=1, fee_bps=30, min_amount=10_000, max_amount=10**8, user_timelock_s=600,
            relayer_timelock_s=300, lock_deadline_s=120)

    def mine(self, btc_blocks: int = 1, eth_seconds: int = 0) -> None:
        if btc_blocks:
            self.btcd.rpc.generate(btc_blocks)
        if eth_seconds:
            self.w3.provider.make_request("evm_increaseTime", [eth_seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def user_locks_btc(self, record: Any) -> None:
        leg = record.initiator
        terms = LegTerms(leg.chain, "btc", leg.amount, record.hashlock, leg.expiry,
                         bytes.fromhex(leg.sender[2:]), bytes.fromhex(leg.recipient[2:]))
        self.user_btc.broadcast_lock(self.user_btc.prepare_lock(terms))

    def run(self, rounds: int = 1) -> Any:
        for _ in range(rounds):
            self.engine.run()
            self.mine()
        return None


@pytest.fixture
def world(tmp_path: Path, btcd: Any, w3_eth: Web3) -> World:
    return World(tmp_path, btcd, w3_eth)


def test_btc_to_eth_swap_completes_when_the_user_redeems(world: World) -> None:
    secret = new_secret()
    offer = world.engine.offer(world.pair, SATS, hashlock_of(secret),
                               user_sender=world.user_btc_pub, user_recipient=world.user_evm)
    assert offer.status == SwapStatus.OFFERED
    world.run(2)  # nothing to do before the user locks
    assert world.store.get(offer.id).participant.lock_tx is None
    world.user_locks_btc(offer)
    world.mine(btc_blocks=DEPTH)
    world.run(3)  # the engine sees the user's leg confirmed and locks ETH
    swap = world.store.get(offer.id)
    assert swap.status == SwapStatus.PARTICIPANT_LOCKED
    assert swap.participant.status in (LegStatus.LOCKED, LegStatus.CONFIRMED)
    before = world.w3.eth.get_balance(Web3.to_checksum_address("0x" + world.user_evm.hex()))
    from relayer.swap_engine import _ref

    world.user_eth.redeem(_ref(swap.participant), secret)  # the user reveals the secret
    after = world.w3.eth.get_balance(Web3.to_checksum_address("0x" + world.user_evm.hex()))
    assert after - before > swap.participant.amount - ETHER // 100  # minus the redeem's gas
    world.run(4)  # the engine learns the secret and redeems the user's BTC leg
    world.mine(btc_blocks=DEPTH)
    world.run(2)
    swap = world.store.get(offer.id)
    assert swap.status == SwapStatus.REDEEMED
    assert swap.secret == secret
    assert swap.initiator.status == LegStatus.REDEEMED


def test_user_who_never_redeems_gets_the_btc_back_and_the_relayer_its_eth(
        world: World) -> None:
    secret = new_secret()
    offer = world.engine.offer(world.pair, SATS, hashlock_of(secret),
                               user_sender=world.user_btc_pub, user_recipient=world.user_evm)
    world.user_locks_btc(offer)
    world.mine(btc_blocks=DEPTH)
    world.run(3)
    swap = world.store.get(offer.id)
    assert swap.status == SwapStatus.PARTICIPANT_LOCKED
    world.mine(eth_seconds=400)  # past our leg's expiry (300 s), the user never redeemed
    world.run(3)
    swap = world.store.get(offer.id)
    assert swap.participant.status == LegStatus.REFUNDED
    assert swap.secret is None
    from relayer.swap_engine import _ref

    world.mine(btc_blocks=700)  # past the user's locktime: the user refunds their BTC
    world.user_btc.refund(_ref(swap.initiator))
    world.mine(btc_blocks=DEPTH)
    world.run(2)
    swap = world.store.get(offer.id)
    assert swap.initiator.status == LegStatus.REFUNDED
    assert swap.status == SwapStatus.REFUNDED
