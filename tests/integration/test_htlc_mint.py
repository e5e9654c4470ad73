"""HTLC-driven minting on a real btcd node: a user turns BTC into wBTC without trusting anyone.

The user registers a mint intent on the ledger, funds its mint-HTLC address on btcd; the
validators attest it (within the safety margin, by their own clocks), the ledger mints into an
HTLC of origin ``mint``; the user redeems it with the secret and the relayer sweeps the BTC into
the vault with m validator signatures and that secret. If the user walks away, the ledger HTLC
expires and burns, and the user refunds the BTC at its CLTV. Every spend is checked by btcd.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from adapters.base import Coin, ReleasePlan, event_id
from adapters.bitcoin.adapter import BitcoinAdapter
from adapters.bitcoin.intents import IntentRegistry
from adapters.bitcoin.keys import public_key
from adapters.bitcoin.scripts import Vault, outpoint_nonce, script_pubkey_from_address
from adapters.bitcoin.tx import Coin as TxCoin
from adapters.errors import BridgeError
from htlc import mint
from htlc.errors import BadPreimage
from htlc.hashlock import hashlock_of
from htlc.mint_intent import MintIntent, mint_htlc_id
from ledger.service import Ledger
from ledger.types import HtlcOrigin, HtlcState
from relayer.coins import HTLC, HTLC_BURNED, CoinStore
from relayer.htlc_mint import HtlcMints, intent_source
from relayer.solvency import custody_report
from tests.integration.btc_stack import NETWORK, BtcStack
from validators.config import ValidatorSection
from validators.daemon import ValidatorDaemon
from validators.htlc_sweep import SweepCheck
from validators.keystore import ValidatorKeys
from validators.signer import RefusalReason, SigningRefused

PAYEE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
AMOUNT = 1_000_000
TOPUP = 100_000  # the operator's fee reserve: pays the sweep's miner fee


class LedgerClock:
    """The ledger's clock: the wall clock plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


class MintStack(BtcStack):
    """`BtcStack` whose ledger runs on a movable clock that validators and relayer also read,
    and whose relayer adapter watches the ledger's mint intents (what the relayer wiring does)."""

    def __init__(self, tmp: Path, btcd: Any) -> None:
        self.clock = LedgerClock()
        super().__init__(tmp, btcd)
        self.ledger.close()
        self.ledger = Ledger(self.ledger._engine, NETWORK, self.clock)
        from api.ledger import create_ledger_app

        self.ledger_app = create_ledger_app(self.ledger)
        self.start_relayer()
        for d in self.daemons:
            d.close()
        self.daemons = [self._daemon(i, k) for i, k in enumerate(self.keys)]
        self.jobs = HtlcMints(self.engine.store, self.ledger_client(),
                              {self.chain: self.adapter}, clock=self.clock)

    @property
    def adapter(self) -> BitcoinAdapter:
        return self.engine.chains[self.chain].adapter  # type: ignore[no-any-return]

    def start_relayer(self) -> None:
        super().start_relayer()
        a = self.engine.chains[self.chain].adapter
        a.intents = IntentRegistry(a.vault, self.chain, intent_source(self.ledger_client(),
                                                                      self.chain))
        a.ledger_clock = self.clock

    def _daemon(self, i: int, keys: ValidatorKeys) -> ValidatorDaemon:
        clock = getattr(self, "clock", None)
        section = ValidatorSection(
            name=f"v{i}", keystore=self.tmp / f"v{i}.json", passphrase="unused-in-process",
            relayer_url="http://relayer", ledger_url="http://ledger",
            state_file=self.tmp / f"v{i}-{keys.ed25519_public_hex[:10]}.state.json")
        return ValidatorDaemon(section, NETWORK, [], keys, bitcoin=self.cfg.bitcoin,
                               ledger=self.ledger_client(), relayer=self.relayer_http,
                               ledger_clock=clock)

    def step(self, rounds: int = 2) -> None:
        for _ in range(rounds):
            self.settle(1)
            self.jobs.run()
            self.run_validators()
            self.jobs.run()

    def own_sweep_check(self) -> SweepCheck:
        """A validator's own sweep check: its own adapter, its own ledger connection."""
        client = self.ledger_client()
        a = BitcoinAdapter(self.btc, intent_source=intent_source(client, self.chain))
        return SweepCheck({self.chain: a}, client.htlc)


