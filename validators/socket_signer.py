"""`SocketSigner`: a `KeySigner` whose keys live in another process (``ferry signer serve``,
`validators.signer_server`), reached over a Unix domain socket.

Owns: the client side of the external-signer protocol (`validators.key_signer` wire format):
connecting, reconnecting, timeouts, translating failures into `SignerUnavailable` and
`SignerRefused`, and checking every signature it receives against the signer's public keys.
Must not decide what to sign, hold private keys, or log anything but public identities.

SECURITY: the external signer signs whatever this client asks; every check of *what* may be
signed stays in the validator (`validators.signer`, `validators.utxo_signer`,
`validators.escrow_signer`). Access to the signer is controlled by the socket's file mode
(0600 in a 0700 directory: the signer's own user only). This client verifies each returned
signature under the public keys the signer announced on first contact, and refuses a signer
whose identity changes on a reconnect (say, a restarted signer with rotated keys): a validator
never ships a signature that is not its own.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
from coincurve import PublicKey
from coincurve.ecdsa import cdata_to_der, deserialize_compact
from eth_utils import keccak
from nacl.signing import VerifyKey

from adapters.errors import (
    InvalidAddress,
    InvalidSignature,
    SignerRefused,
    SignerUnavailable,
)
from validators.attestation import ValidatorInfo, parse_hex
from validators.eip712 import recover_signer
from validators.key_signer import PROTOCOL_VERSION, recv_frame, send_frame

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class _Identity:
    ed25519: bytes
    evm_address: str
    secp256k1: bytes


class SocketSigner:
    """Signs through ``ferry signer serve`` on `socket_path`.

    One connection, used by one request at a time (a lock serialises callers). A request that
    fails on the socket (closed, refused, timed out) is sent again once on a fresh connection:
    signing is deterministic and has no side effect, so a repeat is harmless.

    Args:
        socket_path: the server's Unix socket.
        timeout_s: bound on connecting and on each request's answer, seconds.

    The public properties (`ed25519_public`, ...) ask the signer on first use and are cached;
    call `wait_ready` first so that they do not raise.
    """

    def __init__(self, socket_path: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.socket_path = Path(socket_path)
        self._timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._identity: _Identity | None = None
        self._lock = threading.Lock()

    # -- connection -----------------------------------------------------------------------

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the signer answers ``info`` (its identity is then cached).

        Raises:
            SignerUnavailable: no answer within `timeout_s` seconds.
            SignerRefused: the signer answered with an error or a malformed identity.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._ensure_identity()
                return
            except SignerUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise SignerUnavailable(
                        f"signer at {self.socket_path} not ready after {timeout_s}s: {exc}"
                    ) from exc
            time.sleep(0.1)

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _connect(self) -> socket.socket:
        """A fresh connection whose signer has the cached identity (or sets it).

        Raises:
            SignerUnavailable: cannot connect. SignerRefused: another identity answered.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self._timeout_s)
        try:
            sock.connect(str(self.socket_path))
        except OSError as exc:
            sock.close()
            reason = exc.strerror or type(exc).__name__
            raise SignerUnavailable(f"cannot connect to signer {self.socket_path}: {reason}") \
                from exc
        try:
            identity = _parse_identity(_result(_exchange(sock, "info", None)))
        except BaseException:
            sock.close()
            raise
        if self._identity is not None and identity != self._identity:
            sock.close()
            raise SignerRefused(
                f"signer at {self.socket_path} changed identity: was "
                f"0x{self._identity.ed25519.hex()}, now 0x{identity.ed25519.hex()}; restart the "
                "validator after a key rotation")
        if self._identity is None:
            logger.info("external signer socket=%s validator=0x%s evm=%s", self.socket_path,
                        identity.ed25519.hex(), identity.evm_address)
        self._identity = identity
        return sock

    def _call(self, op: str, data: bytes) -> dict[str, Any]:
        """Send one request and return its ``result`` (one retry on a fresh connection)."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._sock is None:
                        self._sock = self._connect()
                    response = _exchange(self._sock, op, data)
                    break
                except SignerUnavailable:
                    self._drop()
                    if attempt == 2:
                        raise
                except SignerRefused:
                    self._drop()
                    raise
        return _result(response)

    def _ensure_identity(self) -> _Identity:
        if self._identity is None:
            with self._lock:
                if self._identity is None:
                    self._drop()
                    self._sock = self._connect()
        assert self._identity is not None
        return self._identity

    # -- KeySigner ------------------------------------------------------------------------

    @property
    def ed25519_public(self) -> bytes:
        """32-byte Ed25519 public key (asked once, then cached)."""
        return self._ensure_identity().ed25519

    @property
    def ed25519_public_hex(self) -> str:
        """Ed25519 public key as lowercase ``0x`` hex."""
        return "0x" + self.ed25519_public.hex()

    @property
    def evm_address(self) -> str:
        """Lowercase ``0x`` address of the signer's secp256k1 key."""
        return self._ensure_identity().evm_address

    @property
    def secp256k1_public(self) -> bytes:
        """Compressed (33-byte SEC1) secp256k1 public key."""
        return self._ensure_identity().secp256k1

    @property
    def info(self) -> ValidatorInfo:
        """Public identity, as it appears in a `ValidatorSet`."""
        identity = self._ensure_identity()
        return ValidatorInfo(ed25519=identity.ed25519, evm_address=identity.evm_address)

    def sign_attestation(self, message: bytes) -> bytes:
        """64-byte Ed25519 signature over `message`, checked under `ed25519_public`.

        Raises:
            SignerUnavailable: no answer. SignerRefused: an error answer or a bad signature.
        """
        signature = self._signature("sign_attestation", message)
        try:
            VerifyKey(self.ed25519_public).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, ValueError) as exc:
            raise SignerRefused("signer returned an Ed25519 signature that does not verify") \
                from exc
        return signature

    def sign_digest(self, digest: bytes) -> bytes:
        """65-byte ``r || s || v`` secp256k1 signature over a 32-byte digest, checked to recover
        to `evm_address`.

        Raises:
            InvalidSignature: `digest` is not 32 bytes (nothing is sent).
            SignerUnavailable, SignerRefused: as `sign_attestation`.
        """
        _check_digest(digest)
        signature = self._signature("sign_digest", digest)
        try:
            ok = recover_signer(digest, signature) == self.evm_address
        except InvalidSignature:
            ok = False
        if not ok:
            raise SignerRefused("signer returned an EVM signature of another key")
        return signature

    def sign_der(self, digest: bytes) -> bytes:
        """Strict-DER low-S ECDSA over a 32-byte digest, checked under `secp256k1_public`.

        Raises:
            InvalidSignature: `digest` is not 32 bytes (nothing is sent).
            SignerUnavailable, SignerRefused: as `sign_attestation`.
        """
        _check_digest(digest)
        signature = self._signature("sign_der", digest)
        self._verify_ecdsa(signature, digest)
        return signature

    def sign_compact(self, digest: bytes) -> bytes:
        """64-byte ``r || s`` low-S ECDSA over a 32-byte digest, checked under
        `secp256k1_public`.

        Raises:
            InvalidSignature: `digest` is not 32 bytes (nothing is sent).
            SignerUnavailable, SignerRefused: as `sign_attestation`.
        """
        _check_digest(digest)
        signature = self._signature("sign_compact", digest)
        if len(signature) != 64:
            raise SignerRefused("signer returned a compact signature that is not 64 bytes")
        try:
            der = cdata_to_der(deserialize_compact(signature))
        except (ValueError, TypeError) as exc:
            raise SignerRefused("signer returned a malformed compact signature") from exc
        self._verify_ecdsa(der, digest)
        return signature

    def _signature(self, op: str, data: bytes) -> bytes:
        result = self._call(op, bytes(data))
        try:
            return parse_hex(str(result["signature"]))
        except (KeyError, InvalidAddress) as exc:
            raise SignerRefused(f"signer answered {op} without a hex signature") from exc

    def _verify_ecdsa(self, der: bytes, digest: bytes) -> None:
        # libsecp256k1 verification accepts low-S signatures only.
        try:
            ok = PublicKey(self.secp256k1_public).verify(der, digest, hasher=None)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise SignerRefused("signer returned an ECDSA signature that does not verify")

    def __repr__(self) -> str:
        return f"SocketSigner(socket={self.socket_path})"


