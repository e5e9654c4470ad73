"""Prometheus view of the RPC endpoints of this process: one sample per endpoint of every live
`adapters.multi_rpc.EndpointPool` (the relayer's and a validator's chain clients alike).

Owns: `RpcHealthCollector`, a custom collector that reads `EndpointPool.health` at scrape time.
Must not call an endpoint, import relayer or validator code, or label anything with more than
``host:port`` of an endpoint's URL (provider API keys live in paths and user info).

Metrics (labels ``chain`` = CAIP-2 id, ``endpoint`` = ``host:port``):

- ``ferry_rpc_endpoint_up``: 1 while the endpoint is not cooling down (and its pool found no
  wrong chain), else 0.
- ``ferry_rpc_circuit_open``: 1 while the endpoint cools down after a transport fault: the pool's
  circuit breaker is open and the endpoint is only asked when no other answers.
- ``ferry_rpc_endpoint_faults_total``: transport faults since the process started.

Two pools of one process on the same endpoint (a test process with several stacks) give one
sample: up only if both are up, open if either is open, faults summed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.multi_rpc import EndpointHealth, live_pools


def all_endpoints() -> list[EndpointHealth]:
    """Health of every endpoint of every live pool of this process."""
    return [h for pool in live_pools() for h in pool.health()]


class RpcHealthCollector(Collector):
    """Collector of the ``ferry_rpc_*`` metrics (module docstring).

    Args:
        source: the endpoints to report; default: every live pool of this process.
    """

    def __init__(self, source: Callable[[], Iterable[EndpointHealth]] = all_endpoints) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        merged: dict[tuple[str, str], list[int]] = {}  # (chain, host) -> [up, open, faults]
        for h in self._source():
            row = merged.setdefault((h.chain, h.host), [1, 0, 0])
            row[0] &= int(h.up)
            row[1] |= int(h.circuit_open)
            row[2] += h.faults
        up = GaugeMetricFamily("ferry_rpc_endpoint_up", "1 while the RPC endpoint is not "
                               "cooling down after a fault.", labels=["chain", "endpoint"])
        opened = GaugeMetricFamily("ferry_rpc_circuit_open", "1 while the RPC endpoint's "
                                   "circuit breaker is open (cooling down after a transport "
                                   "fault).", labels=["chain", "endpoint"])
        faults = CounterMetricFamily("ferry_rpc_endpoint_faults", "Transport faults of the RPC "
                                     "endpoint since the process started.",
                                     labels=["chain", "endpoint"])
        for (chain, host), (is_up, is_open, n) in sorted(merged.items()):
            up.add_metric([chain, host], is_up)
            opened.add_metric([chain, host], is_open)
            faults.add_metric([chain, host], n)
        yield from (up, opened, faults)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # samples depend on the live pools: described at collect time only
