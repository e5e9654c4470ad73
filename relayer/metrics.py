"""Prometheus metrics of the relayer, on their own registry so several engines can coexist in
one test process. Names follow ``ferry_<subsystem>_<what>_<unit>``; labels are bounded
(chain, state, reason).

Owns: metric objects. Must not compute anything a job would not compute anyway: the gauges read
from the database are set by the ``gauges`` job (`relayer.gauges.refresh_db_gauges`); the RPC
endpoints' circuit state is read at scrape time from the live pools (`adapters.rpc_health`).
Alert rules and the dashboard that use these names: ``deploy/prometheus/alerts.yml``,
``deploy/grafana/ferry-dashboard.json``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from adapters.rpc_health import RpcHealthCollector


class RelayerMetrics:
    """The relayer's metrics on one registry (served on ``[relayer] metrics_port``).

    Args:
        registry: where to register (default: a fresh one).
        rpc_health: also export ``ferry_rpc_*`` of this process's live RPC pools.
    """

    def __init__(self, registry: CollectorRegistry | None = None,
                 rpc_health: bool = True) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_observed = Counter(
            "ferry_relayer_events_observed_total", "Lock events and burns observed.",
            ["chain"], registry=r)
        self.transfers = Gauge(
            "ferry_relayer_transfers", "Transfers by state.", ["state"], registry=r)
        self.head_height = Gauge(
            "ferry_relayer_chain_head_height_blocks", "Chain head height.", ["chain"], registry=r)
        self.finalized_height = Gauge(
            "ferry_relayer_chain_finalized_height_blocks", "Finalized (confirmed) height.",
            ["chain"], registry=r)
        self.attestation_latency = Histogram(
            "ferry_relayer_attestation_latency_seconds",
            "From confirmation to quorum of attestations.", registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
        self.rpc_errors = Counter(
            "ferry_relayer_rpc_errors_total", "RPC failures by chain.", ["chain"], registry=r)
        self.reorgs = Counter(
            "ferry_relayer_reorgs_total", "Reorgs detected.", ["chain"], registry=r)
        self.attestations = Counter(
            "ferry_relayer_attestations_total", "Attestations received, by outcome.",
            ["kind", "outcome"], registry=r)
        self.executed = Counter(
            "ferry_relayer_transfers_executed_total", "Mints and releases executed.",
            ["chain"], registry=r)
        # Risk engine (relayer.risk_gate, relayer.accountant). Labels: the ledger's assets and
        # their two routes each (bounded by the asset list).
        self.solvency_halted = Gauge(
            "ferry_risk_solvency_halted", "1 while an asset's routes are halted because its "
            "ledger supply exceeds what its origin chain holds.", ["asset"], registry=r)
        self.route_paused = Gauge(
            "ferry_risk_route_paused", "1 while a route is paused (operator or accountant).",
            ["route"], registry=r)
        # Read from the database by the ``gauges`` job (relayer.gauges). Labels: kind (lock,
        # burn), state (TransferStatus), chain (the non-ledger side), wait (validators.risk
        # WaitReason or "none"), validator (a current member's key).
        self.oldest_pending_age = Gauge(
            "ferry_relayer_oldest_pending_transfer_age_seconds",
            "Age (since first seen) of the oldest transfer not yet executed, refunded or "
            "dropped.", ["kind", "state", "chain", "wait"], registry=r)
        self.pending = Gauge(
            "ferry_relayer_pending_transfers", "Transfers not yet executed, refunded or "
            "dropped.", ["kind", "state", "chain", "wait"], registry=r)
        self.scan_lag = Gauge(
            "ferry_relayer_chain_scan_lag_blocks", "Chain head minus the last block the "
            "relayer scanned.", ["chain"], registry=r)
        self.head_age = Gauge(
            "ferry_relayer_chain_head_age_seconds", "Seconds since the relayer last recorded "
            "a new head of the chain.", ["chain"], registry=r)
        self.validator_last_attestation = Gauge(
            "ferry_relayer_validator_last_attestation_timestamp_seconds",
            "When the relayer last stored an attestation of this current validator (Unix "
            "seconds). Lock attestations beyond a quorum are not stored, so for locks this "
            "shows the first signers only.", ["kind", "validator"], registry=r)
        self.gauges_refreshed = Gauge(
            "ferry_relayer_gauges_refreshed_timestamp_seconds", "When this process last "
            "refreshed the database gauges (a replica that lost the gauges job stops "
            "updating it).", registry=r)
        # State of the gauges job kept between runs (relayer.gauges): the attestation id read
        # up to and each (kind, validator)'s last time.
        self.attestations_seen: dict[str, Any] = {"after_id": 0, "last": {}}
        if rpc_health:
            r.register(RpcHealthCollector())
