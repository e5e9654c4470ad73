"""Behaviour every `ChainAdapter` must show against a real node, stated once.

Owns: `ChainAdapterConformance`, a mixin of tests. Each chain family subclasses it in its own
integration test module (``class TestEvmConformance(ChainAdapterConformance)``) and overrides
two fixtures:

- ``adapter``: a ready `ChainAdapter` for a chain whose bridge has seen no locks yet;
- ``emit_locks``: a callable ``emit_locks(count)`` that makes the bridge emit `count` lock
  events in new blocks and returns when they are at the head.

Must not name a chain, import a chain library, or sleep: only the protocol is exercised.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adapters.base import BlockRef, ChainAdapter

EmitLocks = Callable[[int], None]


class ChainAdapterConformance:
    """Tests any `ChainAdapter` must pass. Not collected itself (no ``Test`` prefix)."""

    @pytest.fixture
    def adapter(self) -> ChainAdapter:
        raise NotImplementedError("subclass must provide an `adapter` fixture")

    @pytest.fixture
    def emit_locks(self) -> EmitLocks:
        raise NotImplementedError("subclass must provide an `emit_locks` fixture")

    def test_implements_the_protocol(self, adapter: ChainAdapter) -> None:
        assert isinstance(adapter, ChainAdapter)
        assert adapter.chain and adapter.confirmation_depth >= 0

    def test_head_is_at_or_above_finalized(self, adapter: ChainAdapter) -> None:
        finalized = adapter.finalized()
        head = adapter.head()
        assert head.number >= finalized.number >= 0

    def test_block_hash_of_head_matches_head(self, adapter: ChainAdapter) -> None:
        head = adapter.head()
        assert isinstance(head, BlockRef)
        assert adapter.block_hash(head.number) == head.hash

    def test_finalized_from_a_head_just_read_equals_finalized(
        self, adapter: ChainAdapter
    ) -> None:
        head = adapter.head()
        assert adapter.finalized(head) == adapter.finalized()

    def test_block_hash_of_finalized_matches_finalized(self, adapter: ChainAdapter) -> None:
        finalized = adapter.finalized()
        assert adapter.block_hash(finalized.number) == finalized.hash

    def test_block_hash_above_head_is_none(self, adapter: ChainAdapter) -> None:
        assert adapter.block_hash(adapter.head().number + 1000) is None

    def test_events_in_range_are_ordered_and_inside_the_range(
        self, adapter: ChainAdapter, emit_locks: EmitLocks
    ) -> None:
        first = adapter.head().number + 1
        emit_locks(3)
        last = adapter.head().number
        events = adapter.lock_events(first, last)
        assert len(events) == 3
        positions = [(e.block_number, e.log_index) for e in events]
        assert positions == sorted(positions) and len(set(positions)) == 3
        assert all(first <= e.block_number <= last and e.chain == adapter.chain for e in events)
        nonces = [e.nonce for e in events]
        assert nonces == sorted(nonces) and len(set(nonces)) == 3
        assert len({e.event_id for e in events}) == 3
        for e in events:
            assert adapter.block_hash(e.block_number) == e.block_hash

    def test_events_of_a_range_without_locks_are_empty(
        self, adapter: ChainAdapter, emit_locks: EmitLocks
    ) -> None:
        emit_locks(1)
        head = adapter.head().number
        assert adapter.lock_events(0, 0) == []  # genesis holds no lock
        assert adapter.lock_events(head, head - 1) == []  # empty range
