"""Timelock arithmetic of HTLC swaps: block heights and unix times, kept apart.

Owns: the instant types `BlockHeight` and `UnixTime`, per-chain timing (`ChainTiming`), the
safety margin between a swap's two legs (`safety_margin_s`, `check_timelocks`), conversions
from a duration to an expiry (`height_after`, `time_after`), and the expiry rule (`expired`).
Must not read the wall clock or a chain: every "now" is an argument (the chain's head height,
or its latest block timestamp).

Which chain uses what (Ferry HTLC rules v1): Bitcoin HTLCs expire at an
absolute block height (``OP_CHECKLOCKTIMEVERIFY``, BIP-65; never a time); EVM HTLCs at an
absolute unix timestamp compared with ``block.timestamp`` (never a height); the ledger at an
absolute ledger-clock second. A `BlockHeight` and a `UnixTime` never mix: comparing them,
testing them for equality or subtracting one from the other raises `TypeError`, and so does
adding one to the other. Adding or subtracting a plain `int` (blocks, or seconds) is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Self, overload

from htlc.errors import TimelockTooShort

Kind = Literal["height", "time"]
HEIGHT_SKEW_PCT = 25  # default error allowed on "blocks x block time" estimates, in percent


@dataclass(frozen=True, slots=True, eq=False)
class _Instant:
    """An absolute point on one chain's clock (height or time); see the module docstring."""

    value: int
    kind: ClassVar[Kind]

    def __post_init__(self) -> None:
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise TypeError(f"{type(self).__name__} takes an int, got {type(self.value).__name__}")
        if self.value < 0:
            raise ValueError(f"{type(self).__name__} cannot be negative, got {self.value}")

    def _peer(self, other: object) -> int | None:
        """`other`'s value when it is the same kind; TypeError for the other kind; else None."""
        if isinstance(other, _Instant) and type(other) is type(self):
            return other.value
        if isinstance(other, _Instant):
            raise TypeError(f"cannot mix {type(self).__name__} and {type(other).__name__}")
        return None

    def __eq__(self, other: object) -> bool:
        peer = self._peer(other)
        return NotImplemented if peer is None else self.value == peer

    def __hash__(self) -> int:
        return hash((self.kind, self.value))

    def __lt__(self, other: Self) -> bool:
        peer = self._peer(other)
        return NotImplemented if peer is None else self.value < peer

    def __le__(self, other: Self) -> bool:
        peer = self._peer(other)
        return NotImplemented if peer is None else self.value <= peer

    def __gt__(self, other: Self) -> bool:
        peer = self._peer(other)
        return NotImplemented if peer is None else self.value > peer

    def __ge__(self, other: Self) -> bool:
        peer = self._peer(other)
        return NotImplemented if peer is None else self.value >= peer

    def __add__(self, delta: int) -> Self:
        if isinstance(delta, _Instant):
            raise TypeError(f"cannot add {type(delta).__name__} to {type(self).__name__}")
        if not isinstance(delta, int) or isinstance(delta, bool):
            return NotImplemented
        return type(self)(self.value + delta)

    __radd__ = __add__

    @overload
    def __sub__(self, other: Self) -> int: ...

    @overload
    def __sub__(self, other: int) -> Self: ...

    def __sub__(self, other: Self | int) -> int | Self:
        peer = self._peer(other)
        if peer is not None:
            return self.value - peer
        if not isinstance(other, int) or isinstance(other, bool):
            return NotImplemented
        return type(self)(self.value - other)

    def __int__(self) -> int:
        return self.value


@dataclass(frozen=True, slots=True, eq=False)
class BlockHeight(_Instant):
    """An absolute block height (Bitcoin CLTV locktimes, chain heads). ``h + 6`` is six blocks
    later; ``h2 - h1`` is a number of blocks."""

    kind: ClassVar[Kind] = "height"


@dataclass(frozen=True, slots=True, eq=False)
class UnixTime(_Instant):
    """An absolute unix time in seconds (EVM ``block.timestamp``, ledger clock). ``t + 60`` is
    a minute later; ``t2 - t1`` is a number of seconds."""

    kind: ClassVar[Kind] = "time"


Instant = BlockHeight | UnixTime


