"""The boundary between Ferry and one Solana JSON-RPC endpoint (https://solana.com/docs/rpc).

Owns: the solana-py `AsyncClient` and the one private event-loop thread that drives it for the
synchronous adapter, translation of faults into Ferry's error tree, the bounded retry of reads.
Must not interpret transactions (that is `adapters.solana.watcher`) nor retry a broadcast:
the caller persisted the signed bytes first and decides what to do next.

Translation:

    connect errors, timeouts, HTTP errors (solana-py `SolanaRpcException`),
    a body solders cannot parse (not JSON, not the answer's shape),
    node unhealthy / internal error / block or
    status not available yet / min context slot not reached        -> RpcUnavailable
    any other JSON-RPC error object, a call after `close`            -> SolanaRpcError
    sendTransaction refused                                           -> BroadcastRefused
                                                                         (``reason`` says why)

Reads are retried (tenacity, `RpcUnavailable` only, bounded by ``read_attempts`` and
``read_deadline_s``); everything else is raised at once. All reads that decide minting or
releases take an explicit commitment (``finalized`` unless a method says otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment, Confirmed, Finalized, Processed
from solana.rpc.core import RPCException, RPCNoResultException
from solana.rpc.models import TokenAccountOpts, TxOpts
from solders.errors import SerdeJSONError
from solders.pubkey import Pubkey
from solders.rpc import errors as rpc_errors
from solders.signature import Signature
from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    TransactionDetails,
    TransactionErrorFieldless,
)
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from adapters.errors import RpcUnavailable
from adapters.solana.errors import BroadcastRefused, SolanaRpcError

log = logging.getLogger(__name__)
T = TypeVar("T")

PAGE_LIMIT = 1000  # getSignaturesForAddress: most signatures per call
CONCURRENCY = 8  # requests in flight at once for a gathered read
# JSON-RPC errors that mean "not yet / not now" rather than "no": worth retrying.
_TRANSIENT = (rpc_errors.NodeUnhealthyMessage, rpc_errors.BlockNotAvailableMessage,
              rpc_errors.BlockStatusNotAvailableYetMessage,
              rpc_errors.MinContextSlotNotReachedMessage, rpc_errors.InternalErrorMessage)
_SKIPPED = (rpc_errors.SlotSkippedMessage, rpc_errors.LongTermStorageSlotSkippedMessage)
ALREADY_PROCESSED, BLOCKHASH_NOT_FOUND, REFUSED = "already_processed", "blockhash_not_found", \
    "refused"
COMMITMENTS: dict[str, Commitment] = {"processed": Processed, "confirmed": Confirmed,
                                      "finalized": Finalized}


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """An account as ``getAccountInfo`` (base64) shows it: owner program (base58), data bytes,
    lamports."""

    owner: str
    data: bytes
    lamports: int


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """One ``getSignaturesForAddress`` entry: signature (base58), slot, whether it failed."""

    signature: str
    slot: int
    failed: bool


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    """One ``getSignatureStatuses`` entry: slot, whether it failed, ``confirmationStatus``
    (``processed`` / ``confirmed`` / ``finalized``)."""

    slot: int
    failed: bool
    commitment: str


class SolanaRpc:
    """Client of one Solana JSON-RPC endpoint, synchronous, thread-safe.

    Each call runs a coroutine of one `AsyncClient` on this client's private event loop thread
    and waits for it. `close` stops both.

    Args:
        url: the ``http(s)://`` endpoint.
        chain: CAIP-2 id carried by every error.
        timeout_s: seconds before one HTTP request is abandoned.
        read_attempts, read_deadline_s: bounds of a retried read.
    """

    def __init__(self, url: str, *, chain: str, timeout_s: float = 10.0, read_attempts: int = 4,
                 read_deadline_s: float = 30.0) -> None:
        self.url, self.chain = url, chain
        self._attempts, self._deadline_s = read_attempts, read_deadline_s
        self._wait_s = max(60.0, 10 * timeout_s)  # a whole gathered call, safety net only
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"solana-rpc {chain}")
        self._thread.start()
        self._closed = False

        async def make() -> AsyncClient:
            return AsyncClient(url, commitment=Finalized, timeout=timeout_s,
                               max_transport_retries=0)
        self._client: AsyncClient = self._submit(make(), "connect")

    def close(self) -> None:
        """Close the HTTP client and stop the loop thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._submit(self._client.close(), "close")
        except RpcUnavailable:
            log.warning("solana rpc close failed chain=%s", self.chain)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self._loop.close()

    # ------------------------------------------------------------------ plumbing
    def _submit(self, coro: Awaitable[T], label: str) -> T:
        """Run `coro` on the loop thread, translating library faults (module docstring)."""
        if self._closed and label != "close":
            coro.close()  # type: ignore[attr-defined]
            raise SolanaRpcError(f"{label}: client closed", chain=self.chain)
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout=self._wait_s)
        except FutureTimeout as exc:
            future.cancel()
            raise RpcUnavailable(f"{label}: no answer in {self._wait_s:.0f} s",
                                 chain=self.chain) from exc
        except (TimeoutError, SolanaRpcException, RPCNoResultException, OSError) as exc:
            cause = type(exc.__cause__ or exc).__name__  # SolanaRpcException wraps httpx2's
            raise RpcUnavailable(f"{label}: {cause}", chain=self.chain) from exc
        except RPCException as exc:
            raise self._rpc_error(exc, label) from exc
        except (ValueError, SerdeJSONError) as exc:  # solders could not parse the body
            raise RpcUnavailable(f"{label}: unreadable answer ({exc})", chain=self.chain) from exc
        except BaseException as exc:
            # solders' parsers panic (pyo3 PanicException, a BaseException) on some malformed
            # answers, e.g. an error object without the ``data`` its code requires.
            if type(exc).__name__ != "PanicException":
                raise
            raise RpcUnavailable(f"{label}: unreadable answer (parser panic)",
                                 chain=self.chain) from exc

    def _rpc_error(self, exc: RPCException, label: str) -> Exception:
        error = exc.args[0] if exc.args else None
        message = getattr(error, "message", str(error))
        if isinstance(error, _TRANSIENT):
            return RpcUnavailable(f"{label}: {message}", chain=self.chain)
        return SolanaRpcError(f"{label}: {type(error).__name__}: {message}", chain=self.chain)

    def _read(self, make: Callable[[], Awaitable[T]], label: str) -> T:
        """`_submit` of a fresh coroutine from `make`, retried on `RpcUnavailable` only."""
        def once() -> T:
            return self._submit(make(), label)
        try:
            return once()
        except RpcUnavailable as first:
            if self._attempts <= 1:
                raise
            log.warning("rpc read retry chain=%s call=%s error=%s", self.chain, label, first)
        return Retrying(
            retry=retry_if_exception_type(RpcUnavailable),
            stop=stop_after_attempt(max(1, self._attempts - 1))
            | stop_before_delay(self._deadline_s),
            wait=wait_exponential(multiplier=0.2, max=2.0), reraise=True)(once)

    async def _gather(self, makers: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(make: Callable[[], Awaitable[T]]) -> T:
            async with gate:
                return await make()
        return list(await asyncio.gather(*(one(m) for m in makers)))

    # ------------------------------------------------------------------ reads
    def genesis_hash(self) -> str:
        """``getGenesisHash``: the cluster's genesis hash, base58."""
        resp = self._read(lambda: self._client.get_genesis_hash(), "getGenesisHash")
        return str(resp.value)

    def slot(self, commitment: str = "finalized") -> int:
        """``getSlot`` at `commitment` (``processed`` / ``confirmed`` / ``finalized``)."""
        resp = self._read(lambda: self._client.get_slot(COMMITMENTS[commitment]), "getSlot")
        return int(resp.value)

    def block_hashes(self, slots: Sequence[int]) -> dict[int, str | None]:
        """``getBlock`` (no transactions, no rewards, ``finalized``) of each slot: slot ->
        its blockhash (base58), or None if the slot was skipped (no block)."""
        async def one(slot: int) -> tuple[int, str | None]:
            try:
                resp = await self._client.get_block(
                    slot, encoding="base64", max_supported_transaction_version=0,
                    transaction_details=TransactionDetails.None_, rewards=False, commitment=Finalized)
            except RPCException as exc:
                if exc.args and isinstance(exc.args[0], _SKIPPED):
                    return slot, None
                raise
            return slot, str(resp.value.blockhash)
        wanted = sorted(set(slots))

        def fetch() -> Awaitable[list[tuple[int, str | None]]]:
            return self._gather([partial(one, s) for s in wanted])
        return dict(self._read(fetch, "getBlock"))

    def newest_block_at_or_below(self, slot: int, window: int = 1000) -> int | None:
        """``getBlocks`` over ``[slot - window, slot]`` (finalized): the newest slot with a
        block, or None if the window has none."""
        resp = self._read(lambda: self._client.get_blocks(max(slot - window, 0), slot),
                          "getBlocks")
        return max(resp.value) if resp.value else None

    def account(self, address: str, commitment: str = "finalized") -> AccountInfo | None:
        """``getAccountInfo`` (base64) at `commitment`; None if the account does not exist."""
        key = Pubkey.from_string(address)
        resp = self._read(lambda: self._client.get_account_info(
            key, commitment=COMMITMENTS[commitment], encoding="base64"), "getAccountInfo")
        acct = resp.value
        if acct is None:
            return None
        return AccountInfo(owner=str(acct.owner), data=bytes(acct.data), lamports=acct.lamports)

    def token_accounts(self, owner: str, program: str) -> dict[str, tuple[str, bytes]]:
        """``getTokenAccountsByOwner`` (filter ``programId``, base64, finalized): every token
        account of `program` whose owner is `owner`: address -> (mint base58, raw data).
        The mint is bytes 0..32 of the account data (spl-token ``state::Account``)."""
        opts = TokenAccountOpts(program_id=Pubkey.from_string(program), encoding="base64")
        resp = self._read(lambda: self._client.get_token_accounts_by_owner(
            Pubkey.from_string(owner), opts, commitment=Finalized), "getTokenAccountsByOwner")
        out: dict[str, tuple[str, bytes]] = {}
        for keyed in resp.value:
            data = bytes(keyed.account.data)
            if len(data) >= 64:
                out[str(keyed.pubkey)] = (str(Pubkey(data[:32])), data)
        return out

    def signatures(self, address: str, *, before: str | None = None,
                   limit: int = PAGE_LIMIT) -> list[SignatureInfo]:
        """One page of ``getSignaturesForAddress`` (finalized), newest first, older than
        `before` (a signature) if given."""
        key = Pubkey.from_string(address)
        before_sig = None if before is None else Signature.from_string(before)
        resp = self._read(lambda: self._client.get_signatures_for_address(
            key, before=before_sig, limit=limit, commitment=Finalized),
            "getSignaturesForAddress")
        return [SignatureInfo(str(s.signature), int(s.slot), s.err is not None)
                for s in resp.value]

    def signatures_in_range(self, address: str, first: int, last: int) -> list[SignatureInfo]:
        """Every finalized signature of `address` in slots ``[first, last]``, newest first:
        pages back (``before``) until a page ends below `first` or the history ends."""
        out: list[SignatureInfo] = []
        before: str | None = None
        while True:
            page = self.signatures(address, before=before)
            out.extend(s for s in page if first <= s.slot <= last)
            if len(page) < PAGE_LIMIT or page[-1].slot < first:
                return out
            before = page[-1].signature

    def transactions(self, signatures: Sequence[str]
                     ) -> list[EncodedConfirmedTransactionWithStatusMeta | None]:
        """``getTransaction`` (base64, ``maxSupportedTransactionVersion`` 0, finalized) of each
        signature, in order; None for one the node does not have (at finalized)."""
        async def one(sig: str) -> EncodedConfirmedTransactionWithStatusMeta | None:
            resp = await self._client.get_transaction(
                Signature.from_string(sig), encoding="base64", commitment=Finalized,
                max_supported_transaction_version=0)
            return resp.value
        def fetch() -> Awaitable[list[EncodedConfirmedTransactionWithStatusMeta | None]]:
            return self._gather([partial(one, s) for s in signatures])
        return self._read(fetch, "getTransaction")

    def signature_status(self, signature: str) -> SignatureStatus | None:
        """``getSignatureStatuses`` with ``searchTransactionHistory``; None if unknown."""
        sig = Signature.from_string(signature)
        resp = self._read(lambda: self._client.get_signature_statuses(
            [sig], search_transaction_history=True), "getSignatureStatuses")
        [status] = resp.value
        if status is None:
            return None
        level = status.confirmation_status
        name = "processed" if level is None else str(level).rsplit(".", 1)[-1].lower()
        return SignatureStatus(int(status.slot), status.err is not None, name)

    def token_balance(self, address: str) -> int | None:
        """``getTokenAccountBalance`` (finalized) in base units; None if no such account."""
        key = Pubkey.from_string(address)
        try:
            resp = self._read(lambda: self._client.get_token_account_balance(
                key, commitment=Finalized), "getTokenAccountBalance")
        except SolanaRpcError:
            if self.account(address) is None:
                return None
            raise
        return int(resp.value.amount)

    def run(self, call: Callable[[AsyncClient], Awaitable[T]], label: str, *,
            retry: bool = False) -> T:
        """Any one `AsyncClient` call on this client's loop (tooling: `adapters.solana.devnet`),
        translated like the others; retried like a read only if `retry`."""
        if retry:
            return self._read(lambda: call(self._client), label)
        return self._submit(call(self._client), label)

    # ------------------------------------------------------------------ writes
    def send_transaction(self, raw: bytes, *, skip_preflight: bool = False) -> str:
        """``sendTransaction`` (base64) once, with preflight at ``processed`` (or none, with
        `skip_preflight`: a failing transaction is then recorded as failed): the signature.

        Raises:
            BroadcastRefused: refused; ``reason`` is ``already_processed``,
                ``blockhash_not_found`` or ``refused``. RpcUnavailable: node unreachable.
        """
        opts = TxOpts(skip_confirmation=True, skip_preflight=skip_preflight,
                      preflight_commitment=Processed)

        async def send() -> str:
            try:
                resp = await self._client.send_raw_transaction(bytes(raw), opts)
            except RPCException as exc:
                raise _refusal(exc, self.chain) from exc
            return str(resp.value)
        return self._submit(send(), "sendTransaction")


def _refusal(exc: RPCException, chain: str) -> Exception:
    """`BroadcastRefused` with a ``reason`` from a sendTransaction error (or RpcUnavailable)."""
    error = exc.args[0] if exc.args else None
    if isinstance(error, _TRANSIENT):
        return RpcUnavailable(f"sendTransaction: {error.message}", chain=chain)
    message = str(getattr(error, "message", error))
    err = getattr(getattr(error, "data", None), "err", None)
    text = f"{message} {err}".lower()
    if err == TransactionErrorFieldless.AlreadyProcessed or "already been processed" in text \
            or "alreadyprocessed" in text:
        reason = ALREADY_PROCESSED
    elif err == TransactionErrorFieldless.BlockhashNotFound or "blockhash not found" in text \
            or "blockhashnotfound" in text:
        reason = BLOCKHASH_NOT_FOUND
    else:
        reason = REFUSED
    return BroadcastRefused(f"sendTransaction: {message} ({err})", chain=chain, reason=reason)
