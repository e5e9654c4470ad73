"""Several RPC endpoints of one chain behind one client: the chain-neutral part, shared by the
EVM (`adapters.evm.multi`), Bitcoin (`adapters.bitcoin.multi.MultiBtcRpc`) and Cosmos
(`adapters.cosmos.rpc.MultiCometRpc`) clients.

Owns: `EndpointPool`, the endpoint list of one chain: each endpoint's health (a cool-down after
a transport fault) and identity check (chain id, genesis hash), the bounded retry of reads
across endpoints, and the comparison of ``quorum`` endpoints' answers by a key the chain's
client gives. Also the config helpers of the ``rpc_url`` / ``rpc_urls`` / ``rpc_quorum`` keys.
Must not know any chain's protocol (a read is a callable run on one endpoint's client), retry
a broadcast, or log a URL's path or credentials (provider API keys live there): logs name
``host:port`` only.

Policy:

- *One endpoint per logical read*: a read is a callable given one endpoint's client, so the
  requests it makes (a batch, or two related batches) all go to that endpoint.
- *Order of health*: endpoints not cooling down, in configured order, then those cooling down,
  by the end of their cool-down. An endpoint whose call raised `RpcUnavailable` (transport
  fault, timeout, HTTP 5xx/429, rate limit) cools down for ``cooldown_s``: it is only asked
  again before then when the healthy ones cannot serve. Any other error (a JSON-RPC error
  object, a malformed answer) is the node's answer, not a fault: it is raised, never failed
  over.
- *Identity*: an endpoint is asked its identity (``identity``: chain id, genesis hash) before
  its first other call. `verify_all` asks every endpoint at start; one that is down then is
  checked at its first use. SECURITY: a wrong identity is `WrongChain` and sticky: every later
  call of this pool raises it too, since the configuration points at another chain (restart
  with a fixed config).
- `read`: the first endpoint, in order of health, that answers. For reads that do not decide
  minting.
- `agreed` / `agreed_tip`: SECURITY: ``quorum`` endpoints, in order of health, must each answer
  and their answers' keys must be equal, else `RpcDisagreement` and nothing is returned. Fewer
  than ``quorum`` answering is `RpcUnavailable`. For a moving tip (head, ``latest``) the lowest
  of the quorum's tips is the answer, and each other endpoint's key at that height must match.
- `send`: the first endpoint that accepts, each asked at most once, never retried (a timeout
  may still have delivered it; re-sending the same bytes later is safe).
- *Health for metrics*: every pool alive in the process is listed by `live_pools`; its
  `health` is a snapshot per endpoint (``host:port``, up, circuit open = cooling down, faults
  counted). Exporters (`adapters.rpc_health`) read it at scrape time; nothing here imports them.
- *Retries*: `read`, `agreed`, `agreed_tip` and `verify_all` are retried on `RpcUnavailable`
  only, bounded by attempts and by time; each attempt walks the endpoints again.
  `RpcDisagreement` is not retried here: it leaves at once, and the job logs it and tries again
  at its next interval.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import tenacity

from adapters.errors import RpcDisagreement, RpcUnavailable, WrongChain

log = logging.getLogger(__name__)

COOLDOWN_S = 15.0  # seconds a failed endpoint goes to the back of the order
T = TypeVar("T")


class HasUrl(Protocol):
    """One endpoint's client: anything with the endpoint's URL."""

    @property
    def url(self) -> str: ...


C = TypeVar("C", bound=HasUrl)


class ClosingClient(HasUrl, Protocol):
    """One endpoint's client that holds a connection pool."""

    def close(self) -> None: ...


K = TypeVar("K", bound=ClosingClient)


def redact(url: str) -> str:
    """``scheme://host[:port]`` of `url`: no user info, path or query (API keys live there)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def host_of(url: str) -> str:
    """``host[:port]`` of `url`, the only part of an endpoint's URL that is ever logged."""
    return redact(url).split("://", 1)[-1]


# ---------------------------------------------------------------------------- config helpers


def distinct_urls(first: str, more: Iterable[str]) -> tuple[str, ...]:
    """`first` then `more`, without repeats (a trailing ``/`` is ignored when comparing). Two
    URLs of the same node still count twice: the operator must point them at independent nodes
    for ``rpc_quorum`` to mean anything."""
    seen: set[str] = set()
    out: list[str] = []
    for url in (first, *more):
        if url.rstrip("/") not in seen:
            seen.add(url.rstrip("/"))
            out.append(url)
    return tuple(out)


