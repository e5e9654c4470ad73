"""EVM-specific leaves of Ferry's error tree (the tree itself lives in `adapters.errors`).

Owns: the two `ChainError` subclasses the EVM adapter needs beyond the shared tree, and the
one function that translates a JSON-RPC error object into the tree. Must not import web3.

    ChainError                       (adapters.errors)
    ├── RpcError                     the node answered with a JSON-RPC error we do not retry
    └── MalformedLog                 the node returned a log that is not a well-formed `Locked`
                                     log of the configured bridge (never trusted, never skipped)

Retryable answers (rate limits) become `RpcUnavailable`; nonce races ("nonce too low",
"already known", "replacement transaction underpriced") become `NonceTooLow`.
"""

from __future__ import annotations

from typing import Any

from adapters.errors import ChainError, NonceTooLow, RpcUnavailable


class RpcError(ChainError):
    """A JSON-RPC error object the node returned (``{"code": int, "message": str}``)."""

    code = "rpc_error"

    def __init__(self, message: str = "", *, chain: str = "?", rpc_code: int | None = None) -> None:
        self.rpc_code = rpc_code
        self.rpc_message = message
        super().__init__(f"rpc error {rpc_code}: {message}", chain=chain)


class MalformedLog(ChainError):
    """SECURITY: a log that fails the bridge/topic/layout checks. The scan of that range fails
    rather than skipping it, so a lying or broken RPC halts the watcher instead of losing or
    inventing a lock."""

    code = "malformed_log"


# Lower-cased substrings of node messages (geth, erigon, anvil, reth, bsc) meaning the sender
# nonce was already used: by this very transaction ("already known") or by another one.
_NONCE_MESSAGES = (
    "nonce too low",
    "already known",
    "known transaction",
    "already imported",
    "replacement transaction underpriced",
    "nonce is too low",
)
# Codes/messages meaning "come back later": rate limits and overload (EIP-1474 -32005).
_RETRY_CODES = (-32005, 429)
_RETRY_MESSAGES = ("rate limit", "too many requests", "limit exceeded", "header not found")


def translate_rpc_error(error: Any, *, chain: str, method: str) -> ChainError:
    """Map a JSON-RPC ``error`` member onto the error tree.

    Args:
        error: the ``error`` member of a JSON-RPC 2.0 response (normally ``{"code", "message"}``;
            anything else is treated as an opaque message).
        chain: CAIP-2 id, carried by the returned error.
        method: the JSON-RPC method, for the message.

    Returns:
        `NonceTooLow`, `RpcUnavailable` (rate limits) or `RpcError`; the caller raises it.
    """
    if isinstance(error, dict):
        raw_code = error.get("code")
        rpc_code = raw_code if isinstance(raw_code, int) else None
        message = str(error.get("message", ""))
    else:
        rpc_code, message = None, str(error)
    lowered = message.lower()
    if any(text in lowered for text in _NONCE_MESSAGES):
        return NonceTooLow(f"{method}: {message}", chain=chain)
    if rpc_code in _RETRY_CODES or any(text in lowered for text in _RETRY_MESSAGES):
        return RpcUnavailable(f"{method}: {message}", chain=chain)
    return RpcError(f"{method}: {message}", chain=chain, rpc_code=rpc_code)
