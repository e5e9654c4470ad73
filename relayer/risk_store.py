"""The relayer's risk records: paused routes, what each route let through (the rolling window
of `validators.risk.decide`), and the operator's hand on single transfers.

Owns: the `route_pauses` and `route_usage` tables (migration 0004) and `RouteStore`, the
operator-facing surface (pause, unpause, release, retry, queue). Must not decide anything: the
rules are `validators.risk`, the enforcement is `relayer.risk_gate`. Each public write is one
transaction; status moves go through `Store.advance` only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Index, and_, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel

from adapters.errors import IllegalTransition, UnknownTransfer, ValidationError
from ledger.models import U256
from relayer.db import write_transaction
from relayer.machine import TERMINAL, TransferStatus
from relayer.models import Transfer
from relayer.store import Change, Store
from validators.risk import WaitReason

log = logging.getLogger(__name__)
S = TransferStatus
T = Transfer.__table__  # type: ignore[attr-defined]
# Wait reasons the risk engine sets (the others follow from the transfer's status).
RISK_REASONS = (WaitReason.RATE_LIMIT.value, WaitReason.DELAY.value, WaitReason.PAUSED.value)
MAX_ROUTE = 300


class RoutePauseRow(SQLModel, table=True):
    """A paused route: nothing on it is minted or released until an operator unpauses it."""

    __tablename__ = "route_pauses"

    route: str = Field(primary_key=True, max_length=MAX_ROUTE)
    reason: str
    paused_by: str
    at: float


class RouteUsageRow(SQLModel, table=True):
    """One transfer the relayer let through on `route` at `at` (its share of the window)."""

    __tablename__ = "route_usage"

    __table_args__ = (Index("ix_route_usage_route_at", "route", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    route: str
    event_key: str = Field(unique=True)  # the transfer's: recording it twice is a no-op
    amount: int = Field(sa_column=Column(U256(), nullable=False))  # base units
    at: float


P = RoutePauseRow.__table__  # type: ignore[attr-defined]
U = RouteUsageRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class RoutePause:
    route: str
    reason: str
    by: str
    at: float


class RouteStore:
    """Route pauses, route usage and operator moves over the relayer `Store`.

    Args:
        store: the relayer store (its engine and clock are used).
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ pauses
    def pause(self, route: str, reason: str, by: str) -> bool:
        """Pause `route` (a `validators.risk.route_key`).

        Returns:
            True if it was not paused before (an existing pause keeps its reason).

        Raises:
            ValidationError: empty or over-long route, reason or `by`.
        """
        _check(route, "route", MAX_ROUTE)
        _check(reason, "reason", 500)
        _check(by, "by", 200)
        now = self.store.clock.now()
        with write_transaction(self.store.engine) as conn:
            if conn.execute(select(P.c.route).where(P.c.route == route)).first() is not None:
                return False
            conn.execute(insert(P).values(route=route, reason=reason, paused_by=by, at=now))
        log.warning("route paused route=%s reason=%s by=%s", route, reason, by)
        return True

    def unpause(self, route: str, by: str) -> bool:
        """Lift the pause of `route`. Returns True if it was paused."""
        with write_transaction(self.store.engine) as conn:
            n = conn.execute(delete(P).where(P.c.route == route)).rowcount
        if n:
            log.warning("route unpaused route=%s by=%s", route, by)
        return bool(n)

    def paused(self) -> dict[str, RoutePause]:
        """Every paused route."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(P).order_by(P.c.route)).all()
        return {r.route: RoutePause(r.route, r.reason, r.paused_by, r.at) for r in rows}

    def is_paused(self, route: str) -> bool:
        with self.store.engine.connect() as conn:
            return conn.execute(select(P.c.route).where(P.c.route == route)).first() is not None

    # ------------------------------------------------------------------ single transfers
    def release(self, transfer_id: int, by: str) -> bool:
        """Let transfer `transfer_id` skip the large-transfer delay and the volume limit (not a
        pause: a paused route stays shut).

        Returns:
            True if it changed (not released before, and not finished).

        Raises:
            UnknownTransfer: no such transfer.
        """
        with write_transaction(self.store.engine) as conn:
            row = conn.execute(select(T.c.status, T.c.operator_released)
                               .where(T.c.id == transfer_id)).first()
            if row is None:
                raise UnknownTransfer(f"no transfer {transfer_id}")
            if row.operator_released or S(row.status) in TERMINAL:
                return False
            conn.execute(update(T).where(T.c.id == transfer_id).values(operator_released=True))
        log.warning("transfer released by operator transfer_id=%s by=%s", transfer_id, by,
                    extra={"transfer_id": transfer_id})
        return True

    def retry(self, transfer_id: int, by: str) -> bool:
        """Move a `transfer.held` transfer back to `transfer.confirmed` (through `Store.advance`)
        so the engine tries it again; its wait reason is cleared.

        Raises:
            UnknownTransfer: no such transfer.
            IllegalTransition: it is not held (or another worker moved it meanwhile).
        """
        row = self.store.get_by_id(transfer_id)
        if row is None:
            raise UnknownTransfer(f"no transfer {transfer_id}")
        if row.status != S.HELD.value:
            raise IllegalTransition(f"transfer {transfer_id} is {row.status}, not held")
        self.store.advance([Change(transfer_id, S.CONFIRMED, f"operator retry by {by}",
                                   {"wait_reason": None, "wait_until": None})])
        log.warning("held transfer retried transfer_id=%s by=%s", transfer_id, by,
                    extra={"transfer_id": transfer_id})
        return True

    # ------------------------------------------------------------------ usage and queue
    def usage(self, route: str, since: float) -> int:
        """Base units let through on `route` after `since` (seconds)."""
        return sum(a for _, a in usage_window(self.store, route, since))

    def queue(self, route: str | None = None) -> list[Any]:
        """Transfers held back by the risk engine (rate limit, large-transfer delay, pause),
        oldest first (the order they will go in), optionally of one route."""
        q = select(T).where(T.c.wait_reason.in_(RISK_REASONS),
                            T.c.status.in_([S.CONFIRMED.value, S.ATTESTED.value]))
        if route is not None:
            parts = split_route(route)
            if parts is None:
                return []
            src, dst, asset = parts
            q = q.where(and_(T.c.source_chain == src, T.c.dest_chain == dst, T.c.asset == asset))
        with self.store.engine.connect() as conn:
            return list(conn.execute(q.order_by(T.c.id)).all())


# ---------------------------------------------------------------------- helpers (risk_gate)
def usage_window(store: Store, route: str, since: float) -> list[tuple[float, int]]:
    """(time, amount) of every transfer let through on `route` after `since`, oldest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(U.c.at, U.c.amount).where(
            and_(U.c.route == route, U.c.at > since)).order_by(U.c.at)).all()
    return [(r.at, int(r.amount)) for r in rows]