class User:
    def __init__(self, stack: MintStack, *, blocks: int = 200, ledger_s: int = 60) -> None:
        self.key = SigningKey.generate()
        self.account = bytes(self.key.verify_key)
        self.secret = secrets.token_bytes(32)
        self.refund_secret = secrets.token_bytes(32)
        head = stack.btcd.rpc.block_count()
        self.intent = MintIntent(
            chain=stack.chain, account=self.account, hashlock=hashlock_of(self.secret),
            refund_pubkey=public_key(self.refund_secret), btc_expiry=head + blocks,
            ledger_timelock=int(stack.clock.now()) + ledger_s)
        stack.ledger_client().register_mint_intent(self.intent)
        self.htlc = mint.MintHtlc(self.intent, stack.btc.vault)
        self.txid = stack.pay(self.htlc.address, AMOUNT)
        raw = stack.btcd.rpc.raw_transaction(self.txid)
        self.vout = next(v for v, amt in _outputs(raw, self.htlc.script_pubkey))
        self.event_id = event_id(stack.chain, stack.btc.vault.address,
                                 outpoint_nonce(self.txid, self.vout))
        self.htlc_id = mint_htlc_id(self.event_id)
        self.coin = Coin(self.txid, self.vout, AMOUNT, self.intent.intent_id)


def _outputs(raw: bytes, spk: bytes) -> list[tuple[int, int]]:
    from bitcoin.core import CTransaction

    tx = CTransaction.deserialize(raw)
    return [(i, int(o.nValue)) for i, o in enumerate(tx.vout) if bytes(o.scriptPubKey) == spk]


@pytest.fixture
def stack(tmp_path: Path, btcd: Any) -> Any:
    s = MintStack(tmp_path, btcd)
    yield s
    s.close()


def _supply(stack: MintStack) -> tuple[int, int, int]:
    [a] = [a for a in stack.ledger.assets() if a.asset == stack.asset]
    return a.supply, a.minted_total, a.burned_total


def _custody(stack: MintStack) -> Any:
    coins = CoinStore(stack.engine.store)
    [line] = custody_report(stack.ledger.assets(), {stack.chain: (
        coins.coins(stack.chain, ("unspent", "reserved", HTLC)),
        coins.pending_releases(stack.chain), coins.fee_reserve(stack.chain))},
        {stack.chain: stack.adapter.coin_unspent})
    return line


def test_user_redeems_minted_htlc_and_relayer_sweeps_btc_into_the_vault(stack: MintStack) -> None:
    stack.pay(stack.btc.vault.address, TOPUP)  # fee reserve for the sweep
    user = User(stack)
    stack.step()
    htlc = stack.ledger.htlc(user.htlc_id)
    assert htlc is not None and htlc.origin is HtlcOrigin.MINT and htlc.state is HtlcState.LOCKED
    assert (htlc.recipient, htlc.amount, htlc.hashlock) == (user.account, AMOUNT,
                                                            user.intent.hashlock)
    assert _supply(stack)[:2] == (AMOUNT, AMOUNT) and stack.balance(user.account) == 0
    stack.ledger.check_invariants()
    line = _custody(stack)  # the HTLC coin backs the locked ledger HTLC
    assert line.balanced and line.holdings - line.fee_reserve == AMOUNT

    # refusals while the ledger HTLC is locked: no sweep, no short or long preimage
    check = stack.own_sweep_check()
    plan = stack.adapter.plan_sweep(user.coin, 2)
    with pytest.raises(SigningRefused) as refused:
        check.check(plan)
    assert refused.value.reason is RefusalReason.HTLC_NOT_REDEEMED
    assert CoinStore(stack.engine.store).plans(stack.chain, ("signing",)) == []
    for bad in (user.secret[:31], user.secret + b"\x00"):
        with pytest.raises(BadPreimage):
            stack.ledger_client().redeem_htlc(user.htlc_id, bad)

    redeemed = stack.ledger_client().redeem_htlc(user.htlc_id, user.secret)
    assert redeemed.state is HtlcState.REDEEMED and stack.balance(user.account) == AMOUNT

    # a sweep paying anything but the vault is refused by a validator's own check
    other = Vault(tuple(public_key(secrets.token_bytes(32)) for _ in range(3)), 2, "regtest")
    stolen = mint.build_sweep(TxCoin(user.txid, user.vout, AMOUNT),
                              mint.MintHtlc(user.intent, other), 2)
    bad_plan = ReleasePlan("htlc_sweep", stack.chain, stolen.txid, stolen.tx, (user.coin,),
                           other.address, 0, stolen.vault_sats, stolen.fee_sats, 2, 0)
    with pytest.raises(SigningRefused) as refused:
        check.check(bad_plan)
    assert refused.value.reason is RefusalReason.RELEASE_MISMATCH
    assert check.check(plan) > 0  # the honest sweep passes once redeemed

    stack.step(3)
    coins = CoinStore(stack.engine.store)
    [sweep] = [p for p in coins.plans(stack.chain, ("final",)) if p.kind == "htlc_sweep"]
    assert stack.adapter.coin_unspent(user.coin) is None  # spent on btcd
    swept = Coin(sweep.txid, 0, AMOUNT - int(__import__("json").loads(sweep.plan)["fee"]))
    assert stack.adapter.coin_unspent(swept) == swept.amount  # an ordinary vault coin now
    assert any(c.txid == sweep.txid and c.vout == 0 for c in coins.coins(stack.chain))
    raw = stack.btcd.rpc.raw_transaction(sweep.txid)
    assert mint.REDEEM_BRANCH and user.secret in raw  # the witness carries the preimage
    line = _custody(stack)
    assert line.supply == AMOUNT and line.balanced and line.missing == 0
    stack.ledger.check_invariants()
    assert stack.ledger.verify_journal() > 0


