"""The relayer store on a real SQLite file: recording, advancing, reorg rewind, attestations."""

import pytest

from adapters.base import BlockRef, LockEvent
from adapters.errors import IllegalTransition
from relayer.machine import TransferKind, TransferStatus
from relayer.store import Change, NewBurn, Store

S = TransferStatus
CHAIN = "eip155:31337"
BRIDGE = "0x" + "b1" * 20
ETH = "0x" + "00" * 20


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def now(self) -> float:
        return self.t


def lock(nonce: int, block: int, block_hash: str = "", amount: int = 10**18) -> LockEvent:
    return LockEvent(CHAIN, BRIDGE, nonce, ETH, "0x" + "aa" * 20, amount, bytes([nonce]) * 32,
                     "0x" + f"{nonce:064x}", 0, block, block_hash or f"0x{block:064x}")


@pytest.fixture
def store(tmp_path):
    return Store.open(f"sqlite:///{tmp_path}/relayer.sqlite", FakeClock())


def assets():
    return {ETH: f"{CHAIN}/{ETH}"}


def test_records_new_locks_once_and_moves_the_cursor(store):
    events = [lock(1, 5), lock(2, 6)]
    assert store.record_lock_events(CHAIN, events, BlockRef(6, "0x06"), assets()) == 2
    assert store.record_lock_events(CHAIN, events, BlockRef(6, "0x06"), assets()) == 0
    assert store.counts_by_status() == {S.OBSERVED.value: 2}
    assert store.cursor(f"chain:{CHAIN}") == BlockRef(6, "0x06")
    row = store.get(events[0].event_id)
    assert int(row.amount) == 10**18 and row.recipient == "0x" + "01" * 32


def test_wei_amounts_beyond_64_bits_round_trip_exactly(store):
    big = 2**200 + 7
    store.record_lock_events(CHAIN, [lock(1, 5, amount=big)], BlockRef(5, "0x05"), assets())
    assert int(store.get(lock(1, 5).event_id).amount) == big


def test_lock_of_unregistered_token_is_held_not_observed(store):
    store.record_lock_events(CHAIN, [lock(1, 5)], BlockRef(5, "0x05"), {})
    row = store.get(lock(1, 5).event_id)
    assert row.status == S.HELD.value and row.reason == "unknown_asset"


def test_advance_writes_status_and_history_and_refuses_illegal_moves(store):
    store.record_lock_events(CHAIN, [lock(1, 5)], BlockRef(5, "0x05"), assets())
    row = store.get(lock(1, 5).event_id)
    store.advance([Change(row.id, S.CONFIRMED, "2 confirmations")])
    with pytest.raises(IllegalTransition):
        store.advance([Change(row.id, S.SUBMITTED, "skipping attestation")])
    assert store.get(row.event_key).status == S.CONFIRMED.value
    assert [(h.from_status, h.to_status) for h in store.history(row.id)] == [
        (None, S.OBSERVED.value), (S.OBSERVED.value, S.CONFIRMED.value)]


def test_a_failing_change_rolls_back_the_whole_batch(store):
    store.record_lock_events(CHAIN, [lock(1, 5), lock(2, 5)], BlockRef(5, "0x05"), assets())
    a, b = store.get(lock(1, 5).event_id), store.get(lock(2, 5).event_id)
    with pytest.raises(IllegalTransition):
        store.advance([Change(a.id, S.CONFIRMED, "ok"), Change(b.id, S.EXECUTED, "illegal")])
    assert store.get(a.event_key).status == S.OBSERVED.value


def test_rewind_drops_observed_locks_above_the_fork_and_revives_them_when_seen_again(store):
    store.record_lock_events(CHAIN, [lock(1, 5, "0xold")], BlockRef(6, "0x06"), assets())
    assert store.rewind(CHAIN, BlockRef(4, "0x04"), "reorg") == 1
    assert store.get(lock(1, 5).event_id).status == S.DROPPED.value
    assert store.cursor(f"chain:{CHAIN}") == BlockRef(4, "0x04")
    store.record_lock_events(CHAIN, [lock(1, 7, "0xnew")], BlockRef(7, "0x07"), assets())
    row = store.get(lock(1, 5).event_id)
    assert (row.status, row.block_number, row.block_hash) == (S.OBSERVED.value, 7, "0xnew")


def test_rewind_never_touches_confirmed_transfers(store):
    store.record_lock_events(CHAIN, [lock(1, 5)], BlockRef(5, "0x05"), assets())
    row = store.get(lock(1, 5).event_id)
    store.advance([Change(row.id, S.CONFIRMED, "final")])
    assert store.rewind(CHAIN, BlockRef(1, "0x01"), "reorg") == 0
    assert store.get(row.event_key).status == S.CONFIRMED.value


def test_attestations_are_stored_once_per_validator_and_epoch(store):
    row = {"kind": "lock", "event_key": "k", "epoch": 1, "validator": "0xv1",
           "signature": "0xs", "message_hash": "0xm"}
    assert store.add_attestations([row, dict(row)]) == 1
    assert store.add_attestations([row]) == 0
    assert store.add_attestations([{**row, "epoch": 2}]) == 1
    assert store.attestations_for("lock", ["k"], 1) == {"k": [("0xv1", "0xs", "0xm")]}
    assert store.attestations_for("release", ["k"], 1) == {}


def test_burns_are_recorded_confirmed_once_with_the_ledger_cursor(store):
    burn = NewBurn("0x" + "11" * 32, 3, CHAIN, ETH, f"{CHAIN}/{ETH}", 5, "0x" + "22" * 32,
                   "0x" + "33" * 20)
    assert store.record_burns([burn], 3) == 1
    assert store.record_burns([burn], 3) == 0
    assert store.cursor("ledger:burns").number == 3
    rows = store.transfers(S.CONFIRMED, kind=TransferKind.BURN, chain=CHAIN)
    assert [r.event_key for r in rows] == [burn.burn_id]
