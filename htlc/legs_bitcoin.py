"""The Bitcoin leg driver: `HtlcLeg` over P2WSH HTLC outputs (`htlc.bitcoin`) on one node.

Owns: `BitcoinLeg`, the `BtcFunding` interface it funds its own locks through, and
`CoinWallet`, a minimal one-key P2WPKH `BtcFunding` over coins the caller hands it (devnets
and tests; the relayer's real wallet comes later). Must not hold keys beyond its own, log a
secret, choose terms, or sleep: time is the node's tip height.

How the chain is read (btcd or Bitcoin Core JSON-RPC, `adapters.bitcoin.rpc.BtcRpc`; the node
needs ``--txindex`` to see confirmed transactions by txid, as Ferry's btcd has):
- a lock is the output ``txid:vout`` paying ``OP_0 sha256(witness_script)`` (BIP-141) exactly
  ``amount`` sats; its depth is the funding transaction's confirmations.
- its settlement is the transaction spending that outpoint. ``gettxout`` (mempool excluded)
  says whether a block spent it; only then are the blocks from the lock's height scanned for
  the spender. The spender's witness tells which branch: ``[sig, secret, 0x01, script]`` is a
  redeem, ``[sig, "", script]`` a refund (the script's IF/ELSE, htlc/bitcoin.py).
- the mempool (``getrawmempool`` + ``getrawtransaction``) is read for spends not yet mined:
  `find_secret` reads a redeem's secret there; `redeem` / `refund` see a settlement there.
- `find_lock` scans the mempool and the last `scan_blocks` blocks for an output paying the
  terms' script with exactly the terms' amount.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

from bitcoin.core import (
    CBlock,
    CMutableTransaction,
    COutPoint,
    CTransaction,
    CTxIn,
    CTxInWitness,
    CTxOut,
    CTxWitness,
    Hash160,
    b2lx,
    lx,
)
from bitcoin.core.script import CScript, CScriptWitness

from adapters.bitcoin import keys
from adapters.bitcoin.errors import InsufficientFunds, TxRejected
from adapters.bitcoin.rpc import BtcRpc
from adapters.bitcoin.scripts import HRP, p2wsh
from adapters.bitcoin.tx import (
    CHANGE_MIN_SATS,
    SEQUENCE_RBF,
    SIGHASH_ALL,
    Coin,
    decode_tx,
    sighash_v0,
    txid_of,
)
from adapters.errors import ConfigError, ValidationError
from htlc.bitcoin import (
    HtlcScript,
    build_redeem,
    build_refund,
    check_presigned_refund,
    find_htlc_outputs,
    htlc_address,
    parse_htlc_script,
)
from htlc.errors import HtlcAlreadySettled, HtlcNotExpired, TimelockTooShort, UnknownHtlc
from htlc.hashlock import check_preimage
from htlc.legs import LegRef, LegTerms, LegView, PreparedLock, check_terms, lock_status
from htlc.machine import LegStatus
from htlc.timelock import BlockHeight, ChainTiming, expired

log = logging.getLogger(__name__)

PUBKEY_LEN = 33
BLOCKS_PER_BATCH = 50  # blocks fetched per `BtcRpc.raw_blocks` round trip
BLOCK_CACHE = 256  # decoded blocks kept, by hash (the most recently decoded)
_PLACEHOLDER_SIG = b"\x00" * 73  # the largest DER signature + sighash byte, for fee estimates


class BtcFunding(Protocol):
    """Where a `BitcoinLeg` gets the coins of its own locks and where its spends pay.

    `fund` must return a signed transaction (BIP-144 bytes) that pays exactly `amount_sats` to
    `script_pubkey` in one output, and must not broadcast it (the leg does, after the engine
    persisted it). Its inputs count as spent from then on: a second `fund` never reuses them.
    """

    @property
    def script_pubkey(self) -> bytes:
        """Where redeems and refunds this leg sends are paid."""
        ...

    def fund(self, script_pubkey: bytes, amount_sats: int, fee_rate_sat_vb: int) -> bytes:
        """A signed, unsent transaction paying `amount_sats` to `script_pubkey`.

        Raises:
            InsufficientFunds: the coins do not cover amount + fee.
        """
        ...


class CoinWallet:
    """`BtcFunding` of one key's P2WPKH coins (BIP-141 v0 keyhash), handed in by the caller.

    It tracks only what it is told (`add_coin`, `add_outputs`) and its own change; it does not
    ask a node whether a coin still exists. Coins chosen for a `fund` are reserved even if the
    transaction is never sent. Spends: version 2, nLockTime 0, nSequence 0xfffffffd (BIP-125),
    BIP-143 SIGHASH_ALL; outputs ``[payment, change]``, change omitted under CHANGE_MIN_SATS.
    Not thread-safe.

    Args:
        secret: 32-byte secp256k1 private key. SECURITY: never logged.
        coins: its spendable outputs (`adapters.bitcoin.tx.Coin`, account None).
    """

    def __init__(self, secret: bytes, coins: Iterable[Coin] = ()) -> None:
        self._secret = secret
        self.pubkey = keys.public_key(secret)
        self._keyhash = bytes(Hash160(self.pubkey))
        self._coins: dict[tuple[str, int], Coin] = {(c.txid, c.vout): c for c in coins}

    @property
    def script_pubkey(self) -> bytes:
        """``OP_0 <20-byte HASH160(pubkey)>``."""
        return b"\x00\x14" + self._keyhash

    def add_coin(self, coin: Coin) -> None:
        """Make `coin` spendable by `fund`."""
        self._coins[(coin.txid, coin.vout)] = coin

    def add_outputs(self, tx_bytes: bytes) -> list[Coin]:
        """Add every output of `tx_bytes` that pays `script_pubkey`; returns them."""
        tx = decode_tx(tx_bytes)
        txid = b2lx(tx.GetTxid())
        found = [Coin(txid, i, int(o.nValue)) for i, o in enumerate(tx.vout)
                 if bytes(o.scriptPubKey) == self.script_pubkey]
        for coin in found:
            self.add_coin(coin)
        return found

    def fund(self, script_pubkey: bytes, amount_sats: int, fee_rate_sat_vb: int) -> bytes:
        """See `BtcFunding.fund`; coins are chosen largest first, fee = vsize * rate."""
        chosen: list[Coin] = []
        for coin in sorted(self._coins.values(), key=lambda c: (-c.amount_sats, c.txid, c.vout)):
            chosen.append(coin)
            total = sum(c.amount_sats for c in chosen)
            fee = self._vsize(chosen, script_pubkey, amount_sats, True) * fee_rate_sat_vb
            change = total - amount_sats - fee
            if change < CHANGE_MIN_SATS:
                fee = self._vsize(chosen, script_pubkey, amount_sats, False) * fee_rate_sat_vb
                change = 0 if total - amount_sats - fee >= 0 else -1
            if change >= 0:
                break
        else:
            raise InsufficientFunds(f"coins do not cover {amount_sats} sats plus the fee")
        tx = self._build(chosen, script_pubkey, amount_sats, change)
        script_code = b"\x76\xa9\x14" + self._keyhash + b"\x88\xac"  # BIP-143 P2WPKH code
        tx.wit = CTxWitness([CTxInWitness(CScriptWitness([
            keys.sign_digest(self._secret, sighash_v0(tx, i, script_code, c.amount_sats))
            + bytes([SIGHASH_ALL]), self.pubkey]))
            for i, c in enumerate(chosen)])
        raw = bytes(tx.serialize())
        for c in chosen:
            del self._coins[(c.txid, c.vout)]
        if change:
            self.add_coin(Coin(txid_of(raw), 1, change))
        return raw

    def _build(self, coins: list[Coin], spk: bytes, amount: int, change: int
               ) -> CMutableTransaction:
        vin = [CTxIn(COutPoint(lx(c.txid), c.vout), CScript(), SEQUENCE_RBF) for c in coins]
        vout = [CTxOut(amount, CScript(spk))]
        if change:
            vout.append(CTxOut(change, CScript(self.script_pubkey)))
        return CMutableTransaction(vin, vout, nLockTime=0, nVersion=2)

    def _vsize(self, coins: list[Coin], spk: bytes, amount: int, with_change: bool) -> int:
        tx = self._build(coins, spk, amount, CHANGE_MIN_SATS if with_change else 0)
        tx.wit = CTxWitness([CTxInWitness(CScriptWitness([_PLACEHOLDER_SIG, self.pubkey]))
                             for _ in coins])
        return int(-(-tx.calc_weight() // 4))


@dataclass(frozen=True, slots=True)
class _Spend:
    """The transaction spending an HTLC outpoint: its txid, branch, secret and block height
    (None in the mempool)."""

    txid: str
    kind: LegStatus  # REDEEMED or REFUNDED
    secret: bytes | None
    height: int | None


class BitcoinLeg:
    """`HtlcLeg` on one Bitcoin network.

    Args:
        rpc: client of a node with ``--txindex``; ``rpc.chain`` is the leg's CAIP-2 id.
        network: mainnet, testnet, signet or regtest (for the HTLC address in logs).
        key_secret: this driver's 32-byte secp256k1 key: the refund key of its locks, the
            recipient key of the legs it redeems. SECURITY: never logged.
        timing: the chain's timing (kind "height").
        confirmation_depth: blocks for ``confirmed``; None uses ``timing.confirmation_depth``,
            else it replaces it in `timing`.
        fee_rate_sat_vb: fee rate of its funding, redeem and refund transactions (sat/vB).
        wallet: funds its locks and receives its redeems and refunds (`BtcFunding`).
        scan_blocks: how many recent blocks `find_lock` scans (144 is about a day).

    Raises:
        ConfigError: `timing` is not a height chain, a fee rate below 1, an unknown network.
    """

    def __init__(self, rpc: BtcRpc, network: str, key_secret: bytes, timing: ChainTiming,
                 confirmation_depth: int | None, fee_rate_sat_vb: int, wallet: BtcFunding, *,
                 scan_blocks: int = 144) -> None:
        if timing.kind != "height" or fee_rate_sat_vb < 1 or network not in HRP:
            raise ConfigError("a Bitcoin leg needs a height timing, a fee rate >= 1 sat/vB and "
                              "a known network")
        self._rpc, self.network, self._secret = rpc, network, key_secret
        self.pubkey = keys.public_key(key_secret)
        self.timing = timing if confirmation_depth is None else replace(
            timing, confirmation_depth=confirmation_depth)
        self.fee_rate_sat_vb, self.wallet, self._scan_blocks = fee_rate_sat_vb, wallet, scan_blocks
        self.chain = rpc.chain
        # Decoded transactions by id: a txid's (and a block hash's) content never changes, so
        # each is fetched and decoded once, not once per swap per pass (bench/swaps.py).
        self._mempool_cache: dict[str, CTransaction] = {}
        self._block_cache: dict[str, list[CTransaction]] = {}

    def now(self) -> BlockHeight:
        """The node's tip height (``getblockcount``)."""
        return BlockHeight(self._rpc.block_count())

    # ------------------------------------------------------------------ lock

    def prepare_lock(self, terms: LegTerms) -> PreparedLock:
        """Build the HTLC script (refund key = ours) and have the wallet sign a transaction
        paying its P2WSH exactly ``terms.amount``; nothing is sent.

        Raises:
            ValidationError: terms of another chain or asset, sender not our key, a bad
                recipient key or locktime; the wallet's transaction does not pay the HTLC once
                with the amount.
            TimelockTooShort: the locktime is not above the tip (refundable at once).
            InsufficientFunds: the wallet cannot pay. RpcUnavailable: the node did not answer.
        """
        check_terms(terms, self.chain, self.timing, (PUBKEY_LEN, PUBKEY_LEN))
        if terms.asset != "btc" or terms.sender != self.pubkey:
            raise ValidationError("our Bitcoin lock is of 'btc' and refunds to our key")
        tip = self.now()
        if expired(terms.expiry, tip):
            raise TimelockTooShort(f"locktime {terms.expiry.value} is not above the tip {tip.value}")
        script = _script(terms)
        raw = self.wallet.fund(p2wsh(script), terms.amount, self.fee_rate_sat_vb)
        outputs = find_htlc_outputs(raw, script)
        if [amount for _, amount in outputs] != [terms.amount]:
            raise ValidationError("the funding transaction does not pay the HTLC exactly once")
        txid = txid_of(raw)
        ref = LegRef(self.chain, f"{txid}:{outputs[0][0]}", terms.hashlock, terms.amount,
                     terms.expiry, since_block=tip.value, witness_script=script.hex())
        log.info("htlc lock prepared chain=%s outpoint=%s address=%s", self.chain, ref.id,
                 htlc_address(script, self.network))
        return PreparedLock(ref, (raw,), (txid,))

    def broadcast_lock(self, prepared: PreparedLock) -> LegRef:
        """Send the funding transaction; one the node already knows counts as sent.

        Raises:
            TxRejected, FeeTooLow: the node refused it. RpcUnavailable: no answer (resend).
        """
        for raw, txid in zip(prepared.raw_txs, prepared.tx_ids, strict=True):
            try:
                self._rpc.send_raw_transaction(raw)
            except TxRejected:
                if self._rpc.transaction_info(txid) is None:  # e.g. mined, outputs all spent
                    raise
        log.info("htlc lock broadcast chain=%s outpoint=%s", self.chain, prepared.ref.id)
        return prepared.ref

    # ------------------------------------------------------------------ reads

    def observe(self, ref: LegRef) -> LegView:
        """See the module docstring. ``none`` when the node does not know the funding tx.

        Raises:
            ValidationError: a malformed ref, or its output does not pay the script and amount.
            RpcUnavailable, BtcRpcError: the node.
        """
        txid, vout, script = self._parse(ref)
        lock_confs = self._lock_confirmations(ref, txid, vout, script)
        if lock_confs is None:
            return LegView(LegStatus.NONE, 0, ref.expiry, ref.amount)
        spend = self._spend(ref, lock_confs, mempool=False)
        if spend is not None and spend.height is not None:
            confs = self._rpc.block_count() - spend.height + 1
            return LegView(spend.kind, confs, ref.expiry, ref.amount, spend.secret)
        return LegView(lock_status(lock_confs, self.timing.confirmation_depth), lock_confs,
                       ref.expiry, ref.amount)

    def find_secret(self, ref: LegRef) -> bytes | None:
        """The secret from the transaction spending the HTLC output through its redeem branch,
        in a block or in the mempool (checked against the hashlock)."""
        txid, vout, script = self._parse(ref)
        spend = self._spend(ref, self._lock_confirmations(ref, txid, vout, script), mempool=True)
        return spend.secret if spend is not None else None

    def find_lock(self, terms: LegTerms) -> LegRef | None:
        """The oldest output, in the last `scan_blocks` blocks then the mempool, paying the
        script of `terms` (recipient and refund keys, hashlock, locktime) exactly
        ``terms.amount`` sats; outputs with another amount are ignored.

        Raises:
            ValidationError: terms of another chain or asset, or bad keys. RpcUnavailable.
        """
        check_terms(terms, self.chain, self.timing, (PUBKEY_LEN, PUBKEY_LEN))
        if terms.asset != "btc":
            raise ValidationError("a Bitcoin leg locks 'btc'")
        script = _script(terms)
        spk, tip = p2wsh(script), self._rpc.block_count()
        first = max(0, tip - self._scan_blocks + 1)
        mempool = ((tip, tx) for tx in self._mempool_txs())
        for height, tx in itertools.chain(self._block_txs(first, tip), mempool):
            for n, out in enumerate(tx.vout):
                if bytes(out.scriptPubKey) == spk and out.nValue == terms.amount:
                    return LegRef(self.chain, f"{b2lx(tx.GetTxid())}:{n}", terms.hashlock,
                                  terms.amount, terms.expiry, since_block=height,
                                  witness_script=script.hex())
        return None

    # ------------------------------------------------------------------ settle

    def redeem(self, ref: LegRef, secret: bytes) -> str:
        """Sign and send the redeem (our key must be the script's recipient) paying the wallet,
        or return the txid of a redeem already in the mempool or a block.

        Raises:
            BadPreimage: `secret` does not open the hashlock. ValidationError: not our HTLC.
            HtlcAlreadySettled: a refund spent it. UnknownHtlc: the node does not know the lock.
            TxRejected, FeeTooLow, InsufficientFunds, RpcUnavailable.
        """
        check_preimage(secret, ref.hashlock)
        txid, vout, script = self._parse(ref)
        if parse_htlc_script(script).recipient_pub != self.pubkey:
            raise ValidationError("this leg's key is not the HTLC's recipient")
        return self._settle(ref, LegStatus.REDEEMED, lambda: build_redeem(
            (txid, vout), ref.amount, script, secret, self._secret, self.wallet.script_pubkey,
            self.fee_rate_sat_vb))

    def refund(self, ref: LegRef) -> str:
        """Sign and send the refund (nLockTime = the locktime) paying the wallet, once the tip
        reached the locktime; or return the txid of a refund already sent.

        Raises:
            HtlcNotExpired: tip < locktime. HtlcAlreadySettled: a redeem spent it.
            ValidationError: not our HTLC. UnknownHtlc, TxRejected, FeeTooLow, RpcUnavailable.
        """
        txid, vout, script = self._parse(ref)
        fields = parse_htlc_script(script)
        if fields.refund_pub != self.pubkey:
            raise ValidationError("this leg's key is not the HTLC's refund key")

        def build() -> bytes:
            if not expired(fields.locktime, self.now()):
                raise HtlcNotExpired(f"htlc {ref.id} refunds from height {fields.locktime.value}")
            return build_refund((txid, vout), ref.amount, script, self._secret,
                                self.wallet.script_pubkey, self.fee_rate_sat_vb)
        return self._settle(ref, LegStatus.REFUNDED, build)

    def check_presigned_refund(self, ref: LegRef, raw_tx: bytes) -> str:
        """Check a refund of `ref` its refunder signed in advance (`htlc.bitcoin.
        check_presigned_refund`); returns its txid.

        Raises:
            ValidationError: it does not validly refund this HTLC.
        """
        txid, vout, script = self._parse(ref)
        return check_presigned_refund(raw_tx, (txid, vout), ref.amount, script)

    def broadcast_presigned_refund(self, ref: LegRef, raw_tx: bytes) -> str:
        """Send the refunder's pre-signed refund of `ref` once the tip reached the locktime (a
        watchtower's job: the user may be offline); idempotent like `refund`.

        Raises:
            ValidationError: not a valid refund of this HTLC. HtlcNotExpired: tip < locktime.
            HtlcAlreadySettled: a redeem spent it. UnknownHtlc, TxRejected, RpcUnavailable.
        """
        self.check_presigned_refund(ref, raw_tx)
        locktime = BlockHeight(int(decode_tx(bytes(raw_tx)).nLockTime))  # >= the script's

        def build() -> bytes:
            if not expired(locktime, self.now()):
                raise HtlcNotExpired(f"the refund of htlc {ref.id} is valid from height "
                                     f"{locktime.value}")
            return bytes(raw_tx)
        return self._settle(ref, LegStatus.REFUNDED, build)

    # ------------------------------------------------------------------ internals

    def _settle(self, ref: LegRef, wanted: LegStatus, build: Callable[[], bytes]) -> str:
        txid, vout, script = self._parse(ref)
        confs = self._lock_confirmations(ref, txid, vout, script)

        def done() -> str | None:
            spend = self._spend(ref, confs, mempool=True)
            if spend is None:
                return None
            if spend.kind != wanted:
                raise HtlcAlreadySettled(f"htlc {ref.id} is already {spend.kind.value}")
            return spend.txid

        existing = done()
        if existing is not None:
            return existing
        if confs is None:
            raise UnknownHtlc(f"the node does not know the funding of {ref.id}")
        raw = build()
        try:
            sent = self._rpc.send_raw_transaction(raw)
        except TxRejected:
            existing = done()  # lost a race to another spend?
            if existing is None:
                raise
            return existing
        log.info("htlc %s chain=%s outpoint=%s tx=%s", wanted.value, self.chain, ref.id, sent)
        return sent

    def _parse(self, ref: LegRef) -> tuple[str, int, bytes]:
        if ref.chain != self.chain:
            raise ValidationError(f"reference is for {ref.chain}, this leg is {self.chain}")
        txid, _, vout = ref.id.partition(":")
        try:
            coin = Coin(txid, int(vout), ref.amount)
            script = bytes.fromhex(ref.witness_script)
        except ValueError as exc:
            raise ValidationError(f"a Bitcoin leg id is txid:vout, got {ref.id!r}") from exc
        if parse_htlc_script(script).hashlock != ref.hashlock:
            raise ValidationError("the reference's script is for another hashlock")
        return coin.txid, coin.vout, script

    def _lock_confirmations(self, ref: LegRef, txid: str, vout: int, script: bytes
                            ) -> int | None:
        """Confirmations of the funding tx (0 in the mempool), None if unknown; SECURITY: its
        output `vout` must pay the script's P2WSH exactly ``ref.amount``."""
        info = self._rpc.transaction_info(txid)
        if info is None:
            return None
        outs = [o for o in info["vout"] if o.get("n") == vout]
        if not outs or outs[0]["value_sats"] != ref.amount or bytes.fromhex(
                outs[0]["scriptPubKey"]["hex"]) != p2wsh(script):
            raise ValidationError(f"{ref.id} does not pay the HTLC script {ref.amount} sats")
        return int(info["confirmations"])

    def _spend(self, ref: LegRef, lock_confs: int | None, *, mempool: bool) -> _Spend | None:
        """The transaction spending the HTLC output: in a block (found from the funding's
        block on, only if ``gettxout`` says a block spent it), else in the mempool."""
        txid, vout, _ = self._parse(ref)
        if lock_confs and self._rpc.tx_out(txid, vout, include_mempool=False) is None:
            tip = self._rpc.block_count()
            start = min(ref.since_block, tip - lock_confs)  # at or below the funding block
            for height, tx in self._block_txs(start, tip):
                spend = _spending(tx, txid, vout, ref.hashlock, height)
                if spend is not None:
                    return spend
        if mempool:
            for tx in self._mempool_txs():
                spend = _spending(tx, txid, vout, ref.hashlock, None)
                if spend is not None:
                    return spend
        return None

    def _block_txs(self, first: int, last: int) -> Iterator[tuple[int, CTransaction]]:
        for start in range(first, last + 1, BLOCKS_PER_BATCH):
            stop = min(last, start + BLOCKS_PER_BATCH - 1)
            for offset, (block_hash, raw) in enumerate(self._rpc.raw_blocks(start, stop)):
                txs = self._block_cache.get(block_hash)
                if txs is None:
                    txs = self._block_cache[block_hash] = list(CBlock.deserialize(raw).vtx)
                    if len(self._block_cache) > BLOCK_CACHE:
                        del self._block_cache[next(iter(self._block_cache))]  # the oldest
                yield from ((start + offset, tx) for tx in txs)

    def _mempool_txs(self) -> Iterator[CTransaction]:
        ids = self._rpc.mempool_txids()
        cache = {txid: tx for txid, tx in self._mempool_cache.items() if txid in ids}
        for txid in sorted(ids - cache.keys()):
            raw = self._rpc.raw_transaction(txid)
            if raw is not None:  # mined or evicted since the listing
                cache[txid] = decode_tx(raw)
        self._mempool_cache = cache
        for txid in sorted(cache):
            yield cache[txid]


