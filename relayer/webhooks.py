"""Webhooks: every transfer and swap status change POSTed, signed, to each subscriber.

Owns: the ``webhook_cursors`` table (migration 0006), delivery, and the signature format
(`sign`, `verify_signature`). Must not write transfer or swap state: the ``transfer_history``
and ``swap_history`` tables (written by `Store.advance` / `SwapStore.advance` with each change)
are the outbox, read only here.

Delivery, per subscription (``[[api.webhooks]]``, cursor row keyed by its name):

- the next event is the older (by ``at``; a transfer first on a tie) of the next
  ``transfer_history`` row after ``transfer_after`` and the next ``swap_history`` row after
  ``swap_after`` (only the streams in the subscription's ``events``); each stream is delivered
  in id order, one event per POST;
- the cursor moves past an event only after a 2xx answer, so every event is delivered at
  least once (a receiver dedupes by ``id``, which is the same on every retry);
- a failure (connection error, timeout, non-2xx) stops the subscription until
  ``next_attempt_at = now + min(2 ** (attempts - 1), webhook_max_backoff_s)`` seconds
  (1 s, 2 s, 4 s, ... capped); the other subscriptions go on;
- a new subscription starts at the beginning of both histories.

Body: UTF-8 JSON, keys sorted, no spaces::

    {"id": "transfer:<history id>" | "swap:<history id>",
     "type": "transfer.status_changed" | "swap.status_changed",
     "created_at": <the change's time, unix seconds (float)>,
     "data": transfer: {"transfer_id", "event_key", "kind", "route", "source_chain",
                        "dest_chain", "asset", "amount" (base units, decimal string),
                        "sender", "recipient", "from", "to", "reason", "at"}
             swap:     {"swap_id", "pair", "from", "to", "reason", "at"}}

Headers: ``Content-Type: application/json``, ``Ferry-Event-Id: <id>``,
``Ferry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`` (the secret
as UTF-8 bytes; ``t`` is the time of this attempt). Receivers check it with `verify_signature`
and reject a ``t`` older than their tolerance (replays).

SECURITY: the secret is never logged or stored in the database; logs carry the subscription
name, event id and HTTP status only (a URL may carry credentials).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapters.base import Clock
from relayer.api_settings import WebhookConfig
from relayer.db import write_transaction
from relayer.models import Swap, SwapHistory, Transfer, TransferHistory
from relayer.store import Store
from validators.risk import route_key

log = logging.getLogger(__name__)

T = Transfer.__table__  # type: ignore[attr-defined]
H = TransferHistory.__table__  # type: ignore[attr-defined]
WH = SwapHistory.__table__  # type: ignore[attr-defined]
W = Swap.__table__  # type: ignore[attr-defined]

SIGNATURE_HEADER = "Ferry-Signature"
EVENT_ID_HEADER = "Ferry-Event-Id"
MAX_ERROR_LEN = 500

metadata = MetaData()
webhook_cursors = Table(
    "webhook_cursors", metadata,
    Column("name", String(64), primary_key=True),
    Column("transfer_after", BigInteger, nullable=False, server_default="0"),
    Column("swap_after", BigInteger, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False, server_default="0"),
    Column("last_error", String(MAX_ERROR_LEN)),
)


@dataclass(frozen=True, slots=True)
class Event:
    """One history row as a webhook event: `stream` ``transfer`` or ``swap``, `seq` its
    history id, `body` the exact bytes POSTed."""

    stream: str
    seq: int
    at: float
    id: str
    body: bytes
    about: tuple[tuple[str, Any], ...] = ()  # log fields: transfer_id or swap_id


@dataclass(frozen=True, slots=True)
class CursorRow:
    name: str
    transfer_after: int
    swap_after: int
    attempts: int
    next_attempt_at: float
    last_error: str | None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Ferry-Signature`` value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes, now: float,
                     tolerance_s: float = 300) -> bool:
    """Check a ``Ferry-Signature`` header, for receivers.

    Args:
        secret: the subscription's secret (``[[api.webhooks]] secret``).
        header: the header value, ``t=<unix seconds>,v1=<hex>`` (several ``v1`` allowed).
        body: the raw request body, exactly as received.
        now: the receiver's time, unix seconds.
        tolerance_s: the largest accepted ``|now - t|`` (replay window).

    Returns:
        True if ``t`` is within the tolerance and a ``v1`` equals
        HMAC-SHA256(secret, "<t>." + body) (constant-time comparison).
    """
    stamp: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            stamp = int(value)
        elif key == "v1":
            sigs.append(value)
    if stamp is None or not sigs or abs(now - stamp) > tolerance_s:
        return False
    expected = sign(secret, stamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, s) for s in sigs)


def _body(event_id: str, kind: str, at: float, data: dict[str, Any]) -> bytes:
    doc = {"id": event_id, "type": kind, "created_at": at, "data": data}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class WebhookDispatcher:
    """Delivers history rows to the configured subscribers (see the module docstring).

    Args:
        store: the relayer store (its engine holds the histories and the cursors).
        subscriptions: the ``[[api.webhooks]]`` entries.
        clock: injected clock (backoff and signature time).
        http: HTTP client (default: ``httpx.Client(timeout=5)``, owned and closed by `close`).
        max_backoff_s: the cap of the wait between attempts (``webhook_max_backoff_s``).
        batch: at most this many events per subscription per `run_once`.
    """

    def __init__(self, store: Store, subscriptions: Sequence[WebhookConfig], clock: Clock,
                 http: httpx.Client | None = None, *, max_backoff_s: float = 300.0,
                 batch: int = 100) -> None:
        self.engine = store.engine
        self.subscriptions = list(subscriptions)
        self.clock = clock
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=5.0)
        self.max_backoff_s = max_backoff_s
        self.batch = batch

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    # ------------------------------------------------------------------ delivery
    def run_once(self) -> int:
        """One pass over every subscription whose backoff has expired: deliver events in order
        until one fails, none is left, or `batch` were sent.

        Returns:
            The number of events delivered (2xx) in this pass.
        """
        delivered = 0
        for sub in self.subscriptions:
            cur = self.cursor(sub.name)
            if self.clock.now() < cur.next_attempt_at:
                continue
            for _ in range(self.batch):
                event = self._next_event(sub, cur)
                if event is None:
                    break
                error = self._post(sub, event)
                if error is None:
                    cur = self._delivered(cur, event)
                    delivered += 1
                    continue
                self._failed(cur, event, error)
                break
        return delivered

    def backoff_s(self, attempts: int) -> float:
        """Wait after the `attempts`-th consecutive failure: 1, 2, 4, ... s, capped."""
        return float(min(2.0 ** min(attempts - 1, 62), self.max_backoff_s))

    def _post(self, sub: WebhookConfig, event: Event) -> str | None:
        stamp = int(self.clock.now())
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: event.id,
                   SIGNATURE_HEADER: sign(sub.secret.get_secret_value(), stamp, event.body),
                   "User-Agent": "ferry-webhooks/1"}
        try:
            answer = self.http.post(sub.url, content=event.body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LEN]
        if 200 <= answer.status_code < 300:
            return None
        return f"HTTP {answer.status_code}"

    def _next_event(self, sub: WebhookConfig, cur: CursorRow) -> Event | None:
        candidates: list[Event] = []
        with self.engine.connect() as conn:
            if "transfer" in sub.events:
                row = conn.execute(
                    select(H.c.id, H.c.from_status, H.c.to_status, H.c.reason, H.c.at,
                           T.c.id.label("transfer_id"), T.c.event_key, T.c.kind,
                           T.c.source_chain, T.c.dest_chain, T.c.asset, T.c.amount, T.c.sender,
                           T.c.recipient)
                    .join(T, T.c.id == H.c.transfer_id)
                    .where(H.c.id > cur.transfer_after).order_by(H.c.id).limit(1)).first()
                if row is not None:
                    candidates.append(_transfer_event(row))
            if "swap" in sub.events:
                swap_row = conn.execute(
                    select(WH.c.id, WH.c.swap_id, WH.c.from_status, WH.c.to_status,
                           WH.c.reason, WH.c.at, W.c.pair)
                    .join(W, W.c.id == WH.c.swap_id)
                    .where(WH.c.id > cur.swap_after).order_by(WH.c.id).limit(1)).first()
                if swap_row is not None:
                    candidates.append(_swap_event(swap_row))
        if not candidates:
            return None
        return min(candidates, key=lambda e: (e.at, e.stream != "transfer"))

    # ------------------------------------------------------------------ cursor rows
    def cursor(self, name: str) -> CursorRow:
        """The cursor row of subscription `name` (created at the start of both histories)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(webhook_cursors).where(
                webhook_cursors.c.name == name)).first()
        if row is None:
            with write_transaction(self.engine) as conn:
                dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
                conn.execute(dialect_insert(webhook_cursors).values(
                    name=name, transfer_after=0, swap_after=0, attempts=0, next_attempt_at=0.0)
                    .on_conflict_do_nothing(index_elements=["name"]))
            return self.cursor(name)
        return CursorRow(row.name, row.transfer_after, row.swap_after, row.attempts,
                         row.next_attempt_at, row.last_error)

    def _delivered(self, cur: CursorRow, event: Event) -> CursorRow:
        moved = {"transfer_after": event.seq} if event.stream == "transfer" else {
            "swap_after": event.seq}
        with write_transaction(self.engine) as conn:
            conn.execute(update(webhook_cursors).where(webhook_cursors.c.name == cur.name)
                         .values(attempts=0, next_attempt_at=0.0, last_error=None, **moved))
        log.debug("webhook delivered subscription=%s event=%s", cur.name, event.id,
                  extra=dict(event.about))
        return CursorRow(cur.name, moved.get("transfer_after", cur.transfer_after),
                         moved.get("swap_after", cur.swap_after), 0, 0.0, None)

    def _failed(self, cur: CursorRow, event: Event, error: str) -> None:
        attempts = cur.attempts + 1
        wait_s = self.backoff_s(attempts)
        with write_transaction(self.engine) as conn:
            conn.execute(update(webhook_cursors).where(webhook_cursors.c.name == cur.name)
                         .values(attempts=attempts, next_attempt_at=self.clock.now() + wait_s,
                                 last_error=error))
        log.warning("webhook delivery failed subscription=%s event=%s attempts=%d retry_in_s=%.0f"
                    " error=%s", cur.name, event.id, attempts, wait_s,
                    error.split(" for url", 1)[0], extra=dict(event.about))


def _transfer_event(row: Any) -> Event:
    data = {"transfer_id": row.transfer_id, "event_key": row.event_key, "kind": row.kind,
            "route": route_key(row.source_chain, row.dest_chain, row.asset),
            "source_chain": row.source_chain, "dest_chain": row.dest_chain, "asset": row.asset,
            "amount": str(row.amount), "sender": row.sender, "recipient": row.recipient,
            "from": row.from_status, "to": row.to_status, "reason": row.reason, "at": row.at}
    event_id = f"transfer:{row.id}"
    return Event("transfer", row.id, row.at, event_id,
                 _body(event_id, "transfer.status_changed", row.at, data),
                 (("transfer_id", row.transfer_id),))


def _swap_event(row: Any) -> Event:
    data = {"swap_id": row.swap_id, "pair": row.pair, "from": row.from_status,
            "to": row.to_status, "reason": row.reason, "at": row.at}
    event_id = f"swap:{row.id}"
    return Event("swap", row.id, row.at, event_id,
                 _body(event_id, "swap.status_changed", row.at, data), (("swap_id", row.swap_id),))
