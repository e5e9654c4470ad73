"""Metrics and health of one validator process: what its passes did, where its cursors stand,
and a small HTTP server (``[validator] metrics_port``) serving ``/metrics``, ``/healthz`` and
``/readyz``.

Owns: `ValidatorMetrics` (the daemon reports passes, deliveries and refusals to it; cursors are
read from the daemon's state at scrape time), its readiness rule, and `ValidatorHttp`. Must not
sign, deliver or touch keys; it exports public keys only.

Metrics: ``ferry_validator_attestations_delivered_total{kind}`` (accepted by the relayer with a
2xx), ``ferry_validator_delivery_failures_total``, ``ferry_validator_signing_refusals_total{kind,
reason}``, ``ferry_validator_passes_total{outcome}``, ``ferry_validator_last_pass_timestamp_seconds``,
``ferry_validator_last_delivery_timestamp_seconds{kind}``,
``ferry_validator_last_ok_pass_timestamp_seconds``, ``ferry_validator_chain_cursor_height_blocks
{chain}``, ``ferry_validator_burn_cursor_seq``, ``ferry_validator_ledger_epoch``,
``ferry_validator_info{name, validator, evm_address}`` and the ``ferry_rpc_*`` of its own RPC
clients (`adapters.rpc_health`).

Ready (200) when a pass finished within ``stale_after_s``, that pass read a usable ledger
status, its last delivery reached the relayer and at least one chain answered; else 503 with
the first reason. Chains that did not answer are listed either way.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.rpc_health import RpcHealthCollector
from validators.signer import RefusalReason

log = logging.getLogger(__name__)
MIN_STALE_S = 30.0  # a pass older than max(this, 10 poll intervals) makes the validator unready


class _StateCollector(Collector):
    """Cursor heights, burn cursor and epoch read from the daemon's state at scrape time."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        state = self.daemon.state
        cursors = GaugeMetricFamily("ferry_validator_chain_cursor_height_blocks",
                                    "Last final block this validator scanned and delivered.",
                                    labels=["chain"])
        for chain, height in sorted(dict(state.blocks).items()):
            cursors.add_metric([chain], height)
        burns = GaugeMetricFamily("ferry_validator_burn_cursor_seq",
                                  "Ledger seq of the last burn this validator handled.")
        burns.add_metric([], state.burn_seq)
        yield cursors
        yield burns
        if state.epoch is not None:
            epoch = GaugeMetricFamily("ferry_validator_ledger_epoch",
                                      "Ledger validator-set epoch last read.")
            epoch.add_metric([], state.epoch)
            yield epoch
        info = GaugeMetricFamily("ferry_validator_info", "This validator's public identity.",
                                 labels=["name", "validator", "evm_address"])
        keys = self.daemon.keys
        info.add_metric([self.daemon.section.name, keys.ed25519_public_hex,
                         str(keys.evm_address).lower()], 1)
        yield info

    def describe(self) -> Iterator[Metric]:
        return iter(())


