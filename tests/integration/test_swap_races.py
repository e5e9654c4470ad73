"""Swaps on real chains beyond the BTC->ETH happy path: the other directions (ETH->BTC, ETH->
ledger), both legs refunded when the user walks away, redeem racing refund at the timelock on
each chain, a relayer restarted after the secret appeared, and offers whose timelock gap is
below the safety margin.

Nodes come from the session fixtures (`btcd`, `w3_eth`); the ledger runs in process behind its
real ASGI app on a test clock. Chain time moves with ``generate``, ``evm_increaseTime`` /
``evm_setNextBlockTimestamp`` and the ledger's clock, never by sleeping.

The 31- and 33-byte preimage refusals live beside each chain's HTLC: the Bitcoin script on
btcd (test_htlc_bitcoin.py::test_btcd_refuses_a_preimage_that_hashes_right_but_is_not_32_bytes),
the EVM contract on anvil (test_htlc_evm.py::test_redeem_with_a_preimage_not_32_bytes_reverts_
even_when_its_sha256_matches) and the ledger (test_ledger_htlcs.py::test_redeem_refuses_a_
preimage_that_is_not_32_bytes_even_if_it_hashes_to_the_lock); the leg drivers' own refusal is
checked here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from adapters.base import NATIVE_TOKEN
from adapters.bitcoin.errors import FeeTooLow, TxRejected
from adapters.bitcoin.tx import txid_of
from adapters.evm.devnet import ANVIL_DEV_KEY, fund
from htlc.bitcoin import build_redeem, build_refund
from htlc.errors import (
    BadPreimage,
    HtlcAlreadySettled,
    HtlcExpired,
    HtlcNotExpired,
    TimelockTooShort,
)
from htlc.evm import deploy_htlc, htlc_contract
from htlc.hashlock import hashlock_of, new_secret
from htlc.legs import HtlcLeg, LegRef, LegTerms
from htlc.legs_bitcoin import BitcoinLeg, CoinWallet
from htlc.legs_evm import EvmLeg
from htlc.machine import LegStatus, SwapStatus
from htlc.timelock import BITCOIN_DEVNET, EVM_DEVNET, BlockHeight, UnixTime
from relayer.quotes import quote
from relayer.swap_engine import _ref
from tests.integration.swap_world import (
    DEPTH,
    ETHER,
    LEDGER_FUNDS,
    SATS,
    LedgerSide,
    World,
    evm_key,
    rpc,
)

pytestmark = pytest.mark.integration

WEI = 10**16  # the user's ETH amount in ETH->BTC and ETH->ledger swaps (0.01 ETH)
FEE_RATE = 2  # sat/vB of hand-built Bitcoin spends


@pytest.fixture
def world(tmp_path: Path, btcd: Any, w3_eth: Web3) -> World:
    return World(tmp_path, btcd, w3_eth)


@pytest.fixture
def ledger_side(tmp_path: Path) -> Iterator[LedgerSide]:
    side = LedgerSide(tmp_path)
    yield side
    side.close()


@pytest.fixture
def ledger_world(tmp_path: Path, btcd: Any, w3_eth: Web3, ledger_side: LedgerSide) -> World:
    return World(tmp_path, btcd, w3_eth, ledger_side)


def _eth_swap_locked(world: World, pair: Any, secret: bytes) -> Any:
    """Offer on an ETH-first pair, the user locks WEI, the engine locks its leg; the swap."""
    offer = world.offer(pair, WEI, hashlock_of(secret))
    world.user_locks(offer)
    world.mine()
    world.run(4)  # confirmed at depth 2, then our lock and its confirmations
    swap = world.swap(offer.id)
    assert swap.status == SwapStatus.PARTICIPANT_LOCKED
    assert swap.initiator.status == LegStatus.CONFIRMED
    assert swap.participant.status == LegStatus.CONFIRMED
    return swap


# ============================================================================ other directions


def test_eth_to_btc_swap_completes_with_the_secret_read_from_the_users_btc_redeem_in_the_mempool(
        world: World) -> None:
    secret = new_secret()
    user_eth_before = world.eth(world.user_evm)
    swap = _eth_swap_locked(world, world.eth_btc, secret)
    lock_amount = quote(world.eth_btc, WEI).lock_amount
    assert swap.participant.amount == lock_amount == 997_000  # 10**6 sat minus 30 bps
    user_eth_locked = world.eth(world.user_evm)
    assert user_eth_before - user_eth_locked > WEI  # the amount and the lock's gas
    relayer_eth = world.eth(world.relayer.evm)

    btc_redeem = world.user_redeems(swap, secret)  # the secret is in the witness
    assert btc_redeem in world.btcd.rpc.mempool_txids()
    world.engine.run()  # no block mined: the engine reads the secret from the mempool
    assert btc_redeem in world.btcd.rpc.mempool_txids()
    swap = world.swap(swap.id)
    assert swap.secret == secret
    eth_leg = world.engine.legs[world.eth_chain]
    assert eth_leg.observe(_ref(swap.initiator)).status is LegStatus.REDEEMED
    eth_redeem = eth_leg.redeem(_ref(swap.initiator), secret)  # idempotent: the mined one
    assert world.eth(world.relayer.evm) == relayer_eth + WEI - world.gas_wei(eth_redeem)

    world.run(2)
    swap = world.swap(swap.id)
    assert swap.status == SwapStatus.REDEEMED
    assert swap.initiator.status == LegStatus.REDEEMED  # (a terminal swap is not observed)
    txid, paid_to, sats = world.spend_of(swap.participant)
    assert txid == btc_redeem and paid_to == world.user_wallet.script_pubkey
    assert 0 < lock_amount - sats < 1_000  # the user got the BTC, minus the redeem's fee
    assert world.eth(world.user_evm) == user_eth_locked  # the user's ETH stayed with the swap
    assert world.eth(world.relayer.evm) == relayer_eth + WEI - world.gas_wei(eth_redeem)


def test_eth_to_ledger_swap_completes_when_the_user_redeems_on_the_ledger(
        ledger_world: World) -> None:
    world, ledger = ledger_world, ledger_world.ledger
    assert world.eth_ledger is not None and ledger is not None
    secret = new_secret()
    swap = _eth_swap_locked(world, world.eth_ledger, secret)
    lock_amount = quote(world.eth_ledger, WEI).lock_amount
    relayer_account = bytes(ledger.relayer_key.verify_key)
    user_account = bytes(ledger.user_key.verify_key)
    assert ledger.balance(relayer_account) == LEDGER_FUNDS - lock_amount
    relayer_eth = world.eth(world.relayer.evm)

    assert world.user_redeems(swap, secret) == f"{swap.participant.lock_ref}/redeem"
    assert ledger.balance(user_account) == lock_amount
    world.run(2)
    swap = world.swap(swap.id)
    assert swap.status == SwapStatus.REDEEMED and swap.secret == secret
    eth_redeem = world.engine.legs[world.eth_chain].redeem(_ref(swap.initiator), secret)
    assert world.eth(world.relayer.evm) == relayer_eth + WEI - world.gas_wei(eth_redeem)
    assert ledger.balance(relayer_account) == LEDGER_FUNDS - lock_amount
    assert ledger.balance(user_account) == lock_amount


def test_eth_to_btc_user_who_never_redeems_gets_the_eth_back_and_the_relayer_its_btc(
        world: World) -> None:
    swap = _eth_swap_locked(world, world.eth_btc, new_secret())
    user_eth_locked = world.eth(world.user_evm)
    world.mine(btc_blocks=300)  # past our BTC leg's expiry (300 blocks)
    world.run(3)
    swap = world.swap(swap.id)
    assert swap.participant.status == LegStatus.REFUNDED and swap.secret is None
    assert swap.status == SwapStatus.PARTICIPANT_LOCKED  # the user's ETH is still locked
    _, paid_to, sats = world.spend_of(swap.participant)
    assert paid_to == world.relayer_wallet.script_pubkey
    assert 0 < swap.participant.amount - sats < 1_000

    world.mine(eth_seconds=600)  # past the user's expiry: anyone may refund the EVM HTLC
    world.run(3)
    swap = world.swap(swap.id)
    assert (swap.status, swap.initiator.status) == (SwapStatus.REFUNDED, LegStatus.REFUNDED)
    assert world.eth(world.user_evm) == user_eth_locked + WEI  # the relayer paid that gas


# ============================================================================ redeem racing refund


class EvmRace:
    """A fresh HTLC contract; `sender` locks 1 ETH to a fresh `recipient` (no ETH of its own);
    `redeemer` and `refunder` are third parties with 1 ETH for gas."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.address = deploy_htlc(w3, sender_key=ANVIL_DEV_KEY)
        self.contract = htlc_contract(w3, self.address)
        sender_key, self.sender = evm_key()
        _, self.recipient = evm_key()
        (self.redeemer_key, redeemer), (self.refunder_key, refunder) = evm_key(), evm_key()
        for who, wei in ((self.sender, 10 * ETHER), (redeemer, ETHER), (refunder, ETHER)):
            fund(w3, "0x" + who.hex(), wei)
        self.leg = EvmLeg(w3, self.address, sender_key, EVM_DEVNET, 1)

    def lock(self, secret: bytes, timelock: UnixTime) -> LegRef:
        prepared = self.leg.prepare_lock(LegTerms(self.leg.chain, NATIVE_TOKEN, ETHER,
                                                  hashlock_of(secret), timelock, self.sender,
                                                  self.recipient))
        ref = self.leg.broadcast_lock(prepared)
        self.w3.eth.wait_for_transaction_receipt(prepared.tx_ids[-1], timeout=10)  # type: ignore[arg-type]
        return ref

    def signed(self, key: str, call: Any) -> bytes:
        """`call` signed by `key` with explicit gas (no estimate: it would run in another
        block) and the key's next nonce."""
        sender = Account.from_key(key).address
        tx = call.build_transaction({"from": sender, "gas": 200_000, "chainId": 31337,
                                     "nonce": self.w3.eth.get_transaction_count(sender)})
        return bytes(Account.from_key(key).sign_transaction(tx).raw_transaction)

    def eth(self, who: bytes | str) -> int:
        address = who if isinstance(who, str) else "0x" + who.hex()
        return self.w3.eth.get_balance(Web3.to_checksum_address(address))


