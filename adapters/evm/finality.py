"""When an EVM block or transaction counts as final: pure arithmetic, no network.

Owns: the confirmation-depth rule and the mapping of (receipt, mempool, finalized height) to a
`TxStatus`. Must not talk to a node; the adapter fetches the facts and asks here.

Rule: with depth ``d`` the finalized height is ``max(head - d, 0)``; with the ``finalized``
block tag (post-merge Ethereum, Casper FFG) it is whatever the node reports for that tag. A block
or transaction is final when its height is at or below the finalized height, so with ``d = 2``
a transaction mined at the head becomes final after two more blocks.
"""

from __future__ import annotations

from adapters.base import TxStatus


def finalized_height(head: int, confirmation_depth: int) -> int:
    """Newest final height for a chain whose head is `head`.

    Args:
        head: latest block number (>= 0).
        confirmation_depth: blocks that must be built on top (>= 0).

    Returns:
        ``max(head - confirmation_depth, 0)``.

    Raises:
        ValueError: a negative argument.
    """
    if head < 0 or confirmation_depth < 0:
        raise ValueError("head and confirmation_depth must be >= 0")
    return max(head - confirmation_depth, 0)


def tx_status(
    *,
    receipt_status: int | None,
    included_in: int | None,
    final_height: int,
    in_mempool: bool,
) -> TxStatus:
    """Classify a transaction from what the node reports about it.

    Args:
        receipt_status: the receipt's ``status`` (1 success, 0 revert; EIP-658), or None when
            there is no receipt (not in a canonical block).
        included_in: the receipt's block number, or None without a receipt.
        final_height: the chain's finalized height right now.
        in_mempool: whether ``eth_getTransactionByHash`` still knows the transaction.

    Returns:
        FAILED as soon as a revert is included; FINAL when a success is at or below
        `final_height`; INCLUDED above it; PENDING when only the mempool knows it; else UNKNOWN.
    """
    match (receipt_status, included_in):
        case (0, int()):
            return TxStatus.FAILED
        case (1, int() as height) if height <= final_height:
            return TxStatus.FINAL
        case (1, int()):
            return TxStatus.INCLUDED
        case (None, None) if in_mempool:
            return TxStatus.PENDING
        case (None, None):
            return TxStatus.UNKNOWN
        case _:
            raise ValueError(f"inconsistent receipt: status={receipt_status} block={included_in}")
