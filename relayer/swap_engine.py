"""The swap engine: the relayer as counterparty and watchtower of HTLC atomic swaps.

Owns: making offers (`offer`) and the job that drives every open swap (`run`, `step`): read both
legs from their chains, ask `htlc.machine.next_action`, act, persist through `SwapStore`.
Must not import a chain library: each chain is an `htlc.legs.HtlcLeg`.

Crash safety: the relayer's own lock is prepared (deterministic bytes) and stored with the
move to ``swap.participant_locked`` before it is broadcast; a restarted engine re-broadcasts the
stored bytes, never a new lock. Redeems and refunds are idempotent on every chain (the driver
returns the existing settlement). The secret is stored as soon as it is seen.

Persisted leg fields: ``*_lock_ref`` is the HTLC's id on its chain (short, for queries);
``*_lock_tx`` is JSON: ``{"ref": LegRef}`` for the user's leg, ``{"ref": LegRef, "prepared":
PreparedLock}`` for ours.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from adapters.errors import BridgeError, ValidationError
from htlc.legs import HtlcLeg, LegRef, LegTerms, LegView, PreparedLock
from htlc.machine import Action, LegStatus, Now, SwapStatus
from htlc.timelock import (
    BlockHeight,
    Instant,
    LegTimelock,
    check_timelocks,
    height_after,
    time_after,
)
from relayer.quotes import SwapPair, quote
from relayer.swap_store import SwapLegRecord, SwapLegTerms, SwapRecord, SwapStore, SwapTerms

log = logging.getLogger(__name__)
S = SwapStatus


class UnknownSwap(ValidationError):
    """No swap with this id."""

    code = "unknown_swap"

SAFETY_EXTRA_S = 60  # slack added to the safety margin on top of both chains' settle times


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def _raw(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


class SwapEngine:
    """Offers swaps and drives them.

    Args:
        store: the swap store.
        legs: per CAIP-2 id, the relayer's HTLC driver on that chain (its key is the relayer's).
        identities: per CAIP-2 id, the relayer's identity there (EVM address 20 bytes, Bitcoin
            compressed pubkey 33 bytes, ledger account 32 bytes).
        anyone_can_refund: chains whose HTLC lets anyone refund an expired lock to its sender.
    """

    def __init__(self, store: SwapStore, legs: Mapping[str, HtlcLeg],
                 identities: Mapping[str, bytes],
                 anyone_can_refund: frozenset[str] = frozenset()) -> None:
        self.store, self.legs, self.identities = store, legs, identities
        self.anyone_can_refund = anyone_can_refund
        self._pass_clock: dict[str, Instant] | None = None

    # ------------------------------------------------------------------ offers
    def offer(self, pair: SwapPair, user_amount: int, hashlock: bytes, *, user_sender: bytes,
              user_recipient: bytes) -> SwapRecord:
        """Agree terms for a swap of `user_amount` of the pair's user asset.

        Args:
            hashlock: sha256 of the user's 32-byte secret.
            user_sender: the user's identity on the user chain (refunds of their leg go there).
            user_recipient: where the user receives on the relayer chain.

        Raises:
            ValidationError: amount outside the pair's limits; TimelockTooShort: the legs'
                timelocks would not leave the safety margin.
        """
        q = quote(pair, user_amount)
        _check_identity(pair.user_chain, user_sender, "user_sender")
        _check_identity(pair.relayer_chain, user_recipient, "user_recipient")
        ini, par = self.legs[pair.user_chain], self.legs[pair.relayer_chain]
        now_i, now_p = ini.now(), par.now()
        ini_expiry = _after(now_i, pair.user_timelock_s, ini)
        par_expiry = _after(now_p, pair.relayer_timelock_s, par)
        deadline = _after(now_p, pair.lock_deadline_s, par)
        check_timelocks(LegTimelock(ini_expiry, now_i, ini.timing),
                        LegTimelock(par_expiry, now_p, par.timing), extra_s=SAFETY_EXTRA_S)
        terms = SwapTerms(
            pair=pair.name,
            initiator=SwapLegTerms(pair.user_chain, pair.user_asset, user_amount,
                                   _hex(user_sender), _hex(self.identities[pair.user_chain]),
                                   ini_expiry),
            participant=SwapLegTerms(pair.relayer_chain, pair.relayer_asset, q.lock_amount,
                                     _hex(self.identities[pair.relayer_chain]),
                                     _hex(user_recipient), par_expiry),
            hashlock=hashlock, lock_deadline=deadline, rate_num=pair.rate_num,
            rate_den=pair.rate_den, fee=q.fee)
        record = self.store.create(terms)
        log.info("swap offered swap_id=%s pair=%s user_amount=%d relayer_amount=%d", record.id,
                 pair.name, user_amount, q.lock_amount, extra={"swap_id": record.id})
        return record

    # ------------------------------------------------------------------ the job
    def run(self, limit: int = 500) -> int:
        """One pass over every open swap; returns how many were acted on."""
        acted = 0
        self._pass_clock = {}  # each chain's clock is read once per pass, not once per swap
        try:
            for record in self.store.open_swaps(limit):
                try:
                    acted += self.step(record) not in (
                        Action.DONE, Action.WAIT_INITIATOR_LOCK, Action.WAIT_INITIATOR_REDEEM,
                        Action.WATCH_INITIATOR_REFUND, Action.HOLD)
                except BridgeError as exc:  # one swap's chain trouble must not stop the others
                    log.warning("swap step failed swap_id=%s: %s", record.id, exc,
                                extra={"swap_id": record.id})
        finally:
            self._pass_clock = None
        return acted

    def _now(self, leg: HtlcLeg) -> Instant:
        """`leg.now()`, cached for the current `run` pass (a pass takes seconds; timelock
        margins are minutes), read fresh outside a pass."""
        if self._pass_clock is None:
            return leg.now()
        if leg.chain not in self._pass_clock:
            self._pass_clock[leg.chain] = leg.now()
        return self._pass_clock[leg.chain]

    def step(self, record: SwapRecord) -> Action:
        """Observe both legs of one swap, then take the machine's next action."""
        ini, par = self.legs[record.initiator.chain], self.legs[record.participant.chain]
        record = self._observe(record, ini, par)
        legs = SwapStore.legs(record, anyone_can_refund=record.initiator.chain
                              in self.anyone_can_refund)
        action = next_action_for(legs, Now(self._now(ini), self._now(par)))
        match action:
            case Action.LOCK_PARTICIPANT:
                self._lock(record, ini, par)
            case Action.FIND_SECRET:
                secret = par.find_secret(_ref(record.participant))
                if secret is not None:
                    self.store.update_legs(record.id, secret=secret)
            case Action.REDEEM_INITIATOR_LEG:
                assert record.secret is not None
                tx = ini.redeem(_ref(record.initiator), record.secret)
                log.info("swap redeem swap_id=%s tx=%s", record.id, tx,
                         extra={"swap_id": record.id})
            case Action.REFUND_PARTICIPANT_LEG:
                tx = par.refund(_ref(record.participant))
                log.info("swap refund of our leg swap_id=%s tx=%s", record.id, tx,
                         extra={"swap_id": record.id})
            case Action.BROADCAST_USER_REFUND:
                if record.initiator.chain in self.anyone_can_refund:
                    tx = ini.refund(_ref(record.initiator))
                    log.info("swap refund of the user's leg swap_id=%s tx=%s", record.id, tx,
                             extra={"swap_id": record.id})
                elif record.user_refund is not None:
                    tx = _presigned(ini).broadcast_presigned_refund(
                        _ref(record.initiator), bytes.fromhex(record.user_refund))
                    log.info("swap pre-signed refund of the user's leg sent swap_id=%s tx=%s",
                             record.id, tx, extra={"swap_id": record.id})
            case Action.EXPIRE_OFFER:
                self.store.advance(record, S.EXPIRED, "the lock deadline passed unfunded")
            case Action.MARK_REDEEMED:
                self._advance_to(record, S.REDEEMED, "the user's leg is redeemed")
            case Action.MARK_REFUNDED:
                self._advance_to(record, S.REFUNDED, "the user's leg is refunded")
            case _:
                pass  # waiting: nothing to do until a chain moves
        return action

    # ------------------------------------------------------------------ watchtower
    def accept_user_refund(self, swap_id: str, raw_tx: bytes) -> SwapRecord:
        """Store the user's pre-signed refund of their leg, to broadcast at its timelock if the
        user is offline then (Bitcoin, where only the refund key can refund).

        SECURITY: checked against the lock as found on chain (`HtlcLeg.find_lock`), never
        against what the user says: it must spend that HTLC output through its refund branch
        with a valid signature of the refund key (`htlc.bitcoin.check_presigned_refund`).
        Storing it again replaces the previous one (the user may re-sign, e.g. at a new fee).

        Raises:
            UnknownSwap: no such swap. ValidationError: the user's chain needs no pre-signed
                refund (anyone can refund there), the swap is settled, the user's lock is not
                seen yet, or the transaction is not a valid refund of it.
        """
        record = self.store.get(swap_id)
        if record is None:
            raise UnknownSwap(f"no swap {swap_id}")
        ini = self.legs[record.initiator.chain]
        if record.initiator.chain in self.anyone_can_refund or not hasattr(
                ini, "check_presigned_refund"):
            raise ValidationError(f"no pre-signed refund is needed on {record.initiator.chain}: "
                                  "anyone can refund an expired lock there")
        if record.status in (S.REDEEMED, S.REFUNDED):
            raise ValidationError(f"swap {swap_id} is settled ({record.status})")
        record = self._observe(record, ini, self.legs[record.participant.chain])
        if record.initiator.lock_tx is None:
            raise ValidationError("your lock is not seen on chain yet: lock first, then send "
                                  "its pre-signed refund")
        txid = _presigned(ini).check_presigned_refund(_ref(record.initiator), bytes(raw_tx))
        record = self.store.update_legs(record.id, user_refund=bytes(raw_tx).hex())
        log.info("swap pre-signed refund stored swap_id=%s refund_tx=%s", record.id, txid,
                 extra={"swap_id": record.id})
        return record

    # ------------------------------------------------------------------ helpers
    def _observe(self, record: SwapRecord, ini: HtlcLeg, par: HtlcLeg) -> SwapRecord:
        """Read both legs and store what changed (never a status). The user's leg is found by
        its exact terms on its chain: a user's claim about it is never trusted."""
        fields: dict[str, Any] = {}
        ini_ref = _ref(record.initiator) if record.initiator.lock_tx else \
            ini.find_lock(_leg_terms(record.initiator, record.hashlock))
        if ini_ref is not None:
            view = ini.observe(ini_ref)
            if record.initiator.lock_tx is None:
                fields.update(initiator_lock_ref=ini_ref.id,
                              initiator_lock_tx=json.dumps({"ref": ini_ref.to_json()}))
            if view.status != record.initiator.status:
                fields["initiator_status"] = view.status
            if view.secret is not None and record.secret is None:
                fields["secret"] = view.secret
        if record.participant.lock_tx is not None:
            view = par.observe(_ref(record.participant))
            if view.status != record.participant.status:
                fields["participant_status"] = view.status
            secret = view.secret or _secret_if_live(par, record, view)
            if secret is not None and record.secret is None and "secret" not in fields:
                fields["secret"] = secret
        if not fields:
            return record
        return self.store.update_legs(record.id, **fields)

    def _lock(self, record: SwapRecord, ini: HtlcLeg, par: HtlcLeg) -> None:
        """Fund our leg: re-check the margin, store the prepared lock with the status move,
        then broadcast it (a stored lock is only ever re-broadcast)."""
        if record.participant.lock_tx is not None:
            prepared = PreparedLock.from_json(json.loads(record.participant.lock_tx)["prepared"])
            par.broadcast_lock(prepared)
            return
        check_timelocks(LegTimelock(record.initiator.expiry, self._now(ini), ini.timing),
                        LegTimelock(record.participant.expiry, self._now(par), par.timing),
                        extra_s=SAFETY_EXTRA_S)
        prepared = par.prepare_lock(_leg_terms(record.participant, record.hashlock))
        if record.status == S.OFFERED:
            record = self.store.advance(record, S.INITIATOR_LOCKED, "the user's leg is confirmed")
        record = self.store.advance(
            record, S.PARTICIPANT_LOCKED, "our leg locked (prepared before broadcast)",
            participant_lock_ref=prepared.ref.id,
            participant_lock_tx=json.dumps({"ref": prepared.ref.to_json(),
                                            "prepared": prepared.to_json()}))
        ref = par.broadcast_lock(prepared)
        log.info("swap lock of our leg swap_id=%s chain=%s htlc=%s", record.id, par.chain, ref.id,
                 extra={"swap_id": record.id})

    def _advance_to(self, record: SwapRecord, to: SwapStatus, reason: str) -> None:
        if to == S.REFUNDED or record.status == S.PARTICIPANT_LOCKED:
            self.store.advance(record, to, reason)
        else:
            raise ValidationError(f"swap {record.id} cannot move {record.status} -> {to}")