def check_quorum(quorum: int, endpoints: Sequence[str]) -> None:
    """Raise `ValueError` (a one-line config error) unless ``quorum <= len(endpoints)``."""
    if quorum > len(endpoints):
        raise ValueError(f"rpc_quorum {quorum} exceeds the {len(endpoints)} distinct RPC "
                         "endpoint(s) (rpc_url + rpc_urls)")


# ---------------------------------------------------------------------------- pool


@dataclass
class Endpoint(Generic[C]):
    """One endpoint of a pool and its health."""

    client: C
    index: int  # position in the configured order
    host: str  # host[:port], the only part of the URL ever logged
    verified: bool = False  # identity matched
    cooling_until: float = 0.0  # clock time; 0 = healthy
    faults: int = 0  # transport faults since start (each one opened the circuit)


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """One endpoint as `EndpointPool.health` saw it.

    Attributes:
        chain: CAIP-2 id of the pool.
        host: ``host[:port]`` (never a path or credentials).
        up: not cooling down and the pool has not found a wrong chain.
        circuit_open: cooling down after a transport fault (asked only when no other answers).
        faults: transport faults since the pool was made.
    """

    chain: str
    host: str
    up: bool
    circuit_open: bool
    faults: int


_LIVE: weakref.WeakSet[EndpointPool[Any]] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


def live_pools() -> list[EndpointPool[Any]]:
    """Every `EndpointPool` still referenced in this process (for metrics exporters)."""
    with _LIVE_LOCK:
        return list(_LIVE)


