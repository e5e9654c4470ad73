"""Several JSON-RPC endpoints of one EVM chain behind one client: failover for every call, and
agreement of ``quorum`` endpoints for the reads that decide minting.

Owns: `MultiRpc`, the EVM face of the chain-neutral `adapters.multi_rpc.EndpointPool` (which
owns each endpoint's health, the identity check, the retries and the comparison), with the
EVM parts: the ``eth_chainId`` check and the normalisation of the endpoints' answers
(`block_key`, `logs_key`). Must not interpret results beyond that normalisation (the adapter
decodes and re-checks every answer), retry a broadcast, or log a URL's path or credentials
(provider API keys live there): logs name ``host:port`` only.

Policy (order of health, cool-down, sticky `WrongChain`, quorum, retries): see
`adapters.multi_rpc`. On EVM:

- *Chain id*: an endpoint is asked ``eth_chainId`` (EIP-695) before its first other request.
- A JSON-RPC error object is the node's answer, not a fault: it is raised, never failed over
  (faults are what `adapters.evm.rpc` raises as `RpcUnavailable`).
- `read`: for reads that do not decide minting (``eth_call`` views, receipts, fees, nonces).
- `agreed` (logs, a block by number) and `agreed_block` (a moving tag, ``latest`` or
  ``finalized``: the lowest of the quorum's blocks, whose hash each other endpoint must have
  at that height): the reads that decide minting.
- `send` (``eth_sendRawTransaction``): one endpoint is enough: the caller persisted the hash
  and follows the transaction with reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from adapters.evm.errors import RpcError
from adapters.multi_rpc import COOLDOWN_S, EndpointPool, host_of, redact

__all__ = ["COOLDOWN_S", "MultiRpc", "Transport", "block_key", "logs_key", "redact"]

log = logging.getLogger(__name__)


class Transport(Protocol):
    """One endpoint: `adapters.evm.rpc.JsonRpc` or a test fake."""

    url: str

    def request(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC request, once; the raw ``result``. Raises `RpcUnavailable` on a
        transport fault, other `ChainError`s for a JSON-RPC error object."""
        ...


# ---------------------------------------------------------------------------- normalisation


def _hex_int(value: Any) -> int | str:
    try:
        return int(value, 16)
    except (TypeError, ValueError):
        return repr(value)


def _lower(value: Any) -> str:
    return value.lower() if isinstance(value, str) else repr(value)


def block_key(block: Any) -> tuple[int | str, str] | None:
    """What two answers of ``eth_getBlockByNumber``/``eth_getBlockByHash`` must share:
    (number, hash); None for "no such block". Never raises: a malformed answer gets a key of
    its own (the adapter rejects it after the comparison)."""
    if block is None:
        return None
    if not isinstance(block, dict):
        return (repr(block), "")
    return (_hex_int(block.get("number")), _lower(block.get("hash")))


def logs_key(logs: Any) -> tuple[Any, ...] | str:
    """What two answers of ``eth_getLogs`` must share: the multiset of (blockNumber, blockHash,
    transactionHash, logIndex, address, topics, data) of the logs not flagged ``removed``,
    numbers as ints and hex in lowercase. Never raises."""
    if not isinstance(logs, list):
        return repr(logs)
    keys: list[tuple[Any, ...]] = []
    for entry in logs:
        if not isinstance(entry, dict):
            keys.append(("malformed", repr(entry)))
            continue
        if entry.get("removed") is True:
            continue
        topics = entry.get("topics")
        keys.append(
            (
                _hex_int(entry.get("blockNumber")),
                _lower(entry.get("blockHash")),
                _lower(entry.get("transactionHash")),
                _hex_int(entry.get("logIndex")),
                _lower(entry.get("address")),
                tuple(_lower(t) for t in topics) if isinstance(topics, list) else repr(topics),
                _lower(entry.get("data")),
            )
        )
    return tuple(sorted(keys, key=repr))


# ---------------------------------------------------------------------------- client


