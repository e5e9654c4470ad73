"""The HTLC leg drivers (htlc/legs_*.py) on real chains: anvil (`anvil_eth`), btcd (`btcd`) and
an in-process ledger served through its real ASGI app (Starlette's TestClient).

For each driver: prepare and broadcast a lock, watch it reach the confirmation depth, see no
secret, let the counterparty redeem, find the secret and see the leg redeemed; lock, pass the
expiry, refund, see it refunded and a later redeem refused; find a lock by its exact terms while
locks with another amount or hashlock are ignored. Chain time moves with ``evm_increaseTime``,
``generate`` and a test clock, never by sleeping. Alice locks (sender), Bob redeems (recipient).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import coincurve
import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from hexbytes import HexBytes
from nacl.signing import SigningKey
from web3 import Web3
from web3.types import RPCEndpoint

from adapters.base import NATIVE_TOKEN
from adapters.bitcoin.scripts import p2wsh
from adapters.bitcoin.tx import decode_tx
from adapters.errors import ValidationError
from adapters.evm.devnet import ANVIL_DEV_KEY, deploy_test_token, fund, transact
from api.ledger import create_ledger_app
from contracts import load_artifact
from htlc.errors import (
    BadPreimage,
    HtlcAlreadySettled,
    HtlcExpired,
    HtlcNotExpired,
    TimelockTooShort,
)
from htlc.evm import deploy_htlc, htlc_contract
from htlc.hashlock import hashlock_of, new_secret
from htlc.legs import HtlcLeg, LegRef, LegTerms, PreparedLock
from htlc.legs_bitcoin import BitcoinLeg, CoinWallet
from htlc.legs_evm import EvmLeg
from htlc.legs_ledger import LedgerLeg
from htlc.machine import LegStatus
from htlc.timelock import (
    BITCOIN_DEVNET,
    EVM_DEVNET,
    BlockHeight,
    ChainTiming,
    UnixTime,
    expired,
)
from ledger.client import LedgerClient
from ledger.db import make_engine
from ledger.service import Ledger
from ledger.testing import open_harness
from ledger.types import MintStatus
from validators.eip712 import address_of

if TYPE_CHECKING:
    from tests.integration.conftest import BtcdDevnet

pytestmark = pytest.mark.integration

DEPTH = 2  # confirmations for "confirmed" on anvil and btcd: one block short is "locked"
ETHER = 10**18
LOCK_S = 3_600  # EVM and ledger expiry distance, seconds
BTC_LOCK_BLOCKS = 6  # Bitcoin expiry distance, blocks
SATS = 100_000  # sats per Bitcoin HTLC
LEDGER_FUNDS = 1_000_000
LEDGER_TIMING = ChainTiming(block_time_s=1, confirmation_depth=1, kind="time")
T0 = 1_700_000_000.5  # ledger test clock start, seconds


def other_hashlock() -> bytes:
    return hashlock_of(new_secret())


# ============================================================================ pure


def test_leg_ref_and_prepared_lock_round_trip_through_json() -> None:
    ref = LegRef("bip122:x", "ab" * 32 + ":1", bytes(32), 5, BlockHeight(7), 3, "00")
    assert LegRef.from_json(ref.to_json()) == ref
    timed = replace(ref, expiry=UnixTime(7))
    assert LegRef.from_json(timed.to_json()).expiry == UnixTime(7)
    prepared = PreparedLock(ref, (b"\x01\x02", b"\x03"), ("a", "b"))
    assert PreparedLock.from_json(prepared.to_json()) == prepared
    with pytest.raises(ValidationError):
        LegRef.from_json({**ref.to_json(), "expiry_kind": "epoch"})
    with pytest.raises(ValidationError):
        PreparedLock(ref, (b"\x01",), ())


@pytest.mark.parametrize("change", [
    {"amount": 0}, {"hashlock": bytes(31)}, {"sender": b""}, {"chain": ""}, {"asset": ""},
])
def test_leg_terms_refuse_malformed_fields(change: dict[str, Any]) -> None:
    good: dict[str, Any] = {"chain": "eip155:1", "asset": NATIVE_TOKEN, "amount": 1,
                            "hashlock": bytes(32), "expiry": UnixTime(1), "sender": b"\x01" * 20,
                            "recipient": b"\x02" * 20}
    LegTerms(**good)
    with pytest.raises(ValidationError):
        LegTerms(**{**good, **change})


# ============================================================================ EVM (anvil)


def _rpc(w3: Web3, method: str, *params: Any) -> Any:
    reply = w3.provider.make_request(RPCEndpoint(method), list(params))
    assert not reply.get("error"), reply
    return reply.get("result")


def _evm_key() -> tuple[str, bytes]:
    secret = coincurve.PrivateKey(os.urandom(32)).secret
    return "0x" + secret.hex(), bytes.fromhex(address_of(secret)[2:])


@dataclass
class EvmEnv:
    w3: Web3
    htlc: str
    alice: EvmLeg
    bob: EvmLeg
    alice_addr: bytes
    bob_addr: bytes

    def terms(self, amount: int = ETHER, *, hashlock: bytes, token: str = NATIVE_TOKEN,
              ) -> LegTerms:
        return LegTerms(self.alice.chain, token, amount, hashlock, self.alice.now() + LOCK_S,
                        self.alice_addr, self.bob_addr)

    def lock(self, terms: LegTerms) -> LegRef:
        prepared = self.alice.prepare_lock(terms)
        ref = self.alice.broadcast_lock(prepared)
        self.included(prepared)
        return ref

    def included(self, prepared: PreparedLock) -> None:
        """Wait (bounded) until automining anvil has mined the lock: under load it can answer
        `eth_sendRawTransaction` before the block is there."""
        self.w3.eth.wait_for_transaction_receipt(HexBytes(prepared.tx_ids[-1]), timeout=10)

    def mine(self, seconds: int = 0) -> None:
        if seconds:
            _rpc(self.w3, "evm_increaseTime", seconds)
        _rpc(self.w3, "evm_mine")

    def eth(self, address: bytes) -> int:
        return self.w3.eth.get_balance(Web3.to_checksum_address("0x" + address.hex()))


@pytest.fixture
def evm(w3_eth: Web3) -> EvmEnv:
    """A fresh HTLC contract; Alice (100 ETH) and Bob (1 ETH for gas), depth 2."""
    htlc = deploy_htlc(w3_eth, sender_key=ANVIL_DEV_KEY)
    (alice_key, alice), (bob_key, bob) = _evm_key(), _evm_key()
    fund(w3_eth, "0x" + alice.hex(), 100 * ETHER)
    fund(w3_eth, "0x" + bob.hex(), ETHER)
    return EvmEnv(w3_eth, htlc, EvmLeg(w3_eth, htlc, alice_key, EVM_DEVNET, DEPTH),
                  EvmLeg(w3_eth, htlc, bob_key, EVM_DEVNET, DEPTH), alice, bob)


def test_evm_leg_locks_confirms_and_the_counterparty_redeem_reveals_the_secret(
        evm: EvmEnv) -> None:
    secret = new_secret()
    terms = evm.terms(hashlock=hashlock_of(secret))
    with pytest.raises(ValidationError, match="sender"):
        evm.bob.prepare_lock(terms)  # only the sender's own driver signs its lock
    prepared = evm.alice.prepare_lock(terms)
    assert evm.alice.observe(prepared.ref).status is LegStatus.NONE  # signed, not sent
    ref = evm.alice.broadcast_lock(prepared)
    assert evm.alice.broadcast_lock(prepared) == ref  # idempotent: the node knows the tx
    evm.included(prepared)
    view = evm.alice.observe(ref)
    assert (view.status, view.confirmations, view.expiry, view.amount) == (
        LegStatus.LOCKED, 1, terms.expiry, ETHER)
    evm.mine()
    assert (evm.alice.observe(ref).status, evm.alice.observe(ref).confirmations) == (
        LegStatus.CONFIRMED, 2)
    assert evm.alice.find_secret(ref) is None and evm.bob.find_secret(ref) is None
    with pytest.raises(BadPreimage):
        evm.bob.redeem(ref, new_secret())

    before = evm.eth(evm.bob_addr)
    tx = evm.bob.redeem(ref, secret)
    receipt = evm.w3.eth.get_transaction_receipt(tx)  # type: ignore[arg-type]
    gas_wei = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    assert evm.eth(evm.bob_addr) == before + ETHER - gas_wei
    assert evm.bob.redeem(ref, secret) == tx  # idempotent: the mined redeem's hash
    assert evm.alice.find_secret(ref) == secret
    view = evm.alice.observe(ref)
    assert (view.status, view.confirmations, view.secret) == (LegStatus.REDEEMED, 1, secret)
    with pytest.raises(HtlcAlreadySettled):
        evm.alice.refund(ref)
    assert evm.alice.broadcast_lock(PreparedLock.from_json(prepared.to_json())) == ref  # replay


def test_evm_leg_refunds_after_the_expiry_and_a_later_redeem_fails_cleanly(evm: EvmEnv) -> None:
    secret = new_secret()
    ref = evm.lock(evm.terms(hashlock=hashlock_of(secret)))
    with pytest.raises(HtlcNotExpired):
        evm.alice.refund(ref)
    evm.mine(LOCK_S)
    assert expired(ref.expiry, evm.alice.now())
    with pytest.raises(HtlcExpired):  # the redeem window closed at the expiry
        evm.bob.redeem(ref, secret)
    tx = evm.alice.refund(ref)
    assert evm.alice.refund(ref) == tx
    assert evm.bob.refund(ref) == tx  # anyone may ask; the answer is the same refund
    view = evm.alice.observe(ref)
    assert (view.status, view.confirmations, view.secret) == (LegStatus.REFUNDED, 1, None)
    with pytest.raises(HtlcAlreadySettled):
        evm.bob.redeem(ref, secret)
    assert evm.bob.find_secret(ref) is None


def test_evm_find_lock_matches_exact_terms_and_ignores_other_amounts_and_hashlocks(
        evm: EvmEnv) -> None:
    terms = evm.terms(hashlock=other_hashlock())
    evm.lock(replace(terms, amount=terms.amount + 1))
    evm.lock(replace(terms, hashlock=other_hashlock()))
    assert evm.bob.find_lock(terms) is None
    ref = evm.lock(terms)
    found = evm.bob.find_lock(terms)
    assert found is not None and (found.id, found.amount, found.expiry) == (
        ref.id, ref.amount, ref.expiry)
    assert found.since_block >= ref.since_block  # the Locked log's block
    assert evm.bob.observe(found).status is LegStatus.LOCKED
    assert evm.bob.find_lock(replace(terms, recipient=evm.alice_addr)) is None


def test_evm_find_secret_reads_a_redeem_still_in_the_mempool(evm: EvmEnv) -> None:
    secret = new_secret()
    ref = evm.lock(evm.terms(hashlock=hashlock_of(secret)))
    evm.mine()
    contract = htlc_contract(evm.w3, evm.htlc)
    helper_key, helper = _evm_key()
    fund(evm.w3, "0x" + helper.hex(), ETHER)
    call = contract.functions.redeem(bytes.fromhex(ref.id[2:]), secret)
    params: Any = {"from": Web3.to_checksum_address("0x" + helper.hex()), "gas": 200_000,
                   "nonce": 0, "chainId": evm.w3.eth.chain_id}  # explicit gas: no estimate
    tx = call.build_transaction(params)
    signed = Account.from_key(helper_key).sign_transaction(tx).raw_transaction
    _rpc(evm.w3, "evm_setAutomine", False)
    try:
        evm.w3.eth.send_raw_transaction(signed)
        assert evm.alice.find_secret(ref) == secret  # from txpool_content
        assert evm.alice.observe(ref).status is LegStatus.CONFIRMED  # not mined yet
        evm.mine()
    finally:
        _rpc(evm.w3, "evm_setAutomine", True)
    assert evm.alice.observe(ref).status is LegStatus.REDEEMED


def test_evm_leg_locks_an_erc20_with_its_approve_and_is_redeemed(evm: EvmEnv) -> None:
    token = deploy_test_token(evm.w3, sender_key=ANVIL_DEV_KEY)
    erc20 = evm.w3.eth.contract(address=Web3.to_checksum_address(token),
                                abi=load_artifact("TestToken").abi)
    transact(evm.w3, erc20.functions.mint(Web3.to_checksum_address("0x" + evm.alice_addr.hex()),
                                          5 * ETHER), sender_key=ANVIL_DEV_KEY)
    secret = new_secret()
    terms = evm.terms(2 * ETHER, hashlock=hashlock_of(secret), token=token)
    prepared = evm.alice.prepare_lock(terms)
    assert len(prepared.raw_txs) == 2  # approve, then lock
    ref = evm.alice.broadcast_lock(prepared)
    evm.included(prepared)
    found = evm.bob.find_lock(terms)
    assert found is not None and found.id == ref.id
    evm.bob.redeem(ref, secret)
    bob = Web3.to_checksum_address("0x" + evm.bob_addr.hex())
    assert erc20.functions.balanceOf(bob).call() == 2 * ETHER
    assert evm.alice.observe(ref).status is LegStatus.REDEEMED


# ============================================================================ Bitcoin (btcd)


@dataclass
class BtcEnv:
    btcd: BtcdDevnet
    alice: BitcoinLeg
    bob: BitcoinLeg
    bob_wallet: CoinWallet

    def terms(self, amount: int = SATS, *, hashlock: bytes, blocks: int = BTC_LOCK_BLOCKS
              ) -> LegTerms:
        return LegTerms(self.alice.chain, "btc", amount, hashlock, self.alice.now() + blocks,
                        self.alice.pubkey, self.bob.pubkey)

    def lock(self, terms: LegTerms) -> LegRef:
        return self.alice.broadcast_lock(self.alice.prepare_lock(terms))

    def mine(self, blocks: int = 1) -> None:
        self.btcd.rpc.generate(blocks)


@pytest.fixture
def btc(btcd: BtcdDevnet) -> BtcEnv:
    """Alice's wallet holds one 0.05 BTC coin from the faucet; Bob's is empty. Depth 2."""
    alice_secret, bob_secret = os.urandom(32), os.urandom(32)
    wallet = CoinWallet(alice_secret)
    txid = btcd.faucet.pay(wallet.script_pubkey, 5_000_000)
    raw = btcd.rpc.raw_transaction(txid)
    assert raw is not None and wallet.add_outputs(raw)
    btcd.rpc.generate(1)
    bob_wallet = CoinWallet(bob_secret)
    return BtcEnv(btcd,
                  BitcoinLeg(btcd.rpc, "regtest", alice_secret, BITCOIN_DEVNET, DEPTH, 2, wallet),
                  BitcoinLeg(btcd.rpc, "regtest", bob_secret, BITCOIN_DEVNET, DEPTH, 2,
                             bob_wallet), bob_wallet)


def test_bitcoin_leg_locks_confirms_and_the_counterparty_redeem_reveals_the_secret(
        btc: BtcEnv) -> None:
    secret = new_secret()
    terms = btc.terms(hashlock=hashlock_of(secret))
    prepared = btc.alice.prepare_lock(terms)
    assert btc.alice.observe(prepared.ref).status is LegStatus.NONE  # signed, not sent
    ref = btc.alice.broadcast_lock(prepared)
    assert btc.alice.broadcast_lock(prepared) == ref
    assert (btc.alice.observe(ref).status, btc.alice.observe(ref).confirmations) == (
        LegStatus.LOCKED, 0)  # in the mempool
    btc.mine()
    assert btc.alice.observe(ref).status is LegStatus.LOCKED
    btc.mine()
    view = btc.alice.observe(ref)
    assert (view.status, view.confirmations, view.expiry, view.amount) == (
        LegStatus.CONFIRMED, 2, terms.expiry, SATS)
    assert btc.alice.find_secret(ref) is None
    with pytest.raises(ValidationError, match="recipient"):
        btc.alice.redeem(ref, secret)  # Alice's key cannot sign the redeem branch

    txid = btc.bob.redeem(ref, secret)
    assert btc.bob.redeem(ref, secret) == txid  # the redeem in the mempool
    assert btc.alice.find_secret(ref) == secret  # read from the mempool
    assert btc.alice.observe(ref).status is LegStatus.CONFIRMED  # a mempool spend is not final
    with pytest.raises(HtlcAlreadySettled):
        btc.alice.refund(ref)
    btc.mine()
    view = btc.alice.observe(ref)
    assert (view.status, view.confirmations, view.secret) == (LegStatus.REDEEMED, 1, secret)
    assert btc.alice.find_secret(ref) == secret  # read from the block
    assert btc.bob.redeem(ref, secret) == txid
    assert btc.alice.broadcast_lock(PreparedLock.from_json(prepared.to_json())) == ref  # replay
    raw = btc.btcd.rpc.raw_transaction(txid)
    assert raw is not None
    [out] = decode_tx(raw).vout
    assert bytes(out.scriptPubKey) == btc.bob_wallet.script_pubkey and 0 < SATS - out.nValue < 1000


def test_bitcoin_leg_refunds_from_the_expiry_and_a_later_redeem_fails_cleanly(
        btc: BtcEnv) -> None:
    secret = new_secret()
    with pytest.raises(TimelockTooShort):  # refundable at once: never funded
        btc.alice.prepare_lock(btc.terms(hashlock=hashlock_of(secret), blocks=0))
    ref = btc.lock(btc.terms(hashlock=hashlock_of(secret), blocks=4))
    btc.mine()
    with pytest.raises(HtlcNotExpired):
        btc.alice.refund(ref)
    btc.mine(3)
    assert btc.alice.now() == ref.expiry
    txid = btc.alice.refund(ref)
    assert btc.alice.refund(ref) == txid
    with pytest.raises(HtlcAlreadySettled):  # the refund is only in the mempool yet
        btc.bob.redeem(ref, secret)
    assert btc.alice.observe(ref).status is LegStatus.CONFIRMED
    btc.mine()
    view = btc.alice.observe(ref)
    assert (view.status, view.confirmations, view.secret) == (LegStatus.REFUNDED, 1, None)
    assert btc.alice.refund(ref) == txid
    with pytest.raises(HtlcAlreadySettled):
        btc.bob.redeem(ref, secret)
    assert btc.bob.find_secret(ref) is None


def test_bitcoin_find_lock_matches_exact_terms_and_ignores_other_amounts_and_hashlocks(
        btc: BtcEnv) -> None:
    terms = btc.terms(hashlock=other_hashlock())
    btc.lock(replace(terms, amount=terms.amount + 1))  # the same script, another amount
    btc.lock(replace(terms, hashlock=other_hashlock()))
    btc.mine()
    assert btc.bob.find_lock(terms) is None
    ref = btc.lock(terms)
    found = btc.bob.find_lock(terms)  # in the mempool
    assert found is not None and (found.id, found.witness_script) == (ref.id, ref.witness_script)
    btc.mine(DEPTH)
    found = btc.bob.find_lock(terms)
    assert found is not None and found.id == ref.id
    spk = p2wsh(bytes.fromhex(found.witness_script))
    assert spk == p2wsh(bytes.fromhex(ref.witness_script))
    assert btc.bob.observe(found).status is LegStatus.CONFIRMED
    with pytest.raises(ValidationError, match="does not pay"):  # the chain is the authority
        btc.bob.observe(replace(found, amount=found.amount + 1))
    assert btc.bob.find_lock(replace(terms, expiry=terms.expiry + 1)) is None


# ============================================================================ ledger


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


@dataclass
class LedgerEnv:
    clock: FakeClock
    alice: LedgerLeg
    bob: LedgerLeg
    client: LedgerClient
    asset: str

    def terms(self, amount: int = 300, *, hashlock: bytes) -> LegTerms:
        return LegTerms(self.alice.chain, self.asset, amount, hashlock,
                        self.alice.now() + LOCK_S, self.alice.account, self.bob.account)

    def lock(self, terms: LegTerms) -> LegRef:
        return self.alice.broadcast_lock(self.alice.prepare_lock(terms))

    def balance(self, account: bytes) -> int:
        return self.client.account(account).balances.get(self.asset, 0)


@pytest.fixture
def ledger(tmp_path: Any) -> Iterator[LedgerEnv]:
    """A fresh ledger on a test clock behind its HTTP app; Alice holds LEDGER_FUNDS."""
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    h = open_harness(url)
    h.ledger.close()
    clock = FakeClock()
    service = Ledger(make_engine(url), h.network, clock)
    alice_key, bob_key = SigningKey.generate(), SigningKey.generate()
    minted = service.mint(h.certify(h.lock(1, LEDGER_FUNDS, bytes(alice_key.verify_key))))
    assert minted.status is MintStatus.MINTED
    client = LedgerClient("http://ledger", http=TestClient(create_ledger_app(service),
                                                           base_url="http://ledger"))
    yield LedgerEnv(clock, LedgerLeg(client, alice_key, h.network, LEDGER_TIMING, clock=clock),
                    LedgerLeg(client, bob_key, h.network, LEDGER_TIMING, clock=clock), client,
                    h.native_asset)
    service.close()


def test_ledger_leg_locks_and_the_counterparty_redeem_reveals_the_secret(
        ledger: LedgerEnv) -> None:
    secret = new_secret()
    terms = ledger.terms(hashlock=hashlock_of(secret))
    with pytest.raises(ValidationError, match="sender"):
        ledger.bob.prepare_lock(terms)
    prepared = ledger.alice.prepare_lock(terms)
    assert ledger.alice.observe(prepared.ref).status is LegStatus.NONE
    ref = ledger.alice.broadcast_lock(prepared)
    assert ledger.alice.broadcast_lock(prepared) == ref  # the HTLC exists: nothing sent
    assert ledger.balance(ledger.alice.account) == LEDGER_FUNDS - 300
    view = ledger.alice.observe(ref)
    assert (view.status, view.confirmations, view.expiry, view.amount) == (
        LegStatus.CONFIRMED, 1, terms.expiry, 300)
    assert ledger.alice.find_secret(ref) is None
    with pytest.raises(BadPreimage):
        ledger.bob.redeem(ref, new_secret())
    name = ledger.bob.redeem(ref, secret)
    assert name == f"{ref.id}/redeem" and ledger.bob.redeem(ref, secret) == name
    assert ledger.alice.find_secret(ref) == secret
    view = ledger.alice.observe(ref)
    assert (view.status, view.secret) == (LegStatus.REDEEMED, secret)
    assert ledger.balance(ledger.bob.account) == 300
    with pytest.raises(HtlcAlreadySettled):
        ledger.alice.refund(ref)
    assert ledger.alice.broadcast_lock(PreparedLock.from_json(prepared.to_json())) == ref


def test_ledger_leg_refunds_from_the_expiry_and_a_later_redeem_fails_cleanly(
        ledger: LedgerEnv) -> None:
    secret = new_secret()
    ref = ledger.lock(ledger.terms(hashlock=hashlock_of(secret)))
    with pytest.raises(HtlcNotExpired):
        ledger.alice.refund(ref)
    ledger.clock.t = float(ref.expiry.value)
    assert ledger.alice.now() == ref.expiry
    with pytest.raises(HtlcExpired):
        ledger.bob.redeem(ref, secret)
    name = ledger.bob.refund(ref)  # anyone may; the sender is paid
    assert name == f"{ref.id}/refund" and ledger.alice.refund(ref) == name
    assert ledger.alice.observe(ref).status is LegStatus.REFUNDED
    assert ledger.balance(ledger.alice.account) == LEDGER_FUNDS
    with pytest.raises(HtlcAlreadySettled):
        ledger.bob.redeem(ref, secret)
    assert ledger.bob.find_secret(ref) is None


def test_ledger_find_lock_matches_exact_terms_and_ignores_other_amounts_and_hashlocks(
        ledger: LedgerEnv) -> None:
    terms = ledger.terms(hashlock=other_hashlock())
    ledger.lock(replace(terms, amount=terms.amount + 1))
    ledger.lock(replace(terms, hashlock=other_hashlock()))
    assert ledger.bob.find_lock(terms) is None
    ref = ledger.lock(terms)
    found = ledger.bob.find_lock(terms)
    assert found is not None and (found.id, found.amount, found.expiry) == (
        ref.id, ref.amount, ref.expiry)
    assert ledger.bob.find_lock(replace(terms, expiry=terms.expiry + 1)) is None


def test_every_driver_is_an_htlc_leg(evm: EvmEnv, btc: BtcEnv, ledger: LedgerEnv) -> None:
    legs: list[HtlcLeg] = [evm.alice, btc.alice, ledger.alice]  # mypy checks the Protocol
    assert [leg.chain for leg in legs] == ["eip155:31337", btc.btcd.node.chain, "ferry:ledger"]
    assert [leg.timing.kind for leg in legs] == ["time", "height", "time"]
