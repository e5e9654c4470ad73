"""The relayer as swap counterparty on real chains: a user swaps BTC (btcd) for ETH (anvil)
against the `SwapEngine`; both the happy path and the path where the user walks away.

The user's side is played with the same HTLC drivers under the user's own keys; the relayer's
side is only the engine (its store, its drivers, its keys). Chain time moves with `generate` and
``evm_increaseTime``, never by sleeping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from htlc.hashlock import hashlock_of, new_secret
from htlc.machine import LegStatus, SwapStatus
from relayer.swap_engine import _ref
from tests.integration.swap_world import DEPTH, ETHER, SATS, World

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path, btcd: Any, w3_eth: Web3) -> World:
    return World(tmp_path, btcd, w3_eth)


def test_btc_to_eth_swap_completes_when_the_user_redeems(world: World) -> None:
    secret = new_secret()
    offer = world.offer(world.btc_eth, SATS, hashlock_of(secret))
    assert offer.status == SwapStatus.OFFERED
    world.run(2)  # nothing to do before the user locks
    assert world.store.get(offer.id).participant.lock_tx is None
    world.user_locks(offer)
    world.mine(btc_blocks=DEPTH)
    world.run(3)  # the engine sees the user's leg confirmed and locks ETH
    swap = world.store.get(offer.id)
    assert swap.status == SwapStatus.PARTICIPANT_LOCKED
    assert swap.participant.status in (LegStatus.LOCKED, LegStatus.CONFIRMED)
    before = world.w3.eth.get_balance(Web3.to_checksum_address("0x" + world.user_evm.hex()))
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
    offer = world.offer(world.btc_eth, SATS, hashlock_of(secret))
    world.user_locks(offer)
    world.mine(btc_blocks=DEPTH)
    world.run(3)
    swap = world.store.get(offer.id)
    assert swap.status == SwapStatus.PARTICIPANT_LOCKED
    world.mine(eth_seconds=400)  # past our leg's expiry (300 s), the user never redeemed
    world.run(3)
    swap = world.store.get(offer.id)
    assert swap.participant.status == LegStatus.REFUNDED
    assert swap.secret is None
    world.mine(btc_blocks=700)  # past the user's locktime: the user refunds their BTC
    world.user_btc.refund(_ref(swap.initiator))
    world.mine(btc_blocks=DEPTH)
    world.run(2)
    swap = world.store.get(offer.id)
    assert swap.initiator.status == LegStatus.REFUNDED
    assert swap.status == SwapStatus.REFUNDED