def test_walk_away_expires_and_burns_the_minted_htlc_and_user_refunds_btc_at_cltv(
        stack: MintStack) -> None:
    before = _supply(stack)
    user = User(stack, blocks=80, ledger_s=30)
    stack.step()
    htlc = stack.ledger.htlc(user.htlc_id)
    assert htlc is not None and htlc.state is HtlcState.LOCKED
    assert _supply(stack)[0] == before[0] + AMOUNT
    assert _custody(stack).balanced

    stack.clock.offset += 31  # the ledger HTLC's timelock passes; the user never redeemed
    stack.jobs.run()
    htlc = stack.ledger.htlc(user.htlc_id)
    assert htlc is not None and htlc.state is HtlcState.REFUNDED
    supply, minted, burned = _supply(stack)
    assert (supply, minted - burned) == (before[0], before[0]) and burned == before[2] + AMOUNT
    assert CoinStore(stack.engine.store).coins(stack.chain, (HTLC_BURNED,)) == [user.coin]
    with pytest.raises(BadPreimage):  # too late and wrong length alike: nothing moves
        stack.ledger_client().redeem_htlc(user.htlc_id, user.secret[:31])
    stack.ledger.check_invariants()
    assert stack.ledger.verify_journal() > 0

    dest = script_pubkey_from_address(PAYEE, "regtest")
    refund = mint.build_user_refund(TxCoin(user.txid, user.vout, AMOUNT), user.htlc,
                                    user.refund_secret, dest, 2)
    try:  # btcd regtest relays non-standard (non-final) txs, but never mines one early
        stack.btcd.rpc.send_raw_transaction(refund)
    except BridgeError:
        pass
    stack.mine(1)
    assert stack.adapter.coin_unspent(user.coin) == AMOUNT  # CLTV: not before the expiry
    stack.mine(user.intent.btc_expiry - stack.btcd.rpc.block_count())
    refund_txid = stack.btcd.rpc.send_raw_transaction(refund)
    stack.mine(1)
    assert stack.btcd.rpc.tx_out(refund_txid, 0, include_mempool=False) is not None
    line = _custody(stack)
    assert line.supply == before[0] and line.balanced


def test_timelock_gap_below_the_margin_is_not_attested_nor_minted(stack: MintStack) -> None:
    before = _supply(stack)
    user = User(stack, blocks=40, ledger_s=35)  # 40 blocks ~ 30 s skewed: no margin left
    stack.step()
    assert stack.ledger.htlc(user.htlc_id) is None and _supply(stack) == before
    [row] = [t for t in stack.lock_transfers() if t.src_tx_hash == user.txid]
    assert row.status == "transfer.held" and "timelock_margin" in (row.reason or "")
    assert stack.engine.store.attestations_for("lock", [row.event_key], 1) == {}
