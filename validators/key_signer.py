"""The signer interface validators sign through, and the wire format of an external signer.

Owns: `KeySigner`, exactly what the validator code (`validators.signer`, `validators.utxo_signer`,
`validators.escrow_signer`, `validators.daemon`) uses of a validator's keys, and the framing of
the external-signer protocol spoken by `validators.socket_signer` (client) and
`validators.signer_server` (server). Must not hold keys, decide what to sign, or touch files.

Implementations:

- `validators.keystore.ValidatorKeys`: the file signer (keys decrypted into this process).
- `validators.socket_signer.SocketSigner`: keys in another process (``ferry signer serve``),
  reached over a Unix domain socket.

SECURITY: a `KeySigner` signs whatever it is handed. Every check of *what* may be signed stays
in the validator (`validators.signer` and friends), whichever implementation holds the keys.

Wire format (Ferry external signer, protocol version 1). A stream of frames over one
``SOCK_STREAM`` Unix socket; each frame is a 4-byte unsigned big-endian length ``N``
(1 <= N <= `MAX_FRAME_BYTES`) followed by ``N`` bytes of one UTF-8 JSON object. The client sends
one request per frame and reads one response frame before sending the next request; a
connection may carry any number of request/response pairs.

- Request: ``{"v": 1, "op": <op>, "data": "0x<hex>"}``; ``data`` is absent for ``info``.
  Operations (`OPS`): ``info``; ``sign_attestation`` (data: the message, any length that fits a
  frame); ``sign_digest``, ``sign_der``, ``sign_compact`` (data: a 32-byte digest).
- Success: ``{"ok": true, "result": R}``. For ``info``, ``R = {"ed25519": "0x<32 B>",
  "evm_address": "0x<20 B>", "secp256k1_public": "0x<33 B SEC1>"}``; for a signature,
  ``R = {"signature": "0x<hex>"}`` with the bytes of the matching `ValidatorKeys` method.
- Failure: ``{"ok": false, "error": {"code": C, "message": M}}`` with ``C`` one of `ERROR_CODES`.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, Protocol, runtime_checkable

from adapters.errors import SignerRefused, SignerUnavailable
from validators.attestation import ValidatorInfo

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 256 * 1024
OPS = ("info", "sign_attestation", "sign_digest", "sign_der", "sign_compact")
#: unknown_op: not in `OPS`; bad_request: not a version-1 request, or ``data`` missing or not
#: hex; invalid_signature: a digest that is not 32 bytes; internal: the signer failed.
ERROR_CODES = ("unknown_op", "bad_request", "invalid_signature", "internal")
_HEADER = struct.Struct(">I")


@runtime_checkable
class KeySigner(Protocol):
    """A validator's keys as the validator uses them: public identities and four signatures.

    Byte formats are those of `validators.keystore.ValidatorKeys`, which is the reference.
    """

    @property
    def ed25519_public(self) -> bytes:
        """32-byte Ed25519 public key."""
        ...

    @property
    def ed25519_public_hex(self) -> str:
        """Ed25519 public key as lowercase ``0x`` hex (the ledger/relayer validator id)."""
        ...

    @property
    def evm_address(self) -> str:
        """Lowercase ``0x`` address of the secp256k1 key."""
        ...

    @property
    def secp256k1_public(self) -> bytes:
        """Compressed (33-byte SEC1) secp256k1 public key."""
        ...

    @property
    def info(self) -> ValidatorInfo:
        """Public identity, as it appears in a `ValidatorSet`."""
        ...

    def sign_attestation(self, message: bytes) -> bytes:
        """64-byte Ed25519 (RFC 8032) signature over `message`."""
        ...

    def sign_digest(self, digest: bytes) -> bytes:
        """65-byte ``r || s || v`` secp256k1 signature (v 27/28, low s) over a 32-byte digest."""
        ...

    def sign_der(self, digest: bytes) -> bytes:
        """Strict-DER low-S secp256k1 ECDSA (BIP-66) over a 32-byte digest, no sighash byte."""
        ...

    def sign_compact(self, digest: bytes) -> bytes:
        """64-byte ``r || s`` low-S secp256k1 ECDSA over a 32-byte digest."""
        ...


def send_frame(sock: socket.socket, document: dict[str, Any]) -> None:
    """Write one frame holding `document` (compact JSON).

    Raises:
        SignerUnavailable: the socket failed or timed out.
        SignerRefused: the document does not fit a frame.
    """
    body = json.dumps(document, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME_BYTES:
        raise SignerRefused(f"signer frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        sock.sendall(_HEADER.pack(len(body)) + body)
    except OSError as exc:  # includes timeouts and a peer that hung up
        raise SignerUnavailable(f"signer socket write failed: {exc}") from exc


def recv_frame(sock: socket.socket) -> dict[str, Any]:
    """Read one frame and return its JSON object.

    Raises:
        SignerUnavailable: the peer closed the connection, or the socket failed or timed out.
        SignerRefused: a length of 0 or above `MAX_FRAME_BYTES`, or a body that is not a UTF-8
            JSON object (the connection is then unusable: close it).
    """
    (length,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    if not 0 < length <= MAX_FRAME_BYTES:
        raise SignerRefused(f"signer frame length {length} out of range")
    try:
        document = json.loads(_recv_exactly(sock, length))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignerRefused("signer frame is not JSON") from exc
    if not isinstance(document, dict):
        raise SignerRefused("signer frame is not a JSON object")
    return document


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, missing = [], n
    while missing:
        try:
            chunk = sock.recv(min(missing, 65536))
        except OSError as exc:
            raise SignerUnavailable(f"signer socket read failed: {exc}") from exc
        if not chunk:
            raise SignerUnavailable("signer connection closed")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
