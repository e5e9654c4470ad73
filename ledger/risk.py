"""The ledger's risk engine: the ``[risk]`` rules (`validators.risk.decide`) applied before a
certified lock event is minted, and the operator's controls over it.

Owns: the ``ledger_risk_seen``, ``ledger_risk_usage`` and ``ledger_risk_pauses`` tables (schema:
migration 0005), `MintGate` (called by `ledger.minting.apply_mint_batch` for every request that
passed `check_mint`), the operator calls (`release`, `pause`, `unpause`, `check_operator`) and the
report (`report`, `RiskReport`). Must not open transactions or take locks (`ledger.service`
does), read the wall clock (callers pass the ledger clock's `now`), nor speak HTTP.

Rules, per request (route ``route_key(event.chain, "ferry:ledger", asset)``):
- first sight: the event id, route and amount are stored with ``first_seen = now`` (insert if
  absent; written even when the mint is deferred, so the delay starts at first sight). Stored
  only for a route that is paused or has a limit (elsewhere nothing can hold it back);
- `decide` with the route's window (its ``ledger_risk_usage`` rows newer than ``window_s`` plus
  the mints accepted earlier in the same batch), ``paused`` (a ``ledger_risk_pauses`` row) and
  ``operator_released`` (the seen row's ``released_by``);
- held back: ``MintResult(status="deferred", code, retry_at)``, nothing else written;
- let through: one ``ledger_risk_usage`` row, in the mint's transaction (every route, so a limit
  configured later sees past volume and the report shows it).

An operator may release an event before the ledger has seen it (the relayer passes operator
releases on, possibly while the transfer still waits at the relayer): the seen row is then
stored without route and amount, which the first sight fills in.

SECURITY: the operator token is never stored; only its SHA-256 (``[ledger]
operator_token_sha256``) is compared, in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from adapters.errors import Unauthorized, ValidationError
from ledger import store
from ledger.models import SEQ, U256, metadata
from ledger.types import MintResult, MintStatus
from validators.attestation import LEDGER_CHAIN
from validators.risk import RiskSection, WaitReason, decide, route_key

log = logging.getLogger(__name__)

SEEN = Table(
    "ledger_risk_seen", metadata,
    Column("event_id", String(300), primary_key=True),
    Column("route", String(400), nullable=True),
    Column("amount", U256(), nullable=True),
    Column("first_seen", Float(), nullable=False),
    Column("released_by", Text(), nullable=True),
    Column("released_at", Float(), nullable=True),
)
USAGE = Table(
    "ledger_risk_usage", metadata,
    Column("id", SEQ, primary_key=True, autoincrement=True),
    Column("route", String(400), nullable=False),
    Column("event_id", String(300), nullable=False, unique=True),
    Column("amount", U256(), nullable=False),
    Column("at", Float(), nullable=False),
    Index("ix_ledger_risk_usage_route_at", "route", "at"),
    sqlite_autoincrement=True,
)
PAUSES = Table(
    "ledger_risk_pauses", metadata,
    Column("route", String(400), primary_key=True),
    Column("reason", Text(), nullable=False),
    Column("at", Float(), nullable=False),
)

#: `MintResult.code` of a deferred mint, per wait reason.
DEFERRED_CODES: dict[WaitReason, str] = {
    WaitReason.RATE_LIMIT: "rate_limited",
    WaitReason.DELAY: "large_transfer_delay",
    WaitReason.PAUSED: "route_paused",
}
MAX_REPORTED = 1000  # most deferred mints one report lists (oldest first)
MAX_ROUTE = 400
MAX_REASON = 500
OPERATOR = "operator"  # `released_by` of a release through the operator token


def mint_route(chain: str, asset: str) -> str:
    """The route of a mint of `asset` locked on `chain`."""
    return route_key(chain, LEDGER_CHAIN, asset)


@dataclass(slots=True)
class _Seen:
    first_seen: float
    released: bool
    route: str | None


class MintGate:
    """The risk check of one mint batch, inside the batch's write transaction.

    Args:
        conn: the batch's connection (write transaction held by the caller).
        section: the ``[risk]`` config (None: no limits; pauses still apply).
        now: ledger clock, seconds.
        event_ids: every event id of the batch (their seen rows are read once).
    """

    def __init__(self, conn: Connection, section: RiskSection | None, now: float,
                 event_ids: Sequence[str]) -> None:
        self._conn = conn
        self._section = section or RiskSection()
        self._now = now
        self._paused = {r.route for r in conn.execute(select(PAUSES.c.route))}
        self._seen = _load_seen(conn, list(dict.fromkeys(event_ids)))
        self._windows: dict[str, list[tuple[float, int]]] = {}
        self._new_seen: list[dict[str, Any]] = []
        self._usage: list[dict[str, Any]] = []

    def hold(self, event_id: str, chain: str, asset: str, amount: int) -> MintResult | None:
        """Apply the rules to one checked request (not a duplicate).

        Returns:
            None if it may be minted now (its usage row is queued for `write`), else the
            ``deferred`` result.
        """
        route = mint_route(chain, asset)
        limited = self._section.limit(route) is not None
        paused = route in self._paused
        seen = self._seen.get(event_id)
        if seen is None and (limited or paused):
            seen = self._seen[event_id] = _Seen(self._now, False, route)
            self._new_seen.append({"event_id": event_id, "route": route, "amount": amount,
                                   "first_seen": self._now, "released_by": None,
                                   "released_at": None})
        elif seen is not None and seen.route is None:  # released before first sight
            seen.route = route
            self._conn.execute(update(SEEN).where(SEEN.c.event_id == event_id)
                               .values(route=route, amount=amount))
        decision = decide(
            self._section, route, amount, self._now if seen is None else seen.first_seen,
            self._now, self._window(route) if limited else (), paused=paused,
            operator_released=seen is not None and seen.released,
        )
        if not decision.go:
            assert decision.reason is not None
            code = DEFERRED_CODES[decision.reason]
            log.info("mint deferred event_id=%s route=%s code=%s retry_at=%s", event_id, route,
                     code, decision.until)
            return MintResult(event_id, MintStatus.DEFERRED, code, retry_at=decision.until)
        if limited:
            self._windows[route].append((self._now, amount))
        self._usage.append({"route": route, "event_id": event_id, "amount": amount,
                            "at": self._now})
        return None

    def write(self) -> None:
        """Insert the first-sight rows and the usage rows of the accepted mints (call once,
        after the mints are written, in the same transaction)."""
        if self._new_seen:
            self._conn.execute(insert(SEEN), self._new_seen)
        if self._usage:
            self._conn.execute(insert(USAGE), self._usage)

    def _window(self, route: str) -> list[tuple[float, int]]:
        if route not in self._windows:
            self._windows[route] = load_window(self._conn, route,
                                               self._now - self._section.window_s)
        return self._windows[route]


def _load_seen(conn: Connection, event_ids: list[str]) -> dict[str, _Seen]:
    out: dict[str, _Seen] = {}
    for chunk in store.chunks(event_ids):
        rows = conn.execute(select(SEEN.c.event_id, SEEN.c.first_seen, SEEN.c.released_by,
                                   SEEN.c.route).where(SEEN.c.event_id.in_(chunk)))
        for r in rows:
            out[r.event_id] = _Seen(r.first_seen, r.released_by is not None, r.route)
    return out


def load_window(conn: Connection, route: str, since: float) -> list[tuple[float, int]]:
    """(at, amount) of the mints on `route` after `since` (ledger clock), oldest first."""
    rows = conn.execute(select(USAGE.c.at, USAGE.c.amount)
                        .where(USAGE.c.route == route, USAGE.c.at > since)
                        .order_by(USAGE.c.at))
    return [(r.at, r.amount) for r in rows]


# ---- operator calls --------------------------------------------------------------------------

def check_operator(expected_sha256: str | None, token: str | None) -> None:
    """Raise `Unauthorized` unless ``sha256(token)`` (hex) equals `expected_sha256`.

    SECURITY: constant-time comparison (`hmac.compare_digest`); no configured hash refuses all.
    """
    if expected_sha256 is None:
        raise Unauthorized("the ledger has no operator token configured")
    if not token:
        raise Unauthorized("operator token required (Authorization: Bearer <token>)")
    digest = hashlib.sha256(token.encode()).hexdigest()
    if not hmac.compare_digest(digest, expected_sha256.lower()):
        raise Unauthorized("wrong operator token")


def _check_route(route: str) -> str:
    if not isinstance(route, str) or not 3 <= len(route) <= MAX_ROUTE or ">" not in route:
        raise ValidationError("route must be '<source chain>><dest chain>:<asset>'")
    return route


def release(conn: Connection, event_id: str, now: float, by: str = OPERATOR) -> bool:
    """Let `event_id` skip the delay and the volume limit (never a pause) on its next
    submission; an event not seen yet is released in advance.

    Returns:
        Whether anything changed (False: already released, or already minted).

    Raises:
        ValidationError: `event_id` is empty or longer than 300 chars.
    """
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 300:
        raise ValidationError("event_id must be 1..300 chars")
    if store.minted_seqs(conn, [event_id]):
        return False
    row = conn.execute(select(SEEN.c.released_by).where(SEEN.c.event_id == event_id)).first()
    if row is None:
        conn.execute(insert(SEEN).values(event_id=event_id, route=None, amount=None,
                                         first_seen=now, released_by=by, released_at=now))
    elif row.released_by is None:
        conn.execute(update(SEEN).where(SEEN.c.event_id == event_id)
                     .values(released_by=by, released_at=now))
    else:
        return False
    log.warning("mint released by operator event_id=%s", event_id)
    return True


def pause(conn: Connection, route: str, reason: str, now: float) -> bool:
    """Pause `route`: its mints are deferred (``route_paused``) until `unpause`.

    Returns:
        Whether it changed (False: already paused; the stored reason is kept).
    """
    route = _check_route(route)
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise ValidationError(f"reason must be at most {MAX_REASON} chars")
    if conn.execute(select(PAUSES.c.route).where(PAUSES.c.route == route)).first() is not None:
        return False
    conn.execute(insert(PAUSES).values(route=route, reason=reason, at=now))
    log.warning("route paused route=%s reason=%s", route, reason)
    return True


def unpause(conn: Connection, route: str) -> bool:
    """Unpause `route`. Returns whether it was paused."""
    route = _check_route(route)
    changed = conn.execute(delete(PAUSES).where(PAUSES.c.route == route)).rowcount > 0
    if changed:
        log.warning("route unpaused route=%s", route)
    return bool(changed)


# ---- report ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RoutePause:
    route: str
    reason: str
    at: float

    def to_json(self) -> dict[str, object]:
        return {"route": self.route, "reason": self.reason, "at": self.at}


@dataclass(frozen=True, slots=True)
class DeferredMint:
    """A lock event the ledger has seen on a risk-checked route and not minted.

    `reason` is the wait reason if it were submitted now (None: it would mint), `ready_at` the
    earliest ledger-clock time it may pass (None: only an operator can move it)."""

    event_id: str
    route: str
    amount: int
    first_seen: float
    ready_at: float | None
    reason: str | None
    released: bool

    def to_json(self) -> dict[str, object]:
        return {"event_id": self.event_id, "route": self.route, "amount": str(self.amount),
                "first_seen": self.first_seen, "ready_at": self.ready_at,
                "reason": self.reason, "released": self.released}


@dataclass(frozen=True, slots=True)
class RouteUsage:
    """Minted on `route` in the last `window_s` (base units); `daily_limit` None: no limit."""

    route: str
    used: int
    count: int
    daily_limit: int | None
    window_s: int

    def to_json(self) -> dict[str, object]:
        return {"route": self.route, "used": str(self.used), "count": self.count,
                "daily_limit": None if self.daily_limit is None else str(self.daily_limit),
                "window_s": self.window_s}


@dataclass(frozen=True, slots=True)
class RiskReport:
    """``GET /v1/ledger/risk``: paused routes, deferred mints (oldest first, at most
    `MAX_REPORTED`), the window usage per route, and `released`: the ids (lock event ids or
    burn ids) an operator released that the ledger has not minted, newest release first (at
    most `MAX_REPORTED`), including ids the ledger never saw a mint for. Validators read it
    to honour operator releases (`validators.risk_gate`)."""

    now: float
    paused: list[RoutePause] = field(default_factory=list)
    deferred: list[DeferredMint] = field(default_factory=list)
    usage: list[RouteUsage] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"now": self.now, "paused": [p.to_json() for p in self.paused],
                "deferred": [d.to_json() for d in self.deferred],
                "usage": [u.to_json() for u in self.usage], "released": list(self.released)}

    @classmethod
    def from_json(cls, data: Any) -> RiskReport:
        """Parse `to_json` output. Raises `ValidationError` on a wrong shape."""
        try:
            return cls(
                now=float(data["now"]),
                paused=[RoutePause(str(p["route"]), str(p["reason"]), float(p["at"]))
                        for p in data["paused"]],
                deferred=[DeferredMint(
                    str(d["event_id"]), str(d["route"]), int(str(d["amount"])),
                    float(d["first_seen"]), _opt_float(d["ready_at"]),
                    None if d["reason"] is None else str(d["reason"]), bool(d["released"]))
                    for d in data["deferred"]],
                usage=[RouteUsage(str(u["route"]), int(str(u["used"])), int(u["count"]),
                                  None if u["daily_limit"] is None else int(str(u["daily_limit"])),
                                  int(u["window_s"]))
                       for u in data["usage"]],
                released=[str(e) for e in data.get("released", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"malformed risk report: {exc!r}") from exc


def _opt_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def report(conn: Connection, section: RiskSection | None, now: float) -> RiskReport:
    """The operator's view (read transaction): see `RiskReport`."""
    section = section or RiskSection()
    since = now - section.window_s
    pauses = [RoutePause(r.route, r.reason, r.at)
              for r in conn.execute(select(PAUSES).order_by(PAUSES.c.route))]
    paused = {p.route for p in pauses}
    used: dict[str, tuple[int, int]] = {}
    for r in conn.execute(select(USAGE.c.route, USAGE.c.amount).where(USAGE.c.at > since)):
        total, count = used.get(r.route, (0, 0))
        used[r.route] = (total + r.amount, count + 1)
    routes = sorted(set(used) | {lim.route for lim in section.routes})
    usage = []
    for route in routes:
        limit = section.limit(route)
        total, count = used.get(route, (0, 0))
        usage.append(RouteUsage(route, total, count, None if limit is None else limit.daily_limit,
                                section.window_s))
    minted = select(store.MINTS.c.event_id).where(store.MINTS.c.event_id == SEEN.c.event_id)
    rows = conn.execute(select(SEEN).where(SEEN.c.route.is_not(None), ~minted.exists())
                        .order_by(SEEN.c.first_seen, SEEN.c.event_id).limit(MAX_REPORTED))
    windows: dict[str, list[tuple[float, int]]] = {}
    deferred = []
    for r in rows:
        if r.route not in windows:
            windows[r.route] = load_window(conn, r.route, since)
        decision = decide(section, r.route, r.amount, r.first_seen, now, windows[r.route],
                          paused=r.route in paused, operator_released=r.released_by is not None)
        deferred.append(DeferredMint(
            r.event_id, r.route, r.amount, r.first_seen, now if decision.go else decision.until,
            None if decision.reason is None else decision.reason.value,
            r.released_by is not None))
    released = [r.event_id for r in conn.execute(
        select(SEEN.c.event_id).where(SEEN.c.released_by.is_not(None), ~minted.exists())
        .order_by(SEEN.c.released_at.desc(), SEEN.c.event_id).limit(MAX_REPORTED))]
    return RiskReport(now, pauses, deferred, usage, released)

