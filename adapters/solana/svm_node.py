"""Runs the LiteSVM devnet JSON-RPC server (`adapters.solana.devnet_rpc`) as a child process:
a test tool for integration tests and `make demo`, never a network with real value.

Owns: spawning ``python -m adapters.solana.devnet_rpc`` on a loopback port the OS picks
(``--port 0``; the port is read back from the server's ``ready <port>`` line, so there is no
race for a free port), bounded readiness, the genesis-hash check, log tail and stopping.
Must not hold keys or build transactions (that is `adapters.solana.devnet`).
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

from adapters.devnode import NodeProcess
from adapters.errors import ChainError, WrongChain
from adapters.solana.devnet_state import genesis_hash_of

_REPO_ROOT = Path(__file__).resolve().parents[2]
_READY = re.compile(r"^ready (\d+)$", re.MULTILINE)


class SvmNode:
    """One devnet server process on ``127.0.0.1``, logging to ``<tmpdir>/solana-svm.log``.

    Create with `SvmNode.start` (returns once the server answers); use as a context manager
    or call `stop`.

    Attributes:
        url: HTTP JSON-RPC endpoint, ``http://127.0.0.1:<port>``.
        port: the TCP port.
        genesis_hash: base58 sha256 of the genesis seed (what getGenesisHash answers).
        caip2: ``"solana:" + genesis_hash[:32]``.
        log_path: the server's stdout+stderr.
        slot_ms, finality_slots: the server's slot period (0: manual) and finality depth.
    """

    def __init__(self, tmpdir: Path, *, slot_ms: int, finality_slots: int,
                 genesis_seed: str) -> None:
        self.slot_ms = slot_ms
        self.finality_slots = finality_slots
        self.genesis_hash = genesis_hash_of(genesis_seed)
        self.caip2 = "solana:" + self.genesis_hash[:32]
        self.log_path = Path(tmpdir) / "solana-svm.log"
        self.port = 0
        self._log_offset = 0
        self._proc = NodeProcess(self.log_path)

    @classmethod
    def start(cls, tmpdir: Path, *, slot_ms: int = 100, finality_slots: int = 8,
              genesis_seed: str = "ferry-solana-devnet", ready_timeout_s: float = 30.0) -> Self:
        """Spawn the server and wait until it is ready.

        Args:
            tmpdir: an existing directory for the log file.
            slot_ms: milliseconds per slot; 0 advances slots only through `advance_slots`.
            finality_slots: finalized = current slot - finality_slots.
            genesis_seed: text whose sha256 is the genesis hash.
            ready_timeout_s: bound on the wait for ``ready <port>`` and a first answer.

        Raises:
            ChainError: the process exited or was not ready in time (message has the log tail).
            WrongChain: the server answered with another genesis hash.
        """
        node = cls(tmpdir, slot_ms=slot_ms, finality_slots=finality_slots,
                   genesis_seed=genesis_seed)
        # the log is appended to: look for this run's ready line only
        node._log_offset = node.log_path.stat().st_size if node.log_path.exists() else 0
        node._proc.spawn(
            [sys.executable, "-u", "-m", "adapters.solana.devnet_rpc", "--port", "0",
             "--host", "127.0.0.1", "--slot-ms", str(slot_ms),
             "--finality-slots", str(finality_slots), "--genesis-seed", genesis_seed],
            _REPO_ROOT)
        try:
            node.wait_ready(timeout_s=ready_timeout_s)
        except BaseException:
            node.stop()
            raise
        return node

    @property
    def url(self) -> str:
        """HTTP JSON-RPC endpoint (valid once ready)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """OS process id while running, else None."""
        return self._proc.pid

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait for the ``ready <port>`` line, then for getGenesisHash to answer.

        Raises:
            ChainError: the process exited or did not get ready within `timeout_s` seconds.
            WrongChain: the genesis hash served is not `genesis_hash`.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            code = self._proc.exit_code()
            if code is not None:
                raise ChainError(f"solana devnet exited (code {code}); log:\n{self.log_tail()}",
                                 chain=self.caip2)
            if not self.port and self.log_path.exists():
                with open(self.log_path, "rb") as log:
                    log.seek(self._log_offset)
                    match = _READY.search(log.read().decode("utf-8", errors="replace"))
                self.port = int(match.group(1)) if match else 0
            served = None
            if self.port:
                try:
                    served = self.call("getGenesisHash", timeout_s=1.0)
                except (OSError, ValueError, http.client.HTTPException):
                    served = None  # listening but not answering yet
            if served is not None:
                if served != self.genesis_hash:
                    raise WrongChain(f"port {self.port} serves genesis hash {served}",
                                     chain=self.caip2)
                return
            if time.monotonic() >= deadline:
                raise ChainError(f"solana devnet not ready after {timeout_s}s; log:\n"
                                 f"{self.log_tail()}", chain=self.caip2)
            time.sleep(0.05)

    def call(self, method: str, *params: Any, timeout_s: float = 10.0) -> Any:
        """One raw JSON-RPC call (a test convenience; the bridge uses solana-py).

        Raises:
            ValueError: the server answered with a JSON-RPC error (its message and code).
            OSError: the server did not answer.
        """
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                           "params": list(params)}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            reply = json.loads(response.read())
        if "error" in reply:
            raise ValueError(f"{method}: {reply['error']}")
        return reply["result"]

    def advance_slots(self, count: int = 1) -> int:
        """End `count` slots now (devnet method ``ferry_advanceSlots``). Returns the new slot."""
        return int(self.call("ferry_advanceSlots", count))

    def wait_slot(self, slot: int, *, commitment: str = "finalized",
                  timeout_s: float = 30.0) -> int:
        """Poll getSlot at `commitment` until it reaches `slot`; returns the slot seen.

        Raises:
            ChainError: not reached within `timeout_s` seconds (or the process died).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            seen = int(self.call("getSlot", {"commitment": commitment}))
            if seen >= slot:
                return seen
            if self._proc.exit_code() is not None or time.monotonic() >= deadline:
                raise ChainError(f"{commitment} slot {seen} did not reach {slot} in "
                                 f"{timeout_s}s; log:\n{self.log_tail()}", chain=self.caip2)
            time.sleep(max(self.slot_ms, 20) / 1000)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the server (SIGKILL after `timeout_s`); idempotent. The log stays."""
        self._proc.stop(timeout_s)

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the server's log."""
        return self._proc.log_tail(lines)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
