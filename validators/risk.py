"""The risk rules every signer and executor applies before it signs, mints or releases: a
per-route rolling-window volume limit and a delay queue for large transfers.

Owns: `RiskSection` / `RouteLimit` (the ``[risk]`` config), `route_key`, `WaitReason`,
`RiskDecision` and `decide` (pure). Must not touch a database, a chain or the wall clock: each
enforcer (validator daemon, ledger, relayer) keeps its own record of what it already let through
in the window and passes it in, with its own clock's `now`.

Why every party applies it: if m validator keys are stolen, the attacker can attest to locks that
never happened. The ledger still mints at most ``daily_limit`` per route per window, and anything
above ``large_transfer`` waits ``delay_s`` first, so operators have time to pause the route.

A route is one direction of one asset: ``"<source chain>><dest chain>:<ledger asset key>"``,
e.g. ``"eip155:31337>ferry:ledger:eip155:31337/0x0000000000000000000000000000000000000000"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

DAY_S = 86_400


def route_key(source_chain: str, dest_chain: str, asset: str) -> str:
    """The route id of one direction of one asset (see the module docstring)."""
    return f"{source_chain}>{dest_chain}:{asset}"


class RouteLimit(BaseModel):
    """``[[risk.routes]]``: the limits of one route. Amounts are base units of the asset
    (ints; TOML may give them as decimal strings, since wei amounts exceed TOML's int64).

    Attributes:
        source_chain, dest_chain: CAIP-2 ids (``ferry:ledger`` for the native ledger).
        asset: the ledger asset key (``<origin chain>/<origin token or denom>``).
        daily_limit: most that may pass in any rolling ``window_s``.
        large_transfer: a transfer of at least this much waits ``delay_s`` first (None: never).
        delay_s: this route's delay (None: ``[risk].delay_s``).
    """

    model_config = ConfigDict(extra="forbid")

    source_chain: str = Field(min_length=3, max_length=64)
    dest_chain: str = Field(min_length=3, max_length=64)
    asset: str = Field(min_length=3, max_length=200)
    daily_limit: int = Field(gt=0)
    large_transfer: int | None = Field(default=None, gt=0)
    delay_s: int | None = Field(default=None, ge=0)

    @property
    def route(self) -> str:
        return route_key(self.source_chain, self.dest_chain, self.asset)


class RiskSection(BaseModel):
    """``[risk]``: limits applied by validators, the ledger and the relayer.

    Attributes:
        window_s: length of the rolling window (default 24 hours).
        delay_s: default delay of large transfers (default 24 hours).
        routes: per-route limits. A route not listed has no volume limit and no delay.
    """

    model_config = ConfigDict(extra="forbid")

    window_s: int = Field(default=DAY_S, gt=0)
    delay_s: int = Field(default=DAY_S, ge=0)
    routes: list[RouteLimit] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RiskSection:
        keys = [r.route for r in self.routes]
        if len(set(keys)) != len(keys):
            raise ValueError("each risk route may be listed once")
        return self

    def limit(self, route: str) -> RouteLimit | None:
        for r in self.routes:
            if r.route == route:
                return r
        return None

    def delay_of(self, limit: RouteLimit) -> int:
        return self.delay_s if limit.delay_s is None else limit.delay_s


class WaitReason(StrEnum):
    """Why a transfer is not moving (persisted and served by the API; never renamed)."""

    CONFIRMATIONS = "confirmations"
    QUORUM = "quorum"
    RATE_LIMIT = "rate_limit"
    DELAY = "large_transfer_delay"
    PAUSED = "paused"
    HELD = "held"


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """`go` or wait for `reason`; `until` is the earliest time (same clock as `now`, seconds)
    the transfer could pass if nothing else changes, or None when only an operator can move it
    (paused route, or a transfer larger than the whole daily limit)."""

    go: bool
    reason: WaitReason | None = None
    until: float | None = None


GO = RiskDecision(True)


def decide(
    section: RiskSection,
    route: str,
    amount: int,
    first_seen: float,
    now: float,
    window: Iterable[tuple[float, int]],
    *,
    paused: bool = False,
    operator_released: bool = False,
) -> RiskDecision:
    """May a transfer of `amount` on `route` pass now?

    Args:
        section: the ``[risk]`` config.
        route: `route_key` of the transfer.
        amount: base units, > 0.
        first_seen: when this enforcer first saw the transfer (its delay starts then).
        now: this enforcer's clock, seconds.
        window: (time, amount) of every transfer this enforcer already let through on this route
            (older entries are ignored; the transfer itself must not be among them).
        paused: the route is paused (by an operator or the accountant).
        operator_released: an operator released this transfer: it skips the delay and the volume
            limit (it still counts toward the window once through). Never skips a pause.

    Returns:
        `GO`, or a wait with its reason and earliest time.
    """
    if amount <= 0:
        raise ValueError("amount must be positive")
    if paused:
        return RiskDecision(False, WaitReason.PAUSED, None)
    limit = section.limit(route)
    if limit is None or operator_released:
        return GO
    if limit.large_transfer is not None and amount >= limit.large_transfer:
        ready_at = first_seen + section.delay_of(limit)
        if now < ready_at:
            return RiskDecision(False, WaitReason.DELAY, ready_at)
    return check_window(section.window_s, limit.daily_limit, amount, now, window)


def check_window(window_s: int, daily_limit: int, amount: int, now: float,
                 window: Iterable[tuple[float, int]]) -> RiskDecision:
    """The rolling-window part of `decide`: GO if `amount` fits under `daily_limit` with what
    passed in the last `window_s`; else wait until enough of it ages out (None if `amount` alone
    exceeds the limit)."""
    recent = sorted((t, a) for t, a in window if t > now - window_s)
    used = sum(a for _, a in recent)
    if used + amount <= daily_limit:
        return GO
    if amount > daily_limit:
        return RiskDecision(False, WaitReason.RATE_LIMIT, None)
    for t, a in recent:
        used -= a
        if used + amount <= daily_limit:
            return RiskDecision(False, WaitReason.RATE_LIMIT, t + window_s)
    return RiskDecision(False, WaitReason.RATE_LIMIT, now + window_s)  # unreachable
