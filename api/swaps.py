"""The relayer's swap API: quotes, starting a swap, a swap's state and what the user must do
next, and the watchtower's intake of a user's pre-signed Bitcoin refund.

Routes (amounts are decimal strings in base units; identities and hashes ``0x`` hex; errors are
``{"error": {"code", "message"}}``)::

    GET  /v1/quotes[?pair=&amount=]   the pairs offered; with both, a priced quote
    POST /v1/swaps                    agree terms with the relayer (201, the swap)
    GET  /v1/swaps/{id}               both legs, timelocks, next action, what the user must do
    POST /v1/swaps/{id}/refund        the user's pre-signed refund of a Bitcoin leg

Thin: parsing and shaping only; the rules are in `relayer.quotes`, `relayer.swap_engine` and
`htlc.machine`. The user's secret never travels here: only its SHA-256 hashlock.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from adapters.errors import ValidationError
from htlc.machine import Action, LegStatus, Now, SwapStatus
from htlc.timelock import Instant, expired
from relayer.quotes import SwapPair, SwapsSection, quote
from relayer.swap_engine import SwapEngine, UnknownSwap, next_action_for
from relayer.swap_store import SwapLegRecord, SwapRecord, SwapStore

HEX = r"^0x([0-9a-fA-F]{2})+$"
AMOUNT = r"^[1-9][0-9]{0,77}$"


class PairView(BaseModel):
    name: str
    user_chain: str
    user_asset: str
    relayer_chain: str
    relayer_asset: str
    rate_num: str
    rate_den: str
    fee_bps: int
    min_amount: str
    max_amount: str
    user_timelock_s: int
    relayer_timelock_s: int
    lock_deadline_s: int
    enabled: bool


class QuoteView(BaseModel):
    pair: str
    user_amount: str
    relayer_amount: str
    fee: str
    lock_amount: str  # what the relayer locks for the user: relayer_amount - fee


class QuotesView(BaseModel):
    pairs: list[PairView]
    quote: QuoteView | None = None


class SwapRequest(BaseModel):
    """Terms the user asks for. `user_sender`: the user's identity on the user chain (Bitcoin:
    33-byte compressed refund key; EVM: 20-byte address; ledger: 32-byte account);
    `user_recipient`: where the user is paid on the relayer chain (same forms)."""

    model_config = ConfigDict(extra="forbid")

    pair: str = Field(min_length=3, max_length=64)
    amount: str = Field(pattern=AMOUNT)
    hashlock: str = Field(pattern=HEX, min_length=66, max_length=66)
    user_sender: str = Field(pattern=HEX, max_length=68)
    user_recipient: str = Field(pattern=HEX, max_length=68)


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    raw_tx: str = Field(pattern=HEX, max_length=4000)  # BIP-144 serialization, hex


class InstantView(BaseModel):
    kind: str  # "height" (Bitcoin block height) or "time" (unix seconds)
    value: int


class LegView(BaseModel):
    chain: str
    asset: str
    amount: str
    sender: str
    recipient: str
    expiry: InstantView
    status: str
    lock_ref: str | None
    htlc: dict[str, Any]  # how this leg is locked on its chain (address, contract, params)


class UserAction(BaseModel):
    step: str  # lock | wait | redeem | refund | none
    detail: str


class SwapView(BaseModel):
    id: str
    pair: str
    status: str
    reason: str
    hashlock: str
    secret: str | None  # public once revealed on a chain
    fee: str
    rate_num: str
    rate_den: str
    lock_deadline: InstantView
    initiator: LegView  # the user's leg (locked first, longer timelock)
    participant: LegView  # the relayer's leg
    next_action: str
    user_action: UserAction
    user_refund_held: bool
    created_at: float
    updated_at: float
    history: list[dict[str, Any]]


def _pair_view(p: SwapPair) -> PairView:
    return PairView(name=p.name, user_chain=p.user_chain, user_asset=p.user_asset,
                    relayer_chain=p.relayer_chain, relayer_asset=p.relayer_asset,
                    rate_num=str(p.rate_num), rate_den=str(p.rate_den), fee_bps=p.fee_bps,
                    min_amount=str(p.min_amount), max_amount=str(p.max_amount),
                    user_timelock_s=p.user_timelock_s, relayer_timelock_s=p.relayer_timelock_s,
                    lock_deadline_s=p.lock_deadline_s, enabled=p.enabled)


def _instant(i: Instant) -> InstantView:
    return InstantView(kind=i.kind, value=i.value)


def _raw(text: str, name: str) -> bytes:
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError as exc:
        raise ValidationError(f"{name} is not hex") from exc


def htlc_instructions(leg: SwapLegRecord, hashlock: bytes, engine: SwapEngine) -> dict[str, Any]:
    """How `leg` is locked on its chain, derived from the agreed terms only.

    Bitcoin: the P2WSH HTLC (`htlc.bitcoin`) and its address; EVM: the HTLC contract, the
    ``lock`` arguments and the id the contract derives (`htlc.evm.compute_id`); ledger: the
    ``htlc_lock`` fields (`ledger.transactions`).
    """
    driver: Any = engine.legs[leg.chain]
    namespace = leg.chain.split(":", 1)[0]
    sender, recipient = _raw(leg.sender, "sender"), _raw(leg.recipient, "recipient")
    if namespace == "bip122":
        from htlc.bitcoin import HtlcScript
        from htlc.timelock import BlockHeight

        script = HtlcScript(hashlock, recipient, sender, BlockHeight(leg.expiry.value))
        return {"kind": "bitcoin_p2wsh_htlc", "address": script.address(driver.network),
                "witness_script": script.witness_script.hex(), "amount_sats": str(leg.amount),
                "refund_from_height": leg.expiry.value}
    if namespace == "eip155":
        from htlc.evm import compute_id

        contract = driver.contract_address
        htlc_id = compute_id(chain_id=int(leg.chain.split(":")[1]), contract=contract,
                             sender=leg.sender, recipient=leg.recipient, token=leg.asset,
                             amount=leg.amount, hashlock=hashlock, timelock=leg.expiry.value)
        return {"kind": "evm_htlc", "contract": contract, "call": "lock",
                "args": {"id": "0x" + htlc_id.hex(), "recipient": leg.recipient,
                         "token": leg.asset, "amount": str(leg.amount),
                         "hashlock": "0x" + hashlock.hex(), "timelock": leg.expiry.value},
                "value_wei": str(leg.amount) if int(leg.asset, 16) == 0 else "0"}
    return {"kind": "ledger_htlc", "tx_kind": "htlc_lock", "recipient": leg.recipient,
            "asset": leg.asset, "amount": str(leg.amount), "hashlock": "0x" + hashlock.hex(),
            "timelock": leg.expiry.value}


def user_action(record: SwapRecord, action: Action, now: Now) -> UserAction:
    """What the user (the initiator) must do now, in words, from the swap and its next action."""
    ini, par = record.initiator, record.participant
    ini_expired = expired(ini.expiry, now.initiator)
    live = (LegStatus.LOCKED, LegStatus.CONFIRMED)
    if record.status == SwapStatus.REDEEMED:
        return UserAction(step="none", detail="done: you redeemed your asset; the relayer "
                          "redeemed your lock")
    if record.status == SwapStatus.REFUNDED and ini.status == LegStatus.REFUNDED:
        return UserAction(step="none", detail="done: your lock was refunded")
    if ini.status == LegStatus.NONE:
        if action == Action.WAIT_INITIATOR_LOCK:
            return UserAction(step="lock", detail=(
                f"lock {ini.amount} base units of {ini.asset} on {ini.chain} in the HTLC of "
                f"`initiator.htlc` (confirmed before {record.lock_deadline.kind} "
                f"{record.lock_deadline.value} on {par.chain}); keep your secret"))
        return UserAction(step="none", detail="the offer expired: do not lock")
    if ini.status in live and par.status in live and par.lock_ref is not None:
        if par.status == LegStatus.CONFIRMED and not expired(par.expiry, now.participant):
            return UserAction(step="redeem", detail=(
                f"redeem the relayer's HTLC {par.lock_ref} on {par.chain} with your secret "
                f"before {par.expiry.kind} {par.expiry.value}"))
        if par.status == LegStatus.LOCKED:
            return UserAction(step="wait", detail="the relayer's lock is confirming")
    if ini.status in live and par.status == LegStatus.REDEEMED:
        return UserAction(step="wait", detail="you redeemed; the relayer is redeeming your lock")
    if ini.status in live and ini_expired:
        if record.user_refund is not None:
            return UserAction(step="wait", detail="the relayer is broadcasting your pre-signed "
                              "refund (you may also broadcast it yourself)")
        return UserAction(step="refund", detail=(
            f"refund your HTLC {ini.lock_ref} on {ini.chain} now (its timelock "
            f"{ini.expiry.kind} {ini.expiry.value} has passed)"))
    if ini.status == LegStatus.LOCKED and par.status == LegStatus.NONE:
        return UserAction(step="wait", detail="your lock is confirming; then the relayer locks")
    if ini.status in live:
        return UserAction(step="wait", detail=(
            f"the swap will not complete: refund your HTLC {ini.lock_ref} on {ini.chain} from "
            f"{ini.expiry.kind} {ini.expiry.value} (send a pre-signed refund to "
            "POST /v1/swaps/{id}/refund to have the relayer broadcast it)"))
    return UserAction(step="wait", detail="waiting for the chains")


def _leg_view(leg: SwapLegRecord, hashlock: bytes, engine: SwapEngine) -> LegView:
    return LegView(chain=leg.chain, asset=leg.asset, amount=str(leg.amount), sender=leg.sender,
                   recipient=leg.recipient, expiry=_instant(leg.expiry), status=leg.status,
                   lock_ref=leg.lock_ref, htlc=htlc_instructions(leg, hashlock, engine))


def swap_view(record: SwapRecord, engine: SwapEngine) -> SwapView:
    """The API shape of `record`, with its next action at both chains' clocks now."""
    ini, par = engine.legs[record.initiator.chain], engine.legs[record.participant.chain]
    now = Now(ini.now(), par.now())
    legs = SwapStore.legs(record, anyone_can_refund=record.initiator.chain
                          in engine.anyone_can_refund)
    action = next_action_for(legs, now)
    history = [{"from": h.from_status, "to": h.to_status, "reason": h.reason, "at": h.at}
               for h in engine.store.history(record.id)]
    return SwapView(
        id=record.id, pair=record.pair, status=record.status, reason=record.reason,
        hashlock="0x" + record.hashlock.hex(),
        secret=None if record.secret is None else "0x" + record.secret.hex(),
        fee=str(record.fee), rate_num=str(record.rate_num), rate_den=str(record.rate_den),
        lock_deadline=_instant(record.lock_deadline),
        initiator=_leg_view(record.initiator, record.hashlock, engine),
        participant=_leg_view(record.participant, record.hashlock, engine),
        next_action=action.value, user_action=user_action(record, action, now),
        user_refund_held=record.user_refund is not None, created_at=record.created_at,
        updated_at=record.updated_at, history=history)


