"""Bridge.sol on a real anvil: locks, quorum-signed releases, set rotation and pause.

Signatures come from validators/eip712.py (the same code the validators run), so these tests
also pin the Python digests to the contract's. Every refusal is checked twice: by gas
estimation (which names the custom error) and by a mined transaction with explicit gas, after
which balances and `released` are asserted unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import coincurve
import pytest
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from adapters.base import NATIVE_TOKEN
from adapters.errors import SubmissionReverted
from adapters.evm.devnet import (
    ANVIL_DEV_KEY,
    AnvilNode,
    connect,
    deploy_bridge,
    deploy_test_token,
    fund,
    transact,
)
from contracts import load_artifact
from validators.eip712 import (
    SECP256K1_N,
    address_of,
    domain_separator,
    release_digest,
    set_paused_digest,
    set_token_allowed_digest,
    sign_digest,
    update_set_digest,
)

pytestmark = pytest.mark.integration

CHAIN_ID = 31337
ETHER = 10**18
THRESHOLD = 3
REVERT_GAS = 1_000_000  # explicit limit: skips estimation so the refused tx is mined and reverts


@dataclass(frozen=True)
class Signer:
    key: bytes
    address: str


def new_signers(count: int) -> list[Signer]:
    """`count` fresh secp256k1 keys (os.urandom via coincurve), sorted by address."""
    keys = [coincurve.PrivateKey(os.urandom(32)).secret for _ in range(count)]
    return sorted((Signer(k, address_of(k)) for k in keys), key=lambda s: int(s.address, 16))


def sign_sorted(digest: bytes, signers: Sequence[Signer]) -> list[bytes]:
    """Signatures over `digest`, ordered by strictly ascending signer address."""
    return [sign_digest(s.key, digest) for s in sorted(signers, key=lambda s: int(s.address, 16))]


def cs(address: str) -> str:
    return Web3.to_checksum_address(address)


@dataclass
class Env:
    w3: Web3
    bridge: Contract
    token: Contract
    fee_token: Contract
    validators: list[Signer]
    user_key: str
    user: str

    def eth(self, address: str) -> int:
        return self.w3.eth.get_balance(cs(address))

    def balance(self, token: Contract, address: str) -> int:
        return token.functions.balanceOf(cs(address)).call()

    def call(self, fn: str, *args: Any) -> Any:
        return getattr(self.bridge.functions, fn)(*args).call()


def bind(w3: Web3, name: str, address: str) -> Contract:
    return w3.eth.contract(address=cs(address), abi=load_artifact(name).abi)


def new_user(w3: Web3) -> tuple[str, str]:
    key = "0x" + coincurve.PrivateKey(os.urandom(32)).secret.hex()
    fund(w3, address_of(bytes.fromhex(key[2:])), 100 * ETHER)
    return key, address_of(bytes.fromhex(key[2:]))


@pytest.fixture
def env(w3_eth: Web3) -> Env:
    """A fresh bridge (5 validators, threshold 3) allowing native, TestToken and FeeToken."""
    validators = new_signers(5)
    token = deploy_test_token(w3_eth, sender_key=ANVIL_DEV_KEY)
    fee = deploy_test_token(
        w3_eth, sender_key=ANVIL_DEV_KEY, name="Fee", symbol="FEE", fee_on_transfer=True
    )
    bridge = deploy_bridge(
        w3_eth, [v.address for v in validators], THRESHOLD, [NATIVE_TOKEN, token, fee],
        sender_key=ANVIL_DEV_KEY,
    )
    user_key, user = new_user(w3_eth)
    return Env(
        w3_eth, bind(w3_eth, "Bridge", bridge), bind(w3_eth, "TestToken", token),
        bind(w3_eth, "FeeToken", fee), validators, user_key, user,
    )


def lock(env: Env, token: str, amount: int, recipient: bytes, *, value_wei: int | None = None,
         gas: int | None = None) -> dict[str, Any]:
    """Lock from `env.user`; returns the decoded `Locked` event args."""
    value = (amount if token == NATIVE_TOKEN else 0) if value_wei is None else value_wei
    receipt = transact(
        env.w3, env.bridge.functions.lock(cs(token), amount, recipient),
        sender_key=env.user_key, value_wei=value, gas=gas,
    )
    (event,) = env.bridge.events.Locked().process_receipt(receipt, errors=DISCARD)
    return dict(event["args"])


def mint_and_approve(env: Env, token: Contract, amount: int) -> None:
    transact(env.w3, token.functions.mint(cs(env.user), amount), sender_key=ANVIL_DEV_KEY)
    transact(env.w3, token.functions.approve(env.bridge.address, amount), sender_key=env.user_key)


def release_sigs(env: Env, signers: Sequence[Signer], burn_id: bytes, token: str,
                 recipient: str, amount: int, *, set_nonce: int = 1,
                 chain_id: int = CHAIN_ID) -> list[bytes]:
    digest = release_digest(
        chain_id, env.bridge.address, burn_id=burn_id, token=token, recipient=recipient,
        amount=amount, set_nonce=set_nonce,
    )
    return sign_sorted(digest, signers)


def release(env: Env, burn_id: bytes, token: str, recipient: str, amount: int,
            sigs: Sequence[bytes], *, gas: int | None = None) -> Any:
    fn = env.bridge.functions.release(burn_id, cs(token), cs(recipient), amount, list(sigs))
    return transact(env.w3, fn, sender_key=ANVIL_DEV_KEY, gas=gas)


def assert_refused(send: Any, error: str) -> None:
    """`send(gas)` is refused by estimation naming `error`, and reverts when mined anyway."""
    with pytest.raises(SubmissionReverted, match=error):
        send(None)
    with pytest.raises(SubmissionReverted, match="reverted"):
        send(REVERT_GAS)


def fresh_address() -> str:
    return "0x" + os.urandom(20).hex()


# ------------------------------------------------------------------------------------ lock


def test_domain_separator_matches_python_eip712(env: Env) -> None:
    expected = domain_separator(CHAIN_ID, env.bridge.address)
    assert env.call("domainSeparator") == expected


def test_lock_native_escrows_value_and_emits_increasing_nonces(env: Env) -> None:
    recipient = os.urandom(32)
    first = lock(env, NATIVE_TOKEN, 2 * ETHER, recipient)
    second = lock(env, NATIVE_TOKEN, 3 * ETHER, recipient)
    assert (first["nonce"], second["nonce"]) == (1, 2)
    assert first["token"].lower() == NATIVE_TOKEN
    assert first["sender"].lower() == env.user
    assert (first["amount"], second["amount"]) == (2 * ETHER, 3 * ETHER)
    assert first["recipient"] == recipient
    assert env.eth(env.bridge.address) == 5 * ETHER
    assert env.call("lockNonce") == 2
    assert env.call("totalLocked", cs(NATIVE_TOKEN)) == 5 * ETHER


def test_lock_erc20_pulls_tokens_and_emits_credited_amount(env: Env) -> None:
    mint_and_approve(env, env.token, 1_000)
    event = lock(env, env.token.address.lower(), 400, os.urandom(32))
    assert (event["nonce"], event["amount"]) == (1, 400)
    assert event["token"] == env.token.address
    assert env.balance(env.token, env.bridge.address) == 400
    assert env.balance(env.token, env.user) == 600
    assert env.call("totalLocked", env.token.address) == 400


def test_lock_fee_on_transfer_token_credits_only_the_amount_received(env: Env) -> None:
    mint_and_approve(env, env.fee_token, 1_000)
    event = lock(env, env.fee_token.address.lower(), 1_000, os.urandom(32))
    assert event["amount"] == 990  # 1% burned in transit
    assert env.balance(env.fee_token, env.bridge.address) == 990
    assert env.call("totalLocked", env.fee_token.address) == 990


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("native_zero_amount", "ZeroAmount"),
        ("erc20_zero_amount", "ZeroAmount"),
        ("token_not_allow_listed", "TokenNotAllowed"),
        ("native_value_mismatch", "ValueMismatch"),
        ("erc20_with_value", "ValueMismatch"),
        ("zero_recipient", "ZeroRecipient"),
    ],
)
def test_lock_refuses_bad_input_and_moves_nothing(env: Env, case: str, error: str) -> None:
    mint_and_approve(env, env.token, 1_000)
    other = deploy_test_token(env.w3, sender_key=ANVIL_DEV_KEY, name="Other", symbol="OTH")
    transact(env.w3, bind(env.w3, "TestToken", other).functions.mint(cs(env.user), 10),
             sender_key=ANVIL_DEV_KEY)
    token = env.token.address.lower()
    args: dict[str, tuple[str, int, bytes, int | None]] = {
        "native_zero_amount": (NATIVE_TOKEN, 0, os.urandom(32), None),
        "erc20_zero_amount": (token, 0, os.urandom(32), None),
        "token_not_allow_listed": (other, 10, os.urandom(32), None),
        "native_value_mismatch": (NATIVE_TOKEN, ETHER, os.urandom(32), ETHER - 1),
        "erc20_with_value": (token, 10, os.urandom(32), 1),
        "zero_recipient": (NATIVE_TOKEN, ETHER, bytes(32), None),
    }
    tok, amount, recipient, value = args[case]
    assert_refused(lambda gas: lock(env, tok, amount, recipient, value_wei=value, gas=gas), error)
    assert env.eth(env.bridge.address) == 0
    assert env.balance(env.token, env.bridge.address) == 0
    assert env.call("lockNonce") == 0


def test_lock_native_refused_when_native_coin_not_allow_listed(w3_eth: Web3) -> None:
    validators = new_signers(3)
    token = deploy_test_token(w3_eth, sender_key=ANVIL_DEV_KEY)
    bridge = deploy_bridge(w3_eth, [v.address for v in validators], 2, [token],
                           sender_key=ANVIL_DEV_KEY)
    user_key, _ = new_user(w3_eth)
    env = Env(w3_eth, bind(w3_eth, "Bridge", bridge), bind(w3_eth, "TestToken", token),
              bind(w3_eth, "TestToken", token), validators, user_key, "")
    assert_refused(lambda gas: lock(env, NATIVE_TOKEN, ETHER, os.urandom(32), gas=gas),
                   "TokenNotAllowed")
    assert env.eth(bridge) == 0


# ------------------------------------------------------------------------------------ release


def test_release_native_with_three_of_five_pays_exactly_once(env: Env) -> None:
    lock(env, NATIVE_TOKEN, 5 * ETHER, os.urandom(32))
    burn_id, recipient = os.urandom(32), fresh_address()
    signers = [env.validators[0], env.validators[2], env.validators[4]]
    sigs = release_sigs(env, signers, burn_id, NATIVE_TOKEN, recipient, 2 * ETHER)
    receipt = release(env, burn_id, NATIVE_TOKEN, recipient, 2 * ETHER, sigs)
    (event,) = env.bridge.events.Released().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["burnId"] == burn_id
    assert event["args"]["amount"] == 2 * ETHER
    assert env.eth(recipient) == 2 * ETHER
    assert env.eth(env.bridge.address) == 3 * ETHER
    assert env.call("released", burn_id) is True
    assert env.call("totalReleased", cs(NATIVE_TOKEN)) == 2 * ETHER

    other_sigs = release_sigs(env, env.validators[1:4], burn_id, NATIVE_TOKEN, recipient, 2 * ETHER)
    for replay in (sigs, other_sigs):
        assert_refused(
            lambda gas, s=replay: release(env, burn_id, NATIVE_TOKEN, recipient, 2 * ETHER, s,
                                          gas=gas),
            "AlreadyReleased",
        )
    assert env.eth(recipient) == 2 * ETHER
    assert env.eth(env.bridge.address) == 3 * ETHER


def test_release_erc20_pays_recipient_exact_amount(env: Env) -> None:
    mint_and_approve(env, env.token, 1_000)
    lock(env, env.token.address.lower(), 1_000, os.urandom(32))
    burn_id, recipient, token = os.urandom(32), fresh_address(), env.token.address.lower()
    sigs = release_sigs(env, env.validators[:3], burn_id, token, recipient, 250)
    release(env, burn_id, token, recipient, 250, sigs)
    assert env.balance(env.token, recipient) == 250
    assert env.balance(env.token, env.bridge.address) == 750
    assert env.call("totalReleased", env.token.address) == 250


def test_release_pays_token_whose_transfer_returns_no_bool(env: Env) -> None:
    mint_and_approve(env, env.fee_token, 10_000)
    lock(env, env.fee_token.address.lower(), 10_000, os.urandom(32))  # bridge holds 9_900
    burn_id, recipient, token = os.urandom(32), fresh_address(), env.fee_token.address.lower()
    sigs = release_sigs(env, env.validators[2:], burn_id, token, recipient, 1_000)
    release(env, burn_id, token, recipient, 1_000, sigs)
    assert env.balance(env.fee_token, env.bridge.address) == 8_900
    assert env.balance(env.fee_token, recipient) == 990  # the token's own 1% fee


def _bad_sigs(env: Env, case: str, burn_id: bytes, recipient: str, amount: int) -> list[bytes]:
    v = env.validators
    good = release_sigs(env, v[:3], burn_id, NATIVE_TOKEN, recipient, amount)
    match case:
        case "fewer_than_threshold":
            return good[:2]
        case "duplicate_signer":
            return [good[0], good[0], good[1]]
        case "unsorted_signers":
            return list(reversed(good))
        case "non_member":
            outsider = new_signers(1)
            return release_sigs(env, [v[0], v[1], *outsider], burn_id, NATIVE_TOKEN, recipient,
                                amount)
        case "high_s":
            r, s, rec = good[0][:32], int.from_bytes(good[0][32:64], "big"), good[0][64]
            flipped = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - rec])
            return [flipped, *good[1:]]
        case "bad_v":
            return [good[0][:64] + bytes([29]), *good[1:]]
        case "short_signature":
            return [good[0][:64], *good[1:]]
        case "wrong_chain_id":
            return release_sigs(env, v[:3], burn_id, NATIVE_TOKEN, recipient, amount,
                                chain_id=CHAIN_ID + 1)
        case "wrong_set_nonce":
            return release_sigs(env, v[:3], burn_id, NATIVE_TOKEN, recipient, amount, set_nonce=2)
        case "wrong_amount":
            return release_sigs(env, v[:3], burn_id, NATIVE_TOKEN, recipient, amount + 1)
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("fewer_than_threshold", "QuorumNotMet"),
        ("duplicate_signer", "SignersNotAscending"),
        ("unsorted_signers", "SignersNotAscending"),
        ("non_member", "NotValidator"),
        ("high_s", "HighS"),
        ("bad_v", "BadSignatureV"),
        ("short_signature", "BadSignatureLength"),
        ("wrong_chain_id", "NotValidator"),
        ("wrong_set_nonce", "NotValidator"),
        ("wrong_amount", "NotValidator"),
    ],
)
def test_release_with_invalid_quorum_reverts_and_pays_nothing(
    env: Env, case: str, error: str
) -> None:
    lock(env, NATIVE_TOKEN, 5 * ETHER, os.urandom(32))
    burn_id, recipient = os.urandom(32), fresh_address()
    sigs = _bad_sigs(env, case, burn_id, recipient, ETHER)
    assert_refused(
        lambda gas: release(env, burn_id, NATIVE_TOKEN, recipient, ETHER, sigs, gas=gas), error
    )
    assert env.eth(recipient) == 0
    assert env.eth(env.bridge.address) == 5 * ETHER
    assert env.call("released", burn_id) is False
    assert env.call("totalReleased", cs(NATIVE_TOKEN)) == 0


def test_release_signed_for_one_chain_does_not_pay_on_another(
    env: Env, anvil_bsc: AnvilNode
) -> None:
    w3_bsc = connect(anvil_bsc.rpc_url)
    bsc_bridge = deploy_bridge(w3_bsc, [v.address for v in env.validators], THRESHOLD,
                               [NATIVE_TOKEN], sender_key=ANVIL_DEV_KEY)
    fund(w3_bsc, bsc_bridge, 10 * ETHER)
    bsc = Env(w3_bsc, bind(w3_bsc, "Bridge", bsc_bridge), env.token, env.fee_token,
              env.validators, env.user_key, env.user)
    burn_id, recipient = os.urandom(32), fresh_address()
    digest = release_digest(CHAIN_ID, bsc_bridge, burn_id=burn_id, token=NATIVE_TOKEN,
                            recipient=recipient, amount=ETHER, set_nonce=1)
    sigs = sign_sorted(digest, env.validators[:3])
    assert_refused(
        lambda gas: release(bsc, burn_id, NATIVE_TOKEN, recipient, ETHER, sigs, gas=gas),
        "NotValidator",
    )
    assert bsc.eth(recipient) == 0
    assert bsc.eth(bsc_bridge) == 10 * ETHER


# ------------------------------------------------------------------------------------ governance


def update_set(env: Env, signers: Sequence[Signer], members: Sequence[str], threshold: int,
               set_nonce: int, *, gas: int | None = None) -> Any:
    digest = update_set_digest(CHAIN_ID, env.bridge.address, validators=members,
                               threshold=threshold, set_nonce=set_nonce)
    fn = env.bridge.functions.updateValidatorSet(
        [cs(m) for m in members], threshold, set_nonce, sign_sorted(digest, signers)
    )
    return transact(env.w3, fn, sender_key=ANVIL_DEV_KEY, gas=gas)


def set_paused(env: Env, paused: bool, op_nonce: int, signers: Sequence[Signer]) -> Any:
    digest = set_paused_digest(CHAIN_ID, env.bridge.address, paused=paused, op_nonce=op_nonce)
    fn = env.bridge.functions.setPaused(paused, sign_sorted(digest, signers))
    return transact(env.w3, fn, sender_key=ANVIL_DEV_KEY)


def test_rotated_set_pays_while_dropped_members_stop_counting(env: Env) -> None:
    lock(env, NATIVE_TOKEN, 5 * ETHER, os.urandom(32))
    old = env.validators
    fresh = new_signers(3)
    members = [old[0].address, old[1].address] + [f.address for f in fresh]
    update_set(env, old[2:], members, 3, 2)
    assert [a.lower() for a in env.call("getValidators")] == members
    assert (env.call("setNonce"), env.call("threshold")) == (2, 3)
    assert env.call("isValidator", cs(old[4].address)) is False
    assert env.call("isValidator", cs(fresh[0].address)) is True

    burn_id, recipient = os.urandom(32), fresh_address()
    for signers, set_nonce in ((old[2:], 2), (old[2:], 1), ([old[0], old[1], old[2]], 2)):
        sigs = release_sigs(env, signers, burn_id, NATIVE_TOKEN, recipient, ETHER,
                            set_nonce=set_nonce)
        assert_refused(
            lambda gas, s=sigs: release(env, burn_id, NATIVE_TOKEN, recipient, ETHER, s, gas=gas),
            "NotValidator",
        )
    assert env.eth(recipient) == 0

    sigs = release_sigs(env, [old[0], old[1], fresh[0]], burn_id, NATIVE_TOKEN, recipient, ETHER,
                        set_nonce=2)
    release(env, burn_id, NATIVE_TOKEN, recipient, ETHER, sigs)
    assert env.eth(recipient) == ETHER
    assert env.eth(env.bridge.address) == 4 * ETHER


def test_old_set_cannot_update_again_after_rotation(env: Env) -> None:
    fresh = new_signers(3)
    update_set(env, env.validators[:3], [f.address for f in fresh], 2, 2)
    assert_refused(
        lambda gas: update_set(env, env.validators[:3], [v.address for v in env.validators], 3,
                               3, gas=gas),
        "NotValidator",
    )
    assert env.call("setNonce") == 2


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("threshold_zero", "BadThreshold"),
        ("threshold_above_size", "BadThreshold"),
        ("same_set_nonce", "StaleSetNonce"),
        ("lower_set_nonce", "StaleSetNonce"),
        ("duplicate_member", "BadValidator"),
        ("zero_member", "BadValidator"),
        ("below_quorum", "QuorumNotMet"),
    ],
)
def test_update_validator_set_refuses_invalid_sets(env: Env, case: str, error: str) -> None:
    update_set(env, env.validators[:3], [v.address for v in env.validators], THRESHOLD, 5)
    fresh = [f.address for f in new_signers(3)]
    signers: Sequence[Signer] = env.validators[:3]
    members, threshold, set_nonce = fresh, 2, 6
    match case:
        case "threshold_zero":
            threshold = 0
        case "threshold_above_size":
            threshold = 4
        case "same_set_nonce":
            set_nonce = 5
        case "lower_set_nonce":
            set_nonce = 4
        case "duplicate_member":
            members = [fresh[0], fresh[1], fresh[0]]
        case "zero_member":
            members = [fresh[0], NATIVE_TOKEN]
        case "below_quorum":
            signers = env.validators[:2]
    assert_refused(
        lambda gas: update_set(env, signers, members, threshold, set_nonce, gas=gas), error
    )
    assert env.call("setNonce") == 5
    assert env.call("threshold") == THRESHOLD
    assert [a.lower() for a in env.call("getValidators")] == [v.address for v in env.validators]


@pytest.mark.parametrize(
    ("threshold", "duplicate"), [(0, False), (6, False), (3, True)], ids=["zero", "above", "dup"]
)
def test_constructor_refuses_invalid_initial_set(
    w3_eth: Web3, threshold: int, duplicate: bool
) -> None:
    members = [v.address for v in new_signers(5)]
    if duplicate:
        members[4] = members[0]
    with pytest.raises(SubmissionReverted, match="BadThreshold|BadValidator"):
        deploy_bridge(w3_eth, members, threshold, [NATIVE_TOKEN], sender_key=ANVIL_DEV_KEY)


def test_pause_blocks_lock_and_release_until_unpaused(env: Env) -> None:
    lock(env, NATIVE_TOKEN, 5 * ETHER, os.urandom(32))
    set_paused(env, True, 0, env.validators[1:4])
    assert (env.call("paused"), env.call("opNonce")) == (True, 1)

    burn_id, recipient = os.urandom(32), fresh_address()
    sigs = release_sigs(env, env.validators[:3], burn_id, NATIVE_TOKEN, recipient, ETHER)
    assert_refused(lambda gas: lock(env, NATIVE_TOKEN, ETHER, os.urandom(32), gas=gas),
                   "BridgePaused")
    assert_refused(
        lambda gas: release(env, burn_id, NATIVE_TOKEN, recipient, ETHER, sigs, gas=gas),
        "BridgePaused",
    )
    assert env.eth(env.bridge.address) == 5 * ETHER
    assert env.eth(recipient) == 0

    set_paused(env, False, 1, env.validators[:3])
    assert (env.call("paused"), env.call("opNonce")) == (False, 2)
    assert lock(env, NATIVE_TOKEN, ETHER, os.urandom(32))["nonce"] == 2
    release(env, burn_id, NATIVE_TOKEN, recipient, ETHER, sigs)
    assert env.eth(recipient) == ETHER
    assert env.eth(env.bridge.address) == 5 * ETHER


def test_governance_signatures_cannot_be_replayed_after_op_nonce_advances(env: Env) -> None:
    digest = set_paused_digest(CHAIN_ID, env.bridge.address, paused=True, op_nonce=0)
    sigs = sign_sorted(digest, env.validators[:3])
    transact(env.w3, env.bridge.functions.setPaused(True, sigs), sender_key=ANVIL_DEV_KEY)
    set_paused(env, False, 1, env.validators[:3])
    assert_refused(
        lambda gas: transact(env.w3, env.bridge.functions.setPaused(True, sigs),
                             sender_key=ANVIL_DEV_KEY, gas=gas),
        "NotValidator",
    )
    assert env.call("paused") is False


def test_disallowing_a_token_stops_locks_but_not_releases(env: Env) -> None:
    mint_and_approve(env, env.token, 1_000)
    token = env.token.address.lower()
    lock(env, token, 500, os.urandom(32))
    digest = set_token_allowed_digest(CHAIN_ID, env.bridge.address, token=token, allowed=False,
                                      op_nonce=0)
    fn = env.bridge.functions.setTokenAllowed(env.token.address, False,
                                              sign_sorted(digest, env.validators[:3]))
    transact(env.w3, fn, sender_key=ANVIL_DEV_KEY)
    assert env.call("allowedTokens", env.token.address) is False
    assert env.call("opNonce") == 1

    assert_refused(lambda gas: lock(env, token, 500, os.urandom(32), gas=gas), "TokenNotAllowed")
    assert env.balance(env.token, env.bridge.address) == 500

    burn_id, recipient = os.urandom(32), fresh_address()
    release(env, burn_id, token, recipient, 200,
            release_sigs(env, env.validators[:3], burn_id, token, recipient, 200))
    assert env.balance(env.token, recipient) == 200
