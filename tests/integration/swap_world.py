"""A swap world for integration tests: btcd + anvil (+ optionally an in-process ledger), an HTLC
contract, the relayer's `SwapEngine` over a sqlite file, and a user with funds on every chain.

Owns: `World` (the relayer's engine and the user's own HTLC drivers, chain-time helpers and
balance reads) and `LedgerSide` (a fresh ledger on a test clock behind its real ASGI app).
Used by tests/integration/test_swap_engine.py and test_swap_races.py. Must not sleep: chain
time moves with btcd ``generate``, anvil ``evm_increaseTime``/``evm_mine`` and the ledger's
test clock.

The user's side is played with the same HTLC drivers under the user's own keys; the relayer's
side is only the engine (its store, its drivers, its keys). `World.restart` drops the engine and
its drivers and builds fresh ones over the same database file: what a relayer restarted after a
crash would have.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coincurve
from bitcoin.core import CBlock, b2lx
from fastapi.testclient import TestClient
from hexbytes import HexBytes
from nacl.signing import SigningKey
from web3 import Web3
from web3.types import RPCEndpoint

from adapters.base import NATIVE_TOKEN
from adapters.bitcoin.tx import decode_tx
from adapters.evm.devnet import ANVIL_DEV_KEY, fund
from api.ledger import create_ledger_app
from htlc.evm import deploy_htlc
from htlc.legs import HtlcLeg, LegRef, LegTerms
from htlc.legs_bitcoin import BitcoinLeg, CoinWallet
from htlc.legs_evm import EvmLeg
from htlc.legs_ledger import LedgerLeg
from htlc.timelock import BITCOIN_DEVNET, EVM_DEVNET, ChainTiming
from ledger.client import LedgerClient
from ledger.db import make_engine
from ledger.service import Ledger
from ledger.testing import open_harness
from ledger.types import MintStatus
from relayer.quotes import SwapPair
from relayer.swap_engine import SwapEngine, _ref
from relayer.swap_store import SwapLegRecord, SwapRecord, SwapStore
from validators.eip712 import address_of

ETHER = 10**18
SATS = 1_000_000  # the user's BTC amount in BTC->ETH swaps
DEPTH = 2  # confirmations for "confirmed" on btcd and anvil
USER_BTC_SATS = 5_000_000
RELAYER_BTC_SATS = 5_000_000
LEDGER_TIMING = ChainTiming(block_time_s=1, confirmation_depth=1, kind="time")
LEDGER_FUNDS = 10 * ETHER  # the relayer's ledger balance (units of the bridged ETH asset)
T0 = 1_700_000_000.5  # the ledger's test clock start, seconds


def evm_key() -> tuple[str, bytes]:
    """A fresh EVM key: (0x private key, 20-byte address)."""
    secret = os.urandom(32)
    return "0x" + secret.hex(), bytes.fromhex(address_of(secret)[2:])


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    reply = w3.provider.make_request(RPCEndpoint(method), list(params))
    assert not reply.get("error"), reply
    return reply.get("result")


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


class LedgerSide:
    """A fresh ledger (sqlite, test clock) served by its real ASGI app; the relayer's account
    holds LEDGER_FUNDS of the bridged ETH asset, the user's account nothing."""

    def __init__(self, tmp: Path) -> None:
        url = f"sqlite:///{tmp}/ledger.sqlite"
        h = open_harness(url)
        h.ledger.close()
        self.clock = FakeClock()
        self.service = Ledger(make_engine(url), h.network, self.clock)
        self.network, self.asset = h.network, h.native_asset
        self.relayer_key, self.user_key = SigningKey.generate(), SigningKey.generate()
        minted = self.service.mint(h.certify(h.lock(1, LEDGER_FUNDS,
                                                    bytes(self.relayer_key.verify_key))))
        assert minted.status is MintStatus.MINTED
        self.client = LedgerClient("http://ledger", http=TestClient(
            create_ledger_app(self.service), base_url="http://ledger"))

    def leg(self, key: SigningKey) -> LedgerLeg:
        return LedgerLeg(self.client, key, self.network, LEDGER_TIMING, clock=self.clock)

    def balance(self, account: bytes) -> int:
        return self.client.account(account).balances.get(self.asset, 0)

    def close(self) -> None:
        self.service.close()


@dataclass(frozen=True)
class RelayerKeys:
    btc: bytes  # 32-byte secp256k1 secret
    evm_key: str  # 0x hex private key
    evm: bytes  # 20-byte address