def counted_keys(store: Store, keys: Sequence[str]) -> set[str]:
    """The event keys among `keys` that already have a usage row."""
    out: set[str] = set()
    with store.engine.connect() as conn:
        for i in range(0, len(keys), 900):
            out.update(r.event_key for r in conn.execute(
                select(U.c.event_key).where(U.c.event_key.in_(keys[i:i + 900]))))
    return out


def record_usage_on(conn: Connection, rows: Iterable[tuple[str, str, int]], at: float) -> None:
    """Insert (route, event key, amount) usage rows on the caller's transaction; a key already
    recorded is left as it is (idempotent)."""
    values = [{"route": r, "event_key": k, "amount": a, "at": at} for r, k, a in rows]
    if not values:
        return
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(dialect_insert(U).on_conflict_do_nothing(index_elements=["event_key"]), values)


def forget_usage_on(conn: Connection, keys: Sequence[str]) -> None:
    """Delete the usage rows of `keys` (transfers that turned out not to pass)."""
    if keys:
        conn.execute(delete(U).where(U.c.event_key.in_(list(keys))))


def set_waits_on(conn: Connection, waits: Iterable[tuple[int, str | None, float | None]]) -> None:
    """Set (transfer id, wait_reason, wait_until) on the caller's transaction."""
    for tid, reason, until in waits:
        conn.execute(update(T).where(T.c.id == tid).values(wait_reason=reason, wait_until=until))


def unreleased_burns(store: Store, chain: str, asset: str) -> int:
    """Base units of `asset` burned on the ledger for `chain` and not yet paid out there."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(T.c.amount).where(and_(
            T.c.kind == "burn", T.c.dest_chain == chain, T.c.asset == asset,
            T.c.status.notin_([S.EXECUTED.value, S.REFUNDED.value])))).all()
    return sum(int(r.amount) for r in rows)


def split_route(route: str) -> tuple[str, str, str] | None:
    """(source chain, dest chain, asset) of a `route_key`, or None if it is not one. CAIP-2 ids
    hold exactly one colon, so the destination is the first two colon-separated parts."""
    src, sep, rest = route.partition(">")
    parts = rest.split(":", 2)
    if not sep or len(parts) != 3 or not all(parts):
        return None
    return src, f"{parts[0]}:{parts[1]}", parts[2]


def _check(value: str, what: str, max_len: int) -> None:
    if not value or len(value) > max_len:
        raise ValidationError(f"{what} must be 1..{max_len} characters")
