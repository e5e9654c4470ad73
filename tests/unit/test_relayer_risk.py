"""The relayer's risk engine on a real SQLite store with a moved clock: the rolling limit, the
large-transfer delay, operator release and retry, pauses, FIFO order, restart idempotency, the
ledger's ``deferred`` answer, burns gated before their release is committed, and the
accountant's pre-mint solvency check."""

from __future__ import annotations

import hashlib
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.base import BlockRef, LockEvent
from adapters.errors import IllegalTransition, UnknownTransfer
from relayer.accountant import Accountant, routes_of
from relayer.engine import Engine, _event_of
from relayer.machine import TransferStatus
from relayer.risk_store import RouteStore
from relayer.store import Change, NewBurn, Store
from validators.attestation import ValidatorInfo, ValidatorSet, lock_attestation_message
from validators.risk import RiskSection, route_key

S = TransferStatus
NETWORK = "ferry-unit"
CHAIN = "eip155:31337"
BRIDGE = "0x" + "b1" * 20
ETH = "0x" + "00" * 20
ASSET = f"{CHAIN}/{ETH}"
ROUTE = route_key(CHAIN, "ferry:ledger", ASSET)
BURN_ROUTE = route_key("ferry:ledger", CHAIN, ASSET)
VSET = ValidatorSet(1, tuple(ValidatorInfo(bytes([i]) * 32, "0x" + f"{i:040x}")
                             for i in (1, 2, 3)), 2)
W, DELAY = 1_000, 500
T0 = 100_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