@pytest.mark.parametrize("first", ["redeem", "refund"])
@pytest.mark.parametrize("offset", [-1, 0])
def test_evm_redeem_and_refund_in_one_block_at_the_timelock_exactly_one_pays(
        w3_eth: Web3, offset: int, first: str) -> None:
    """Both sent into one block whose timestamp is timelock - 1 (redeem wins) or the timelock
    itself (refund wins), in either order: the contract's windows [lock, timelock) and
    [timelock, inf) are disjoint, so the other one reverts and exactly one payout happens."""
    race = EvmRace(w3_eth)
    secret = new_secret()
    timelock = race.leg.now() + 1_000
    ref = race.lock(secret, timelock)
    htlc_id = bytes.fromhex(ref.id[2:])
    txs = {"redeem": race.signed(race.redeemer_key,
                                 race.contract.functions.redeem(htlc_id, secret)),
           "refund": race.signed(race.refunder_key, race.contract.functions.refund(htlc_id))}
    sender, recipient, escrow = race.eth(race.sender), race.eth(race.recipient), race.eth(
        race.address)
    rpc(w3_eth, "evm_setAutomine", False)
    try:
        hashes = {name: w3_eth.eth.send_raw_transaction(txs[name])
                  for name in (first, "refund" if first == "redeem" else "redeem")}
        rpc(w3_eth, "evm_setNextBlockTimestamp", timelock.value + offset)
        rpc(w3_eth, "evm_mine")
    finally:
        rpc(w3_eth, "evm_setAutomine", True)
    receipts = {n: w3_eth.eth.wait_for_transaction_receipt(h, timeout=10)
                for n, h in hashes.items()}
    assert receipts["redeem"]["blockNumber"] == receipts["refund"]["blockNumber"]
    block = w3_eth.eth.get_block(receipts["redeem"]["blockNumber"])
    assert block["timestamp"] == timelock.value + offset
    winner = "redeem" if offset < 0 else "refund"
    loser = "refund" if winner == "redeem" else "redeem"
    assert (receipts[winner]["status"], receipts[loser]["status"]) == (1, 0)
    assert race.eth(race.address) == escrow - ETHER
    assert race.eth(race.recipient) == recipient + (ETHER if winner == "redeem" else 0)
    assert race.eth(race.sender) == sender + (ETHER if winner == "refund" else 0)
    view = race.leg.observe(ref)
    assert view.status is (LegStatus.REDEEMED if winner == "redeem" else LegStatus.REFUNDED)
    assert view.secret == (secret if winner == "redeem" else None)
    with pytest.raises(HtlcAlreadySettled):  # the driver of the loser refuses cleanly
        (race.leg.refund(ref) if winner == "redeem" else race.leg.redeem(ref, secret))