def next_action_for(legs: Any, now: Now) -> Action:
    """`htlc.machine.next_action` (a seam for tests)."""
    from htlc.machine import next_action

    return next_action(legs, now)


def _after(now: Instant, seconds: int, leg: HtlcLeg) -> Instant:
    if isinstance(now, BlockHeight):
        return height_after(now, seconds, leg.timing)
    return time_after(now, seconds)


def _leg_terms(leg: SwapLegRecord, hashlock: bytes) -> LegTerms:
    return LegTerms(chain=leg.chain, asset=leg.asset, amount=leg.amount, hashlock=hashlock,
                    expiry=leg.expiry, sender=_raw(leg.sender), recipient=_raw(leg.recipient))


def _ref(leg: SwapLegRecord) -> LegRef:
    if leg.lock_tx is None:
        raise ValidationError("the leg has no lock yet")
    return LegRef.from_json(json.loads(leg.lock_tx)["ref"])


def _check_identity(chain: str, raw: bytes, name: str) -> None:
    """SECURITY: an identity the chain's HTLC can use (`htlc.legs`): EVM 20 bytes, Bitcoin a
    valid 33-byte compressed secp256k1 key, ledger 32 bytes; else a swap could never lock."""
    namespace = chain.split(":", 1)[0]
    want = {"eip155": 20, "bip122": 33, "ferry": 32}.get(namespace)
    if not isinstance(raw, bytes) or len(raw) != want:
        raise ValidationError(f"{name} on {chain} must be {want} bytes")
    if namespace == "bip122" and raw[0] not in (2, 3):
        raise ValidationError(f"{name} on {chain} must be a compressed secp256k1 public key")


def _presigned(leg: HtlcLeg) -> Any:
    """The leg as a chain that takes pre-signed refunds (`htlc.legs_bitcoin.BitcoinLeg`)."""
    if not hasattr(leg, "broadcast_presigned_refund"):
        raise ValidationError(f"{leg.chain} takes no pre-signed refunds")
    return leg


def _secret_if_live(par: HtlcLeg, record: SwapRecord, view: LegView) -> bytes | None:
    """Watch for the user's redeem of our leg (mempool or block) while our leg is funded."""
    if record.secret is not None or view.status not in (LegStatus.LOCKED, LegStatus.CONFIRMED):
        return None
    return par.find_secret(_ref(record.participant))
