"""Rate limits of the HTTP API: per client IP on every request, and per API key on the operator
routes (``/v1/operator/...``), as pure ASGI middleware over the `limits` library (moving window,
in-memory: each API process counts on its own; a restart forgets the counts).

Owns: `RateLimitMiddleware` and `install_rate_limits`. Must not authenticate: the per-key count
is keyed by the SHA-256 of the presented bearer token, before (and whatever) `api.auth` decides,
so a flood of bad tokens is bounded by the per-IP limit and each token by the per-key limit.

Over a limit: 429 with the standard error body (code ``rate_limited``) and ``Retry-After``
(whole seconds until the oldest counted request leaves the window). The client IP is the ASGI
``client`` address: behind a reverse proxy run uvicorn with ``--proxy-headers`` and
``--forwarded-allow-ips`` so it is the real client's, never a header a client can forge.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.errors import ConfigError

OPERATOR_PREFIX = "/v1/operator"


def parse_limits(text: str, name: str) -> list[RateLimitItem]:
    """`limits` syntax (``"600/minute"``, several joined by ``;``).

    Raises:
        ConfigError: unparsable.
    """
    try:
        return list(parse_many(text))
    except ValueError as exc:
        raise ConfigError(f"[api] {name} = {text!r} is not a rate limit ({exc})") from exc


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class RateLimitMiddleware:
    """ASGI middleware: see the module docstring.

    Args:
        app: the wrapped ASGI app.
        per_ip: limits per client IP (`limits` syntax).
        per_key: limits per bearer token on ``/v1/operator/...``.
    """

    def __init__(self, app: ASGIApp, per_ip: str, per_key: str) -> None:
        self.app = app
        self.per_ip = parse_limits(per_ip, "rate_limit_per_ip")
        self.per_key = parse_limits(per_key, "rate_limit_per_key")
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        checks: list[tuple[str, str, list[RateLimitItem]]] = [
            ("ip", client[0] if client else "unknown", self.per_ip)]
        path: str = scope.get("path", "")
        if path == OPERATOR_PREFIX or path.startswith(OPERATOR_PREFIX + "/"):
            token = _bearer(scope)
            if token is not None:
                checks.append(("key", hashlib.sha256(token.encode()).hexdigest(), self.per_key))
        for kind, ident, items in checks:
            for item in items:
                if not self.limiter.hit(item, kind, ident):
                    await self._refuse(item, kind, ident)(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _refuse(self, item: RateLimitItem, kind: str, ident: str) -> Any:
        stats = self.limiter.get_window_stats(item, kind, ident)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        who = "client IP" if kind == "ip" else "API key"
        return JSONResponse(
            status_code=429, headers={"Retry-After": str(retry_after)},
            content={"error": {"code": "rate_limited",
                               "message": f"too many requests for this {who} ({item}); "
                                          f"retry after {retry_after} s"}})


def install_rate_limits(app: Any, api_section: Any) -> None:
    """Add `RateLimitMiddleware` to a Starlette/FastAPI `app` with the ``[api]`` limits
    (``rate_limit_per_ip``, ``rate_limit_per_key``). Call it after the other middleware so it
    is the outermost one (a refused request costs nothing else).

    Raises:
        ConfigError: a limit string `limits` cannot parse.
    """
    parse_limits(api_section.rate_limit_per_ip, "rate_limit_per_ip")
    parse_limits(api_section.rate_limit_per_key, "rate_limit_per_key")
    app.add_middleware(RateLimitMiddleware, per_ip=api_section.rate_limit_per_ip,
                       per_key=api_section.rate_limit_per_key)
