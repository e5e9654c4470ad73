"""The validator daemon: watch own chains and own ledger connection, sign, ship to the relayer.

Owns: one validator process's loop: what is read, signed and delivered when, and when its scan
cursors move (file format: `validators.state`; relayer inbox: `validators.delivery`).
Must not decide what may be signed (that is `validators.signer`), hold keys other than through
a `KeySigner` (`validators.key_signer`), submit chain transactions, or trust anything the
relayer says about chains.

Each pass (`run_once`; `run_forever` runs `run_scheduled` every ``poll_interval_s``):

1. Ledger status (``network``, validator-set ``epoch``): `run_once` reads it every pass,
   `run_scheduled` at most every ``ledger_poll_interval_s`` on the injected clock, signing locks
   under the epoch read last in between. Ledger down, or another network: log, sign nothing
   until a later read succeeds.
2. Locks, per chain, on this validator's own `EvmAdapter` (no submitter key): one head request
   gives the finalized height (``head - confirmation_depth``, the rule of `EvmAdapter.finalized`;
   with ``use_finalized_tag``, the node's ``finalized`` block). Not above the cursor (head
   unchanged): nothing more is asked. Otherwise ``[cursor + 1, finalized]`` is scanned in ranges
   of ``max_block_range``; only final blocks are ever read, so a reorg never reaches the cursor.
   Events are signed under the current epoch and POSTed in batches of ``batch_size``. The cursor
   advances only after the relayer answered 2xx for every batch of the range: delivery is
   at-least-once, and re-sending is harmless because signing is deterministic.
3. Releases, on passes that read the ledger: burns after the burn cursor (``seq``), a page of
   ``batch_size`` at a time, with each bridge's ``setNonce`` read once per such pass; sign,
   POST, advance after acceptance.
4. Risk (`validators.risk_gate`): a lock or release over its route's ``[risk]`` limit or delay
   is held, not signed; the cursor moves on and held items are retried every pass.

Rotation (kept simple on purpose): the state file remembers the last ledger epoch and each
bridge's ``setNonce``. When the ledger epoch changes, every chain's block cursor is moved back
``rotation_resend_blocks`` (not below ``start_block - 1``) so that lock events of those final
blocks are re-signed under the new epoch, which un-sticks locks certified under the old set but
not yet minted. When a bridge's ``setNonce`` changes (noticed at the next ledger read), the
burn cursor moves back ``rotation_resend_burns`` so that recent burns are re-signed for the new
set. Older pending items need an operator (rewind the state file). Re-sent items the relayer
already handled are rejected or ignored by it.

Failure handling: RPC calls are retried with tenacity on `RpcUnavailable` only, bounded by
attempts and time; any chain, ledger or relayer failure is logged and the pass moves on; the
cursor stays put and the next pass retries. `run_forever` never lets a pass crash the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, cast

import httpx
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from adapters.base import BlockRef, Clock, LockEvent
from adapters.errors import BridgeError, ChainError, ConfigError, RpcUnavailable, SignerError
from validators.attestation import ValidatorSet
from validators.config import ValidatorSection
from validators.custody import CustodySigning
from validators.delivery import RELAYER_TIMEOUT_S, deliver, relayer_client
from validators.escrow_signer import EscrowReleaseSigner
from validators.htlc_sweep import SweepCheck
from validators.key_signer import KeySigner
from validators.observability import ValidatorMetrics
from validators.risk import RiskSection
from validators.risk_gate import RiskGate
from validators.signer import (
    BurnLike,
    LockSigner,
    RefusalReason,
    ReleaseSigner,
    SetNonceReader,
    SigningRefused,
)
from validators.state import CursorState, load_state, save_state
from validators.utxo_signer import UtxoReleaseSigner

if TYPE_CHECKING:
    from adapters.bitcoin.config import BitcoinChainConfig
    from adapters.cosmos.config import CosmosChainConfig
    from adapters.evm.config import EvmChainConfig
    from adapters.solana.config import SolanaChainConfig

logger = logging.getLogger(__name__)

MAX_RANGES_PER_PASS = 50  # bounds one pass so `stop_event` is honoured while catching up
MAX_BURN_PAGES_PER_PASS = 20
MAX_BURN_PAGE = 1000  # the ledger's largest ``GET /v1/ledger/burns`` page (ledger.service)

T = TypeVar("T")


class ValidatorAdapter(Protocol):
    """What the daemon uses of a chain adapter (`adapters.evm.adapter.EvmAdapter` fits)."""

    chain: str

    def head(self) -> BlockRef: ...

    def finalized(self) -> BlockRef: ...

    def finalized_number(self, head_number: int) -> int: ...

    def lock_events(self, from_block: int, to_block: int) -> list[LockEvent]: ...

    def set_nonce(self) -> int: ...


class LedgerReader(Protocol):
    """What the daemon uses of the ledger (`ledger.client.LedgerClient` fits)."""

    def status(self) -> Any: ...

    def burns(self, after_seq: int, limit: int) -> Sequence[BurnLike]: ...

    def burn(self, burn_id: bytes) -> BurnLike | None: ...

    def deposit_accounts(self, chain: str, after_seq: int, limit: int) -> Sequence[Any]: ...

    def mint_intents(self, chain: str, after_seq: int, limit: int) -> Sequence[Any]: ...

    def htlc(self, htlc_id: bytes) -> Any: ...


@dataclass(slots=True)
class PassResult:
    """What one pass delivered (attestations the relayer answered 2xx for)."""

    locks_sent: int = 0
    releases_sent: int = 0
    ok: bool = True


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
        chains: the EVM chains to watch. bitcoin, cosmos, solana: the other chains to watch
            (Bitcoin vault, Cosmos SDK escrow, Solana SPL multisig escrow).
        keys: its signer: unlocked keys (`validators.keystore.load_keystore`) or an external
            signer (`validators.socket_signer.SocketSigner`).
        adapters: per CAIP-2 id, an adapter to use instead of a fresh `EvmAdapter` (tests).
        ledger: a ledger reader to use instead of `LedgerClient(section.ledger_url)` (tests).
        relayer: an httpx client whose base URL is the relayer (tests may mount a
            ``MockTransport``); by default one is made from ``section.relayer_url``.
        rpc_attempts: attempts per RPC call on `RpcUnavailable`.
        rpc_wait_s: first back-off between attempts (doubles, capped at 4 s).
        rpc_max_delay_s: overall time bound of one retried RPC call.
        clock: monotonic seconds, for pacing ledger reads (``time.monotonic``; tests move it).
        ledger_clock: the ledger's clock as this validator reads it, for the safety margin of
            HTLC mints (`adapters.bitcoin.intents`); default the system clock.
        risk: the ``[risk]`` limits this validator applies before signing
            (`validators.risk_gate`; None: none). risk_clock: its wall clock (default: system).

    Raises:
        ConfigError: duplicate chains, or a state file that is corrupt or not this validator's.
    """

    def __init__(
        self,
        section: ValidatorSection,
        network: str,
        chains: Iterable[EvmChainConfig],
        keys: KeySigner,
        *,
        bitcoin: Iterable[BitcoinChainConfig] = (),
        cosmos: Iterable[CosmosChainConfig] = (),
        solana: Iterable[SolanaChainConfig] = (),
        adapters: Mapping[str, ValidatorAdapter] | None = None,
        ledger: LedgerReader | None = None,
        relayer: httpx.Client | None = None,
        rpc_attempts: int = 4,
        rpc_wait_s: float = 0.25,
        rpc_max_delay_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        ledger_clock: Clock | None = None,
        risk: RiskSection | None = None,
        risk_clock: Clock | None = None,
    ) -> None:
        self.section = section
        self._ledger_clock = ledger_clock  # the ledger's time as read here (HTLC mint margins)
        self.network = network
        self.chains = list(chains)
        self.bitcoin = list(bitcoin)
        self.cosmos = list(cosmos)
        self.solana = list(solana)
        self._escrow_chains: list[Any] = [*self.cosmos, *self.solana]  # escrow multisigs
        self._lock_chains: list[Any] = [*self.chains, *self.bitcoin, *self._escrow_chains]
        if len({c.caip2 for c in self._lock_chains}) != len(self._lock_chains):
            raise ConfigError("a chain is configured twice")
        self.keys = keys
        self._ledger: LedgerReader = ledger if ledger is not None else self._default_ledger()
        self._adapters: dict[str, ValidatorAdapter] = (
            dict(adapters) if adapters is not None else self._default_adapters(self.chains)
        )
        if adapters is None:
            self._adapters.update(self._bitcoin_adapters())
            self._adapters.update(self._escrow_adapters())
        missing = {c.caip2 for c in self._lock_chains} - set(self._adapters)
        if missing:
            raise ConfigError(f"no adapter for chains {sorted(missing)}")
        self._owns_relayer = relayer is None
        self._relayer = relayer or relayer_client(
            [section.relayer_url, *section.relayer_urls], RELAYER_TIMEOUT_S)
        self._locks = LockSigner(network, keys, self._lock_chains)
        self._retrying = Retrying(
            retry=retry_if_exception_type(RpcUnavailable),
            stop=stop_after_attempt(rpc_attempts) | stop_after_delay(rpc_max_delay_s),
            wait=wait_exponential(multiplier=rpc_wait_s, max=4.0),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )
        self._validator_id = keys.ed25519_public_hex
        self.state: CursorState = load_state(
            section.state_file, network=network, validator=self._validator_id
        )
        for chain in self._lock_chains:
            floor = chain.start_block - 1
            self.state.blocks[chain.caip2] = max(self.state.blocks.get(chain.caip2, floor), floor)
        risk_of = getattr(self._ledger, "risk", None)  # test fakes may not serve it
        self._gate = RiskGate(risk, self.state, risk_clock, released=None if risk_of is None else
                              lambda: risk_of().released)
        btc = {b.caip2: cast(Any, self._adapters[b.caip2]) for b in self.bitcoin}
        utxo = UtxoReleaseSigner(network, keys, btc, self.state.custody_inputs,
                                 sweeps=SweepCheck(btc, lambda i: self._ledger.htlc(i)),
                                 gate=self._gate)
        escrow = EscrowReleaseSigner(network, keys, {c.caip2: cast(Any, self._adapters[c.caip2])
                                                     for c in self._escrow_chains},
                                     self.state.escrow_sequences, gate=self._gate)
        self._custody = CustodySigning(
            {**{b.caip2: utxo for b in self.bitcoin},
             **{c.caip2: escrow for c in self._escrow_chains}}, self._save)
        self._member_epoch: int | None = None
        self._unreachable: set[str] = set()  # chains whose RPC failed during the current pass
        self._clock = clock
        self._ledger_read_at: float | None = None  # clock time of the last ledger read
        self._epoch: int | None = None  # epoch of the last good status; None: do not sign
        self.metrics = ValidatorMetrics(self)  # validators.observability (metrics, readiness)

    @staticmethod
    def _default_adapters(chains: list[EvmChainConfig]) -> dict[str, ValidatorAdapter]:
        from adapters.evm.adapter import EvmAdapter

        # One retry layer: the daemon's tenacity policy; the adapter makes single attempts.
        return {c.caip2: EvmAdapter(c, read_attempts=1) for c in chains}

    def _bitcoin_adapters(self) -> dict[str, ValidatorAdapter]:
        from adapters.bitcoin.adapter import BitcoinAdapter

        out: dict[str, ValidatorAdapter] = {}
        for c in self.bitcoin:
            # The deposit registry comes from this validator's own ledger connection; deposit
            # scripts are re-derived from each account here, never taken from anyone.
            def source(after: int, caip2: str = c.caip2) -> list[tuple[int, bytes]]:
                return [(r.seq, r.account) for r in
                        self._ledger.deposit_accounts(caip2, after_seq=after, limit=1000)]

            def intents(after: int, caip2: str = c.caip2) -> list[tuple[int, Any]]:
                return [(r.seq, r.intent) for r in
                        self._ledger.mint_intents(caip2, after_seq=after, limit=1000)]

            out[c.caip2] = cast(ValidatorAdapter, BitcoinAdapter(
                c, read_attempts=1, registry_source=source, intent_source=intents,
                ledger_clock=self._ledger_clock))
        return out

    def _escrow_adapters(self) -> dict[str, ValidatorAdapter]:
        """Cosmos SDK and Solana adapters (escrow multisigs), single-attempt reads."""
        out: dict[str, ValidatorAdapter] = {}
        if self.cosmos:
            from adapters.cosmos.adapter import CosmosAdapter

            out.update({c.caip2: cast(ValidatorAdapter, CosmosAdapter(c, read_attempts=1))
                        for c in self.cosmos})
        if self.solana:
            from adapters.solana.adapter import SolanaAdapter

            out.update({c.caip2: cast(ValidatorAdapter, SolanaAdapter(c, read_attempts=1))
                        for c in self.solana})
        return out

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
        """Run `run_scheduled` every ``poll_interval_s`` until `stop_event` is set."""
        logger.info(
            "validator starting name=%s validator=%s evm=%s chains=%s",
            self.section.name,
            self._validator_id,
            self.keys.evm_address,
            ",".join(c.caip2 for c in self.chains),
        )
        while not stop_event.is_set():
            try:
                self.run_scheduled()
            except SignerError as exc:  # external signer down: nothing signed, cursors kept
                logger.warning("signing failed, retrying next loop: %s", exc)
            except Exception:  # last resort: a validator must not die on a bug
                logger.exception("validator pass failed; retrying next loop")
            stop_event.wait(self.section.poll_interval_s)
        logger.info("validator stopped name=%s", self.section.name)

    def run_once(self) -> PassResult:
        """One full pass: the ledger status, every chain's locks, the ledger's burns.

        Reads the ledger whatever the clock says (callers that pace passes themselves, such as
        tests stepping a stack, see every burn at once). Never raises for I/O failures.

        Returns:
            What was delivered; ``ok`` is False if some source or the relayer failed.
        """
        return self._pass(read_ledger=True)

    def run_scheduled(self) -> PassResult:
        """One pass of `run_forever`: every chain's locks; the ledger only when due.

        The ledger (status, then burns) is read when ``ledger_poll_interval_s`` has passed on
        the clock since the last read, or was never read; in between, locks are signed under
        the epoch of the last good status. Never raises for I/O failures.

        Returns:
            What was delivered; ``ok`` is False if some source or the relayer failed.
        """
        last = self._ledger_read_at
        due = last is None or self._clock() - last >= self.section.ledger_poll_interval_s
        return self._pass(read_ledger=due)

    def _pass(self, *, read_ledger: bool) -> PassResult:
        result = PassResult()
        self._unreachable = set()
        if read_ledger:
            self._ledger_read_at = self._clock()
            self._read_status()
        epoch = self._epoch
        if epoch is None:  # no good status since the last failed read: sign nothing
            result.ok = False
            self.metrics.pass_done(False, None, self._unreachable)
            return result
        for chain in self._lock_chains:
            result.ok &= self._scan_locks(chain, epoch, result)
        held = self._gate.retry_locks(self._locks, epoch, self._deliver)
        result.ok &= held is not None
        result.locks_sent += held or 0
        if read_ledger:
            result.ok &= self._scan_burns(result)
            if self.bitcoin or self._escrow_chains:
                ok, sent = self._custody.run(self._relayer, self._ledger.burn, self._deliver)
                result.ok &= ok
                result.releases_sent += sent
        if self._gate.take_dirty():
            self._save()
        self.metrics.pass_done(result.ok, epoch, self._unreachable)
        return result

    def _read_status(self) -> None:
        """Read the ledger status; set ``_epoch`` to its epoch, or to None when it is unusable."""
        self._epoch = None
        try:
            status = self._ledger.status()
        except (BridgeError, httpx.HTTPError) as exc:
            logger.warning("ledger status unavailable: %s", exc)
            return
        if status.network != self.network:
            logger.error(
                "ledger at %s serves network=%s, expected %s; not signing",
                self.section.ledger_url,
                status.network,
                self.network,
            )
            return
        epoch = int(status.epoch)
        self._note_epoch(epoch, getattr(status, "validator_set", None))
        self._epoch = epoch

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
            for chain in self._lock_chains:
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

    def _finalized_height(self, chain: EvmChainConfig, adapter: ValidatorAdapter) -> int:
        """This validator's own finalized height of `chain`, in one request.

        SECURITY: the same rule as `EvmAdapter.finalized`: ``head - confirmation_depth``
        (`adapters.evm.finality`), or the node's ``finalized`` block with ``use_finalized_tag``.
        Only the height is used, so the block at that height need not be fetched.

        Raises:
            ChainError: the node could not be asked (after the retry policy).
        """
        if chain.use_finalized_tag:
            return self._rpc(adapter.finalized).number
        return adapter.finalized_number(self._rpc(adapter.head).number)

    def _scan_locks(self, chain: EvmChainConfig, epoch: int, result: PassResult) -> bool:
        caip2 = chain.caip2
        adapter = self._adapters[caip2]
        try:
            finalized = self._finalized_height(chain, adapter)
        except ChainError as exc:
            logger.warning("finalized height unavailable chain=%s: %s", caip2, exc)
            self._unreachable.add(caip2)
            return False
        # Head unchanged (or not past the depth) and nothing left to deliver: no further request.
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
                    payload = self._gate.sign_lock(
                        self._locks, event, finalized_height=finalized, epoch=epoch
                    )
                    if payload is None:  # held by the risk rules; retried on later passes
                        continue
                    payloads.append(payload)
                except SigningRefused as exc:
                    self.metrics.refused("lock", exc.reason)
                    logger.error(
                        "refused lock chain=%s tx=%s event_id=%s reason=%s: %s",
                        caip2,
                        event.tx_hash,
                        event.event_id,
                        exc.reason,
                        exc,
                        extra={"event_key": event.event_id},
                    )
                    continue
                logger.info(
                    "signed lock chain=%s tx=%s event_id=%s epoch=%d",
                    caip2,
                    event.tx_hash,
                    event.event_id,
                    epoch,
                    extra={"event_key": event.event_id},
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
        """Read each bridge's ``setNonce`` once per burns poll; rewind burns on a rotation, so
        burns signed under the old set are signed again even if no new burn arrives."""
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
        signer = ReleaseSigner(self.network, self.keys, self.chains, self._read_set_nonces())
        held = self._gate.retry_releases(signer, lambda b: self._ledger.burn(b), self._deliver)
        if held is None:
            return False
        result.releases_sent += held
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
                    payload = self._gate.sign_release(signer, burn)
                    if payload is None:  # held by the risk rules; retried on later passes
                        continue
                    payloads.append(payload)
                except SigningRefused as exc:
                    self.metrics.refused("release", exc.reason)
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
                        extra={"event_key": burn_hex},
                    )
                    continue
                except ChainError as exc:
                    logger.warning(
                        "release signing deferred chain=%s burn_id=%s: %s",
                        burn.origin_chain,
                        burn_hex,
                        exc,
                        extra={"event_key": burn_hex},
                    )
                    return False
                logger.info(
                    "signed release chain=%s burn_id=%s seq=%d",
                    burn.origin_chain,
                    burn_hex,
                    burn.seq,
                    extra={"event_key": burn_hex},
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
        ok = deliver(
            self._relayer,
            payloads,
            batch_size=self.section.batch_size,
            relayer_url=self.section.relayer_url,
        )
        self.metrics.delivery(payloads, ok)
        return ok

    def _save(self) -> None:
        save_state(
            self.section.state_file, self.state, network=self.network, validator=self._validator_id
        )