@dataclass(frozen=True, slots=True)
class ChainTiming:
    """How one chain keeps time, for margin arithmetic.

    Attributes:
        block_time_s: average seconds between blocks (an estimate for height chains).
        confirmation_depth: blocks after which Ferry treats a transaction as settled (>= 1; the
            block including it counts as the first).
        kind: "height" when its HTLCs expire at a block height, "time" at a unix time.

    Raises:
        ValueError: non-positive block time or depth, or an unknown kind.
    """

    block_time_s: int
    confirmation_depth: int
    kind: Kind

    def __post_init__(self) -> None:
        if self.block_time_s < 1 or self.confirmation_depth < 1:
            raise ValueError("block_time_s and confirmation_depth must be >= 1")
        if self.kind not in ("height", "time"):
            raise ValueError(f"kind must be 'height' or 'time', got {self.kind!r}")

    @property
    def settle_s(self) -> int:
        """Expected seconds from broadcast to `confirmation_depth` confirmations."""
        return self.confirmation_depth * self.block_time_s

    def instant(self, value: int) -> Instant:
        """`value` as this chain's instant type (`BlockHeight` or `UnixTime`)."""
        return BlockHeight(value) if self.kind == "height" else UnixTime(value)

    def check(self, instant: Instant) -> None:
        """Raise TypeError unless `instant` is of this chain's kind."""
        if not isinstance(instant, _Instant) or instant.kind != self.kind:
            raise TypeError(f"a {self.kind} chain takes {type(self.instant(0)).__name__}, "
                            f"got {type(instant).__name__}")


#: Bitcoin mainnet: 600 s blocks on average, 6 confirmations, CLTV heights (BIP-65).
BITCOIN = ChainTiming(block_time_s=600, confirmation_depth=6, kind="height")
#: Ethereum mainnet: 12 s slots, 64 blocks (two epochs, about when a block is finalized).
ETHEREUM = ChainTiming(block_time_s=12, confirmation_depth=64, kind="time")
#: Devnets that mine on demand or every second (btcd regtest, anvil): short on purpose.
BITCOIN_DEVNET = ChainTiming(block_time_s=1, confirmation_depth=1, kind="height")
EVM_DEVNET = ChainTiming(block_time_s=1, confirmation_depth=1, kind="time")


def safety_margin_s(initiator: ChainTiming, participant: ChainTiming, *, extra_s: int) -> int:
    """Seconds by which the initiator's leg must outlast the participant's.

    ``margin = participant.confirmation_depth * participant.block_time_s``
    ``       + initiator.confirmation_depth * initiator.block_time_s + extra_s``

    Why: the participant's leg expires at T_p. The initiator can still claim it (revealing the
    secret) until the participant's refund confirms, so the participant only knows for sure
    how its leg ended about one confirmation window after T_p (first term). It must then
    redeem the initiator's leg and see that redeem confirmed before the initiator's expiry
    T_i, after which the initiator could refund and race it (second term). `extra_s` is slack
    for downtime, fee bumps, block-time variance and clock drift between the chains.
    E.g. Bitcoin initiator, Ethereum participant, one hour slack: 768 + 3600 + 3600 = 7968 s.

    Raises:
        ValueError: `extra_s` is negative.
    """
    if extra_s < 0:
        raise ValueError(f"extra_s must be >= 0, got {extra_s}")
    return participant.settle_s + initiator.settle_s + extra_s


