"""The swap state machine, seen from the relayer acting as the swap's participant.

Owns: `SwapStatus`, `TRANSITIONS`, `TERMINAL`, `check_transition`, `LegStatus`, `Action`,
`SwapLegs`, `Now` and `next_action`. Must not touch a database, a chain or the clock: the
store's ``advance`` is the only writer of status and calls `check_transition`; the engine
reads both chains, asks `next_action` what to do, and does it (each step idempotent, intent
persisted before any broadcast).

Roles: the user (initiator) holds the secret and locks first, on the initiator chain, with the
longer timelock. The relayer (participant) locks its leg on the other chain, to the same
hashlock and a shorter timelock, only once the user's leg is confirmed and before the swap's
lock deadline. The user redeems the relayer's leg, revealing the secret (in the mempool or a
block); the relayer then redeems the user's leg with it. At its own leg's expiry without a
redeem the relayer refunds its leg; after the user's expiry it broadcasts the user's pre-signed
refund if it holds one, else it watches for the user's own refund::

    offered --> initiator_locked --> participant_locked --> redeemed
       |              |                      |
       |              +---------+------------+--> refunded     (the user's leg refunded)
       +--> expired             |
       +------------------------+   (user locked too late: the relayer never locks)

Leg statuses mirror what the chains show and can move back on a reorg, so they have no
transition table: ``leg.locked`` = funded (mempool or shallower than the chain's depth),
``leg.confirmed`` = funded at depth, ``leg.redeemed`` / ``leg.refunded`` = a redeem / refund
is in a block. A redeem seen only in the mempool shows up as `SwapLegs.secret_known`.

`Action.LOCK_PARTICIPANT` is repeated until our leg shows: the engine rebroadcasts the lock it
stored, never a new one. Once the lock deadline passes with our leg unseen, it must stop
rebroadcasting (on Bitcoin, also spend the lock's inputs elsewhere) so that a late lock cannot
land after the safety margin is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from adapters.errors import IllegalTransition
from htlc.timelock import Instant, expired


class SwapStatus(StrEnum):
    """Persisted values; members are never renamed."""

    OFFERED = "swap.offered"  # terms agreed; no confirmed lock of the user's yet
    INITIATOR_LOCKED = "swap.initiator_locked"  # the user's leg is confirmed
    PARTICIPANT_LOCKED = "swap.participant_locked"  # the relayer decided to lock (intent stored)
    REDEEMED = "swap.redeemed"  # the relayer redeemed the user's leg
    REFUNDED = "swap.refunded"  # the user's leg was refunded (and the relayer's, if any)
    EXPIRED = "swap.expired"  # the lock deadline passed without a lock of the user's


class LegStatus(StrEnum):
    """One leg as the chain shows it (persisted values; never renamed)."""

    NONE = "leg.none"
    LOCKED = "leg.locked"
    CONFIRMED = "leg.confirmed"
    REDEEMED = "leg.redeemed"
    REFUNDED = "leg.refunded"


S = SwapStatus
L = LegStatus
TRANSITIONS: dict[SwapStatus, frozenset[SwapStatus]] = {
    S.OFFERED: frozenset({S.INITIATOR_LOCKED, S.REFUNDED, S.EXPIRED}),
    S.INITIATOR_LOCKED: frozenset({S.PARTICIPANT_LOCKED, S.REFUNDED}),
    S.PARTICIPANT_LOCKED: frozenset({S.REDEEMED, S.REFUNDED}),
    S.REDEEMED: frozenset(),
    S.REFUNDED: frozenset(),
    S.EXPIRED: frozenset(),
}
TERMINAL: frozenset[SwapStatus] = frozenset({S.REDEEMED, S.REFUNDED, S.EXPIRED})


def check_transition(current: SwapStatus, to: SwapStatus) -> None:
    """Raise `IllegalTransition` unless `current -> to` is in `TRANSITIONS`."""
    if to not in TRANSITIONS[current]:
        raise IllegalTransition(f"{current} -> {to} is not allowed")


class Action(StrEnum):
    """What the relayer does next (not persisted)."""

    WAIT_INITIATOR_LOCK = "wait_initiator_lock"  # no lock of the user's, or not confirmed yet
    LOCK_PARTICIPANT = "lock_participant"  # fund our leg (re-run check_timelocks first)
    WAIT_INITIATOR_REDEEM = "wait_initiator_redeem"  # until the secret shows or our leg expires
    FIND_SECRET = "find_secret"  # our leg was redeemed: read the secret from that redeem
    REDEEM_INITIATOR_LEG = "redeem_initiator_leg_with_secret"  # claim the user's leg
    REFUND_PARTICIPANT_LEG = "refund_participant_leg"  # our leg expired unredeemed
    WATCH_INITIATOR_REFUND = "watch_initiator_refund"  # the user refunds their own leg
    BROADCAST_USER_REFUND = "broadcast_user_refund"  # send the user's pre-signed refund
    EXPIRE_OFFER = "expire_offer"  # advance to swap.expired
    MARK_REDEEMED = "mark_redeemed"  # advance to swap.redeemed
    MARK_REFUNDED = "mark_refunded"  # advance to swap.refunded
    HOLD = "hold"  # our leg exists but the user's does not (reorg?): operator, no automatic move
    DONE = "done"  # terminal status: nothing left


@dataclass(frozen=True, slots=True)
class SwapLegs:
    """A swap as the engine last saw it.

    Attributes:
        status: the persisted `SwapStatus`.
        initiator: the user's leg on the initiator chain.
        participant: the relayer's leg on the participant chain.
        initiator_expiry: the user's timelock, on the initiator chain's clock.
        participant_expiry: the relayer's timelock, on the participant chain's clock.
        lock_deadline: the last participant-chain instant at which the relayer may still lock
            (set with the offer so that `check_timelocks` holds); same kind as
            `participant_expiry` and not after it.
        secret_known: the relayer holds a preimage of the hashlock (from the user's redeem of
            its leg, in the mempool or a block).
        user_refund_held: the relayer holds a refund of the user's leg it may broadcast after
            the user's expiry (a pre-signed Bitcoin refund, or a refund anyone may call).

    Raises:
        TypeError: `lock_deadline` and `participant_expiry` are of different kinds.
        ValueError: `lock_deadline` is after `participant_expiry`.
    """

    status: SwapStatus
    initiator: LegStatus
    participant: LegStatus
    initiator_expiry: Instant
    participant_expiry: Instant
    lock_deadline: Instant
    secret_known: bool = False
    user_refund_held: bool = False

    def __post_init__(self) -> None:
        if type(self.lock_deadline) is not type(self.participant_expiry):
            raise TypeError("lock_deadline and participant_expiry are on different clocks")
        if self.lock_deadline.value > self.participant_expiry.value:
            raise ValueError("the lock deadline is after the participant's expiry")


@dataclass(frozen=True, slots=True)
class Now:
    """Each chain's current head: its height (`BlockHeight`) or latest block time (`UnixTime`),
    the same kinds as the swap's expiries on that chain."""

    initiator: Instant
    participant: Instant