class BtcRace:
    """Alice locks SATS to Bob on btcd (Alice refunds, Bob redeems), depth 1."""

    def __init__(self, btcd: Any) -> None:
        self.btcd = btcd
        self.alice_secret, self.bob_secret = os.urandom(32), os.urandom(32)
        wallet = CoinWallet(self.alice_secret)
        txid = btcd.faucet.pay(wallet.script_pubkey, 2 * SATS)
        raw = btcd.rpc.raw_transaction(txid)
        assert raw is not None and wallet.add_outputs(raw)
        btcd.rpc.generate(1)
        self.alice = BitcoinLeg(btcd.rpc, "regtest", self.alice_secret, BITCOIN_DEVNET, 1, 2,
                                wallet)
        self.bob_wallet = CoinWallet(self.bob_secret)
        self.bob = BitcoinLeg(btcd.rpc, "regtest", self.bob_secret, BITCOIN_DEVNET, 1, 2,
                              self.bob_wallet)

    def lock(self, hashlock: bytes, locktime: BlockHeight) -> LegRef:
        return self.alice.broadcast_lock(self.alice.prepare_lock(LegTerms(
            self.alice.chain, "btc", SATS, hashlock, locktime, self.alice.pubkey,
            self.bob.pubkey)))


def _outpoint(ref: LegRef) -> tuple[str, int]:
    txid, vout = ref.id.split(":")
    return txid, int(vout)


