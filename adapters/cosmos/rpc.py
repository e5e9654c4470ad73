"""The boundary between Ferry and one Cosmos SDK node: CometBFT RPC (blocks, results, broadcast)
and the SDK's REST API (accounts, balances).

Owns: transport, JSON-RPC 2.0 batching, translation of faults into Ferry's error tree, the bounded
retry of reads. Must not interpret transactions (that is `adapters.cosmos.watcher`) nor retry a
broadcast: the caller persisted the signed bytes first and decides what to do next.

Translation:

    connect errors, timeouts, HTTP 5xx/429, a body that is not JSON   -> RpcUnavailable
    a JSON-RPC error object, an unexpected reply                       -> CosmosRpcError
    a height above the node's latest block                             -> None (an answer)

Several nodes (``rpc_urls``): `MultiCometRpc` is a `CometRpc` whose every CometBFT call fails
over across one `CometRpc` per node, and whose latest height, block hashes and blocks with
their results need ``rpc_quorum`` nodes to agree (`adapters.multi_rpc`). REST reads (accounts,
balances) go to the one ``rest_url``: they do not decide minting.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from adapters.errors import ChainError, RetryableChainError, RpcUnavailable
from adapters.multi_rpc import COOLDOWN_S, EndpointPool, PooledClient

log = logging.getLogger(__name__)
T = TypeVar("T")


class CosmosRpcError(ChainError):
    """The node answered with an error (or something this client cannot read)."""

    code = "cosmos_rpc_error"


@dataclass(frozen=True, slots=True)
class BlockTxs:
    """One block's transactions and their results (DeliverTx codes), in block order."""

    height: int
    hash: str  # lowercase hex
    txs: tuple[bytes, ...]
    codes: tuple[int, ...]


