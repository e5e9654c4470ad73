"""Run the relayer process: the engine's jobs on an APScheduler thread pool, the HTTP inbox
under uvicorn (the whole user API, `api.app`), and Prometheus metrics on their own port.

Owns: job scheduling and process lifetime. Must not contain job logic (see `relayer.engine`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import uvicorn
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import start_http_server

from adapters.errors import BridgeError, RetryableChainError
from api.relayer import create_relayer_app
from relayer.engine import Engine
from relayer.inbox import AttestationInbox
from relayer.leases import Leases

log = logging.getLogger(__name__)


def guarded(engine: Engine, name: str, chain: str, job: Callable[[], object]) -> Callable[[], None]:
    """Wrap a job so a chain fault is counted and logged, and the job runs again next interval."""

    def run() -> None:
        try:
            job()
        except RetryableChainError as exc:
            engine.metrics.rpc_errors.labels(chain).inc()
            log.warning("job=%s chain=%s retryable: %s", name, chain, exc)
        except BridgeError as exc:
            log.error("job=%s chain=%s failed: %s", name, chain, exc)

    return run


def leased(leases: Leases | None, name: str, job: Callable[[], object]) -> Callable[[], None]:
    """Run `job` only while this replica holds lease `name` (taken or renewed first); without
    `leases` (a single relayer) always run it."""

    def run() -> None:
        if leases is None or leases.hold(name):
            job()

    return run


def schedule(engine: Engine, interval_s: float, ledger_interval_s: float,
             swaps: Any = None, webhooks: Any = None,
             leases: Leases | None = None) -> BackgroundScheduler:
    """Start one job per chain (watch, confirm, release) every chain's `poll_interval_s`, the
    mint job every `interval_s` and the ledger-burns job every `ledger_interval_s`.

    With `leases` (replicas sharing one database), every job but the mint job is a singleton
    run by whichever replica holds its lease (`relayer.leases`); the mint job runs on every
    replica over claimed pages (`Engine.mint`). A keeper renews this replica's leases every
    third of their TTL, so a long job run keeps its lease and only a dead replica loses them.
    """
    sched = BackgroundScheduler(executors={"default": ThreadPoolExecutor(4)})
    opts = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}

    def single(name: str, chain: str, job: Callable[[], object]) -> Callable[[], None]:
        return guarded(engine, name, chain, leased(leases, name if name != "chain"
                                                   else f"chain:{chain}", job))

    for chain, plan in engine.chains.items():
        sched.add_job(single("chain", chain, partial(engine.run_chain, chain)), "interval",
                      seconds=plan.poll_interval_s, id=f"chain:{chain}", **opts)
    sched.add_job(guarded(engine, "mint", "ferry:ledger", engine.mint), "interval",
                  seconds=interval_s, id="mint", **opts)
    sched.add_job(single("burns", "ferry:ledger", engine.watch_ledger), "interval",
                  seconds=ledger_interval_s, id="burns", **opts)
    sched.add_job(engine.refresh_gauges, "interval", seconds=5, id="gauges", **opts)
    if engine.accountant is not None:  # relayer.accountant: supply vs origin-chain custody
        sched.add_job(single("accountant", "ferry:ledger", engine.accountant.run),
                      "interval", seconds=5, id="accountant", **opts)
    if swaps is not None:
        sched.add_job(single("swaps", "swaps", swaps.run), "interval",
                      seconds=interval_s, id="swaps", **opts)
    if webhooks is not None:  # a relayer.webhooks.WebhookDispatcher
        sched.add_job(single("webhooks", "webhooks", webhooks.run_once), "interval",
                      seconds=1, id="webhooks", **opts)
    if leases is not None:
        sched.add_job(leases.renew_held, "interval", seconds=max(0.5, leases.ttl_s / 3),
                      id="leases", **opts)
    sched.start()
    return sched


def run_relayer(engine: Engine, inbox: AttestationInbox, host: str, port: int,
                metrics_port: int, interval_s: float, ledger_interval_s: float,
                swaps: Any = None, webhooks: Any = None, cfg: Any = None,
                leases: Leases | None = None) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn handles them), then stop the jobs.

    Args:
        swaps: a `relayer.cli.swaps.SwapRuntime` to run and serve, or None (no swaps).
        webhooks: a `relayer.webhooks.WebhookDispatcher` run every second, or None.
        cfg: the `FerryConfig`: the whole API (`api.app.create_api_app`) is served; None
            serves the relayer-only app (`api.relayer.create_relayer_app`).
        leases: this replica's `relayer.leases.Leases` when several replicas share the
            database (given up on shutdown, so the others take over at once).
    """
    start_http_server(metrics_port, addr=host, registry=engine.metrics.registry)
    sched = schedule(engine, interval_s, ledger_interval_s, swaps, webhooks, leases)
    try:
        uvicorn.run(_http_app(engine, inbox, swaps, cfg), host=host, port=port,
                    log_level="warning", log_config=None)  # None: keep our JSON/text logs
    finally:
        sched.shutdown(wait=True)
        if leases is not None:
            leases.release_all()
        if webhooks is not None:
            webhooks.close()


def _http_app(engine: Engine, inbox: AttestationInbox, swaps: Any, cfg: Any) -> Any:
    """The API app the relayer process serves: the whole API over the engine's store and
    ledger client when the config is known, else the relayer-only app.

    Without the ``[api]`` per-IP rate limits: this port is where every validator delivers
    attestations and polls custody plans, often from one address; the public endpoint with
    limits is ``ferry api serve``."""
    if cfg is None:
        return create_relayer_app(engine.store, inbox, swaps)
    from api.app import ApiContext, create_api_app

    return create_api_app(ApiContext(cfg=cfg, store=engine.store, ledger=engine.ledger,
                                     inbox=inbox, swaps=swaps, clock=engine.clock),
                          rate_limits=False)