@pytest.mark.parametrize("first", ["redeem", "refund"])
def test_bitcoin_redeem_and_refund_of_one_outpoint_at_the_cltv_height_exactly_one_confirms(
        btcd: Any, first: str) -> None:
    """At tip == locktime both spends are valid for the next block; btcd takes the first into
    its mempool and refuses the second as a double spend (same fee: no BIP-125 replacement);
    the block confirms the first only and the outpoint is gone."""
    race = BtcRace(btcd)
    secret = new_secret()
    locktime = race.alice.now() + 3
    ref = race.lock(hashlock_of(secret), locktime)
    btcd.rpc.generate(locktime.value - btcd.rpc.block_count())
    assert race.alice.now() == locktime
    outpoint, script = _outpoint(ref), bytes.fromhex(ref.witness_script)
    raws = {"redeem": build_redeem(outpoint, SATS, script, secret, race.bob_secret,
                                   race.bob_wallet.script_pubkey, FEE_RATE),
            "refund": build_refund(outpoint, SATS, script, race.alice_secret,
                                   race.alice.wallet.script_pubkey, FEE_RATE)}
    second = "refund" if first == "redeem" else "redeem"
    won = btcd.rpc.send_raw_transaction(raws[first])
    with pytest.raises((TxRejected, FeeTooLow)):
        btcd.rpc.send_raw_transaction(raws[second])
    mempool = btcd.rpc.mempool_txids()
    assert won in mempool and txid_of(raws[second]) not in mempool
    btcd.rpc.generate(1)
    assert btcd.rpc.transaction_info(won)["confirmations"] == 1  # type: ignore[index]
    assert btcd.rpc.transaction_info(txid_of(raws[second])) is None
    assert btcd.rpc.tx_out(*outpoint) is None and btcd.rpc.tx_out(won, 0) is not None
    with pytest.raises(TxRejected):  # and it stays refused once the first is mined
        btcd.rpc.send_raw_transaction(raws[second])
    view = race.alice.observe(ref)
    assert view.status is (LegStatus.REDEEMED if first == "redeem" else LegStatus.REFUNDED)
    with pytest.raises(HtlcAlreadySettled):
        (race.alice.refund(ref) if first == "redeem" else race.bob.redeem(ref, secret))