class FakeLedger:
    """Mints what it is sent (duplicate the second time), or answers `answer(event_id)`."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.minted: set[str] = set()
        self.answer: Any = None
        self.crash = False

    def status(self) -> Any:
        return SimpleNamespace(validator_set=VSET)

    def submit_mints(self, requests: list[LockEvent]) -> list[Any]:
        if self.crash:
            raise ConnectionError("ledger unreachable mid-call")
        out = []
        for e in requests:
            self.submitted.append(e.event_id)
            status, code, retry_at = (self.answer(e.event_id) if self.answer
                                      else ("minted", None, None))
            if status == "minted":
                status = "duplicate" if e.event_id in self.minted else "minted"
                self.minted.add(e.event_id)
            out.append(SimpleNamespace(event_id=e.event_id, status=status, code=code, seq=1,
                                       retry_at=retry_at))
        return out

    def burns(self, after_seq: int, limit: int) -> list[Any]:
        return []


def section(limit: int = 100, large: int | None = None) -> RiskSection:
    return RiskSection(window_s=W, delay_s=DELAY, routes=[
        {"source_chain": CHAIN, "dest_chain": "ferry:ledger", "asset": ASSET,
         "daily_limit": limit, "large_transfer": large},
        {"source_chain": "ferry:ledger", "dest_chain": CHAIN, "asset": ASSET,
         "daily_limit": limit, "large_transfer": large}])


class World:
    def __init__(self, tmp_path: Any, risk: RiskSection) -> None:
        self.url = f"sqlite:///{tmp_path}/relayer.sqlite"
        self.clock, self.ledger, self.risk = Clock(), FakeLedger(), risk
        self.nonce = 0
        self.restart()

    def restart(self) -> None:
        self.store = Store.open(self.url, self.clock)
        self.engine = Engine(self.store, {}, self.ledger, NETWORK,
                             mint_request=lambda event, epoch, sigs: event, clock=self.clock,
                             risk=self.risk)
        self.routes = RouteStore(self.store)

    def lock(self, amount: int) -> int:
        """A confirmed lock of `amount` with a stored quorum; returns its transfer id."""
        self.nonce += 1
        n = self.nonce
        e = LockEvent(CHAIN, BRIDGE, n, ETH, "0x" + "aa" * 20, amount, bytes([n]) * 32,
                      "0x" + f"{n:064x}", 0, n, f"0x{n:064x}")
        self.store.record_lock_events(CHAIN, [e], BlockRef(n, f"0x{n:064x}"), {ETH: ASSET})
        row = self.store.get(e.event_id)
        self.store.advance([Change(row.id, S.CONFIRMED, "deep enough")])
        digest = "0x" + hashlib.sha256(
            lock_attestation_message(NETWORK, _event_of(row), VSET.epoch)).hexdigest()
        self.store.add_attestations([
            {"kind": "lock", "event_key": e.event_id, "epoch": VSET.epoch,
             "validator": "0x" + m.ed25519.hex(), "signature": "0x" + "11" * 64,
             "message_hash": digest} for m in VSET.members])
        return int(row.id)

    def row(self, tid: int) -> Any:
        return self.store.get_by_id(tid)

    def key(self, tid: int) -> str:
        return str(self.row(tid).event_key)


def waits(w: World, tid: int) -> tuple[str, str | None, float | None]:
    r = w.row(tid)
    return r.status, r.wait_reason, r.wait_until


@pytest.fixture
def world(tmp_path):
    return World(tmp_path, section())


# ---------------------------------------------------------------------- rolling limit
def test_transfer_over_the_limit_waits_for_rate_limit_then_goes_once_the_window_moves(world):
    a = world.lock(60)
    assert world.engine.mint() == 1
    assert world.routes.usage(ROUTE, T0 - W) == 60
    world.clock.t = T0 + 10
    b = world.lock(50)
    assert world.engine.mint() == 0
    assert waits(world, b) == (S.ATTESTED.value, "rate_limit", T0 + W)
    assert world.key(b) not in world.ledger.submitted
    world.clock.t = T0 + W - 1  # still inside the window: waits, nothing rewritten
    assert world.engine.mint() == 0
    world.clock.t = T0 + W  # `a` ages out exactly now
    assert world.engine.mint() == 1
    assert waits(world, b) == (S.EXECUTED.value, None, None)
    assert world.row(a).status == S.EXECUTED.value
    assert world.routes.usage(ROUTE, T0 + W - W) == 50  # only b is in the new window


def test_exactly_the_limit_passes_in_one_batch_and_one_more_unit_waits(world):
    first, second, third = world.lock(70), world.lock(30), world.lock(1)
    assert world.engine.mint() == 2
    assert world.row(first).status == world.row(second).status == S.EXECUTED.value
    assert waits(world, third)[1:] == ("rate_limit", T0 + W)


def test_later_small_transfers_wait_behind_the_first_rate_limited_one_fifo(world):
    world.lock(60)
    world.engine.mint()
    world.clock.t = T0 + 5
    big, small = world.lock(50), world.lock(10)  # small alone would fit (60 + 10 <= 100)
    assert world.engine.mint() == 0
    assert waits(world, big)[1:] == ("rate_limit", T0 + W)
    assert waits(world, small)[1:] == ("rate_limit", T0 + W)
    assert [r.id for r in world.routes.queue(ROUTE)] == [big, small]
    assert [r.id for r in world.routes.queue()] == [big, small]
    assert world.routes.queue(BURN_ROUTE) == []
    world.clock.t = T0 + W
    assert world.engine.mint() == 2
    assert world.ledger.submitted[-2:] == [world.key(big), world.key(small)]
    assert world.routes.queue(ROUTE) == []


def test_a_transfer_larger_than_the_whole_limit_waits_for_an_operator_without_blocking(world):
    huge, small = world.lock(150), world.lock(10)
    assert world.engine.mint() == 1
    assert waits(world, huge)[1:] == ("rate_limit", None)
    assert world.row(small).status == S.EXECUTED.value
    assert world.routes.release(huge, by="ops") is True
    assert world.engine.mint() == 1
    assert world.row(huge).status == S.EXECUTED.value
    assert world.routes.usage(ROUTE, T0 - W) == 160  # a released transfer still counts


# ---------------------------------------------------------------------- large-transfer delay
def test_large_transfer_is_delayed_then_goes_without_blocking_small_ones(tmp_path):
    w = World(tmp_path, section(limit=1_000, large=40))
    big = w.lock(50)
    w.clock.t = T0 + 1
    small = w.lock(10)
    assert w.engine.mint() == 1
    assert waits(w, big) == (S.ATTESTED.value, "large_transfer_delay", T0 + DELAY)
    assert w.row(small).status == S.EXECUTED.value
    w.clock.t = T0 + DELAY - 0.5
    assert w.engine.mint() == 0
    w.clock.t = T0 + DELAY
    assert w.engine.mint() == 1
    assert waits(w, big) == (S.EXECUTED.value, None, None)


def test_a_large_lock_reaching_depth_waits_for_its_delay_not_for_a_quorum(tmp_path):
    # The validators hold a large lock for the same delay, so before any quorum forms the
    # relayer already shows why it waits and until when (the API and the risk queue read it).
    w = World(tmp_path, section(limit=1_000, large=40))
    big, small = w.lock(50), w.lock(10)
    assert w.engine.risk.wait_at_confirm(w.row(big)) == {
        "wait_reason": "large_transfer_delay", "wait_until": T0 + DELAY}
    assert w.engine.risk.wait_at_confirm(w.row(small)) == {
        "wait_reason": "quorum", "wait_until": None}
    w.routes.release(big, by="ops")
    assert w.engine.risk.wait_at_confirm(w.row(big))["wait_reason"] == "quorum"


def test_operator_release_lets_a_delayed_transfer_go_early(tmp_path):
    w = World(tmp_path, section(limit=1_000, large=40))
    big = w.lock(50)
    w.engine.mint()
    assert waits(w, big)[1] == "large_transfer_delay"
    assert w.routes.release(big, by="ops") is True
    assert w.routes.release(big, by="ops") is False  # already released
    assert w.engine.mint() == 1
    assert w.row(big).status == S.EXECUTED.value
    assert w.routes.release(big, by="ops") is False  # finished: nothing to release


def test_release_or_retry_of_an_unknown_transfer_is_refused(world):
    with pytest.raises(UnknownTransfer):
        world.routes.release(999, by="ops")
    with pytest.raises(UnknownTransfer):
        world.routes.retry(999, by="ops")


# ---------------------------------------------------------------------- pauses
def test_paused_route_waits_even_when_released_and_goes_after_unpause(world):
    assert world.routes.pause(ROUTE, "incident 42", by="ops") is True
    assert world.routes.pause(ROUTE, "again", by="ops") is False
    assert world.routes.is_paused(ROUTE) and not world.routes.is_paused(BURN_ROUTE)
    p = world.routes.paused()[ROUTE]
    assert (p.reason, p.by, p.at) == ("incident 42", "ops", T0)
    t = world.lock(5)
    world.routes.release(t, by="ops")
    assert world.engine.mint() == 0
    assert waits(world, t) == (S.ATTESTED.value, "paused", None)
    assert world.ledger.submitted == []
    assert world.routes.unpause(ROUTE, by="ops") is True
    assert world.routes.unpause(ROUTE, by="ops") is False
    assert world.engine.mint() == 1
    assert waits(world, t) == (S.EXECUTED.value, None, None)


# ---------------------------------------------------------------------- crash and restart
def test_a_restart_after_the_usage_row_is_written_never_counts_a_transfer_twice(world):
    a = world.lock(60)
    world.ledger.crash = True
    with pytest.raises(ConnectionError):
        world.engine.mint()
    assert world.routes.usage(ROUTE, T0 - W) == 60  # counted before the ledger call
    world.ledger.crash = False
    world.restart()
    b = world.lock(40)  # 60 + 40 == limit: fits only if `a` is counted once
    assert world.engine.mint() == 2
    assert world.row(a).status == world.row(b).status == S.EXECUTED.value
    assert world.routes.usage(ROUTE, T0 - W) == 100
    world.restart()
    world.engine.mint()  # nothing left; the usage rows stay as they are
    assert world.routes.usage(ROUTE, T0 - W) == 100


# ---------------------------------------------------------------------- the ledger's answer
@pytest.mark.parametrize("code,reason,retry_at", [
    ("rate_limited", "rate_limit", T0 + 77.0),
    ("large_transfer_delay", "large_transfer_delay", T0 + 500.0),
    ("route_paused", "paused", None),
])
def test_ledger_deferred_mint_waits_with_the_ledgers_reason_and_is_never_held(
        world, code, reason, retry_at):
    t = world.lock(10)
    world.ledger.answer = lambda _id: ("deferred", code, retry_at)
    assert world.engine.mint() == 0
    assert waits(world, t) == (S.ATTESTED.value, reason, retry_at)
    assert world.routes.usage(ROUTE, T0 - W) == 0  # nothing minted, nothing counted
    assert world.routes.queue(ROUTE)[0].id == t
    world.ledger.answer = None
    assert world.engine.mint() == 1
    assert waits(world, t) == (S.EXECUTED.value, None, None)
    assert world.routes.usage(ROUTE, T0 - W) == 10


def test_rejected_mint_is_held_uncounted_and_an_operator_retry_brings_it_back(world):
    t = world.lock(10)
    world.ledger.answer = lambda _id: ("rejected", "unknown_asset", None)
    world.engine.mint()
    assert world.row(t).status == S.HELD.value
    assert world.routes.usage(ROUTE, T0 - W) == 0
    with pytest.raises(IllegalTransition):
        world.routes.retry(world.lock(1), by="ops")  # not held
    assert world.routes.retry(t, by="ops") is True
    assert world.row(t).status == S.CONFIRMED.value
    assert world.store.history(t)[-1].reason == "operator retry by ops"
    world.ledger.answer = None
    world.engine.mint()
    assert world.row(t).status == S.EXECUTED.value


# ---------------------------------------------------------------------- burns
def test_a_burn_over_the_limit_waits_and_its_usage_commits_with_the_submitted_move(world):
    world.store.record_burns([
        NewBurn(f"0x{i:064x}", i, CHAIN, ETH, ASSET, amount, "0x" + "cc" * 32, "0x" + "dd" * 20)
        for i, amount in ((1, 80), (2, 30))], 2)
    rows = [world.store.get(f"0x{i:064x}") for i in (1, 2)]
    world.store.advance([Change(r.id, S.ATTESTED, "quorum") for r in rows])
    rows = [world.store.get(f"0x{i:064x}") for i in (1, 2)]
    rp = world.engine.risk.begin()
    assert [r.id for r in rp.admit(rows)] == [rows[0].id]
    assert world.routes.usage(BURN_ROUTE, T0 - W) == 0  # nothing committed yet
    world.store.advance([Change(rows[0].id, S.SUBMITTED, "signed")], also=rp.usage(rows[0]))
    assert world.routes.usage(BURN_ROUTE, T0 - W) == 80
    assert waits(world, rows[1].id) == (S.ATTESTED.value, "rate_limit", T0 + W)


# ---------------------------------------------------------------------- pre-mint solvency
class Bridge:
    def __init__(self, locked: int) -> None:
        self.locked = locked

    def custody_totals(self, token: str) -> tuple[int, int]:
        return self.locked, 0


class LedgerWithAssets(FakeLedger):
    def __init__(self, amounts: dict[str, int]) -> None:
        super().__init__()
        self.amounts = amounts

    def assets(self) -> list[Any]:
        minted = sum(self.amounts[k] for k in self.minted)
        return [SimpleNamespace(asset=ASSET, symbol="wETH", origin_chain=CHAIN,
                                origin_token=ETH, supply=minted, minted_total=minted,
                                burned_total=0)]


def test_pre_mint_check_halts_the_asset_when_a_batch_would_exceed_what_is_locked(
        tmp_path, caplog):
    w = World(tmp_path, RiskSection())
    amounts: dict[str, int] = {}
    w.ledger = LedgerWithAssets(amounts)
    w.restart()
    w.engine.accountant = Accountant(w.store, w.ledger, {CHAIN: Bridge(locked=100)},
                                     w.engine.metrics)
    a = w.lock(60)
    amounts[w.key(a)] = 60
    assert w.engine.mint() == 1
    b = w.lock(50)  # only 40 more is locked on chain: a forged lock, say
    amounts[w.key(b)] = 50
    with caplog.at_level(logging.ERROR, logger="relayer.accountant"):
        assert w.engine.mint() == 0
    assert w.key(b) not in w.ledger.submitted
    assert waits(w, b) == (S.ATTESTED.value, "paused", None)
    paused = w.routes.paused()
    assert {r: (p.reason, p.by) for r, p in paused.items()} == {
        r: ("solvency", "accountant") for r in routes_of(ASSET, CHAIN)}
    assert any(m.startswith("ALERT solvency") for m in caplog.messages)
    reg = w.engine.metrics.registry
    assert reg.get_sample_value("ferry_risk_solvency_halted", {"asset": ASSET}) == 1
    assert reg.get_sample_value("ferry_risk_route_paused", {"route": ROUTE}) == 1
    # Still halted after the next periodic run; unpaused only by an operator.
    w.engine.accountant.run()
    assert reg.get_sample_value("ferry_risk_solvency_halted", {"asset": ASSET}) == 1
    for r in routes_of(ASSET, CHAIN):
        w.routes.unpause(r, by="ops")
    w.engine.accountant.run()
    assert reg.get_sample_value("ferry_risk_solvency_halted", {"asset": ASSET}) == 0
    assert reg.get_sample_value("ferry_risk_route_paused", {"route": ROUTE}) == 0