def _script(terms: LegTerms) -> bytes:
    if not isinstance(terms.expiry, BlockHeight):
        raise TypeError("a Bitcoin HTLC expires at a BlockHeight")
    return HtlcScript(terms.hashlock, terms.recipient, terms.sender, terms.expiry).witness_script


def _spending(tx: CTransaction, txid: str, vout: int, hashlock: bytes, height: int | None
              ) -> _Spend | None:
    """`tx` as a spend of ``txid:vout``, its branch read from the input's witness."""
    for i, txin in enumerate(tx.vin):
        if (b2lx(txin.prevout.hash), txin.prevout.n) != (txid, vout):
            continue
        stack = list(tx.wit.vtxinwit[i].scriptWitness.stack) if tx.has_witness() else []
        if len(stack) == 4 and stack[2] == b"\x01":
            secret = bytes(stack[1])
            check_preimage(secret, hashlock)  # the script enforced it; a lying node did not
            return _Spend(b2lx(tx.GetTxid()), LegStatus.REDEEMED, secret, height)
        if len(stack) == 3 and stack[1] == b"":
            return _Spend(b2lx(tx.GetTxid()), LegStatus.REFUNDED, None, height)
        raise ValidationError(f"{b2lx(tx.GetTxid())} spends the HTLC by neither branch")
    return None
