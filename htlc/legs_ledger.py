"""The native-ledger leg driver: `HtlcLeg` over the ledger's HTLCs (ledger/htlcs.py), through
its HTTP API (`ledger.client.LedgerClient`).

Owns: `LedgerLeg`. Signing an ``htlc_lock`` offline (so the engine can persist it first),
submitting it idempotently, and reading, redeeming and refunding HTLCs by id or hashlock. Must
not hold a key beyond its own account's, log a secret, or read the wall clock other than
through the injected `Clock`.

The ledger applies a transaction at once and never reorganises: a lock it accepted is final,
so it shows 1 confirmation (``confirmed`` when the timing's depth is 1, as it should be).
The ledger's API does not expose its clock: `now` reads the injected `Clock`, which must follow
the ledger's (the system clock on both sides; their drift belongs in the swap's slack).
Redeem and refund are not signed transactions on the ledger (the secret, or the timelock, is
the authority) and have no tx id: `redeem` and `refund` return ``"<htlc id>/redeem"`` and
``"<htlc id>/refund"``, stable names of the one settlement an HTLC can have.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable

from nacl.signing import SigningKey

from adapters.base import Clock, SystemClock
from adapters.errors import BadNonce, ConfigError, ValidationError
from htlc.errors import HtlcAlreadySettled, UnknownHtlc
from htlc.hashlock import check_preimage
from htlc.legs import LegRef, LegTerms, LegView, PreparedLock, check_terms, lock_status
from htlc.machine import LegStatus
from htlc.timelock import ChainTiming, UnixTime
from ledger.client import LedgerClient
from ledger.transactions import SignedTx, sign_htlc_lock
from ledger.types import Htlc, HtlcOrigin, HtlcState
from validators.attestation import LEDGER_CHAIN

log = logging.getLogger(__name__)

ACCOUNT_LEN = 32
PAGE = 100  # HTLCs per ``GET /v1/ledger/htlcs?hashlock=`` page in `find_lock`
_SETTLED = {HtlcState.REDEEMED: "redeem", HtlcState.REFUNDED: "refund"}


class LedgerLeg:
    """`HtlcLeg` on Ferry's native ledger.

    Args:
        client: client of the ledger API.
        account_key: this driver's Ed25519 key; its public key is the account that locks
            (and is refunded). SECURITY: never logged.
        network: the ledger's network name (signed into every transaction).
        timing: the ledger's timing (kind "time"; confirmation_depth 1).
        clock: the ledger clock's stand-in (default: the system clock, as the ledger's).

    Raises:
        ConfigError: `timing` is not a time chain.
    """

    def __init__(self, client: LedgerClient, account_key: SigningKey, network: str,
                 timing: ChainTiming, *, clock: Clock | None = None) -> None:
        if timing.kind != "time":
            raise ConfigError("a ledger leg expires at ledger-clock seconds: kind must be 'time'")
        self._client, self._key, self.network, self.timing = client, account_key, network, timing
        self._clock: Clock = clock or SystemClock()
        self.account = bytes(account_key.verify_key)
        self.chain = LEDGER_CHAIN

    def now(self) -> UnixTime:
        """The ledger clock, whole seconds (floor): ``now >= timelock`` exactly when the ledger
        would refund (timelocks are whole seconds)."""
        return UnixTime(math.floor(self._clock.now()))

    # ------------------------------------------------------------------ lock

    def prepare_lock(self, terms: LegTerms) -> PreparedLock:
        """Sign the ``htlc_lock`` of `terms` with the account's next nonce; nothing is sent.

        Prepare, then broadcast, before preparing another transaction from the same account:
        two prepared transactions would share a nonce.

        Raises:
            ValidationError: terms of another chain, sender not this account, or a body the
                ledger would refuse to parse. RpcUnavailable: the ledger did not answer.
        """
        check_terms(terms, self.chain, self.timing, (ACCOUNT_LEN, ACCOUNT_LEN))
        if terms.sender != self.account:
            raise ValidationError("the sender of our lock must be this driver's account")
        nonce = self._client.account(self.account).nonce
        signed = sign_htlc_lock(self._key, self.network, nonce, terms.asset, terms.amount,
                                terms.recipient, terms.hashlock, terms.expiry.value)
        if signed.htlc_id is None:  # an htlc_lock always has one
            raise ValidationError("the signed transaction is not an htlc_lock")
        ref = LegRef(self.chain, "0x" + signed.htlc_id.hex(), terms.hashlock, terms.amount,
                     terms.expiry)
        raw = json.dumps(signed.to_json(), sort_keys=True, separators=(",", ":")).encode()
        log.info("htlc lock prepared chain=%s htlc_id=%s", self.chain, ref.id)
        return PreparedLock(ref, (raw,), (ref.id,))

    def broadcast_lock(self, prepared: PreparedLock) -> LegRef:
        """Submit the ``htlc_lock``; if the ledger already holds its HTLC, nothing is sent.

        Raises:
            BadNonce: another transaction took the nonce (and this lock is not on the
                ledger): prepare again. ValidationError, InsufficientBalance, UnknownAsset:
                the ledger refused it. RpcUnavailable: no answer (resend).
        """
        htlc_id = self._id(prepared.ref)
        if self._client.htlc(htlc_id) is None:
            try:
                signed = SignedTx.from_json(json.loads(prepared.raw_txs[0]))
            except ValueError as exc:
                raise ValidationError(f"not a prepared ledger lock: {exc}") from exc
            if signed.htlc_id != htlc_id:
                raise ValidationError("the prepared transaction is not the reference's lock")
            try:
                self._client.submit_transaction(signed)
            except BadNonce:
                if self._client.htlc(htlc_id) is None:  # a lost answer to an earlier submit?
                    raise
        log.info("htlc lock broadcast chain=%s htlc_id=%s", self.chain, prepared.ref.id)
        return prepared.ref

    # ------------------------------------------------------------------ reads

    def observe(self, ref: LegRef) -> LegView:
        """The HTLC's state as the ledger stores it (``GET /v1/ledger/htlcs/{id}``)."""
        htlc = self._client.htlc(self._id(ref))
        if htlc is None:
            return LegView(LegStatus.NONE, 0, ref.expiry, ref.amount)
        expiry, amount = UnixTime(htlc.timelock), htlc.amount
        match htlc.state:
            case HtlcState.REDEEMED:
                return LegView(LegStatus.REDEEMED, 1, expiry, amount, htlc.preimage)
            case HtlcState.REFUNDED:
                return LegView(LegStatus.REFUNDED, 1, expiry, amount)
        return LegView(lock_status(1, self.timing.confirmation_depth), 1, expiry, amount)

    def find_secret(self, ref: LegRef) -> bytes | None:
        """The preimage the ledger stored with the redeem (it checked it against the
        hashlock; checked again here), else None."""
        htlc = self._client.htlc(self._id(ref))
        if htlc is None or htlc.preimage is None:
            return None
        check_preimage(htlc.preimage, ref.hashlock)
        return htlc.preimage

    def find_lock(self, terms: LegTerms) -> LegRef | None:
        """The first HTLC (by journal seq) with the terms' hashlock whose origin is a lock by
        ``terms.sender`` to ``terms.recipient`` of exactly ``terms.amount`` of ``terms.asset``
        until ``terms.expiry``; others with the same hashlock are ignored.

        Raises:
            ValidationError: terms of another chain. RpcUnavailable, BridgeError: the ledger.
        """
        check_terms(terms, self.chain, self.timing, (ACCOUNT_LEN, ACCOUNT_LEN))
        after = 0
        while page := self._client.htlcs_by_hashlock(terms.hashlock, after, PAGE):
            for htlc in page:
                if _matches(htlc, terms):
                    return LegRef(self.chain, "0x" + htlc.htlc_id.hex(), terms.hashlock,
                                  terms.amount, terms.expiry, since_block=htlc.seq)
            after = page[-1].seq
        return None

    # ------------------------------------------------------------------ settle

    def redeem(self, ref: LegRef, secret: bytes) -> str:
        """``POST /v1/ledger/htlcs/{id}/redeem`` (anyone may; the recipient is paid).

        Returns:
            ``"<htlc id>/redeem"``, also when it was already redeemed.

        Raises:
            BadPreimage: not 32 bytes, or not the hashlock's preimage. HtlcExpired: the
                ledger clock reached the timelock. HtlcAlreadySettled: refunded.
            UnknownHtlc: no such HTLC. RpcUnavailable.
        """
        check_preimage(secret, ref.hashlock)
        htlc_id = self._id(ref)
        return self._settle(ref, HtlcState.REDEEMED,
                            lambda: self._client.redeem_htlc(htlc_id, secret))

    def refund(self, ref: LegRef) -> str:
        """``POST /v1/ledger/htlcs/{id}/refund`` (anyone may; the sender is paid).

        Returns:
            ``"<htlc id>/refund"``, also when it was already refunded.

        Raises:
            HtlcNotExpired: the ledger clock is before the timelock. HtlcAlreadySettled:
                redeemed. UnknownHtlc: no such HTLC. RpcUnavailable.
        """
        htlc_id = self._id(ref)
        return self._settle(ref, HtlcState.REFUNDED, lambda: self._client.refund_htlc(htlc_id))

    # ------------------------------------------------------------------ internals

    def _settle(self, ref: LegRef, wanted: HtlcState, send: Callable[[], Htlc]) -> str:
        name = f"{ref.id}/{_SETTLED[wanted]}"

        def done() -> bool:
            htlc = self._client.htlc(self._id(ref))
            if htlc is None:
                raise UnknownHtlc(f"no htlc {ref.id} on the ledger")
            if htlc.state is HtlcState.LOCKED:
                return False
            if htlc.state is not wanted:
                raise HtlcAlreadySettled(f"htlc {ref.id} is already {htlc.state.value}")
            return True

        if done():
            return name
        try:
            send()
        except HtlcAlreadySettled:
            if not done():  # settled by someone else between the read and the call
                raise
        log.info("htlc %s chain=%s htlc_id=%s", wanted.value, self.chain, ref.id)
        return name

    def _id(self, ref: LegRef) -> bytes:
        if ref.chain != self.chain:
            raise ValidationError(f"reference is for {ref.chain}, this leg is {self.chain}")
        try:
            htlc_id = bytes.fromhex(ref.id.removeprefix("0x"))
        except ValueError:
            htlc_id = b""
        if len(htlc_id) != 32:
            raise ValidationError(f"a ledger htlc id is 32 bytes of 0x hex, got {ref.id!r}")
        return htlc_id


def _matches(htlc: Htlc, terms: LegTerms) -> bool:
    return (htlc.origin is HtlcOrigin.LOCK and htlc.sender == terms.sender
            and htlc.recipient == terms.recipient and htlc.asset == terms.asset
            and htlc.amount == terms.amount and htlc.timelock == terms.expiry.value)
