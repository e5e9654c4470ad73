"""The relayer's enforcement of the risk rules (`validators.risk.decide`) before it mints on the
ledger or commits a release of a burn, on any chain family.

Owns: `RiskGate` (one per engine) and `RiskPass` (one per job run: the per-route window and the
FIFO state of that run), `route_of`, `DEFERRED_REASONS`. Must not call chains or the ledger, and
must not write a transfer's status (that is `Store.advance`; the gate only adds its usage rows
and wait fields to the caller's transactions).

Rules applied, per transfer, in id order within a route:

- a paused route lets nothing through (not even an operator-released transfer);
- a transfer the relayer already let through (it has a usage row) passes again without being
  re-decided: recording is keyed by its event key, so a restart never counts it twice;
- otherwise `decide` with the relayer's own window (usage rows of the last ``window_s``), its
  first sight (`created_at`) and the operator's release flag;
- FIFO: once one transfer of a route waits for the volume limit, every later one on that route
  waits too (the head goes first, so a stream of small transfers cannot starve a large one). A
  transfer larger than the whole limit (it can only move by operator release) does not block
  the route, and a transfer in its large-transfer delay does not block it either.

A held-back transfer keeps its status and gets ``wait_reason``/``wait_until`` (written only when
they change); they are cleared in the transaction that lets it go.

Where the usage row is written (the commit point of each path):
- mints: in one transaction just before the ledger call (`RiskPass.commit`), because the ledger's
  mint is keyed by the lock's event id (a crash after this point re-submits and the ledger answers
  "duplicate"), and because counting before minting errs on the safe side: a crash can only
  over-count the window, never let more through. When the ledger then refuses or defers the mint,
  the row is deleted with that outcome (nothing was minted).
- EVM releases: with the advance to ``submitted`` that persists the signed transaction.
- custody (UTXO) and escrow releases: with the transaction that stores the release plan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

from adapters.base import Clock
from relayer.db import write_transaction
from relayer.risk_store import (
    RouteStore,
    counted_keys,
    forget_usage_on,
    record_usage_on,
    set_waits_on,
    usage_window,
)
from relayer.store import Store
from validators.risk import GO, RiskDecision, RiskSection, WaitReason, decide, route_key

log = logging.getLogger(__name__)
# The ledger's `MintResult.code` of a `deferred` mint -> the wait reason the relayer shows.
DEFERRED_REASONS = {
    "rate_limited": WaitReason.RATE_LIMIT,
    "large_transfer_delay": WaitReason.DELAY,
    "route_paused": WaitReason.PAUSED,
}
Wait = tuple[Any, str | None, float | None]  # (transfer row, wait_reason, wait_until)


def route_of(row: Any) -> str:
    """The risk route of a transfer row: ``source>dest:asset`` (a lock's dest is the ledger,
    a burn's source is the ledger)."""
    return route_key(row.source_chain, row.dest_chain, row.asset)


class RiskGate:
    """The relayer's risk engine over its store.

    Args:
        store: the relayer store.
        section: the ``[risk]`` config (no routes: no volume limits or delays; pauses still hold).
        clock: the engine's clock (seconds); defaults to the store's.
    """

    def __init__(self, store: Store, section: RiskSection | None = None,
                 clock: Clock | None = None) -> None:
        self.store = store
        self.section = section or RiskSection()
        self.clock = clock or store.clock
        self.routes = RouteStore(store)

    def begin(self) -> RiskPass:
        """State for one job run (not shared between threads)."""
        return RiskPass(self)

    def wait_at_confirm(self, row: Any) -> dict[str, Any]:
        """The wait fields of a transfer reaching confirmation depth: its large-transfer delay
        if it has one (each validator holds it too, by the same rule on its own clock, so no
        quorum forms before it ends or an operator releases it), else the quorum."""
        decision = decide(self.section, route_of(row), int(row.amount), row.created_at,
                          self.clock.now(), [], operator_released=bool(row.operator_released))
        if not decision.go and decision.reason is WaitReason.DELAY:
            return {"wait_reason": decision.reason.value, "wait_until": decision.until}
        return {"wait_reason": WaitReason.QUORUM.value, "wait_until": None}


class RiskPass:
    """One job run's view: the time, the paused routes, each route's window as read once and
    grown by what this run lets through, and the FIFO heads."""

    def __init__(self, gate: RiskGate) -> None:
        self.gate = gate
        self.now = gate.clock.now()
        self.paused = set(gate.routes.paused())
        self.counted: set[str] = set()  # event keys with a usage row
        self._windows: dict[str, list[tuple[float, int]]] = {}
        self._blocked: dict[str, float] = {}  # route -> `until` of its first rate-limited transfer

    # ------------------------------------------------------------------ deciding
    def admit(self, rows: Iterable[Any]) -> list[Any]:
        """The rows that may go now, in id order; the others' wait fields are persisted.

        Args:
            rows: transfer rows (any mix of routes) about to be minted or released.
        """
        ordered = sorted(rows, key=lambda r: r.id)
        self.counted |= counted_keys(self.gate.store, [r.event_key for r in ordered])
        go: list[Any] = []
        waits: list[Wait] = []
        for r in ordered:
            d = self.decide(r)
            if d.go:
                go.append(r)
            else:
                waits.append((r, d.reason.value if d.reason else None, d.until))
        self.wait(waits)
        return go

    def decide(self, r: Any) -> RiskDecision:
        """The decision for one transfer row (see the module docstring); a GO counts toward this
        run's window at once, a rate-limit wait makes the route's later transfers wait."""
        route = route_of(r)
        if route in self.paused:
            return RiskDecision(False, WaitReason.PAUSED, None)
        if r.event_key in self.counted:
            return GO
        section = self.gate.section
        if section.limit(route) is None:
            return GO
        amount = int(r.amount)
        released = bool(r.operator_released)
        d = decide(section, route, amount, float(r.created_at), self.now, self._window(route),
                   operator_released=released)
        head = self._blocked.get(route)
        if head is not None and not released and (d.go or d.reason == WaitReason.RATE_LIMIT):
            until = head if d.go else (None if d.until is None else max(head, d.until))
            return RiskDecision(False, WaitReason.RATE_LIMIT, until)
        if d.go:
            self._window(route).append((self.now, amount))
        elif d.reason == WaitReason.RATE_LIMIT and d.until is not None:
            self._blocked[route] = d.until
        return d

    def refresh_paused(self) -> None:
        """Re-read the paused routes (after the accountant halted some)."""
        self.paused = set(self.gate.routes.paused())

    def _window(self, route: str) -> list[tuple[float, int]]:
        if route not in self._windows:
            since = self.now - self.gate.section.window_s
            self._windows[route] = usage_window(self.gate.store, route, since)
        return self._windows[route]

    # ------------------------------------------------------------------ writing
    def wait(self, waits: Sequence[Wait]) -> None:
        """Persist wait fields of held-back rows, in one transaction, skipping unchanged ones."""
        changed = [(r.id, reason, until) for r, reason, until in waits
                   if (r.wait_reason, r.wait_until) != (reason, until)]
        if not changed:
            return
        with write_transaction(self.gate.store.engine) as conn:
            set_waits_on(conn, changed)
        for tid, reason, until in changed:
            log.info("transfer waits transfer_id=%s reason=%s until=%s", tid, reason, until,
                     extra={"transfer_id": tid})

    def commit_on(self, conn: Connection, rows: Sequence[Any]) -> None:
        """On the caller's transaction: record the usage of `rows` (idempotent per event key)
        and clear their wait fields. Call it in the transaction that commits the mint or
        release."""
        record_usage_on(conn, [(route_of(r), r.event_key, int(r.amount)) for r in rows
                               if r.event_key not in self.counted], self.now)
        set_waits_on(conn, [(r.id, None, None) for r in rows
                            if r.wait_reason is not None or r.wait_until is not None])
        self.counted.update(r.event_key for r in rows)

    def commit(self, rows: Sequence[Any]) -> None:
        """`commit_on` in its own transaction."""
        if rows:
            with write_transaction(self.gate.store.engine) as conn:
                self.commit_on(conn, rows)

    def usage(self, row: Any, then: Callable[[Connection], None] | None = None,
              ) -> Callable[[Connection], None]:
        """An ``also=`` callback for `Store.advance`: `then(conn)` (e.g. store a release plan),
        then `commit_on` for `row`, on the same transaction."""
        def run(conn: Connection) -> None:
            if then is not None:
                then(conn)
            self.commit_on(conn, [row])
        return run

    def forget(self, keys: Sequence[str]) -> Callable[[Connection], None]:
        """An ``also=`` callback deleting the usage rows of `keys` (they did not pass)."""
        self.counted.difference_update(keys)
        return lambda conn: forget_usage_on(conn, list(keys))

    def defer(self, deferred: Sequence[tuple[Any, Any]]) -> None:
        """The ledger deferred these mints (`MintResult` status ``deferred``): forget their usage
        (nothing was minted) and show why and until when they wait, in one transaction."""
        if not deferred:
            return
        keys = [r.event_key for r, _ in deferred]
        waits = []
        for r, res in deferred:
            reason = DEFERRED_REASONS.get(res.code or "")
            if reason is None:
                log.warning("ledger deferred mint with unknown code transfer_id=%s code=%s",
                            r.id, res.code, extra={"transfer_id": r.id})
            retry_at = getattr(res, "retry_at", None)
            waits.append((r.id, reason.value if reason else None,
                          None if retry_at is None else float(retry_at)))
        self.counted.difference_update(keys)
        with write_transaction(self.gate.store.engine) as conn:
            forget_usage_on(conn, keys)
            set_waits_on(conn, waits)


def gate_mints(rp: RiskPass, ready: Sequence[Any], accountant: Any = None) -> list[Any]:
    """The mint path's gate: `admit`, then the accountant's pre-mint solvency check over the
    fresh rows (not yet counted), then `commit` of what remains. Rows of an asset the
    accountant stopped wait ``paused`` if it halted their route (else, e.g. the chain could not
    be read, they just stay for the next run).

    Returns:
        The rows to submit to the ledger now.
    """
    go = rp.admit(ready)
    if accountant is not None and go:
        stopped = accountant.check_mints([r for r in go if r.event_key not in rp.counted])
        if stopped:
            rp.refresh_paused()
            halted = [r for r in go if r.asset in stopped and route_of(r) in rp.paused]
            rp.wait([(r, WaitReason.PAUSED.value, None) for r in halted])
            go = [r for r in go if r.asset not in stopped]
    rp.commit(go)
    return go