@dataclass(frozen=True, slots=True)
class LegTimelock:
    """One leg's expiry and its chain's current head, on that chain's clock.

    Attributes:
        expiry: the leg's timelock (`BlockHeight` on a height chain, `UnixTime` on a time chain).
        now: the chain's head height, or its latest block's timestamp; same kind as `expiry`.
        timing: the chain's `ChainTiming`.

    Raises:
        TypeError: `expiry` or `now` is not of `timing.kind`.
    """

    expiry: Instant
    now: Instant
    timing: ChainTiming

    def __post_init__(self) -> None:
        self.timing.check(self.expiry)
        self.timing.check(self.now)

    def _left(self) -> int:
        """Blocks (height chain) or seconds (time chain) from `now` to `expiry`."""
        return _diff(self.expiry, self.now)

    def min_seconds_left(self, skew_pct: int = HEIGHT_SKEW_PCT) -> int:
        """The fewest seconds until `expiry` (<= 0 once passed). Heights are converted at
        `block_time_s` with blocks `skew_pct` percent faster: the leg may expire that soon."""
        if self.timing.kind == "time":
            return self._left()
        return self._left() * self.timing.block_time_s * (100 - skew_pct) // 100

    def max_seconds_left(self, skew_pct: int = HEIGHT_SKEW_PCT) -> int:
        """The most seconds until `expiry` (<= 0 once passed). Heights are converted at
        `block_time_s` with blocks `skew_pct` percent slower (rounded up): the leg may last
        that long."""
        if self.timing.kind == "time":
            return self._left()
        return -(-self._left() * self.timing.block_time_s * (100 + skew_pct) // 100)


def _diff(later: Instant, earlier: Instant) -> int:
    """``later - earlier`` in blocks or seconds; TypeError when their kinds differ."""
    if type(later) is not type(earlier):
        raise TypeError(f"cannot subtract {type(earlier).__name__} from {type(later).__name__}")
    return later.value - earlier.value


def check_timelocks(
    initiator: LegTimelock, participant: LegTimelock, *, extra_s: int,
    height_skew_pct: int = HEIGHT_SKEW_PCT,
) -> int:
    """SECURITY: check the participant can lock its leg: the initiator's leg outlasts it by the
    safety margin, estimated pessimistically for the participant.

    Conservative direction: a height is converted to seconds at the chain's average block
    time, skewed by `height_skew_pct` percent against the participant: the initiator's leg
    is assumed to run out as early as plausible (blocks faster, `min_seconds_left`) and the
    participant's as late as plausible (blocks slower, `max_seconds_left`). Time chains are
    counted exactly; their clock drift belongs in `extra_s`.

    Args:
        initiator: the user's leg, locked first by the secret's holder (longer timelock).
        participant: the leg locked second (the relayer's), with the shorter timelock.
        extra_s: slack added to the margin (`safety_margin_s`).
        height_skew_pct: 0..99 percent of block-time error allowed on height chains.

    Returns:
        Spare seconds beyond the margin (>= 0).

    Raises:
        TimelockTooShort: either leg has already expired, or the initiator's leg ends less
            than the margin after the participant's.
        ValueError: `extra_s` < 0 or `height_skew_pct` outside 0..99.
    """
    if not 0 <= height_skew_pct < 100:
        raise ValueError(f"height_skew_pct must be in 0..99, got {height_skew_pct}")
    margin = safety_margin_s(initiator.timing, participant.timing, extra_s=extra_s)
    if initiator.min_seconds_left(height_skew_pct) <= 0:
        raise TimelockTooShort("the initiator's leg has expired (or may expire any moment)")
    if participant.max_seconds_left(height_skew_pct) <= 0:
        raise TimelockTooShort("the participant's leg would be expired already")
    gap = initiator.min_seconds_left(height_skew_pct) - participant.max_seconds_left(
        height_skew_pct)
    if gap < margin:
        raise TimelockTooShort(
            f"the initiator's leg outlasts the participant's by about {gap} s; "
            f"the safety margin is {margin} s")
    return gap - margin


def height_after(now_height: BlockHeight, seconds: int, timing: ChainTiming) -> BlockHeight:
    """The height about `seconds` after `now_height`: ``now + ceil(seconds / block_time_s)``.

    Rounded up, so a lock set there lasts at least `seconds` at the average block rate (use
    `check_timelocks` to compare legs; this is only the expected rate).

    Raises:
        TypeError: `now_height` is not a `BlockHeight`, or `timing` is a time chain.
        ValueError: `seconds` is negative.
    """
    if not isinstance(now_height, BlockHeight) or timing.kind != "height":
        raise TypeError("height_after takes a BlockHeight and a height chain's timing")
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    return now_height + -(-seconds // timing.block_time_s)


def time_after(now: UnixTime, seconds: int) -> UnixTime:
    """``now + seconds``.

    Raises:
        TypeError: `now` is not a `UnixTime`.
        ValueError: `seconds` is negative.
    """
    if not isinstance(now, UnixTime):
        raise TypeError(f"time_after takes a UnixTime, got {type(now).__name__}")
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    return now + seconds


def expired(expiry: Instant, now: Instant) -> bool:
    """Whether a leg's refund is valid in the chain's next block: ``now >= expiry``.

    `now` is the head height (Bitcoin: a transaction with nLockTime = expiry is final in block
    expiry + 1, so CLTV refunds enter the mempool once the tip reaches it; BIP-65) or the
    latest block timestamp (EVM: the next block's timestamp is later still).

    Raises:
        TypeError: `expiry` and `now` are of different kinds.
    """
    return _diff(now, expiry) >= 0
