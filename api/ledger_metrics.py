"""Prometheus metrics and health of the ledger service (`ferry ledger serve`), served by the
ledger app itself on ``GET /metrics``, ``/healthz`` and ``/readyz`` (`api.observability`).

Owns: `LedgerMetrics` (counters the routes bump: mint outcomes, accepted transactions),
`LedgerCollector` (gauges read from the ledger at scrape time: journal seq, epoch, supply and
minted/burned totals per asset) and `install_ledger_observability`. Must not change ledger
state or hold ledger rules.

Metrics: ``ferry_ledger_mints_total{status}`` (minted, duplicate, rejected, deferred),
``ferry_ledger_transactions_total{kind}`` (burn, htlc_lock, transfer), ``ferry_ledger_journal_seq``,
``ferry_ledger_validator_set_epoch``, ``ferry_ledger_asset_supply_base_units{asset}``,
``ferry_ledger_asset_minted_base_units_total{asset}``,
``ferry_ledger_asset_burned_base_units_total{asset}`` (amounts in the asset's base units, as
floats: Prometheus has no integers), and the request metrics ``ferry_ledger_http_*``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.errors import BridgeError
from ledger.transactions import TxKind
from ledger.types import MintStatus


class LedgerMetrics:
    """Counters the ledger's routes bump (`observe_mints`, `observe_transaction`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.mints = Counter("ferry_ledger_mints_total", "Mint requests by outcome.",
                             ["status"], registry=registry)
        self.transactions = Counter("ferry_ledger_transactions_total",
                                    "User transactions accepted, by kind.", ["kind"],
                                    registry=registry)
        for status in MintStatus:  # every series exists from the start (rate() works)
            self.mints.labels(status.value)
        for kind in TxKind:
            self.transactions.labels(kind.value)


class LedgerCollector(Collector):
    """Journal seq, epoch and per-asset supply read from `ledger` at scrape time (two short
    read transactions); nothing when the database cannot be read (``/readyz`` says why)."""

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger

    def collect(self) -> Iterator[Metric]:
        try:
            status = self.ledger.status()
            assets = self.ledger.assets()
        except BridgeError:
            return
        seq = GaugeMetricFamily("ferry_ledger_journal_seq", "Seq of the newest journal entry.")
        seq.add_metric([], status.journal_seq)
        epoch = GaugeMetricFamily("ferry_ledger_validator_set_epoch",
                                  "Epoch of the current validator set.")
        epoch.add_metric([], status.epoch)
        supply = GaugeMetricFamily("ferry_ledger_asset_supply_base_units",
                                   "Wrapped supply of the asset, base units.", labels=["asset"])
        minted = CounterMetricFamily("ferry_ledger_asset_minted_base_units",
                                     "Minted so far, base units.", labels=["asset"])
        burned = CounterMetricFamily("ferry_ledger_asset_burned_base_units",
                                     "Burned so far, base units.", labels=["asset"])
        for a in assets:
            supply.add_metric([a.asset], a.supply)
            minted.add_metric([a.asset], a.minted_total)
            burned.add_metric([a.asset], a.burned_total)
        yield from (seq, epoch, supply, minted, burned)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # read at collect time only (no ledger call at registration)


def observe_mints(request: Request, results: Sequence[Any]) -> None:
    """Count mint results (`ledger.types.MintResult`) on the app's `LedgerMetrics`."""
    metrics: LedgerMetrics | None = getattr(request.app.state, "ledger_metrics", None)
    if metrics is not None:
        for r in results:
            metrics.mints.labels(str(r.status)).inc()


def observe_transaction(request: Request, kind: str) -> None:
    """Count one accepted user transaction of `kind` on the app's `LedgerMetrics`."""
    metrics: LedgerMetrics | None = getattr(request.app.state, "ledger_metrics", None)
    if metrics is not None:
        metrics.transactions.labels(kind).inc()


def install_ledger_observability(app: FastAPI, ledger: Any) -> None:
    """``/metrics`` (the module's metrics), ``/healthz`` and ``/readyz`` (the database answers
    a status read) on the ledger app. Call it after every other middleware."""
    from api.observability import install_observability

    registry = install_observability(app, "ledger", {"database": ledger.status},
                                     [LedgerCollector(ledger)])
    app.state.ledger_metrics = LedgerMetrics(registry)
