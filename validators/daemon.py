"""The validator daemon: watch own chains and own ledger connection, sign, ship to the relayer.

Owns: one validator process's loop, its scan cursors (the state file) and delivery of
attestations to the relayer inbox (``POST {relayer_url}/v1/attestations``).
Must not decide what may be signed (that is `validators.signer`), hold keys other than through
`ValidatorKeys`, submit chain transactions, or trust anything the relayer says about chains.

Each pass (`run_once`):

1. Read the ledger status (``network``, current validator-set ``epoch``). Ledger down: log, end
   the pass. A status for another network is refused.
2. Locks, per chain, on this validator's own `EvmAdapter` (no submitter key): scan
   ``[cursor + 1, finalized]`` in ranges of ``max_block_range``; only final blocks are ever read,
   so a reorg never reaches the cursor. Every event is signed under the current epoch and the
   range's attestations are POSTed in batches of ``batch_size``. The cursor (last scanned final
   block) advances only after the relayer answered 2xx for every batch of the range:
   delivery is at-least-once, and re-sending is harmless because signing is deterministic.
3. Releases: read each watched bridge's ``setNonce``, then ledger burns after the burn cursor
   (``seq``) a page of ``batch_size`` at a time; sign, POST, advance after acceptance.

Rotation (kept simple on purpose): the state file remembers the last ledger epoch and each
bridge's ``setNonce``. When the ledger epoch changes, every chain's block cursor is moved back
``rotation_resend_blocks`` (not below ``start_block - 1``) so that lock events of those final
blocks are re-signed under the new epoch, which un-sticks locks certified under the old set but
not yet minted. When a bridge's ``setNonce`` changes, the burn cursor moves back
``rotation_resend_burns`` so that recent burns are re-signed for the new set. Older pending items
need an operator (rewind the state file). Re-sent items the relayer already handled are
rejected or ignored by it.

Failure handling: RPC calls are retried with tenacity on `RpcUnavailable` only, bounded by
attempts and time; any chain, ledger or relayer failure is logged and the pass moves on; the
cursor stays put and the next pass retries. `run_forever` never lets a pass crash the process.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

import httpx
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from adapters.base import BlockRef, LockEvent
from adapters.errors import BridgeError, ChainError, ConfigError, RpcUnavailable
from validators.attestation import ValidatorSet
from validators.config import ValidatorSection
from validators.keystore import ValidatorKeys
from validators.signer import (
    BurnLike,
    LockSigner,
    RefusalReason,
    ReleaseSigner,
    SetNonceReader,
    SigningRefused,
)

if TYPE_CHECKING:
    from adapters.evm.config import EvmChainConfig

logger = logging.getLogger(__name__)

STATE_VERSION = 1
ATTESTATIONS_PATH = "/v1/attestations"
MAX_RANGES_PER_PASS = 50  # bounds one pass so `stop_event` is honoured while catching up
MAX_BURN_PAGES_PER_PASS = 20
MAX_BURN_PAGE = 1000  # the ledger's largest ``GET /v1/ledger/burns`` page (ledger.service)
RELAYER_TIMEOUT_S = 10.0

T = TypeVar("T")


class ValidatorAdapter(Protocol):
    """What the daemon uses of a chain adapter (`adapters.evm.adapter.EvmAdapter` fits)."""

    chain: str

    def finalized(self) -> BlockRef: ...

    def lock_events(self, from_block: int, to_block: int) -> list[LockEvent]: ...

    def set_nonce(self) -> int: ...


class LedgerReader(Protocol):
    """What the daemon uses of the ledger (`ledger.client.LedgerClient` fits)."""

    def status(self) -> Any: ...

    def burns(self, after_seq: int, limit: int) -> Sequence[BurnLike]: ...


@dataclass(slots=True)
class CursorState:
    """The persisted scan position (JSON in ``state_file``).

    Attributes:
        blocks: per CAIP-2 chain, the last final block whose lock events were delivered.
        set_nonces: per CAIP-2 chain, the bridge ``setNonce`` seen last.
        burn_seq: ledger seq of the last burn delivered (the ``after_seq`` of the next read).
        epoch: ledger validator-set epoch seen last (None before the first pass).
    """

    blocks: dict[str, int] = field(default_factory=dict)
    set_nonces: dict[str, int] = field(default_factory=dict)
    burn_seq: int = 0
    epoch: int | None = None


@dataclass(slots=True)
class PassResult:
    """What one `run_once` delivered (attestations the relayer answered 2xx for)."""

    locks_sent: int = 0
    releases_sent: int = 0
    ok: bool = True


def load_state(path: Path, *, network: str, validator: str) -> CursorState:
    """Read the state file; a missing file is an empty state.

    Raises:
        ConfigError: unreadable, corrupt, or written for another network or validator (its
            cursors would skip or replay the wrong events).
    """
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return CursorState()
    except OSError as exc:
        raise ConfigError(f"cannot read validator state {path}: {exc.strerror}") from exc
    try:
        doc = json.loads(raw)
        if doc.get("version") != STATE_VERSION:
            raise ConfigError(f"unsupported validator state version in {path}")
        if doc.get("network") != network or doc.get("validator") != validator:
            raise ConfigError(
                f"validator state {path} belongs to network={doc.get('network')} "
                f"validator={doc.get('validator')}"
            )
        chains = doc["chains"]
        return CursorState(
            blocks={c: int(v["block"]) for c, v in chains.items()},
            set_nonces={
                c: int(v["set_nonce"]) for c, v in chains.items() if v.get("set_nonce") is not None
            },
            burn_seq=int(doc["burn_seq"]),
            epoch=None if doc.get("epoch") is None else int(doc["epoch"]),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"corrupt validator state {path}") from exc


def save_state(path: Path, state: CursorState, *, network: str, validator: str) -> None:
    """Write the state file atomically (temp file, ``fsync``, ``os.replace``)."""
    doc = {
        "version": STATE_VERSION,
        "network": network,
        "validator": validator,
        "epoch": state.epoch,
        "burn_seq": state.burn_seq,
        "chains": {
            chain: {"block": block, "set_nonce": state.set_nonces.get(chain)}
            for chain, block in sorted(state.blocks.items())
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class _KnownNonce:
    """A `SetNonceReader` answering with the value read at the start of the pass."""

    def __init__(self, value: int) -> None:
        self._value = value

    def set_nonce(self) -> int:
        return self._value


class _UnknownNonce:
    """A `SetNonceReader` for a chain whose RPC failed this pass: signing must wait."""

    def __init__(self, chain: str) -> None:
        self._chain = chain

    def set_nonce(self) -> int:
        raise RpcUnavailable("setNonce unknown this pass", chain=self._chain)


class ValidatorDaemon:
    """One validator: own adapters, own ledger connection, own keys.

    Args:
        section: the ``[validator]`` config section.
        network: Ferry network name.
        chains: the EVM chains to watch.
        keys: unlocked keys (`validators.keystore.load_keystore`).
        adapters: per CAIP-2 id, an adapter to use instead of a fresh `EvmAdapter` (tests).
        ledger: a ledger reader to use instead of `LedgerClient(section.ledger_url)` (tests).
        relayer: an httpx client whose base URL is the relayer (tests may mount a
            ``MockTransport``); by default one is made from ``section.relayer_url``.
        rpc_attempts: attempts per RPC call on `RpcUnavailable`.
        rpc_wait_s: first back-off between attempts (doubles, capped at 4 s).
        rpc_max_delay_s: overall time bound of one retried RPC call.

    Raises:
        ConfigError: duplicate chains, or a state file that is corrupt or not this validator's.
    """

    def __init__(
        self,
        section: ValidatorSection,
        network: str,
        chains: Iterable[EvmChainConfig],
        keys: ValidatorKeys,
        *,
        adapters: Mapping[str, ValidatorAdapter] | None = None,
        ledger: LedgerReader | None = None,
        relayer: httpx.Client | None = None,
        rpc_attempts: int = 4,
        rpc_wait_s: float = 0.25,
        rpc_max_delay_s: float = 15.0,
    ) -> None:
        self.section = section
        self.network = network
        self.chains = list(chains)
        if len({c.caip2 for c in self.chains}) != len(self.chains):
            raise ConfigError("a chain is configured twice")
        self.keys = keys
        self._adapters: dict[str, ValidatorAdapter] = (
            dict(adapters) if adapters is not None else self._default_adapters(self.chains)
        )
        missing = {c.caip2 for c in self.chains} - set(self._adapters)
        if missing:
            raise ConfigError(f"no adapter for chains {sorted(missing)}")
        self._ledger: LedgerReader = ledger if ledger is not None else self._default_ledger()
        self._owns_relayer = relayer is None
        self._relayer = relayer or httpx.Client(
            base_url=section.relayer_url, timeout=RELAYER_TIMEOUT_S
        )
        self._locks = LockSigner(network, keys, self.chains)
        self._retrying = Retrying(
            retry=retry_if_exception_type(RpcUnavailable),
            stop=stop_after_attempt(rpc_attempts) | stop_after_delay(rpc_max_delay_s),
            wait=wait_exponential(multiplier=rpc_wait_s, max=4.0),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )
        self._validator_id = keys.ed25519_public_hex
        self.state = load_state(section.state_file, network=network, validator=self._validator_id)
        for chain in self.chains:
            floor = chain.start_block - 1
            self.state.blocks[chain.caip2] = max(self.state.blocks.get(chain.caip2, floor), floor)
        self._member_epoch: int | None = None
        self._unreachable: set[str] = set()  # chains whose RPC failed during the current pass

    @staticmethod
    def _default_adapters(chains: list[EvmChainConfig]) -> dict[str, ValidatorAdapter]:
        from adapters.evm.adapter import EvmAdapter

        # One retry layer: the daemon's tenacity policy; the adapter makes single attempts.
        return {c.caip2: EvmAdapter(c, read_attempts=1) for c in chains}

    def _default_ledger(self) -> LedgerReader:
        from ledger.client import LedgerClient

        client: LedgerReader = LedgerClient(self.section.ledger_url)
        return client

    def close(self) -> None:
        """Close the relayer HTTP client if this daemon created it."""
        if self._owns_relayer:
            self._relayer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop ---------------------------------------------------------------------------

    def run_forever(self, stop_event: threading.Event) -> None:
        """Run passes every ``poll_interval_s`` until `stop_event` is set."""
        logger.info(
            "validator starting name=%s validator=%s evm=%s chains=%s",
            self.section.name,
            self._validator_id,
            self.keys.evm_address,
            ",".join(c.caip2 for c in self.chains),
        )
        while not stop_event.is_set():
            try:
                self.run_once()
            except Exception:  # last resort: a validator must not die on a bug
                logger.exception("validator pass failed; retrying next loop")
            stop_event.wait(self.section.poll_interval_s)
        logger.info("validator stopped name=%s", self.section.name)

    def run_once(self) -> PassResult:
        """One pass over every chain and the ledger's burns. Never raises for I/O failures.

        Returns:
            What was delivered; ``ok`` is False if some source or the relayer failed.
        """
        result = PassResult()
        self._unreachable = set()
        try:
            status = self._ledger.status()
        except (BridgeError, httpx.HTTPError) as exc:
            logger.warning("ledger status unavailable: %s", exc)
            result.ok = False
            return result
        if status.network != self.network:
            logger.error(
                "ledger at %s serves network=%s, expected %s; not signing",
                self.section.ledger_url,
                status.network,
                self.network,
            )
            result.ok = False
            return result
        epoch = int(status.epoch)
        self._note_epoch(epoch, getattr(status, "validator_set", None))
        for chain in self.chains:
            result.ok &= self._scan_locks(chain, epoch, result)
        result.ok &= self._scan_burns(result)
        return result

    # -- locks ------------------------------------------------------------------------------

    def _rpc(self, fn: Callable[..., T], *args: Any) -> T:
        return self._retrying(fn, *args)

    def _note_epoch(self, epoch: int, validator_set: object) -> None:
        if isinstance(validator_set, ValidatorSet) and self._member_epoch != epoch:
            self._member_epoch = epoch
            if self.keys.ed25519_public not in validator_set.ed25519_keys:
                logger.warning(
                    "validator=%s is not in the ledger validator set epoch=%s; its "
                    "attestations will not count",
                    self._validator_id,
                    epoch,
                )
        previous = self.state.epoch
        if previous == epoch:
            return
        if previous is not None:
            back = self.section.rotation_resend_blocks
            for chain in self.chains:
                floor = chain.start_block - 1
                cursor = self.state.blocks[chain.caip2]
                self.state.blocks[chain.caip2] = max(floor, cursor - back)
            logger.info(
                "ledger epoch changed %s -> %s; re-signing locks of the last %d final blocks",
                previous,
                epoch,
                back,
            )
        self.state.epoch = epoch
        self._save()

    def _scan_locks(self, chain: EvmChainConfig, epoch: int, result: PassResult) -> bool:
        caip2 = chain.caip2
        adapter = self._adapters[caip2]
        try:
            finalized = self._rpc(adapter.finalized).number
        except ChainError as exc:
            logger.warning("finalized height unavailable chain=%s: %s", caip2, exc)
            self._unreachable.add(caip2)
            return False
        for _ in range(MAX_RANGES_PER_PASS):
            cursor = self.state.blocks[caip2]
            if cursor >= finalized:
                break
            low = cursor + 1
            high = min(finalized, low + chain.max_block_range - 1)
            try:
                events = self._rpc(adapter.lock_events, low, high)
            except ChainError as exc:
                logger.warning("lock scan failed chain=%s blocks=%d-%d: %s", caip2, low, high, exc)
                self._unreachable.add(caip2)
                return False
            payloads = []
            for event in events:
                try:
                    payloads.append(
                        self._locks.sign(event, finalized_height=finalized, epoch=epoch)
                    )
                except SigningRefused as exc:
                    logger.error(
                        "refused lock chain=%s tx=%s event_id=%s reason=%s: %s",
                        caip2,
                        event.tx_hash,
                        event.event_id,
                        exc.reason,
                        exc,
                    )
                    continue
                logger.info(
                    "signed lock chain=%s tx=%s event_id=%s epoch=%d",
                    caip2,
                    event.tx_hash,
                    event.event_id,
                    epoch,
                )
            if not self._deliver(payloads):
                return False
            result.locks_sent += len(payloads)
            self.state.blocks[caip2] = high
            self._save()
            logger.debug("lock cursor chain=%s block=%d events=%d", caip2, high, len(events))
        return True

    # -- releases ---------------------------------------------------------------------------

    def _read_set_nonces(self) -> dict[str, SetNonceReader]:
        """Read each bridge's ``setNonce`` once for this pass; rewind burns on a rotation."""
        readers: dict[str, SetNonceReader] = {}
        rotated: list[str] = []
        changed = False
        for chain in self.chains:
            caip2 = chain.caip2
            if caip2 in self._unreachable:  # already failed this pass: do not wait on it twice
                readers[caip2] = _UnknownNonce(caip2)
                continue
            try:
                nonce = self._rpc(self._adapters[caip2].set_nonce)
            except ChainError as exc:
                logger.warning("bridge setNonce unavailable chain=%s: %s", caip2, exc)
                readers[caip2] = _UnknownNonce(caip2)
                continue
            readers[caip2] = _KnownNonce(nonce)
            previous = self.state.set_nonces.get(caip2)
            if previous != nonce:
                self.state.set_nonces[caip2] = nonce
                changed = True
                if previous is not None:
                    rotated.append(f"{caip2}:{previous}->{nonce}")
        if rotated:
            back = self.section.rotation_resend_burns
            self.state.burn_seq = max(0, self.state.burn_seq - back)
            logger.info(
                "bridge validator set changed (%s); re-signing the last %d burns",
                ",".join(rotated),
                back,
            )
        if changed:
            self._save()
        return readers

    def _scan_burns(self, result: PassResult) -> bool:
        readers = self._read_set_nonces()
        signer = ReleaseSigner(self.network, self.keys, self.chains, readers)
        limit = min(self.section.batch_size, MAX_BURN_PAGE)
        for _ in range(MAX_BURN_PAGES_PER_PASS):
            cursor = self.state.burn_seq
            try:
                page = self._ledger.burns(after_seq=cursor, limit=limit)
            except (BridgeError, httpx.HTTPError) as exc:
                logger.warning("ledger burns unavailable after_seq=%d: %s", cursor, exc)
                return False
            burns = sorted((b for b in page if b.seq > cursor), key=lambda b: b.seq)
            if not burns:
                break
            payloads = []
            for burn in burns:
                burn_hex = "0x" + burn.burn_id.hex()
                try:
                    payloads.append(signer.sign(burn))
                except SigningRefused as exc:
                    level = (
                        logging.INFO
                        if exc.reason is RefusalReason.FOREIGN_CHAIN
                        else logging.WARNING
                    )
                    logger.log(
                        level,
                        "refused release chain=%s burn_id=%s seq=%d reason=%s: %s",
                        burn.origin_chain,
                        burn_hex,
                        burn.seq,
                        exc.reason,
                        exc,
                    )
                    continue
                except ChainError as exc:
                    logger.warning(
                        "release signing deferred chain=%s burn_id=%s: %s",
                        burn.origin_chain,
                        burn_hex,
                        exc,
                    )
                    return False
                logger.info(
                    "signed release chain=%s burn_id=%s seq=%d",
                    burn.origin_chain,
                    burn_hex,
                    burn.seq,
                )
            if not self._deliver(payloads):
                return False
            result.releases_sent += len(payloads)
            self.state.burn_seq = burns[-1].seq
            self._save()
            if len(page) < limit:
                break
        return True

    # -- delivery and state -----------------------------------------------------------------

    def _deliver(self, payloads: list[dict[str, Any]]) -> bool:
        """POST `payloads` in batches; True only if the relayer answered 2xx to every batch."""
        size = self.section.batch_size
        for start in range(0, len(payloads), size):
            batch = payloads[start : start + size]
            try:
                response = self._relayer.post(ATTESTATIONS_PATH, json={"attestations": batch})
            except httpx.HTTPError as exc:
                logger.warning("relayer unreachable at %s: %s", self.section.relayer_url, exc)
                return False
            if not response.is_success:
                logger.warning(
                    "relayer refused batch status=%d body=%s",
                    response.status_code,
                    response.text[:200],
                )
                return False
            self._log_rejections(batch, response)
        return True

    @staticmethod
    def _log_rejections(batch: list[dict[str, Any]], response: httpx.Response) -> None:
        try:
            answer = response.json()
            rejected = answer.get("rejected") or []
        except (ValueError, AttributeError):
            logger.warning("relayer answered 2xx with a malformed body; treating as accepted")
            return
        for item in rejected:
            index = item.get("index") if isinstance(item, dict) else None
            sent = batch[index] if isinstance(index, int) and 0 <= index < len(batch) else {}
            body = sent.get("body") or {}
            logger.warning(
                "relayer rejected attestation kind=%s event_id=%s burn_id=%s code=%s",
                sent.get("kind"),
                body.get("event_id"),
                sent.get("burn_id"),
                item.get("code") if isinstance(item, dict) else None,
            )

    def _save(self) -> None:
        save_state(
            self.section.state_file, self.state, network=self.network, validator=self._validator_id
        )
