"""Several JSON-RPC endpoints of one EVM chain behind one client: failover for every call, and
agreement of ``quorum`` endpoints for the reads that decide minting.

Owns: the endpoint list of one chain, each endpoint's health (a cool-down after a transport
fault) and chain-id check, the bounded retry of reads across endpoints, and the comparison of
the endpoints' answers after normalisation. Must not interpret results beyond that
normalisation (the adapter decodes and re-checks every answer), retry a broadcast, or log a
URL's path or credentials (provider API keys live there): logs name ``host:port`` only.

Policy:

- *Order of health*: endpoints not cooling down, in configured order, then those cooling down,
  by the end of their cool-down. An endpoint whose request raised `RpcUnavailable` (transport
  fault, timeout, HTTP 5xx/429, rate limit; see `adapters.evm.rpc`) cools down for
  ``cooldown_s``: it is only asked again before then when the healthy ones cannot serve.
  A JSON-RPC error object is the node's answer, not a fault: it is raised, never failed over.
- *Chain id*: an endpoint is asked ``eth_chainId`` (EIP-695) before its first other request.
  `verify_all` asks every endpoint at start; one that is down then is checked at its first use.
  SECURITY: a wrong id is `WrongChain` and sticky: every later call of this client raises it
  too, since the configuration points at another chain (restart with a fixed config).
- `read`: the first endpoint, in order of health, that answers. For reads that do not decide
  minting (``eth_call`` views, receipts, fees, nonces).
- `agreed` / `agreed_block`: SECURITY: ``quorum`` endpoints, in order of health, must each
  answer and the normalised answers must be equal, else `RpcDisagreement` and nothing is
  returned. Fewer than ``quorum`` answering is `RpcUnavailable`. For a moving tag (``latest``,
  ``finalized``) the lowest of the quorum's blocks is the answer, and each other endpoint's
  block at that height must have the same hash.
- `send`: the first endpoint that accepts, each asked at most once, never retried (a timeout
  may still have delivered it; re-sending the same bytes later is safe). One endpoint is
  enough: the caller persisted the hash and follows the transaction with reads.
- *Retries*: `read`, `agreed`, `agreed_block` and `verify_all` are retried on `RpcUnavailable`
  only, bounded by attempts and by time; each attempt walks the endpoints again.
  `RpcDisagreement` is not retried here: it leaves at once, and the job logs it and tries again
  at its next interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from adapters.errors import RpcDisagreement, RpcUnavailable, WrongChain
from adapters.evm.errors import RpcError

log = logging.getLogger(__name__)

COOLDOWN_S = 15.0  # seconds a failed endpoint goes to the back of the order
T = TypeVar("T")


class Transport(Protocol):
    """One endpoint: `adapters.evm.rpc.JsonRpc` or a test fake."""

    url: str

    def request(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC request, once; the raw ``result``. Raises `RpcUnavailable` on a
        transport fault, other `ChainError`s for a JSON-RPC error object."""
        ...


