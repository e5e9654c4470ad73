"""The journal hash chain, its replay, and the supply invariants."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator

import pytest
from nacl.signing import SigningKey
from sqlalchemy import update

from ledger import store
from ledger.db import write_transaction
from ledger.errors import InvariantViolation, JournalCorrupt
from ledger.journal import ZERO_HASH, entry_hash, verify_chain
from ledger.testing import Harness, make_validator_set, open_harness, sign_rotation
from ledger.transactions import sign_burn, sign_transfer


@pytest.fixture()
def h(tmp_path) -> Iterator[Harness]:
    harness = open_harness(f"sqlite:///{tmp_path}/ledger.sqlite")
    alice, bob = SigningKey.generate(), SigningKey.generate()
    led = harness.ledger
    led.mint_batch([harness.certify(harness.lock(n, 100, bytes(alice.verify_key)))
                    for n in (1, 2, 3)])
    led.submit_transaction(sign_burn(alice, harness.network, 0, harness.native_asset, 30,
                                     harness.chain, "0x" + "22" * 20))
    led.submit_transaction(sign_transfer(alice, harness.network, 1, harness.native_asset, 20,
                                         bytes(bob.verify_key)))
    new_set, new_keys = make_validator_set(3, 2, epoch=2)
    led.rotate_validator_set(new_set, sign_rotation(harness.keys[:3], harness.network, 1, new_set))
    harness.validator_set, harness.keys = new_set, new_keys
    led.mint(harness.certify(harness.lock(4, 7, bytes(bob.verify_key))))
    yield harness
    led.close()


def test_journal_chain_verifies_and_records_every_kind(h):
    entries = h.ledger.journal(0, 1000)
    n = h.ledger.verify_journal()
    assert n == len(entries) == h.ledger.status().journal_seq
    assert entries[0].prev_hash == ZERO_HASH and entries[0].kind == "genesis"
    for prev, entry in itertools.pairwise(entries):
        assert entry.prev_hash == prev.hash
        assert entry.hash == hashlib.sha256(entry.prev_hash + entry.payload.encode()).digest()
    assert entries[-1].hash == h.ledger.status().journal_head
    kinds = [e.kind for e in entries]
    assert kinds[:6] == ["genesis", "bridge", "bridge", "asset", "asset", "asset"]
    assert kinds[6:] == ["mint"] * 3 + ["burn", "transfer", "validator_set", "mint"]
    mint = entries[6]
    assert f'"event_id":"{h.chain}/{h.bridge}/1"' in mint.payload
    assert '"signatures":[{' in mint.payload and '"validator":"0x' in mint.payload
    assert '"signature":"0x' in entries[9].payload and '"burn_id":"0x' in entries[9].payload


def test_journal_pages(h):
    assert [e.seq for e in h.ledger.journal(3, 2)] == [4, 5]
    assert h.ledger.journal(10**6) == []


@pytest.mark.parametrize("field", ["payload", "prev_hash", "hash", "kind"])
def test_tampered_journal_entry_is_detected(h, field):
    entry = h.ledger.journal(8, 1)[0]  # a mint
    tampered = {
        "payload": entry.payload.replace('"amount":"100"', '"amount":"900"'),
        "prev_hash": "0x" + "11" * 32,
        "hash": "0x" + "22" * 32,
        "kind": "burn",
    }[field]
    with write_transaction(h.ledger._engine) as conn:
        conn.execute(update(store.JOURNAL).where(store.JOURNAL.c.seq == entry.seq)
                     .values(**{field: tampered}))
    with pytest.raises(JournalCorrupt) as err:
        h.ledger.verify_journal()
    assert err.value.seq in (entry.seq, entry.seq + 1)


def test_rewritten_chain_is_caught_by_replay_against_tables(h):
    """An attacker who rewrites a payload AND recomputes every later hash still fails: the
    replayed balances differ from the stored ones (and the stored head differs)."""
    entries = h.ledger.journal(0, 1000)
    target = entries[7]  # second mint
    payload = target.payload.replace('"amount":"100"', '"amount":"900"')
    assert payload != target.payload
    head = target.prev_hash
    with write_transaction(h.ledger._engine) as conn:
        for e in entries[7:]:
            body = payload if e.seq == target.seq else e.payload
            digest = entry_hash(head, body.encode())
            conn.execute(update(store.JOURNAL).where(store.JOURNAL.c.seq == e.seq).values(
                payload=body, prev_hash="0x" + head.hex(), hash="0x" + digest.hex()))
            head = digest
        conn.execute(update(store.STATE).values(journal_head="0x" + head.hex()))
    with pytest.raises(JournalCorrupt, match="balances"):
        h.ledger.verify_journal()


def test_stored_balance_edit_is_caught_by_replay_and_invariants(h):
    with write_transaction(h.ledger._engine) as conn:
        conn.execute(update(store.BALANCES).values(amount=store.BALANCES.c.amount))  # no-op
        row = conn.execute(store.BALANCES.select().limit(1)).first()
        conn.execute(update(store.BALANCES)
                     .where(store.BALANCES.c.account == row.account)
                     .where(store.BALANCES.c.asset == row.asset).values(amount=row.amount + 1))
    with pytest.raises(JournalCorrupt):
        h.ledger.verify_journal()
    with pytest.raises(InvariantViolation, match=h.native_asset):
        h.ledger.check_invariants()


def test_supply_invariant_holds_after_mints_burns_transfers(h):
    report = {r.asset: r for r in h.ledger.check_invariants()}
    weth = report[h.native_asset]
    assert (weth.supply, weth.minted_total, weth.burned_total, weth.balances_total) == (
        277, 307, 30, 277)
    assert report[h.token_asset].supply == 0 and report[h.token_asset].holds


def test_supply_counter_edit_breaks_invariant(h):
    with write_transaction(h.ledger._engine) as conn:
        conn.execute(update(store.ASSETS).where(store.ASSETS.c.asset == h.native_asset)
                     .values(minted_total=308))
    with pytest.raises(InvariantViolation):
        h.ledger.check_invariants()


def test_verify_chain_rejects_a_gap():
    from ledger.types import JournalEntry

    payload = '{"kind":"bridge","seq":"2"}'
    entry = JournalEntry(2, "bridge", payload, ZERO_HASH, entry_hash(ZERO_HASH, payload.encode()))
    with pytest.raises(JournalCorrupt):
        verify_chain([entry])
