"""The ledger's side of HTLC-driven minting: the intent registry, certified mints into HTLCs of
origin ``mint`` (exactly once), redeem, and the refund that burns; every refusal changes nothing
and the journal replays it all."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace

import pytest

from adapters.errors import InvalidAddress, ValidationError
from htlc.errors import BadPreimage, HtlcNotExpired
from htlc.mint_intent import MintIntent, mint_htlc_id
from ledger.db import make_engine
from ledger.service import Ledger
from ledger.testing import Harness
from ledger.types import HtlcOrigin, HtlcState, MintStatus

T0 = 1_700_000_000.5
SECRET = bytes(range(32))
HASHLOCK = hashlib.sha256(SECRET).digest()
ACCOUNT = b"\x11" * 32
REFUND_PUB = b"\x02" + b"\x33" * 32


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


@pytest.fixture()
def ledger(h: Harness, tmp_path) -> Iterator[tuple[Harness, Ledger, FakeClock]]:
    clock = FakeClock()
    ledger = Ledger(make_engine(f"sqlite:///{tmp_path}/ledger.sqlite"), h.network, clock)
    yield h, ledger, clock
    ledger.close()


def _intent(h: Harness, **kw: object) -> MintIntent:
    terms: dict[str, object] = {"chain": h.chain, "account": ACCOUNT, "hashlock": HASHLOCK,
                                "refund_pubkey": REFUND_PUB, "btc_expiry": 500,
                                "ledger_timelock": int(T0) + 60}
    terms.update(kw)
    return MintIntent(**terms)  # type: ignore[arg-type]


def _funding(h: Harness, intent: MintIntent, nonce: int = 7, amount: int = 5000) -> object:
    event = replace(h.lock(nonce, amount, intent.intent_id), sender="htlc:" + "ab" * 32 + ":0")
    return h.certify(event)


def _asset(ledger: Ledger, asset: str) -> tuple[int, int, int]:
    [a] = [a for a in ledger.assets() if a.asset == asset]
    return a.supply, a.minted_total, a.burned_total


def test_funded_intent_mints_once_into_a_locked_htlc_and_redeem_credits(ledger) -> None:
    h, led, _clock = ledger
    intent = _intent(h)
    reg = led.register_mint_intent(intent)
    assert reg.created and led.register_mint_intent(intent).created is False
    assert [r.intent for r in led.mint_intents(h.chain)] == [intent]
    request = _funding(h, intent)
    first = led.mint(request)  # type: ignore[arg-type]
    assert first.status is MintStatus.MINTED
    assert led.mint(request).status is MintStatus.DUPLICATE  # type: ignore[arg-type]
    htlc = led.htlc(mint_htlc_id(request.event.event_id))  # type: ignore[attr-defined]
    assert htlc is not None and htlc.origin is HtlcOrigin.MINT and htlc.sender is None
    assert (htlc.recipient, htlc.amount, htlc.hashlock, htlc.timelock, htlc.state) == (
        ACCOUNT, 5000, HASHLOCK, intent.ledger_timelock, HtlcState.LOCKED)
    assert _asset(led, h.native_asset) == (5000, 5000, 0)
    assert led.account(ACCOUNT).balances == {}
    led.check_invariants()
    for bad in (SECRET[:31], SECRET + b"\x00"):
        with pytest.raises(BadPreimage):
            led.redeem_htlc(htlc.htlc_id, bad)
    assert led.redeem_htlc(htlc.htlc_id, SECRET).state is HtlcState.REDEEMED
    assert led.account(ACCOUNT).balances == {h.native_asset: 5000}
    led.check_invariants()
    assert led.verify_journal() > 0


def test_expired_minted_htlc_refund_burns_the_amount(ledger) -> None:
    h, led, clock = ledger
    intent = _intent(h)
    led.register_mint_intent(intent)
    request = _funding(h, intent)
    led.mint(request)  # type: ignore[arg-type]
    htlc_id = mint_htlc_id(request.event.event_id)  # type: ignore[attr-defined]
    with pytest.raises(HtlcNotExpired):
        led.refund_htlc(htlc_id)
    clock.t = intent.ledger_timelock
    refunded = led.refund_htlc(htlc_id)
    assert refunded.state is HtlcState.REFUNDED
    assert _asset(led, h.native_asset) == (0, 5000, 5000)
    assert led.account(ACCOUNT).balances == {}
    led.check_invariants()
    assert led.verify_journal() > 0


def test_mint_refusals_change_nothing(ledger) -> None:
    h, led, clock = ledger
    intent = _intent(h)
    unmarked_of_nothing = _funding(h, _intent(h, hashlock=b"\x01" * 32), nonce=1)
    assert led.mint(unmarked_of_nothing).status is MintStatus.REJECTED  # type: ignore[arg-type]
    led.register_mint_intent(intent)
    clock.t = intent.ledger_timelock  # the ledger HTLC could no longer be redeemed
    late = led.mint(_funding(h, intent, nonce=2))  # type: ignore[arg-type]
    assert (late.status, late.code) == (MintStatus.REJECTED, "invalid_input")
    assert _asset(led, h.native_asset) == (0, 0, 0)
    led.check_invariants()


def test_registry_refusals(ledger) -> None:
    h, led, _clock = ledger
    with pytest.raises(ValidationError):
        led.register_mint_intent(_intent(h, ledger_timelock=int(T0)))  # not in the future
    intent = _intent(h)
    led.register_mint_intent(intent)
    with pytest.raises(ValidationError):  # one intent per hashlock
        led.register_mint_intent(_intent(h, ledger_timelock=int(T0) + 61))
    with pytest.raises(InvalidAddress):  # an intent id is no account
        led.register_deposit_account(h.chain, intent.intent_id)
    with pytest.raises(InvalidAddress):
        _intent(h, refund_pubkey=b"\x04" + b"\x33" * 32)
    with pytest.raises(ValidationError):
        _intent(h, btc_expiry=500_000_000)
    assert len(led.mint_intents(h.chain)) == 1
