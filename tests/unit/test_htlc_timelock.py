"""Timelocks: heights and times never mix; margins and the check of a swap's two legs."""

from __future__ import annotations

import operator

import pytest

from adapters.errors import HtlcError
from htlc.errors import TimelockTooShort
from htlc.timelock import (
    BITCOIN,
    ETHEREUM,
    BlockHeight,
    ChainTiming,
    LegTimelock,
    UnixTime,
    check_timelocks,
    expired,
    height_after,
    safety_margin_s,
    time_after,
)

H, T = BlockHeight, UnixTime
T0 = 1_700_000_000

# ============================================================================ the instant types


def test_same_kind_compares_and_subtracts() -> None:
    assert H(5) < H(6) <= H(6) < H(7) and H(7) > H(6) >= H(6)
    assert H(5) == H(5) and H(5) != H(6)
    assert H(10) - H(4) == 6 and type(H(10) - H(4)) is int
    assert T(T0 + 60) - T(T0) == 60
    assert H(5) + 3 == H(8) and 3 + H(5) == H(8) and H(5) - 2 == H(3)
    assert T(T0) + 60 == T(T0 + 60)
    assert len({H(5), H(5), H(6)}) == 2
    assert int(H(7)) == 7


@pytest.mark.parametrize("op", [operator.lt, operator.le, operator.gt, operator.ge,
                                operator.eq, operator.ne, operator.sub, operator.add])
def test_heights_and_times_never_mix(op) -> None:
    with pytest.raises(TypeError):
        op(H(5), T(5))
    with pytest.raises(TypeError):
        op(T(5), H(5))


@pytest.mark.parametrize("op", [operator.lt, operator.ge])
def test_instants_do_not_compare_with_bare_ints(op) -> None:
    with pytest.raises(TypeError):
        op(H(5), 5)


def test_a_bare_int_is_not_equal_to_an_instant() -> None:
    assert H(5) != 5 and T(5) != 5


@pytest.mark.parametrize("value,error", [(-1, ValueError), (True, TypeError), (1.5, TypeError),
                                         ("5", TypeError)])
def test_instants_refuse_negative_and_non_int_values(value, error) -> None:
    with pytest.raises(error):
        H(value)
    with pytest.raises(error):
        T(value)


def test_an_instant_cannot_wrap_the_other_kind_or_go_below_zero() -> None:
    with pytest.raises(TypeError):
        H(T(5))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        H(2) - 3
    with pytest.raises(TypeError):
        H(2) + 1.0  # type: ignore[operator]


# ============================================================================ chain timing


def test_chain_timing_builds_its_own_kind_only() -> None:
    assert BITCOIN.instant(100) == H(100) and ETHEREUM.instant(T0) == T(T0)
    BITCOIN.check(H(1))
    with pytest.raises(TypeError):
        BITCOIN.check(T(1))
    with pytest.raises(TypeError):
        ETHEREUM.check(H(1))


@pytest.mark.parametrize("args", [(0, 1, "height"), (600, 0, "height"), (600, 6, "slot")])
def test_chain_timing_refuses_bad_values(args) -> None:
    with pytest.raises(ValueError):
        ChainTiming(*args)


def test_safety_margin_is_both_confirmation_windows_plus_slack() -> None:
    # Ethereum participant 64 x 12 s + Bitcoin initiator 6 x 600 s + one hour.
    assert safety_margin_s(BITCOIN, ETHEREUM, extra_s=3600) == 768 + 3600 + 3600
    assert safety_margin_s(ETHEREUM, BITCOIN, extra_s=0) == 3600 + 768
    with pytest.raises(ValueError):
        safety_margin_s(BITCOIN, ETHEREUM, extra_s=-1)


# ============================================================================ check_timelocks


def btc_leg(blocks_left: int) -> LegTimelock:
    return LegTimelock(expiry=H(800_000 + blocks_left), now=H(800_000), timing=BITCOIN)


def eth_leg(seconds_left: int) -> LegTimelock:
    return LegTimelock(expiry=T(T0 + seconds_left), now=T(T0), timing=ETHEREUM)


