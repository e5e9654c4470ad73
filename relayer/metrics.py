"""Prometheus metrics of the relayer, on their own registry so several engines can coexist in
one test process. Names follow ``ferry_<subsystem>_<what>_<unit>``; labels are bounded
(chain, state, reason).

Owns: metric objects. Must not compute anything a job would not compute anyway.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RelayerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
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