class ValidatorMetrics:
    """One validator's metrics and readiness (module docstring).

    Args:
        daemon: the `validators.daemon.ValidatorDaemon` (its ``state``, ``keys``, ``section``).
        wall: Unix time source for the timestamps (tests may inject one).
    """

    def __init__(self, daemon: Any, wall: Callable[[], float] = time.time) -> None:
        self.daemon, self.wall = daemon, wall
        self.registry = r = CollectorRegistry()
        self.delivered = Counter("ferry_validator_attestations_delivered_total",
                                 "Attestations the relayer accepted (2xx), by kind.", ["kind"],
                                 registry=r)
        self.delivery_failures = Counter("ferry_validator_delivery_failures_total",
                                         "Deliveries to the relayer that failed.", registry=r)
        self.refusals = Counter("ferry_validator_signing_refusals_total",
                                "Events or burns this validator refused to sign, by reason.",
                                ["kind", "reason"], registry=r)
        self.passes = Counter("ferry_validator_passes_total", "Scan passes by outcome.",
                              ["outcome"], registry=r)
        self.last_pass = Gauge("ferry_validator_last_pass_timestamp_seconds",
                               "When the last scan pass finished (Unix seconds).", registry=r)
        self.last_ok_pass = Gauge("ferry_validator_last_ok_pass_timestamp_seconds",
                                  "When the last pass without any failure finished.",
                                  registry=r)
        self.last_delivery = Gauge("ferry_validator_last_delivery_timestamp_seconds",
                                   "When the relayer last accepted (2xx) attestations of this "
                                   "kind from this validator.", ["kind"], registry=r)
        for kind in ("lock", "release"):  # every series exists from the start (rate() works)
            for reason in RefusalReason:
                self.refusals.labels(kind, reason.value)
        for outcome in ("ok", "failed"):
            self.passes.labels(outcome)
        r.register(_StateCollector(daemon))
        r.register(RpcHealthCollector())
        self._lock = threading.Lock()
        self._last_pass_at: float | None = None
        self._ledger_ok = False
        self._relayer_ok = True
        self._unreachable: list[str] = []

    # -- what the daemon reports -------------------------------------------------------------

    def pass_done(self, ok: bool, epoch: int | None, unreachable: set[str]) -> None:
        """A pass finished: `ok` as `PassResult.ok`, the epoch it signed under (None: the
        ledger status was unusable) and the chains that did not answer."""
        now = self.wall()
        self.passes.labels("ok" if ok else "failed").inc()
        self.last_pass.set(now)
        if ok:
            self.last_ok_pass.set(now)
        with self._lock:
            self._last_pass_at = now
            self._ledger_ok = epoch is not None
            self._unreachable = sorted(unreachable)

    def delivery(self, payloads: list[dict[str, Any]], ok: bool) -> None:
        """`deliver` returned `ok` for `payloads`."""
        if not payloads:
            return
        with self._lock:
            self._relayer_ok = ok
        if not ok:
            self.delivery_failures.inc()
            return
        now = self.wall()
        for p in payloads:
            kind = str(p.get("kind"))[:32]
            self.delivered.labels(kind).inc()
            self.last_delivery.labels(kind).set(now)

    def refused(self, kind: str, reason: object) -> None:
        """A `SigningRefused` of `kind` (lock, release) for `reason` (`RefusalReason`)."""
        self.refusals.labels(kind, str(getattr(reason, "value", reason))[:64]).inc()

    # -- readiness ---------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, JSON body) per the rule in the module docstring."""
        poll = float(self.daemon.section.poll_interval_s)
        stale_after = max(MIN_STALE_S, 10 * poll)
        chains = [c.caip2 for c in getattr(self.daemon, "_lock_chains", [])]
        with self._lock:
            at, ledger_ok = self._last_pass_at, self._ledger_ok
            relayer_ok, unreachable = self._relayer_ok, list(self._unreachable)
        reason = None
        if at is None:
            reason = "no scan pass finished yet"
        elif self.wall() - at > stale_after:
            reason = f"last scan pass finished {self.wall() - at:.0f} s ago"
        elif not ledger_ok:
            reason = "ledger status unavailable (or another network)"
        elif not relayer_ok:
            reason = "last delivery to the relayer failed"
        elif chains and set(chains) <= set(unreachable):
            reason = "no chain answered"
        body: dict[str, Any] = {"status": "ready" if reason is None else "not_ready",
                                "chains_unreachable": unreachable}
        if reason is not None:
            body["reason"] = reason
        if at is not None:
            body["last_pass_age_s"] = round(self.wall() - at, 3)
        return reason is None, body


class ValidatorHttp:
    """``/metrics``, ``/healthz`` and ``/readyz`` of one validator on a thread.

    Args:
        metrics: what to serve.
        host: listen address. port: listen port (0: a free one, see `port`).
    """

    def __init__(self, metrics: ValidatorMetrics, host: str, port: int) -> None:
        handler = _handler(metrics)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="validator-http",
                                        daemon=True)

    def start(self) -> ValidatorHttp:
        self._thread.start()
        log.info("validator metrics serving port=%d", self.port)
        return self

    def close(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def _handler(metrics: ValidatorMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                ready, body = metrics.readiness()
                self._json(200 if ready else 503, body)
            else:
                self._json(404, {"error": {"code": "not_found", "message": path}})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes and probes are not worth a log line each

    return Handler
