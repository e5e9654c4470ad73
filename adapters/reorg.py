"""Chain-neutral reorg detection: finding a fork point by block-hash continuity.

Owns: `fork_point`, the one walk over remembered ``(number, hash)`` pairs
that the relayer engine (and any watcher) uses to locate a reorg. Must not persist anything,
sleep, guess, or import web3 or any `adapters.<chain>` package: only the `ChainAdapter` protocol
(`block_hash`) is used, so it serves any adapter with meaningful block hashes.

How a fork is found: the caller remembers ``(number, hash)`` of recently scanned blocks (its
cursors). The walk goes newest to oldest and asks the node for the canonical hash at each
height; the first one that still matches is on the canonical chain, and everything above it
may have changed. The *fork point* is that block: everything above it is rescanned. If none
matches, the reorg is deeper than the memory and `ReorgDetected` is raised (a human should
look).

SECURITY: never fall back to a guessed fork point (the finalized block, say) when nothing
remembered is canonical: a reorg that deep is an alarm, and rewinding to a guess could keep
locks from a chain that no longer exists.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.base import BlockRef, ChainAdapter
from adapters.errors import ReorgDetected


def fork_point(adapter: ChainAdapter, recent: Sequence[BlockRef]) -> BlockRef | None:
    """The newest remembered block still canonical, when the newest remembered one is not.

    Args:
        adapter: asked for `block_hash` at each remembered height, newest first.
        recent: previously scanned blocks (any order; hashes ``0x`` hex, any case).

    Returns:
        None if the newest remembered block is still canonical (or `recent` is empty);
        otherwise the newest remembered block that is still canonical (as remembered).

    Raises:
        ReorgDetected: no remembered block is canonical any more (the reorg is deeper than
            the memory); ``height`` is the oldest remembered number.
        RpcUnavailable, WrongChain: from the adapter.
    """
    ordered = sorted(recent, key=lambda b: b.number, reverse=True)
    for index, block in enumerate(ordered):
        canonical = adapter.block_hash(block.number)
        if canonical is not None and canonical.lower() == block.hash.lower():
            return None if index == 0 else block
    if not ordered:
        return None
    raise ReorgDetected(
        f"no remembered block in [{ordered[-1].number}, {ordered[0].number}] is canonical",
        chain=adapter.chain,
        height=ordered[-1].number,
    )
