"""Solana-specific branches of Ferry's error tree (`adapters.errors`)::

    BridgeError
    +-- ChainError
        +-- NonceConsumed        the release's durable nonce value is no longer the account's:
        |                        the signed bytes can never land (re-plan at the new value)
        +-- BroadcastRefused     the node refused the transaction for another reason
        +-- SolanaRpcError       the node answered with an error this client cannot act on

Owns: those classes. Must not import solana-py or solders.
"""

from __future__ import annotations

from adapters.errors import ChainError


class NonceConsumed(ChainError):
    """``BlockhashNotFound`` for a durable-nonce transaction that never landed: its nonce value
    was consumed by another transaction (or advanced), so these bytes are dead."""

    code = "nonce_consumed"


class BroadcastRefused(ChainError):
    """``sendTransaction`` refused the transaction (preflight simulation error, signature,
    funds, ...): sending the same bytes again cannot fix it.

    Attributes:
        reason: ``already_processed`` (the node has that signature), ``blockhash_not_found``
            (the blockhash or durable nonce value is not current) or ``refused`` (anything
            else); `adapters.solana.adapter.SolanaAdapter.broadcast` acts on it.
    """

    code = "broadcast_refused"

    def __init__(self, message: str = "", *, chain: str = "?", reason: str = "refused") -> None:
        self.reason = reason
        super().__init__(message, chain=chain)


class SolanaRpcError(ChainError):
    """The node answered a read with a JSON-RPC error (not an outage): retrying is pointless."""

    code = "solana_rpc_error"
