"""A local chain node run as a child process for tests and devnets: spawn, watch, stop, logs.

Owns: the process plumbing shared by `adapters.evm.devnet.AnvilNode` and
`adapters.bitcoin.devnet.BtcdNode` (each adds its own command line and readiness check).
Must not know any chain: no RPC, no chain ids.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from adapters.errors import ConfigError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NodeProcess:
    """One child process whose stdout and stderr go to `log_path`, in its own session (so a
    test's Ctrl-C does not reach it before the fixture stops it).

    Args:
        log_path: the log file (appended to).
    """

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def spawn(self, cmd: list[str], cwd: Path) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                start_new_session=True)

    @property
    def started(self) -> bool:
        return self._proc is not None

    @property
    def pid(self) -> int | None:
        """The pid while the process runs, else None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def exit_code(self) -> int | None:
        """None while running; the exit code once exited (-1 if never started)."""
        if self._proc is None:
            return -1
        return self._proc.poll()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the log."""
        if not self.log_path.exists():
            return "<empty log>"
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "<empty log>"


def tool_binary(name: str, env: str, default: Path, hint: str) -> Path:
    """Path of a node binary: the environment variable `env` if set, else `default`.

    Raises:
        ConfigError: the binary does not exist or is not executable (`hint` says how to get it).
    """
    path = Path(os.environ.get(env) or default)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ConfigError(f"{name} not found at {path}; {hint} or set {env}")
    return path