@dataclass(frozen=True, slots=True)
class _Situation:
    terminal: bool
    initiator: LegStatus
    participant: LegStatus
    secret_known: bool
    lock_open: bool
    initiator_expired: bool
    participant_expired: bool
    user_refund_held: bool


_LIVE = (L.LOCKED, L.CONFIRMED)  # a funded leg nobody settled yet


def next_action(swap: SwapLegs, now: Now) -> Action:
    """The one rule for the relayer's next step: a pure function of both legs, the secret and
    the expiries (``now >= expiry``, `htlc.timelock.expired`).

    SECURITY, in match order: a known secret is used on the user's leg while it is live,
    even after our leg's expiry, but never once our own leg was refunded (that would take
    both); our leg is refunded only after its expiry and while the secret is unknown; we
    lock only a confirmed user leg, before the lock deadline and the user's expiry.

    Raises:
        TypeError: a `now` is of another kind than the expiries of its chain.
    """
    s = _Situation(
        terminal=swap.status in TERMINAL,
        initiator=swap.initiator,
        participant=swap.participant,
        secret_known=swap.secret_known,
        lock_open=not expired(swap.lock_deadline, now.participant),
        initiator_expired=expired(swap.initiator_expiry, now.initiator),
        participant_expired=expired(swap.participant_expiry, now.participant),
        user_refund_held=swap.user_refund_held,
    )
    match s:
        case _Situation(terminal=True):
            return Action.DONE
        case _Situation(initiator=L.REDEEMED):
            return Action.MARK_REDEEMED
        case _Situation(initiator=L.LOCKED | L.CONFIRMED,
                        participant=L.LOCKED | L.CONFIRMED | L.REDEEMED, secret_known=True):
            return Action.REDEEM_INITIATOR_LEG
        case _Situation(initiator=L.LOCKED | L.CONFIRMED, participant=L.REDEEMED):
            return Action.FIND_SECRET
        case _Situation(participant=L.LOCKED | L.CONFIRMED, participant_expired=True):
            return Action.REFUND_PARTICIPANT_LEG
        case _Situation(initiator=L.REFUNDED, participant=L.NONE | L.REDEEMED | L.REFUNDED):
            return Action.MARK_REFUNDED
        case _Situation(initiator=L.NONE, participant=L.NONE, lock_open=True):
            return Action.WAIT_INITIATOR_LOCK
        case _Situation(initiator=L.NONE, participant=L.NONE):
            return Action.EXPIRE_OFFER
        case _Situation(initiator=L.NONE):
            return Action.HOLD
        case _Situation(initiator=L.LOCKED, participant=L.NONE, lock_open=True,
                        initiator_expired=False):
            return Action.WAIT_INITIATOR_LOCK
        case _Situation(initiator=L.CONFIRMED, participant=L.NONE, lock_open=True,
                        initiator_expired=False):
            return Action.LOCK_PARTICIPANT
        case _Situation(participant=L.LOCKED | L.CONFIRMED):
            return Action.WAIT_INITIATOR_REDEEM
        case _Situation(initiator=L.LOCKED | L.CONFIRMED, initiator_expired=True,
                        user_refund_held=True):
            return Action.BROADCAST_USER_REFUND
        case _Situation(initiator=L.LOCKED | L.CONFIRMED):
            return Action.WATCH_INITIATOR_REFUND
    return Action.HOLD  # unreachable: the cases above cover every combination (tested)
