"""When a Solana slot or transaction counts as final: pure arithmetic, no network.

Owns: the confirmation rule and the mapping to `TxStatus`. Must not talk to a node.

Solana's ``finalized`` commitment is a slot rooted by a supermajority (31+ confirmed slots on
top, in practice never rolled back); ``confirmed`` is optimistic confirmation (2/3 of stake voted)
and ``processed`` is the node's own latest. Ferry reads deposits at ``finalized`` only, and
``confirmation_depth`` (default 0) is extra slots an operator may want below that.
"""

from __future__ import annotations

from adapters.base import TxStatus


def finalized_slot(finalized: int, confirmation_depth: int) -> int:
    """The newest slot that counts as final: the node's finalized slot less `confirmation_depth`
    (>= 0). Raises ValueError for a negative argument."""
    if finalized < 0 or confirmation_depth < 0:
        raise ValueError("finalized and confirmation_depth must be >= 0")
    return max(finalized - confirmation_depth, 0)


def tx_status(*, slot: int | None, failed: bool, rooted: bool, finalized: int,
              confirmation_depth: int) -> TxStatus:
    """`TxStatus` of a sent transaction from its signature status.

    Args:
        slot: the slot it was processed in (``getSignatureStatuses`` ``slot``), None if the
            node does not know the signature.
        failed: its status carries an ``err``.
        rooted: its ``confirmationStatus`` is ``finalized`` (a processed slot below the
            finalized one may still be on an abandoned fork).
        finalized: the node's finalized slot.
        confirmation_depth: extra slots below it (config).

    Returns:
        UNKNOWN (not known); INCLUDED (processed, not yet final: success or failure may still
        be undone with its fork); FAILED (final, with an error: a durable nonce it used is
        consumed all the same); FINAL (final, succeeded).
    """
    if slot is None:
        return TxStatus.UNKNOWN
    if not rooted or slot > finalized_slot(finalized, confirmation_depth):
        return TxStatus.INCLUDED
    return TxStatus.FAILED if failed else TxStatus.FINAL
