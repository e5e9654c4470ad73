"""Cosmos-specific branches of Ferry's error tree (`adapters.errors`)::

    BridgeError
    +-- ChainError
        +-- SequenceMismatch     the escrow's account sequence moved: the signed bytes are dead
        +-- BroadcastRefused     CheckTx refused the transaction for another reason

Owns: those classes. Must not import cosmpy.
"""

from __future__ import annotations

from adapters.errors import ChainError


class SequenceMismatch(ChainError):
    """CheckTx code 32: the escrow's sequence is not the one signed (another tx consumed it)."""

    code = "sequence_mismatch"


class BroadcastRefused(ChainError):
    """CheckTx refused the transaction (fee, signature, funds, ...): a retry cannot fix it."""

    code = "broadcast_refused"
