"""Metrics and health endpoints shared by Ferry's HTTP apps (the API app, the ledger app).

Owns: `install_observability`, which gives an app its own Prometheus registry, request metrics
by route template, ``GET /metrics``, ``GET /healthz`` and ``GET /readyz``. Must not know what an
app does: readiness checks and extra collectors are passed in.

- ``/healthz``: the process serves HTTP: always 200 ``{"status": "ok"}``.
- ``/readyz``: every readiness check passed: 200 ``{"status": "ready", "checks": {...}}``, else
  503 ``{"status": "not_ready", "reason": "<check>: <error>", "checks": {...}}``. A check is a
  callable that raises (`NOT_READY_ERRORS`) when its dependency is unusable (a ``SELECT 1``, a
  ledger status read);
  the answer is cached for ``ready_ttl_s`` so frequent probes stay cheap.
- Request metrics (labels: method, route = the matched route's template such as
  ``/v1/transfers/{ref}``, or ``unmatched``; status = the HTTP status code):
  ``ferry_<subsystem>_http_requests_total`` and ``ferry_<subsystem>_http_request_duration_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from adapters.errors import BridgeError

READY_TTL_S = 1.0
# What a failing check raises: Ferry's errors (an unreachable ledger or chain), the database's,
# and transport errors a client did not translate.
NOT_READY_ERRORS = (BridgeError, SQLAlchemyError, httpx.HTTPError, OSError)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Check = Callable[[], object]


class HttpMetrics:
    """Request count and latency of one app (names: module docstring)."""

    def __init__(self, subsystem: str, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            f"ferry_{subsystem}_http_requests_total", "HTTP requests by route template and "
            "status.", ["method", "route", "status"], registry=registry)
        self.latency = Histogram(
            f"ferry_{subsystem}_http_request_duration_seconds", "HTTP request latency by route "
            "template.", ["method", "route"], registry=registry, buckets=LATENCY_BUCKETS)


class HttpMetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request (outermost, so refusals count too)."""

    def __init__(self, app: Any, metrics: HttpMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")  # set by FastAPI's router on the shared scope
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET") if scope.get("method") in METHODS else "other"
            self.metrics.requests.labels(method, template, str(status[0])).inc()
            self.metrics.latency.labels(method, template).observe(
                time.perf_counter() - started)


class Readiness:
    """Runs the readiness checks, at most once per `ttl_s` (thread-safe)."""

    def __init__(self, checks: Mapping[str, Check], ttl_s: float = READY_TTL_S) -> None:
        self.checks, self.ttl_s = dict(checks), ttl_s
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._answer: tuple[int, dict[str, Any]] = (503, {})

    def invalidate(self) -> None:
        """Run the checks again at the next call (tests; a caller that knows things changed)."""
        with self._lock:
            self._at = float("-inf")

    def answer(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) of ``/readyz``."""
        with self._lock:
            if time.monotonic() - self._at < self.ttl_s:
                return self._answer
            results: dict[str, str] = {}
            reason = None
            for name, check in self.checks.items():
                try:
                    check()
                    results[name] = "ok"
                except NOT_READY_ERRORS as exc:
                    text = f"{type(exc).__name__}: {exc}"[:300]
                    results[name] = text
                    reason = reason or f"{name}: {text}"
            body: dict[str, Any] = {"status": "ready" if reason is None else "not_ready",
                                    "checks": results}
            if reason is not None:
                body["reason"] = reason
            self._answer = (200 if reason is None else 503, body)
            self._at = time.monotonic()
            return self._answer


def health_router(ready: Readiness) -> APIRouter:
    """``/healthz`` and ``/readyz`` over `ready`'s checks (module docstring)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        """Alive: the process answers HTTP."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "a dependency is down"}})
    def readyz() -> JSONResponse:
        """Ready: every dependency answered (cached for a second)."""
        status, body = ready.answer()
        return JSONResponse(status_code=status, content=body)

    return router


def install_observability(app: FastAPI, subsystem: str, checks: Mapping[str, Check],
                          collectors: Iterable[Collector] = ()) -> CollectorRegistry:
    """Give `app` a registry, request metrics, ``/metrics``, ``/healthz`` and ``/readyz``.

    Call it after every other middleware so the request metrics are the outermost layer.

    Args:
        app: the FastAPI app.
        subsystem: metric name part (``api``, ``ledger``).
        checks: readiness checks by name (each raises when its dependency is down).
        collectors: more collectors to serve on ``/metrics``.

    Returns:
        The app's registry (also ``app.state.metrics_registry``; its `Readiness` is
        ``app.state.readiness``).
    """
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    app.state.metrics_registry = registry
    app.state.readiness = Readiness(checks)
    app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(subsystem, registry))
    app.include_router(health_router(app.state.readiness))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry
