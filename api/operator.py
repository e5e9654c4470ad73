"""Operator endpoints (``/v1/operator``), each behind a scoped API key (`api.auth`).

Owns: the operator route table and schemas, the audit log lines, and the rescan cursor move.
Must not hold risk rules (`validators.risk`) or write transfer status (`relayer.risk_store`
and `relayer.store.Store.advance` do).

Routes (every body is JSON with no unknown fields):

- ``POST /routes/pause {"route", "reason"}`` (``routes:write``): pause a configured route
  (`validators.risk.route_key`; a route of an ``[[assets]]`` entry, either direction, or of
  ``[[risk.routes]]``). A mint route (destination ``ferry:ledger``) is paused at the ledger
  too.
- ``POST /routes/unpause {"route"}`` (``routes:write``): lift it, at the ledger too for a mint
  route. A route that is paused but no longer configured may be unpaused.
- ``POST /chains/{chain}/rescan {"from_height"}`` (``chains:write``): see `rescan`.
- ``POST /transfers/{ref}/retry`` (``transfers:write``): a ``transfer.held`` transfer back to
  ``transfer.confirmed``.
- ``POST /transfers/{ref}/release`` (``transfers:write``): the transfer skips the
  large-transfer delay and the volume limit (never a pause); the release is recorded at the
  ledger too (for a lock it releases the mint; for either kind the ledger publishes it in
  ``GET /v1/ledger/risk`` ``released``, which the validators honour). ``ref`` is the request
  id (``tr_...``), the transfer's numeric id or its event key.
- ``GET /risk`` (``risk:read``): paused routes, the risk queue, each limited route's usage.

Ledger calls use ``[api] ledger_operator_token``; without it the ledger step is ``skipped`` and
the answer carries a ``warning``. A ledger failure does not undo the relayer's change (each
call is idempotent: repeat it); the answer reports it (``ledger.status`` ``failed``). Order:
pause the relayer first, unpause the ledger first, so a half-done call leaves more paused.

Every successful call writes one audit line (logger ``api.operator.audit``): key id and name,
action, target, whether it changed anything. No answer or log carries a token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from sqlalchemy import and_, delete, insert, select, update

from adapters.base import BlockRef
from adapters.errors import (
    BridgeError,
    RescanRefused,
    UnknownChain,
    UnknownRoute,
    UnknownTransfer,
)
from api.auth import ApiKey, ApiKeyStore, AuthRoute, require_scope
from relayer.db import write_transaction
from relayer.models import Cursor, ScannedBlock
from validators.attestation import LEDGER_CHAIN
from validators.risk import route_key

log = logging.getLogger(__name__)
audit = logging.getLogger(__name__ + ".audit")

C = Cursor.__table__  # type: ignore[attr-defined]
B = ScannedBlock.__table__  # type: ignore[attr-defined]
MAX_HEIGHT = 2**63 - 1
NO_TOKEN_WARNING = ("[api] ledger_operator_token is not set: the ledger was not told; repeat "
                    "the call at the ledger (POST /v1/ledger/risk/...) or set the token")
LEDGER_FAILED_WARNING = ("the ledger refused or could not be reached; the relayer's change "
                         "stands; repeat the call")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PauseIn(_In):
    route: StrictStr = Field(min_length=3, max_length=300)
    reason: StrictStr = Field(min_length=1, max_length=500)


class UnpauseIn(_In):
    route: StrictStr = Field(min_length=3, max_length=300)


class RescanIn(_In):
    from_height: StrictInt = Field(ge=0, le=MAX_HEIGHT)


class LedgerStep(BaseModel):
    """What the ledger was told: ``done``, ``skipped`` (no ``ledger_operator_token``),
    ``failed`` (``detail`` has the error code and message) or ``not_applicable``."""

    status: Literal["done", "skipped", "failed", "not_applicable"]
    changed: bool | None = None
    detail: str = ""


class RouteOut(BaseModel):
    route: str
    paused: bool
    changed: bool  # the relayer's pause state changed
    ledger: LedgerStep
    warning: str | None = None


class TransferActionOut(BaseModel):
    transfer_id: int
    event_key: str
    action: Literal["retry", "release"]
    changed: bool
    status: str
    ledger: LedgerStep
    warning: str | None = None


class RescanOut(BaseModel):
    chain: str
    requested_from_height: int
    from_height: int  # the first height the watcher scans next (<= requested)
    previous_cursor: int


class PauseView(BaseModel):
    route: str
    reason: str
    by: str
    at: float


class QueueItem(BaseModel):
    transfer_id: int
    event_key: str
    kind: str
    route: str
    amount: str
    status: str
    wait_reason: str | None
    wait_until: float | None
    operator_released: bool


class RouteUsage(BaseModel):
    route: str
    window_s: int
    daily_limit: str
    large_transfer: str | None
    delay_s: int
    used: str
    paused: bool


class RiskOut(BaseModel):
    paused: list[PauseView]
    queue: list[QueueItem]
    routes: list[RouteUsage]


def known_routes(cfg: Any) -> dict[str, str]:
    """Configured route -> its destination chain: both directions of every ``[[assets]]``
    entry and every ``[[risk.routes]]`` entry."""
    out: dict[str, str] = {}
    for a in cfg.assets:
        out[route_key(a.origin_chain, LEDGER_CHAIN, a.asset)] = LEDGER_CHAIN
        out[route_key(LEDGER_CHAIN, a.origin_chain, a.asset)] = a.origin_chain
    for r in cfg.risk.routes:
        out[r.route] = r.dest_chain
    return out


def chain_start(cfg: Any, chain: str) -> int:
    """``start_block`` of a configured chain (EVM, Bitcoin, Cosmos or Solana).

    Raises:
        UnknownChain: not configured.
    """
    for c in [*cfg.chains, *cfg.bitcoin, *cfg.cosmos, *cfg.solana]:
        if c.caip2 == chain:
            return int(c.start_block)
    raise UnknownChain(f"no configured chain {chain!r}")


def rescan(ctx: Any, chain: str, from_height: int) -> RescanOut:
    """Move `chain`'s scan cursor back so the watcher scans again from `from_height`.

    Rules: `from_height` must be at least the chain's ``start_block`` and at most the current
    cursor (the last scanned height); above it nothing was scanned yet. The new cursor is block
    ``from_height - 1`` with its hash from the chain (the relayer process's adapter), or else
    the newest remembered scanned block at or below it (the rescan then starts a little lower:
    harmless). ``from_height == start_block`` forgets the cursor (the watcher starts afresh).
    The scanned-block trail above the new cursor is dropped, so the reorg check cannot jump
    back to the old cursor. Stored transfers are not touched: a lock seen again is matched by
    its event key and never recorded (or minted) twice; a dropped one seen again is re-observed.

    The engine's next run for the chain picks the new cursor up (an idle chain, whose head has
    not moved since its last run, waits for its next block). A scan in flight when the cursor
    moves may still write its own end height: check the answer of a second call.

    Raises:
        UnknownChain: not configured. RescanRefused: out of range, not scanned yet, or no
            block hash known at or below ``from_height - 1``.
        RpcUnavailable: from the chain adapter.
    """
    start = chain_start(ctx.cfg, chain)
    name = f"chain:{chain}"
    cursor = ctx.store.cursor(name)
    if cursor is None:
        raise RescanRefused(f"{chain} has not been scanned yet: nothing to rescan")
    if from_height < start:
        raise RescanRefused(f"from_height {from_height} is below {chain}'s start_block {start}")
    if from_height > cursor.number:
        raise RescanRefused(f"from_height {from_height} is above {chain}'s scan cursor "
                            f"{cursor.number}: nothing was scanned there yet")
    anchor = None if from_height == start else _anchor(ctx, chain, from_height - 1)
    with write_transaction(ctx.store.engine) as conn:
        if anchor is None:
            conn.execute(delete(B).where(B.c.chain == chain))
            conn.execute(delete(C).where(C.c.name == name))
        else:
            conn.execute(delete(B).where(and_(B.c.chain == chain, B.c.number >= anchor.number)))
            conn.execute(insert(B).values(chain=chain, number=anchor.number, hash=anchor.hash))
            conn.execute(update(C).where(C.c.name == name).values(
                number=anchor.number, hash=anchor.hash))
    effective = start if anchor is None else anchor.number + 1
    return RescanOut(chain=chain, requested_from_height=from_height, from_height=effective,
                     previous_cursor=cursor.number)


def _anchor(ctx: Any, chain: str, height: int) -> BlockRef:
    adapter = (getattr(ctx.inbox, "adapters", None) or {}).get(chain)
    if adapter is not None:
        block_hash = adapter.block_hash(height)
        if block_hash is not None:
            return BlockRef(height, block_hash)
    with ctx.store.engine.connect() as conn:
        row = conn.execute(select(B.c.number, B.c.hash).where(
            and_(B.c.chain == chain, B.c.number <= height)).order_by(B.c.number.desc())
            .limit(1)).first()
    if row is None:
        raise RescanRefused(f"no block hash of {chain} known at or below height {height} (the "
                            "scanned trail is pruned; run the call on the relayer process, "
                            "which reads it from the chain)")
    return BlockRef(row.number, row.hash)


def _ledger_step(ctx: Any, applies: bool, call: Callable[[str], bool],
                 transfer_id: int | None = None) -> tuple[LedgerStep, str | None]:
    if not applies:
        return LedgerStep(status="not_applicable"), None
    token = ctx.cfg.api.ledger_operator_token
    if token is None:
        return LedgerStep(status="skipped"), NO_TOKEN_WARNING
    try:
        return LedgerStep(status="done", changed=call(token.get_secret_value())), None
    except BridgeError as exc:
        log.error("ledger operator call failed code=%s: %s", exc.code, exc,
                  extra=None if transfer_id is None else {"transfer_id": transfer_id})
        return LedgerStep(status="failed", detail=f"{exc.code}: {exc}"), LEDGER_FAILED_WARNING


def _transfer(ctx: Any, ref: str) -> Any:
    """The transfer `ref` names: a request id (``tr_...``, once its deposit was observed), a
    numeric transfer id or an event key. Raises `UnknownTransfer`."""
    from api.transfers import REQUEST_PREFIX, get_request, link_request

    if ref.startswith(REQUEST_PREFIX):
        req = get_request(ctx, ref)
        row = None if req is None else link_request(ctx, req)
    elif ref.isdigit() and len(ref) < 19:
        row = ctx.store.get_by_id(int(ref))
    else:
        row = ctx.store.get(ref)
    if row is None:
        raise UnknownTransfer(f"no transfer {ref!r}")
    return row


def _audit(key: ApiKey, action: str, target: str, changed: bool,
           transfer_id: int | None = None) -> None:
    audit.info("operator action key_id=%d key_name=%s action=%s target=%s changed=%s",
               key.id, key.name, action, target, changed,
               extra=None if transfer_id is None else {"transfer_id": transfer_id})


def operator_router(ctx: Any) -> APIRouter:
    """The ``/v1/operator`` routes over an `api.app.ApiContext` (attributes used: cfg, store,
    ledger, inbox)."""
    keys = ApiKeyStore(ctx.store)
    router = APIRouter(prefix="/v1/operator", tags=["operator"], route_class=AuthRoute)
    # Defaults, not local Annotated aliases: with postponed annotations FastAPI resolves
    # annotation strings in the module's globals only.
    routes_key = Depends(require_scope("routes:write", keys))
    chains_key = Depends(require_scope("chains:write", keys))
    transfers_key = Depends(require_scope("transfers:write", keys))
    risk_key = Depends(require_scope("risk:read", keys))
    chain_path = Path(min_length=3, max_length=64, description="CAIP-2 chain id")
    ref_path = Path(min_length=1, max_length=300, description="transfer id (digits) or event key")

    @router.post("/routes/pause", response_model=RouteOut)
    def pause_route(body: PauseIn, key: ApiKey = routes_key) -> RouteOut:
        from relayer.risk_store import RouteStore

        dest = known_routes(ctx.cfg).get(body.route)
        if dest is None:
            raise UnknownRoute(f"no configured route {body.route!r}")
        changed = RouteStore(ctx.store).pause(body.route, body.reason, by=key.name)
        step, warning = _ledger_step(
            ctx, dest == LEDGER_CHAIN,
            lambda token: ctx.ledger.pause_route(body.route, body.reason, token))
        _audit(key, "route.pause", body.route, changed)
        return RouteOut(route=body.route, paused=True, changed=changed, ledger=step,
                        warning=warning)

    @router.post("/routes/unpause", response_model=RouteOut)
    def unpause_route(body: UnpauseIn, key: ApiKey = routes_key) -> RouteOut:
        from relayer.risk_store import RouteStore, split_route

        routes = RouteStore(ctx.store)
        dest = known_routes(ctx.cfg).get(body.route)
        if dest is None and routes.is_paused(body.route):
            parts = split_route(body.route)
            dest = parts[1] if parts else ""
        if dest is None:
            raise UnknownRoute(f"no configured or paused route {body.route!r}")
        step, warning = _ledger_step(
            ctx, dest == LEDGER_CHAIN, lambda token: ctx.ledger.unpause_route(body.route, token))
        changed = routes.unpause(body.route, by=key.name)
        _audit(key, "route.unpause", body.route, changed)
        return RouteOut(route=body.route, paused=False, changed=changed, ledger=step,
                        warning=warning)

    @router.post("/chains/{chain}/rescan", response_model=RescanOut)
    def rescan_chain(body: RescanIn, chain: str = chain_path,
                     key: ApiKey = chains_key) -> RescanOut:
        out = rescan(ctx, chain, body.from_height)
        _audit(key, "chain.rescan", f"{chain}@{out.from_height}", True)
        return out

    @router.post("/transfers/{ref:path}/retry", response_model=TransferActionOut)
    def retry_transfer(ref: str = ref_path, key: ApiKey = transfers_key) -> TransferActionOut:
        from relayer.risk_store import RouteStore

        row = _transfer(ctx, ref)
        changed = RouteStore(ctx.store).retry(row.id, by=key.name)
        _audit(key, "transfer.retry", str(row.id), changed, transfer_id=row.id)
        after = ctx.store.get_by_id(row.id)
        return TransferActionOut(transfer_id=row.id, event_key=row.event_key, action="retry",
                                 changed=changed, status=after.status,
                                 ledger=LedgerStep(status="not_applicable"))

    @router.post("/transfers/{ref:path}/release", response_model=TransferActionOut)
    def release_transfer(ref: str = ref_path, key: ApiKey = transfers_key) -> TransferActionOut:
        from relayer.risk_store import RouteStore

        row = _transfer(ctx, ref)
        changed = RouteStore(ctx.store).release(row.id, by=key.name)
        # Burns too: the ledger publishes every operator release, and validators honour it.
        step, warning = _ledger_step(ctx, True,
                                     lambda token: ctx.ledger.release_mint(row.event_key, token),
                                     transfer_id=row.id)
        _audit(key, "transfer.release", str(row.id), changed, transfer_id=row.id)
        after = ctx.store.get_by_id(row.id)
        return TransferActionOut(transfer_id=row.id, event_key=row.event_key, action="release",
                                 changed=changed, status=after.status, ledger=step,
                                 warning=warning)

    @router.get("/risk", response_model=RiskOut)
    def risk(key: ApiKey = risk_key) -> RiskOut:
        from relayer.risk_store import RouteStore

        routes = RouteStore(ctx.store)
        paused = routes.paused()
        section = ctx.cfg.risk
        since = ctx.store.clock.now() - section.window_s
        _audit(key, "risk.read", "-", False)
        return RiskOut(
            paused=[PauseView(route=p.route, reason=p.reason, by=p.by, at=p.at)
                    for p in paused.values()],
            queue=[_queue_item(r) for r in routes.queue()],
            routes=[RouteUsage(route=r.route, window_s=section.window_s,
                               daily_limit=str(r.daily_limit),
                               large_transfer=None if r.large_transfer is None
                               else str(r.large_transfer),
                               delay_s=section.delay_of(r), used=str(routes.usage(r.route, since)),
                               paused=r.route in paused)
                    for r in section.routes])

    return router


def _queue_item(row: Any) -> QueueItem:
    return QueueItem(transfer_id=row.id, event_key=row.event_key, kind=row.kind,
                     route=route_key(row.source_chain, row.dest_chain, row.asset),
                     amount=str(row.amount), status=row.status,
                     wait_reason=getattr(row, "wait_reason", None),
                     wait_until=getattr(row, "wait_until", None),
                     operator_released=bool(getattr(row, "operator_released", False)))
