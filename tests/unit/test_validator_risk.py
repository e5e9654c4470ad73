"""The validator's risk gate (`validators.risk_gate`): locks and releases over a route's limit or
delay are held (not signed), the cursor moves on, and they are signed on a later pass once this
validator's own clock allows; the record survives restarts in the state file."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import httpx
import pytest
from nacl.signing import SigningKey
from pydantic import SecretStr

from adapters.base import NATIVE_TOKEN, BlockRef, Coin, LockEvent, ReleasePlan, asset_key
from adapters.evm.config import EvmChainConfig
from ledger.transactions import sign_burn
from ledger.types import BurnRecord
from validators.attestation import LEDGER_CHAIN, ValidatorSet
from validators.config import ValidatorSection
from validators.daemon import ValidatorDaemon
from validators.keystore import ValidatorKeys
from validators.risk import RiskSection, RouteLimit, route_key
from validators.risk_gate import RiskGate, RiskHeld
from validators.state import CursorState, HeldItem, SignedItem, load_state, save_state
from validators.utxo_signer import UtxoReleaseSigner

NETWORK = "devnet"
ETH = "eip155:31337"
BTC = "bip122:000000000933ea01ad0ee984209779ba"
BRIDGE = "0x" + "b1" * 20
TOKEN = "0x" + "70" * 20
PAYEE = "0x" + "a7" * 20
USER = SigningKey(b"\x07" * 32)
KEYS = ValidatorKeys(bytes(range(32)), bytes.fromhex("11" * 32))
T0 = 1_700_000_000.0
DAY, DELAY = 86_400, 3_600
LOCK_ROUTE = route_key(ETH, LEDGER_CHAIN, asset_key(ETH, NATIVE_TOKEN))
RELEASE_ROUTE = route_key(LEDGER_CHAIN, ETH, asset_key(ETH, TOKEN))


class MovedClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


def lock_at(block: int, nonce: int, amount: int, token: str = NATIVE_TOKEN) -> LockEvent:
    return LockEvent(chain=ETH, contract=BRIDGE, nonce=nonce, token=token,
                     sender="0x" + "5e" * 20, amount=amount, recipient=b"\x42" * 32,
                     tx_hash="0x" + f"{nonce:064x}", log_index=0, block_number=block,
                     block_hash="0x" + "cd" * 32)


def burn_at(seq: int, amount: int, chain: str = ETH, token: str = TOKEN,
            dest: str = PAYEE) -> BurnRecord:
    asset = asset_key(chain, token)
    signed = sign_burn(USER, NETWORK, seq, asset, amount, chain, dest)
    return BurnRecord(seq=seq, burn_id=signed.tx_id, account=bytes(USER.verify_key), asset=asset,
                      origin_chain=chain, origin_token=token, amount=amount, dest_chain=chain,
                      dest_address=dest, tx=dict(signed.body), signature=signed.signature)


class FakeAdapter:
    def __init__(self, events: list[LockEvent], finalized: int) -> None:
        self.chain = ETH
        self.events = events
        self.height = finalized

    def head(self) -> BlockRef:
        return BlockRef(self.height + 2, "0x" + "00" * 32)

    def finalized(self) -> BlockRef:
        return BlockRef(self.height, "0x" + "00" * 32)

    def finalized_number(self, head_number: int) -> int:
        return head_number - 2

    def lock_events(self, from_block: int, to_block: int) -> list[LockEvent]:
        return [e for e in self.events if from_block <= e.block_number <= to_block]

    def set_nonce(self) -> int:
        return 1


class FakeLedger:
    def __init__(self) -> None:
        self.burn_records: list[BurnRecord] = []
        self.calls: Counter[str] = Counter()

    def status(self) -> SimpleNamespace:
        return SimpleNamespace(network=NETWORK, epoch=1, validator_set=ValidatorSet(
            epoch=1, members=(KEYS.info,), threshold=1))

    def burns(self, after_seq: int, limit: int) -> list[BurnRecord]:
        return [b for b in self.burn_records if b.seq > after_seq][:limit]

    def burn(self, burn_id: bytes) -> BurnRecord | None:
        self.calls["burn"] += 1
        return next((b for b in self.burn_records if b.burn_id == burn_id), None)


class Relayer:
    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.up = True

    def handler(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            return httpx.Response(503, json={"error": {"code": "x", "message": "down"}})
        batch = json.loads(request.content)["attestations"]
        self.sent.extend(batch)
        return httpx.Response(200, json={"accepted": len(batch), "rejected": []})

    def take(self, kind: str) -> list[str]:
        out = [a["body"]["event_id"] if kind == "lock" else a["burn_id"]
               for a in self.sent if a["kind"] == kind]
        self.sent.clear()
        return out


def section_of(*routes: RouteLimit) -> RiskSection:
    return RiskSection(window_s=DAY, delay_s=DELAY, routes=list(routes))


def lock_limit(daily: int, large: int | None = None) -> RouteLimit:
    return RouteLimit(source_chain=ETH, dest_chain=LEDGER_CHAIN, asset=asset_key(ETH, NATIVE_TOKEN),
                      daily_limit=daily, large_transfer=large)


@pytest.fixture
def world(tmp_path):
    adapter = FakeAdapter([lock_at(3, 1, 1000), lock_at(5, 2, 1000), lock_at(7, 3, 1000)],
                          finalized=20)
    ledger, relayer, clock = FakeLedger(), Relayer(), MovedClock()
    section = ValidatorSection(
        name="v1", keystore=tmp_path / "keys.json", passphrase=SecretStr("unused"),
        relayer_url="http://relayer", ledger_url="http://ledger",
        state_file=tmp_path / "state.json", batch_size=10)

    def make(risk: RiskSection) -> ValidatorDaemon:
        http = httpx.Client(base_url="http://relayer",
                            transport=httpx.MockTransport(relayer.handler))
        return ValidatorDaemon(section, NETWORK, [EvmChainConfig(
            name="ethereum", chain_id=31337, rpc_url="http://127.0.0.1:1",
            bridge_address=BRIDGE, max_block_range=10)], KEYS, adapters={ETH: adapter},
            ledger=ledger, relayer=http, rpc_wait_s=0.0, risk=risk, risk_clock=clock)

    return SimpleNamespace(adapter=adapter, ledger=ledger, relayer=relayer, clock=clock,
                           make=make, state=section.state_file)


def eid(nonce: int) -> str:
    return f"{ETH}/{BRIDGE}/{nonce}"


def test_over_limit_lock_is_held_while_the_cursor_moves_on_then_signed_after_the_window(world):
    risk = section_of(lock_limit(2500))
    daemon = world.make(risk)
    result = daemon.run_once()
    assert result.ok and result.locks_sent == 2
    assert world.relayer.take("lock") == [eid(1), eid(2)]
    doc = json.loads(world.state.read_text())
    assert doc["chains"][ETH]["block"] == 20  # the held lock does not block the cursor
    held = doc["risk_held"][eid(3)]
    assert (held["kind"], held["reason"], held["until"], held["first_seen"]) == (
        "lock", "rate_limit", T0 + DAY, T0)

    # another route's lock after it is signed; the held one still waits
    world.adapter.events.append(lock_at(25, 4, 10**9, token=TOKEN))
    world.adapter.height = 30
    world.clock.t = T0 + DAY - 1
    daemon.run_once()
    assert world.relayer.take("lock") == [eid(4)]

    world.clock.t = T0 + DAY
    restarted = world.make(risk)  # the record comes back from the state file
    assert restarted.run_once().locks_sent == 1
    assert world.relayer.take("lock") == [eid(3)]
    assert json.loads(world.state.read_text())["risk_held"] == {}
    restarted.run_once()
    assert world.relayer.take("lock") == []


def test_large_lock_waits_the_delay_from_first_sight_across_a_restart(world):
    risk = section_of(lock_limit(10**6, large=1000))
    world.adapter.events = [lock_at(3, 1, 999), lock_at(5, 2, 1000)]
    world.make(risk).run_once()
    assert world.relayer.take("lock") == [eid(1)]
    world.clock.t = T0 + DELAY - 1
    world.make(risk).run_once()
    assert world.relayer.take("lock") == []
    world.clock.t = T0 + DELAY
    world.make(risk).run_once()
    assert world.relayer.take("lock") == [eid(2)]


def test_held_lock_stays_held_when_its_delivery_fails(world):
    risk = section_of(lock_limit(10**6, large=1000))
    world.adapter.events = [lock_at(3, 1, 1000)]
    daemon = world.make(risk)
    daemon.run_once()
    world.clock.t = T0 + DELAY
    world.relayer.up = False
    assert not daemon.run_once().ok
    assert eid(1) in json.loads(world.state.read_text())["risk_held"]
    world.relayer.up = True
    daemon.run_once()
    assert world.relayer.take("lock") == [eid(1)]


def test_without_limits_nothing_is_held_or_recorded(world):
    world.make(section_of()).run_once()
    assert world.relayer.take("lock") == [eid(1), eid(2), eid(3)]
    doc = json.loads(world.state.read_text())
    assert doc["risk_held"] == {} and doc["risk_signed"] == {}


def test_release_signatures_are_gated_and_retried_from_the_ledger(world):
    world.adapter.events = []
    risk = section_of(RouteLimit(source_chain=LEDGER_CHAIN, dest_chain=ETH,
                                 asset=asset_key(ETH, TOKEN), daily_limit=800))
    first, second = burn_at(1, 500), burn_at(2, 500)
    world.ledger.burn_records = [first, second]
    daemon = world.make(risk)
    daemon.run_once()
    assert world.relayer.take("release") == ["0x" + first.burn_id.hex()]
    doc = json.loads(world.state.read_text())
    assert doc["burn_seq"] == 2
    assert doc["risk_held"]["0x" + second.burn_id.hex()]["kind"] == "release"

    daemon.run_once()
    assert world.relayer.take("release") == []
    world.clock.t = T0 + DAY
    daemon.run_once()
    assert world.relayer.take("release") == ["0x" + second.burn_id.hex()]
    assert world.ledger.calls["burn"] >= 1
    assert json.loads(world.state.read_text())["risk_held"] == {}


def test_state_round_trip_and_old_files_load(tmp_path):
    path = tmp_path / "state.json"
    state = CursorState(blocks={ETH: 7}, burn_seq=3, epoch=1)
    state.risk_signed[LOCK_ROUTE] = [SignedItem(T0, 2**200, eid(1))]
    state.risk_held[eid(2)] = HeldItem(eid(2), "lock", LOCK_ROUTE, 5, T0, "large_transfer_delay",
                                       T0 + DELAY, {"chain": ETH})
    save_state(path, state, network=NETWORK, validator="v")
    assert load_state(path, network=NETWORK, validator="v") == state

    old = {"version": 1, "network": NETWORK, "validator": "v", "epoch": 1, "burn_seq": 3,
           "chains": {ETH: {"block": 7, "set_nonce": None}}}
    path.write_text(json.dumps(old))
    loaded = load_state(path, network=NETWORK, validator="v")
    assert (loaded.risk_signed, loaded.risk_held, loaded.blocks) == ({}, {}, {ETH: 7})


def test_window_entries_age_out_and_a_recorded_key_is_not_counted_twice():
    clock, state = MovedClock(), CursorState()
    gate = RiskGate(section_of(lock_limit(1000)), state, clock)
    assert gate.admit(LOCK_ROUTE, "a", 600, kind="lock").go
    assert gate.admit(LOCK_ROUTE, "a", 600, kind="lock").go  # re-signing is free
    assert not gate.admit(LOCK_ROUTE, "b", 600, kind="lock").go
    clock.t = T0 + DAY
    assert gate.admit(LOCK_ROUTE, "b", 600, kind="lock").go
    assert [i.key for i in state.risk_signed[LOCK_ROUTE]] == ["b"]


def test_operator_release_published_by_the_ledger_skips_the_delay_but_not_a_pause():
    clock, state = MovedClock(), CursorState()
    released: set[str] = set()
    gate = RiskGate(section_of(lock_limit(10**6, large=500)), state, clock,
                    released=lambda: released)
    held = gate.admit(LOCK_ROUTE, "0xAB", 600, kind="lock")
    assert (held.go, held.reason) == (False, "large_transfer_delay")
    released.add("0xab")
    gate._released_cache = None  # the gate re-reads the ledger at most every 2 s
    assert gate.admit(LOCK_ROUTE, "0xAB", 600, kind="lock").go
    assert not gate.admit(LOCK_ROUTE, "0xcd", 600, kind="lock").go  # only the named one


def test_an_unreachable_ledger_counts_as_no_release():
    def down() -> list[str]:
        raise httpx.ConnectError("down")

    gate = RiskGate(section_of(lock_limit(10**6, large=500)), CursorState(), MovedClock(),
                    released=down)
    assert not gate.admit(LOCK_ROUTE, "0xab", 600, kind="lock").go


class FakeVault:
    chain = BTC

    def check_release(self, plan: ReleasePlan, *, dest_address: str, amount: int) -> int:
        return plan.fee

    def check_consolidation(self, plan: ReleasePlan) -> int:
        return plan.fee

    def release_sighashes(self, plan: ReleasePlan) -> list[bytes]:
        return [b"\x11" * 32]

    def members(self) -> tuple[str, ...]:
        return (KEYS.secp256k1_public.hex(),)


def test_custody_release_is_held_by_the_gate_and_signed_later():
    clock, state = MovedClock(), CursorState()
    limit = RouteLimit(source_chain=LEDGER_CHAIN, dest_chain=BTC, asset=asset_key(BTC, "native"),
                       daily_limit=10**8, large_transfer=50_000)
    gate = RiskGate(section_of(limit), state, clock)
    signer = UtxoReleaseSigner(NETWORK, KEYS, {BTC: FakeVault()}, state.custody_inputs, gate=gate)
    burn = burn_at(1, 60_000, chain=BTC, token="native", dest="bcrt1qpayee")
    plan = ReleasePlan(kind="release", chain=BTC, txid="ab" * 32, unsigned=b"\x00",
                       coins=(Coin("cd" * 32, 0, 100_000),), dest_address="bcrt1qpayee",
                       amount=60_000, payee_amount=59_000, fee=1_000, fee_rate=2, change=40_000)
    with pytest.raises(RiskHeld):
        signer.sign(plan, burn)
    assert state.custody_inputs == {}  # nothing committed while held
    assert state.risk_held["0x" + burn.burn_id.hex()].first_seen == T0
    clock.t = T0 + DELAY
    payload = signer.sign(plan, burn)
    assert payload["burn_id"] == "0x" + burn.burn_id.hex() and state.risk_held == {}
