"""When a Cosmos SDK block or transaction counts as final: pure arithmetic, no network.

Owns: the confirmation rule and the mapping to `TxStatus`. Must not talk to a node.

CometBFT commits a block with 2/3+ of the voting power: a committed block is final (no reorgs).
``confirmation_depth`` is still honoured (an operator may want more): with depth ``d`` the
finalized height is ``head - d + 1`` (``d = 1``: the latest committed block).
"""

from __future__ import annotations

from adapters.base import TxStatus


def finalized_height(head: int, confirmation_depth: int) -> int:
    """Newest final height under `head` (>= 0). Raises ValueError for a depth below 1."""
    if head < 0 or confirmation_depth < 1:
        raise ValueError("head must be >= 0 and confirmation_depth >= 1")
    return max(head - confirmation_depth + 1, 0)


def tx_status(*, included_at: int | None, code: int | None, head: int,
              confirmation_depth: int) -> TxStatus:
    """`TxStatus` of a broadcast transaction from its inclusion height and result code."""
    if included_at is None:
        return TxStatus.UNKNOWN
    if code:
        return TxStatus.FAILED
    if included_at <= finalized_height(head, confirmation_depth):
        return TxStatus.FINAL
    return TxStatus.INCLUDED
