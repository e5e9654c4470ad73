"""The user and operator HTTP API (`ferry api serve`, and the relayer process's own port): one
FastAPI app over the relayer database and the ledger.

Owns: `ApiContext` (what the routers share) and `create_api_app` (which routers and middleware
are mounted, in which order). Must not hold route logic: each router lives in its own module.

Mounted: transfers (`api.transfers`), chains and validators (`api.network`), the attestation
inbox and custody views (`api.relayer`), the status page (`api.status_page`),
swaps (`api.swaps`, when configured), the ledger proxy (`api.ledger_proxy`) and operator
routes (`api.operator`) when those modules exist and a ledger client is given; then
idempotency keys on every POST (`api.idempotency`) and, per-IP and per-key rate limits
(`api.ratelimit`); outermost, request metrics, with ``/metrics``, ``/healthz`` and
``/readyz`` (`api.observability`). Errors are
``{"error": {"code", "message"}}`` (`api.ledger.install_error_handlers`). OpenAPI at ``/docs``.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from adapters.base import Clock, SystemClock
from adapters.errors import BridgeError
from relayer.config import FerryConfig
from relayer.inbox import AttestationInbox
from relayer.store import Store

log = logging.getLogger(__name__)
STATUS_TTL_S = 5.0


@dataclass
class ApiContext:
    """What every router of the API shares.

    Attributes:
        cfg: the validated config (chains, assets, ``[api]``, ``[risk]``).
        store: the relayer database (transfers, attestations, API tables).
        ledger: client of the ledger service; None for the relayer-only app
            (`api.relayer.create_relayer_app`): routes that need it are then not mounted.
        inbox: the attestation inbox validators deliver to.
        swaps: a `relayer.cli.swaps.SwapRuntime`, or None (no swap routes).
        clock: injected time source.
    """

    cfg: FerryConfig
    store: Store
    ledger: Any  # ledger.client.LedgerClient | None
    inbox: AttestationInbox
    swaps: Any = None
    clock: Clock = field(default_factory=SystemClock)
    # More ``/readyz`` checks (name -> callable raising when unusable), e.g. the relayer's.
    ready_checks: dict[str, Callable[[], object]] = field(default_factory=dict)
    _status: Any = field(default=None, init=False, repr=False)
    _status_at: float = field(default=float("-inf"), init=False, repr=False)
    _status_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def ledger_status(self) -> Any:
        """The ledger's `LedgerStatus` (current validator set, epoch), re-read at most every
        `STATUS_TTL_S` seconds; while the ledger is unreachable, the last one read (None if
        none yet): a status page keeps answering when the ledger does not."""
        now = self.clock.now()
        with self._status_lock:
            if now - self._status_at < STATUS_TTL_S:
                return self._status
            self._status_at = now  # one reader refreshes; the others use the cached value
        try:
            status = (self.ledger.status() if self.ledger is not None
                      else self.inbox.ledger_status.get())
        except BridgeError as exc:
            log.warning("ledger status unavailable, serving the last one read: %s", exc)
            return self._status
        with self._status_lock:
            self._status = status
        return status


    async def refresh_ledger_status(self) -> None:
        """Make `ledger_status` answer from its cache for the next `STATUS_TTL_S` seconds,
        reading the ledger on a worker thread if due: async routes call it first so the event
        loop never waits for the ledger."""
        if self.clock.now() - self._status_at >= STATUS_TTL_S:
            await run_in_threadpool(self.ledger_status)


def _optional_router(module: str, factory: str, ctx: ApiContext) -> Any:
    """`module.factory(ctx)` if `module` exists (routers other modules add), else None."""
    if importlib.util.find_spec(module) is None:
        return None
    return getattr(importlib.import_module(module), factory)(ctx)


def create_api_app(ctx: ApiContext, *, rate_limits: bool = True) -> FastAPI:
    """The API app over `ctx` (see the module docstring for what is mounted).

    Args:
        ctx: the shared context.
        rate_limits: apply ``[api]`` rate limits (in-process test stacks turn them off).
    """
    from api.idempotency import IdempotencyMiddleware
    from api.ledger import install_error_handlers
    from api.network import network_router
    from api.relayer import relayer_router
    from api.status_page import status_router
    from api.transfers import transfers_router

    app = FastAPI(title="Ferry API", version="1", description=(
        "Bridge transfers, chains, validators, swaps, the ledger and operator controls. "
        "Amounts are decimal strings in base units; errors are "
        '{"error": {"code", "message"}}; lists page with cursor/limit; every POST accepts '
        "an Idempotency-Key header."))
    app.state.ctx = ctx
    app.include_router(transfers_router(ctx))
    app.include_router(network_router(ctx))
    app.include_router(relayer_router(ctx.store, ctx.inbox))
    app.include_router(status_router())  # GET /status: the user's status page
    if ctx.swaps is not None:
        from api.swaps import swaps_router

        app.include_router(swaps_router(ctx.swaps.engine, ctx.swaps.section))
    if ctx.ledger is not None:
        for module, factory in (("api.ledger_proxy", "ledger_proxy_router"),
                                ("api.operator", "operator_router")):
            router = _optional_router(module, factory, ctx)
            if router is not None:
                app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(IdempotencyMiddleware, store=ctx.store,
                       ttl_s=float(ctx.cfg.api.idempotency_ttl_s), clock=ctx.clock)
    if rate_limits and importlib.util.find_spec("api.ratelimit") is not None:
        from api.ratelimit import install_rate_limits

        install_rate_limits(app, ctx.cfg.api)  # outermost: a refused call costs nothing else
    from api.observability import install_observability

    # GET /metrics, /healthz, /readyz; request metrics outside the rate limits (429s count).
    install_observability(app, "api", {**api_ready_checks(ctx), **ctx.ready_checks})
    return app


def api_ready_checks(ctx: ApiContext) -> dict[str, Callable[[], object]]:
    """``/readyz`` of the API: the relayer database answers a query and the ledger its status
    (through the inbox's cache when the app has no ledger client)."""
    from sqlalchemy import text

    def database() -> None:
        with ctx.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def ledger() -> None:
        if ctx.ledger is not None:
            ctx.ledger.status()
        else:
            ctx.inbox.ledger_status.get()

    return {"database": database, "ledger": ledger}
