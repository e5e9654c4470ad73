"""The accountant: for every wrapped asset, the ledger's supply against what the origin chain
holds, read from the chain; a route whose asset is not backed is halted (paused) and an alert
raised. It never unpauses: an operator does, after looking.

Owns: `Accountant` (the periodic job, scheduled as ``accountant`` in `relayer.service`, and the
pre-mint check the engine calls for every mint batch), `Books`. Must not mint, release or move a
transfer's status; its only writes are route pauses (`RouteStore.pause`, reason ``solvency``, by
``accountant``).

An asset is backed while ``supply + pending_release <= locked - released`` on its bridge, which
is ``minted_total <= locked``: released amounts cancel out. The ledger is read before the chain,
and a chain's ``locked`` only grows, so reading the chain later can only overstate the backing:
a healthy bridge never trips the check, whatever happens between the two reads.

Two kinds of books:
- exact (contract bridges, `ChainAdapter.custody_totals`): halted at the first shortfall, and
  checked again before each mint batch (`check_mints`: ``supply + pending_release + batch <=
  locked - released``, one chain read per asset per batch; the pending releases make it the
  same inequality as above with the batch minted).
- in flight for a while (UTXO custody via `relayer.solvency.custody_report`, escrow balances):
  a spend confirmed on chain leaves the relayer's books only at depth, and a fresh deposit is
  added to its coins after its mint, so a shortfall there halts only if it lasts
  `inexact_grace_s`. These chains have no pre-mint check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.errors import BridgeError, RetryableChainError, Unsupported
from relayer.metrics import RelayerMetrics
from relayer.risk_store import RouteStore, unreleased_burns
from relayer.solvency import custody_report, supply_report
from relayer.store import Store
from validators.risk import route_key

log = logging.getLogger(__name__)
LEDGER = "ferry:ledger"
REASON, BY = "solvency", "accountant"
INEXACT_GRACE_S = 2 * 3600.0  # a Bitcoin release is in flight for up to its depth in blocks


@dataclass(frozen=True, slots=True)
class Books:
    """One asset's books, base units. `backing`: what the origin chain holds for the ledger
    (locked - released, or the custody's confirmed holdings less its fee reserve, or the escrow
    balance); `exact`: whether in-flight transfers can make it look short for a while."""

    asset: str
    origin_chain: str
    supply: int
    pending_release: int
    backing: int
    exact: bool

    @property
    def shortfall(self) -> int:
        return max(0, self.supply + self.pending_release - self.backing)


def routes_of(asset: str, origin_chain: str) -> tuple[str, str]:
    """Both routes of a wrapped asset: mints (origin -> ledger) and releases (ledger -> origin)."""
    return route_key(origin_chain, LEDGER, asset), route_key(LEDGER, origin_chain, asset)


class Accountant:
    """Compares ledger supply with origin-chain custody and halts unbacked assets' routes.

    Args:
        store: the relayer store (route pauses; custody coins and pending releases).
        ledger: ledger client (`assets()`).
        adapters: CAIP-2 id -> chain adapter.
        metrics: the relayer's metrics (gauges ``ferry_risk_*``).
        custody: `relayer.custody.CustodyReleases` (its `chains` are UTXO-custody chains).
        escrow: `relayer.escrow.EscrowReleases` (its `chains` are escrow chains).
        inexact_grace_s: how long a shortfall on in-flight books must last before a halt.
    """

    def __init__(self, store: Store, ledger: Any, adapters: Mapping[str, Any],
                 metrics: RelayerMetrics | None = None, *, custody: Any = None,
                 escrow: Any = None, inexact_grace_s: float = INEXACT_GRACE_S) -> None:
        self.store, self.ledger, self.adapters = store, ledger, adapters
        self.metrics = metrics or RelayerMetrics()
        self.routes = RouteStore(store)
        self.custody, self.escrow = custody, escrow
        self.inexact_grace_s = inexact_grace_s
        self._short_since: dict[str, float] = {}  # asset -> first run it looked short
        self._alerted: set[str] = set()

    # ------------------------------------------------------------------ the job
    def run(self) -> list[Books]:
        """One check of every asset (the ``accountant`` job). Returns the books it could read;
        an unreadable chain is logged and skipped (checked again next run)."""
        assets = self.ledger.assets()  # the ledger first, then the chains (module docstring)
        now = self.store.clock.now()
        out, halted = [], set()
        for a in assets:
            books = self._read(a)
            if books is None:
                continue
            out.append(books)
            if not books.shortfall:
                self._short_since.pop(a.asset, None)
                continue
            since = self._short_since.setdefault(a.asset, now)
            if books.exact or now - since >= self.inexact_grace_s:
                self.halt(books, "periodic")
                halted.add(a.asset)
            else:
                log.warning("asset looks short (in flight?) asset=%s chain=%s shortfall=%d "
                            "since=%.0f", a.asset, a.origin_chain, books.shortfall, since)
        self._gauges(assets, halted)
        return out

    def check_mints(self, rows: Sequence[Any]) -> set[str]:
        """Pre-mint check of one batch: for each asset with exact books, supply + pending
        releases + the batch must stay within locked - released (one chain read per asset).

        Args:
            rows: transfer rows about to be minted for the first time (amount, asset).

        Returns:
            The assets of which nothing may be minted now: halted (routes paused, alert
            logged), or their chain could not be read (retried next run).
        """
        batch: dict[str, int] = {}
        for r in rows:
            batch[r.asset] = batch.get(r.asset, 0) + int(r.amount)
        if not batch:
            return set()
        infos = {a.asset: a for a in self.ledger.assets()}
        stop: set[str] = set()
        for asset, amount in batch.items():
            a = infos.get(asset)
            adapter = None if a is None else self.adapters.get(a.origin_chain)
            if a is None or adapter is None or self._inexact(a.origin_chain):
                continue  # the ledger refuses unknown assets; inexact books: periodic only
            try:
                books = self._bridge_books(a, adapter)
            except Unsupported:
                continue
            except RetryableChainError as exc:
                self.metrics.rpc_errors.labels(a.origin_chain).inc()
                log.warning("pre-mint check cannot read chain=%s asset=%s: %s; minting none of "
                            "it this run", a.origin_chain, asset, exc)
                stop.add(asset)
                continue
            if books.supply + books.pending_release + amount > books.backing:
                self.halt(books, "pre-mint", amount)
                stop.add(asset)
        return stop

    # ------------------------------------------------------------------ halting
    def halt(self, books: Books, check: str, batch: int = 0) -> None:
        """Pause both routes of `books.asset`, set the gauges, and log the ALERT (once per halt;
        again if an operator unpaused while the asset is still short)."""
        routes = routes_of(books.asset, books.origin_chain)
        changed = [r for r in routes if self.routes.pause(r, REASON, BY)]
        self.metrics.solvency_halted.labels(books.asset).set(1)
        for r in routes:
            self.metrics.route_paused.labels(r).set(1)
        if changed or books.asset not in self._alerted:
            self._alerted.add(books.asset)
            log.error(
                "ALERT solvency: asset not backed by its origin chain; routes halted asset=%s "
                "chain=%s check=%s supply=%d pending_release=%d batch=%d backing=%d "
                "shortfall=%d routes=%s", books.asset, books.origin_chain, check, books.supply,
                books.pending_release, batch, books.backing,
                books.supply + books.pending_release + batch - books.backing, ",".join(routes))

    def _gauges(self, assets: Sequence[Any], halted: set[str]) -> None:
        """Route and halt gauges for the ledger's assets only (bounded labels)."""
        paused = self.routes.paused()
        for a in assets:
            routes = routes_of(a.asset, a.origin_chain)
            for r in routes:
                self.metrics.route_paused.labels(r).set(1 if r in paused else 0)
            solvency = any(r in paused and paused[r].reason == REASON for r in routes)
            self.metrics.solvency_halted.labels(a.asset).set(
                1 if a.asset in halted or solvency else 0)
            if a.asset not in halted and not solvency:
                self._alerted.discard(a.asset)

    # ------------------------------------------------------------------ reading the chains
    def _inexact(self, chain: str) -> bool:
        return any(x is not None and chain in x.chains for x in (self.custody, self.escrow))

    def _read(self, a: Any) -> Books | None:
        adapter = self.adapters.get(a.origin_chain)
        if adapter is None:
            return None
        try:
            if self.custody is not None and a.origin_chain in self.custody.chains:
                return self._custody_books(a, adapter)
            if self.escrow is not None and a.origin_chain in self.escrow.chains:
                return self._escrow_books(a, adapter)
            return self._bridge_books(a, adapter)
        except Unsupported:
            return None
        except RetryableChainError as exc:
            self.metrics.rpc_errors.labels(a.origin_chain).inc()
            log.warning("accountant cannot read chain=%s asset=%s: %s", a.origin_chain,
                        a.asset, exc)
        except BridgeError as exc:
            log.error("accountant cannot check chain=%s asset=%s: %s", a.origin_chain,
                      a.asset, exc)
        return None

    def _bridge_books(self, a: Any, adapter: Any) -> Books:
        [line] = supply_report([a], {a.origin_chain: adapter})
        return Books(a.asset, a.origin_chain, line.supply, line.pending_release,
                     line.locked - line.released, exact=True)

    def _custody_books(self, a: Any, adapter: Any) -> Books:
        from relayer.coins import BACKING

        coins = self.custody.coins
        chain = a.origin_chain
        unspent: Callable[[Any], int | None] = adapter.coin_unspent
        [line] = custody_report([a], {chain: (coins.coins(chain, BACKING),
                                              coins.pending_releases(chain),
                                              coins.fee_reserve(chain))}, {chain: unspent})
        return Books(a.asset, chain, line.supply, line.pending_release,
                     line.holdings - line.fee_reserve, exact=False)

    def _escrow_books(self, a: Any, adapter: Any) -> Books:
        balance = getattr(adapter, "escrow_balance", None)
        if balance is None:
            raise Unsupported(f"no escrow balance on {a.origin_chain}")
        held = balance(a.origin_token)
        return Books(a.asset, a.origin_chain, a.supply,
                     unreleased_burns(self.store, a.origin_chain, a.asset), held, exact=False)
