"""The API's view of a transfer: its lifecycle, confirmations, signatures and what it waits for.

Owns: `TransferOut` and the derivation of each part from stored facts (`load_facts` reads
them for a page of transfers in a few queries, never per row). Must not call a chain or write:
heights come from ``chain_heads`` (written by the engine), signatures from the attestations
the relayer stored, the validator set from the ledger status cached by `api.app.ApiContext`.

- confirmations (locks): ``have`` = head - lock block + 1 (the lock's block counts 1),
  ``need`` = what the source chain's finality rule asks (`api.deposits.Family.confirmations`);
  None for burns (the ledger is final).
- signatures: locks: distinct current members with a stored attestation of the current epoch,
  need = the ledger's threshold; burns: signatures stored for the newest set nonce (EVM bridge)
  or for the newest custody spend (Bitcoin, Cosmos), need = that custody's threshold.
- waiting: the engine's persisted ``wait_reason``/``wait_until`` when it is a risk reason
  (rate limit, large-transfer delay, pause, held) first; else derived from the status (a
  persisted ``quorum`` may be a pass old): observed -> confirmations (ETA from the
  missing blocks and the chain's block time), confirmed without a quorum -> quorum, held ->
  held, a submitted release -> confirmations of the release; None once it moves on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import Connection, and_, bindparam, func, select

from adapters.errors import UnknownChain
from api.deposits import chain_config
from relayer.heads import ChainHead, chain_heads
from relayer.machine import TransferKind, TransferStatus
from relayer.models import Attestation, CustodyPlan, TransferHistory
from validators.risk import WaitReason, route_key

if TYPE_CHECKING:
    from api.app import ApiContext

H = TransferHistory.__table__  # type: ignore[attr-defined]
A = Attestation.__table__  # type: ignore[attr-defined]
P = CustodyPlan.__table__  # type: ignore[attr-defined]
S = TransferStatus
AWAITING_DEPOSIT = "awaiting_deposit"
# Reasons only the engine knows (persisted on the transfer); confirmations and quorum are
# derived here from fresher facts than the engine's last pass.
RISK_REASONS = frozenset({WaitReason.RATE_LIMIT.value, WaitReason.DELAY.value,
                          WaitReason.PAUSED.value, WaitReason.HELD.value})


class Step(BaseModel):
    status: str
    at: float
    reason: str


class Progress(BaseModel):
    have: int | None
    need: int | None


class Waiting(BaseModel):
    reason: str  # validators.risk.WaitReason value
    eta: float | None  # unix seconds; None: unknown, or only an operator can move it


class TransferOut(BaseModel):
    id: str  # the request id when the transfer was asked for through the API, else event_key
    request_id: str | None
    event_key: str | None
    kind: str
    route: str
    source_chain: str
    dest_chain: str
    asset: str
    status: str
    reason: str
    amount: str
    sender: str | None
    recipient: str
    source_tx: str | None
    dest_tx: str | None
    block_number: int | None
    ledger_seq: int | None
    created_at: float
    updated_at: float
    lifecycle: list[Step]
    confirmations: Progress | None
    signatures: Progress | None
    waiting: Waiting | None
    instructions: dict[str, Any] | None = None


@dataclass
class Facts:
    """What the views of one page of transfers need, loaded together."""

    ctx: ApiContext
    now: float
    status: Any  # ledger.types.LedgerStatus | None
    heads: dict[str, ChainHead]
    history: dict[int, list[Any]] = field(default_factory=dict)
    lock_sigs: dict[str, int] = field(default_factory=dict)  # event key -> members signed
    release_sigs: dict[str, int] = field(default_factory=dict)  # burn id -> newest set nonce
    plan_sigs: dict[int, int] = field(default_factory=dict)  # transfer id -> newest spend


# Statements of the hot path (a status page polling one transfer), built once.
_HISTORY = select(H).where(H.c.transfer_id.in_(bindparam("ids", expanding=True))) \
    .order_by(H.c.id)
_LOCK_SIGS = (select(A.c.event_key, func.count(A.c.validator.distinct()).label("n"))
              .where(and_(A.c.kind == "lock", A.c.epoch == bindparam("epoch"),
                          A.c.event_key.in_(bindparam("keys", expanding=True)),
                          A.c.validator.in_(bindparam("members", expanding=True))))
              .group_by(A.c.event_key))
_RELEASE_SIGS = (select(A.c.event_key, A.c.epoch,
                        func.count(A.c.validator.distinct()).label("n"))
                 .where(and_(A.c.kind == "release",
                             A.c.event_key.in_(bindparam("keys", expanding=True))))
                 .group_by(A.c.event_key, A.c.epoch))
_PLANS = select(P.c.transfer_id, P.c.txid) \
    .where(P.c.transfer_id.in_(bindparam("ids", expanding=True))).order_by(P.c.id)
_PLAN_SIGS = (select(A.c.event_key, func.count(A.c.validator.distinct()).label("n"))
              .where(and_(A.c.kind == "utxo_release",
                          A.c.event_key.in_(bindparam("keys", expanding=True))))
              .group_by(A.c.event_key))


def load_facts(ctx: ApiContext, rows: list[Any], conn: Connection) -> Facts:
    """History, signature counts, chain heights and the ledger status for `rows`, read on
    `conn` (one connection for a whole lookup: the hot path of status polling)."""
    facts = Facts(ctx=ctx, now=ctx.clock.now(), status=ctx.ledger_status(),
                  heads=chain_heads(ctx.store, conn))
    if not rows:
        return facts
    ids = [r.id for r in rows]
    locks = [r.event_key for r in rows if r.kind == TransferKind.LOCK.value]
    burns = [r.event_key for r in rows if r.kind == TransferKind.BURN.value]
    for h in conn.execute(_HISTORY, {"ids": ids}):
        facts.history.setdefault(h.transfer_id, []).append(h)
    if locks and facts.status is not None:
        vset = facts.status.validator_set
        members = ["0x" + m.ed25519.hex() for m in vset.members]
        facts.lock_sigs = {r.event_key: r.n for r in conn.execute(
            _LOCK_SIGS, {"epoch": vset.epoch, "keys": locks, "members": members})}
    if burns:
        newest: dict[str, tuple[int, int]] = {}
        for r in conn.execute(_RELEASE_SIGS, {"keys": burns}):
            if r.event_key not in newest or r.epoch > newest[r.event_key][0]:
                newest[r.event_key] = (r.epoch, r.n)
        facts.release_sigs = {k: n for k, (_, n) in newest.items()}
        plans: dict[int, str] = {}
        for p in conn.execute(_PLANS, {"ids": ids}):
            plans[p.transfer_id] = p.txid  # the newest spend of each transfer wins
        if plans:
            counts = {r.event_key: r.n for r in conn.execute(
                _PLAN_SIGS, {"keys": list(plans.values())})}
            facts.plan_sigs = {tid: counts.get(txid, 0) for tid, txid in plans.items()}
    return facts


def _confirmations(ctx: ApiContext, row: Any, facts: Facts) -> tuple[Progress | None, float]:
    """(confirmations of a lock, seconds per block of its chain); burns: (None, 0)."""
    if row.kind != TransferKind.LOCK.value:
        return None, 0.0
    head = facts.heads.get(row.source_chain)
    try:
        family, chain = chain_config(ctx.cfg, row.source_chain)
    except UnknownChain:
        need, block_time = None, 0.0
    else:
        need, block_time = family.confirmations(chain), family.block_time_s(chain)
    if need is None and head is not None:
        need = head.head - head.finalized + 1
    have = None if head is None or not row.block_number \
        else max(0, head.head - row.block_number + 1)
    return Progress(have=have, need=need), block_time


def _signatures(ctx: ApiContext, row: Any, facts: Facts) -> Progress:
    threshold = None if facts.status is None else facts.status.validator_set.threshold
    if row.kind == TransferKind.LOCK.value:
        return Progress(have=facts.lock_sigs.get(row.event_key, 0), need=threshold)
    need = threshold
    try:
        family, chain = chain_config(ctx.cfg, row.dest_chain)
        need = family.release_threshold(chain) or threshold
    except UnknownChain:
        pass  # a burn to an unserved chain is held; the ledger's threshold is shown
    if row.id in facts.plan_sigs:
        return Progress(have=facts.plan_sigs[row.id], need=need)
    return Progress(have=facts.release_sigs.get(row.event_key, 0), need=need)


def waiting_of(row: Any, confirmations: Progress | None, signatures: Progress,
               block_time_s: float, now: float) -> Waiting | None:
    """What `row` waits for (see the module docstring); None when nothing holds it."""
    status = TransferStatus(row.status)
    if status in (S.EXECUTED, S.REFUNDED, S.DROPPED):
        return None
    reason = getattr(row, "wait_reason", None)
    if reason in RISK_REASONS:
        return Waiting(reason=reason, eta=getattr(row, "wait_until", None))
    if status == S.HELD:
        return Waiting(reason=WaitReason.HELD.value, eta=None)
    if status == S.OBSERVED:
        eta = None
        if confirmations is not None and confirmations.have is not None \
                and confirmations.need is not None and block_time_s > 0:
            eta = now + max(0, confirmations.need - confirmations.have) * block_time_s
        return Waiting(reason=WaitReason.CONFIRMATIONS.value, eta=eta)
    if status in (S.CONFIRMED, S.ATTESTED):
        if signatures.need is None or (signatures.have or 0) < signatures.need:
            return Waiting(reason=WaitReason.QUORUM.value, eta=None)
        return None
    if status == S.SUBMITTED:
        return Waiting(reason=WaitReason.CONFIRMATIONS.value, eta=None)
    return None


def transfer_view(row: Any, facts: Facts, request: Any | None = None) -> TransferOut:
    """The API shape of transfer `row` (and the request linked to it, if any)."""
    confirmations, block_time = _confirmations(facts.ctx, row, facts)
    signatures = _signatures(facts.ctx, row, facts)
    lifecycle = [Step(status=h.to_status, at=h.at, reason=h.reason)
                 for h in facts.history.get(row.id, [])]
    if request is not None:
        lifecycle.insert(0, Step(status=AWAITING_DEPOSIT, at=request.created_at,
                                 reason="transfer requested"))
    lock = row.kind == TransferKind.LOCK.value
    return TransferOut(
        id=request.id if request is not None else row.event_key,
        request_id=None if request is None else request.id, event_key=row.event_key,
        kind=row.kind, route=route_key(row.source_chain, row.dest_chain, row.asset),
        source_chain=row.source_chain, dest_chain=row.dest_chain, asset=row.asset,
        status=row.status, reason=row.reason, amount=str(row.amount), sender=row.sender or None,
        recipient=row.recipient, source_tx=row.src_tx_hash or None,
        dest_tx=row.dest_tx_hash, block_number=row.block_number if lock else None,
        ledger_seq=row.ledger_seq, created_at=row.created_at, updated_at=row.updated_at,
        lifecycle=lifecycle, confirmations=confirmations, signatures=signatures,
        waiting=waiting_of(row, confirmations, signatures, block_time, facts.now),
        instructions=None if request is None else json.loads(request.instructions))


def request_view(req: Any) -> TransferOut:
    """A request no observed transfer matches yet: waiting for the user's deposit."""
    burn = req.kind == TransferKind.BURN.value
    return TransferOut(
        id=req.id, request_id=req.id, event_key=None, kind=req.kind,
        route=route_key(req.source_chain, req.dest_chain, req.asset),
        source_chain=req.source_chain, dest_chain=req.dest_chain, asset=req.asset,
        status=AWAITING_DEPOSIT, reason="waiting for the deposit" if not burn
        else "waiting for the signed burn", amount=str(req.amount), sender=req.sender,
        recipient=req.recipient, source_tx=None, dest_tx=None, block_number=None,
        ledger_seq=None, created_at=req.created_at, updated_at=req.created_at,
        lifecycle=[Step(status=AWAITING_DEPOSIT, at=req.created_at,
                        reason="transfer requested")],
        confirmations=None, signatures=None, waiting=None,
        instructions=json.loads(req.instructions))
