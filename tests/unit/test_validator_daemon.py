"""ValidatorDaemon with fake adapters, a fake ledger and an httpx MockTransport relayer:
cursor persistence, at-least-once delivery, failure tolerance, rotation re-sends, and how few
requests an idle pass makes (head only; ledger paced by a moved clock)."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import Counter
from types import SimpleNamespace

import httpx
import pydantic
import pytest
from nacl.signing import SigningKey
from pydantic import SecretStr

from adapters.base import NATIVE_TOKEN, BlockRef, LockEvent, asset_key
from adapters.errors import ConfigError, RpcUnavailable
from adapters.evm.config import EvmChainConfig
from ledger.transactions import sign_burn
from ledger.types import BurnRecord
from validators.attestation import ValidatorSet
from validators.config import ValidatorSection
from validators.daemon import ValidatorDaemon
from validators.keystore import ValidatorKeys

NETWORK = "devnet"
ETH = "eip155:31337"
BRIDGE = "0x" + "b1" * 20
TOKEN = "0x" + "70" * 20
PAYEE = "0x" + "a7" * 20
USER = SigningKey(b"\x07" * 32)
KEYS = ValidatorKeys(bytes(range(32)), bytes.fromhex("11" * 32))
DEPTH = 2  # EvmChainConfig's default confirmation_depth


def chain_config(**changes: object) -> EvmChainConfig:
    base: dict[str, object] = {
        "name": "ethereum",
        "chain_id": 31337,
        "rpc_url": "http://127.0.0.1:1",
        "bridge_address": BRIDGE,
        "max_block_range": 10,
    }
    return EvmChainConfig(**{**base, **changes})


def lock_at(block: int, nonce: int) -> LockEvent:
    return LockEvent(
        chain=ETH,
        contract=BRIDGE,
        nonce=nonce,
        token=NATIVE_TOKEN,
        sender="0x" + "5e" * 20,
        amount=1000 + nonce,
        recipient=b"\x42" * 32,
        tx_hash="0x" + f"{nonce:064x}",
        log_index=0,
        block_number=block,
        block_hash="0x" + "cd" * 32,
    )


class FakeAdapter:
    """A chain whose final height (head - DEPTH) and events the test controls; counts its
    reads and can fail the next N."""

    def __init__(self, events: list[LockEvent], finalized: int, set_nonce: int = 1) -> None:
        self.chain = ETH
        self.events = events
        self.height = finalized
        self.nonce = set_nonce
        self.fail_reads = 0
        self.ranges: list[tuple[int, int]] = []
        self.calls: Counter[str] = Counter()

    def _read(self, name: str) -> None:
        self.calls[name] += 1
        if self.fail_reads:
            self.fail_reads -= 1
            raise RpcUnavailable("connection refused", chain=self.chain)

    def head(self) -> BlockRef:
        self._read("head")
        return BlockRef(self.height + DEPTH, "0x" + "00" * 32)

    def finalized(self) -> BlockRef:
        self._read("finalized")
        return BlockRef(self.height, "0x" + "00" * 32)

    def finalized_number(self, head_number: int) -> int:
        return max(head_number - DEPTH, 0)  # the depth rule, no request

    def lock_events(self, from_block: int, to_block: int) -> list[LockEvent]:
        self._read("lock_events")
        self.ranges.append((from_block, to_block))
        return [e for e in self.events if from_block <= e.block_number <= to_block]

    def set_nonce(self) -> int:
        self._read("set_nonce")
        return self.nonce


class FakeLedger:
    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch
        self.network = NETWORK
        self.burn_records: list[BurnRecord] = []
        self.down = False
        self.calls: Counter[str] = Counter()

    def status(self) -> SimpleNamespace:
        self.calls["status"] += 1
        if self.down:
            raise httpx.ConnectError("ledger down")
        members = (KEYS.info,)
        return SimpleNamespace(
            network=self.network,
            epoch=self.epoch,
            validator_set=ValidatorSet(epoch=self.epoch, members=members, threshold=1),
        )

    def burns(self, after_seq: int, limit: int) -> list[BurnRecord]:
        self.calls["burns"] += 1
        if self.down:
            raise httpx.ConnectError("ledger down")
        return [b for b in self.burn_records if b.seq > after_seq][:limit]


class FakeRelayer:
    """The inbox: records every batch; `down` makes it answer 503 or refuse connections."""

    def __init__(self) -> None:
        self.batches: list[list[dict]] = []
        self.mode = "up"

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/attestations"
        if self.mode == "refuse":
            raise httpx.ConnectError("connection refused", request=request)
        if self.mode == "503":
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "x"}})
        batch = json.loads(request.content)["attestations"]
        self.batches.append(batch)
        return httpx.Response(200, json={"accepted": len(batch), "rejected": []})

    @property
    def sent(self) -> list[dict]:
        return [a for batch in self.batches for a in batch]


def burn_at(seq: int, amount: int = 500) -> BurnRecord:
    asset = asset_key(ETH, TOKEN)
    signed = sign_burn(USER, NETWORK, seq, asset, amount, ETH, PAYEE)
    return BurnRecord(
        seq=seq,
        burn_id=signed.tx_id,
        account=bytes(USER.verify_key),
        asset=asset,
        origin_chain=ETH,
        origin_token=TOKEN,
        amount=amount,
        dest_chain=ETH,
        dest_address=PAYEE,
        tx=dict(signed.body),
        signature=signed.signature,
    )


class FakeClock:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def world(tmp_path):
    adapter = FakeAdapter([lock_at(3, 1), lock_at(12, 2), lock_at(25, 3)], finalized=20)
    ledger = FakeLedger()
    relayer = FakeRelayer()
    section = ValidatorSection(
        name="v1",
        keystore=tmp_path / "keys.json",
        passphrase=SecretStr("unused"),
        relayer_url="http://relayer",
        ledger_url="http://ledger",
        state_file=tmp_path / "state" / "validator.json",
        batch_size=2,
        rotation_resend_blocks=15,
        rotation_resend_burns=1,
    )

    clock = FakeClock()

    def make(chain: EvmChainConfig | None = None, **section_changes: object) -> ValidatorDaemon:
        sec = section.model_copy(update=section_changes)
        client = httpx.Client(
            base_url="http://relayer", transport=httpx.MockTransport(relayer.handler)
        )
        return ValidatorDaemon(
            sec,
            NETWORK,
            [chain or chain_config()],
            KEYS,
            adapters={ETH: adapter},
            ledger=ledger,
            relayer=client,
            rpc_wait_s=0.0,
            clock=clock,
        )

    return SimpleNamespace(
        adapter=adapter,
        ledger=ledger,
        relayer=relayer,
        make=make,
        state=section.state_file,
        clock=clock,
    )


def lock_ids(attestations: list[dict]) -> list[str]:
    return [a["body"]["event_id"] for a in attestations if a["kind"] == "lock"]


def test_signs_final_locks_only_and_persists_the_block_cursor(world):
    result = world.make().run_once()
    assert result.ok and result.locks_sent == 2
    assert lock_ids(world.relayer.sent) == [f"{ETH}/{BRIDGE}/1", f"{ETH}/{BRIDGE}/2"]
    assert world.adapter.ranges == [(0, 9), (10, 19), (20, 20)]
    state = json.loads(world.state.read_text())
    assert state["chains"][ETH]["block"] == 20
    assert state["epoch"] == 1

    world.relayer.batches.clear()
    world.make().run_once()  # a restarted daemon resumes from the file
    assert world.relayer.sent == []

    world.adapter.height = 30
    world.make().run_once()
    assert lock_ids(world.relayer.sent) == [f"{ETH}/{BRIDGE}/3"]
    assert world.relayer.sent[0]["body"]["epoch"] == "1"


def test_batches_are_at_most_batch_size(world):
    world.adapter.events = [lock_at(5, n) for n in range(1, 6)]
    world.make().run_once()
    assert [len(b) for b in world.relayer.batches] == [2, 2, 1]


@pytest.mark.parametrize("mode", ["503", "refuse"])
def test_cursor_stays_until_the_relayer_accepts_so_delivery_is_at_least_once(world, mode):
    world.relayer.mode = mode
    daemon = world.make()
    result = daemon.run_once()
    assert not result.ok and result.locks_sent == 0
    assert json.loads(world.state.read_text())["chains"][ETH]["block"] == -1

    world.relayer.mode = "up"
    assert daemon.run_once().locks_sent == 2
    assert lock_ids(world.relayer.sent) == [f"{ETH}/{BRIDGE}/1", f"{ETH}/{BRIDGE}/2"]
    assert json.loads(world.state.read_text())["chains"][ETH]["block"] == 20


def test_a_failed_later_batch_resends_the_whole_range(world):
    world.adapter.events = [lock_at(5, n) for n in range(1, 4)]
    calls = {"n": 0}
    inner = world.relayer.handler

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 2:
            return httpx.Response(500)
        return inner(request)

    world.relayer.handler = flaky
    daemon = world.make()
    daemon.run_once()
    assert json.loads(world.state.read_text())["chains"][ETH]["block"] == -1
    daemon.run_once()
    nonces = [a["body"]["nonce"] for a in world.relayer.sent]
    assert nonces == ["1", "2", "1", "2", "3"]  # at least once, never skipped


def test_ledger_down_means_no_signing_and_no_crash(world):
    world.ledger.down = True
    result = world.make().run_once()
    assert not result.ok
    assert world.relayer.sent == []
    assert not world.state.exists()


def test_ledger_of_another_network_is_not_trusted(world):
    world.ledger.network = "mainnet"
    assert not world.make().run_once().ok
    assert world.relayer.sent == []


def test_rpc_unavailable_is_retried_then_succeeds(world):
    world.adapter.fail_reads = 2
    result = world.make().run_once()
    assert result.ok and result.locks_sent == 2


def test_rpc_down_for_good_keeps_the_cursor_and_does_not_crash(world):
    world.adapter.fail_reads = 10**6
    daemon = world.make()
    result = daemon.run_once()
    assert not result.ok
    assert world.relayer.sent == []
    world.adapter.fail_reads = 0
    assert daemon.run_once().locks_sent == 2


def test_signs_burns_and_advances_the_burn_cursor_after_acceptance(world):
    world.adapter.events = []
    world.ledger.burn_records = [burn_at(4), burn_at(9), burn_at(11)]
    world.relayer.mode = "503"
    daemon = world.make()
    assert daemon.run_once().releases_sent == 0
    assert json.loads(world.state.read_text())["burn_seq"] == 0

    world.relayer.mode = "up"
    result = daemon.run_once()
    assert result.ok and result.releases_sent == 3
    releases = [a for a in world.relayer.sent if a["kind"] == "release"]
    assert [r["burn_id"] for r in releases] == [
        "0x" + b.burn_id.hex() for b in world.ledger.burn_records
    ]
    assert {r["set_nonce"] for r in releases} == {"1"}
    assert json.loads(world.state.read_text())["burn_seq"] == 11

    world.relayer.batches.clear()
    world.make().run_once()
    assert world.relayer.sent == []


def test_a_refused_burn_is_skipped_and_the_rest_delivered(world):
    world.adapter.events = []
    tampered = dataclasses.replace(burn_at(2), amount=10**9)
    world.ledger.burn_records = [tampered, burn_at(3)]
    world.make().run_once()
    releases = [a for a in world.relayer.sent if a["kind"] == "release"]
    assert [r["burn_id"] for r in releases] == ["0x" + burn_at(3).burn_id.hex()]
    assert json.loads(world.state.read_text())["burn_seq"] == 3


def test_burns_wait_while_set_nonce_is_unreadable(world):
    world.adapter.events = []
    world.ledger.burn_records = [burn_at(1)]
    daemon = world.make()
    real_set_nonce = world.adapter.set_nonce
    world.adapter.set_nonce = lambda: (_ for _ in ()).throw(RpcUnavailable("down", chain=ETH))
    result = daemon.run_once()
    assert not result.ok
    assert world.relayer.sent == []
    assert json.loads(world.state.read_text())["burn_seq"] == 0
    world.adapter.set_nonce = real_set_nonce
    assert daemon.run_once().releases_sent == 1


def test_epoch_change_resends_locks_of_the_last_n_blocks_under_the_new_epoch(world):
    daemon = world.make()
    daemon.run_once()
    world.relayer.batches.clear()
    world.ledger.epoch = 2
    daemon.run_once()
    # cursor 20 - 15 blocks -> rescan from 6: only lock 2 (block 12) is re-signed
    assert lock_ids(world.relayer.sent) == [f"{ETH}/{BRIDGE}/2"]
    assert world.relayer.sent[0]["body"]["epoch"] == "2"
    state = json.loads(world.state.read_text())
    assert state["epoch"] == 2 and state["chains"][ETH]["block"] == 20


def test_set_nonce_change_resends_the_last_n_burns_at_the_next_ledger_read(world):
    world.adapter.events = []
    world.ledger.burn_records = [burn_at(1), burn_at(2)]
    daemon = world.make()
    daemon.run_once()
    world.relayer.batches.clear()
    world.adapter.nonce = 2
    daemon.run_once()  # no new burn, yet the rotation is seen: cursor 2 - 1 burn -> burn 2
    assert [(a["burn_id"], a["set_nonce"]) for a in world.relayer.sent] == [
        ("0x" + burn_at(2).burn_id.hex(), "2"),
    ]
    world.ledger.burn_records.append(burn_at(3))
    daemon.run_once()
    assert [(a["burn_id"], a["set_nonce"]) for a in world.relayer.sent][-1] == (
        "0x" + burn_at(3).burn_id.hex(), "2")
    state = json.loads(world.state.read_text())
    assert state["burn_seq"] == 3 and state["chains"][ETH]["set_nonce"] == 2


def test_state_file_of_another_validator_is_refused(world):
    world.make().run_once()
    other = ValidatorKeys(bytes(range(1, 33)), bytes.fromhex("22" * 32))
    with pytest.raises(ConfigError, match="belongs to"):
        ValidatorDaemon(
            world.make().section,
            NETWORK,
            [chain_config()],
            other,
            adapters={ETH: world.adapter},
            ledger=world.ledger,
            relayer=httpx.Client(transport=httpx.MockTransport(world.relayer.handler)),
        )


def test_corrupt_state_file_is_refused(world):
    world.state.parent.mkdir(parents=True)
    world.state.write_text("{not json")
    with pytest.raises(ConfigError, match="corrupt"):
        world.make()


def test_start_block_floors_the_cursor(world):
    daemon = ValidatorDaemon(
        world.make().section,
        NETWORK,
        [chain_config(start_block=10)],
        KEYS,
        adapters={ETH: world.adapter},
        ledger=world.ledger,
        relayer=httpx.Client(
            base_url="http://relayer", transport=httpx.MockTransport(world.relayer.handler)
        ),
    )
    daemon.run_once()
    assert lock_ids(world.relayer.sent) == [f"{ETH}/{BRIDGE}/2"]


def test_run_forever_survives_a_failing_pass_and_stops_on_the_event(world):
    daemon = world.make(poll_interval_s=0.01)
    stop = threading.Event()
    calls = {"n": 0}
    real = daemon.run_scheduled

    def run_scheduled():
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("bug")
        if calls["n"] >= 3:
            stop.set()
        return real()

    daemon.run_scheduled = run_scheduled
    thread = threading.Thread(target=daemon.run_forever, args=(stop,))
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert calls["n"] >= 3
    assert lock_ids(world.relayer.sent)


def test_logs_never_contain_keys(world, caplog):
    caplog.set_level("DEBUG")
    world.ledger.burn_records = [burn_at(1)]
    daemon = world.make()
    daemon.run_once()
    text = caplog.text + repr(daemon.keys)
    assert bytes(range(32)).hex() not in text and "11" * 32 not in text
    assert "event_id=" in caplog.text and "tx=" in caplog.text and "chain=" in caplog.text


def test_a_chain_whose_rpc_failed_is_not_waited_on_twice_in_one_pass(world):
    world.adapter.fail_reads = 10**6
    calls = {"set_nonce": 0}
    real = world.adapter.set_nonce

    def counting() -> int:
        calls["set_nonce"] += 1
        return real()

    world.adapter.set_nonce = counting
    world.ledger.burn_records = [burn_at(1)]
    assert not world.make().run_once().ok
    assert calls["set_nonce"] == 0
    assert json.loads(world.state.read_text())["burn_seq"] == 0


# -- what a pass asks for: one head request when idle; the ledger paced by the clock ------------


def test_unchanged_head_costs_one_head_request_and_no_scan(world):
    daemon = world.make()
    daemon.run_once()
    world.adapter.calls.clear()
    world.adapter.ranges.clear()
    world.relayer.batches.clear()
    daemon.run_scheduled()  # no time has passed: the ledger (and setNonce) is not read again
    assert world.adapter.calls == Counter(head=1)  # no finalized, lock_events or set_nonce
    assert world.adapter.ranges == [] and world.relayer.sent == []


def test_new_head_scans_only_the_newly_final_blocks(world):
    daemon = world.make()
    daemon.run_once()
    world.adapter.ranges.clear()
    world.adapter.height = 27  # head 29
    result = daemon.run_once()
    assert world.adapter.ranges == [(21, 27)]
    assert result.locks_sent == 1 and lock_ids(world.relayer.sent)[-1] == f"{ETH}/{BRIDGE}/3"
    assert world.adapter.calls["finalized"] == 0
    assert json.loads(world.state.read_text())["chains"][ETH]["block"] == 27


def test_locks_above_head_minus_confirmation_depth_are_not_read_or_signed(world):
    world.adapter.events = [lock_at(25, 1)]
    world.adapter.height = 24  # head 26: block 25 is only one block deep
    daemon = world.make()
    daemon.run_once()
    assert world.relayer.sent == []
    assert max(high for _, high in world.adapter.ranges) == 24
    world.adapter.height = 25  # head 27
    daemon.run_once()
    assert lock_ids(world.relayer.sent) == [f"{ETH}/{BRIDGE}/1"]


def test_an_undelivered_range_is_retried_while_the_head_stands_still(world):
    world.relayer.mode = "503"
    daemon = world.make()
    daemon.run_once()
    world.relayer.mode = "up"
    world.adapter.ranges.clear()
    assert daemon.run_once().locks_sent == 2  # same head, cursor still behind it
    assert world.adapter.ranges == [(0, 9), (10, 19), (20, 20)]


def test_finalized_tag_chains_ask_the_node_for_its_finalized_block(world):
    daemon = world.make(chain=chain_config(use_finalized_tag=True))
    assert daemon.run_once().locks_sent == 2
    world.adapter.ranges.clear()
    daemon.run_once()
    assert world.adapter.calls["head"] == 0 and world.adapter.calls["finalized"] == 2
    assert world.adapter.ranges == []


def test_set_nonce_is_read_once_per_ledger_read_not_per_pass(world):
    daemon = world.make(ledger_poll_interval_s=1.0)
    daemon.run_scheduled()
    assert world.adapter.calls["set_nonce"] == 1
    for _ in range(4):
        world.clock.t += 0.2
        daemon.run_scheduled()
    assert world.adapter.calls["set_nonce"] == 1
    world.clock.t += 0.5
    daemon.run_scheduled()
    assert world.adapter.calls["set_nonce"] == 2


def test_scheduled_passes_read_the_ledger_at_most_every_ledger_poll_interval(world):
    daemon = world.make(ledger_poll_interval_s=1.0)
    world.ledger.burn_records = [burn_at(1)]
    daemon.run_scheduled()
    assert world.ledger.calls == Counter(status=1, burns=1)
    assert len(world.relayer.sent) == 3  # two locks, one release

    world.ledger.burn_records.append(burn_at(2))
    world.adapter.height = 30
    for _ in range(4):
        world.clock.t += 0.2
        daemon.run_scheduled()
    assert world.ledger.calls == Counter(status=1, burns=1)
    assert world.adapter.calls["head"] == 5  # chains are still polled every pass
    assert lock_ids(world.relayer.sent)[-1] == f"{ETH}/{BRIDGE}/3"  # under the epoch read last
    assert world.relayer.sent[-1]["body"]["epoch"] == "1"
    assert [a for a in world.relayer.sent if a["kind"] == "release"] == world.relayer.sent[2:3]

    world.clock.t += 0.2  # 1.0 s after the first read
    daemon.run_scheduled()
    assert world.ledger.calls == Counter(status=2, burns=2)
    assert world.relayer.sent[-1]["burn_id"] == "0x" + burn_at(2).burn_id.hex()


def test_run_once_reads_the_ledger_every_pass_whatever_the_clock(world):
    daemon = world.make(ledger_poll_interval_s=60.0)
    daemon.run_once()
    daemon.run_once()
    assert world.ledger.calls == Counter(status=2, burns=2)


def test_epoch_change_read_after_the_interval_resends_the_last_n_blocks(world):
    daemon = world.make(ledger_poll_interval_s=1.0)
    daemon.run_scheduled()
    world.relayer.batches.clear()
    world.ledger.epoch = 2
    world.clock.t += 0.5
    daemon.run_scheduled()  # not read yet: nothing re-signed
    assert world.relayer.sent == []
    assert json.loads(world.state.read_text())["epoch"] == 1

    world.clock.t += 0.5
    daemon.run_scheduled()
    # cursor 20 - 15 blocks -> rescan from 6 though the head did not move: lock 2 re-signed
    assert lock_ids(world.relayer.sent) == [f"{ETH}/{BRIDGE}/2"]
    assert world.relayer.sent[0]["body"]["epoch"] == "2"
    state = json.loads(world.state.read_text())
    assert state["epoch"] == 2 and state["chains"][ETH]["block"] == 20


def test_no_lock_is_signed_after_a_failed_ledger_read_until_a_read_succeeds(world):
    daemon = world.make(ledger_poll_interval_s=1.0)
    world.ledger.down = True
    assert not daemon.run_scheduled().ok
    world.ledger.down = False
    world.clock.t += 0.5
    assert not daemon.run_scheduled().ok  # not due yet: still no known epoch
    assert world.relayer.sent == [] and world.ledger.calls["status"] == 1
    world.clock.t += 0.5
    assert daemon.run_scheduled().locks_sent == 2


def test_a_ledger_of_another_network_stops_lock_signing_between_reads(world):
    daemon = world.make(ledger_poll_interval_s=1.0)
    daemon.run_scheduled()
    world.relayer.batches.clear()
    world.ledger.network = "mainnet"
    world.clock.t += 1.0
    daemon.run_scheduled()
    world.adapter.height = 30
    world.clock.t += 0.5
    assert not daemon.run_scheduled().ok
    assert world.relayer.sent == []


@pytest.mark.parametrize("interval", [0, -1.0])
def test_ledger_poll_interval_must_be_positive(world, interval):
    fields = world.make().section.model_dump()
    assert fields["ledger_poll_interval_s"] == 1.0  # the default
    with pytest.raises(pydantic.ValidationError, match="ledger_poll_interval_s"):
        ValidatorSection(**{**fields, "ledger_poll_interval_s": interval})