def test_a_day_of_bitcoin_outlasts_six_hours_of_ethereum() -> None:
    # 144 blocks at 600 s, 25 % faster: 64 800 s; minus 21 600 s; margin 768 + 3600 + 3600.
    spare = check_timelocks(btc_leg(144), eth_leg(6 * 3600), extra_s=3600)
    assert spare == 64_800 - 21_600 - 7_968


def test_a_bitcoin_initiator_too_close_to_the_participant_is_refused() -> None:
    # 72 blocks estimated at 600 s would be 12 h (> 6 h + margin), but 25 % faster is 9 h.
    check_timelocks(btc_leg(72), eth_leg(6 * 3600), extra_s=3600, height_skew_pct=0)
    with pytest.raises(TimelockTooShort, match="safety margin"):
        check_timelocks(btc_leg(72), eth_leg(6 * 3600), extra_s=3600 * 3)


def test_a_bitcoin_participant_is_estimated_slow() -> None:
    # 24 blocks may take 25 % longer than 4 h: 18 000 s. Ethereum initiator of 8 h.
    margin = safety_margin_s(ETHEREUM, BITCOIN, extra_s=0)
    check_timelocks(eth_leg(18_000 + margin), btc_leg(24), extra_s=0)
    with pytest.raises(TimelockTooShort):
        check_timelocks(eth_leg(18_000 + margin - 1), btc_leg(24), extra_s=0)


def test_time_legs_are_counted_exactly_to_the_second() -> None:
    margin = safety_margin_s(ETHEREUM, ETHEREUM, extra_s=60)
    assert check_timelocks(eth_leg(3600 + margin), eth_leg(3600), extra_s=60) == 0
    with pytest.raises(TimelockTooShort):
        check_timelocks(eth_leg(3600 + margin - 1), eth_leg(3600), extra_s=60)


def test_an_expired_leg_is_refused() -> None:
    with pytest.raises(TimelockTooShort, match="participant"):
        check_timelocks(eth_leg(10**6), eth_leg(0), extra_s=0)
    with pytest.raises(TimelockTooShort, match="initiator"):
        check_timelocks(btc_leg(0), eth_leg(60), extra_s=0)


def test_timelock_too_short_is_an_htlc_error() -> None:
    assert issubclass(TimelockTooShort, HtlcError)


def test_a_leg_with_the_wrong_kind_of_expiry_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        LegTimelock(expiry=T(T0), now=H(5), timing=BITCOIN)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        LegTimelock(expiry=H(5), now=H(4), timing=ETHEREUM)


def test_skew_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        check_timelocks(btc_leg(144), eth_leg(3600), extra_s=0, height_skew_pct=100)


# ============================================================================ conversions


def test_height_after_rounds_up_to_whole_blocks() -> None:
    assert height_after(H(100), 0, BITCOIN) == H(100)
    assert height_after(H(100), 1, BITCOIN) == H(101)
    assert height_after(H(100), 600, BITCOIN) == H(101)
    assert height_after(H(100), 601, BITCOIN) == H(102)
    assert height_after(H(100), 86_400, BITCOIN) == H(244)


def test_height_after_refuses_times_and_negative_durations() -> None:
    with pytest.raises(TypeError):
        height_after(T(T0), 600, BITCOIN)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        height_after(H(100), 600, ETHEREUM)
    with pytest.raises(ValueError):
        height_after(H(100), -1, BITCOIN)


def test_time_after_adds_seconds_to_times_only() -> None:
    assert time_after(T(T0), 3600) == T(T0 + 3600)
    with pytest.raises(TypeError):
        time_after(H(100), 3600)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        time_after(T(T0), -1)


@pytest.mark.parametrize("expiry,now,passed", [
    (H(100), H(99), False), (H(100), H(100), True), (H(100), H(101), True),
    (T(T0), T(T0 - 1), False), (T(T0), T(T0), True),
])
def test_expired_once_the_head_reaches_the_expiry(expiry, now, passed: bool) -> None:
    assert expired(expiry, now) is passed


def test_expired_refuses_mixed_kinds() -> None:
    with pytest.raises(TypeError):
        expired(H(100), T(T0))
