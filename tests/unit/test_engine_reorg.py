"""`Engine.watch_chain` across reorgs: a fake chain over a real SQLite `relayer.store.Store`.

The fake chain has a canonical hash per height and lock events per block; a reorg replaces
every block from some height up (a new branch) and may re-include locks in other blocks.
Scanning starts at block 4, so block 3 (the parent of the first scanned block) anchors the trail.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pytest

from adapters.base import BlockRef, LockEvent
from adapters.errors import ReorgDetected
from relayer.engine import ChainPlan, Engine
from relayer.machine import TransferStatus
from relayer.store import Store

S = TransferStatus
CHAIN = "eip155:31337"
BRIDGE = "0x" + "b1" * 20
ETH = "0x" + "00" * 20
START = 4
WINDOW = 3  # max_block_range: anchor 3, then scans 4-6, 7-9, 10 leave a trail 3, 6, 9, 10


class FakeClock:
    def now(self) -> float:
        return 1_000.0


class FakeChain:
    """Just enough of `ChainAdapter` for `watch_chain`: hashes per height, lock nonces per block."""

    chain = CHAIN
    confirmation_depth = 2

    def __init__(self, height: int, locks: dict[int, list[int]]) -> None:
        self.hashes = [self._hash(n, "a") for n in range(height + 1)]
        self.locks = dict(locks)

    @staticmethod
    def _hash(number: int, branch: str) -> str:
        return "0x" + hashlib.sha256(f"{branch}/{number}".encode()).hexdigest()

    def reorg(self, from_height: int, new_height: int, locks: dict[int, list[int]]) -> None:
        """Replace every block from `from_height` up by a new branch up to `new_height`."""
        self.hashes = self.hashes[:from_height] + [
            self._hash(n, "b") for n in range(from_height, new_height + 1)]
        self.locks = {n: v for n, v in self.locks.items() if n < from_height} | locks

    def ref(self, number: int) -> BlockRef:
        return BlockRef(number, self.hashes[number])

    def head(self) -> BlockRef:
        return self.ref(len(self.hashes) - 1)

    def finalized(self, head: BlockRef | None = None) -> BlockRef:
        top = (head or self.head()).number
        return self.ref(max(0, top - self.confirmation_depth))

    def block_hash(self, number: int) -> str | None:
        return self.hashes[number] if 0 <= number < len(self.hashes) else None

    def lock_events(self, from_block: int, to_block: int) -> list[LockEvent]:
        return [LockEvent(CHAIN, BRIDGE, nonce, ETH, "0x" + "aa" * 20, 10**18,
                          bytes([nonce]) * 32, "0x" + f"{nonce:064x}", 0, n, self.hashes[n])
                for n in range(from_block, to_block + 1) for nonce in self.locks.get(n, [])]

    def validator_set(self) -> Any:
        raise AssertionError("watch_chain must not read the bridge's validator set")


class UntouchedLedger:
    def status(self) -> Any:
        raise AssertionError("watch_chain must not touch the ledger")

    def submit_mints(self, requests: list[Any]) -> list[Any]:
        raise AssertionError("watch_chain must not touch the ledger")

    def burns(self, after_seq: int, limit: int) -> list[Any]:
        raise AssertionError("watch_chain must not touch the ledger")


def make_engine(tmp_path: Any, chain: FakeChain) -> Engine:
    store = Store.open(f"sqlite:///{tmp_path}/relayer.sqlite", FakeClock())
    plan = ChainPlan(adapter=chain, start_block=START, max_block_range=WINDOW,  # type: ignore[arg-type]
                     assets={ETH: f"{CHAIN}/{ETH}"})
    return Engine(store, {CHAIN: plan}, UntouchedLedger(), "ferry-test", mint_request=None,
                  clock=FakeClock())


def scan_to_head(engine: Engine, chain: FakeChain) -> None:
    for _ in range(20):
        engine.watch_chain(CHAIN)
        cursor = engine.store.cursor(f"chain:{CHAIN}")
        if cursor is not None and cursor.number >= chain.head().number:
            return
    raise AssertionError("the watcher did not catch up with the head")


def lock_row(engine: Engine, nonce: int) -> Any:
    return engine.store.get(f"{CHAIN}/{BRIDGE}/{nonce}")


def reorgs_counted(engine: Engine) -> float:
    return engine.metrics.registry.get_sample_value(
        "ferry_relayer_reorgs_total", {"chain": CHAIN}) or 0.0


def snapshot(engine: Engine, nonces: list[int]) -> tuple[Any, ...]:
    store = engine.store
    rows = [lock_row(engine, n) for n in nonces]
    return (store.cursor(f"chain:{CHAIN}"), store.scanned_trail(CHAIN),
            store.counts_by_status(), [tuple(r) for r in rows],
            [[tuple(h) for h in store.history(r.id)] for r in rows])


def test_reorg_of_the_last_scanned_blocks_rewinds_to_the_newest_canonical_trail_block(
    tmp_path: Any,
) -> None:
    chain = FakeChain(10, locks={2: [1], 5: [2], 8: [3]})  # lock 1 is below START: ignored
    engine = make_engine(tmp_path, chain)
    scan_to_head(engine, chain)
    assert engine.store.scanned_trail(CHAIN) == [chain.ref(n) for n in (10, 9, 6, 3)]
    assert lock_row(engine, 1) is None
    assert reorgs_counted(engine) == 0

    # Blocks 7..10 replaced (the trail's 9 and 10 with them); lock 3 re-included at block 11.
    chain.reorg(from_height=7, new_height=11, locks={11: [3]})
    engine.watch_chain(CHAIN)

    assert reorgs_counted(engine) == 1
    dropped = lock_row(engine, 3)
    assert (dropped.status, dropped.reason) == (S.DROPPED.value, "reorg: fork below height 7")
    assert lock_row(engine, 2).status == S.OBSERVED.value  # at block 5, below the fork
    # Rewound to block 6 (the newest trail block still canonical), then scanned 7..9 again.
    assert engine.store.cursor(f"chain:{CHAIN}") == chain.ref(9)
    assert engine.store.scanned_trail(CHAIN) == [chain.ref(n) for n in (9, 6, 3)]

    assert engine.watch_chain(CHAIN) == 0  # 10..11: the same lock again, not a new transfer
    again = lock_row(engine, 3)
    assert (again.status, again.block_number, again.block_hash) == (
        S.OBSERVED.value, 11, chain.hashes[11])
    assert engine.store.cursor(f"chain:{CHAIN}") == chain.ref(11)
    assert [h.to_status for h in engine.store.history(again.id)] == [
        S.OBSERVED.value, S.DROPPED.value, S.OBSERVED.value]


def test_reorg_deeper_than_the_whole_trail_raises_and_changes_nothing(
    tmp_path: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    chain = FakeChain(10, locks={2: [1], 5: [2], 8: [3]})
    engine = make_engine(tmp_path, chain)
    scan_to_head(engine, chain)
    before = snapshot(engine, [2, 3])

    chain.reorg(from_height=3, new_height=12, locks={})  # the oldest trail block, 3, too
    with caplog.at_level(logging.ERROR, logger="relayer.engine"), \
            pytest.raises(ReorgDetected) as info:
        engine.watch_chain(CHAIN)

    assert (info.value.chain, info.value.height) == (CHAIN, 3)
    assert snapshot(engine, [2, 3]) == before
    assert reorgs_counted(engine) == 1
    assert any(r.levelno == logging.ERROR and f"chain={CHAIN}" in r.getMessage()
               for r in caplog.records)


def test_reorg_of_every_block_of_the_first_scan_rewinds_to_the_parent_of_start_block(
    tmp_path: Any,
) -> None:
    chain = FakeChain(5, locks={5: [1]})
    engine = make_engine(tmp_path, chain)
    assert engine.watch_chain(CHAIN) == 1  # blocks 4-5 in one window
    assert engine.store.scanned_trail(CHAIN) == [chain.ref(5), chain.ref(START - 1)]

    chain.reorg(from_height=START, new_height=6, locks={})  # every scanned block replaced
    engine.watch_chain(CHAIN)

    assert lock_row(engine, 1).status == S.DROPPED.value
    assert engine.store.cursor(f"chain:{CHAIN}") == chain.ref(6)  # rescanned 4-6 from block 3
    assert reorgs_counted(engine) == 1


def test_no_anchor_is_taken_while_start_block_is_above_the_head(tmp_path: Any) -> None:
    chain = FakeChain(START - 2, locks={})
    engine = make_engine(tmp_path, chain)
    assert engine.watch_chain(CHAIN) == 0
    assert engine.store.cursor(f"chain:{CHAIN}") is None
    chain.hashes.append(chain._hash(START - 1, "a"))  # the parent of START is mined
    assert engine.watch_chain(CHAIN) == 0
    assert engine.store.cursor(f"chain:{CHAIN}") == chain.ref(START - 1)
