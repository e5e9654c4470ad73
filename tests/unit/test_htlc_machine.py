"""The swap machine: transition table, and the relayer's next action for both legs' states.

The user's (initiator's) leg is on a height chain (Bitcoin) and the relayer's (participant's)
on a time chain (EVM) unless a test says otherwise. The participant chain's clock is in one of
three phases: before the lock deadline ("open"), after it ("closed"), or at/after the
participant's expiry ("expired", which is also closed).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Literal

import pytest

from adapters.errors import IllegalTransition
from htlc.machine import (
    TERMINAL,
    TRANSITIONS,
    Action,
    LegStatus,
    Now,
    SwapLegs,
    SwapStatus,
    check_transition,
    next_action,
)
from htlc.timelock import BlockHeight, UnixTime

S, L, A = SwapStatus, LegStatus, Action
T0 = 1_700_000_000
I_EXPIRY = BlockHeight(900_000)
P_EXPIRY = UnixTime(T0 + 4 * 3600)
DEADLINE = UnixTime(T0 + 3600)
Phase = Literal["open", "closed", "expired"]
_P_NOW = {"open": UnixTime(T0), "closed": DEADLINE, "expired": P_EXPIRY}


def swap(initiator: LegStatus, participant: LegStatus, *, secret: bool = False,
         refund_held: bool = False, status: SwapStatus = S.PARTICIPANT_LOCKED) -> SwapLegs:
    return SwapLegs(status=status, initiator=initiator, participant=participant,
                    initiator_expiry=I_EXPIRY, participant_expiry=P_EXPIRY,
                    lock_deadline=DEADLINE, secret_known=secret, user_refund_held=refund_held)


def now(phase: Phase = "open", *, initiator_expired: bool = False) -> Now:
    return Now(initiator=I_EXPIRY if initiator_expired else I_EXPIRY - 1,
               participant=_P_NOW[phase])


# ============================================================================ transition table


def test_every_status_has_a_row_and_terminal_states_have_no_exit() -> None:
    assert set(TRANSITIONS) == set(SwapStatus)
    assert TERMINAL == {S.REDEEMED, S.REFUNDED, S.EXPIRED}
    for status in TERMINAL:
        assert TRANSITIONS[status] == frozenset()
    for status in set(SwapStatus) - TERMINAL:
        assert TRANSITIONS[status]


def test_persisted_values_are_dotted() -> None:
    assert [s.value for s in SwapStatus] == [
        "swap.offered", "swap.initiator_locked", "swap.participant_locked", "swap.redeemed",
        "swap.refunded", "swap.expired"]
    assert [s.value for s in LegStatus] == [
        "leg.none", "leg.locked", "leg.confirmed", "leg.redeemed", "leg.refunded"]


@pytest.mark.parametrize("frm,to", [
    (S.OFFERED, S.INITIATOR_LOCKED), (S.OFFERED, S.EXPIRED), (S.OFFERED, S.REFUNDED),
    (S.INITIATOR_LOCKED, S.PARTICIPANT_LOCKED), (S.INITIATOR_LOCKED, S.REFUNDED),
    (S.PARTICIPANT_LOCKED, S.REDEEMED), (S.PARTICIPANT_LOCKED, S.REFUNDED),
])
def test_allowed_transitions_pass(frm: SwapStatus, to: SwapStatus) -> None:
    check_transition(frm, to)


@pytest.mark.parametrize("frm,to", [
    (S.OFFERED, S.PARTICIPANT_LOCKED),  # never lock before the user's leg is confirmed
    (S.OFFERED, S.REDEEMED), (S.INITIATOR_LOCKED, S.REDEEMED),
    (S.INITIATOR_LOCKED, S.EXPIRED), (S.PARTICIPANT_LOCKED, S.EXPIRED),
    (S.PARTICIPANT_LOCKED, S.INITIATOR_LOCKED), (S.REDEEMED, S.REFUNDED),
    (S.REFUNDED, S.REDEEMED), (S.EXPIRED, S.OFFERED), (S.REDEEMED, S.REDEEMED),
])
def test_illegal_transitions_raise(frm: SwapStatus, to: SwapStatus) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(frm, to)


# ============================================================================ next action

CASES = [
    # -- before anything is locked: wait for the user, or let the offer lapse
    ("no user lock yet", swap(L.NONE, L.NONE, status=S.OFFERED), now("open"),
     A.WAIT_INITIATOR_LOCK),
    ("no user lock by the deadline", swap(L.NONE, L.NONE, status=S.OFFERED), now("closed"),
     A.EXPIRE_OFFER),
    # -- lock only a confirmed user leg, before the deadline and the user's expiry
    ("user lock unconfirmed", swap(L.LOCKED, L.NONE, status=S.OFFERED), now("open"),
     A.WAIT_INITIATOR_LOCK),
    ("user lock confirmed", swap(L.CONFIRMED, L.NONE, status=S.OFFERED), now("open"),
     A.LOCK_PARTICIPANT),
    ("user lock confirmed after the deadline", swap(L.CONFIRMED, L.NONE, status=S.OFFERED),
     now("closed"), A.WATCH_INITIATOR_REFUND),
    ("user lock confirmed but already expired", swap(L.CONFIRMED, L.NONE),
     now("open", initiator_expired=True), A.WATCH_INITIATOR_REFUND),
    ("user lock never confirmed, deadline passed", swap(L.LOCKED, L.NONE, status=S.OFFERED),
     now("closed"), A.WATCH_INITIATOR_REFUND),
    ("intent stored, our lock not seen yet", swap(L.CONFIRMED, L.NONE), now("open"),
     A.LOCK_PARTICIPANT),
    # -- both locked: wait for the secret, refund ours at its expiry
    ("both locked", swap(L.CONFIRMED, L.CONFIRMED), now("closed"), A.WAIT_INITIATOR_REDEEM),
    ("our lock still shallow", swap(L.CONFIRMED, L.LOCKED), now("open"),
     A.WAIT_INITIATOR_REDEEM),
    ("our leg expired unredeemed", swap(L.CONFIRMED, L.CONFIRMED), now("expired"),
     A.REFUND_PARTICIPANT_LEG),
    ("our shallow leg expired", swap(L.CONFIRMED, L.LOCKED), now("expired"),
     A.REFUND_PARTICIPANT_LEG),
    # -- the secret appears: take the user's leg
    ("secret in the mempool", swap(L.CONFIRMED, L.CONFIRMED, secret=True), now("closed"),
     A.REDEEM_INITIATOR_LEG),
    ("secret in the mempool after our expiry", swap(L.CONFIRMED, L.CONFIRMED, secret=True),
     now("expired"), A.REDEEM_INITIATOR_LEG),
    ("secret after the user's expiry: race the refund",
     swap(L.CONFIRMED, L.CONFIRMED, secret=True, refund_held=True),
     now("expired", initiator_expired=True), A.REDEEM_INITIATOR_LEG),
    ("secret, user's leg reorged shallow", swap(L.LOCKED, L.REDEEMED, secret=True),
     now("closed"), A.REDEEM_INITIATOR_LEG),
    ("our leg redeemed, secret read", swap(L.CONFIRMED, L.REDEEMED, secret=True),
     now("closed"), A.REDEEM_INITIATOR_LEG),
    ("our leg redeemed, secret not read yet", swap(L.CONFIRMED, L.REDEEMED), now("closed"),
     A.FIND_SECRET),
    ("our leg redeemed, user's leg gone", swap(L.NONE, L.REDEEMED, secret=True),
     now("closed"), A.HOLD),
    # -- we refunded our leg: never take the user's too; help the user refund
    ("we refunded, secret seen too late", swap(L.CONFIRMED, L.REFUNDED, secret=True),
     now("expired"), A.WATCH_INITIATOR_REFUND),
    ("we refunded, user's expiry passed, refund held",
     swap(L.CONFIRMED, L.REFUNDED, refund_held=True), now("expired", initiator_expired=True),
     A.BROADCAST_USER_REFUND),
    ("we refunded, user's expiry not passed, refund held",
     swap(L.CONFIRMED, L.REFUNDED, refund_held=True), now("expired"),
     A.WATCH_INITIATOR_REFUND),
    ("we refunded, user's expiry passed, no refund held", swap(L.CONFIRMED, L.REFUNDED),
     now("expired", initiator_expired=True), A.WATCH_INITIATOR_REFUND),
    ("never locked, user's expiry passed, refund held",
     swap(L.CONFIRMED, L.NONE, refund_held=True, status=S.INITIATOR_LOCKED),
     now("closed", initiator_expired=True), A.BROADCAST_USER_REFUND),
    ("never locked, user's expiry passed, no refund held",
     swap(L.LOCKED, L.NONE, status=S.OFFERED), now("closed", initiator_expired=True),
     A.WATCH_INITIATOR_REFUND),
    # -- settled legs: record the outcome
    ("we redeemed the user's leg", swap(L.REDEEMED, L.REDEEMED), now("closed"),
     A.MARK_REDEEMED),
    ("we redeemed, our leg's redeem not mined yet", swap(L.REDEEMED, L.CONFIRMED, secret=True),
     now("expired"), A.MARK_REDEEMED),
    ("both refunded", swap(L.REFUNDED, L.REFUNDED), now("expired", initiator_expired=True),
     A.MARK_REFUNDED),
    ("user refunded, we never locked", swap(L.REFUNDED, L.NONE, status=S.INITIATOR_LOCKED),
     now("closed", initiator_expired=True), A.MARK_REFUNDED),
    ("user refunded after redeeming ours (our loss)", swap(L.REFUNDED, L.REDEEMED, secret=True),
     now("expired", initiator_expired=True), A.MARK_REFUNDED),
    ("user refunded, our leg not expired", swap(L.REFUNDED, L.CONFIRMED),
     now("closed", initiator_expired=True), A.WAIT_INITIATOR_REDEEM),
    ("user refunded, our leg expired", swap(L.REFUNDED, L.CONFIRMED, secret=True),
     now("expired", initiator_expired=True), A.REFUND_PARTICIPANT_LEG),
    # -- our leg without the user's (a reorg removed it): refund at expiry, else an operator
    ("our leg, no user leg", swap(L.NONE, L.CONFIRMED), now("closed"), A.HOLD),
    ("our leg, no user leg, expired", swap(L.NONE, L.CONFIRMED), now("expired"),
     A.REFUND_PARTICIPANT_LEG),
    # -- terminal
    ("redeemed", swap(L.REDEEMED, L.REDEEMED, status=S.REDEEMED), now("closed"), A.DONE),
    ("refunded, user leg still locked", swap(L.CONFIRMED, L.REFUNDED, status=S.REFUNDED,
                                             refund_held=True),
     now("expired", initiator_expired=True), A.DONE),
    ("expired offer", swap(L.NONE, L.NONE, status=S.EXPIRED), now("closed"), A.DONE),
]


@pytest.mark.parametrize("legs,clock,action", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_next_action(legs: SwapLegs, clock: Now, action: Action) -> None:
    assert next_action(legs, clock) is action


def test_next_action_does_not_depend_on_which_chain_counts_heights() -> None:
    legs = SwapLegs(status=S.PARTICIPANT_LOCKED, initiator=L.CONFIRMED,
                    participant=L.CONFIRMED, initiator_expiry=UnixTime(T0 + 86_400),
                    participant_expiry=BlockHeight(800_024), lock_deadline=BlockHeight(800_006))
    assert next_action(legs, Now(UnixTime(T0), BlockHeight(800_023))) is A.WAIT_INITIATOR_REDEEM
    assert next_action(legs, Now(UnixTime(T0), BlockHeight(800_024))) is A.REFUND_PARTICIPANT_LEG


def test_a_clock_of_the_wrong_kind_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        next_action(swap(L.CONFIRMED, L.NONE), Now(UnixTime(T0), UnixTime(T0)))
    with pytest.raises(TypeError):
        next_action(swap(L.CONFIRMED, L.NONE), Now(BlockHeight(1), BlockHeight(1)))


def test_swap_legs_refuse_a_deadline_after_the_expiry_or_on_another_clock() -> None:
    with pytest.raises(ValueError):
        SwapLegs(S.OFFERED, L.NONE, L.NONE, I_EXPIRY, P_EXPIRY, P_EXPIRY + 1)
    with pytest.raises(TypeError):
        SwapLegs(S.OFFERED, L.NONE, L.NONE, I_EXPIRY, P_EXPIRY, BlockHeight(5))
    SwapLegs(S.OFFERED, L.NONE, L.NONE, I_EXPIRY, P_EXPIRY, P_EXPIRY)


# ============================================================================ every combination

_LIVE = {L.LOCKED, L.CONFIRMED}
_ALL = list(itertools.product(SwapStatus, LegStatus, LegStatus, (False, True), (False, True),
                              ("open", "closed", "expired"), (False, True)))


def _violations(combo: tuple, decide: Callable[[SwapLegs, Now], Action] = next_action,
                ) -> list[str]:
    """The safety rules `decide` breaks for one combination (empty when it keeps them all)."""
    status, i, p, secret, held, phase, i_exp = combo
    action = decide(swap(i, p, secret=secret, refund_held=held, status=status),
                    now(phase, initiator_expired=i_exp))
    rules = {
        "terminal -> done": status not in TERMINAL or action is A.DONE,
        # lock only a confirmed, unexpired user leg, before the deadline
        "lock": action is not A.LOCK_PARTICIPANT
        or (i, p, phase, i_exp) == (L.CONFIRMED, L.NONE, "open", False),
        # refund only our live leg after its expiry, never while we can take the user's leg
        "refund": action is not A.REFUND_PARTICIPANT_LEG
        or (p in _LIVE and phase == "expired" and not (secret and i in _LIVE)),
        # redeem only with the secret, a live user leg, and never after refunding our own leg
        "redeem": action is not A.REDEEM_INITIATOR_LEG
        or (secret and i in _LIVE and p in {L.LOCKED, L.CONFIRMED, L.REDEEMED}),
        # a known secret is always used while both can be
        "use the secret": status in TERMINAL or i is L.REDEEMED
        or not (secret and i in _LIVE and p in {L.LOCKED, L.CONFIRMED, L.REDEEMED})
        or action is A.REDEEM_INITIATOR_LEG,
        # the user's refund only after their expiry, when we hold it and our leg is settled
        "user refund": action is not A.BROADCAST_USER_REFUND
        or (held and i_exp and i in _LIVE and p in {L.NONE, L.REFUNDED}),
        # hold only when our leg exists without the user's
        "hold": action is not A.HOLD or (i is L.NONE and p is not L.NONE),
    }
    return [f"{rule}: {action}" for rule, ok in rules.items() if not ok]


def test_safety_rules_hold_in_every_combination() -> None:
    assert len(_ALL) == 6 * 5 * 5 * 2 * 2 * 3 * 2
    assert {combo: v for combo in _ALL if (v := _violations(combo))} == {}


@pytest.mark.parametrize("combo,wrong", [
    ((S.PARTICIPANT_LOCKED, L.CONFIRMED, L.CONFIRMED, True, False, "expired", False),
     A.REFUND_PARTICIPANT_LEG),  # refunding while the secret can take the user's leg
    ((S.OFFERED, L.LOCKED, L.NONE, False, False, "open", False), A.LOCK_PARTICIPANT),
    ((S.PARTICIPANT_LOCKED, L.CONFIRMED, L.REFUNDED, True, False, "expired", False),
     A.REDEEM_INITIATOR_LEG),  # taking both legs
    ((S.PARTICIPANT_LOCKED, L.CONFIRMED, L.CONFIRMED, False, True, "closed", True),
     A.BROADCAST_USER_REFUND),  # our leg still out there
    ((S.REDEEMED, L.REDEEMED, L.REDEEMED, True, False, "closed", False), A.MARK_REDEEMED),
])
def test_the_safety_rules_catch_a_wrong_action(combo: tuple, wrong: Action) -> None:
    assert _violations(combo, lambda legs, clock: wrong)