def swaps_router(engine: SwapEngine, section: SwapsSection) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/quotes", response_model=QuotesView)
    def quotes(pair: str | None = Query(None, min_length=3, max_length=64),
               amount: str | None = Query(None, pattern=AMOUNT)) -> QuotesView:
        """The pairs offered (all, or `pair`); with `pair` and `amount` (user-asset base
        units), the priced quote (`relayer.quotes.quote`: integer arithmetic, rounded in the
        relayer's favour)."""
        pairs = section.pairs if pair is None else [section.pair(pair)]
        view = QuotesView(pairs=[_pair_view(p) for p in pairs if p.enabled])
        if amount is not None:
            if pair is None:
                raise ValidationError("a quote needs a pair")
            q = quote(pairs[0], int(amount))
            view.quote = QuoteView(pair=q.pair, user_amount=str(q.user_amount),
                                   relayer_amount=str(q.relayer_amount), fee=str(q.fee),
                                   lock_amount=str(q.lock_amount))
        return view

    @router.post("/v1/swaps", response_model=SwapView, status_code=201)
    def start_swap(body: SwapRequest) -> SwapView:
        """Agree a swap: the relayer prices it, fixes both timelocks on their chains' clocks
        (refused if the gap would not leave the safety margin) and returns the HTLC the user
        must lock. Nothing moves until the user's lock is confirmed on chain."""
        p = section.pair(body.pair)
        record = engine.offer(p, int(body.amount), _raw(body.hashlock, "hashlock"),
                              user_sender=_raw(body.user_sender, "user_sender"),
                              user_recipient=_raw(body.user_recipient, "user_recipient"))
        return swap_view(record, engine)

    @router.get("/v1/swaps/{swap_id}", response_model=SwapView)
    def get_swap(swap_id: str) -> SwapView:
        record = engine.store.get(swap_id.lower())
        if record is None:
            raise HTTPException(404, f"no swap {swap_id}")
        return swap_view(record, engine)

    @router.post("/v1/swaps/{swap_id}/refund", response_model=SwapView)
    def user_refund(swap_id: str, body: RefundRequest) -> SwapView:
        """Hand the relayer your pre-signed refund of your Bitcoin lock; it broadcasts it at
        the timelock if the swap does not complete (checked against the lock on chain)."""
        try:
            record = engine.accept_user_refund(swap_id.lower(), _raw(body.raw_tx, "raw_tx"))
        except UnknownSwap as exc:
            raise HTTPException(404, str(exc)) from exc
        return swap_view(record, engine)

    return router
