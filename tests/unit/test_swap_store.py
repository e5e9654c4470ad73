"""The swap store on a real SQLite file: idempotent creation, the single status writer, leg
observations, heights vs times, and migration 0003 over a 0002 relayer database."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import replace
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from adapters.errors import IllegalTransition, ValidationError
from htlc.errors import BadPreimage
from htlc.hashlock import hashlock_of
from htlc.machine import TRANSITIONS, Action, LegStatus, Now, SwapStatus, next_action
from htlc.timelock import BlockHeight, UnixTime
from relayer import swap_store as swap_store_module
from relayer.db import MIGRATIONS, make_engine, migrate
from relayer.models import Swap, SwapHistory
from relayer.store import Store
from relayer.swap_store import SwapLegTerms, SwapRecord, SwapStore, SwapTerms

S = SwapStatus
L = LegStatus
BTC = "bip122:000000000019d6689c085ae165831e93"
ETH = "eip155:1"
ZERO = "0x" + "00" * 20
T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


def secret(n: int) -> bytes:
    return bytes([n]) * 32


def terms(n: int = 1, **overrides: object) -> SwapTerms:
    """BTC (user, heights) -> ETH (relayer, unix times); `n` picks the secret."""
    base: dict[str, object] = {
        "pair": "BTC/ETH",
        "initiator": SwapLegTerms(BTC, "btc", 150_000, "02" + "aa" * 32, "02" + "bb" * 32,
                               BlockHeight(800_144)),
        "participant": SwapLegTerms(ETH, ZERO, 29_910_000_000_000_000, "0x" + "cc" * 20,
                                 "0x" + "dd" * 20, UnixTime(1_700_043_200)),
        "hashlock": hashlock_of(secret(n)), "lock_deadline": UnixTime(1_700_003_600),
        "rate_num": 200_000_000_000, "rate_den": 1, "fee": 90_000_000_000_000}
    base.update(overrides)
    return SwapTerms(**base)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path, clock) -> SwapStore:
    return SwapStore.open(f"sqlite:///{tmp_path}/relayer.sqlite", clock)


# ------------------------------------------------------------------ create and the id
def test_create_is_idempotent_by_id(store, clock):
    first = store.create(terms())
    clock.t += 10
    again = store.create(terms())
    assert again == first and again.status == S.OFFERED
    assert store.get(first.id) == first
    assert len(store.history(first.id)) == 1


def test_create_returns_the_swap_as_it_now_is_when_already_advanced(store):
    rec = store.create(terms())
    store.advance(rec, S.INITIATOR_LOCKED, "user lock confirmed")
    assert store.create(terms()).status == S.INITIATOR_LOCKED


def test_swap_id_is_sha256_of_the_canonical_terms_and_survives_storage(store):
    t = terms()
    doc = json.loads(t.canonical())
    assert t.id == "0x" + hashlib.sha256(t.canonical()).hexdigest() and len(t.id) == 66
    assert doc["initiator"]["expiry"] == {"kind": "height", "value": "800144"}
    assert doc["participant"]["amount"] == "29910000000000000"
    rec = store.create(t)
    assert rec.id == t.id and rec.terms == t and rec.terms.id == rec.id


@pytest.mark.parametrize("change", [
    {"pair": "BTC/WETH"},
    {"fee": 90_000_000_000_001},
    {"rate_den": 2},
    {"lock_deadline": UnixTime(1_700_003_601)},
    {"initiator": replace(terms().initiator, amount=150_001)},
    {"initiator": replace(terms().initiator, expiry=BlockHeight(800_145))},
    {"participant": replace(terms().participant, recipient="0x" + "ee" * 20)},
    {"participant": replace(terms().participant, asset="0x" + "11" * 20)},
])
def test_every_term_changes_the_id(change):
    assert terms(**change).id != terms().id


def test_a_height_and_a_time_of_the_same_value_give_different_ids():
    a = terms(initiator=replace(terms().initiator, expiry=BlockHeight(1_700_050_000)))
    b = terms(initiator=replace(terms().initiator, expiry=UnixTime(1_700_050_000)))
    assert a.id != b.id


def test_a_second_swap_on_the_same_hashlock_is_refused(store):
    store.create(terms(1))
    with pytest.raises(ValidationError, match="already used by another swap"):
        store.create(terms(1, fee=1))
    assert store.open_swaps() == [store.get(terms(1).id)]


@pytest.mark.parametrize("change,message", [
    ({"lock_deadline": BlockHeight(10)}, "participant leg's clock"),
    ({"lock_deadline": UnixTime(1_700_043_201)}, "after the participant leg's expiry"),
    ({"hashlock": b"\x00" * 31}, "32 bytes"),
    ({"pair": ""}, "pair"),
    ({"rate_den": 0}, "rate_den"),
    ({"fee": -1}, "fee"),
    ({"initiator": "not a leg"}, "initiator must be SwapLegTerms"),
])
def test_bad_terms_are_refused(change, message):
    with pytest.raises(ValidationError, match=message):
        terms(**change)


@pytest.mark.parametrize("field,value,message", [
    ("chain", "bitcoin", "CAIP-2"),
    ("amount", 0, "amount"),
    ("amount", 2**256, "amount"),
    ("sender", "", "sender"),
    ("recipient", "x" * 141, "recipient"),
    ("expiry", 800_144, "BlockHeight or a UnixTime"),
    ("expiry", BlockHeight(2**63), "out of range"),
])
def test_bad_leg_terms_are_refused(field, value, message):
    with pytest.raises(ValidationError, match=message):
        replace(terms().initiator, **{field: value})


def test_wei_amounts_beyond_64_bits_round_trip_exactly(store):
    big = 2**200 + 7
    rec = store.create(terms(participant=replace(terms().participant, amount=big)))
    assert store.get(rec.id).participant.amount == big


# ------------------------------------------------------------------ advance
PATH = {  # legal moves that bring a new swap to each status
    S.OFFERED: [],
    S.INITIATOR_LOCKED: [S.INITIATOR_LOCKED],
    S.PARTICIPANT_LOCKED: [S.INITIATOR_LOCKED, S.PARTICIPANT_LOCKED],
    S.REDEEMED: [S.INITIATOR_LOCKED, S.PARTICIPANT_LOCKED, S.REDEEMED],
    S.REFUNDED: [S.REFUNDED],
    S.EXPIRED: [S.EXPIRED],
}


def at_status(store: SwapStore, status: SwapStatus, n: int = 1) -> SwapRecord:
    rec = store.create(terms(n))
    for to in PATH[status]:
        rec = store.advance(rec, to, f"to {to}")
    assert rec.status == status
    return rec


@pytest.mark.parametrize("frm,to", list(itertools.product(SwapStatus, SwapStatus)))
def test_advance_follows_transitions_and_an_illegal_move_changes_nothing(store, clock, frm, to):
    rec = at_status(store, frm)
    before, history = store.get(rec.id), store.history(rec.id)
    clock.t += 60
    if to in TRANSITIONS[frm]:
        moved = store.advance(rec, to, "legal")
        assert (moved.status, moved.reason, moved.updated_at) == (to, "legal", clock.t)
        assert store.history(rec.id)[-1] == swap_store_module.StatusChange(frm, to, "legal",
                                                                            clock.t)
    else:
        with pytest.raises(IllegalTransition):
            store.advance(rec, to, "illegal", participant_lock_tx="ab")
        with pytest.raises(IllegalTransition):
            store.advance(rec.id, to, "illegal by id")
        assert store.get(rec.id) == before and store.history(rec.id) == history


def test_history_records_each_change_with_reason_and_time(store, clock):
    rec = store.create(terms())
    clock.t += 5
    rec = store.advance(rec, S.INITIATOR_LOCKED, "user lock at depth 6")
    clock.t += 5
    store.advance(rec.id, S.PARTICIPANT_LOCKED, "lock intent stored")
    assert [(h.from_status, h.to_status, h.reason, h.at) for h in store.history(rec.id)] == [
        (None, S.OFFERED, "swap offered", T0),
        (S.OFFERED, S.INITIATOR_LOCKED, "user lock at depth 6", T0 + 5),
        (S.INITIATOR_LOCKED, S.PARTICIPANT_LOCKED, "lock intent stored", T0 + 10)]


def test_advance_from_a_stale_record_raises_even_if_the_move_is_legal_now(tmp_path, clock):
    url = f"sqlite:///{tmp_path}/relayer.sqlite"
    worker_a, worker_b = SwapStore.open(url, clock), SwapStore.open(url, clock)
    seen_by_a = worker_a.create(terms())
    worker_b.advance(seen_by_a.id, S.INITIATOR_LOCKED, "b saw the user's lock")
    # OFFERED -> REFUNDED and INITIATOR_LOCKED -> REFUNDED are both legal; A decided on OFFERED.
    with pytest.raises(IllegalTransition, match="moved concurrently"):
        worker_a.advance(seen_by_a, S.REFUNDED, "a saw a refund")
    assert worker_a.get(seen_by_a.id).status == S.INITIATOR_LOCKED
    assert len(worker_a.history(seen_by_a.id)) == 2


def test_the_status_write_is_conditional_on_the_status_read(store, monkeypatch):
    """A writer that read a status another transaction changed (PostgreSQL READ COMMITTED)
    matches no row and rolls back."""
    rec = store.create(terms())
    store.advance(rec, S.INITIATOR_LOCKED, "moved by another worker")
    real_select = swap_store_module._select
    calls = []

    def stale_first_read(conn, swap_id):
        row = real_select(conn, swap_id)
        calls.append(swap_id)
        if len(calls) > 1:
            return row
        return SimpleNamespace(**{**row._asdict(), "status": S.OFFERED.value})

    monkeypatch.setattr(swap_store_module, "_select", stale_first_read)
    with pytest.raises(IllegalTransition, match="moved concurrently"):
        store.advance(rec.id, S.EXPIRED, "offer expired")
    monkeypatch.undo()
    assert store.get(rec.id).status == S.INITIATOR_LOCKED
    assert len(store.history(rec.id)) == 2


def test_advance_of_an_unknown_swap_raises(store):
    with pytest.raises(IllegalTransition, match="does not exist"):
        store.advance("0x" + "00" * 32, S.INITIATOR_LOCKED, "?")


def test_advance_persists_the_lock_intent_with_the_status(store):
    rec = at_status(store, S.INITIATOR_LOCKED)
    moved = store.advance(rec, S.PARTICIPANT_LOCKED, "signed lock stored before broadcast",
                          participant_lock_tx="02000000ff", participant_lock_ref="0x" + "ab" * 32)
    assert (moved.participant.lock_tx, moved.participant.lock_ref) == ("02000000ff",
                                                                        "0x" + "ab" * 32)
    assert moved.status == S.PARTICIPANT_LOCKED


def test_a_bad_field_refuses_a_legal_move_and_writes_nothing(store):
    rec = at_status(store, S.PARTICIPANT_LOCKED)
    with pytest.raises(BadPreimage):
        store.advance(rec, S.REDEEMED, "redeemed", secret=secret(9))
    with pytest.raises(TypeError, match="advance only"):
        store.advance(rec, S.REDEEMED, "redeemed", status=S.REFUNDED)  # type: ignore[call-arg]
    assert store.get(rec.id) == rec and len(store.history(rec.id)) == 3


# ------------------------------------------------------------------ leg observations
def test_update_legs_records_observations_and_never_status(store, clock):
    rec = store.create(terms())
    clock.t += 7
    out = store.update_legs(rec.id, initiator_status=L.CONFIRMED,
                            initiator_lock_ref="ab" * 32 + ":0", initiator_lock_tx="ab" * 32)
    assert (out.status, out.reason, out.initiator.status) == (S.OFFERED, "swap offered",
                                                              L.CONFIRMED)
    assert out.initiator.lock_ref == "ab" * 32 + ":0" and out.updated_at == T0 + 7
    assert len(store.history(rec.id)) == 1
    back = store.update_legs(rec.id, initiator_status=L.NONE, initiator_lock_ref=None)
    assert (back.initiator.status, back.initiator.lock_ref) == (L.NONE, None)  # a reorg


@pytest.mark.parametrize("fields,error,message", [
    ({"status": S.REDEEMED}, TypeError, "advance only"),
    ({"reason": "x"}, TypeError, "advance only"),
    ({"initiator_amount": 1}, TypeError, "unknown swap fields: initiator_amount"),
    ({"initiator_status": "leg.gone"}, ValidationError, "LegStatus"),
    ({"participant_lock_ref": "x" * 201}, ValidationError, "200 characters"),
    ({"participant_lock_tx": ""}, ValidationError, "non-empty"),
    ({"user_refund": "0xzz"}, ValidationError, "raw transaction hex"),
    ({"user_refund": "abc"}, ValidationError, "raw transaction hex"),
    ({"secret": secret(2)}, BadPreimage, "not the hashlock"),
    ({"secret": secret(1)[:31]}, BadPreimage, "exactly 32 bytes"),
    ({"secret": "0x" + "01" * 32}, ValidationError, "32 bytes"),
])
def test_update_legs_refuses_bad_fields_and_writes_nothing(store, fields, error, message):
    rec = store.create(terms())
    with pytest.raises(error, match=message):
        store.update_legs(rec.id, **fields)
    assert store.get(rec.id) == rec


def test_update_legs_of_an_unknown_swap_raises(store):
    with pytest.raises(ValidationError, match="no swap"):
        store.update_legs("0x" + "00" * 32, initiator_status=L.LOCKED)


def test_secret_is_stored_once_learnt_never_cleared_and_never_in_repr(store):
    rec = at_status(store, S.PARTICIPANT_LOCKED)
    assert not store.legs(rec).secret_known
    rec = store.update_legs(rec.id, secret=secret(1), participant_status=L.REDEEMED)
    assert rec.secret == secret(1) and store.legs(rec).secret_known
    assert secret(1).hex() not in repr(rec)
    with pytest.raises(ValidationError, match="never cleared"):
        store.update_legs(rec.id, secret=None)  # type: ignore[typeddict-item]
    assert store.get(rec.id).secret == secret(1)


def test_user_refund_is_held_once_stored(store):
    rec = store.create(terms())
    assert not store.legs(rec).user_refund_held
    assert store.legs(rec, anyone_can_refund=True).user_refund_held
    rec = store.update_legs(rec.id, user_refund="0200000001" + "00" * 40)
    assert store.legs(rec).user_refund_held and "0200000001" not in repr(rec)


# ------------------------------------------------------------------ legs(): heights vs times
def test_legs_keep_a_bitcoin_height_a_height_and_an_evm_time_a_time(store):
    rec = store.get(store.create(terms()).id)
    legs = store.legs(rec)
    assert type(legs.initiator_expiry) is BlockHeight and legs.initiator_expiry.value == 800_144
    assert type(legs.participant_expiry) is UnixTime
    assert legs.participant_expiry.value == 1_700_043_200
    assert type(legs.lock_deadline) is UnixTime and legs.lock_deadline.value == 1_700_003_600
    assert (legs.status, legs.initiator, legs.participant) == (S.OFFERED, L.NONE, L.NONE)
    now = Now(initiator=BlockHeight(800_000), participant=UnixTime(1_700_000_100))
    assert next_action(legs, now) == Action.WAIT_INITIATOR_LOCK
    with pytest.raises(TypeError):
        next_action(legs, Now(initiator=UnixTime(800_000), participant=UnixTime(1)))


def test_legs_of_the_reverse_direction_keep_their_kinds(store):
    """ETH user (times) -> BTC relayer (heights): the lock deadline is a height too."""
    t = terms(
        pair="ETH/BTC",
        initiator=SwapLegTerms(ETH, ZERO, 10**16, "0x" + "cc" * 20, "0x" + "dd" * 20,
                               UnixTime(1_700_086_400)),
        participant=SwapLegTerms(BTC, "btc", 50_000, "02" + "aa" * 32, "02" + "bb" * 32,
                                 BlockHeight(800_072)),
        lock_deadline=BlockHeight(800_006))
    legs = store.legs(store.get(store.create(t).id))
    assert type(legs.initiator_expiry) is UnixTime and legs.initiator_expiry.value == 1_700_086_400
    assert type(legs.participant_expiry) is BlockHeight and legs.participant_expiry.value == 800_072
    assert type(legs.lock_deadline) is BlockHeight and legs.lock_deadline.value == 800_006


def test_a_corrupt_expiry_kind_is_refused_by_the_schema(store):
    rec = store.create(terms())
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE swaps SET initiator_expiry_kind = 'block' WHERE id = :id"),
                     {"id": rec.id})


# ------------------------------------------------------------------ open swaps
def test_open_swaps_skip_terminal_ones_page_by_id_and_filter_by_chain(store):
    live = {at_status(store, s, n).id for n, s in enumerate(SwapStatus, start=1)
            if s in (S.OFFERED, S.INITIATOR_LOCKED, S.PARTICIPANT_LOCKED)}
    assert {r.id for r in store.open_swaps()} == live and len(live) == 3
    first = store.open_swaps(limit=2)
    rest = store.open_swaps(limit=2, after=first[-1].id)
    assert [r.id for r in first + rest] == sorted(live)
    assert {r.id for r in store.open_swaps(chain=BTC)} == live
    assert store.open_swaps(chain="eip155:56") == []


# ------------------------------------------------------------------ schema and migration
def _alembic(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def test_migration_upgrades_a_0002_relayer_database_in_place(tmp_path, clock):
    url = f"sqlite:///{tmp_path}/relayer.sqlite"
    command.upgrade(_alembic(url), "0002")
    engine = make_engine(url)
    with engine.begin() as conn:
        assert "swaps" not in sa.inspect(conn).get_table_names()
        conn.execute(sa.text(
            "INSERT INTO transfers (kind, event_key, source_chain, dest_chain, token, asset,"
            " amount, sender, recipient, src_tx_hash, nonce, status, created_at, updated_at)"
            " VALUES ('lock', 'k1', 'eip155:1', 'ferry:ledger', :tok, 'a', :amt, 's', 'r',"
            " '0x01', :nonce, 'transfer.observed', 1.0, 1.0)"),
            {"tok": ZERO, "amt": str(10**30), "nonce": str(2**200)})
    engine.dispose()

    migrate(url)
    swaps = SwapStore.open(url, clock)  # idempotent: already at head
    row = Store(swaps.engine, clock).get("k1")
    assert int(row.amount) == 10**30 and row.nonce == 2**200
    with swaps.engine.connect() as conn:
        head = ScriptDirectory.from_config(_alembic(url)).get_current_head()
        assert conn.execute(sa.text("SELECT version_num FROM relayer_alembic_version")
                            ).scalar_one() == head
    rec = swaps.create(terms())
    assert swaps.get(rec.id) == rec

    swaps.engine.dispose()
    command.downgrade(_alembic(url), "0002")
    engine = make_engine(url)
    with engine.connect() as conn:
        assert {"swaps", "swap_history"}.isdisjoint(sa.inspect(conn).get_table_names())
        assert conn.execute(sa.text("SELECT count(*) FROM transfers")).scalar_one() == 1
    engine.dispose()


@pytest.mark.parametrize("model", [Swap, SwapHistory])
def test_models_describe_the_migrated_tables(store, model):
    table = model.__table__
    with store.engine.connect() as conn:
        cols = {c["name"]: c for c in sa.inspect(conn).get_columns(table.name)}
    assert set(cols) == {c.name for c in table.columns}
    for c in table.columns:
        assert cols[c.name]["nullable"] == c.nullable or c.primary_key, c.name
