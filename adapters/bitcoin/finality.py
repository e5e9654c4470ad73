"""When a Bitcoin block or transaction counts as final: pure arithmetic, no network.

Owns: the confirmation rule and the mapping of (confirmations, mempool) to a `TxStatus`.
Must not talk to a node; the adapter fetches the facts and asks here.

Rule (Bitcoin's own counting): a transaction in the tip block has one confirmation. With
``confirmation_depth = d`` a block is final once it has ``d`` confirmations, so the finalized
height is ``head - d + 1`` (never below 0). Bitcoin has no finality gadget: this is
probabilistic, and a reorg deeper than ``d`` is an incident the watcher refuses to paper over.
"""

from __future__ import annotations

from adapters.base import TxStatus


def finalized_height(head: int, confirmation_depth: int) -> int:
    """Newest height with `confirmation_depth` confirmations when the tip is `head`.

    Raises:
        ValueError: a negative head or a depth below 1.
    """
    if head < 0 or confirmation_depth < 1:
        raise ValueError("head must be >= 0 and confirmation_depth >= 1")
    return max(head - confirmation_depth + 1, 0)


def confirmations(height: int, head: int) -> int:
    """Confirmations of a block at `height` under tip `head` (0 if above the tip)."""
    return max(head - height + 1, 0)


def tx_status(*, confirmations: int, in_mempool: bool, confirmation_depth: int) -> TxStatus:
    """`TxStatus` of a transaction from what the node says about it.

    Args:
        confirmations: the node's confirmation count (0: not in the best chain).
        in_mempool: whether the node's mempool holds it.
        confirmation_depth: confirmations needed for `FINAL`.
    """
    if confirmations >= confirmation_depth:
        return TxStatus.FINAL
    if confirmations > 0:
        return TxStatus.INCLUDED
    return TxStatus.PENDING if in_mempool else TxStatus.UNKNOWN
