"""The status page: ``GET /status`` (deep link ``/status?q=<id>``), a small HTML+JS page where a
user pastes a transfer id (``tr_...``), an event key, a tx hash, an account or a swap id and
watches the transfer or swap move (states with times, confirmations, signatures, what it waits
for and when), polled live from the public API until it is final.

Owns: serving the three static files of `api/static` (``status.html``, ``status.js``,
``status.css``) with a strict Content-Security-Policy (same-origin scripts, styles and fetches
only: the page works offline, loads nothing from a CDN, and never inserts API data as HTML).
Must not hold lookup or view logic: the page is a client of ``/v1/transfers`` and
``/v1/swaps`` like any other, so what it shows is exactly what the API answers.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

STATIC = "static"
# name -> media type; nothing else under api/static is served.
FILES = {"status.html": "text/html; charset=utf-8",
         "status.js": "text/javascript; charset=utf-8",
         "status.css": "text/css; charset=utf-8"}
HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                "form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _load(name: str) -> bytes:
    """The bytes of static file `name` (packaged with `api`: pyproject package-data)."""
    return files("api").joinpath(STATIC, name).read_bytes()


def status_router() -> APIRouter:
    """Routes of the status page; the files are read once, when the router is built.

    Raises:
        FileNotFoundError: a static file is missing from the installed package.
    """
    router = APIRouter(tags=["status page"])
    body = {name: _load(name) for name in FILES}

    def serve(name: str) -> Response:
        return Response(body[name], media_type=FILES[name], headers=HEADERS)

    @router.get("/status", include_in_schema=False)
    def status_page() -> Response:
        """The page; ``?q=`` is read by the page's script (a deep link to one lookup)."""
        return serve("status.html")

    @router.get("/status/status.js", include_in_schema=False)
    def status_js() -> Response:
        return serve("status.js")

    @router.get("/status/status.css", include_in_schema=False)
    def status_css() -> Response:
        return serve("status.css")

    return router