@pytest.mark.parametrize("first", ["redeem", "refund"])
@pytest.mark.parametrize("offset", [-1, 0])
def test_ledger_redeem_and_refund_at_the_timelock_exactly_one_pays(
        ledger_side: LedgerSide, offset: int, first: str) -> None:
    """The ledger's windows: redeem while clock < timelock, refund from the timelock on; at
    either side of the boundary, in either order, one settles and the other is refused."""
    relayer = ledger_side.leg(ledger_side.relayer_key)
    user = ledger_side.leg(ledger_side.user_key)
    secret = new_secret()
    terms = LegTerms(relayer.chain, ledger_side.asset, 300, hashlock_of(secret),
                     relayer.now() + 3_600, relayer.account, user.account)
    ref = relayer.broadcast_lock(relayer.prepare_lock(terms))
    ledger_side.clock.t = float(terms.expiry.value + offset)
    winner = "redeem" if offset < 0 else "refund"
    attempts = {"redeem": lambda: user.redeem(ref, secret), "refund": lambda: user.refund(ref)}
    outcomes: dict[str, str | None] = {}
    for name in (first, "refund" if first == "redeem" else "redeem"):
        try:
            attempts[name]()
            outcomes[name] = None
        except (HtlcExpired, HtlcNotExpired, HtlcAlreadySettled) as exc:
            outcomes[name] = type(exc).__name__
    loser = "refund" if winner == "redeem" else "redeem"
    assert outcomes[winner] is None and outcomes[loser] in (
        "HtlcExpired", "HtlcNotExpired", "HtlcAlreadySettled")
    assert ledger_side.balance(user.account) == (300 if winner == "redeem" else 0)
    assert ledger_side.balance(relayer.account) == LEDGER_FUNDS - (
        300 if winner == "redeem" else 0)
    assert relayer.observe(ref).status is (
        LegStatus.REDEEMED if winner == "redeem" else LegStatus.REFUNDED)


# ============================================================================ relayer restarts


class Crash(BaseException):
    """The relayer process dies here (not a BridgeError: `SwapEngine.run` does not catch it)."""


class CrashOnRedeem:
    """A relayer driver whose `redeem` kills the process: before sending anything, or right
    after the node accepted the redeem (then nothing of it reaches the store)."""

    def __init__(self, leg: HtlcLeg, *, after_send: bool) -> None:
        self._leg, self._after_send = leg, after_send
        self.sent: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._leg, name)

    def redeem(self, ref: LegRef, secret: bytes) -> str:
        if self._after_send:
            self.sent.append(self._leg.redeem(ref, secret))
        raise Crash


def _btc_eth_locked(world: World, secret: bytes) -> Any:
    offer = world.offer(world.btc_eth, SATS, hashlock_of(secret))
    world.user_locks(offer)
    world.mine(btc_blocks=DEPTH)
    world.run(3)
    swap = world.swap(offer.id)
    assert swap.status == SwapStatus.PARTICIPANT_LOCKED
    return swap


