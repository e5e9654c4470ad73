"""Validator-set rotation end to end on real anvil nodes, with the real ledger, relayer engine
and inbox, and real validator daemons: a quorum of the old set hands the ledger and both
bridges over to a new set, the new set's daemons then mint and release, and from that moment
the old set's signatures count nowhere (relayer inbox, ledger, bridge contract)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from eth_account import Account
from nacl.signing import SigningKey
from web3 import Web3

from adapters.base import NATIVE_TOKEN
from adapters.errors import InvalidSignature, QuorumNotMet, SubmissionReverted
from adapters.evm import devnet as evm
from ledger.types import MintRequest
from relayer.engine import _event_of
from tests.integration.stack import NETWORK, UNIT, ChainUnderTest, Stack
from validators.attestation import (
    ValidatorSet,
    lock_attestation_message,
    validator_set_message,
)
from validators.eip712 import release_digest, update_set_digest
from validators.keystore import ValidatorKeys

pytestmark = pytest.mark.integration

THRESHOLD = 3
REVERT_GAS = 1_000_000  # explicit gas skips estimation, so a refused call is mined and reverts


@pytest.fixture
def stack(tmp_path, anvil_eth, anvil_bsc):
    s = Stack(tmp_path, {"ethereum": anvil_eth, "bsc": anvil_bsc}, threshold=THRESHOLD)
    yield s
    s.close()


# ------------------------------------------------------------------------------ rotation helpers


def by_address(keys: Sequence[ValidatorKeys]) -> list[ValidatorKeys]:
    """`keys` in strictly ascending EVM address order (the bridge's rule for signers)."""
    return sorted(keys, key=lambda k: int(k.evm_address, 16))


def rotate_ledger(stack: Stack, signers: Sequence[ValidatorKeys], new_set: ValidatorSet) -> int:
    """`Ledger.rotate_validator_set` certified by `signers` over the Ed25519 rotation message
    for the ledger's current epoch. Returns the journal seq of the rotation."""
    message = validator_set_message(NETWORK, stack.ledger.validator_set().epoch, new_set)
    certificate = [(k.ed25519_public, k.sign_attestation(message)) for k in signers]
    return stack.ledger.rotate_validator_set(new_set, certificate)


def rotate_bridge(c: ChainUnderTest, signers: Sequence[ValidatorKeys], members: Sequence[str],
                  threshold: int, set_nonce: int, *, gas: int | None = None) -> Any:
    """`updateValidatorSet` on `c`'s bridge, signed by `signers` over the EIP-712
    UpdateValidatorSet digest, sent with the anvil dev key paying gas."""
    digest = update_set_digest(c.node.chain_id, c.bridge.address, validators=members,
                               threshold=threshold, set_nonce=set_nonce)
    fn = c.bridge.functions.updateValidatorSet(
        [Web3.to_checksum_address(m) for m in members], threshold, set_nonce,
        [k.sign_digest(digest) for k in by_address(signers)])
    return evm.transact(c.w3, fn, sender_key=evm.ANVIL_DEV_KEY, gas=gas)


def rotate(stack: Stack, signers: Sequence[ValidatorKeys], new_keys: Sequence[ValidatorKeys],
           *, epoch: int = 2, set_nonce: int = 2) -> ValidatorSet:
    """Hand the ledger (to `epoch`) and every bridge (to `set_nonce`) over to `new_keys`,
    threshold 3, certified by `signers` of the current set."""
    new_set = ValidatorSet(epoch, tuple(k.info for k in new_keys), THRESHOLD)
    rotate_ledger(stack, signers, new_set)
    members = sorted(k.evm_address for k in new_keys)
    for c in stack.chains.values():
        rotate_bridge(c, signers, members, THRESHOLD, set_nonce)
    return new_set


def use_daemons(stack: Stack, keys: Sequence[ValidatorKeys]) -> None:
    """Replace the running validator daemons by daemons holding `keys`."""
    for d in stack.daemons:
        d.close()
    stack.daemons = [stack._daemon(i, k) for i, k in enumerate(keys)]


def bridge_state(c: ChainUnderTest) -> tuple[int, list[str], int]:
    f = c.bridge.functions
    return (f.setNonce().call(), [a.lower() for a in f.getValidators().call()],
            f.threshold().call())


def eth_balance(stack: Stack, chain: str, address: str) -> int:
    return stack.chains[chain].w3.eth.get_balance(Web3.to_checksum_address(address))


def assert_reverts(send: Any, error: str) -> None:
    """`send(gas)` is refused by estimation naming `error`, and reverts when mined anyway."""
    with pytest.raises(SubmissionReverted, match=error):
        send(None)
    with pytest.raises(SubmissionReverted, match="reverted"):
        send(REVERT_GAS)


def record_relayer_replies(stack: Stack) -> list[dict[str, Any]]:
    """Capture every answer of the relayer's `POST /v1/attestations` from now on."""
    replies: list[dict[str, Any]] = []

    def on_response(response: httpx.Response) -> None:
        if response.request.url.path == "/v1/attestations":
            response.read()
            replies.append(response.json())

    stack.relayer_http.event_hooks["response"].append(on_response)
    return replies


# ------------------------------------------------------------------------------ tests


def test_rotation_moves_ledger_and_bridges_to_the_new_set(stack):
    old, new = stack.keys, [ValidatorKeys.generate() for _ in range(5)]
    new_set = rotate(stack, old[:THRESHOLD], new)

    vset = stack.ledger.validator_set()
    assert vset == new_set and vset.epoch == 2
    assert vset.ed25519_keys == {k.ed25519_public for k in new}
    members = sorted(k.evm_address for k in new)
    for c in stack.chains.values():
        assert bridge_state(c) == (2, members, THRESHOLD)
        assert not any(c.bridge.functions.isValidator(Web3.to_checksum_address(k.evm_address))
                       .call() for k in old)
    stack.tick()  # the relayer reads the new sets on its next run
    assert stack.engine.ledger_status.get().validator_set == new_set
    for caip2, cache in stack.engine.bridge_sets.items():
        assert cache.get() == (2, tuple(members), THRESHOLD), caip2
    stack.ledger.verify_journal()  # the rotation entry replays to epoch 2


def test_new_set_mints_and_releases_after_rotation(stack):
    new = [ValidatorKeys.generate() for _ in range(5)]
    rotate(stack, stack.keys[:THRESHOLD], new)
    use_daemons(stack, new)

    user = SigningKey.generate()
    account = bytes(user.verify_key)
    tx = stack.lock("ethereum", 3 * UNIT // 2, account)
    stack.settle()
    assert stack.balance(account, "ethereum") == 3 * UNIT // 2
    [row] = stack.engine.store.by_source_tx(tx)
    assert row.status == "transfer.executed"
    weth = next(a for a in stack.ledger.assets()
                if a.origin_chain == "eip155:31337" and a.origin_token == NATIVE_TOKEN)
    assert weth.minted_total == weth.supply == 3 * UNIT // 2  # minted exactly once
    new_ids = {k.ed25519_public_hex for k in new}
    sigs = stack.engine.store.attestations_for("lock", [row.event_key], 2)[row.event_key]
    assert len(sigs) >= THRESHOLD and {v for v, _, _ in sigs} <= new_ids
    [mint] = [e for e in stack.ledger.journal(limit=1000) if e.kind == "mint"]
    assert '"epoch":"2"' in mint.payload
    assert sum(v in mint.payload for v in new_ids) == THRESHOLD  # 3 of the 5 new members
    assert not any(k.ed25519_public_hex in mint.payload for k in stack.keys)

    payee = Account.create().address.lower()
    burn_id = stack.burn(user, "ethereum", UNIT // 2, payee)
    stack.settle()
    assert stack.status(burn_id) == "transfer.executed"
    assert eth_balance(stack, "ethereum", payee) == UNIT // 2
    assert stack.chains["ethereum"].bridge.functions.released(
        bytes.fromhex(burn_id[2:])).call() is True
    assert stack.balance(account, "ethereum") == UNIT
    new_evm = {k.evm_address for k in new}
    release_sigs = stack.engine.store.attestations_for("release", [burn_id], 2)[burn_id]
    assert len(release_sigs) >= THRESHOLD and {v for v, _, _ in release_sigs} <= new_evm
    stack.ledger.check_invariants()


def test_old_set_signatures_stop_counting_after_rotation(stack):
    old, new = stack.keys, [ValidatorKeys.generate() for _ in range(5)]
    user = SigningKey.generate()
    account = bytes(user.verify_key)
    stack.lock("ethereum", 2 * UNIT, account)  # minted by the old set, funds the bridge
    stack.settle()
    assert stack.balance(account, "ethereum") == 2 * UNIT

    rotate(stack, old[:THRESHOLD], new)
    replies = record_relayer_replies(stack)
    late_user = bytes(SigningKey.generate().verify_key)
    tx = stack.lock("ethereum", UNIT, late_user)
    payee = Account.create().address.lower()
    burn_id = stack.burn(user, "ethereum", UNIT // 2, payee)
    stack.settle(rounds=6)  # only the OLD daemons run

    [row] = stack.engine.store.by_source_tx(tx)
    assert row.status == "transfer.confirmed"
    assert stack.balance(late_user, "ethereum") == 0
    assert stack.status(burn_id) == "transfer.confirmed"
    assert eth_balance(stack, "ethereum", payee) == 0
    # The old daemons did deliver (locks re-signed under epoch 2, releases under set nonce 2),
    # and the inbox refused every one of them as not signed by a current member.
    rejected = [r for reply in replies for r in reply["rejected"]]
    assert sum(reply["accepted"] for reply in replies) == 0
    assert len(rejected) >= 2 * len(old)
    assert {r["code"] for r in rejected} == {"invalid_signature"}
    assert stack.engine.store.attestations_for("lock", [row.event_key], 2) == {}
    assert stack.engine.store.attestations_for("release", [burn_id], 2) == {}

    # Straight to the ledger: a quorum of old keys under the old epoch, and under the new one.
    event = _event_of(row)
    for epoch, code in ((1, "wrong_epoch"), (2, "invalid_signature")):
        message = lock_attestation_message(NETWORK, event, epoch)
        cert = sorted((k.ed25519_public, k.sign_attestation(message)) for k in old[:THRESHOLD])
        [result] = stack.ledger.mint_batch([MintRequest(event, epoch, cert)])
        assert (result.status, result.code) == ("rejected", code), epoch
    # Two new members padded with one old one is not a quorum either (strict certificates).
    message = lock_attestation_message(NETWORK, event, 2)
    mixed = sorted((k.ed25519_public, k.sign_attestation(message)) for k in [*new[:2], old[0]])
    [result] = stack.ledger.mint_batch([MintRequest(event, 2, mixed)])
    assert (result.status, result.code) == ("rejected", "invalid_signature")
    assert stack.balance(late_user, "ethereum") == 0

    # Straight to the bridge: a release of the real burn signed by three old keys.
    c = stack.chains["ethereum"]
    burn = bytes.fromhex(burn_id[2:])
    for set_nonce in (1, 2):
        digest = release_digest(c.node.chain_id, c.bridge.address, burn_id=burn,
                                token=NATIVE_TOKEN, recipient=payee, amount=UNIT // 2,
                                set_nonce=set_nonce)
        sigs = [k.sign_digest(digest) for k in by_address(old[:THRESHOLD])]
        fn = c.bridge.functions.release(burn, NATIVE_TOKEN, Web3.to_checksum_address(payee),
                                        UNIT // 2, sigs)
        assert_reverts(lambda gas, fn=fn: evm.transact(c.w3, fn, sender_key=evm.ANVIL_DEV_KEY,
                                                       gas=gas), "NotValidator")
        assert eth_balance(stack, "ethereum", payee) == 0
        assert c.bridge.functions.released(burn).call() is False
    assert eth_balance(stack, "ethereum", c.bridge.address) == 3 * UNIT

    # The new set picks up what the old one could not finish: one mint, one release.
    use_daemons(stack, new)
    stack.settle()
    assert stack.balance(late_user, "ethereum") == UNIT
    assert stack.status(row.event_key) == "transfer.executed"
    assert stack.status(burn_id) == "transfer.executed"
    assert eth_balance(stack, "ethereum", payee) == UNIT // 2
    stack.ledger.check_invariants()


def test_rotation_signed_by_less_than_a_quorum_of_the_current_set_is_refused(stack):
    old, new = stack.keys, [ValidatorKeys.generate() for _ in range(5)]
    genesis = stack.ledger.validator_set()
    new_set = ValidatorSet(2, tuple(k.info for k in new), THRESHOLD)
    members = sorted(k.evm_address for k in new)
    before = {name: bridge_state(c) for name, c in stack.chains.items()}
    head = stack.ledger.status().journal_seq

    for signers, ledger_error, bridge_error in (
        (old[: THRESHOLD - 1], QuorumNotMet, "QuorumNotMet"),
        ([*old[: THRESHOLD - 1], new[0]], InvalidSignature, "NotValidator"),  # padded
    ):
        with pytest.raises(ledger_error):
            rotate_ledger(stack, signers, new_set)
        assert stack.ledger.validator_set() == genesis
        assert stack.ledger.status().journal_seq == head
        for name, c in stack.chains.items():
            assert_reverts(lambda gas, c=c, s=signers: rotate_bridge(
                c, s, members, THRESHOLD, 2, gas=gas), bridge_error)
            assert bridge_state(c) == before[name]

    # Nothing was consumed: the same rotation with a quorum still goes through.
    rotate(stack, old[:THRESHOLD], new)
    assert stack.ledger.validator_set().epoch == 2
    assert all(bridge_state(c)[0] == 2 for c in stack.chains.values())


def test_new_set_signatures_delivered_right_after_rotation_are_accepted_not_lost(stack):
    """The relayer caches the validator sets; a delivery naming a newer epoch or set nonce
    must refresh that cache rather than be refused (a refused signature is never re-sent)."""
    user = SigningKey.generate()
    account = bytes(user.verify_key)
    stack.lock("ethereum", UNIT, account)
    stack.settle(rounds=1)  # the relayer has now cached epoch 1 and set nonce 1
    burn_payee = Account.create().address.lower()
    lock_tx = stack.lock("ethereum", 2 * UNIT, account)
    stack.mine(stack.depth + 1)
    stack.engine.tick()  # observe and confirm under the old caches, no invalidation
    new = [ValidatorKeys.generate() for _ in range(5)]
    rotate(stack, stack.keys[:THRESHOLD], new)
    burn_id = stack.burn(user, "ethereum", UNIT // 4, burn_payee)
    stack.engine.watch_ledger()
    use_daemons(stack, new)
    replies = record_relayer_replies(stack)
    stack.run_validators()  # straight after the rotation: caches still hold the old sets
    assert replies and all(r["rejected"] == [] for r in replies)
    for _ in range(3):
        stack.mine(stack.depth + 1)
        stack.engine.tick()
    [row] = stack.engine.store.by_source_tx(lock_tx)
    assert row.status == "transfer.executed"
    assert stack.balance(account, "ethereum") == 3 * UNIT - UNIT // 4
    assert stack.status(burn_id) == "transfer.executed"
    assert eth_balance(stack, "ethereum", burn_payee) == UNIT // 4
