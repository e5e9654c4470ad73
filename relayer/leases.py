"""Leases that let several relayer replicas share one database without running a singleton job
twice at once.

Owns: `Leases` (acquire, renew and give up named leases in ``job_leases``, migration 0007) and
`default_replica_id`. Must not run jobs itself (`relayer.service` decides what runs under which
lease) or touch transfers.

Model: a replica runs a singleton job (one chain's watch/confirm/release, the ledger-burns reader,
the accountant, swaps, webhooks) only while it holds that job's lease. Holding is renewed by every
run of the job (`hold`); a lease whose holder stopped renewing lapses ``ttl_s`` seconds after its
last renewal and the next replica to ask takes it. A replica that was SIGKILLed therefore hands
its jobs over within ``ttl_s``. ``token`` grows each time a lease changes hands (a fencing token:
logs and metrics show who held what, and a job can check it still holds its lease).

SECURITY / exactly-once: the lease is a liveness tool, not the safety argument. Safety comes from
the store and the destinations: every status change is an optimistic compare-and-set on the
transfer's status (`relayer.store`), a ledger mint is keyed by the lock's event id, and a bridge
pays a burn id at most once. Two replicas briefly both believing they hold a lease (a paused
process resuming after ``ttl_s``) can waste work but cannot execute a transfer twice.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from sqlalchemy import Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from adapters.base import Clock, SystemClock
from relayer.db import write_transaction
from relayer.models import JobLease

L = JobLease.__table__  # type: ignore[attr-defined]


def default_replica_id() -> str:
    """``<hostname>-<pid>``: distinct for every process of a deployment."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Leases:
    """Named leases of one replica.

    Args:
        engine: the relayer database (SQLite or PostgreSQL).
        holder: this replica's id (``[relayer] replica_id``).
        ttl_s: seconds a lease lasts after its last renewal (> the longest job run).
        clock: time source (seconds).
    """

    def __init__(self, engine: Engine, holder: str, ttl_s: float = 15.0,
                 clock: Clock | None = None) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.engine, self.holder, self.ttl_s = engine, holder, ttl_s
        self.clock = clock or SystemClock()

    def hold(self, name: str) -> bool:
        """Take or renew lease `name`; True if this replica holds it for at least the next
        ``ttl_s / 2`` seconds.

        Cheap when nothing changes: a plain read, and a write only to renew a lease past half
        its term, to take over a lapsed one or to create a new one. Every write is a
        compare-and-set on the row as read (no row locks held), so of two replicas racing for
        a lapsed or new lease exactly one wins.
        """
        now = self.clock.now()
        with self.engine.connect() as conn:
            row = conn.execute(select(L).where(L.c.name == name)).first()
        if row is not None and row.holder == self.holder and row.expires_at - now > self.ttl_s / 2:
            return True
        if row is not None and row.holder != self.holder and row.expires_at >= now:
            return False
        until = now + self.ttl_s
        with write_transaction(self.engine) as conn:
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(L).values(name=name, holder=self.holder, token=1,
                                                      expires_at=until))
                    return True
                except IntegrityError:  # another replica created it in the meantime
                    return False
            changed = conn.execute(update(L).where(and_(
                L.c.name == name, L.c.holder == row.holder, L.c.token == row.token,
                L.c.expires_at == row.expires_at)).values(
                holder=self.holder, expires_at=until,
                token=L.c.token + (0 if row.holder == self.holder else 1))).rowcount
            return bool(changed)

    def renew_held(self) -> int:
        """Extend every unexpired lease this replica holds by ``ttl_s`` (the keeper job: a
        live replica keeps its leases through a long job run). Returns how many."""
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            return int(conn.execute(update(L).where(and_(
                L.c.holder == self.holder, L.c.expires_at >= now)).values(
                expires_at=now + self.ttl_s)).rowcount)

    def release_all(self) -> int:
        """Give up every lease this replica holds (graceful shutdown): others take over at
        once instead of after ``ttl_s``. Returns how many were held."""
        with write_transaction(self.engine) as conn:
            return int(conn.execute(update(L).where(L.c.holder == self.holder).values(
                expires_at=0.0)).rowcount)

    def holders(self) -> dict[str, dict[str, Any]]:
        """Every lease: name -> {holder, token, expires_at, live} (for /readyz and tests)."""
        now = self.clock.now()
        with self.engine.connect() as conn:
            return {r.name: {"holder": r.holder, "token": int(r.token),
                             "expires_at": r.expires_at, "live": r.expires_at >= now}
                    for r in conn.execute(select(L))}
