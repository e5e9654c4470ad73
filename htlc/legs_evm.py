"""The EVM leg driver: `HtlcLeg` over the HTLC contract (contracts/src/HTLC.sol).

Owns: `EvmLeg`. Signing a lock offline (so the engine can persist it first), sending it
idempotently, reading a leg's status and depth from ``htlcs(id)`` and the contract's
``Locked`` / ``Redeemed`` / ``Refunded`` logs, and finding a counterparty's lock by its id.
Redeem, refund and the secret's discovery go through `htlc.evm`. Must not hold a key beyond
the driver's own, log a secret, choose terms or timelocks (the engine does), or wait on a
wall clock.

Sources: the id is keccak256(abi.encode(sender, recipient, token, amount, hashlock, timelock,
chainid, contract)) (`htlc.evm.compute_id`, equal to the contract's ``computeId``); events
per the Solidity ABI spec (topic 0 = keccak256 of the signature, topic 1 = the indexed id);
transactions are EIP-1559 (EIP-2718 typed) as web3's ``build_transaction`` fills them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from eth_account import Account
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import RPCEndpoint

from adapters.base import NATIVE_TOKEN
from adapters.errors import (
    ChainError,
    ConfigError,
    NonceTooLow,
    RpcUnavailable,
    SubmissionReverted,
    Unsupported,
    ValidationError,
)
from adapters.evm.calls import hex_address
from adapters.evm.errors import translate_rpc_error
from contracts import load_artifact
from htlc import evm
from htlc.errors import HtlcAlreadySettled, TimelockTooShort, UnknownHtlc
from htlc.hashlock import check_preimage
from htlc.legs import LegRef, LegTerms, LegView, PreparedLock, check_terms, lock_status
from htlc.machine import LegStatus
from htlc.timelock import ChainTiming, UnixTime

log = logging.getLogger(__name__)

LOCKED_TOPIC = keccak(text="Locked(bytes32,address,address,address,uint256,bytes32,uint256)")
REFUNDED_TOPIC = keccak(text="Refunded(bytes32)")
_EVENTS = {LOCKED_TOPIC: "locked", evm.REDEEMED_TOPIC: "redeemed", REFUNDED_TOPIC: "refunded"}
ERC20_LOCK_GAS = 300_000  # gas limit of a lock sent right after its approve (cannot estimate;
# measured 183k with a cold token balance slot: 300k leaves room, unused gas is not charged)
MAX_TIMELOCK = 2**64 - 1  # the contract stores the timelock as uint64
ADDRESS_LEN = 20


def _address(raw: bytes) -> str:
    return "0x" + raw.hex()


def _cs(address: str) -> Any:
    return Web3.to_checksum_address(address)


class EvmLeg:
    """`HtlcLeg` on one EVM chain.

    Args:
        w3: client of the chain (HTTP provider).
        contract_address: the deployed HTLC contract, ``0x`` hex.
        key: this driver's 32-byte secp256k1 private key, ``0x`` hex: the sender of its locks
            (refunds pay it) and the payer of gas for every call it sends.
        timing: the chain's timing (kind "time").
        confirmation_depth: blocks for ``confirmed`` (the lock's block counts as one); None
            uses ``timing.confirmation_depth``, else it replaces it in `timing`.
        lookback_blocks: how far back `find_lock` searches for the ``Locked`` log of a lock
            it found by id (only to set ``LegRef.since_block``).

    Raises:
        ConfigError: `timing` is not a time chain, or a bad contract address.
        RpcUnavailable: the node did not answer (the chain id is read once here).
    """

    def __init__(self, w3: Web3, contract_address: str, key: str, timing: ChainTiming,
                 confirmation_depth: int | None = None, *, lookback_blocks: int = 50_000
                 ) -> None:
        if timing.kind != "time":
            raise ConfigError("an EVM leg expires at a unix time: timing.kind must be 'time'")
        try:
            self._contract: Contract = evm.htlc_contract(w3, contract_address)
        except ValidationError as exc:
            raise ConfigError(str(exc)) from exc
        self._w3 = w3
        self._key = key
        self.contract_address = str(self._contract.address).lower()
        self.address = str(Account.from_key(key).address).lower()
        self.timing = timing if confirmation_depth is None else replace(
            timing, confirmation_depth=confirmation_depth)
        self._lookback = lookback_blocks
        try:
            self._chain_id = int(w3.eth.chain_id)
        except OSError as exc:
            raise RpcUnavailable(str(exc)) from exc
        self.chain = f"eip155:{self._chain_id}"

    # ------------------------------------------------------------------ clock

    def now(self) -> UnixTime:
        """``block.timestamp`` of the latest block (seconds)."""
        return UnixTime(int(self._rpc(lambda: self._w3.eth.get_block("latest"))["timestamp"]))

    # ------------------------------------------------------------------ lock

    def prepare_lock(self, terms: LegTerms) -> PreparedLock:
        """Sign the ``lock`` of `terms` (and an ``approve`` first when an ERC-20 allowance is
        short), with the next pending nonces; nothing is sent.

        Prepare, then broadcast, before preparing another lock from the same key: two prepared
        locks would share a nonce.

        Raises:
            ValidationError: terms of another chain, a bad token address, sender not this
                driver's address, or a timelock over uint64.
            TimelockTooShort: gas estimation says the timelock is not after ``block.timestamp``.
            SubmissionReverted: gas estimation reverted otherwise (e.g. balance too low).
            RpcUnavailable: the node did not answer.
        """
        check_terms(terms, self.chain, self.timing, (ADDRESS_LEN, ADDRESS_LEN))
        if _address(terms.sender) != self.address:
            raise ValidationError("the sender of our lock must be this driver's address")
        if terms.expiry.value > MAX_TIMELOCK:
            raise ValidationError("an EVM timelock fits in uint64")
        token = hex_address(terms.asset, "token")
        recipient = _address(terms.recipient)
        htlc_id = evm.compute_id(
            chain_id=self._chain_id, contract=self._contract.address, sender=self.address,
            recipient=recipient, token=token, amount=terms.amount, hashlock=terms.hashlock,
            timelock=terms.expiry.value)
        head = self._rpc(lambda: int(self._w3.eth.block_number))
        nonce = self._rpc(lambda: int(self._w3.eth.get_transaction_count(
            _cs(self.address), "pending")))
        signed: list[tuple[bytes, str]] = []
        gas: int | None = None
        if token != NATIVE_TOKEN:
            erc20 = self._w3.eth.contract(address=_cs(token), abi=load_artifact("TestToken").abi)
            allowance = self._rpc(lambda: int(erc20.functions.allowance(
                _cs(self.address), self._contract.address).call()))
            if allowance < terms.amount:
                signed.append(self._sign(
                    erc20.functions.approve(self._contract.address, terms.amount), nonce, 0))
                nonce, gas = nonce + 1, ERC20_LOCK_GAS
        call = self._contract.functions.lock(
            htlc_id, _cs(recipient), _cs(token), terms.amount, terms.hashlock,
            terms.expiry.value)
        value = terms.amount if token == NATIVE_TOKEN else 0
        signed.append(self._sign(call, nonce, value, gas))
        ref = LegRef(self.chain, "0x" + htlc_id.hex(), terms.hashlock, terms.amount,
                     terms.expiry, since_block=head)
        log.info("htlc lock prepared chain=%s htlc_id=%s tx=%s", self.chain, ref.id, signed[-1][1])
        return PreparedLock(ref, tuple(r for r, _ in signed), tuple(h for _, h in signed))

    def broadcast_lock(self, prepared: PreparedLock) -> LegRef:
        """Send each prepared transaction in order (``eth_sendRawTransaction``); one the node
        already has (mempool or chain) counts as sent.

        Raises:
            NonceTooLow: another transaction took the nonce: prepare again.
            ChainError: the node refused a transaction. RpcUnavailable: no answer (resend).
        """
        for raw, tx_hash in zip(prepared.raw_txs, prepared.tx_ids, strict=True):
            reply = self._rpc(lambda raw=raw: self._w3.provider.make_request(
                RPCEndpoint("eth_sendRawTransaction"), ["0x" + raw.hex()]))
            error = reply.get("error")
            if error:
                exc = translate_rpc_error(error, chain=self.chain, method="eth_sendRawTransaction")
                if not (isinstance(exc, NonceTooLow) and self._known_tx(tx_hash)):
                    raise exc
        log.info("htlc lock broadcast chain=%s htlc_id=%s", self.chain, prepared.ref.id)
        return prepared.ref

    # ------------------------------------------------------------------ reads

    def observe(self, ref: LegRef) -> LegView:
        """Status from ``htlcs(id)`` at the latest block; depth from the log that set it.

        A lock still in the mempool shows ``none`` (``htlcs`` reads the latest block). A lock
        whose ``Locked`` log is not found from ``ref.since_block`` reports 0 confirmations
        (``locked``), never ``confirmed``.

        Raises:
            ValidationError: `ref.id` is not a 32-byte hex id. RpcUnavailable, ChainError.
        """
        htlc_id = self._id(ref)
        info = evm.htlc_info(self._w3, self._contract, htlc_id)
        if info.state == evm.HtlcState.NONE:
            return LegView(LegStatus.NONE, 0, ref.expiry, ref.amount)
        head = self._rpc(lambda: int(self._w3.eth.block_number))
        events = self._events(htlc_id, ref.since_block)
        expiry, amount = UnixTime(info.timelock), info.amount

        def depth(name: str) -> int:
            return head - events[name][0] + 1 if name in events else 0

        match info.state:
            case evm.HtlcState.REDEEMED:
                secret = events["redeemed"][1] if "redeemed" in events else None
                return LegView(LegStatus.REDEEMED, depth("redeemed"), expiry, amount, secret)
            case evm.HtlcState.REFUNDED:
                return LegView(LegStatus.REFUNDED, depth("refunded"), expiry, amount)
        confs = depth("locked")
        return LegView(lock_status(confs, self.timing.confirmation_depth), confs, expiry, amount)

    def find_secret(self, ref: LegRef) -> bytes | None:
        """The secret from a ``redeem`` call pending in the node's txpool (checked against the
        on-chain hashlock; skipped when the node has no ``txpool_content``), else from a mined
        ``Redeemed`` log since ``ref.since_block``.

        Raises:
            ValidationError: a bad id. RpcUnavailable, ChainError.
        """
        htlc_id = self._id(ref)
        try:
            pending = evm.pending_preimage(self._w3, self._contract, htlc_id)
        except Unsupported:
            pending = None
            log.debug("no txpool_content on chain=%s: mined redeems only", self.chain)
        if pending is not None:
            return pending
        return evm.find_preimage(self._w3, self._contract, htlc_id, ref.since_block)

    def find_lock(self, terms: LegTerms) -> LegRef | None:
        """The lock of `terms` (any sender): its id is computed from the terms, so it exists
        only if ``htlcs(id)`` shows it; the stored fields are compared too.

        Raises:
            ValidationError: terms of another chain or a bad token address. RpcUnavailable.
        """
        check_terms(terms, self.chain, self.timing, (ADDRESS_LEN, ADDRESS_LEN))
        token = hex_address(terms.asset, "token")
        htlc_id = evm.compute_id(
            chain_id=self._chain_id, contract=self._contract.address,
            sender=_address(terms.sender), recipient=_address(terms.recipient), token=token,
            amount=terms.amount, hashlock=terms.hashlock, timelock=terms.expiry.value)
        info = evm.htlc_info(self._w3, self._contract, htlc_id)
        if info.state == evm.HtlcState.NONE:
            return None
        if (info.sender, info.recipient, info.token, info.amount, info.hashlock,
                info.timelock) != (_address(terms.sender), _address(terms.recipient), token,
                                   terms.amount, terms.hashlock, terms.expiry.value):
            log.warning("htlc record differs from its id chain=%s htlc_id=0x%s", self.chain,
                        htlc_id.hex())
            return None
        head = self._rpc(lambda: int(self._w3.eth.block_number))
        start = max(0, head - self._lookback)
        locked = self._events(htlc_id, start).get("locked")
        return LegRef(self.chain, "0x" + htlc_id.hex(), terms.hashlock, terms.amount,
                      terms.expiry, since_block=locked[0] if locked else start)

    # ------------------------------------------------------------------ settle

    def redeem(self, ref: LegRef, secret: bytes) -> str:
        """Send ``redeem(id, secret)`` (gas paid by this driver's key) and wait for its receipt
        (`htlc.evm.redeem`, at most 30 s), or return the tx hash of the redeem already mined.

        Raises:
            BadPreimage: `secret` is not 32 bytes or does not open ``ref.hashlock``.
            HtlcAlreadySettled: the leg was refunded. UnknownHtlc: nothing locked.
            HtlcExpired: ``block.timestamp >= timelock``. SubmissionReverted, RpcUnavailable.
        """
        check_preimage(secret, ref.hashlock)
        return self._settle(ref, "redeemed", lambda htlc_id: evm.redeem(
            self._w3, self._contract, htlc_id, secret, sender_key=self._key))

    def refund(self, ref: LegRef) -> str:
        """Send ``refund(id)`` (gas paid by this driver's key) and wait for its receipt (at
        most 30 s), or return the tx hash of the refund already mined.

        Raises:
            HtlcAlreadySettled: the leg was redeemed. UnknownHtlc: nothing locked.
            HtlcNotExpired: ``block.timestamp < timelock``. SubmissionReverted, RpcUnavailable.
        """
        return self._settle(ref, "refunded", lambda htlc_id: evm.refund(
            self._w3, self._contract, htlc_id, sender_key=self._key))

    # ------------------------------------------------------------------ internals

    def _settle(self, ref: LegRef, wanted: str, send: Callable[[bytes], str]) -> str:
        htlc_id = self._id(ref)
        done = self._settled(ref, htlc_id, wanted)
        if done is not None:
            return done
        try:
            tx_hash = send(htlc_id)
        except (HtlcAlreadySettled, SubmissionReverted):
            done = self._settled(ref, htlc_id, wanted)  # lost a race to another sender?
            if done is None:
                raise
            return done
        log.info("htlc %s chain=%s htlc_id=%s tx=%s", wanted, self.chain, ref.id, tx_hash)
        return tx_hash

    def _settled(self, ref: LegRef, htlc_id: bytes, wanted: str) -> str | None:
        """The tx hash of the settlement `wanted` if mined; raise if settled the other way."""
        state = evm.htlc_state(self._w3, self._contract, htlc_id)
        if state == evm.HtlcState.NONE:
            raise UnknownHtlc(f"no htlc {ref.id} on {self.chain}")
        if state == evm.HtlcState.LOCKED:
            return None
        name = "redeemed" if state == evm.HtlcState.REDEEMED else "refunded"
        if name != wanted:
            raise HtlcAlreadySettled(f"htlc {ref.id} is already {name}")
        event = self._events(htlc_id, ref.since_block).get(name)
        if event is None:
            raise ChainError(f"htlc {ref.id} is {name} but its log is not after block "
                             f"{ref.since_block}", chain=self.chain)
        return event[2]

    def _events(self, htlc_id: bytes, from_block: int) -> dict[str, tuple[int, bytes, str]]:
        """The contract's logs about `htlc_id` from `from_block`: event name -> (block number,
        data, tx hash); the latest of each."""
        def fetch() -> list[Any]:
            if from_block > self._w3.eth.block_number:
                return []
            return list(self._w3.eth.get_logs({
                "address": self._contract.address, "fromBlock": from_block,
                "toBlock": "latest",
                "topics": [[HexBytes(t) for t in _EVENTS], HexBytes(htlc_id)]}))

        found: dict[str, tuple[int, bytes, str]] = {}
        for entry in self._rpc(fetch):
            name = _EVENTS.get(bytes(entry["topics"][0]))
            if name is not None and not entry.get("removed"):
                found[name] = (int(entry["blockNumber"]), bytes(entry["data"]),
                               entry["transactionHash"].to_0x_hex())
        return found

    def _sign(self, call: Any, nonce: int, value: int, gas: int | None = None
              ) -> tuple[bytes, str]:
        params: dict[str, Any] = {"from": _cs(self.address), "value": value,
                                  "chainId": self._chain_id, "nonce": nonce}
        if gas is not None:
            params["gas"] = gas
        try:
            tx = call.build_transaction(params)
        except ContractLogicError as exc:
            if _selector_of(exc) == _TIMELOCK_SELECTOR:
                raise TimelockTooShort(f"lock refused: {exc}") from exc
            raise SubmissionReverted(f"lock estimation reverted: {exc}", chain=self.chain) from exc
        except OSError as exc:
            raise RpcUnavailable(str(exc), chain=self.chain) from exc
        signed = Account.from_key(self._key).sign_transaction(tx)
        return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()

    def _known_tx(self, tx_hash: str) -> bool:
        """Whether the node has transaction `tx_hash` (mempool or chain)."""
        try:
            self._rpc(lambda: self._w3.eth.get_transaction(HexBytes(tx_hash)))
        except TransactionNotFound:
            return False
        return True

    def _id(self, ref: LegRef) -> bytes:
        if ref.chain != self.chain:
            raise ValidationError(f"reference is for {ref.chain}, this leg is {self.chain}")
        try:
            htlc_id = bytes.fromhex(ref.id.removeprefix("0x"))
        except ValueError:
            htlc_id = b""
        if len(htlc_id) != 32:
            raise ValidationError(f"an EVM htlc id is 32 bytes of 0x hex, got {ref.id!r}")
        return htlc_id

    def _rpc(self, fn: Any) -> Any:
        """Run a web3 read; transport faults become RpcUnavailable, node errors ChainError."""
        try:
            return fn()
        except OSError as exc:
            raise RpcUnavailable(str(exc), chain=self.chain) from exc
        except Web3RPCError as exc:
            raise ChainError(str(exc), chain=self.chain) from exc


_TIMELOCK_SELECTOR = "0x" + keccak(text="TimelockNotInFuture(uint256,uint256)")[:4].hex()


def _selector_of(exc: ContractLogicError) -> str:
    data = exc.data if isinstance(exc.data, str) else ""
    return data[:10]
