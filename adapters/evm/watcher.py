"""Reorg-aware scanning of lock events: the EVM watcher's skeleton, used by relayer and validators.

Owns: finding a fork point by block-hash continuity (`find_fork_height`, `ReorgGuard`) and one
scan step (`scan`). Must not persist anything, sleep, or decide what a lock means: callers store
the cursor and events, and act on a reported fork height. Only the `ChainAdapter` protocol is
used (no web3), so the same logic serves any adapter with meaningful block hashes.

How a fork is found: the guard remembers ``(number, hash)`` of recently scanned blocks (the
cursors of earlier scans). On the next scan it walks them newest to oldest and asks the node for
the canonical hash at each height; the first one that still matches is on the canonical chain,
and everything above it may have changed. The *fork height* is that block's number + 1: the
lowest height whose previously scanned content can no longer be trusted. If none matches, the
reorg is deeper than the guard's memory and `ReorgDetected` is raised (a human should look).

Typical loop (one call per poll)::

    guard = ReorgGuard()
    cursor = load_cursor()                  # None on first start
    while True:
        upto = adapter.finalized().number   # or head().number to see unconfirmed locks
        events, cursor, fork = scan(adapter, cursor, upto, guard=guard)
        if fork is not None:
            forget_events_at_or_above(fork) # cursor now sits at fork - 1; next call rescans
        store(events, cursor)

SECURITY: scanning only up to `finalized()` makes a reorg below the cursor a protocol-level
event; a fork height reported there must be treated as an alarm, not routine.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from adapters.base import BlockRef, ChainAdapter, LockEvent
from adapters.errors import ReorgDetected, ValidationError

DEFAULT_WINDOW = 256


def find_fork_height(adapter: ChainAdapter, recent: Sequence[BlockRef]) -> int | None:
    """Locate a reorg among `recent` scanned blocks by hash continuity.

    Args:
        adapter: asked for `block_hash` at each remembered height, newest first.
        recent: previously scanned blocks (any order; hashes ``0x`` hex, any case).

    Returns:
        None if the newest remembered block is still canonical (or `recent` is empty);
        otherwise the fork height: 1 + the number of the newest block that is still canonical.

    Raises:
        ReorgDetected: no remembered block is canonical any more (the reorg is deeper than
            the memory); ``height`` is the oldest remembered number.
        RpcUnavailable, WrongChain: from the adapter.
    """
    ordered = sorted(recent, key=lambda b: b.number, reverse=True)
    for index, block in enumerate(ordered):
        canonical = adapter.block_hash(block.number)
        if canonical is not None and canonical.lower() == block.hash.lower():
            return None if index == 0 else block.number + 1
    if not ordered:
        return None
    raise ReorgDetected(
        f"no remembered block in [{ordered[-1].number}, {ordered[0].number}] is canonical",
        chain=adapter.chain,
        height=ordered[-1].number,
    )


class ReorgGuard:
    """Bounded memory of scanned blocks, newest last, for `find_fork_height`.

    Args:
        window: most blocks remembered (>= 1); the deepest reorg it can locate spans back to
            the oldest of them.
        blocks: initial memory, e.g. restored from storage.
    """

    def __init__(self, window: int = DEFAULT_WINDOW, blocks: Iterable[BlockRef] = ()) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._blocks: deque[BlockRef] = deque(maxlen=window)
        for block in sorted(blocks, key=lambda b: b.number):
            self.record(block)

    def recent(self) -> tuple[BlockRef, ...]:
        """Remembered blocks, oldest first (persist these to survive a restart)."""
        return tuple(self._blocks)

    def record(self, block: BlockRef) -> None:
        """Remember `block` as the newest; forgets any remembered block at or above its height."""
        while self._blocks and self._blocks[-1].number >= block.number:
            self._blocks.pop()
        self._blocks.append(block)

    def check(self, adapter: ChainAdapter) -> int | None:
        """`find_fork_height` over the memory; on a fork, forgets blocks at or above it.

        Returns/raises as `find_fork_height`.
        """
        fork = find_fork_height(adapter, self._blocks)
        if fork is not None:
            while self._blocks and self._blocks[-1].number >= fork:
                self._blocks.pop()
        return fork


class ScanResult(NamedTuple):
    """One scan step: new events, where the next scan continues, and a fork height if any."""

    events: list[LockEvent]
    cursor: BlockRef | None
    fork_height: int | None


def scan(
    adapter: ChainAdapter,
    cursor: BlockRef | None,
    upto: int,
    *,
    guard: ReorgGuard | None = None,
    start_block: int = 0,
) -> ScanResult:
    """Check the cursor is still canonical, then read lock events in ``(cursor, upto]``.

    Args:
        adapter: the chain.
        cursor: last block already scanned (events up to and including it were delivered),
            or None to start at `start_block`.
        upto: last block to scan now (normally ``adapter.finalized().number``); must be at or
            below the head.
        guard: memory of earlier cursors; without one only `cursor` itself is remembered, so
            any reorg that replaces it raises `ReorgDetected`. `cursor` and the new cursor are
            recorded in it.
        start_block: first block scanned when `cursor` is None.

    Returns:
        ``(events, new_cursor, None)`` normally: events in log order, ``new_cursor`` the block
        at `upto` (or `cursor` unchanged when there is nothing new, or when the block at `upto`
        changed during the scan; the next call retries).
        ``([], rewound_cursor, fork_height)`` on a reorg: the caller must forget events at or
        above ``fork_height``; ``rewound_cursor`` (the block at ``fork_height - 1``, or None)
        makes the next call rescan from ``fork_height``.

    Raises:
        ValidationError: `upto` is above the head.
        ReorgDetected: the reorg is deeper than the guard remembers.
        RpcUnavailable, WrongChain, MalformedLog: from the adapter.
    """
    guard = guard if guard is not None else ReorgGuard()
    if cursor is not None:
        guard.record(cursor)
        fork = guard.check(adapter)
        if fork is not None:
            remaining = guard.recent()
            return ScanResult([], remaining[-1] if remaining else None, fork)
    first = cursor.number + 1 if cursor is not None else start_block
    if first > upto:
        return ScanResult([], cursor, None)
    before = adapter.block_hash(upto)
    if before is None:
        raise ValidationError(f"scan upto={upto} is above the head of {adapter.chain}")
    events = adapter.lock_events(first, upto)
    # The hash at `upto` commits to every block below it: unchanged before and after the read
    # means the events came from one chain. Otherwise deliver nothing; the next call retries.
    if adapter.block_hash(upto) != before or any(
        e.block_number == upto and e.block_hash != before.lower() for e in events
    ):
        return ScanResult([], cursor, None)
    new_cursor = BlockRef(number=upto, hash=before.lower())
    guard.record(new_cursor)
    return ScanResult(events, new_cursor, None)
