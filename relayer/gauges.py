"""The relayer's gauges read from its database, set by the ``gauges`` job
(`relayer.engine.Engine.refresh_gauges`, every few seconds): transfers by state, the age of the
oldest pending transfer, how far each chain's scan is behind its head, when each current
validator last attested, and the route pauses and solvency halts (also set by the accountant
when it halts; re-read here so that every replica running this job agrees with the database).

Owns: `refresh_db_gauges` and the queries behind it. Must not write to the database, call a
chain or the ledger (the current validator sets come from the engine's caches), or label a
gauge with anything unbounded (labels: kind, state, chain, wait reason, current validator key).

Cost per run: one ``GROUP BY`` over non-terminal transfers (index on status), the
``chain_heads`` table (one row per chain), and the attestations stored since the previous run
(by primary key; the first run after a start reads them all once).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import case, func, select

from adapters.errors import BridgeError, Unsupported
from relayer.heads import chain_heads
from relayer.machine import TERMINAL, TransferKind, TransferStatus
from relayer.metrics import RelayerMetrics
from relayer.risk_store import RouteStore, split_route
from relayer.store import A, Store, T

log = logging.getLogger(__name__)
LEDGER = "ferry:ledger"
# Not pending: finished, or removed by a reorg (re-observed if the event comes back).
NOT_PENDING = frozenset({*TERMINAL, TransferStatus.DROPPED})
PENDING = tuple(s.value for s in TransferStatus if s not in NOT_PENDING)


def refresh_db_gauges(store: Store, metrics: RelayerMetrics, now: float,
                      members: Mapping[str, Iterable[str]] | None = None) -> None:
    """Set the database gauges of `metrics` (names: `relayer.metrics`).

    Args:
        store: the relayer store.
        metrics: the relayer's metrics; ``metrics.attestations_seen`` carries this job's state
            between runs.
        now: the store clock's time, seconds.
        members: per attestation kind (``lock``, ``release``), the current validators' keys
            as stored (0x hex Ed25519 key, 0x EVM address, lowercase); a kind left out (its set
            could not be read) keeps its previous samples.
    """
    counts = store.counts_by_status()
    for status in TransferStatus:  # every state, so one that emptied drops to 0
        metrics.transfers.labels(status.value).set(counts.get(status.value, 0))
    _pending(store, metrics, now)
    _heads(store, metrics, now)
    _attestations(store, metrics, members or {})
    _risk(store, metrics)
    metrics.gauges_refreshed.set(now)


def current_members(engine: Any) -> dict[str, list[str]]:
    """The current validators' keys per attestation kind, from the engine's cached ledger status
    (lock: Ed25519 keys) and bridge sets (release: EVM addresses of every chain's set). A set
    that cannot be read now is left out (its gauges keep their values)."""
    out: dict[str, list[str]] = {}
    try:
        vset = engine.ledger_status.get().validator_set
        out["lock"] = ["0x" + k.hex() for k in vset.ed25519_keys]
    except BridgeError as exc:
        log.warning("gauges: ledger validator set unavailable: %s", exc)
    release: set[str] = set()
    for chain, cache in engine.bridge_sets.items():
        try:
            release.update(m.lower() for m in cache.get()[1])
        except Unsupported:
            continue  # no bridge contract set on this chain (UTXO custody, escrow)
        except BridgeError as exc:
            log.warning("gauges: bridge validator set unavailable chain=%s: %s", chain, exc)
            return out
    out["release"] = sorted(release)
    return out


def _replace(gauge: Gauge, samples: Mapping[tuple[str, ...], float]) -> None:
    """Set `samples` on `gauge` and remove its label sets not among them."""
    for labels, value in samples.items():
        gauge.labels(*labels).set(value)
    stale = {tuple(m.labels.values()) for fam in gauge.collect() for m in fam.samples}
    for labels in stale - set(samples):
        with contextlib.suppress(KeyError):  # already gone
            gauge.remove(*labels)


def _pending(store: Store, metrics: RelayerMetrics, now: float) -> None:
    chain = case((T.c.kind == TransferKind.LOCK.value, T.c.source_chain),
                 else_=T.c.dest_chain).label("chain")
    wait = func.coalesce(T.c.wait_reason, "none").label("wait")
    q = (select(T.c.kind, T.c.status, chain, wait, func.min(T.c.created_at).label("oldest"),
                func.count().label("n"))
         .where(T.c.status.in_(PENDING)).group_by(T.c.kind, T.c.status, chain, wait))
    ages: dict[tuple[str, ...], float] = {}
    counts: dict[tuple[str, ...], float] = {}
    with store.engine.connect() as conn:
        for r in conn.execute(q):
            key = (r.kind, r.status, r.chain, r.wait)
            ages[key] = max(0.0, now - float(r.oldest))
            counts[key] = float(r.n)
    _replace(metrics.oldest_pending_age, ages)
    _replace(metrics.pending, counts)


def _heads(store: Store, metrics: RelayerMetrics, now: float) -> None:
    heads = chain_heads(store)
    for chain in (*heads, LEDGER):  # counters exist per chain from the start (rate() works)
        for counter in (metrics.events_observed, metrics.executed, metrics.rpc_errors,
                        metrics.reorgs):
            counter.labels(chain)
    for chain, h in heads.items():
        scanned = h.scanned if h.scanned is not None else h.head
        metrics.scan_lag.labels(chain).set(max(0, h.head - scanned))
        metrics.head_age.labels(chain).set(max(0.0, now - h.updated_at))


def _attestations(store: Store, metrics: RelayerMetrics,
                  members: Mapping[str, Iterable[str]]) -> None:
    seen = metrics.attestations_seen
    q = (select(A.c.kind, A.c.validator, func.max(A.c.received_at).label("at"),
                func.max(A.c.id).label("last_id"))
         .where(A.c.id > seen["after_id"]).group_by(A.c.kind, A.c.validator))
    with store.engine.connect() as conn:
        for r in conn.execute(q):
            key = (str(r.kind), str(r.validator).lower())
            seen["last"][key] = max(float(r.at), seen["last"].get(key, 0.0))
            seen["after_id"] = max(seen["after_id"], int(r.last_id))
    exported = {tuple(s.labels.values()): s.value
                for fam in metrics.validator_last_attestation.collect() for s in fam.samples}
    samples: dict[tuple[str, ...], float] = {}
    for kind in ("lock", "release"):
        if kind not in members:  # set unknown this run: keep what is exported
            samples.update({k: v for k, v in exported.items() if k[0] == kind})
            continue
        for v in members[kind]:
            at = seen["last"].get((kind, v.lower()))
            if at is not None:  # a member that never attested has no sample yet
                samples[(kind, v.lower())] = at
    _replace(metrics.validator_last_attestation, samples)


def _risk(store: Store, metrics: RelayerMetrics) -> None:
    """Route and halt gauges from the pauses table: 1 for what is paused (halted: paused for
    solvency), 0 for the label sets exported before (the accountant's assets and routes)."""
    paused = RouteStore(store).paused()
    halted = {parts[2] for route, p in paused.items()
              if p.reason == "solvency" and (parts := split_route(route)) is not None}
    for gauge, on in ((metrics.route_paused, set(paused)), (metrics.solvency_halted, halted)):
        known = {v for fam in gauge.collect() for s in fam.samples for v in s.labels.values()}
        for label in known | on:
            gauge.labels(label).set(1 if label in on else 0)