class MultiRpc:
    """JSON-RPC client of one EVM chain over one or more endpoints (policy: module docstring).

    Args:
        transports: the endpoints, in configured order (the first is preferred).
        chain: CAIP-2 id carried by every error raised.
        chain_id: EIP-155 id every endpoint must serve.
        quorum: endpoints that must agree in `agreed` and `agreed_block`, 1..len(transports).
        read_attempts: most attempts of a read (>= 1); an attempt asks every endpoint needed.
        read_deadline_s: no new attempt starts this many seconds after the first.
        cooldown_s: seconds a failed endpoint waits at the back of the order.
        clock: monotonic seconds (injected by tests).

    Raises:
        ValueError: no transport, or a bound out of range.
    """

    def __init__(
        self,
        transports: Sequence[Transport],
        *,
        chain: str,
        chain_id: int,
        quorum: int = 1,
        read_attempts: int = 4,
        read_deadline_s: float = 30.0,
        cooldown_s: float = COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chain, self.chain_id, self.quorum = chain, chain_id, quorum
        self._pool: EndpointPool[Transport] = EndpointPool(
            transports, chain=chain, identity=self._chain_id_of, expected=chain_id,
            identity_label="eth_chainId", what="chain id", quorum=quorum,
            read_attempts=read_attempts, read_deadline_s=read_deadline_s,
            cooldown_s=cooldown_s, clock=clock, logger=log)

    @property
    def urls(self) -> tuple[str, ...]:
        """The endpoints' URLs, in configured order."""
        return self._pool.urls

    def verify_all(self) -> None:
        """Ask every endpoint not yet verified for ``eth_chainId``; at least one must answer.
        Endpoints that are down are checked later, before their first use.

        Raises:
            WrongChain: an endpoint serves another chain id (names its ``scheme://host:port``);
                sticky, see `adapters.multi_rpc`.
            RpcUnavailable: no endpoint could be asked (after the retry policy).
            RpcError: an endpoint answered something that is not a hex quantity.
        """
        self._pool.verify_all()

    def read(self, method: str, params: list[Any]) -> Any:
        """The raw ``result`` of the first endpoint that answers (idempotent reads only).

        Raises:
            RpcUnavailable: no endpoint answered (after the retry policy).
            WrongChain: an endpoint serves another chain id (sticky).
            RpcError, NonceTooLow: the node's JSON-RPC error object, unchanged.
        """
        return self._pool.read(lambda t: t.request(method, params), method)

    def send(self, method: str, params: list[Any]) -> Any:
        """Like `read` but never retried: each endpoint, in order of health, is asked at most
        once until one answers (for ``eth_sendRawTransaction``)."""
        return self._pool.send(lambda t: t.request(method, params), method)

    def agreed(self, method: str, params: list[Any], key: Callable[[Any], object]) -> Any:
        """SECURITY: the raw ``result`` of `quorum` endpoints whose answers have equal `key`
        (`block_key`, `logs_key`); the first endpoint's answer is returned.

        Raises:
            RpcDisagreement: two of the quorum's answers differ (not retried here).
            RpcUnavailable: fewer than `quorum` endpoints answered (after the retry policy).
            WrongChain, RpcError: as for `read`.
        """
        return self._pool.agreed(lambda t: t.request(method, params), key, method)

    def agreed_block(self, tag: str) -> Any:
        """SECURITY: the block (raw JSON, no transactions) at moving tag `tag` (``latest``,
        ``finalized``, ``safe``) that `quorum` endpoints agree on: the lowest of their blocks
        at `tag`, whose hash every other endpoint of the quorum must have at that height.

        Raises:
            RpcDisagreement: an endpoint has another hash at that height, or no block there.
            RpcError: with quorum > 1, an endpoint answered no block or a malformed one.
            RpcUnavailable, WrongChain: as for `agreed`.
        """
        method = "eth_getBlockByNumber"

        def parse(host: str, block: Any) -> tuple[int, object]:
            k = block_key(block)
            if k is None or not isinstance(k[0], int):
                raise RpcError(f"{method}({tag}) from {host} returned {block!r}",
                               chain=self.chain)
            return k[0], k

        return self._pool.agreed_tip(
            lambda t: t.request(method, [tag, False]), parse,
            lambda t, number: block_key(t.request(method, [hex(number), False])), method)

    def _chain_id_of(self, transport: Transport) -> int:
        served = transport.request("eth_chainId", [])
        try:
            return int(served, 16)
        except (TypeError, ValueError) as exc:
            raise RpcError(f"eth_chainId from {host_of(transport.url)} returned {served!r}",
                           chain=self.chain) from exc
