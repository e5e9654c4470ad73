"""The boundary between Ferry and one btcd node's HTTP JSON-RPC endpoint.

Owns: the httpx client of one node (HTTP basic auth, JSON-RPC 1.0 bodies), the translation of
every transport and JSON-RPC fault into Ferry's error tree, the bounded retry policy of reads,
and typed helpers that turn btcd's answers into Ferry's units (raw bytes, int satoshis, int
sat/vB). Must not interpret chain data (the adapter does), hold keys, nor retry writes: a
broadcast is sent once and the caller, who persisted the transaction first, decides what next.

Translation (observed against btcd v0.26.2, ``rpcserver.go`` and ``mempool/mempool.go``):

    connection refused, timeout, other transport faults         -> RpcUnavailable
    HTTP 401/403 (wrong rpcuser/rpcpass)                        -> ConfigError
    a JSON-RPC error object (btcd sends it with HTTP 200)       -> BtcRpcError(rpc_code, message)
        code -28 (warming up)                                   -> RpcUnavailable
        sendrawtransaction, fee under relay/replacement minimum -> FeeTooLow
        sendrawtransaction, already in mempool or chain         -> success (`send_raw_transaction`)
        sendrawtransaction, any other refusal                   -> TxRejected
    HTTP 5xx or 429 without an error object, non-JSON body      -> RpcUnavailable

Amounts: btcd writes BTC as JSON numbers; they are parsed as `Decimal` (never float) and
converted to int satoshis (1 BTC = 10**8 sat).

Several nodes (``rpc_urls``): `MultiBtcRpc` is a `BtcRpc` whose every call fails over across
one `BtcRpc` per node, and whose best block, block hashes and raw blocks need ``rpc_quorum``
nodes to agree (`adapters.multi_rpc`). Logs and errors name a node by ``host:port`` only.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import ssl
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Self, TypeVar

import httpx
from bitcoin.core import CTransaction, b2lx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from adapters.bitcoin.errors import FeeTooLow, TxRejected
from adapters.errors import ChainError, ConfigError, RetryableChainError, RpcUnavailable
from adapters.multi_rpc import redact

log = logging.getLogger(__name__)
T = TypeVar("T")

SATS_PER_BTC = 100_000_000

# btcjson/jsonrpcerr.go codes Ferry reacts to.
_CODE_OUT_OF_RANGE = -1  # getblockhash above the tip ("Block number out of range")
_CODE_NOT_FOUND = -5  # ErrRPCNoTxInfo / ErrRPCBlockNotFound / ErrRPCInvalidTxVout
_CODE_ALREADY_IN_CHAIN = -27  # ErrRPCTxAlreadyInChain
_CODE_WARMUP = -28  # ErrRPCInWarmup (bitcoind; btcd does not send it but a proxy might)

# Lower-cased substrings of sendrawtransaction refusals meaning "the fee is too low": btcd
# (mempool.validateRelayFeeMet / validateReplacement) first, then Bitcoin Core's wording.
_FEE_MESSAGES = (
    "which is under the required amount",  # fee below the min relay fee (large tx)
    "has insufficient priority",  # free / low-fee tx without relay priority
    "rejected by the rate limiter due to low fees",  # free tx over --limitfreerelay
    "replacement transaction has an insufficient fee rate",
    "replacement transaction has an insufficient absolute fee",
    "min relay fee not met",
    "mempool min fee not met",
    "insufficient fee",  # Core: "insufficient fee, rejecting replacement"
)
# ... meaning "this very transaction is already known" (same txid).
_KNOWN_MESSAGES = (
    "already have transaction",  # btcd: in its mempool (or orphan pool)
    "transaction already exists",  # btcd: in the main chain with unspent outputs
    "txn-already-in-mempool",
    "txn-already-known",
    "transaction already in block chain",
)


class BtcRpcError(ChainError):
    """A JSON-RPC error object btcd returned that has no more specific meaning.

    Attributes:
        rpc_code: the object's ``code`` (btcjson/jsonrpcerr.go), None if absent.
        rpc_message: the object's ``message``.
    """

    code = "btc_rpc_error"

    def __init__(self, message: str = "", *, chain: str = "?", rpc_code: int | None = None) -> None:
        self.rpc_code = rpc_code
        self.rpc_message = message
        super().__init__(f"rpc error {rpc_code}: {message}", chain=chain)


def sats_from_btc(value: Any) -> int:
    """Convert a BTC amount as btcd writes it (JSON number) to int satoshis, exactly.

    Args:
        value: a `Decimal`, int, str or float (a float goes through ``str`` first).

    Returns:
        The amount in satoshis.

    Raises:
        ValueError: not a number, or finer than one satoshi.
    """
    try:
        sats = Decimal(str(value)) * SATS_PER_BTC
    except InvalidOperation as exc:
        raise ValueError(f"not a BTC amount: {value!r}") from exc
    if not sats.is_finite() or sats != sats.to_integral_value():
        raise ValueError(f"BTC amount {value!r} is not a whole number of satoshis")
    return int(sats)


def _translate(error: Any, *, chain: str, method: str) -> ChainError:
    """Map a JSON-RPC ``error`` member onto the error tree (see the module docstring)."""
    if isinstance(error, dict):
        raw_code = error.get("code")
        rpc_code = raw_code if isinstance(raw_code, int) else None
        message = str(error.get("message", ""))
    else:
        rpc_code, message = None, str(error)
    if rpc_code == _CODE_WARMUP:
        return RpcUnavailable(f"{method}: {message}", chain=chain)
    if method == "sendrawtransaction":
        lowered = message.lower()
        if any(text in lowered for text in _FEE_MESSAGES):
            return FeeTooLow(f"{method}: {message}", chain=chain)
        if rpc_code != _CODE_ALREADY_IN_CHAIN and not any(t in lowered for t in _KNOWN_MESSAGES):
            return TxRejected(f"{method}: {message}", chain=chain)
    return BtcRpcError(f"{method}: {message}", chain=chain, rpc_code=rpc_code)


def _is_already_known(exc: BtcRpcError) -> bool:
    lowered = exc.rpc_message.lower()
    return exc.rpc_code == _CODE_ALREADY_IN_CHAIN or any(t in lowered for t in _KNOWN_MESSAGES)


class BtcRpc:
    """Synchronous JSON-RPC client of one btcd (or Bitcoin Core compatible) node.

    Args:
        url: ``http(s)://host:port`` endpoint.
        user, password: the node's ``rpcuser`` / ``rpcpass`` (HTTP basic auth; never logged).
        chain: CAIP-2 id carried by every error raised (``"bip122:<genesis prefix>"``).
        timeout_s: seconds before one HTTP request is abandoned.
        read_attempts: most attempts of a read (>= 1).
        read_deadline_s: no new read attempt starts once this many seconds have passed since
            the first (so a read gives up within about ``read_deadline_s + timeout_s``).
        cert: CA file (btcd's ``rpc.cert``) for an ``https://`` node; None uses the system store.
    """

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        *,
        chain: str,
        timeout_s: float,
        read_attempts: int = 4,
        read_deadline_s: float = 30.0,
        cert: str | None = None,
    ) -> None:
        if read_attempts < 1 or read_deadline_s <= 0 or timeout_s <= 0:
            raise ValueError("read_attempts must be >= 1, read_deadline_s and timeout_s > 0")
        self.url = url
        self.chain = chain
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=cert) if cert else True
        self._client = httpx.Client(
            auth=httpx.BasicAuth(user, password), timeout=timeout_s, verify=verify
        )
        self._ids = itertools.count(1)
        self._read_attempts = read_attempts
        self._read_deadline_s = read_deadline_s

    def close(self) -> None:
        """Close the HTTP connection pool; idempotent."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def request(self, method: str, params: list[Any]) -> Any:
        """Send one JSON-RPC 1.0 request, once; return its ``result`` (JSON numbers as Decimal).

        Raises:
            RpcUnavailable: transport fault, timeout, HTTP 5xx/429 or a non-JSON body.
            ConfigError: HTTP 401/403, the node refused the credentials.
            FeeTooLow, TxRejected: a ``sendrawtransaction`` refusal (see the module docstring).
            BtcRpcError: any other JSON-RPC error object, or a reply without ``result``.
        """
        body = {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": params}
        try:
            response = self._client.post(self.url, json=body)
        except (httpx.RequestError, OSError) as exc:  # connect/read errors and timeouts
            raise RpcUnavailable(f"{method}: {type(exc).__name__}", chain=self.chain) from exc
        status = response.status_code
        if status in (401, 403):
            raise ConfigError(f"{redact(self.url)} refused the RPC credentials (HTTP {status})")
        try:
            reply = json.loads(response.content, parse_float=Decimal)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RpcUnavailable(f"{method}: HTTP {status}, body is not JSON",
                                 chain=self.chain) from exc
        if isinstance(reply, dict) and reply.get("error") is not None:
            raise _translate(reply["error"], chain=self.chain, method=method)
        if status >= 500 or status == 429:
            raise RpcUnavailable(f"{method}: HTTP {status}", chain=self.chain)
        if status != 200 or not isinstance(reply, dict) or "result" not in reply:
            raise BtcRpcError(f"{method}: HTTP {status}, no result", chain=self.chain)
        return reply["result"]

    def request_batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Send several JSON-RPC requests in one HTTP round trip (a JSON array), once.

        Returns:
            Per call, in order, its ``result`` or the `BridgeError` its error object translates
            to (the caller decides which errors are answers, e.g. "out of range").

        Raises:
            RpcUnavailable: transport fault, HTTP 5xx/429, a body that is not a JSON array of
                one reply per call, or replies whose ids do not match.
            ConfigError: HTTP 401/403.
        """
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        body = [{"jsonrpc": "1.0", "id": i, "method": m, "params": p}
                for i, (m, p) in zip(ids, calls, strict=True)]
        what = f"batch of {len(calls)} {calls[0][0]}"
        try:
            response = self._client.post(self.url, json=body)
        except (httpx.RequestError, OSError) as exc:
            raise RpcUnavailable(f"{what}: {type(exc).__name__}", chain=self.chain) from exc
        if response.status_code in (401, 403):
            raise ConfigError(f"{redact(self.url)} refused the RPC credentials "
                              f"(HTTP {response.status_code})")
        try:
            replies = json.loads(response.content, parse_float=Decimal)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RpcUnavailable(f"{what}: body is not JSON", chain=self.chain) from exc
        if not isinstance(replies, list) or len(replies) != len(calls):
            raise RpcUnavailable(f"{what}: not one reply per request", chain=self.chain)
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        out: list[Any] = []
        for i, (method, _) in zip(ids, calls, strict=True):
            reply = by_id.get(i)
            if reply is None:
                raise RpcUnavailable(f"{what}: reply {i} missing", chain=self.chain)
            if reply.get("error") is not None:
                out.append(_translate(reply["error"], chain=self.chain, method=method))
            elif "result" not in reply:
                out.append(BtcRpcError(f"{method}: no result", chain=self.chain))
            else:
                out.append(reply["result"])
        return out

    def raw_blocks(self, first: int, last: int) -> list[tuple[str, bytes]]:
        """Main-chain blocks ``first..last`` as (hash display hex, serialized block), in two
        batched round trips (``getblockhash``, then ``getblock h 0``); retried like `read`.

        Raises:
            RpcUnavailable: a height is above the tip, or a block changed between the two
                batches (the chain moved: ask again); transport faults as `request_batch`.
        """
        def fetch() -> list[tuple[str, bytes]]:
            hashes = self._hash_batch(first, last)
            blocks = self.request_batch([("getblock", [h, 0]) for h in hashes])
            for b in blocks:
                if isinstance(b, BaseException):
                    raise RpcUnavailable(f"getblock {first}..{last}: {b}", chain=self.chain)
            return [(h, bytes.fromhex(b)) for h, b in zip(hashes, blocks, strict=True)]

        return self._retrying(fetch, "getblock")

    def block_hashes(self, first: int, last: int) -> list[str]:
        """Hashes (display hex) of main-chain blocks ``first..last`` in one batched round trip
        (``getblockhash``); retried like `read`.

        Raises:
            RpcUnavailable: a height is above the tip; transport faults as `request_batch`.
        """
        return self._retrying(lambda: self._hash_batch(first, last), "getblockhash")

    def _hash_batch(self, first: int, last: int) -> list[str]:
        hashes = self.request_batch([("getblockhash", [h]) for h in range(first, last + 1)])
        for h in hashes:
            if isinstance(h, BaseException):
                raise RpcUnavailable(f"getblockhash {first}..{last}: {h}", chain=self.chain)
        return [str(h) for h in hashes]

    def read(self, method: str, params: list[Any]) -> Any:
        """`request`, retried on `RetryableChainError` only, bounded by attempts and by time.

        Only for idempotent reads. The last error is re-raised unchanged.
        """
        return self._retrying(lambda: self.request(method, params), method)

    def _retrying(self, fn: Callable[[], T], label: str) -> T:
        """Run `fn` once; only if it fails retryably, again under the bounded tenacity policy
        (the common case pays for no retry machinery)."""
        try:
            return fn()
        except RetryableChainError as first:
            if self._read_attempts <= 1:
                raise
            log.warning("rpc read retry chain=%s method=%s attempt=1 error=%s", self.chain,
                        label, first)
        retrying = Retrying(
            retry=retry_if_exception_type(RetryableChainError),
            stop=stop_after_attempt(max(1, self._read_attempts - 1))
            | stop_before_delay(self._read_deadline_s),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "rpc read retry chain=%s method=%s attempt=%d error=%s",
                self.chain,
                label,
                state.attempt_number + 1,
                state.outcome.exception() if state.outcome else None,
            ),
        )
        return retrying(fn)

    def _read_or_none(self, method: str, params: list[Any], codes: tuple[int, ...]) -> Any:
        """`read`, but None when btcd answers with an error whose code is in `codes`."""
        try:
            return self.read(method, params)
        except BtcRpcError as exc:
            if exc.rpc_code in codes:
                return None
            raise

    # ------------------------------------------------------------------ chain reads

    def best_block(self) -> tuple[int, str]:
        """Height and hash (display hex) of the node's tip (``getbestblock``)."""
        result = self.read("getbestblock", [])
        return int(result["height"]), str(result["hash"])

    def block_count(self) -> int:
        """Height of the node's tip (``getblockcount``; the genesis block is height 0)."""
        return int(self.read("getblockcount", []))

    def block_hash(self, height: int) -> str | None:
        """Hash (display hex) of the main-chain block at `height`, None above the tip.

        Raises:
            ValueError: `height` is negative.
        """
        if height < 0:
            raise ValueError(f"negative block height {height}")
        result = self._read_or_none("getblockhash", [height], (_CODE_OUT_OF_RANGE,))
        return None if result is None else str(result)

    def genesis_hash(self) -> str:
        """Hash (display hex) of the node's block 0, which identifies its network (BIP-122)."""
        result = self.block_hash(0)
        if result is None:
            raise BtcRpcError("getblockhash: no block 0", chain=self.chain)
        return result

    def raw_block(self, block_hash: str) -> bytes:
        """The serialized block (with witnesses, BIP-144) of `block_hash` (``getblock h 0``).

        Raises:
            BtcRpcError: unknown block (rpc_code -5).
        """
        return bytes.fromhex(self.read("getblock", [block_hash, 0]))  # verbosity is an int

    def raw_transaction(self, txid: str) -> bytes | None:
        """The serialized transaction `txid` (mempool or, with ``--txindex``, chain), or None."""
        result = self._read_or_none("getrawtransaction", [txid, 0], (_CODE_NOT_FOUND,))
        return None if result is None else bytes.fromhex(result)

    def transaction_info(self, txid: str) -> dict[str, Any] | None:
        """btcd's verbose view of `txid`, or None when the node does not know it.

        Returns:
            ``getrawtransaction txid 1`` with ``confirmations`` always an int (0 while in the
            mempool), ``blockhash`` present only once mined, and each ``vout`` entry's BTC
            ``value`` replaced by an int ``value_sats``.
        """
        result = self._read_or_none("getrawtransaction", [txid, 1], (_CODE_NOT_FOUND,))
        if result is None:
            return None
        info = dict(result)
        info["confirmations"] = int(info.get("confirmations") or 0)
        outputs = []
        for entry in info.get("vout", []):
            entry = dict(entry)
            entry["value_sats"] = sats_from_btc(entry.pop("value"))
            outputs.append(entry)
        info["vout"] = outputs
        return info

    def mempool_txids(self) -> set[str]:
        """Txids (display hex) in the node's mempool (``getrawmempool``)."""
        return {str(txid) for txid in self.read("getrawmempool", [])}

    def tx_out(self, txid: str, vout: int, include_mempool: bool = True) -> dict[str, Any] | None:
        """The unspent output ``txid:vout``, or None when it is spent in a block or unknown.

        An output of a confirmed transaction that a mempool transaction spends is still
        returned (btcd, like Core, only hides outputs spent in the chain).

        Returns:
            ``{"value_sats": int, "confirmations": int (0 in the mempool),
            "script_pubkey": bytes, "coinbase": bool, "best_block": str}``.
        """
        result = self._read_or_none("gettxout", [txid, vout, include_mempool], (_CODE_NOT_FOUND,))
        if result is None:
            return None
        return {
            "value_sats": sats_from_btc(result["value"]),
            "confirmations": int(result["confirmations"]),
            "script_pubkey": bytes.fromhex(result["scriptPubKey"]["hex"]),
            "coinbase": bool(result["coinbase"]),
            "best_block": str(result["bestblock"]),
        }

    def estimate_fee_sat_vb(self, blocks: int) -> int | None:
        """The node's fee-rate estimate to confirm within `blocks` blocks, in sat/vB (rounded
        up), or None when it has no estimate.

        btcd's ``estimatefee`` answers BTC/kvB, or an error (shown as ``-32600 "Invalid
        request: malformed"``) / ``-1`` until it has observed enough blocks.
        """
        try:
            result = self.read("estimatefee", [blocks])
        except BtcRpcError:
            return None
        if result is None:
            return None
        btc_per_kvb = Decimal(str(result))
        if btc_per_kvb <= 0:
            return None
        return math.ceil(btc_per_kvb * SATS_PER_BTC / 1000)

    # ------------------------------------------------------------------ writes

    def send_raw_transaction(self, raw: bytes) -> str:
        """Broadcast a serialized transaction, once; returns its txid (display hex).

        A transaction the node already has (mempool or chain) counts as sent.

        Raises:
            FeeTooLow: under the min relay fee, or too low to replace a conflicting tx (BIP-125).
            TxRejected: any other refusal (invalid, double spend, non-standard, undecodable).
            RpcUnavailable: the node could not be asked; the tx may or may not have arrived.
        """
        try:
            return str(self.request("sendrawtransaction", [raw.hex()]))
        except BtcRpcError as exc:
            if _is_already_known(exc):
                return str(b2lx(CTransaction.deserialize(raw).GetTxid()))
            raise TxRejected(str(exc), chain=self.chain) from exc

    # ------------------------------------------------------------------ regtest helpers

    def generate(self, blocks: int) -> list[str]:
        """Mine `blocks` blocks paying the node's ``--miningaddr`` (regtest/simnet only).

        Returns:
            The new block hashes (display hex), oldest first.
        """
        return [str(h) for h in self.request("generate", [blocks])]

    def invalidate_block(self, block_hash: str) -> None:
        """Mark `block_hash` and its descendants invalid; the tip moves to its parent and its
        transactions return to the mempool. btcd reports an unknown hash as "malformed"."""
        self.request("invalidateblock", [block_hash])

    def reconsider_block(self, block_hash: str) -> None:
        """Undo `invalidate_block`; the node re-selects the most-work chain."""
        self.request("reconsiderblock", [block_hash])
