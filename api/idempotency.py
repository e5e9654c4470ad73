"""Idempotency keys on every POST of the API (pure ASGI middleware, so it covers every route,
including routers mounted by other modules).

Owns: the ``idempotency_keys`` table (migration 0005) and `IdempotencyMiddleware`. Must not
know what a route does: it sees method, path, body and the answer only.

Contract (notes/DESIGN-api.md): a POST with header ``Idempotency-Key`` (1..200 printable
ASCII characters) is executed at most once per key:

- first call: a claim row (key, request hash, no answer yet) is INSERTed before the route runs;
  the primary key makes a concurrent second claim fail, so two calls never both execute;
- same key, same request (sha256 over method, path with query, body) after it finished: the
  stored status and body are replayed, with header ``Idempotent-Replay: true``;
- same key, another request: 422 ``idempotency_key_reused``;
- same key while the first is still running: 409 ``idempotency_in_progress``.

Only 2xx and 4xx answers are stored; after a 5xx (or an exception) the claim is deleted so a
retry runs again. Keys are scoped by the caller's ``Authorization`` header (its SHA-256), so a
replay never hands one caller's answer to another. Rows live ``idempotency_ttl_s``; expired
rows are deleted opportunistically (at most once a minute, by the injected clock). A claim
whose process died is taken over after `STALE_CLAIM_S`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from adapters.base import Clock
from relayer.db import write_transaction
from relayer.store import Store

log = logging.getLogger(__name__)
HEADER = b"idempotency-key"
REPLAY_HEADER = (b"idempotent-replay", b"true")
MAX_KEY_LEN = 200
STALE_CLAIM_S = 300.0  # an unanswered claim older than this belongs to a dead process
CLEANUP_EVERY_S = 60.0
_KEY = re.compile(r"[\x21-\x7e]{1,200}")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

metadata = MetaData()
idempotency_table = Table(
    "idempotency_keys", metadata,
    Column("scope", String(64), primary_key=True),  # sha256 hex of the Authorization header
    Column("key", String(MAX_KEY_LEN), primary_key=True),
    Column("request_hash", String(64), nullable=False),  # sha256 hex (method, path, body)
    Column("status_code", Integer),  # None while the first call runs
    Column("content_type", String(200)),
    Column("body", LargeBinary),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
IK = idempotency_table


def request_hash(method: str, path: str, body: bytes) -> str:
    """SHA-256 (hex) over the method, the path with its query string, and the body."""
    h = hashlib.sha256()
    for part in (method.encode(), path.encode("latin-1"), body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


class IdempotencyStore:
    """The ``idempotency_keys`` rows of the relayer database (sync; called off the loop)."""

    def __init__(self, store: Store, ttl_s: float, clock: Clock) -> None:
        self.store, self.ttl_s, self.clock = store, ttl_s, clock
        self._cleaned_at = float("-inf")

    def claim(self, scope: str, key: str, digest: str) -> Any | None:
        """Insert the claim; None if this call owns the key now, else the existing row."""
        now = self.clock.now()
        self._cleanup(now)
        for _ in range(3):
            try:
                with write_transaction(self.store.engine) as conn:
                    conn.execute(insert(IK).values(
                        scope=scope, key=key, request_hash=digest, created_at=now,
                        expires_at=now + self.ttl_s))
                return None
            except IntegrityError:
                pass
            with write_transaction(self.store.engine) as conn:
                row = conn.execute(select(IK).where(
                    and_(IK.c.scope == scope, IK.c.key == key))).first()
                if row is None:
                    continue  # deleted meanwhile (a 5xx or expiry): claim again
                stale = row.status_code is None and now - row.created_at > STALE_CLAIM_S
                if row.expires_at > now and not stale:
                    return row
                conn.execute(delete(IK).where(and_(IK.c.scope == scope, IK.c.key == key)))
        raise RuntimeError("idempotency key claim did not settle")

    def finish(self, scope: str, key: str, status: int, content_type: str | None,
               body: bytes) -> None:
        """Store the answer of a claimed key (2xx/4xx), or release the claim (anything else)."""
        with write_transaction(self.store.engine) as conn:
            where = and_(IK.c.scope == scope, IK.c.key == key, IK.c.status_code.is_(None))
            if 200 <= status < 300 or 400 <= status < 500:
                conn.execute(update(IK).where(where).values(
                    status_code=status, content_type=content_type, body=body))
            else:
                conn.execute(delete(IK).where(where))

    def release(self, scope: str, key: str) -> None:
        with write_transaction(self.store.engine) as conn:
            conn.execute(delete(IK).where(and_(IK.c.scope == scope, IK.c.key == key,
                                               IK.c.status_code.is_(None))))

    def _cleanup(self, now: float) -> None:
        if now - self._cleaned_at < CLEANUP_EVERY_S:
            return
        self._cleaned_at = now
        with write_transaction(self.store.engine) as conn:
            conn.execute(delete(IK).where(IK.c.expires_at <= now))


class IdempotencyMiddleware:
    """ASGI middleware applying `Idempotency-Key` to every POST (see the module docstring).

    Args:
        app: the wrapped ASGI app.
        store: the relayer store holding ``idempotency_keys``.
        ttl_s: how long an answer is replayed (``[api] idempotency_ttl_s``).
        clock: injected time source.
    """

    def __init__(self, app: ASGIApp, *, store: Store, ttl_s: float, clock: Clock) -> None:
        self.app = app
        self.keys = IdempotencyStore(store, ttl_s, clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw_key = headers.get(HEADER)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if not _KEY.fullmatch(key):
            await _error(send, 400, "invalid_idempotency_key",
                         f"Idempotency-Key must be 1..{MAX_KEY_LEN} printable ASCII characters")
            return
        body, disconnected = await _read_body(receive)
        if disconnected:
            return
        path = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            path = path.split(b"?", 1)[0] + b"?" + scope["query_string"]
        digest = request_hash("POST", path.decode("latin-1"), body)
        auth = hashlib.sha256(headers.get(b"authorization", b"")).hexdigest()
        row = await run_in_threadpool(self.keys.claim, auth, key, digest)
        if row is not None:
            await self._answer_existing(row, digest, send)
            return
        await self._run_claimed(scope, body, receive, send, auth, key)

    async def _answer_existing(self, row: Any, digest: str, send: Send) -> None:
        if row.request_hash != digest:
            await _error(send, 422, "idempotency_key_reused", "this Idempotency-Key was used "
                         "for another request (method, path or body differ)")
        elif row.status_code is None:
            await _error(send, 409, "idempotency_in_progress", "a request with this "
                         "Idempotency-Key is still being processed; retry later")
        else:
            headers = [(b"content-length", str(len(row.body or b"")).encode()), REPLAY_HEADER]
            if row.content_type:
                headers.append((b"content-type", row.content_type.encode("latin-1")))
            await send({"type": "http.response.start", "status": row.status_code,
                        "headers": headers})
            await send({"type": "http.response.body", "body": row.body or b""})

    async def _run_claimed(self, scope: Scope, body: bytes, receive: Receive, send: Send,
                           auth: str, key: str) -> None:
        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # blocks until the client disconnects

        status, content_type, chunks = 500, None, []

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            await run_in_threadpool(self.keys.release, auth, key)
            raise
        await run_in_threadpool(self.keys.finish, auth, key, status, content_type,
                                b"".join(chunks))


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole request body, and whether the client disconnected first."""
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts), False


async def _error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