def test_relayer_restarted_after_the_users_redeem_was_mined_still_redeems_the_users_btc(
        world: World) -> None:
    secret = new_secret()
    swap = _btc_eth_locked(world, secret)
    world.user_redeems(swap, secret)  # mined on anvil; the engine never ran after it
    world.restart()  # the process died: a new engine, new drivers, the same database file
    world.run(2)
    swap = world.swap(swap.id)
    assert swap.secret == secret
    world.mine(btc_blocks=DEPTH)
    world.run(1)
    swap = world.swap(swap.id)
    assert swap.status == SwapStatus.REDEEMED
    txid, paid_to, sats = world.spend_of(swap.initiator)
    assert paid_to == world.relayer_wallet.script_pubkey and 0 < SATS - sats < 1_000
    mined_at = world.btcd.rpc.block_count() - world.btcd.rpc.transaction_info(txid)[
        "confirmations"] + 1  # type: ignore[index]
    assert mined_at < swap.initiator.expiry.value  # before the user could refund
    assert world.engine.legs[world.btc_chain].redeem(_ref(swap.initiator), secret) == txid


def test_relayer_killed_after_storing_the_secret_redeems_once_after_restart(
        world: World) -> None:
    """ETH->BTC: the engine reads the secret from the user's BTC redeem, stores it, and dies
    before it sends its ETH redeem; restarted over the same database it redeems before the
    user's expiry, once; asking again returns that redeem and moves nothing."""
    secret = new_secret()
    swap = _eth_swap_locked(world, world.eth_btc, secret)
    world.user_redeems(swap, secret)
    legs = world.relayer_legs()
    legs[world.eth_chain] = CrashOnRedeem(legs[world.eth_chain],  # type: ignore[assignment]
                                          after_send=False)
    world.restart(legs)
    with pytest.raises(Crash):
        world.engine.run()
    swap = world.swap(swap.id)
    assert swap.secret == secret  # stored before the process died ...
    eth_ref = _ref(swap.initiator)
    assert world.user_eth.observe(eth_ref).status is LegStatus.CONFIRMED  # ... not redeemed
    relayer_eth = world.eth(world.relayer.evm)

    world.restart()
    world.run(2)
    swap = world.swap(swap.id)
    assert swap.status == SwapStatus.REDEEMED
    eth_leg = world.engine.legs[world.eth_chain]
    tx = eth_leg.redeem(eth_ref, secret)  # a second attempt: the mined redeem, nothing sent
    gained = world.eth(world.relayer.evm) - relayer_eth
    assert gained == WEI - world.gas_wei(tx)  # paid exactly once
    receipt = world.wait_receipt(tx)
    assert world.w3.eth.get_block(receipt["blockNumber"])["timestamp"] < (
        swap.initiator.expiry.value)
    assert eth_leg.redeem(eth_ref, secret) == tx
    assert world.eth(world.relayer.evm) - relayer_eth == gained


def test_relayer_killed_right_after_sending_its_redeem_does_not_send_another(
        world: World) -> None:
    """BTC->ETH: the engine's BTC redeem reached the mempool, then the process died before
    storing anything; the restarted engine finds that redeem (idempotent) and the outpoint is
    spent exactly once, to the relayer."""
    secret = new_secret()
    swap = _btc_eth_locked(world, secret)
    world.user_redeems(swap, secret)
    legs = world.relayer_legs()
    crashing = CrashOnRedeem(legs[world.btc_chain], after_send=True)
    legs[world.btc_chain] = crashing  # type: ignore[assignment]
    world.restart(legs)
    with pytest.raises(Crash):
        world.engine.run()
    [sent] = crashing.sent
    assert sent in world.btcd.rpc.mempool_txids()

    world.restart()
    world.engine.run()  # redeems again: the driver returns the one in the mempool
    assert world.btcd.rpc.mempool_txids() & {sent} == {sent}
    world.mine(btc_blocks=DEPTH)
    world.run(1)
    swap = world.swap(swap.id)
    assert swap.status == SwapStatus.REDEEMED
    txid, paid_to, _ = world.spend_of(swap.initiator)
    assert (txid, paid_to) == (sent, world.relayer_wallet.script_pubkey)


# ============================================================================ margins


