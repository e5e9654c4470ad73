"""`EvmAdapter`: Ferry's `ChainAdapter` for one EVM chain and its `Bridge` contract.

Owns: reading heads, finality, block hashes and `Locked` events from one chain; building,
signing and broadcasting `release` transactions with a local nonce tracker; reading the
bridge's views. Must not decide *whether* to release (the core and the validators' quorum do),
hold more than the one submitter key it is given, or let web3/requests exceptions escape:
every fault leaves as a Ferry error (see `adapters.evm.rpc`).

Trust: the RPC node is not trusted for content. Each endpoint's chain id is checked before its
first other request (`WrongChain`); with several endpoints (``rpc_urls``) every call fails over
to a healthy one, and the reads that decide minting (head, finality, block hashes, `Locked`
logs) need ``rpc_quorum`` endpoints to agree, else `RpcDisagreement` (`adapters.evm.multi`).
Every log returned is re-checked against the bridge address,
the `Locked` topic and the fixed layout (`adapters.evm.logs`). Calls are ABI-encoded with
selectors whose signatures are checked against ``contracts/artifacts/Bridge.json`` at start, so
a contract change fails loudly here instead of reverting on chain.

Nonces: ``prepare_release`` takes ``max(pending count, local next nonce)`` under a lock, so
concurrent prepares never share a nonce. A prepared transaction that is never broadcast
leaves a gap: persist it and re-broadcast it, or call `reset_nonce_tracker`. ``broadcast`` is
idempotent for the same bytes; `NonceTooLow` from it means another transaction took the nonce.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import eth_abi
import eth_abi.exceptions
from eth_account import Account
from eth_utils import to_checksum_address

from adapters.base import BlockRef, LockEvent, PreparedTx, ReleaseOrder, TxStatus
from adapters.errors import ConfigError, NonceTooLow, Unsupported, ValidationError
from adapters.evm import finality
from adapters.evm.calls import SELECTORS, check_bridge_abi, encode_release, hex_address
from adapters.evm.config import EvmChainConfig
from adapters.evm.errors import RpcError
from adapters.evm.logs import LOCKED_TOPIC, decode_locked_logs
from adapters.evm.multi import MultiRpc, block_key, logs_key
from adapters.evm.rpc import JsonRpc
from validators import eip712

log = logging.getLogger(__name__)

GWEI = 10**9


class EvmAdapter:
    """`ChainAdapter` of one EVM chain's `Bridge`.

    Args:
        config: the chain's validated configuration.
        submitter_key: 32-byte secp256k1 key that pays for and signs `release` transactions;
            None makes a read-only adapter (`prepare_release` raises `Unsupported`).
        read_attempts: most attempts per read (retries on `RpcUnavailable` only; an attempt
            fails over across the endpoints).
        read_deadline_s: no read retry starts after this many seconds.

    Raises:
        ConfigError: `submitter_key` is not a valid key, or the Bridge artifact does not match.
    """

    def __init__(
        self,
        config: EvmChainConfig,
        submitter_key: bytes | None = None,
        *,
        read_attempts: int = 4,
        read_deadline_s: float = 30.0,
    ) -> None:
        check_bridge_abi()
        self.config = config
        self.chain: str = config.caip2
        self.confirmation_depth: int = config.confirmation_depth
        self.bridge: str = config.bridge_address
        self._bridge_checksum = to_checksum_address(config.bridge_address)
        self._rpc = MultiRpc(
            [
                JsonRpc(url, chain=self.chain, timeout_s=config.request_timeout_s)
                for url in config.endpoints
            ],
            chain=self.chain,
            chain_id=config.chain_id,
            quorum=config.rpc_quorum,
            read_attempts=read_attempts,
            read_deadline_s=read_deadline_s,
        )
        self._key: bytes | None = None
        self.submitter: str | None = None
        if submitter_key is not None:
            if len(submitter_key) != 32:
                raise ConfigError("submitter key must be 32 bytes")
            try:
                self.submitter = Account.from_key(submitter_key).address.lower()
            except ValueError as exc:
                raise ConfigError("submitter key is not a valid secp256k1 key") from exc
            self._key = submitter_key
        self._nonce_lock = threading.Lock()
        self._next_nonce: int | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"EvmAdapter(chain={self.chain}, bridge={self.bridge}, submitter={self.submitter})"

    # ------------------------------------------------------------------ plumbing

    def verify_chain(self) -> None:
        """Check that every RPC endpoint serves ``config.chain_id`` (EIP-695 ``eth_chainId``).

        An endpoint that is down now is checked before its first use instead; no endpoint is
        ever used unchecked. Call it at process start to fail fast.

        Raises:
            WrongChain: an endpoint serves another chain id (the message names it); every later
                call of this adapter raises it too.
            RpcUnavailable: no endpoint could be asked (after bounded retries).
        """
        self._rpc.verify_all()

    def _read(self, method: str, params: list[Any]) -> Any:
        """A read that does not decide minting: the first endpoint that answers."""
        return self._rpc.read(method, params)

    def _block(self, tag: str) -> dict[str, Any] | None:
        """SECURITY: a block by number or moving tag, agreed by ``rpc_quorum`` endpoints."""
        if tag.startswith("0x"):
            block = self._rpc.agreed("eth_getBlockByNumber", [tag, False], block_key)
        else:
            block = self._rpc.agreed_block(tag)
        if block is not None and not isinstance(block, dict):
            raise RpcError(f"eth_getBlockByNumber({tag}) returned {block!r}", chain=self.chain)
        return block

    def _ref(self, block: dict[str, Any] | None, tag: str) -> BlockRef:
        if block is None:
            raise RpcError(f"node has no block {tag}", chain=self.chain)
        try:
            return BlockRef(number=int(block["number"], 16), hash=block["hash"].lower())
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RpcError(f"malformed block {tag}", chain=self.chain) from exc

    def _call(self, name: str, args_hex: str = "", block: str = "latest") -> int:
        """``eth_call`` a one-word view of the bridge; returns the word as an int."""
        tx = {"to": self.bridge, "data": SELECTORS[name] + args_hex}
        result = self._read("eth_call", [tx, block])
        if not (isinstance(result, str) and len(result) == 66):
            raise RpcError(f"{name}() returned {result!r}: no bridge here?", chain=self.chain)
        return int(result, 16)

    # ------------------------------------------------------------------ reads

    def head(self) -> BlockRef:
        """The latest block; with ``rpc_quorum`` > 1 the lowest head of the quorum, whose hash
        all of it agree on. Raises `RpcUnavailable`, `RpcDisagreement`, `WrongChain`,
        `RpcError`."""
        return self._ref(self._block("latest"), "latest")

    def finalized(self, head: BlockRef | None = None) -> BlockRef:
        """Newest final block: ``head - confirmation_depth`` (floored at 0), or the node's
        ``finalized`` tag when ``use_finalized_tag``. `head`, when the caller just read it, is
        not fetched again. Raises like `head`."""
        if self.config.use_finalized_tag:
            return self._ref(self._block("finalized"), "finalized")
        head = head or self.head()
        number = finality.finalized_height(head.number, self.confirmation_depth)
        if number == head.number:
            return head
        return self._ref(self._block(hex(number)), str(number))

    def finalized_number(self, head_number: int) -> int:
        """Finalized height under `head_number` by the depth rule, without a request (callers
        using ``use_finalized_tag`` must ask `finalized` instead)."""
        return finality.finalized_height(head_number, self.confirmation_depth)

    def _final_height(self) -> int:
        if self.config.use_finalized_tag:
            return self.finalized().number
        return finality.finalized_height(self.head().number, self.confirmation_depth)

    def block_hash(self, number: int) -> str | None:
        """Canonical hash (lowercase ``0x`` hex) at height `number`, or None above the head.

        Raises:
            ValidationError: `number` < 0. Otherwise like `head`.
        """
        if number < 0:
            raise ValidationError(f"negative block number {number}")
        block = self._block(hex(number))
        return None if block is None else self._ref(block, str(number)).hash

    def lock_events(self, from_block: int, to_block: int) -> list[LockEvent]:
        """`Locked` events of the bridge in ``[from_block, to_block]``, by (block, log index).

        Queries ``eth_getLogs`` with ``address = bridge`` and ``topic0 = Locked`` in chunks of
        at most ``max_block_range`` blocks, and decodes the raw JSON (see `adapters.evm.logs`).
        An empty range (`from_block` > `to_block`) returns [].

        Raises:
            ValidationError: a negative bound.
            MalformedLog: the node returned a log that fails the bridge/topic/layout checks.
            RpcDisagreement: ``rpc_quorum`` endpoints returned different logs for a chunk.
            RpcUnavailable, WrongChain, RpcError: as for every read.
        """
        if from_block < 0 or to_block < 0:
            raise ValidationError("block range bounds must be >= 0")
        raw: list[Any] = []
        step = self.config.max_block_range
        for start in range(from_block, to_block + 1, step):
            end = min(start + step - 1, to_block)
            chunk = self._rpc.agreed(
                "eth_getLogs",
                [
                    {
                        "address": self.bridge,
                        "topics": [LOCKED_TOPIC],
                        "fromBlock": hex(start),
                        "toBlock": hex(end),
                    }
                ],
                logs_key,
            )
            if not isinstance(chunk, list):
                raise RpcError(f"eth_getLogs returned {type(chunk).__name__}", chain=self.chain)
            raw.extend(chunk)
        return decode_locked_logs(raw, chain=self.chain, bridge=self.bridge)

    def is_released(self, burn_id: bytes) -> bool:
        """Whether the bridge has paid out `burn_id` (32 bytes), at the head."""
        if len(burn_id) != 32:
            raise ValidationError("burn id must be 32 bytes")
        return self._call("released", burn_id.hex()) != 0

    def custody_totals(self, token: str) -> tuple[int, int]:
        """(``totalLocked``, ``totalReleased``) of `token` in base units, both read at the same
        block (the head when called)."""
        word = hex_address(token, "token")[2:].rjust(64, "0")
        block = hex(self.head().number)
        return self._call("totalLocked", word, block), self._call("totalReleased", word, block)

    def set_nonce(self) -> int:
        """The bridge's current validator-set nonce (first set is 1)."""
        return self._call("setNonce")

    def threshold(self) -> int:
        """Signatures the current validator set requires."""
        return self._call("threshold")

    def validator_set(self) -> tuple[int, tuple[str, ...], int]:
        """(set nonce, member addresses lowercase in contract order, threshold), all three read
        at the same block (the head when called)."""
        block = hex(self.head().number)
        raw = self._read(
            "eth_call", [{"to": self.bridge, "data": SELECTORS["getValidators"]}, block]
        )
        try:
            (members,) = eth_abi.decode(["address[]"], bytes.fromhex(raw[2:]))
        except (TypeError, ValueError, eth_abi.exceptions.DecodingError) as exc:
            raise RpcError(f"getValidators() returned {raw!r}", chain=self.chain) from exc
        return (
            self._call("setNonce", block=block),
            tuple(m.lower() for m in members),
            self._call("threshold", block=block),
        )

    def release_message_hash(
        self, burn_id: bytes, token: str, recipient: str, amount: int, set_nonce: int
    ) -> bytes:
        """EIP-712 digest (32 bytes) of ``Release(burnId, token, recipient, amount, setNonce)``
        for this chain id and bridge, as the contract computes it (`validators.eip712`).

        Raises:
            InvalidSignature: burn id not 32 bytes or a malformed address (from eip712).
        """
        return eip712.release_digest(
            self.config.chain_id,
            self.bridge,
            burn_id=burn_id,
            token=token,
            recipient=recipient,
            amount=amount,
            set_nonce=set_nonce,
        )

    def recover_release_signer(self, message_hash: bytes, signature: bytes) -> str:
        """Lowercase address that made the 65-byte ``r || s || v`` `signature` over
        `message_hash`, under the contract's rules (v in {27, 28}, low s; EIP-2).

        Raises:
            InvalidSignature: wrong length, bad v, high s, or unrecoverable.
        """
        return eip712.recover_signer(message_hash, signature)

    def tx_status(self, tx_hash: str) -> TxStatus:
        """Status of `tx_hash` (``0x`` hex, 32 bytes) against this adapter's finality rule.

        FAILED as soon as a reverted receipt exists; FINAL once a successful one is at or
        below `finalized`; PENDING while only the mempool knows it; UNKNOWN otherwise.
        """
        if not (isinstance(tx_hash, str) and len(tx_hash) == 66 and tx_hash[:2] == "0x"):
            raise ValidationError(f"not a 32-byte 0x tx hash: {tx_hash!r}")
        receipt = self._read("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            try:
                status, height = int(receipt["status"], 16), int(receipt["blockNumber"], 16)
            except (KeyError, TypeError, ValueError) as exc:
                raise RpcError(f"malformed receipt of {tx_hash}", chain=self.chain) from exc
            if status not in (0, 1):
                raise RpcError(f"receipt status {status} of {tx_hash}", chain=self.chain)
            return finality.tx_status(
                receipt_status=status,
                included_in=height,
                final_height=self._final_height(),
                in_mempool=False,
            )
        seen = self._read("eth_getTransactionByHash", [tx_hash]) is not None
        return finality.tx_status(
            receipt_status=None, included_in=None, final_height=0, in_mempool=seen
        )

    # ------------------------------------------------------------------ writes

    def prepare_release(self, order: ReleaseOrder) -> PreparedTx:
        """Build and sign a ``release(burnId, token, recipient, amount, signatures)`` call.

        Fees (EIP-1559): ``maxPriorityFeePerGas`` from ``eth_maxPriorityFeePerGas``,
        ``maxFeePerGas = 2 * latest baseFeePerGas + priority``; both capped by
        ``max_fee_cap_gwei``. Gas limit ``gas_limit_release``. Nonce: see the module doc.

        SECURITY: this signs whatever `order` says; the caller must have verified the burn on
        the ledger and hold a quorum of validator signatures for exactly these fields.

        Returns:
            The signed transaction and its hash; nothing has been sent.

        Raises:
            Unsupported: the adapter has no submitter key, or the chain's latest block has no
                ``baseFeePerGas`` (pre-London).
            ValidationError: a malformed order (sizes, addresses, amount range).
            RpcUnavailable, WrongChain, RpcError: as for every read.
        """
        if self._key is None or self.submitter is None:
            raise Unsupported(f"adapter for {self.chain} has no submitter key")
        data = SELECTORS["release"] + encode_release(order).hex()
        latest = self._read("eth_getBlockByNumber", ["latest", False])  # fees only: no quorum
        if not isinstance(latest, dict):
            raise RpcError(f"eth_getBlockByNumber(latest) returned {latest!r}", chain=self.chain)
        if latest.get("baseFeePerGas") is None:
            raise Unsupported(f"{self.chain} has no EIP-1559 base fee")
        cap = self.config.max_fee_cap_gwei * GWEI
        priority = min(int(self._read("eth_maxPriorityFeePerGas", []), 16), cap)
        max_fee = 2 * int(latest["baseFeePerGas"], 16) + priority
        if max_fee > cap:
            log.warning(
                "release fee capped chain=%s wanted_wei=%d cap_wei=%d", self.chain, max_fee, cap
            )
            max_fee = cap
        with self._nonce_lock:
            pending = int(self._read("eth_getTransactionCount", [self.submitter, "pending"]), 16)
            nonce = pending if self._next_nonce is None else max(pending, self._next_nonce)
            self._next_nonce = nonce + 1
        signed = Account.sign_transaction(
            {
                "type": 2,
                "chainId": self.config.chain_id,
                "nonce": nonce,
                "to": self._bridge_checksum,
                "value": 0,
                "data": data,
                "gas": self.config.gas_limit_release,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": priority,
            },
            self._key,
        )
        prepared = PreparedTx(
            tx_hash="0x" + bytes(signed.hash).hex(),
            raw=bytes(signed.raw_transaction),
            sender_nonce=nonce,
        )
        log.info(
            "release prepared chain=%s tx=%s nonce=%d burn_id=0x%s",
            self.chain,
            prepared.tx_hash,
            nonce,
            order.burn_id.hex(),
        )
        return prepared

    def broadcast(self, prepared: PreparedTx) -> str:
        """Send a prepared transaction (one request, never retried here). Idempotent for the
        same bytes: if the node answers "already known" / "nonce too low" but knows this very
        hash (mempool or chain), that is success.

        Returns:
            ``prepared.tx_hash``.

        Raises:
            NonceTooLow: the nonce was consumed by a *different* transaction, so this one can
                never land: sign a new one. The local nonce tracker is reset first.
            RpcUnavailable: no endpoint could be asked (each is asked at most once, in order
                of health, until one answers); the transaction may or may not have been
                received (re-broadcasting the same bytes is safe).
            RpcError: any other refusal, or the node reported a different hash.
        """
        try:  # the first endpoint that answers; see `adapters.evm.multi`
            sent = self._rpc.send("eth_sendRawTransaction", ["0x" + prepared.raw.hex()])
        except NonceTooLow:
            self.reset_nonce_tracker()
            if self._read("eth_getTransactionByHash", [prepared.tx_hash]) is None:
                raise
            sent = prepared.tx_hash  # ours: already pending or mined
        if not (isinstance(sent, str) and sent.lower() == prepared.tx_hash):
            raise RpcError(
                f"node reported tx hash {sent!r}, expected {prepared.tx_hash}", chain=self.chain
            )
        log.info(
            "release broadcast chain=%s tx=%s nonce=%d",
            self.chain,
            prepared.tx_hash,
            prepared.sender_nonce,
        )
        return prepared.tx_hash

    def submit_release(self, order: ReleaseOrder) -> str:
        """`prepare_release` then `broadcast`; returns the transaction hash (``0x`` hex).

        Callers that must survive a crash between signing and sending use the two steps and
        persist ``PreparedTx.tx_hash`` in between. Raises like both.
        """
        return self.broadcast(self.prepare_release(order))

    def reset_nonce_tracker(self) -> None:
        """Forget the local next nonce; the next prepare uses the chain's pending count."""
        with self._nonce_lock:
            self._next_nonce = None
