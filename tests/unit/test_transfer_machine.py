"""The transfer state machine: the transition table and the next-action rule."""

import pytest

from adapters.base import TxStatus
from adapters.errors import IllegalTransition
from relayer.machine import (
    TERMINAL,
    TRANSITIONS,
    Action,
    Legs,
    TransferKind,
    TransferStatus,
    check_transition,
    next_action,
)

S = TransferStatus
LOCK, BURN = TransferKind.LOCK, TransferKind.BURN


def test_every_status_has_a_row_and_terminal_states_have_no_exit():
    assert set(TRANSITIONS) == set(TransferStatus)
    for status in TERMINAL:
        assert TRANSITIONS[status] == frozenset()


@pytest.mark.parametrize(
    "frm,to",
    [(S.OBSERVED, S.CONFIRMED), (S.OBSERVED, S.DROPPED), (S.DROPPED, S.OBSERVED),
     (S.CONFIRMED, S.ATTESTED), (S.ATTESTED, S.SUBMITTED), (S.SUBMITTED, S.EXECUTED),
     (S.ATTESTED, S.EXECUTED), (S.HELD, S.CONFIRMED)],
)
def test_allowed_transitions_pass(frm, to):
    check_transition(frm, to)


@pytest.mark.parametrize(
    "frm,to",
    [(S.EXECUTED, S.CONFIRMED), (S.EXECUTED, S.EXECUTED), (S.OBSERVED, S.ATTESTED),
     (S.OBSERVED, S.EXECUTED), (S.DROPPED, S.CONFIRMED), (S.CONFIRMED, S.SUBMITTED)],
)
def test_illegal_transitions_raise(frm, to):
    with pytest.raises(IllegalTransition):
        check_transition(frm, to)


@pytest.mark.parametrize(
    "legs,action",
    [
        (Legs(LOCK, S.OBSERVED), Action.WAIT_CONFIRMATIONS),
        (Legs(LOCK, S.CONFIRMED, quorum=False), Action.COLLECT_ATTESTATIONS),
        (Legs(LOCK, S.CONFIRMED, quorum=True), Action.MINT),
        (Legs(LOCK, S.ATTESTED, quorum=True), Action.MINT),
        (Legs(BURN, S.CONFIRMED, quorum=True), Action.PREPARE_RELEASE),
        (Legs(BURN, S.ATTESTED, quorum=False), Action.COLLECT_ATTESTATIONS),
        (Legs(BURN, S.SUBMITTED, True, TxStatus.UNKNOWN), Action.REBROADCAST),
        (Legs(BURN, S.SUBMITTED, True, TxStatus.PENDING), Action.WAIT_RELEASE),
        (Legs(BURN, S.SUBMITTED, True, TxStatus.INCLUDED), Action.WAIT_RELEASE),
        (Legs(BURN, S.SUBMITTED, True, TxStatus.FINAL, dest_done=True), Action.MARK_EXECUTED),
        (Legs(BURN, S.SUBMITTED, True, TxStatus.FAILED, dest_done=True), Action.MARK_EXECUTED),
        (Legs(BURN, S.SUBMITTED, True, TxStatus.FAILED), Action.RESUBMIT),
        (Legs(BURN, S.SUBMITTED, True, TxStatus.FINAL), Action.HOLD),
        (Legs(BURN, S.EXECUTED, True, TxStatus.FINAL, dest_done=True), Action.NOTHING),
        (Legs(LOCK, S.HELD, quorum=True), Action.NOTHING),
        (Legs(LOCK, S.DROPPED, quorum=True), Action.NOTHING),
    ],
)
def test_next_action_is_a_function_of_both_legs(legs, action):
    assert next_action(legs) == action