def redact(url: str) -> str:
    """``scheme://host[:port]`` of `url`: no user info, path or query (API keys live there)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _host(url: str) -> str:
    return redact(url).split("://", 1)[-1]


@dataclass
class _Endpoint:
    transport: Transport
    index: int  # position in the configured order
    host: str  # host[:port], the only part of the URL ever logged
    verified: bool = False  # eth_chainId matched
    cooling_until: float = 0.0  # clock time; 0 = healthy


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
    """JSON-RPC client of one chain over one or more endpoints (policy: module docstring).

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
        if not transports or not 1 <= quorum <= len(transports):
            raise ValueError("need at least one endpoint and 1 <= quorum <= endpoints")
        if read_attempts < 1 or read_deadline_s <= 0 or cooldown_s < 0:
            raise ValueError("read_attempts >= 1, read_deadline_s > 0, cooldown_s >= 0")
        self.chain, self.chain_id, self.quorum = chain, chain_id, quorum
        self._endpoints = [_Endpoint(t, i, _host(t.url)) for i, t in enumerate(transports)]
        self._read_attempts, self._read_deadline_s = read_attempts, read_deadline_s
        self._cooldown_s, self._clock = cooldown_s, clock
        self._lock = threading.Lock()
        self._wrong: str | None = None  # message of the sticky WrongChain

    @property
    def urls(self) -> tuple[str, ...]:
        """The endpoints' URLs, in configured order."""
        return tuple(e.transport.url for e in self._endpoints)

    # ------------------------------------------------------------------ public calls

    def verify_all(self) -> None:
        """Ask every endpoint not yet verified for ``eth_chainId``; at least one must answer.
        Endpoints that are down are checked later, before their first use.

        Raises:
            WrongChain: an endpoint serves another chain id (names its ``scheme://host:port``);
                sticky, see the module docstring.
            RpcUnavailable: no endpoint could be asked (after the retry policy).
            RpcError: an endpoint answered something that is not a hex quantity.
        """

        def attempt() -> None:
            self._check_wrong()
            last: RpcUnavailable | None = None
            for ep in self._endpoints:
                if not ep.verified:
                    try:
                        self._verify(ep)
                    except RpcUnavailable as exc:
                        self._failed(ep, "eth_chainId", exc)
                        last = exc
            if not any(ep.verified for ep in self._endpoints):
                assert last is not None
                raise last
            if last is not None:
                log.warning(
                    "rpc endpoint unchecked at start chain=%s: checked at first use", self.chain
                )

        self._retry("eth_chainId", attempt)

    def read(self, method: str, params: list[Any]) -> Any:
        """The raw ``result`` of the first endpoint that answers (idempotent reads only).

        Raises:
            RpcUnavailable: no endpoint answered (after the retry policy).
            WrongChain: an endpoint serves another chain id (sticky).
            RpcError, NonceTooLow: the node's JSON-RPC error object, unchanged.
        """
        return self._retry(method, lambda: self._first(method, params))

    def send(self, method: str, params: list[Any]) -> Any:
        """Like `read` but never retried: each endpoint, in order of health, is asked at most
        once until one answers (for ``eth_sendRawTransaction``)."""
        return self._first(method, params)

    def agreed(self, method: str, params: list[Any], key: Callable[[Any], object]) -> Any:
        """SECURITY: the raw ``result`` of `quorum` endpoints whose answers have equal `key`
        (`block_key`, `logs_key`); the first endpoint's answer is returned.

        Raises:
            RpcDisagreement: two of the quorum's answers differ (not retried here).
            RpcUnavailable: fewer than `quorum` endpoints answered (after the retry policy).
            WrongChain, RpcError: as for `read`.
        """

        def attempt() -> Any:
            answers = self._answers(method, params)
            (first_ep, first), want = answers[0], key(answers[0][1])
            for ep, answer in answers[1:]:
                if key(answer) != want:
                    self._disagree(method, first_ep, ep)
            return first

        return self._retry(method, attempt)

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

        def attempt() -> Any:
            answers = self._answers(method, [tag, False])
            if self.quorum == 1:
                return answers[0][1]
            heads: list[tuple[int, _Endpoint, Any, tuple[int | str, str]]] = []
            for ep, block in answers:
                k = block_key(block)
                if k is None or not isinstance(k[0], int):
                    raise RpcError(
                        f"{method}({tag}) from {ep.host} returned {block!r}", chain=self.chain
                    )
                heads.append((k[0], ep, block, k))
            number, low_ep, low_block, low_key = min(heads, key=lambda h: h[0])
            for height, ep, _block, k in heads:
                if ep is low_ep:
                    continue
                at_low = (
                    k
                    if height == number
                    else block_key(self._call(ep, method, [hex(number), False]))
                )
                if at_low != low_key:
                    self._disagree(f"{method}({tag})", low_ep, ep)
            return low_block

        return self._retry(method, attempt)

    # ------------------------------------------------------------------ endpoints

    def _order(self) -> list[_Endpoint]:
        now = self._clock()
        with self._lock:
            return sorted(
                self._endpoints,
                key=lambda e: (
                    e.cooling_until > now,
                    e.cooling_until if e.cooling_until > now else 0.0,
                    e.index,
                ),
            )

    def _check_wrong(self) -> None:
        if self._wrong is not None:
            raise WrongChain(self._wrong, chain=self.chain)

    def _verify(self, ep: _Endpoint) -> None:
        served = ep.transport.request("eth_chainId", [])
        try:
            served_id = int(served, 16)
        except (TypeError, ValueError) as exc:
            raise RpcError(
                f"eth_chainId from {ep.host} returned {served!r}", chain=self.chain
            ) from exc
        if served_id != self.chain_id:
            message = (
                f"{redact(ep.transport.url)} serves chain id {served_id}, "
                f"configured {self.chain_id}"
            )
            with self._lock:
                self._wrong = self._wrong or message
            log.error(
                "rpc endpoint refused chain=%s host=%s served_chain_id=%d",
                self.chain,
                ep.host,
                served_id,
            )
            raise WrongChain(message, chain=self.chain)
        ep.verified = True

    def _call(self, ep: _Endpoint, method: str, params: list[Any]) -> Any:
        """One request to `ep`, chain id checked first; a transport fault cools `ep` down."""
        self._check_wrong()
        try:
            if not ep.verified:
                self._verify(ep)
            result = ep.transport.request(method, params)
        except RpcUnavailable as exc:
            self._failed(ep, method, exc)
            raise
        if ep.cooling_until:
            with self._lock:
                ep.cooling_until = 0.0
            log.info("rpc endpoint answering again chain=%s host=%s", self.chain, ep.host)
        return result

    def _failed(self, ep: _Endpoint, method: str, exc: RpcUnavailable) -> None:
        with self._lock:
            ep.cooling_until = self._clock() + self._cooldown_s
        log.warning(
            "rpc endpoint failed, failing over chain=%s host=%s method=%s cooldown_s=%.0f: %s",
            self.chain,
            ep.host,
            method,
            self._cooldown_s,
            exc,
        )

    def _first(self, method: str, params: list[Any]) -> Any:
        last: RpcUnavailable | None = None
        for ep in self._order():
            try:
                return self._call(ep, method, params)
            except RpcUnavailable as exc:
                last = exc
        assert last is not None
        raise last

    def _answers(self, method: str, params: list[Any]) -> list[tuple[_Endpoint, Any]]:
        """(endpoint, answer) of the first `quorum` endpoints, in order of health, that answer.

        Raises:
            RpcUnavailable: fewer answered (chained from the last fault).
        """
        answers: list[tuple[_Endpoint, Any]] = []
        last: RpcUnavailable | None = None
        for ep in self._order():
            if len(answers) == self.quorum:
                break
            try:
                answers.append((ep, self._call(ep, method, params)))
            except RpcUnavailable as exc:
                last = exc
        if len(answers) < self.quorum:
            if self.quorum == 1 and last is not None:
                raise last
            raise RpcUnavailable(
                f"{method}: {len(answers)} of rpc_quorum {self.quorum} endpoints answered; "
                f"last fault: {last}",
                chain=self.chain,
            ) from last
        return answers

    def _disagree(self, what: str, a: _Endpoint, b: _Endpoint) -> None:
        log.warning(
            "rpc endpoints disagree, not acting chain=%s method=%s hosts=%s,%s",
            self.chain,
            what,
            a.host,
            b.host,
        )
        raise RpcDisagreement(
            f"{what}: {a.host} and {b.host} answered differently", chain=self.chain
        )

    def _retry(self, method: str, fn: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception_type(RpcUnavailable),
            stop=stop_after_attempt(self._read_attempts) | stop_before_delay(self._read_deadline_s),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "rpc read retry chain=%s method=%s attempt=%d error=%s",
                self.chain,
                method,
                state.attempt_number,
                state.outcome.exception() if state.outcome else None,
            ),
        )
        return retrying(fn)
