"""A Solana JSON-RPC 2.0 server backed by LiteSVM: a test tool for integration tests and
`make demo`, never a network with real value.

    python -m adapters.solana.devnet_rpc --port P [--host 127.0.0.1] [--slot-ms 100]
        [--finality-slots 8] [--genesis-seed TEXT]

Serves HTTP POST "/" (single requests and batches) and GET "/health"; prints one line
``ready <port>`` on stdout once listening (``--port 0`` lets the OS pick the port). A
background tick ends a slot every ``--slot-ms`` (0: slots advance only through the devnet
method ``ferry_advanceSlots``). Commitments: processed = current slot, confirmed = slot - 1,
finalized = slot - finality_slots; reads answer as of that slot.

Owns: the process (arguments, slot ticker, SIGTERM), HTTP and JSON-RPC 2.0 framing (batches,
-32700 / -32600 / -32601 / -32602 / -32603 errors) and the one lock around the chain state.
Method handlers live in `adapters.solana.devnet_methods` (each names the Solana doc page it
follows), chain state and admission rules in `adapters.solana.devnet_state`, JSON shapes in
`adapters.solana.devnet_codec`. Must not be imported by the bridge's adapter.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from adapters.solana.devnet_methods import METHODS
from adapters.solana.devnet_state import DevnetState, JsonRpcError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ framing


def _error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": request_id}


def _handle_one(state: DevnetState, request: Any) -> dict[str, Any]:
    if (not isinstance(request, dict) or request.get("jsonrpc") != "2.0"
            or not isinstance(request.get("method"), str)):
        request_id = request.get("id") if isinstance(request, dict) else None
        return _error(request_id, -32600, "Invalid request")
    request_id = request.get("id")
    handler = METHODS.get(request["method"])
    if handler is None:
        return _error(request_id, -32601, "Method not found")
    params = request.get("params")
    params = [] if params is None else params
    if not isinstance(params, list):
        return _error(request_id, -32602, "Invalid params: expected an array")
    try:
        with state.lock:
            result = handler(state, params)
    except JsonRpcError as exc:
        return _error(request_id, exc.rpc_code, str(exc), exc.data)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        log.info("invalid params method=%s: %r", request["method"], exc)
        return _error(request_id, -32602, f"Invalid params: {exc}")
    except Exception as exc:  # the server must outlive a handler bug; it is logged
        log.exception("internal error method=%s", request["method"])
        return _error(request_id, -32603, f"Internal error: {exc}")
    return {"jsonrpc": "2.0", "result": result, "id": request_id}


def handle_body(state: DevnetState, body: bytes) -> bytes:
    """The HTTP response body for one JSON-RPC request body (single request or batch)."""
    try:
        payload = json.loads(body)
    except ValueError:
        reply: Any = _error(None, -32700, "Parse error")
    else:
        if isinstance(payload, list):
            reply = ([_handle_one(state, item) for item in payload] if payload
                     else _error(None, -32600, "Invalid request"))
        else:
            reply = _handle_one(state, payload)
    return json.dumps(reply, separators=(",", ":")).encode()


class DevnetServer(ThreadingHTTPServer):
    """ThreadingHTTPServer holding the `DevnetState` its handlers answer from."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: DevnetState) -> None:
        self.state = state
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse one connection
    disable_nagle_algorithm = True  # headers and body are two writes: do not wait for ACKs
    server: DevnetServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._reply(200, "application/json", handle_body(self.server.state, self.rfile.read(length)))

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, "text/plain", b"ok")
        else:
            self._reply(404, "text/plain", b"not found")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def _tick_forever(state: DevnetState, slot_ms: int, stop: threading.Event) -> None:
    interval_s = slot_ms / 1000
    deadline = time.monotonic() + interval_s
    while not stop.wait(max(0.0, deadline - time.monotonic())):
        with state.lock:
            state.tick()
        deadline = max(deadline + interval_s, time.monotonic())


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM / Ctrl-C. Returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m adapters.solana.devnet_rpc",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--slot-ms", type=int, default=100,
                        help="milliseconds per slot (0: only ferry_advanceSlots moves slots)")
    parser.add_argument("--finality-slots", type=int, default=8)
    parser.add_argument("--genesis-seed", default="ferry-solana-devnet")
    args = parser.parse_args(argv)
    if args.slot_ms < 0 or args.finality_slots < 1:
        parser.error("--slot-ms must be >= 0 and --finality-slots >= 1")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    state = DevnetState(genesis_seed=args.genesis_seed, finality_slots=args.finality_slots)
    server = DevnetServer((args.host, args.port), state)
    stop = threading.Event()
    if args.slot_ms > 0:
        threading.Thread(target=_tick_forever, args=(state, args.slot_ms, stop),
                         name="slot-ticker", daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = server.server_address[1]
    log.info("serving on %s:%d genesis_hash=%s slot_ms=%d finality_slots=%d",
             args.host, port, state.genesis_hash, args.slot_ms, args.finality_slots)
    print(f"ready {port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        log.info("interrupted; stopping")
    finally:
        stop.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
