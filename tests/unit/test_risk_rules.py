"""The pure risk rules (`validators.risk.decide`): rolling-window limit, large-transfer delay,
pause and operator release, table-driven with the boundaries on both sides."""

from __future__ import annotations

import pytest

from validators.risk import GO, RiskDecision, RiskSection, WaitReason, decide, route_key

SRC, DST, ASSET = "eip155:1", "ferry:ledger", "eip155:1/0x" + "00" * 20
ROUTE = route_key(SRC, DST, ASSET)
W = 1_000  # window_s
T0 = 10_000.0


def section(limit: int = 100, large: int | None = 50, delay: int | None = None) -> RiskSection:
    return RiskSection(window_s=W, delay_s=500, routes=[{
        "source_chain": SRC, "dest_chain": DST, "asset": ASSET, "daily_limit": limit,
        "large_transfer": large, "delay_s": delay}])


def wait(reason: WaitReason, until: float | None) -> RiskDecision:
    return RiskDecision(False, reason, until)


def test_route_key_is_source_dest_and_asset():
    assert ROUTE == "eip155:1>ferry:ledger:eip155:1/0x" + "00" * 20


CASES = [
    # (name, amount, first_seen, now, window, expected)
    ("empty window, under the limit", 40, T0, T0, [], GO),
    ("exactly the limit passes", 49, T0, T0, [(T0 - 1, 51)], GO),
    ("one unit over the limit waits for the oldest to age out", 49, T0, T0, [(T0 - 10, 52)],
     wait(WaitReason.RATE_LIMIT, T0 - 10 + W)),
    ("an entry exactly window_s old has aged out", 49, T0, T0, [(T0 - W, 100)], GO),
    ("an entry just inside the window still counts", 49, T0, T0, [(T0 - W + 0.5, 100)],
     wait(WaitReason.RATE_LIMIT, T0 + 0.5)),
    ("waits until enough entries age out, oldest first", 45, T0, T0,
     [(T0 - 300, 40), (T0 - 200, 40), (T0 - 100, 20)], wait(WaitReason.RATE_LIMIT, T0 - 200 + W)),
    ("more than the whole limit waits for an operator", 101, T0 - 10_000, T0, [],
     wait(WaitReason.RATE_LIMIT, None)),
    ("just below the large size is not delayed", 49, T0, T0, [], GO),
    ("the large size itself is delayed", 50, T0, T0, [], wait(WaitReason.DELAY, T0 + 500)),
    ("still delayed a moment before the delay ends", 50, T0, T0 + 499.9, [],
     wait(WaitReason.DELAY, T0 + 500)),
    ("delay over exactly at first_seen + delay_s", 50, T0, T0 + 500, [], GO),
    ("after its delay a large transfer still meets the limit", 60, T0, T0 + 500,
     [(T0 + 400, 50)], wait(WaitReason.RATE_LIMIT, T0 + 400 + W)),
]


@pytest.mark.parametrize("name,amount,first_seen,now,window,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_decide(name, amount, first_seen, now, window, expected):
    assert decide(section(), ROUTE, amount, first_seen, now, window) == expected


def test_route_delay_overrides_the_section_delay():
    d = decide(section(delay=60), ROUTE, 50, T0, T0, [])
    assert d == wait(WaitReason.DELAY, T0 + 60)
    assert decide(section(delay=60), ROUTE, 50, T0, T0 + 60, []) == GO


def test_without_a_large_size_nothing_is_delayed():
    assert decide(section(large=None), ROUTE, 100, T0, T0, []) == GO


def test_unlisted_route_has_no_limit_and_no_delay():
    other = route_key(SRC, DST, "eip155:1/0x" + "11" * 20)
    assert decide(section(), other, 10**30, T0, T0, [(T0, 10**30)]) == GO


@pytest.mark.parametrize("released", [False, True])
def test_pause_stops_everything_even_an_operator_release(released):
    d = decide(section(), ROUTE, 1, T0, T0, [], paused=True, operator_released=released)
    assert d == wait(WaitReason.PAUSED, None)


def test_operator_release_skips_delay_and_limit():
    full = [(T0, 100)]
    assert decide(section(), ROUTE, 500, T0, T0, full) == wait(WaitReason.DELAY, T0 + 500)
    assert decide(section(), ROUTE, 500, 0.0, T0, full) == wait(WaitReason.RATE_LIMIT, None)
    assert decide(section(), ROUTE, 500, T0, T0, full, operator_released=True) == GO


def test_paused_unlisted_route_still_waits():
    other = route_key(SRC, DST, "eip155:1/0x" + "11" * 20)
    assert decide(section(), other, 1, T0, T0, [], paused=True).reason == WaitReason.PAUSED


@pytest.mark.parametrize("amount", [0, -1])
def test_non_positive_amount_is_refused(amount):
    with pytest.raises(ValueError):
        decide(section(), ROUTE, amount, T0, T0, [])


def test_a_route_may_be_listed_once():
    r = {"source_chain": SRC, "dest_chain": DST, "asset": ASSET, "daily_limit": 1}
    with pytest.raises(ValueError):
        RiskSection(routes=[r, r])
