"""End-to-end fixtures: a whole Ferry network as separate processes (two anvil chains, the
ledger, the relayer, five validators), started in a temp directory and always stopped; the
logs of every process are attached to a failing test's report."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relayer.cli.devnet import Devnet
from validators.keystore import KdfParams

FAST_KDF = KdfParams(time_cost=1, memory_cost_kib=8 * 1024, parallelism=1)  # tests only
_running: list[Devnet] = []


@pytest.fixture
def devnet(tmp_path) -> Iterator[Devnet]:
    net = Devnet(tmp_path / "devnet", block_time_s=0.2, kdf=FAST_KDF, poll_interval_s=0.2)
    _running.append(net)
    try:
        net.start_chains()
        net.deploy()
        net.start_services()
        yield net
    finally:
        _running.remove(net)
        net.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for net in _running:
            for name, proc in net.services.items():
                report.sections.append((f"{name} log tail", proc.log_tail()))
