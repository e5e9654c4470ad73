"""HTLC.sol and htlc/evm.py on a real anvil: lock, redeem, refund, and learning the secret.

Every refusal is checked twice where a transaction is involved: by gas estimation (which names
the custom error, translated by htlc/evm.py into `htlc.errors`) and by a mined transaction with
explicit gas, after which balances and the HTLC's state are asserted unchanged. Chain time is
moved with ``evm_increaseTime`` / ``evm_setNextBlockTimestamp`` and ``evm_mine``, never slept.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import coincurve
import pytest
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import RPCEndpoint, TxReceipt

from adapters.base import NATIVE_TOKEN
from adapters.errors import BridgeError, SubmissionReverted, ValidationError
from adapters.evm.devnet import ANVIL_DEV_KEY, deploy_test_token, fund, transact
from contracts import load_artifact
from htlc.errors import (
    BadPreimage,
    HtlcAlreadySettled,
    HtlcExpired,
    HtlcNotExpired,
    TimelockTooShort,
    UnknownHtlc,
)
from htlc.evm import (
    HtlcState,
    compute_id,
    deploy_htlc,
    find_preimage,
    htlc_contract,
    htlc_info,
    htlc_state,
    lock,
    pending_preimage,
    redeem,
    refund,
)
from validators.eip712 import address_of

pytestmark = pytest.mark.integration

CHAIN_ID = 31337
ETHER = 10**18
LOCK_S = 3_600  # timelock distance from the latest block's timestamp
REVERT_GAS = 500_000  # explicit limit: skips estimation so the refused tx is mined and reverts


def cs(address: str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    reply = w3.provider.make_request(RPCEndpoint(method), list(params))
    assert not reply.get("error"), reply
    return reply.get("result")


def chain_now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def advance(w3: Web3, seconds: int) -> None:
    rpc(w3, "evm_increaseTime", seconds)
    rpc(w3, "evm_mine")


def new_key() -> tuple[str, str]:
    secret = coincurve.PrivateKey(os.urandom(32)).secret
    return "0x" + secret.hex(), address_of(secret)


def fresh_address() -> str:
    return "0x" + os.urandom(20).hex()


def new_secret() -> tuple[bytes, bytes]:
    secret = os.urandom(32)
    return secret, hashlib.sha256(secret).digest()


@dataclass
class Env:
    w3: Web3
    htlc: Contract
    token: Contract
    fee_token: Contract
    sender_key: str
    sender: str
    recipient: str

    def eth(self, address: str) -> int:
        return self.w3.eth.get_balance(cs(address))

    def balance(self, token: Contract, address: str) -> int:
        return int(token.functions.balanceOf(cs(address)).call())

    def receipt(self, tx_hash: str) -> TxReceipt:
        return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]

    def fee_wei(self, tx_hash: str) -> int:
        receipt = self.receipt(tx_hash)
        return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])

    def lock(self, amount: int, hashlock: bytes, *, token: str = NATIVE_TOKEN,
             timelock: int | None = None, gas: int | None = None) -> tuple[bytes, str]:
        return lock(self.w3, self.htlc, recipient=self.recipient, token=token, amount=amount,
                    hashlock=hashlock, timelock=timelock or chain_now(self.w3) + LOCK_S,
                    sender_key=self.sender_key, gas=gas)

    def mint_and_approve(self, token: Contract, amount: int) -> None:
        transact(self.w3, token.functions.mint(cs(self.sender), amount), sender_key=ANVIL_DEV_KEY)
        transact(self.w3, token.functions.approve(self.htlc.address, amount),
                 sender_key=self.sender_key)


def bind(w3: Web3, name: str, address: str) -> Contract:
    return w3.eth.contract(address=cs(address), abi=load_artifact(name).abi)


@pytest.fixture
def env(w3_eth: Web3) -> Env:
    """A fresh HTLC, TestToken and FeeToken; a funded sender and an empty recipient."""
    htlc = htlc_contract(w3_eth, deploy_htlc(w3_eth, sender_key=ANVIL_DEV_KEY))
    token = deploy_test_token(w3_eth, sender_key=ANVIL_DEV_KEY)
    fee = deploy_test_token(w3_eth, sender_key=ANVIL_DEV_KEY, name="Fee", symbol="FEE",
                            fee_on_transfer=True)
    sender_key, sender = new_key()
    fund(w3_eth, sender, 100 * ETHER)
    return Env(w3_eth, htlc, bind(w3_eth, "TestToken", token), bind(w3_eth, "FeeToken", fee),
               sender_key, sender, fresh_address())


def assert_refused(send: Callable[[int | None], object], error: type[BridgeError],
                   name: str) -> None:
    """`send(gas)` is refused by estimation as `error` naming `name`; mined anyway, it reverts."""
    with pytest.raises(error, match=name):
        send(None)
    with pytest.raises(SubmissionReverted, match="reverted"):
        send(REVERT_GAS)


def raw_lock(env: Env, htlc_id: bytes, amount: int, hashlock: bytes, timelock: int, *,
             token: str = NATIVE_TOKEN, recipient: str | None = None,
             value_wei: int | None = None, gas: int | None = None) -> TxReceipt:
    """`lock` sent straight to the contract (no Python-side id), from `env.sender`."""
    call = env.htlc.functions.lock(htlc_id, cs(recipient or env.recipient), cs(token), amount,
                                   hashlock, timelock)
    value = (amount if token == NATIVE_TOKEN else 0) if value_wei is None else value_wei
    return transact(env.w3, call, sender_key=env.sender_key, value_wei=value, gas=gas)


def raw_redeem(env: Env, htlc_id: bytes, preimage: bytes, gas: int | None) -> TxReceipt:
    """`redeem` sent straight to the contract: no Python-side preimage check."""
    return transact(env.w3, env.htlc.functions.redeem(htlc_id, preimage),
                    sender_key=ANVIL_DEV_KEY, gas=gas)


# ------------------------------------------------------------------------------------ id


def test_compute_id_equals_the_contract_compute_id(env: Env) -> None:
    _, hashlock = new_secret()
    timelock = chain_now(env.w3) + LOCK_S
    token = env.token.address.lower()
    expected = env.htlc.functions.computeId(
        cs(env.sender), cs(env.recipient), cs(token), 5, hashlock, timelock
    ).call()
    assert compute_id(chain_id=CHAIN_ID, contract=env.htlc.address, sender=env.sender,
                      recipient=env.recipient, token=token, amount=5, hashlock=hashlock,
                      timelock=timelock) == expected
    assert compute_id(chain_id=CHAIN_ID + 1, contract=env.htlc.address, sender=env.sender,
                      recipient=env.recipient, token=token, amount=5, hashlock=hashlock,
                      timelock=timelock) != expected


@pytest.mark.parametrize("bad", ["hashlock", "amount", "address"])
def test_compute_id_refuses_malformed_parameters(bad: str) -> None:
    args: dict[str, Any] = {
        "chain_id": CHAIN_ID, "contract": fresh_address(), "sender": fresh_address(),
        "recipient": fresh_address(), "token": NATIVE_TOKEN, "amount": 1, "hashlock": bytes(32),
        "timelock": 1,
    }
    overrides: dict[str, dict[str, Any]] = {
        "hashlock": {"hashlock": bytes(31)}, "amount": {"amount": 0},
        "address": {"recipient": "0x1234"},
    }
    args.update(overrides[bad])
    with pytest.raises(ValidationError):
        compute_id(**args)


# ------------------------------------------------------------------------------------ happy paths


def test_native_lock_then_redeem_pays_the_recipient_exactly(env: Env) -> None:
    secret, hashlock = new_secret()
    before = env.eth(env.sender)
    timelock = chain_now(env.w3) + LOCK_S
    htlc_id, lock_tx = env.lock(2 * ETHER, hashlock, timelock=timelock)

    assert env.eth(env.sender) == before - 2 * ETHER - env.fee_wei(lock_tx)
    assert env.eth(env.htlc.address) == 2 * ETHER
    (event,) = env.htlc.events.Locked().process_receipt(env.receipt(lock_tx), errors=DISCARD)
    assert event["args"]["id"] == htlc_id
    assert (event["args"]["sender"].lower(), event["args"]["recipient"].lower()) == (
        env.sender, env.recipient)
    assert event["args"]["token"].lower() == NATIVE_TOKEN
    assert (event["args"]["amount"], event["args"]["hashlock"], event["args"]["timelock"]) == (
        2 * ETHER, hashlock, timelock)
    info = htlc_info(env.w3, env.htlc, htlc_id)
    assert (info.sender, info.recipient, info.token) == (env.sender, env.recipient, NATIVE_TOKEN)
    assert (info.amount, info.hashlock, info.timelock) == (2 * ETHER, hashlock, timelock)
    assert info.state is HtlcState.LOCKED

    redeem_tx = redeem(env.w3, env.htlc, htlc_id, secret, sender_key=ANVIL_DEV_KEY)  # anyone
    assert env.eth(env.recipient) == 2 * ETHER
    assert env.eth(env.htlc.address) == 0
    assert htlc_state(env.w3, env.htlc, htlc_id) is HtlcState.REDEEMED
    (redeemed,) = env.htlc.events.Redeemed().process_receipt(env.receipt(redeem_tx),
                                                             errors=DISCARD)
    assert (redeemed["args"]["id"], redeemed["args"]["preimage"]) == (htlc_id, secret)


def test_erc20_lock_then_redeem_pays_the_recipient_exactly(env: Env) -> None:
    secret, hashlock = new_secret()
    env.mint_and_approve(env.token, 1_000)
    token = env.token.address.lower()
    htlc_id, _ = env.lock(400, hashlock, token=token)
    assert env.balance(env.token, env.sender) == 600
    assert env.balance(env.token, env.htlc.address) == 400
    assert htlc_info(env.w3, env.htlc, htlc_id).token == token

    redeem(env.w3, env.htlc, htlc_id, secret, sender_key=env.sender_key)
    assert env.balance(env.token, env.recipient) == 400
    assert env.balance(env.token, env.htlc.address) == 0
    assert env.balance(env.token, env.sender) == 600
    assert htlc_state(env.w3, env.htlc, htlc_id) is HtlcState.REDEEMED


@pytest.mark.parametrize("native", [True, False], ids=["native", "erc20"])
def test_refund_after_timelock_pays_the_sender_back_exactly(env: Env, native: bool) -> None:
    _, hashlock = new_secret()
    if native:
        before = env.eth(env.sender)
        htlc_id, lock_tx = env.lock(3 * ETHER, hashlock)
        advance(env.w3, LOCK_S)
        refund_tx = refund(env.w3, env.htlc, htlc_id, sender_key=ANVIL_DEV_KEY)  # anyone
        assert env.eth(env.sender) == before - env.fee_wei(lock_tx)
        assert env.eth(env.htlc.address) == 0
    else:
        env.mint_and_approve(env.token, 700)
        htlc_id, _ = env.lock(700, hashlock, token=env.token.address.lower())
        advance(env.w3, LOCK_S)
        refund_tx = refund(env.w3, env.htlc, htlc_id, sender_key=ANVIL_DEV_KEY)
        assert env.balance(env.token, env.sender) == 700
        assert env.balance(env.token, env.htlc.address) == 0
    assert env.eth(env.recipient) == 0
    assert htlc_state(env.w3, env.htlc, htlc_id) is HtlcState.REFUNDED
    (event,) = env.htlc.events.Refunded().process_receipt(env.receipt(refund_tx), errors=DISCARD)
    assert event["args"]["id"] == htlc_id


# ------------------------------------------------------------------------------------ lock refusals


def test_fee_on_transfer_token_is_refused_because_the_escrow_must_be_exact(env: Env) -> None:
    _, hashlock = new_secret()
    env.mint_and_approve(env.fee_token, 1_000)
    token = env.fee_token.address.lower()
    assert_refused(lambda gas: env.lock(1_000, hashlock, token=token, gas=gas),
                   SubmissionReverted, "AmountNotReceived")
    assert env.balance(env.fee_token, env.sender) == 1_000
    assert env.balance(env.fee_token, env.htlc.address) == 0


@pytest.mark.parametrize(
    "differs", ["sender", "recipient", "token", "amount", "hashlock", "timelock", "chain_id",
                "contract"],
)
def test_lock_whose_id_does_not_bind_its_parameters_reverts(env: Env, differs: str) -> None:
    _, hashlock = new_secret()
    timelock = chain_now(env.w3) + LOCK_S
    params: dict[str, Any] = {
        "chain_id": CHAIN_ID, "contract": env.htlc.address, "sender": env.sender,
        "recipient": env.recipient, "token": NATIVE_TOKEN, "amount": ETHER, "hashlock": hashlock,
        "timelock": timelock,
    }
    changed = {"sender": fresh_address(), "recipient": fresh_address(),
               "token": env.token.address, "amount": ETHER + 1,
               "hashlock": hashlib.sha256(hashlock).digest(), "timelock": timelock + 1,
               "chain_id": CHAIN_ID + 1, "contract": fresh_address()}[differs]
    wrong_id = compute_id(**{**params, differs: changed})
    before = env.eth(env.sender)
    assert_refused(lambda gas: raw_lock(env, wrong_id, ETHER, hashlock, timelock, gas=gas),
                   SubmissionReverted, "IdMismatch")
    assert htlc_state(env.w3, env.htlc, wrong_id) is HtlcState.NONE
    assert env.eth(env.htlc.address) == 0
    assert env.eth(env.sender) > before - ETHER  # only the mined attempt's gas was spent


@pytest.mark.parametrize(
    ("case", "error", "name"),
    [
        ("zero_recipient", SubmissionReverted, "ZeroRecipient"),
        ("zero_amount", SubmissionReverted, "ZeroAmount"),
        ("timelock_now", TimelockTooShort, "TimelockNotInFuture"),
        ("timelock_beyond_uint64", SubmissionReverted, "TimelockOutOfRange"),
        ("native_value_mismatch", SubmissionReverted, "ValueMismatch"),
        ("erc20_with_value", SubmissionReverted, "ValueMismatch"),
        ("duplicate_id", SubmissionReverted, "HtlcExists"),
    ],
)
def test_lock_refuses_bad_input_and_moves_nothing(
    env: Env, case: str, error: type[BridgeError], name: str
) -> None:
    _, hashlock = new_secret()
    env.mint_and_approve(env.token, 1_000)
    token = env.token.address.lower()
    later = chain_now(env.w3) + LOCK_S
    if case == "duplicate_id":
        env.lock(ETHER, hashlock, timelock=later)
    locked = env.eth(env.htlc.address)
    args: dict[str, tuple[str, str, int, int, int | None]] = {  # recipient token amount tl value
        "zero_recipient": (NATIVE_TOKEN, NATIVE_TOKEN, ETHER, later, None),
        "zero_amount": (env.recipient, NATIVE_TOKEN, 0, later, None),
        "timelock_now": (env.recipient, NATIVE_TOKEN, ETHER, chain_now(env.w3), None),
        "timelock_beyond_uint64": (env.recipient, NATIVE_TOKEN, ETHER, 2**64, None),
        "native_value_mismatch": (env.recipient, NATIVE_TOKEN, ETHER, later, ETHER - 1),
        "erc20_with_value": (env.recipient, token, 10, later, 1),
        "duplicate_id": (env.recipient, NATIVE_TOKEN, ETHER, later, None),
    }
    recipient, tok, amount, timelock, value = args[case]
    htlc_id = env.htlc.functions.computeId(
        cs(env.sender), cs(recipient), cs(tok), amount, hashlock, timelock
    ).call()

    def send(gas: int | None) -> object:
        if case == "zero_amount" or recipient == NATIVE_TOKEN or value is not None:
            return raw_lock(env, htlc_id, amount, hashlock, timelock, token=tok,
                            recipient=recipient, value_wei=value, gas=gas)
        return lock(env.w3, env.htlc, recipient=recipient, token=tok, amount=amount,
                    hashlock=hashlock, timelock=timelock, sender_key=env.sender_key, gas=gas)

    assert_refused(send, error, name)
    assert env.eth(env.htlc.address) == locked
    assert env.balance(env.token, env.htlc.address) == 0
    assert env.balance(env.token, env.sender) == 1_000


# ------------------------------------------------------------------------------------ redeem refusals


@pytest.mark.parametrize("length", [31, 33, 64])
def test_redeem_with_a_preimage_not_32_bytes_reverts_even_when_its_sha256_matches(
    env: Env, length: int
) -> None:
    odd = os.urandom(length)
    htlc_id, _ = env.lock(ETHER, hashlib.sha256(odd).digest())
    with pytest.raises(BadPreimage, match="32 bytes"):  # refused before anything is sent
        redeem(env.w3, env.htlc, htlc_id, odd, sender_key=ANVIL_DEV_KEY)
    assert_refused(lambda gas: raw_redeem(env, htlc_id, odd, gas), SubmissionReverted,
                   "BadPreimageLength")
    assert env.eth(env.recipient) == 0
    assert env.eth(env.htlc.address) == ETHER
    assert htlc_state(env.w3, env.htlc, htlc_id) is HtlcState.LOCKED
    assert find_preimage(env.w3, env.htlc, htlc_id, 0) is None


def test_redeem_with_the_wrong_secret_reverts(env: Env) -> None:
    _, hashlock = new_secret()
    htlc_id, _ = env.lock(ETHER, hashlock)
    wrong = os.urandom(32)
    assert_refused(lambda gas: redeem(env.w3, env.htlc, htlc_id, wrong, sender_key=ANVIL_DEV_KEY,
                                      gas=gas), BadPreimage, "WrongPreimage")
    assert env.eth(env.recipient) == 0
    assert htlc_state(env.w3, env.htlc, htlc_id) is HtlcState.LOCKED


def test_redeem_after_the_timelock_reverts_and_the_refund_stays_open(env: Env) -> None:
    secret, hashlock = new_secret()
    htlc_id, _ = env.lock(ETHER, hashlock)
    advance(env.w3, LOCK_S)
    assert_refused(lambda gas: redeem(env.w3, env.htlc, htlc_id, secret, sender_key=ANVIL_DEV_KEY,
                                      gas=gas), HtlcExpired, "Expired")
    assert env.eth(env.recipient) == 0
    assert htlc_state(env.w3, env.htlc, htlc_id) is HtlcState.LOCKED
    before = env.eth(env.sender)
    refund(env.w3, env.htlc, htlc_id, sender_key=ANVIL_DEV_KEY)
    assert env.eth(env.sender) == before + ETHER


def test_redeem_works_until_timelock_minus_one_and_refund_from_the_timelock_on(env: Env) -> None:
    timelock = chain_now(env.w3) + 1_000
    (s1, h1), (_, h2), (s3, h3) = new_secret(), new_secret(), new_secret()
    first, _ = env.lock(ETHER, h1, timelock=timelock)
    second, _ = env.lock(ETHER, h2, timelock=timelock)
    third, _ = env.lock(ETHER, h3, timelock=timelock + 1)

    rpc(env.w3, "evm_setNextBlockTimestamp", timelock - 1)
    redeem(env.w3, env.htlc, first, s1, sender_key=ANVIL_DEV_KEY, gas=REVERT_GAS)
    rpc(env.w3, "evm_setNextBlockTimestamp", timelock)
    refund(env.w3, env.htlc, second, sender_key=ANVIL_DEV_KEY, gas=REVERT_GAS)
    rpc(env.w3, "evm_setNextBlockTimestamp", timelock + 1)
    with pytest.raises(SubmissionReverted, match="reverted"):  # block.timestamp == timelock
        redeem(env.w3, env.htlc, third, s3, sender_key=ANVIL_DEV_KEY, gas=REVERT_GAS)
    assert [htlc_state(env.w3, env.htlc, i) for i in (first, second, third)] == [
        HtlcState.REDEEMED, HtlcState.REFUNDED, HtlcState.LOCKED]
    assert env.eth(env.recipient) == ETHER


# ------------------------------------------------------------------------------------ refund refusals


def test_refund_before_the_timelock_reverts(env: Env) -> None:
    _, hashlock = new_secret()
    htlc_id, _ = env.lock(ETHER, hashlock)
    advance(env.w3, LOCK_S - 10)
    before = env.eth(env.sender)
    assert_refused(lambda gas: refund(env.w3, env.htlc, htlc_id, sender_key=ANVIL_DEV_KEY,
                                      gas=gas), HtlcNotExpired, "NotExpired")
    assert env.eth(env.sender) == before
    assert env.eth(env.htlc.address) == ETHER
    assert htlc_state(env.w3, env.htlc, htlc_id) is HtlcState.LOCKED


def test_a_second_redeem_and_a_refund_after_redeem_revert(env: Env) -> None:
    secret, hashlock = new_secret()
    htlc_id, _ = env.lock(ETHER, hashlock)
    redeem(env.w3, env.htlc, htlc_id, secret, sender_key=ANVIL_DEV_KEY)
    assert_refused(lambda gas: redeem(env.w3, env.htlc, htlc_id, secret, sender_key=ANVIL_DEV_KEY,
                                      gas=gas), HtlcAlreadySettled, "AlreadySettled")
    advance(env.w3, LOCK_S)
    assert_refused(lambda gas: refund(env.w3, env.htlc, htlc_id, sender_key=ANVIL_DEV_KEY,
                                      gas=gas), HtlcAlreadySettled, "AlreadySettled")
    assert env.eth(env.recipient) == ETHER
    assert env.eth(env.htlc.address) == 0
    assert htlc_state(env.w3, env.htlc, htlc_id) is HtlcState.REDEEMED


def test_redeem_after_refund_reverts_even_with_the_right_secret(env: Env) -> None:
    secret, hashlock = new_secret()
    htlc_id, _ = env.lock(ETHER, hashlock)
    advance(env.w3, LOCK_S)
    refund(env.w3, env.htlc, htlc_id, sender_key=ANVIL_DEV_KEY)
    assert_refused(lambda gas: redeem(env.w3, env.htlc, htlc_id, secret, sender_key=ANVIL_DEV_KEY,
                                      gas=gas), HtlcAlreadySettled, "AlreadySettled")
    assert_refused(lambda gas: refund(env.w3, env.htlc, htlc_id, sender_key=ANVIL_DEV_KEY,
                                      gas=gas), HtlcAlreadySettled, "AlreadySettled")
    assert env.eth(env.recipient) == 0
    assert htlc_state(env.w3, env.htlc, htlc_id) is HtlcState.REFUNDED


def test_redeem_or_refund_of_an_unknown_id_reverts(env: Env) -> None:
    unknown = os.urandom(32)
    assert_refused(lambda gas: redeem(env.w3, env.htlc, unknown, os.urandom(32),
                                      sender_key=ANVIL_DEV_KEY, gas=gas), UnknownHtlc, "UnknownHtlc")
    assert_refused(lambda gas: refund(env.w3, env.htlc, unknown, sender_key=ANVIL_DEV_KEY,
                                      gas=gas), UnknownHtlc, "UnknownHtlc")
    assert htlc_state(env.w3, env.htlc, unknown) is HtlcState.NONE


# ------------------------------------------------------------------------------------ learning the secret


def test_find_preimage_returns_the_secret_once_redeemed_and_none_before(env: Env) -> None:
    secret, hashlock = new_secret()
    start = env.w3.eth.block_number
    htlc_id, _ = env.lock(ETHER, hashlock)
    other_id, _ = env.lock(ETHER, new_secret()[1])
    assert find_preimage(env.w3, env.htlc, htlc_id, start) is None
    redeem(env.w3, env.htlc, htlc_id, secret, sender_key=ANVIL_DEV_KEY)
    assert find_preimage(env.w3, env.htlc, htlc_id, start) == secret
    assert find_preimage(env.w3, env.htlc, other_id, start) is None
    assert find_preimage(env.w3, env.htlc, htlc_id, env.w3.eth.block_number + 1) is None


def test_find_preimage_is_none_after_a_refund(env: Env) -> None:
    _, hashlock = new_secret()
    start = env.w3.eth.block_number
    htlc_id, _ = env.lock(ETHER, hashlock)
    advance(env.w3, LOCK_S)
    refund(env.w3, env.htlc, htlc_id, sender_key=ANVIL_DEV_KEY)
    assert find_preimage(env.w3, env.htlc, htlc_id, start) is None


def send_unmined(env: Env, call: Any, key: str, gas: int) -> str:
    """Sign and broadcast `call` without waiting for it to be mined (automine is off)."""
    account = env.w3.eth.account.from_key(key)
    tx = call.build_transaction({
        "from": account.address, "chainId": CHAIN_ID, "gas": gas,
        "nonce": env.w3.eth.get_transaction_count(account.address, "pending"),
    })
    return str(env.w3.eth.send_raw_transaction(
        account.sign_transaction(tx).raw_transaction).to_0x_hex())


def test_pending_preimage_sees_the_secret_of_an_unmined_redeem_and_ignores_a_bogus_one(
    env: Env,
) -> None:
    secret, hashlock = new_secret()
    htlc_id, _ = env.lock(ETHER, hashlock)
    bystander_key, bystander = new_key()
    fund(env.w3, bystander, ETHER)
    rpc(env.w3, "evm_setAutomine", False)
    try:
        assert pending_preimage(env.w3, env.htlc, htlc_id) is None
        bogus = send_unmined(env, env.htlc.functions.redeem(htlc_id, os.urandom(32)),
                             bystander_key, REVERT_GAS)
        assert pending_preimage(env.w3, env.htlc, htlc_id) is None  # hash does not match
        real = send_unmined(env, env.htlc.functions.redeem(htlc_id, secret), ANVIL_DEV_KEY,
                            REVERT_GAS)
        assert pending_preimage(env.w3, env.htlc, htlc_id) == secret
        assert pending_preimage(env.w3, env.htlc, os.urandom(32)) is None
        assert find_preimage(env.w3, env.htlc, htlc_id, 0) is None  # not mined yet
        rpc(env.w3, "evm_mine")
    finally:
        rpc(env.w3, "evm_setAutomine", True)
    assert env.receipt(real)["status"] == 1
    assert env.receipt(bogus)["status"] == 0
    assert pending_preimage(env.w3, env.htlc, htlc_id) is None
    assert find_preimage(env.w3, env.htlc, htlc_id, 0) == secret
    assert env.eth(env.recipient) == ETHER


# ------------------------------------------------------------------------------------ gas


def test_gas_used_by_lock_redeem_and_refund_stays_within_budget(env: Env) -> None:
    """Budgets with headroom over the measured cost (optimizer on, 200 runs, cancun)."""
    secret, hashlock = new_secret()
    used: dict[str, int] = {}
    native_id, tx = env.lock(ETHER, hashlock)
    used["lock native"] = int(env.receipt(tx)["gasUsed"])
    used["redeem native"] = int(env.receipt(
        redeem(env.w3, env.htlc, native_id, secret, sender_key=ANVIL_DEV_KEY))["gasUsed"])
    env.mint_and_approve(env.token, 2_000)
    token = env.token.address.lower()
    erc20_id, tx = env.lock(1_000, hashlock, token=token)
    used["lock erc20"] = int(env.receipt(tx)["gasUsed"])
    used["redeem erc20"] = int(env.receipt(
        redeem(env.w3, env.htlc, erc20_id, secret, sender_key=ANVIL_DEV_KEY))["gasUsed"])
    refund_erc20, _ = env.lock(1_000, new_secret()[1], token=token)
    refund_native, _ = env.lock(ETHER, new_secret()[1])
    advance(env.w3, LOCK_S)
    for name, htlc_id in (("refund erc20", refund_erc20), ("refund native", refund_native)):
        used[name] = int(env.receipt(
            refund(env.w3, env.htlc, htlc_id, sender_key=ANVIL_DEV_KEY))["gasUsed"])
    print("HTLC gas used:", used)
    budget = {"lock native": 140_000, "redeem native": 90_000, "refund native": 80_000,
              "lock erc20": 200_000, "redeem erc20": 90_000, "refund erc20": 80_000}
    assert all(used[k] <= budget[k] for k in budget), used
