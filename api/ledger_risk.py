"""HTTP routes of the ledger's risk engine (`ledger.risk`), included by
`api.ledger.create_ledger_app`.

Owns: the route table and schemas of ``/v1/ledger/risk``. Must not hold risk rules or compare
tokens itself (`ledger.service.Ledger.authorize_operator` does), nor touch the database.

Routes (prefix ``/v1/ledger/risk``):
- ``GET ""``: paused routes, deferred mints (``first_seen``, ``ready_at``, ``reason``) and the
  window usage per route (amounts decimal strings, times ledger-clock seconds);
- ``POST /release {"event_id"}``: the mint skips the delay and the volume limit (not a pause)
  on its next submission; an event not seen yet is released in advance;
- ``POST /pause {"route", "reason"}``, ``POST /unpause {"route"}``.

The POSTs need ``Authorization: Bearer <token>`` with ``sha256(token) == [ledger]
operator_token_sha256``; otherwise 401 ``unauthorized`` and nothing changes (the token is
checked before the body is read). Each answers ``{"changed": bool, ...}``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from api.ledger import ErrorOut, LedgerDep, get_ledger


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReleaseIn(_In):
    event_id: StrictStr = Field(min_length=1, max_length=300)


class PauseIn(_In):
    route: StrictStr = Field(min_length=3, max_length=400)
    reason: StrictStr = Field(default="", max_length=500)


class UnpauseIn(_In):
    route: StrictStr = Field(min_length=3, max_length=400)


class PauseOut(BaseModel):
    route: str
    reason: str
    at: float


class DeferredOut(BaseModel):
    event_id: str
    route: str
    amount: str
    first_seen: float
    ready_at: float | None
    reason: str | None
    released: bool


class UsageOut(BaseModel):
    route: str
    used: str
    count: int
    daily_limit: str | None
    window_s: int


class RiskOut(BaseModel):
    now: float
    paused: list[PauseOut]
    deferred: list[DeferredOut]
    usage: list[UsageOut]
    released: list[str]  # operator-released ids not minted (validators honour these)


class ReleaseOut(BaseModel):
    event_id: str
    changed: bool


class RouteOut(BaseModel):
    route: str
    changed: bool


def _operator(request: Request,
              authorization: Annotated[str | None, Header()] = None) -> None:
    """Dependency: the caller holds the operator token (else `Unauthorized`, 401)."""
    token = None
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            token = value.strip()
    get_ledger(request).authorize_operator(token)


risk_router = APIRouter(prefix="/v1/ledger/risk",
                        responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}})
OPERATOR = [Depends(_operator)]


@risk_router.get("", response_model=RiskOut)
def get_risk(ledger: LedgerDep) -> RiskOut:
    """Paused routes, deferred mints (oldest first) and window usage per route."""
    return RiskOut.model_validate(ledger.risk_report().to_json())


@risk_router.post("/release", response_model=ReleaseOut, dependencies=OPERATOR)
def post_release(body: ReleaseIn, ledger: LedgerDep) -> ReleaseOut:
    """Operator release of a deferred (or not yet seen) mint; ``changed`` is False if it was
    already released or minted."""
    return ReleaseOut(event_id=body.event_id, changed=ledger.release_mint(body.event_id))


@risk_router.post("/pause", response_model=RouteOut, dependencies=OPERATOR)
def post_pause(body: PauseIn, ledger: LedgerDep) -> RouteOut:
    """Pause a route: its mints are deferred (``route_paused``) until unpaused."""
    return RouteOut(route=body.route, changed=ledger.pause_route(body.route, body.reason))


@risk_router.post("/unpause", response_model=RouteOut, dependencies=OPERATOR)
def post_unpause(body: UnpauseIn, ledger: LedgerDep) -> RouteOut:
    """Unpause a route."""
    return RouteOut(route=body.route, changed=ledger.unpause_route(body.route))