def _check_digest(digest: bytes) -> None:
    if len(digest) != 32:
        raise InvalidSignature("digest must be 32 bytes")


def _exchange(sock: socket.socket, op: str, data: bytes | None) -> dict[str, Any]:
    request: dict[str, Any] = {"v": PROTOCOL_VERSION, "op": op}
    if data is not None:
        request["data"] = "0x" + data.hex()
    send_frame(sock, request)
    return recv_frame(sock)


def _result(response: dict[str, Any]) -> dict[str, Any]:
    """The ``result`` of a success response; a failure response raised as its typed error."""
    if response.get("ok") is True and isinstance(response.get("result"), dict):
        result: dict[str, Any] = response["result"]
        return result
    error = response.get("error")
    code = str(error.get("code", "?")) if isinstance(error, dict) else "?"
    message = str(error.get("message", "")) if isinstance(error, dict) else "malformed response"
    if code == "invalid_signature":
        raise InvalidSignature(message)
    raise SignerRefused(f"signer refused ({code}): {message}")


def _parse_identity(result: dict[str, Any]) -> _Identity:
    try:
        identity = _Identity(
            ed25519=parse_hex(str(result["ed25519"]), 32),
            evm_address=str(result["evm_address"]).lower(),
            secp256k1=parse_hex(str(result["secp256k1_public"]), 33),
        )
        uncompressed = PublicKey(identity.secp256k1).format(compressed=False)
    except (KeyError, InvalidAddress, ValueError, TypeError) as exc:
        raise SignerRefused("signer answered info with a malformed identity") from exc
    if "0x" + keccak(uncompressed[1:])[-20:].hex() != identity.evm_address:
        raise SignerRefused("signer's evm_address is not its secp256k1 key's address")
    return identity