class World:
    """btcd + anvil + an HTLC contract (+ a ledger); the relayer's engine; a user with BTC
    (USER_BTC_SATS), ETH (10 ETH) and a ledger account.

    Pairs: `btc_eth` (user locks BTC, relayer ETH), `eth_btc` (user locks ETH, relayer BTC),
    and `eth_ledger` (user locks ETH, relayer the ledger's bridged ETH) when a ledger is given.
    """

    def __init__(self, tmp: Path, btcd: Any, w3: Web3, ledger: LedgerSide | None = None
                 ) -> None:
        self.btcd, self.w3, self.ledger = btcd, w3, ledger
        self.htlc = deploy_htlc(w3, sender_key=ANVIL_DEV_KEY)
        relayer_evm_key, relayer_evm = evm_key()
        self.relayer = RelayerKeys(os.urandom(32), relayer_evm_key, relayer_evm)
        user_btc = os.urandom(32)
        self.user_evm_key, self.user_evm = evm_key()
        fund(w3, "0x" + relayer_evm.hex(), 100 * ETHER)
        fund(w3, "0x" + self.user_evm.hex(), 10 * ETHER)
        self.user_wallet = CoinWallet(user_btc)
        self.relayer_wallet = CoinWallet(self.relayer.btc)
        for wallet, sats in ((self.user_wallet, USER_BTC_SATS),
                             (self.relayer_wallet, RELAYER_BTC_SATS)):
            txid = btcd.faucet.pay(wallet.script_pubkey, sats)
            raw = btcd.rpc.raw_transaction(txid)
            assert raw is not None and wallet.add_outputs(raw)
        btcd.rpc.generate(1)
        self.user_btc = BitcoinLeg(btcd.rpc, "regtest", user_btc, BITCOIN_DEVNET, DEPTH, 2,
                                   self.user_wallet)
        self.user_eth = EvmLeg(w3, self.htlc, self.user_evm_key, EVM_DEVNET, DEPTH)
        self.user_btc_pub = coincurve.PrivateKey(user_btc).public_key.format()
        self.user_ledger = ledger.leg(ledger.user_key) if ledger is not None else None
        self.btc_chain, self.eth_chain = self.user_btc.chain, self.user_eth.chain
        self.db_url = f"sqlite:///{tmp}/swaps.sqlite"
        self.store, self.engine = self._start()
        common: dict[str, Any] = {"fee_bps": 30, "user_timelock_s": 600,
                                  "relayer_timelock_s": 300, "lock_deadline_s": 120}
        self.btc_eth = SwapPair(
            name="BTC/ETH", user_chain=self.btc_chain, user_asset="btc",
            relayer_chain=self.eth_chain, relayer_asset=NATIVE_TOKEN, rate_num=10**10,
            rate_den=1, min_amount=10_000, max_amount=10**8, **common)
        self.eth_btc = SwapPair(
            name="ETH/BTC", user_chain=self.eth_chain, user_asset=NATIVE_TOKEN,
            relayer_chain=self.btc_chain, relayer_asset="btc", rate_num=1, rate_den=10**10,
            min_amount=10**14, max_amount=10**18, **common)
        self.eth_ledger = None if ledger is None else SwapPair(
            name="ETH/wETH", user_chain=self.eth_chain, user_asset=NATIVE_TOKEN,
            relayer_chain="ferry:ledger", relayer_asset=ledger.asset, rate_num=1, rate_den=1,
            min_amount=10**14, max_amount=10**18, **common)

    # ------------------------------------------------------------------ the relayer
    def relayer_legs(self) -> dict[str, HtlcLeg]:
        """Fresh relayer drivers (a fresh, empty CoinWallet too: a crashed process keeps no
        memory; redeems and refunds pay the wallet's script without needing its coins)."""
        btc = BitcoinLeg(self.btcd.rpc, "regtest", self.relayer.btc, BITCOIN_DEVNET, DEPTH, 2,
                         self.relayer_wallet)
        eth = EvmLeg(self.w3, self.htlc, self.relayer.evm_key, EVM_DEVNET, DEPTH)
        legs: dict[str, HtlcLeg] = {btc.chain: btc, eth.chain: eth}
        if self.ledger is not None:
            legs["ferry:ledger"] = self.ledger.leg(self.ledger.relayer_key)
        return legs

    def _start(self, legs: dict[str, HtlcLeg] | None = None) -> tuple[SwapStore, SwapEngine]:
        store = SwapStore.open(self.db_url)
        identities = {self.btc_chain: coincurve.PrivateKey(self.relayer.btc).public_key.format(),
                      self.eth_chain: self.relayer.evm}
        anyone = {self.eth_chain}
        if self.ledger is not None:
            identities["ferry:ledger"] = bytes(self.ledger.relayer_key.verify_key)
            anyone.add("ferry:ledger")
        engine = SwapEngine(store, legs or self.relayer_legs(), identities,
                            anyone_can_refund=frozenset(anyone))
        return store, engine

    def restart(self, legs: dict[str, HtlcLeg] | None = None) -> None:
        """Drop the engine, its store and drivers; open new ones over the same database file."""
        self.store.engine.dispose()
        self.relayer_wallet = CoinWallet(self.relayer.btc)
        self.store, self.engine = self._start(legs)

    def offer(self, pair: SwapPair, amount: int, hashlock: bytes) -> SwapRecord:
        """The engine's offer to our user on `pair` (the user's identities per chain)."""
        ids = {self.btc_chain: self.user_btc_pub, self.eth_chain: self.user_evm}
        if self.ledger is not None:
            ids["ferry:ledger"] = bytes(self.ledger.user_key.verify_key)
        return self.engine.offer(pair, amount, hashlock, user_sender=ids[pair.user_chain],
                                 user_recipient=ids[pair.relayer_chain])

    def swap(self, swap_id: str) -> SwapRecord:
        record = self.store.get(swap_id)
        assert record is not None
        return record

    # ------------------------------------------------------------------ chain time
    def mine(self, btc_blocks: int = 1, eth_seconds: int = 0) -> None:
        if btc_blocks:
            self.btcd.rpc.generate(btc_blocks)
        if eth_seconds:
            rpc(self.w3, "evm_increaseTime", eth_seconds)
        rpc(self.w3, "evm_mine")

    def run(self, rounds: int = 1) -> None:
        """`rounds` engine passes, each followed by one block on btcd and on anvil."""
        for _ in range(rounds):
            self.engine.run()
            self.mine()

    # ------------------------------------------------------------------ the user
    def user_leg(self, chain: str) -> HtlcLeg:
        legs: dict[str, HtlcLeg] = {self.btc_chain: self.user_btc, self.eth_chain: self.user_eth}
        if self.user_ledger is not None:
            legs["ferry:ledger"] = self.user_ledger
        return legs[chain]

    def user_locks(self, record: SwapRecord) -> LegRef:
        """The user locks their leg of `record` exactly as agreed (waits for an EVM receipt)."""
        leg = record.initiator
        terms = LegTerms(leg.chain, leg.asset, leg.amount, record.hashlock, leg.expiry,
                         bytes.fromhex(leg.sender[2:]), bytes.fromhex(leg.recipient[2:]))
        driver = self.user_leg(leg.chain)
        prepared = driver.prepare_lock(terms)
        ref = driver.broadcast_lock(prepared)
        if leg.chain == self.eth_chain:
            self.wait_receipt(prepared.tx_ids[-1])
        return ref

    def user_redeems(self, record: SwapRecord, secret: bytes) -> str:
        """The user redeems the relayer's leg, revealing the secret; the tx id."""
        return self.user_leg(record.participant.chain).redeem(_ref(record.participant), secret)

    # ------------------------------------------------------------------ reads
    def wait_receipt(self, tx_hash: str) -> Any:
        """Bounded wait for an anvil receipt: under load anvil may answer a send before mining."""
        return self.w3.eth.wait_for_transaction_receipt(HexBytes(tx_hash), timeout=10)

    def eth(self, address: bytes) -> int:
        return self.w3.eth.get_balance(Web3.to_checksum_address("0x" + address.hex()))

    def gas_wei(self, tx_hash: str) -> int:
        receipt = self.wait_receipt(tx_hash)
        return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])

    def spend_of(self, leg: SwapLegRecord) -> tuple[str, bytes, int]:
        """The confirmed transaction spending a Bitcoin leg's HTLC output: (txid, the script
        its only output pays, that output's sats); the outpoint is spent on chain."""
        ref = _ref(leg)
        txid, vout = ref.id.split(":")
        assert self.btcd.rpc.tx_out(txid, int(vout), include_mempool=False) is None
        tip = self.btcd.rpc.block_count()
        for _, raw in self.btcd.rpc.raw_blocks(ref.since_block, tip):
            for tx in CBlock.deserialize(raw).vtx:
                for txin in tx.vin:
                    if (b2lx(txin.prevout.hash), txin.prevout.n) == (txid, int(vout)):
                        [out] = tx.vout
                        return b2lx(tx.GetTxid()), bytes(out.scriptPubKey), int(out.nValue)
        raise AssertionError(f"no block spends {ref.id}")

    def btc_tx(self, txid: str) -> Any:
        raw = self.btcd.rpc.raw_transaction(txid)
        assert raw is not None
        return decode_tx(raw)
