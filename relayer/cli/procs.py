"""Child processes of `ferry demo` and `ferry devnet`: start a Ferry service, wait until it
answers HTTP, stop it, and show its log when it fails; and a local webhook receiver thread.

Owns: process lifetime for the demo and tests, and `WebhookSink`. Must not know what the
services do (the sink keeps what it receives; the demo checks it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from adapters.errors import BridgeError


class ServiceFailed(BridgeError):
    code = "service_failed"


class ServiceProcess:
    """`python -m relayer.cli <args>` as a child process with its own log file.

    Args:
        name: label for messages (``ledger``, ``validator-3``, ``relayer``).
        args: CLI arguments after ``ferry``.
        log_path: stdout and stderr go here.
        env: extra environment (secrets travel here, never on the command line).
    """

    def __init__(self, name: str, args: Sequence[str], log_path: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.name, self.args, self.log_path = name, list(args), log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "relayer.cli", *self.args], stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_http(self, url: str, timeout_s: float = 30.0) -> None:
        """Poll `url` until it answers 200; fail fast if the process died.

        Raises:
            ServiceFailed: exited, or no answer within `timeout_s` (message has the log tail).
        """
        def answers() -> bool:
            try:
                return httpx.get(url, timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False  # not listening yet

        self._wait(answers, timeout_s)

    def wait_socket(self, path: Path, timeout_s: float = 30.0) -> None:
        """Poll until the Unix socket `path` accepts a connection; fail fast if the process died.

        Raises:
            ServiceFailed: exited, or not accepting within `timeout_s` (message has the log tail).
        """
        def accepts() -> bool:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(path))
                    return True
                except OSError:
                    return False  # not listening yet

        self._wait(accepts, timeout_s)

    def _wait(self, ready: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServiceFailed(f"{self.name} exited; log:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.1)
        raise ServiceFailed(f"{self.name} not ready after {timeout_s}s; log:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush (crash tests)."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`; idempotent."""
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "<no log>"
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class WebhookDelivery:
    """One POST the receiver got: the raw body and the Ferry headers, as received, and when
    (unix seconds: the ``now`` of a signature check)."""

    body: bytes
    event_id: str
    signature: str
    received_at: float


class WebhookSink:
    """A webhook subscriber on a loopback port: a stdlib HTTP server thread that answers 200 to
    every POST and keeps what it got (`deliveries`), for the demo to check the signatures."""

    def __init__(self, port: int) -> None:
        self.deliveries: list[WebhookDelivery] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink._lock:
                    sink.deliveries.append(WebhookDelivery(
                        body, self.headers.get("Ferry-Event-Id", ""),
                        self.headers.get("Ferry-Signature", ""), time.time()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass  # quiet: the demo reports what arrived

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}/ferry-events"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="webhook-sink")

    def start(self) -> WebhookSink:
        self._thread.start()
        return self

    def received(self) -> list[WebhookDelivery]:
        with self._lock:
            return list(self.deliveries)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
