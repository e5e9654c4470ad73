"""The transfer state machine: statuses, the one transition table, and the next-action rule.

Owns: `TransferStatus`, `TRANSITIONS`, `TERMINAL`, `check_transition`, `Action`, `next_action`.
Must not touch the database or a chain: `relayer.store.advance` is the only writer of status and
calls `check_transition`; the engine asks `next_action` what to do and does it.

Lifecycle of a transfer (lock on an EVM chain -> mint on the ledger, or burn on the ledger ->
release on an EVM chain)::

    observed --> confirmed --> attested --> submitted --> executed
        |            |             |            |
        v            +----> held <-+------------+       (operator or retry moves it back)
     dropped (a reorg removed the event; re-observed if it reappears)

Mints skip `submitted`: the ledger's mint is keyed by the event id, so re-submitting after a
crash answers "duplicate" and nothing is minted twice. Releases persist the signed transaction
(`submitted`) before broadcasting it; the bridge pays each burn id at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from adapters.base import TxStatus
from adapters.errors import IllegalTransition


class TransferKind(StrEnum):
    LOCK = "lock"  # locked on an origin chain, minted on the ledger
    BURN = "burn"  # burned on the ledger, released on the origin chain


class TransferStatus(StrEnum):
    """Persisted values; members are never renamed."""

    OBSERVED = "transfer.observed"
    CONFIRMED = "transfer.confirmed"
    ATTESTED = "transfer.attested"
    SUBMITTED = "transfer.submitted"
    EXECUTED = "transfer.executed"
    HELD = "transfer.held"
    DROPPED = "transfer.dropped"
    REFUNDED = "transfer.refunded"  # an uncreditable deposit paid back to its sender


S = TransferStatus
TRANSITIONS: dict[TransferStatus, frozenset[TransferStatus]] = {
    S.OBSERVED: frozenset({S.CONFIRMED, S.DROPPED, S.HELD}),
    S.CONFIRMED: frozenset({S.ATTESTED, S.HELD, S.EXECUTED}),
    S.ATTESTED: frozenset({S.SUBMITTED, S.EXECUTED, S.HELD, S.CONFIRMED}),
    S.SUBMITTED: frozenset({S.EXECUTED, S.ATTESTED, S.HELD, S.CONFIRMED}),  # CONFIRMED: fee bump
    S.HELD: frozenset({S.CONFIRMED, S.ATTESTED, S.SUBMITTED, S.REFUNDED}),
    S.DROPPED: frozenset({S.OBSERVED}),
    S.EXECUTED: frozenset(),
    S.REFUNDED: frozenset(),
}
TERMINAL: frozenset[TransferStatus] = frozenset({S.EXECUTED, S.REFUNDED})


def check_transition(current: TransferStatus, to: TransferStatus) -> None:
    """Raise `IllegalTransition` unless `current -> to` is in `TRANSITIONS`."""
    if to not in TRANSITIONS[current]:
        raise IllegalTransition(f"{current} -> {to} is not allowed")


class Action(StrEnum):
    WAIT_CONFIRMATIONS = "wait_confirmations"
    COLLECT_ATTESTATIONS = "collect_attestations"
    MINT = "mint"
    PREPARE_RELEASE = "prepare_release"
    WAIT_RELEASE = "wait_release"
    REBROADCAST = "rebroadcast"
    MARK_EXECUTED = "mark_executed"
    RESUBMIT = "resubmit"
    HOLD = "hold"
    NOTHING = "nothing"


@dataclass(frozen=True, slots=True)
class Legs:
    """Both sides of a transfer as the engine last saw them.

    Attributes:
        kind: lock (mint on the ledger) or burn (release on a chain).
        status: the persisted status.
        quorum: whether at least `threshold` valid attestations are stored for the current epoch.
        dest_tx: status of the destination transaction (releases), or None if none was sent.
        dest_done: whether the destination already shows the effect (minted, or released on chain).
    """

    kind: TransferKind
    status: TransferStatus
    quorum: bool = False
    dest_tx: TxStatus | None = None
    dest_done: bool = False


def next_action(legs: Legs) -> Action:
    """The one rule for what to do next, a pure function of both legs."""
    match legs:
        case Legs(status=S.EXECUTED | S.DROPPED | S.HELD):
            return Action.NOTHING
        case Legs(dest_done=True):
            return Action.MARK_EXECUTED
        case Legs(status=S.OBSERVED):
            return Action.WAIT_CONFIRMATIONS
        case Legs(status=S.CONFIRMED, quorum=False):
            return Action.COLLECT_ATTESTATIONS
        case Legs(status=S.CONFIRMED | S.ATTESTED, kind=TransferKind.LOCK, quorum=True):
            return Action.MINT
        case Legs(status=S.CONFIRMED | S.ATTESTED, kind=TransferKind.BURN, quorum=True):
            return Action.PREPARE_RELEASE
        case Legs(status=S.ATTESTED, quorum=False):
            return Action.COLLECT_ATTESTATIONS
        case Legs(status=S.SUBMITTED, dest_tx=TxStatus.UNKNOWN | None):
            return Action.REBROADCAST
        case Legs(status=S.SUBMITTED, dest_tx=TxStatus.PENDING | TxStatus.INCLUDED):
            return Action.WAIT_RELEASE
        case Legs(status=S.SUBMITTED, dest_tx=TxStatus.FINAL):
            # Final and succeeded, yet the bridge does not show it released: never guess.
            return Action.HOLD
        case Legs(status=S.SUBMITTED, dest_tx=TxStatus.FAILED):
            return Action.RESUBMIT
    return Action.NOTHING