class CometRpc:
    """Client of one node's CometBFT RPC (`rpc_url`) and SDK REST API (`rest_url`).

    Args:
        rpc_url, rest_url: ``http(s)://`` endpoints.
        chain: CAIP-2 id carried by every error.
        timeout_s: seconds before one HTTP request is abandoned.
        read_attempts, read_deadline_s: bounds of a retried read.
    """

    def __init__(self, rpc_url: str, rest_url: str, *, chain: str, timeout_s: float = 10.0,
                 read_attempts: int = 4, read_deadline_s: float = 30.0) -> None:
        self.rpc_url, self.rest_url, self.chain = rpc_url.rstrip("/"), rest_url.rstrip("/"), chain
        self._http = httpx.Client(timeout=timeout_s)
        self._ids = itertools.count(1)
        self._attempts, self._deadline_s = read_attempts, read_deadline_s

    @property
    def url(self) -> str:
        """The CometBFT RPC endpoint (what `adapters.multi_rpc` names the node by)."""
        return self.rpc_url

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ transport
    def _post(self, body: Any, what: str) -> Any:
        try:
            response = self._http.post(self.rpc_url, json=body)
        except (httpx.RequestError, OSError) as exc:
            raise RpcUnavailable(f"{what}: {type(exc).__name__}", chain=self.chain) from exc
        if response.status_code >= 500 and not response.content.startswith((b"{", b"[")):
            raise RpcUnavailable(f"{what}: HTTP {response.status_code}", chain=self.chain)
        if response.status_code == 429:
            raise RpcUnavailable(f"{what}: rate limited", chain=self.chain)
        try:
            return response.json()
        except ValueError as exc:
            raise RpcUnavailable(f"{what}: body is not JSON", chain=self.chain) from exc

    def request(self, method: str, params: dict[str, Any]) -> Any:
        """One JSON-RPC 2.0 call, once; its ``result``. Raises as the module docstring says."""
        reply = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                            "params": params}, method)
        if not isinstance(reply, dict):
            raise CosmosRpcError(f"{method}: reply is not an object", chain=self.chain)
        if reply.get("error") is not None:
            raise CosmosRpcError(f"{method}: {reply['error']}", chain=self.chain)
        return reply.get("result")

    def batch(self, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        """Several calls in one round trip; per call its result or a `CosmosRpcError`."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        replies = self._post([{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                              for i, (m, p) in zip(ids, calls, strict=True)],
                             f"batch of {len(calls)} {calls[0][0]}")
        if isinstance(replies, dict) and len(calls) == 1:
            replies = [replies]  # CometBFT answers a batch of one with a bare object
        if not isinstance(replies, list):
            raise RpcUnavailable("batch reply is not a list", chain=self.chain)
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        out: list[Any] = []
        for i, (method, _) in zip(ids, calls, strict=True):
            reply = by_id.get(i)
            if reply is None:
                raise RpcUnavailable(f"batch: no reply to {method}", chain=self.chain)
            if reply.get("error") is not None:
                out.append(CosmosRpcError(f"{method}: {reply['error']}", chain=self.chain))
            else:
                out.append(reply.get("result"))
        return out

    def _read(self, fn: Callable[[], T], label: str) -> T:
        try:
            return fn()
        except RetryableChainError as first:
            if self._attempts <= 1:
                raise
            log.warning("rpc read retry chain=%s call=%s error=%s", self.chain, label, first)
        return Retrying(
            retry=retry_if_exception_type(RetryableChainError),
            stop=stop_after_attempt(max(1, self._attempts - 1))
            | stop_before_delay(self._deadline_s),
            wait=wait_exponential(multiplier=0.2, max=2.0), reraise=True)(fn)

    def _rest(self, path: str) -> dict[str, Any] | None:
        try:
            response = self._http.get(f"{self.rest_url}{path}")
        except (httpx.RequestError, OSError) as exc:
            raise RpcUnavailable(f"GET {path}: {type(exc).__name__}", chain=self.chain) from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 500 or response.status_code == 429:
            raise RpcUnavailable(f"GET {path}: HTTP {response.status_code}", chain=self.chain)
        try:
            body = response.json()
        except ValueError as exc:
            raise RpcUnavailable(f"GET {path}: body is not JSON", chain=self.chain) from exc
        if response.status_code != 200:
            if "not found" in str(body.get("message", "")).lower():
                return None
            raise CosmosRpcError(f"GET {path}: HTTP {response.status_code} {body}",
                                 chain=self.chain)
        return body if isinstance(body, dict) else None

    # ------------------------------------------------------------------ reads
    def status(self) -> tuple[str, int, str]:
        """(chain id, latest height, latest block hash lowercase hex)."""
        result = self._read(lambda: self.request("status", {}), "status")
        info = result["sync_info"]
        return (str(result["node_info"]["network"]), int(info["latest_block_height"]),
                str(info["latest_block_hash"]).lower())

    def block_hash(self, height: int) -> str | None:
        """Hash (lowercase hex) of the block at `height`, None above the latest block."""
        [(_, block_hash)] = self.headers(height, height) or [(height, None)]
        return block_hash

    def headers(self, first: int, last: int) -> list[tuple[int, str | None]]:
        """(height, block hash or None above the tip) for ``first..last``, via CometBFT's
        ``blockchain`` (at most 20 block metas per call), batched."""
        def fetch() -> list[tuple[int, str | None]]:
            chunks = [(lo, min(lo + 19, last)) for lo in range(first, last + 1, 20)]
            replies = self.batch([("blockchain", {"minHeight": str(lo), "maxHeight": str(hi)})
                                  for lo, hi in chunks])
            hashes: dict[int, str] = {}
            for r in replies:
                if isinstance(r, CosmosRpcError):
                    continue  # a range entirely above the tip
                for meta in r.get("block_metas") or []:
                    hashes[int(meta["header"]["height"])] = str(meta["block_id"]["hash"]).lower()
            return [(h, hashes.get(h)) for h in range(first, last + 1)]
        return self._read(fetch, "blockchain")

    def blocks(self, first: int, last: int) -> list[BlockTxs]:
        """Blocks ``first..last`` with their transactions and DeliverTx result codes, in two
        batched round trips (``block``, ``block_results``).

        Raises:
            RpcUnavailable: a height above the tip, or an unreadable reply (ask again).
        """
        def fetch() -> list[BlockTxs]:
            heights = range(first, last + 1)
            blocks = self.batch([("block", {"height": str(h)}) for h in heights])
            results = self.batch([("block_results", {"height": str(h)}) for h in heights])
            out = []
            for h, b, r in zip(heights, blocks, results, strict=True):
                if isinstance(b, CosmosRpcError) or isinstance(r, CosmosRpcError):
                    raise RpcUnavailable(f"block {h} not available: {b if isinstance(b, Exception) else r}",
                                         chain=self.chain)
                txs = tuple(base64.b64decode(t) for t in (b["block"]["data"].get("txs") or []))
                codes = tuple(int(x.get("code", 0)) for x in (r.get("txs_results") or []))
                if len(codes) != len(txs):
                    raise RpcUnavailable(f"block {h}: {len(txs)} txs but {len(codes)} results",
                                         chain=self.chain)
                out.append(BlockTxs(h, str(b["block_id"]["hash"]).lower(), txs, codes))
            return out
        return self._read(fetch, "block")

    def tx(self, txhash: str) -> dict[str, Any] | None:
        """The included transaction `txhash` (hex): ``{"height", "code", "log", "raw"}`` (raw:
        the TxRaw bytes), or None."""
        try:
            result = self._read(lambda: self.request(
                "tx", {"hash": base64.b64encode(bytes.fromhex(txhash)).decode()}), "tx")
        except CosmosRpcError as exc:
            if "not found" in str(exc).lower():
                return None
            raise
        return {"height": int(result["height"]), "code": int(result["tx_result"].get("code", 0)),
                "log": str(result["tx_result"].get("log", "")),
                "raw": base64.b64decode(result.get("tx", ""))}

    def tx_search(self, query: str, per_page: int = 10) -> list[bytes]:
        """Raw transactions matching a CometBFT event query (first page), e.g.
        ``tx.acc_seq='<address>/<sequence>'``."""
        result = self._read(lambda: self.request(
            "tx_search", {"query": query, "page": "1", "per_page": str(per_page)}), "tx_search")
        return [base64.b64decode(t["tx"]) for t in result.get("txs") or []]

    def account(self, address: str) -> tuple[int, int] | None:
        """(account number, sequence) of `address`, or None if the chain has no such account."""
        body = self._read(lambda: self._rest(f"/cosmos/auth/v1beta1/accounts/{address}"),
                          "account")
        if body is None:
            return None
        acct = body["account"]
        base = acct.get("base_account", acct)  # vesting or module accounts wrap it
        return int(base.get("account_number", 0)), int(base.get("sequence", 0))

    def balance(self, address: str, denom: str) -> int:
        """Balance of `address` in `denom`, base units."""
        body = self._read(lambda: self._rest(
            f"/cosmos/bank/v1beta1/balances/{address}/by_denom?denom={denom}"), "balance")
        return 0 if body is None else int(body["balance"]["amount"])

    # ------------------------------------------------------------------ writes
    def broadcast_tx_sync(self, raw: bytes) -> tuple[int, str, str]:
        """Send a signed TxRaw once (CheckTx only): (code, txhash uppercase hex, log)."""
        result = self.request("broadcast_tx_sync", {"tx": base64.b64encode(raw).decode()})
        return int(result.get("code", 0)), str(result["hash"]).upper(), str(result.get("log", ""))


def blocks_digest(blocks: Sequence[BlockTxs]) -> str:
    """What two nodes' answers of `CometRpc.blocks` must share: SHA-256 (hex) over each block's
    height, hash, transactions (each by its SHA-256) and result codes, in order: all the
    adapter reads of them. The block hash alone would not do: it commits to the transactions
    but a block's results are committed only in the next header (``last_results_hash``)."""
    digest = hashlib.sha256()
    for block in blocks:
        digest.update(f"{block.height}:{block.hash}:{len(block.txs)}:".encode())
        for raw in block.txs:
            digest.update(hashlib.sha256(raw).digest())
        digest.update((",".join(str(c) for c in block.codes) + ";").encode())
    return digest.hexdigest()


class MultiCometRpc(PooledClient[CometRpc], CometRpc):
    """A `CometRpc` over one or more nodes of one chain (policy: `adapters.multi_rpc`).

    Every CometBFT call goes to one of `nodes` (one `CometRpc` per node, each trying once); it
    has no HTTP client of its own. Failover: every call; ``tx``, ``tx_search`` read the first
    node that answers, `request`, `batch` and `broadcast_tx_sync` ask each node at most once.
    SECURITY: agreement of ``quorum`` nodes for the reads that decide minting: `status` (the
    lowest of their latest heights, whose hash the others must have there), `block_hash`,
    `headers` and `blocks` (compared by `blocks_digest`). A node is refused (`WrongChain`,
    sticky) unless its ``/status`` ``node_info.network`` is `chain_id`, checked by
    `verify_all` or before its first other call.

    Args:
        nodes: one client per node, in configured order (the first is preferred), built with
            ``read_attempts=1``: the retries are this client's.
        chain_id: the chain id every node must serve.
        rest: the client whose REST API (``rest_url``) serves `account` and `balance`, with its
            own retry policy; None uses the first node's.
        quorum, read_attempts, read_deadline_s, cooldown_s, clock: see
            `adapters.multi_rpc.EndpointPool`.
    """

    def __init__(self, nodes: Sequence[CometRpc], *, chain_id: str, rest: CometRpc | None = None,
                 quorum: int = 1, read_attempts: int = 4, read_deadline_s: float = 30.0,
                 cooldown_s: float = COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # No CometRpc.__init__: this client has no HTTP connection of its own; every method
        # that would use one is overridden to go through `pool` (or `rest`).
        first = nodes[0]
        self.rpc_url, self.rest_url, self.chain = first.rpc_url, first.rest_url, first.chain
        self._rest_client = rest or nodes[0]
        self.pool: EndpointPool[CometRpc] = EndpointPool(
            nodes, chain=self.chain, identity=lambda n: n.status()[0], expected=chain_id,
            identity_label="status", what="chain id", quorum=quorum,
            read_attempts=read_attempts, read_deadline_s=read_deadline_s,
            cooldown_s=cooldown_s, clock=clock, logger=log)

    def close(self) -> None:
        super().close()
        self._rest_client.close()  # closing twice (rest is a node) is harmless

    def request(self, method: str, params: dict[str, Any]) -> Any:
        return self.pool.send(lambda n: n.request(method, params), method)

    def batch(self, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        return self.pool.send(lambda n: n.batch(calls), "batch")

    def status(self) -> tuple[str, int, str]:
        """SECURITY: (chain id, latest height, its hash) of the lowest of ``rpc_quorum``
        nodes' latest blocks, whose hash every other node of the quorum has at that height."""
        return self.pool.agreed_tip(lambda n: n.status(), lambda _host, s: (s[1], s[2]),
                                    lambda n, height: n.block_hash(height), "status")

    def block_hash(self, height: int) -> str | None:
        """SECURITY: the hash at `height` ``rpc_quorum`` nodes agree on (None above the tip
        of all of them; above only some of them is a disagreement)."""
        return self.pool.agreed(lambda n: n.block_hash(height), lambda h: h, "blockchain")

    def headers(self, first: int, last: int) -> list[tuple[int, str | None]]:
        """SECURITY: `CometRpc.headers` as ``rpc_quorum`` nodes agree on it."""
        return self.pool.agreed(lambda n: n.headers(first, last), tuple, "blockchain")

    def blocks(self, first: int, last: int) -> list[BlockTxs]:
        """SECURITY: `CometRpc.blocks` (both batches from one node) as ``rpc_quorum`` nodes
        agree on it (`blocks_digest`)."""
        return self.pool.agreed(lambda n: n.blocks(first, last), blocks_digest, "block")

    def tx(self, txhash: str) -> dict[str, Any] | None:
        return self.pool.read(lambda n: n.tx(txhash), "tx")

    def tx_search(self, query: str, per_page: int = 10) -> list[bytes]:
        return self.pool.read(lambda n: n.tx_search(query, per_page), "tx_search")

    def account(self, address: str) -> tuple[int, int] | None:
        return self._rest_client.account(address)

    def balance(self, address: str, denom: str) -> int:
        return self._rest_client.balance(address, denom)

    def broadcast_tx_sync(self, raw: bytes) -> tuple[int, str, str]:
        return self.pool.send(lambda n: n.broadcast_tx_sync(raw), "broadcast_tx_sync")
