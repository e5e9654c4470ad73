"""The relayer's attestation inbox: only verified signatures by current members are stored."""

from __future__ import annotations

import os

import pytest
from nacl.signing import SigningKey

from adapters.base import LockEvent
from relayer.inbox import AttestationInbox, TtlCache
from relayer.metrics import RelayerMetrics
from relayer.store import Store
from validators import eip712
from validators.attestation import (
    ValidatorInfo,
    ValidatorSet,
    lock_attestation_body,
    lock_attestation_message,
)

NETWORK = "ferry-test"
CHAIN = "eip155:31337"
BRIDGE = "0x" + "b1" * 20


class Clock:
    t = 0.0

    def now(self) -> float:
        return self.t


class Status:
    def __init__(self, vset: ValidatorSet) -> None:
        self.validator_set = vset


class EvmLikeAdapter:
    """Only the two pure signature methods of a ChainAdapter, over the EIP-712 format."""

    chain = CHAIN

    def release_message_hash(self, burn_id, token, recipient, amount, set_nonce):
        return eip712.release_digest(31337, BRIDGE, burn_id=burn_id, token=token,
                                     recipient=recipient, amount=amount, set_nonce=set_nonce)

    def recover_release_signer(self, message_hash, signature):
        return eip712.recover_signer(message_hash, signature)


class Validator:
    def __init__(self) -> None:
        self.ed = SigningKey.generate()
        self.secp = os.urandom(32)
        self.info = ValidatorInfo(bytes(self.ed.verify_key), eip712.address_of(self.secp))

    def lock(self, event: LockEvent, epoch: int = 1, network: str = NETWORK) -> dict:
        body = lock_attestation_body(network, event, epoch)
        sig = self.ed.sign(lock_attestation_message(network, event, epoch)).signature
        return {"kind": "lock", "validator": "0x" + self.info.ed25519.hex(),
                "signature": "0x" + sig.hex(), "body": body}

    def release(self, burn_id: bytes, amount: int, set_nonce: int = 1) -> dict:
        token, recipient = "0x" + "00" * 20, "0x" + "cd" * 20
        digest = EvmLikeAdapter().release_message_hash(burn_id, token, recipient, amount,
                                                       set_nonce)
        return {"kind": "release", "validator": self.info.evm_address, "chain": CHAIN,
                "burn_id": "0x" + burn_id.hex(), "token": token, "recipient": recipient,
                "amount": str(amount), "set_nonce": str(set_nonce),
                "signature": "0x" + eip712.sign_digest(self.secp, digest).hex()}


def event(nonce: int = 1) -> LockEvent:
    return LockEvent(CHAIN, BRIDGE, nonce, "0x" + "00" * 20, "0x" + "aa" * 20, 10**18,
                     b"\x01" * 32, "0x" + "11" * 32, 0, 5, "0x" + "22" * 32)


@pytest.fixture
def world(tmp_path):
    validators = [Validator() for _ in range(5)]
    state = {"vset": ValidatorSet(1, tuple(v.info for v in validators), 3), "loads": 0}

    def load_status() -> Status:
        state["loads"] += 1
        return Status(state["vset"])

    members = tuple(sorted(v.info.evm_address for v in validators))
    clock = Clock()
    store = Store.open(f"sqlite:///{tmp_path}/relayer.sqlite", clock)
    inbox = AttestationInbox(
        store, NETWORK, TtlCache(load_status, 60.0, clock), {CHAIN: EvmLikeAdapter()},
        {CHAIN: TtlCache(lambda: (1, members, 3), 60.0, clock)}, RelayerMetrics(), clock)
    return inbox, store, validators, state


def stored(store: Store, kind: str, key: str, epoch: int = 1) -> int:
    return len(store.attestations_for(kind, [key], epoch).get(key, []))


def test_valid_lock_attestations_are_stored_once(world):
    inbox, store, vs, _ = world
    items = [v.lock(event()) for v in vs[:3]]
    assert inbox.accept(items) == (3, 0, [])
    assert inbox.accept(items) == (0, 3, [])  # a quorum over this message is already stored
    assert stored(store, "lock", event().event_id) == 3


def test_attestations_beyond_a_quorum_are_redundant_not_verified(world):
    inbox, store, vs, _ = world
    inbox.accept([v.lock(event()) for v in vs[:3]])
    late = vs[3].lock(event())
    late["signature"] = "0x" + "00" * 64  # would not verify: it is never checked, never stored
    assert inbox.accept([late, vs[4].lock(event())]) == (0, 2, [])
    assert stored(store, "lock", event().event_id) == 3


@pytest.mark.parametrize(
    "tamper,code",
    [
        (lambda i, outsider: i | {"signature": "0x" + "00" * 64}, "invalid_signature"),
        (lambda i, outsider: i | {"body": i["body"] | {"amount": "1"}}, "invalid_signature"),
        (lambda i, outsider: outsider.lock(event()), "invalid_signature"),
        (lambda i, outsider: i | {"body": i["body"] | {"network": "other"}}, "invalid_signature"),
        (lambda i, outsider: i | {"body": i["body"] | {"epoch": "0"}}, "invalid_signature"),
        (lambda i, outsider: i | {"signature": "0x1234"}, "invalid_address"),
        (lambda i, outsider: {"kind": "mint"}, "invalid_input"),
    ],
)
def test_bad_lock_attestations_are_rejected_and_nothing_is_stored(world, tamper, code):
    inbox, store, vs, _ = world
    accepted, redundant, rejected = inbox.accept([tamper(vs[0].lock(event()), Validator())])
    assert (accepted, redundant) == (0, 0)
    assert [r["code"] for r in rejected] == [code]
    assert stored(store, "lock", event().event_id) == 0


def test_release_signatures_are_stored_only_from_the_claimed_current_member(world):
    inbox, store, vs, _ = world
    burn = os.urandom(32)
    good = vs[0].release(burn, 5)
    forged = vs[1].release(burn, 5) | {"validator": vs[2].info.evm_address}
    stale = vs[3].release(burn, 5, set_nonce=0)
    outsider = Validator().release(burn, 5)
    accepted, _, rejected = inbox.accept([good, forged, stale, outsider])
    assert accepted == 1
    assert [r["index"] for r in rejected] == [1, 2, 3]
    assert stored(store, "release", "0x" + burn.hex()) == 1


def test_a_delivery_for_a_newer_epoch_refreshes_the_cached_set_first(world):
    inbox, store, vs, state = world
    inbox.accept([vs[0].lock(event())])
    loads = state["loads"]
    rotated = [Validator() for _ in range(5)]
    state["vset"] = ValidatorSet(2, tuple(v.info for v in rotated), 3)
    accepted, _, rejected = inbox.accept([rotated[0].lock(event(2), epoch=2)])
    assert (accepted, rejected) == (1, [])
    assert state["loads"] == loads + 1
    assert stored(store, "lock", event(2).event_id, epoch=2) == 1