def test_offer_with_a_timelock_gap_below_the_safety_margin_is_refused_and_stores_nothing(
        world: World) -> None:
    """BTC->ETH with depth 2 on both: margin 2 + 2 + 60 = 64 s. The user's 600 blocks count as
    450 s (blocks 25% fast), so our ETH leg may last 386 s, not 387; ETH->BTC: the user's 600 s
    against our blocks counted 25% slow, 428 blocks (535 s) pass, 429 (537 s) do not."""
    short_btc_eth = world.btc_eth.model_copy(update={"relayer_timelock_s": 387})
    short_eth_btc = world.eth_btc.model_copy(update={"relayer_timelock_s": 429})
    hashlock = hashlock_of(new_secret())
    with pytest.raises(TimelockTooShort):
        world.offer(short_btc_eth, SATS, hashlock)
    with pytest.raises(TimelockTooShort):
        world.offer(short_eth_btc, WEI, hashlock)
    assert world.store.open_swaps() == []
    ok = world.offer(world.btc_eth.model_copy(update={"relayer_timelock_s": 386}), SATS,
                     hashlock)  # the hashlock was not taken by the refused offers
    assert world.store.open_swaps() == [ok]
    ok2 = world.offer(world.eth_btc.model_copy(update={"relayer_timelock_s": 428}), WEI,
                      hashlock_of(new_secret()))
    assert {s.id for s in world.store.open_swaps()} == {ok.id, ok2.id}


def test_engine_does_not_lock_when_the_margin_is_gone_by_the_time_the_user_locked(
        world: World) -> None:
    """The margin is checked again before our lock: 140 BTC blocks after the offer, the user's
    leg counts as (600 - 140 - 2) * 0.75 = 343 s against our 300 s less the seconds anvil's
    clock moved meanwhile (a margin of 64 s is needed): no ETH is locked."""
    offer = world.offer(world.btc_eth, SATS, hashlock_of(new_secret()))
    world.user_locks(offer)
    world.mine(btc_blocks=140)  # the lock stays within find_lock's 144-block scan
    relayer_eth = world.eth(world.relayer.evm)
    world.run(3)
    swap = world.swap(offer.id)
    assert swap.initiator.status == LegStatus.CONFIRMED
    assert (swap.status, swap.participant.lock_tx) == (SwapStatus.OFFERED, None)
    assert world.eth(world.relayer.evm) == relayer_eth


# ============================================================================ preimage lengths


@pytest.mark.parametrize("length", [31, 33])
def test_every_leg_driver_refuses_a_preimage_not_32_bytes_before_sending(
        btcd: Any, w3_eth: Web3, ledger_side: LedgerSide, length: int) -> None:
    """Locks whose hashlock is the SHA-256 of a 31- or 33-byte value: each driver refuses
    that value as a secret (BadPreimage) and the lock stays as it was."""
    odd = os.urandom(length)
    hashlock = hashlib.sha256(odd).digest()
    race = BtcRace(btcd)
    btc_ref = race.lock(hashlock, race.alice.now() + 10)
    with pytest.raises(BadPreimage):
        race.bob.redeem(btc_ref, odd)
    assert btcd.rpc.tx_out(*_outpoint(btc_ref)) is not None  # nothing spent it
    evm = EvmRace(w3_eth)
    prepared = evm.leg.prepare_lock(LegTerms(evm.leg.chain, NATIVE_TOKEN, ETHER, hashlock,
                                             evm.leg.now() + 100, evm.sender, evm.recipient))
    eth_ref = evm.leg.broadcast_lock(prepared)
    w3_eth.eth.wait_for_transaction_receipt(prepared.tx_ids[-1], timeout=10)  # type: ignore[arg-type]
    with pytest.raises(BadPreimage):
        evm.leg.redeem(eth_ref, odd)
    assert evm.leg.observe(eth_ref).status is LegStatus.CONFIRMED  # depth 1: still locked
    relayer = ledger_side.leg(ledger_side.relayer_key)
    user = ledger_side.leg(ledger_side.user_key)
    ledger_ref = relayer.broadcast_lock(relayer.prepare_lock(LegTerms(
        relayer.chain, ledger_side.asset, 300, hashlock, relayer.now() + 100, relayer.account,
        user.account)))
    with pytest.raises(BadPreimage):
        user.redeem(ledger_ref, odd)
    assert relayer.observe(ledger_ref).status is LegStatus.CONFIRMED
    assert ledger_side.balance(user.account) == 0
