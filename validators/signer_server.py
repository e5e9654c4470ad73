"""The external signer: serves one validator's keys over a Unix domain socket
(``ferry signer serve``), so the keys can live outside the validator process.

Owns: the server side of the external-signer protocol (`validators.key_signer` wire format):
the socket file and its directory, one thread per client connection, answering ``info`` and the
four sign operations, refusing anything else with a typed error answer. Must not decide what to
sign, put a private key in a log line, an answer or an error, or listen on anything but a Unix
socket.

SECURITY: this server signs whatever a connected client asks. Every check of *what* may be
signed stays in the validator (`validators.signer` and friends). The access control is the
socket's file mode: the socket is created in a directory of this user's with mode 0700 (created
so if missing; an existing directory open to others is refused) and chmod-ed to 0600, so only
this user (and root) can connect. Peer process ids are logged (``SO_PEERCRED``) with every
signature, so the log is an audit trail of what was signed for whom: operation, digest (or the
SHA-256 of an attestation message), peer pid and uid.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import socketserver
import stat
import struct
import threading
from pathlib import Path
from typing import Any, Self

from adapters.errors import (
    ConfigError,
    InvalidAddress,
    InvalidSignature,
    SignerError,
    SignerRefused,
    SignerUnavailable,
)
from validators.attestation import parse_hex
from validators.key_signer import OPS, PROTOCOL_VERSION, KeySigner, recv_frame, send_frame

logger = logging.getLogger(__name__)

MAX_SOCKET_PATH_BYTES = 100  # sun_path holds 108 bytes on Linux, 104 on the BSDs


def prepare_socket_path(path: Path) -> None:
    """Make `path` ready to bind: its directory private to this user, no live server on it.

    Creates the directory (mode 0700) if missing; removes a stale socket left by a killed
    server.

    Raises:
        ConfigError: path too long for a Unix socket; directory not owned by this user or open
            to group or others; `path` is not a socket, or a server already answers on it.
    """
    path = Path(path)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise ConfigError(f"signer socket path {path} is longer than {MAX_SOCKET_PATH_BYTES} "
                          "bytes (a Unix socket limit)")
    parent = path.parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=0o700)
        os.chmod(parent, 0o700)
    info = parent.stat()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.geteuid() or mode & 0o077:
        raise ConfigError(f"signer socket directory {parent} must belong to this user with mode "
                          f"0700 (it is {mode:o}, uid {info.st_uid})")
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise ConfigError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # stale: its server died without cleaning up
        logger.info("removed stale signer socket %s", path)
        return
    finally:
        probe.close()
    raise ConfigError(f"a signer already serves on {path}")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False  # clients may keep idle connections; `SignerServer.stop` ends them

    def __init__(self, path: str, keys: KeySigner) -> None:
        self.keys = keys
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(path, _Handler)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server
    request: socket.socket

    def handle(self) -> None:
        sock = self.request
        with self.server.connections_lock:
            self.server.connections.add(sock)
        peer = _peer(sock)
        try:
            while True:
                try:
                    request = recv_frame(sock)
                except SignerUnavailable:
                    return  # the client closed its connection
                except SignerRefused as exc:
                    _send(sock, _error("bad_request", str(exc)))
                    return
                if not _send(sock, answer(self.server.keys, request, peer)):
                    return
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(sock)


def _send(sock: socket.socket, response: dict[str, Any]) -> bool:
    try:
        send_frame(sock, response)
    except SignerError:
        return False
    return True


def _peer(sock: socket.socket) -> str:
    """``pid=<pid> uid=<uid>`` of the connected process (Linux ``SO_PEERCRED``), else ``?``."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return "pid=? uid=?"
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return f"pid={pid} uid={uid}"


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def answer(keys: KeySigner, request: dict[str, Any], peer: str = "pid=? uid=?") -> dict[str, Any]:
    """The response to one request (`validators.key_signer` wire format).

    Args:
        keys: the keys served.
        request: a decoded request frame.
        peer: who asked, for the audit log line.

    Returns:
        A success or failure response; never raises for a bad request.
    """
    if request.get("v") != PROTOCOL_VERSION:
        return _error("bad_request", f"protocol version must be {PROTOCOL_VERSION}")
    op = request.get("op")
    if op not in OPS:
        shown = repr(op)[:64]
        logger.warning("refused unknown signer operation op=%s %s", shown, peer)
        return _error("unknown_op", f"unknown operation {shown}; known: {', '.join(OPS)}")
    if op == "info":
        return {"ok": True, "result": {"ed25519": keys.ed25519_public_hex,
                                       "evm_address": keys.evm_address,
                                       "secp256k1_public": "0x" + keys.secp256k1_public.hex()}}
    data = request.get("data")
    try:
        payload = parse_hex(data) if isinstance(data, str) else None
    except InvalidAddress:
        payload = None
    if payload is None:
        return _error("bad_request", f"{op} needs data as 0x-prefixed hex")
    try:
        signature = getattr(keys, op)(payload)
    except InvalidSignature as exc:
        return _error("invalid_signature", str(exc))
    if op == "sign_attestation":
        detail = "message_sha256=" + hashlib.sha256(payload).hexdigest()
    else:
        detail = "digest=0x" + payload.hex()
    logger.info("signed op=%s %s %s", op, detail, peer)
    return {"ok": True, "result": {"signature": "0x" + signature.hex()}}


class SignerServer:
    """Serve `keys` on the Unix socket `socket_path` (mode 0600 in a 0700 directory).

    Args:
        keys: the keys to serve (a `validators.keystore.ValidatorKeys`, the file signer).
        socket_path: where to listen; see `prepare_socket_path`.

    Use as a context manager, or `start` then `stop`.
    """

    def __init__(self, keys: KeySigner, socket_path: Path) -> None:
        self.keys = keys
        self.socket_path = Path(socket_path)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind the socket (0600) and serve on a background thread.

        Raises:
            ConfigError: see `prepare_socket_path`.
        """
        prepare_socket_path(self.socket_path)
        # The 0700 directory keeps others out during the moment before the chmod.
        self._server = _Server(str(self.socket_path), self.keys)
        os.chmod(self.socket_path, 0o600)
        self._thread = threading.Thread(target=self._server.serve_forever, name="signer-server",
                                        daemon=True)
        self._thread.start()
        logger.info("signer serving socket=%s validator=%s evm=%s", self.socket_path,
                    self.keys.ed25519_public_hex, self.keys.evm_address)
        return self

    def stop(self) -> None:
        """Stop listening, end every client connection and remove the socket file;
        idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.connections_lock:
            for sock in list(server.connections):
                with contextlib.suppress(OSError):  # already closed by its client
                    sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.socket_path.unlink(missing_ok=True)
        logger.info("signer stopped socket=%s", self.socket_path)

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