class EndpointPool(Generic[C]):
    """The endpoints of one chain (policy: module docstring).

    Args:
        clients: one client per endpoint, in configured order (the first is preferred). Each
            call must raise `RpcUnavailable` for a transport fault and try only once.
        chain: CAIP-2 id carried by every error raised.
        identity: what an endpoint serves (one call on its client), e.g. its chain id.
        expected: what `identity` must return.
        identity_label: the request `identity` makes, for logs (``eth_chainId``).
        what: names the identity in the `WrongChain` message (``chain id``, ``genesis``).
        quorum: endpoints that must agree in `agreed` and `agreed_tip`, 1..len(clients).
        read_attempts: most attempts of a read (>= 1); an attempt asks every endpoint needed.
        read_deadline_s: no new attempt starts this many seconds after the first.
        cooldown_s: seconds a failed endpoint waits at the back of the order.
        clock: monotonic seconds (injected by tests).
        logger: where failover, disagreement and refusal are logged (the chain's module).

    Raises:
        ValueError: no client, or a bound out of range.
    """

    def __init__(
        self,
        clients: Sequence[C],
        *,
        chain: str,
        identity: Callable[[C], object],
        expected: object,
        identity_label: str,
        what: str = "chain id",
        quorum: int = 1,
        read_attempts: int = 4,
        read_deadline_s: float = 30.0,
        cooldown_s: float = COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        if not clients or not 1 <= quorum <= len(clients):
            raise ValueError("need at least one endpoint and 1 <= quorum <= endpoints")
        if read_attempts < 1 or read_deadline_s <= 0 or cooldown_s < 0:
            raise ValueError("read_attempts >= 1, read_deadline_s > 0, cooldown_s >= 0")
        self.chain, self.quorum = chain, quorum
        self._identity, self._expected = identity, expected
        self._identity_label, self._what = identity_label, what
        self._endpoints = [Endpoint(c, i, host_of(c.url)) for i, c in enumerate(clients)]
        self._read_attempts, self._read_deadline_s = read_attempts, read_deadline_s
        self._cooldown_s, self._clock, self._log = cooldown_s, clock, logger
        self._lock = threading.Lock()
        self._wrong: str | None = None  # message of the sticky WrongChain
        with _LIVE_LOCK:
            _LIVE.add(self)

    @property
    def urls(self) -> tuple[str, ...]:
        """The endpoints' URLs, in configured order."""
        return tuple(e.client.url for e in self._endpoints)

    @property
    def clients(self) -> tuple[C, ...]:
        """The endpoints' clients, in configured order."""
        return tuple(e.client for e in self._endpoints)

    def health(self) -> list[EndpointHealth]:
        """A snapshot of every endpoint, in configured order (no call is made)."""
        now = self._clock()
        with self._lock:
            return [EndpointHealth(self.chain, e.host, self._wrong is None and
                                   e.cooling_until <= now, e.cooling_until > now, e.faults)
                    for e in self._endpoints]

    # ------------------------------------------------------------------ public calls

    def verify_all(self) -> None:
        """Ask every endpoint not yet verified for its identity; at least one must answer.
        Endpoints that are down are checked later, before their first use.

        Raises:
            WrongChain: an endpoint serves another chain (names its ``scheme://host:port``);
                sticky, see the module docstring.
            RpcUnavailable: no endpoint could be asked (after the retry policy).
            ChainError: an endpoint's identity answer was malformed (raised by `identity`).
        """

        def attempt() -> None:
            self._check_wrong()
            last: RpcUnavailable | None = None
            for ep in self._endpoints:
                if not ep.verified:
                    try:
                        self._verify(ep)
                    except RpcUnavailable as exc:
                        self._failed(ep, self._identity_label, exc)
                        last = exc
            if not any(ep.verified for ep in self._endpoints):
                assert last is not None
                raise last
            if last is not None:
                self._log.warning(
                    "rpc endpoint unchecked at start chain=%s: checked at first use", self.chain
                )

        self._retry(self._identity_label, attempt)

    def read(self, fn: Callable[[C], T], label: str) -> T:
        """`fn` run on the first endpoint, in order of health, that answers (idempotent reads).

        Raises:
            RpcUnavailable: no endpoint answered (after the retry policy).
            WrongChain: an endpoint serves another chain (sticky).
            ChainError: whatever else `fn` raised (the node's answer), unchanged.
        """
        return self._retry(label, lambda: self._first(fn, label))

    def send(self, fn: Callable[[C], T], label: str) -> T:
        """Like `read` but never retried: each endpoint, in order of health, is asked at most
        once until one answers (broadcasts)."""
        return self._first(fn, label)

    def agreed(self, fn: Callable[[C], T], key: Callable[[T], object], label: str, *,
               check: Callable[[C], object] | None = None) -> T:
        """SECURITY: the answer of `fn` on `quorum` endpoints whose answers have equal `key`;
        the first endpoint's answer is returned.

        Args:
            fn: the read, run on the first endpoint that answers.
            key: what two answers must share (a normalisation, or a digest).
            label: the read's name, for logs and errors.
            check: run on the other quorum endpoints instead of ``key(fn(client))``, when the
                key can be read more cheaply (block hashes instead of whole blocks).

        Raises:
            RpcDisagreement: two of the quorum's keys differ (not retried here).
            RpcUnavailable: fewer than `quorum` endpoints answered (after the retry policy).
            WrongChain, ChainError: as for `read`.
        """

        def attempt() -> T:
            answers = self._answers(fn, label, check)
            (first_ep, first), want = answers[0], key(answers[0][1])
            for ep, answer in answers[1:]:
                if (answer if check is not None else key(answer)) != want:
                    self._disagree(label, first_ep, ep)
            return first  # type: ignore[no-any-return]

        return self._retry(label, attempt)

    def agreed_tip(self, fetch: Callable[[C], T], parse: Callable[[str, T], tuple[int, object]],
                   at: Callable[[C, int], object], label: str) -> T:
        """SECURITY: the tip (head, ``latest``) that `quorum` endpoints agree on: the lowest of
        their tips, whose key every other endpoint of the quorum must have at that height.

        Args:
            fetch: reads one endpoint's tip.
            parse: ``(host, tip) -> (height, key)``; raises a `ChainError` for a malformed tip
                (not called when quorum is 1).
            at: ``(client, height) -> key`` of that endpoint's block at `height` (None if it has
                none: a disagreement).
            label: the read's name, for logs and errors.

        Raises:
            RpcDisagreement: an endpoint has another key at that height, or no block there.
            RpcUnavailable, WrongChain, ChainError: as for `agreed`.
        """

        def attempt() -> T:
            answers = self._answers(fetch, label)
            if self.quorum == 1:
                return answers[0][1]  # type: ignore[no-any-return]
            tips = [(*parse(ep.host, tip), ep, tip) for ep, tip in answers]
            low, low_key, low_ep, low_tip = min(tips, key=lambda t: t[0])
            for height, k, ep, _tip in tips:
                if ep is low_ep:
                    continue
                got = k if height == low else self._call(ep, lambda c: at(c, low), label)
                if got != low_key:
                    self._disagree(label, low_ep, ep)
            return low_tip  # type: ignore[no-any-return]

        return self._retry(label, attempt)

    # ------------------------------------------------------------------ endpoints

    def _order(self) -> list[Endpoint[C]]:
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

    def _verify(self, ep: Endpoint[C]) -> None:
        served = self._identity(ep.client)
        if served != self._expected:
            message = (f"{redact(ep.client.url)} serves {self._what} {served}, "
                       f"configured {self._expected}")
            with self._lock:
                self._wrong = self._wrong or message
            self._log.error("rpc endpoint refused chain=%s host=%s served %s %s", self.chain,
                            ep.host, self._what, served)
            raise WrongChain(message, chain=self.chain)
        ep.verified = True

    def _call(self, ep: Endpoint[C], fn: Callable[[C], T], label: str) -> T:
        """`fn` on `ep`, identity checked first; a transport fault cools `ep` down."""
        self._check_wrong()
        try:
            if not ep.verified:
                self._verify(ep)
            result = fn(ep.client)
        except RpcUnavailable as exc:
            self._failed(ep, label, exc)
            raise
        if ep.cooling_until:
            with self._lock:
                ep.cooling_until = 0.0
            self._log.info("rpc endpoint answering again chain=%s host=%s", self.chain, ep.host)
        return result

    def _failed(self, ep: Endpoint[C], label: str, exc: RpcUnavailable) -> None:
        with self._lock:
            ep.cooling_until = self._clock() + self._cooldown_s
            ep.faults += 1
        self._log.warning(
            "rpc endpoint failed, failing over chain=%s host=%s method=%s cooldown_s=%.0f: %s",
            self.chain, ep.host, label, self._cooldown_s, exc,
        )

    def _first(self, fn: Callable[[C], T], label: str) -> T:
        last: RpcUnavailable | None = None
        for ep in self._order():
            try:
                return self._call(ep, fn, label)
            except RpcUnavailable as exc:
                last = exc
        assert last is not None
        raise last

    def _answers(self, fn: Callable[[C], Any], label: str,
                 rest: Callable[[C], Any] | None = None) -> list[tuple[Endpoint[C], Any]]:
        """(endpoint, answer) of the first `quorum` endpoints, in order of health, that answer:
        the first answers `fn`, the others `rest` (default `fn`).

        Raises:
            RpcUnavailable: fewer answered (chained from the last fault).
        """
        answers: list[tuple[Endpoint[C], Any]] = []
        last: RpcUnavailable | None = None
        for ep in self._order():
            if len(answers) == self.quorum:
                break
            try:
                answers.append((ep, self._call(ep, rest if answers and rest else fn, label)))
            except RpcUnavailable as exc:
                last = exc
        if len(answers) < self.quorum:
            if self.quorum == 1 and last is not None:
                raise last
            raise RpcUnavailable(
                f"{label}: {len(answers)} of rpc_quorum {self.quorum} endpoints answered; "
                f"last fault: {last}",
                chain=self.chain,
            ) from last
        return answers

    def _disagree(self, what: str, a: Endpoint[C], b: Endpoint[C]) -> None:
        self._log.warning(
            "rpc endpoints disagree, not acting chain=%s method=%s hosts=%s,%s",
            self.chain, what, a.host, b.host,
        )
        raise RpcDisagreement(
            f"{what}: {a.host} and {b.host} answered differently", chain=self.chain
        )

    def _retry(self, label: str, fn: Callable[[], T]) -> T:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RpcUnavailable),
            stop=tenacity.stop_after_attempt(self._read_attempts)
            | tenacity.stop_before_delay(self._read_deadline_s),
            wait=tenacity.wait_exponential(multiplier=0.2, max=2.0),
            reraise=True,
            before_sleep=lambda state: self._log.warning(
                "rpc read retry chain=%s method=%s attempt=%d error=%s",
                self.chain,
                label,
                state.attempt_number,
                state.outcome.exception() if state.outcome else None,
            ),
        )
        return retrying(fn)


class PooledClient(Generic[K]):
    """Base of a chain client whose every call goes through `pool`, one `K` per endpoint
    (`adapters.bitcoin.multi.MultiBtcRpc`, `adapters.cosmos.rpc.MultiCometRpc`)."""

    pool: EndpointPool[K]

    def verify_all(self) -> None:
        """Check every endpoint's identity (chain id, genesis hash); an endpoint down now is
        checked before its first use.

        Raises:
            WrongChain: an endpoint serves another chain (names its ``scheme://host:port``);
                sticky.
            RpcUnavailable: no endpoint could be asked (after the retry policy).
        """
        self.pool.verify_all()

    def close(self) -> None:
        """Close every endpoint's client."""
        for client in self.pool.clients:
            client.close()
