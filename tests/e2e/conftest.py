"""End-to-end fixtures: a whole Ferry network as separate processes (two anvil chains, the
ledger, the relayer, five validators), started in a temp directory and always stopped; the
logs of every process are attached to a failing test's report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from relayer.cli.devnet import Devnet
from validators.keystore import KdfParams


def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll `check` every 0.2 s until it returns something truthy (returned), or fail the test
    after `timeout_s` naming `what`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


FAST_KDF = KdfParams(time_cost=1, memory_cost_kib=8 * 1024, parallelism=1)  # tests only
_running: list[Devnet] = []


@pytest.fixture
def devnet_factory(tmp_path) -> Iterator[Callable[..., Devnet]]:
    """`make(**options)`: a started `Devnet` (fast KDF, 0.2 s polls, no Solana cluster unless
    `options` say otherwise: tests/e2e/test_solana_e2e.py has its own) in this test's temp dir;
    stopped at teardown, its logs attached on failure."""
    started: list[Devnet] = []

    def make(**options: Any) -> Devnet:
        options = {"block_time_s": 0.2, "kdf": FAST_KDF, "poll_interval_s": 0.2,
                   "solana": False, **options}
        net = Devnet(tmp_path / f"devnet-{len(started)}", **options)
        started.append(net)
        _running.append(net)
        net.start_chains()
        net.deploy()
        net.start_services()
        return net

    try:
        yield make
    finally:
        for net in started:
            _running.remove(net)
            net.stop()


@pytest.fixture
def devnet(devnet_factory) -> Devnet:
    return devnet_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for net in _running:
            for name, proc in net.services.items():
                report.sections.append((f"{name} log tail", proc.log_tail()))
