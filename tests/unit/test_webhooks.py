"""Webhook delivery (`relayer.webhooks`) to a real local HTTP receiver (a `http.server` thread on
a free loopback port) over a real, migrated SQLite relayer store: in order, at least once, the
same id on every retry, signed, backed off with a moved clock, and resumed after a restart."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from adapters.base import BlockRef, LockEvent
from htlc.hashlock import hashlock_of
from htlc.timelock import BlockHeight, UnixTime
from relayer.api_settings import WebhookConfig
from relayer.machine import TransferStatus
from relayer.store import Change, Store
from relayer.swap_store import SwapLegTerms, SwapStore, SwapTerms
from relayer.webhooks import WebhookDispatcher, sign, verify_signature

S = TransferStatus
CHAIN = "eip155:31337"
BRIDGE = "0x" + "b1" * 20
ETH = "0x" + "00" * 20
SECRET = "whsec-test"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def now(self) -> float:
        return self.t


class Receiver:
    """A webhook receiver: answers each POST with the next status of `script` (then 200) and
    records (headers, body, status) of every request."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.script.pop(0) if receiver.script else 200
                receiver.requests.append((dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[dict[str, Any]]:
        """Bodies of the requests answered 2xx, in order."""
        return [json.loads(b) for _, b, s in self.requests if 200 <= s < 300]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/relayer.sqlite"


@pytest.fixture
def store(url, clock) -> Store:
    return Store.open(url, clock)


def lock(nonce: int) -> LockEvent:
    return LockEvent(CHAIN, BRIDGE, nonce, ETH, "0x" + "aa" * 20, 12 * 10**17 + nonce,
                     bytes([nonce]) * 32, "0x" + f"{nonce:064x}", 0, 5, "0x" + "05" * 32)


def two_transfers(store: Store, clock: FakeClock) -> None:
    """Two locks observed at t, both confirmed at t+1: four history rows."""
    store.record_lock_events(CHAIN, [lock(1), lock(2)], BlockRef(5, "0x" + "05" * 32),
                             {ETH: f"{CHAIN}/{ETH}"})
    clock.t += 1
    store.advance([Change(store.get(lock(n).event_id).id, S.CONFIRMED, "2 confirmations")
                   for n in (1, 2)])


def swap_terms() -> SwapTerms:
    btc = "bip122:000000000019d6689c085ae165831e93"
    return SwapTerms(
        pair="BTC/ETH",
        initiator=SwapLegTerms(btc, "btc", 150_000, "02" + "aa" * 32, "02" + "bb" * 32,
                               BlockHeight(800_144)),
        participant=SwapLegTerms("eip155:1", ETH, 10**16, "0x" + "cc" * 20, "0x" + "dd" * 20,
                                 UnixTime(1_700_043_200)),
        hashlock=hashlock_of(b"\x01" * 32), lock_deadline=UnixTime(1_700_003_600),
        rate_num=200_000_000_000, rate_den=1, fee=10**12)


def sub(receiver: Receiver, name: str = "app", events: list[str] | None = None) -> WebhookConfig:
    return WebhookConfig(name=name, url=receiver.url, secret=SECRET,
                         events=events or ["transfer", "swap"])


def dispatcher(store: Store, clock: FakeClock, *subs: WebhookConfig,
               max_backoff_s: float = 300.0) -> WebhookDispatcher:
    return WebhookDispatcher(store, subs, clock, httpx.Client(timeout=5.0),
                             max_backoff_s=max_backoff_s)


# ------------------------------------------------------------------ delivery
def test_each_change_is_posted_alone_in_order_signed_with_its_transfer(store, clock, receiver):
    two_transfers(store, clock)
    d = dispatcher(store, clock, sub(receiver))
    assert d.run_once() == 4
    bodies = receiver.delivered()
    assert [b["id"] for b in bodies] == ["transfer:1", "transfer:2", "transfer:3", "transfer:4"]
    assert {b["type"] for b in bodies} == {"transfer.status_changed"}
    first = bodies[0]
    assert first["created_at"] == 1_700_000_000.0
    assert first["data"] == {
        "transfer_id": 1, "event_key": lock(1).event_id, "kind": "lock",
        "route": f"{CHAIN}>ferry:ledger:{CHAIN}/{ETH}", "source_chain": CHAIN,
        "dest_chain": "ferry:ledger", "asset": f"{CHAIN}/{ETH}", "amount": str(12 * 10**17 + 1),
        "sender": "0x" + "aa" * 20, "recipient": "0x" + "01" * 32, "from": None,
        "to": S.OBSERVED.value, "reason": "lock observed", "at": 1_700_000_000.0}
    assert (bodies[2]["data"]["from"], bodies[2]["data"]["to"]) == (S.OBSERVED.value,
                                                                    S.CONFIRMED.value)
    for headers, body, _ in receiver.requests:
        assert headers["Content-Type"] == "application/json"
        assert headers["Ferry-Event-Id"] == json.loads(body)["id"]
        assert verify_signature(SECRET, headers["Ferry-Signature"], body, clock.now())
    assert d.run_once() == 0 and len(receiver.requests) == 4  # nothing new, nothing resent


def test_failed_deliveries_back_off_exponentially_and_resend_the_same_event(store, clock,
                                                                            receiver):
    two_transfers(store, clock)
    receiver.script = [500, 503, 404]
    d = dispatcher(store, clock, sub(receiver))
    start = clock.now()
    assert d.run_once() == 0
    cur = d.cursor("app")
    assert (cur.transfer_after, cur.attempts, cur.next_attempt_at) == (0, 1, start + 1)
    assert cur.last_error == "HTTP 500"
    assert d.run_once() == 0 and len(receiver.requests) == 1  # still backing off: no request
    clock.t += 1
    assert d.run_once() == 0 and d.cursor("app").next_attempt_at == clock.now() + 2
    clock.t += 1.5
    assert d.run_once() == 0 and len(receiver.requests) == 2  # 2 s not yet over
    clock.t += 0.5
    assert d.run_once() == 0 and d.cursor("app").next_attempt_at == clock.now() + 4
    clock.t += 4
    assert d.run_once() == 4
    ids = [json.loads(b)["id"] for _, b, _ in receiver.requests]
    assert ids == ["transfer:1"] * 4 + ["transfer:2", "transfer:3", "transfer:4"]
    bodies = {b for _, b, _ in receiver.requests[:4]}
    assert len(bodies) == 1  # a retry resends the very same event; only the signature time moves
    cur = d.cursor("app")
    assert (cur.transfer_after, cur.attempts, cur.next_attempt_at, cur.last_error) == (
        4, 0, 0.0, None)


def test_backoff_is_capped(store, clock, receiver):
    d = dispatcher(store, clock, sub(receiver), max_backoff_s=5)
    assert [d.backoff_s(n) for n in range(1, 7)] == [1, 2, 4, 5, 5, 5]
    assert d.backoff_s(10_000) == 5
    two_transfers(store, clock)
    receiver.script = [500] * 5
    for _ in range(5):
        clock.t += 10
        assert d.run_once() == 0
    assert d.cursor("app").next_attempt_at == clock.now() + 5


def test_an_unreachable_receiver_is_a_failure_not_a_crash(store, clock, receiver):
    two_transfers(store, clock)
    dead = WebhookConfig(name="dead", url="http://127.0.0.1:9/hook", secret=SECRET)
    d = dispatcher(store, clock, dead, sub(receiver))
    assert d.run_once() == 4  # the live subscription is not held up by the dead one
    cur = d.cursor("dead")
    assert cur.attempts == 1 and cur.transfer_after == 0 and cur.last_error


def test_the_cursor_survives_a_restart_and_nothing_acknowledged_is_resent(url, store, clock,
                                                                          receiver):
    two_transfers(store, clock)
    receiver.script = [200, 200, 500]
    first = dispatcher(store, clock, sub(receiver))
    assert first.run_once() == 2
    first.close()
    restarted = dispatcher(Store.open(url, clock), clock, sub(receiver))
    assert restarted.cursor("app").attempts == 1
    clock.t += 1
    assert restarted.run_once() == 2
    ids = [json.loads(b)["id"] for _, b, _ in receiver.requests]
    assert ids == ["transfer:1", "transfer:2", "transfer:3", "transfer:3", "transfer:4"]
    assert [b["id"] for b in receiver.delivered()] == [f"transfer:{n}" for n in (1, 2, 3, 4)]


def test_transfer_and_swap_changes_interleave_by_time_and_subscriptions_filter(url, store, clock,
                                                                              receiver):
    swaps = SwapStore.open(url, clock)
    store.record_lock_events(CHAIN, [lock(1)], BlockRef(5, "0x" + "05" * 32),
                             {ETH: f"{CHAIN}/{ETH}"})  # t0: transfer:1
    clock.t += 1
    record = swaps.create(swap_terms())  # t0+1: swap:1
    clock.t += 1
    store.advance([Change(1, S.CONFIRMED, "deep")])  # t0+2: transfer:2
    d = dispatcher(store, clock, sub(receiver, "all"), sub(receiver, "swaps", ["swap"]))
    assert d.run_once() == 4
    by_sub = [json.loads(b)["id"] for _, b, _ in receiver.requests]
    assert by_sub == ["transfer:1", "swap:1", "transfer:2", "swap:1"]
    swap_event = receiver.delivered()[1]
    assert swap_event["type"] == "swap.status_changed"
    assert swap_event["data"] == {"swap_id": record.id, "pair": "BTC/ETH", "from": None,
                                  "to": "swap.offered", "reason": "swap offered",
                                  "at": 1_700_000_001.0}


# ------------------------------------------------------------------ signatures
def test_verify_signature_accepts_only_the_exact_body_secret_and_a_fresh_time():
    body = b'{"id":"transfer:1"}'
    header = sign(SECRET, 1_700_000_000, body)
    assert verify_signature(SECRET, header, body, 1_700_000_100)
    assert verify_signature(SECRET, f"{header},v1={'00' * 32}", body, 1_700_000_000)
    assert not verify_signature("other", header, body, 1_700_000_000)
    assert not verify_signature(SECRET, header, body + b" ", 1_700_000_000)
    assert not verify_signature(SECRET, header, body, 1_700_000_301)  # replayed too late
    assert not verify_signature(SECRET, header, body, 1_700_000_301, tolerance_s=300)
    assert verify_signature(SECRET, header, body, 1_700_000_301, tolerance_s=400)
    for bad in ("", "t=1700000000", "v1=" + "00" * 32, "t=x,v1=00", header.replace("t=", "T=")):
        assert not verify_signature(SECRET, bad, body, 1_700_000_000)
