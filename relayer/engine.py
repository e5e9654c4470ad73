"""The relayer engine: the jobs the scheduler runs. Each job reads state, asks
`relayer.machine.next_action` what to do, acts, and records the outcome through `Store`.

Owns: watch_chain, confirm_chain, watch_ledger, mint, release. Must not import a concrete
adapter, web3 or any chain library: chains are `ChainAdapter`s, the ledger is a `LedgerClient`.

Crash safety (SIGKILL at any line, then restart):
- the chain cursor moves in the same transaction that stores the events it covers;
- a mint is keyed on the ledger by the lock's event id: re-submitting answers "duplicate";
- a release is signed, persisted (`submitted`, with its raw bytes) and only then broadcast; after a
  restart it is re-broadcast as the same bytes, and the bridge pays a burn id at most once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from adapters.base import (
    BlockRef,
    ChainAdapter,
    Clock,
    LockEvent,
    PreparedTx,
    ReleaseOrder,
    SystemClock,
)
from adapters.errors import (
    BridgeError,
    NonceTooLow,
    ReorgDetected,
    RetryableChainError,
    Unsupported,
)
from adapters.reorg import fork_point
from relayer.custody import CustodyReleases
from relayer.escrow import EscrowReleases
from relayer.gauges import current_members, refresh_db_gauges
from relayer.heads import record_head
from relayer.inbox import TtlCache
from relayer.machine import Action, Legs, TransferKind, TransferStatus, next_action
from relayer.metrics import RelayerMetrics
from relayer.risk_gate import RiskGate, RiskPass, gate_mints
from relayer.store import Change, NewBurn, Store
from validators.attestation import ValidatorSet, lock_attestation_message, parse_hex
from validators.risk import RiskSection

log = logging.getLogger(__name__)
S = TransferStatus
LEDGER = "ferry:ledger"
# Codes with which the ledger refuses a certificate that fresh signatures could fix.
MAX_PAGES = 20  # pages of `batch_size` one job run works through before yielding
RECOLLECT_CODES = frozenset({"quorum_not_met", "invalid_signature", "wrong_epoch"})


class Ledger(Protocol):
    """What the engine needs of `ledger.client.LedgerClient`."""

    def status(self) -> Any: ...
    def submit_mints(self, requests: list[Any]) -> list[Any]: ...
    def burns(self, after_seq: int, limit: int) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class ChainPlan:
    """Per-chain engine settings: the adapter, the first block to scan, the scan window and
    how often the scheduler runs this chain's job."""

    adapter: ChainAdapter
    start_block: int = 0
    max_block_range: int = 2000
    poll_interval_s: float = 1.0
    assets: Mapping[str, str] | None = None  # origin token (lowercase) -> ledger asset key


class Engine:
    """The relayer's jobs over one store, the ledger and a set of chains.

    Args:
        store: relayer store.
        chains: CAIP-2 id -> ChainPlan.
        ledger: ledger client.
        network: Ferry network name (part of every attestation).
        mint_request: factory `(event, epoch, [(pubkey, sig)]) -> ledger mint request`.
        batch_size: at most this many transfers per job run and ledger call.
        risk: the ``[risk]`` config the relayer enforces before it mints or commits a release
            (`relayer.risk_gate`; None: no limits or delays, route pauses still hold).
        accountant: a `relayer.accountant.Accountant` for the pre-mint solvency check, or None.
        replica_id: this replica's name in mint claims (``[relayer] replica_id``).
        claim_ttl_s: how long a claimed page of mints stays this replica's if it dies.
    """

    def __init__(
        self,
        store: Store,
        chains: Mapping[str, ChainPlan],
        ledger: Ledger,
        network: str,
        mint_request: Any,
        metrics: RelayerMetrics | None = None,
        clock: Clock | None = None,
        batch_size: int = 500,
        custody: CustodyReleases | None = None,
        escrow: EscrowReleases | None = None,
        htlc_mints: Any = None,
        risk: RiskSection | None = None,
        accountant: Any = None,
        replica_id: str = "relayer",
        claim_ttl_s: float = 30.0,
    ) -> None:
        self.store, self.chains, self.ledger, self.network = store, chains, ledger, network
        self.mint_request = mint_request
        self.metrics = metrics or RelayerMetrics()
        self.clock = clock or SystemClock()
        self.batch_size = batch_size
        self.ledger_status = TtlCache(self.ledger.status, 1.0, self.clock)
        self.bridge_sets = {
            c: TtlCache(p.adapter.validator_set, 2.0, self.clock) for c, p in chains.items()
        }
        self._idle_head: dict[str, BlockRef] = {}  # per chain: head at the last idle run
        self.custody = custody  # releases of UTXO-custody chains (Bitcoin)
        self.escrow = escrow  # releases of escrow-multisig chains (Cosmos SDK)
        self.htlc_mints = htlc_mints  # HTLC-driven mints: sweeps and expiries (relayer.htlc_mint)
        self.risk = RiskGate(store, risk, self.clock)
        self.accountant = accountant
        self.replica_id, self.claim_ttl_s = replica_id, claim_ttl_s
        for releases in (custody, escrow):  # their release plans pass the same gate
            if releases is not None and getattr(releases, "risk", None) is None:
                releases.risk = self.risk

    # ------------------------------------------------------------------ one chain
    def run_chain(self, chain: str) -> None:
        """One scheduler run for `chain`: watch and confirm only if the head moved since the
        last run that caught up (a reorg changes the head hash too), then drive releases."""
        head = self.chains[chain].adapter.head()
        if self._idle_head.get(chain) != head:
            self.watch_chain(chain, head)
            confirmed = self.confirm_chain(chain, head)
            cursor = self.store.cursor(f"chain:{chain}")
            caught_up = cursor is not None and cursor.number >= head.number
            if caught_up and confirmed < MAX_PAGES * self.batch_size:
                self._idle_head[chain] = head
        self._release_any(chain, head)

    def _release_any(self, chain: str, head: BlockRef | None = None) -> int:
        """Releases to `chain`: the custody job for UTXO chains, the bridge flow otherwise."""
        if self.custody is not None and chain in self.custody.chains:
            head = head or self.chains[chain].adapter.head()
            done = self.custody.run(chain, head.number)
            if self.htlc_mints is not None:
                done += self.htlc_mints.run_chain(chain)
            return done
        if self.escrow is not None and chain in self.escrow.chains:
            head = head or self.chains[chain].adapter.head()
            return self.escrow.run(chain, head.number)
        return self.release(chain)

    # ------------------------------------------------------------------ lock side
    def watch_chain(self, chain: str, head: BlockRef | None = None) -> int:
        """Scan the next window of blocks for lock events; detect reorgs by block-hash
        continuity of the cursor and rewind to the newest scanned block still canonical.

        Returns:
            The number of new transfers.

        Raises:
            ReorgDetected: no scanned block (cursor or trail) is canonical any more: the reorg
                is deeper than the trail. Nothing is changed and the chain stops advancing
                until someone looks.
            RpcUnavailable, WrongChain: from the adapter.
        """
        plan = self.chains[chain]
        a = plan.adapter
        head = head or a.head()
        self.metrics.head_height.labels(chain).set(head.number)
        cursor = self.store.cursor(f"chain:{chain}")
        if cursor is None:
            cursor = self._anchor(chain, plan)
        elif a.block_hash(cursor.number) != cursor.hash:
            cursor = self._rewind_to_fork(chain, cursor)
        start = plan.start_block if cursor is None else cursor.number + 1
        end = min(head.number, start + plan.max_block_range - 1)
        if end < start:
            return 0
        end_hash = head.hash if end == head.number else a.block_hash(end)
        events = a.lock_events(start, end)
        if end_hash is None or a.block_hash(end) != end_hash:
            return 0  # the chain moved under the scan; try again next run
        new = self.store.record_lock_events(chain, events, BlockRef(end, end_hash),
                                            dict(plan.assets or {}))
        if new:
            self.metrics.events_observed.labels(chain).inc(new)
        return new

    def _anchor(self, chain: str, plan: ChainPlan) -> BlockRef | None:
        """Before the first scan, make the parent of `start_block` the cursor and first trail
        entry (nothing below `start_block` is wanted), so a reorg of the first scanned blocks
        has a remembered canonical block to rewind to instead of raising `ReorgDetected`.
        None if `start_block` is 0 or its parent is above the head (retried next run)."""
        if plan.start_block < 1:
            return None
        parent = plan.start_block - 1
        parent_hash = plan.adapter.block_hash(parent)
        if parent_hash is None:
            return None
        anchor = BlockRef(parent, parent_hash)
        self.store.record_lock_events(chain, [], anchor, {})
        return anchor

    def _rewind_to_fork(self, chain: str, cursor: BlockRef) -> BlockRef:
        """The cursor's block changed: rewind the store to the newest scanned block that is
        still canonical (`adapters.reorg.fork_point` over the cursor and the scanned trail)
        and return it as the new cursor.

        SECURITY: never guesses a fork point. If nothing remembered is canonical the reorg is
        deeper than the trail: count it, log an ERROR and raise `ReorgDetected`, store untouched.
        """
        a = self.chains[chain].adapter
        try:
            fork = fork_point(a, [cursor, *self.store.scanned_trail(chain)])
        except ReorgDetected as exc:
            self.metrics.reorgs.labels(chain).inc()
            log.error("reorg deeper than the scanned trail chain=%s cursor=%d: %s",
                      chain, cursor.number, exc)
            raise
        if fork is None:
            return cursor  # the cursor's block is canonical again (the chain switched back)
        dropped = self.store.rewind(chain, fork, f"reorg: fork below height {fork.number + 1}")
        self.metrics.reorgs.labels(chain).inc()
        log.warning("reorg chain=%s fork=%d dropped=%d", chain, fork.number, dropped)
        return fork

    def confirm_chain(self, chain: str, head: BlockRef | None = None) -> int:
        """Move observed locks at or past confirmation depth to `confirmed` if their block is
        still canonical; a lock whose block was replaced is dropped and its range rescanned.
        Works through every page that is ready (at most `MAX_PAGES` per run)."""
        fin = self.chains[chain].adapter.finalized(head)
        self.metrics.finalized_height.labels(chain).set(fin.number)
        done = 0
        for _ in range(MAX_PAGES):
            moved, full = self._confirm_page(chain, fin)
            done += moved
            if not full:
                break
        record_head(self.store, chain, head or fin, fin, self.store.cursor(f"chain:{chain}"))
        return done

    def _confirm_page(self, chain: str, fin: BlockRef) -> tuple[int, bool]:
        a = self.chains[chain].adapter
        rows = self.store.transfers(S.OBSERVED, kind=TransferKind.LOCK, chain=chain,
                                    max_block=fin.number, limit=self.batch_size)
        hashes: dict[int, str | None] = {}
        changes = []
        for r in rows:
            if r.block_number not in hashes:
                hashes[r.block_number] = a.block_hash(r.block_number)
            if hashes[r.block_number] != r.block_hash:
                below = r.block_number - 1
                fork = BlockRef(below, a.block_hash(below) or "")
                self.store.rewind(chain, fork, "reorg: block replaced before confirmation")
                self.metrics.reorgs.labels(chain).inc()
                return 0, False
            depth = fin.number - r.block_number + a.confirmation_depth
            changes.append(Change(r.id, S.CONFIRMED, f"{depth} confirmations",
                                  self.risk.wait_at_confirm(r)))
        self.store.advance(changes)
        if changes:
            self.store.prune_trail(chain, below=fin.number - 256)
        return len(changes), len(rows) == self.batch_size

    def mint(self) -> int:
        """Collect quorums for confirmed locks and submit attested ones to the ledger, page by
        page while pages come back full (at most `MAX_PAGES` per run).

        Replicas share this job: each page is claimed first (`Store.claim_mint_page`, ``FOR
        UPDATE SKIP LOCKED`` on PostgreSQL), so concurrent replicas work on disjoint pages; a
        claim lapses `claim_ttl_s` after a replica died holding it. The claim only spreads the
        work: a mint is keyed on the ledger by the lock's event id and the status move is a
        compare-and-set, so a lapsed claim taken over by another replica cannot mint twice.

        Returns the number of transfers executed (minted now or found already minted).
        """
        done, after = 0, 0
        vset: ValidatorSet = self.ledger_status.get().validator_set
        rp = self.risk.begin()  # FIFO per route holds across pages
        for _ in range(MAX_PAGES):
            rows = self.store.claim_mint_page(
                self.replica_id, self.claim_ttl_s, vset.epoch, vset.threshold, after_id=after,
                limit=self.batch_size)
            if not rows:
                break
            try:
                done += self._mint_page(rows, vset, rp)
            finally:
                self.store.release_claims(self.replica_id, [r.id for r in rows])
            if len(rows) < self.batch_size:
                break
            after = rows[-1].id
        self._requeue_stale_attested(vset)
        return done

    def _requeue_stale_attested(self, vset: ValidatorSet) -> None:
        """Attested locks whose quorum no longer counts (the set rotated) collect again."""
        attested = self.store.transfers(S.ATTESTED, kind=TransferKind.LOCK, limit=self.batch_size)
        if not attested:
            return
        have = self.store.attestations_for("lock", [r.event_key for r in attested], vset.epoch)
        self.store.advance(
            Change(r.id, S.CONFIRMED, "quorum no longer valid for the current epoch",
                   {"wait_reason": "quorum", "wait_until": None})
            for r in attested if len(have.get(r.event_key, [])) < vset.threshold)

    def _mint_page(self, rows: list[Any], vset: ValidatorSet, rp: RiskPass | None = None) -> int:
        confirmed = [r for r in rows if r.status == S.CONFIRMED.value]
        events = {r.event_key: _event_of(r) for r in rows}
        messages = {k: lock_attestation_message(self.network, e, vset.epoch)
                    for k, e in events.items()}
        atts = self.store.attestations_for("lock", list(events), vset.epoch)
        members = {"0x" + k.hex() for k in vset.ed25519_keys}
        certs: dict[str, list[tuple[bytes, bytes]]] = {}
        for key, msg in messages.items():
            digest = "0x" + hashlib.sha256(msg).hexdigest()
            sigs = [(parse_hex(v, 32), parse_hex(s, 64))
                    for v, s, mh in atts.get(key, []) if mh == digest and v in members]
            if len(sigs) >= vset.threshold:
                certs[key] = sorted(sigs)[: vset.threshold]
        now = self.clock.now()
        to_attest = []
        for r in confirmed:
            if next_action(Legs(TransferKind.LOCK, S.CONFIRMED, r.event_key in certs)) == Action.MINT:
                to_attest.append(Change(
                    r.id, S.ATTESTED, f"quorum {vset.threshold} of epoch {vset.epoch}",
                    {"wait_reason": None} if r.wait_reason == "quorum" else {}))
                self.metrics.attestation_latency.observe(max(0.0, now - r.updated_at))
        self.store.advance(to_attest)
        # Risk: limits, delays, pauses and the pre-mint solvency check (relayer.risk_gate).
        rp = rp or self.risk.begin()
        ready = gate_mints(rp, [r for r in rows if r.event_key in certs], self.accountant)
        if not ready:
            return 0
        requests = [self.mint_request(events[r.event_key], vset.epoch, certs[r.event_key])
                    for r in ready]
        results = {res.event_id: res for res in self.ledger.submit_mints(requests)}
        done, back, deferred = [], [], []
        for r in ready:
            res = results.get(r.event_key)
            if res is None:
                continue
            if res.status in ("minted", "duplicate"):
                done.append(Change(r.id, S.EXECUTED, f"{res.status} on the ledger",
                                   {"ledger_seq": res.seq}))
                log.info("mint %s transfer_id=%s event=%s ledger_seq=%s", res.status, r.id,
                         r.event_key, res.seq, extra={"transfer_id": r.id})
                self.metrics.executed.labels(LEDGER).inc()
            elif res.status == "deferred":  # the ledger's own risk rules: wait, never hold
                deferred.append((r, res))
            elif res.code in RECOLLECT_CODES:
                # e.g. the validator set rotated between collection and submission.
                back.append(Change(r.id, S.CONFIRMED, f"ledger refused certificate: {res.code}"))
                self.ledger_status.invalidate()
            else:
                back.append(Change(r.id, S.HELD, f"ledger refused mint: {res.code}"))
        self.store.advance(done)
        # ready rows were CONFIRMED or ATTESTED; the first group was just moved to ATTESTED.
        # Nothing of `back` was minted: its usage leaves the window with the move.
        keys = {r.id: r.event_key for r in ready}
        self.store.advance(back, also=rp.forget([keys[c.id] for c in back]) if back else None)
        rp.defer(deferred)
        return len(done)

    # ------------------------------------------------------------------ burn side
    def watch_ledger(self) -> int:
        """Record new ledger burns as confirmed transfers (the ledger is final)."""
        cursor = self.store.cursor("ledger:burns")
        after = cursor.number if cursor else 0
        burns = self.ledger.burns(after_seq=after, limit=self.batch_size)
        if not burns:
            return 0
        new = [NewBurn(burn_id="0x" + b.burn_id.hex(), seq=b.seq, dest_chain=b.dest_chain,
                       token=b.origin_token.lower(), asset=b.asset, amount=b.amount,
                       account="0x" + b.account.hex(), dest_address=b.dest_address)
               for b in burns]
        n = self.store.record_burns(new, max(b.seq for b in burns))
        self.metrics.events_observed.labels(LEDGER).inc(n)
        unserved = [self.store.get(b.burn_id) for b in new if b.dest_chain not in self.chains]
        self.store.advance(Change(r.id, S.HELD, f"no adapter for {r.dest_chain}")
                           for r in unserved if r is not None and r.status == S.CONFIRMED.value)
        return n

    def release(self, chain: str) -> int:
        """Drive burns to `chain`: collect a quorum, persist the signed release, broadcast it,
        and mark it executed once the bridge shows the burn id released at depth."""
        a = self.chains[chain].adapter
        if not self.store.transfers((S.CONFIRMED, S.ATTESTED, S.SUBMITTED),
                                    kind=TransferKind.BURN, chain=chain, limit=1):
            return 0
        set_nonce, members, threshold = self.bridge_sets[chain].get()
        try:
            self._attest_releases(chain, a, set_nonce, members, threshold)
        except Unsupported as exc:  # a chain whose adapter cannot release (yet): say so, hold
            waiting = self.store.transfers(S.CONFIRMED, kind=TransferKind.BURN, chain=chain,
                                           limit=self.batch_size)
            self.store.advance(Change(r.id, S.HELD, f"no release path to {chain}: {exc}")
                               for r in waiting)
            return 0
        executed = 0
        rp = self.risk.begin()
        for r in rp.admit(self.store.transfers(S.ATTESTED, kind=TransferKind.BURN, chain=chain,
                                               limit=self.batch_size)):
            self._submit(r, a, set_nonce, members, threshold, rp)
        for r in self.store.transfers(S.SUBMITTED, kind=TransferKind.BURN, chain=chain,
                                      limit=self.batch_size):
            executed += self._follow(r, a)
        return executed

    def _attest_releases(self, chain: str, a: ChainAdapter, set_nonce: int,
                         members: tuple[str, ...], threshold: int) -> None:
        rows = self.store.transfers(S.CONFIRMED, kind=TransferKind.BURN, chain=chain,
                                    limit=self.batch_size)
        if not rows:
            return
        atts = self.store.attestations_for("release", [r.event_key for r in rows], set_nonce)
        changes = []
        for r in rows:
            if _release_sigs(r, a, atts, set_nonce, members, threshold):
                changes.append(Change(r.id, S.ATTESTED, f"quorum {threshold} of set {set_nonce}"))
                self.metrics.attestation_latency.observe(
                    max(0.0, self.clock.now() - r.updated_at))
        self.store.advance(changes)

    def _submit(self, r: Any, a: ChainAdapter, set_nonce: int, members: tuple[str, ...],
                threshold: int, rp: RiskPass | None = None) -> None:
        atts = self.store.attestations_for("release", [r.event_key], set_nonce)
        sigs = _release_sigs(r, a, atts, set_nonce, members, threshold)
        if not sigs:
            self.store.advance([Change(r.id, S.CONFIRMED, "quorum lost (validator set changed)",
                                       {"wait_reason": "quorum", "wait_until": None})])
            return
        if a.is_released(parse_hex(r.event_key, 32)):
            self.store.advance([Change(r.id, S.EXECUTED, "already released on chain")])
            return
        order = ReleaseOrder(burn_id=parse_hex(r.event_key, 32), token=r.token,
                             recipient=r.recipient, amount=int(r.amount), signatures=sigs)
        prepared = a.prepare_release(order)
        self.store.advance([Change(r.id, S.SUBMITTED, "release signed; broadcasting", {
            "dest_tx_hash": prepared.tx_hash, "dest_raw_tx": prepared.raw.hex(),
            "dest_sender_nonce": prepared.sender_nonce})],
            also=None if rp is None else rp.usage(r))  # counted with the persisted release
        try:
            a.broadcast(prepared)
            log.info("release broadcast transfer_id=%s chain=%s tx=%s", r.id, a.chain,
                     prepared.tx_hash, extra={"transfer_id": r.id})
        except RetryableChainError as exc:
            log.warning("broadcast failed transfer_id=%s tx=%s: %s", r.id, prepared.tx_hash, exc,
                        extra={"transfer_id": r.id})

    def _follow(self, r: Any, a: ChainAdapter) -> int:
        burn_id = parse_hex(r.event_key, 32)
        legs = Legs(TransferKind.BURN, S.SUBMITTED, True, a.tx_status(r.dest_tx_hash),
                    a.is_released(burn_id))
        match next_action(legs):
            case Action.MARK_EXECUTED:
                self.store.advance([Change(r.id, S.EXECUTED, f"released in {r.dest_tx_hash}")])
                self.metrics.executed.labels(a.chain).inc()
                return 1
            case Action.REBROADCAST:
                prepared = PreparedTx(r.dest_tx_hash, bytes.fromhex(r.dest_raw_tx),
                                      r.dest_sender_nonce)
                try:
                    a.broadcast(prepared)
                except NonceTooLow:
                    # The nonce went to another transaction and ours never landed: re-sign.
                    self.store.advance([Change(r.id, S.ATTESTED, "nonce reused; re-signing")])
                except BridgeError as exc:
                    log.warning("rebroadcast failed transfer_id=%s: %s", r.id, exc,
                                extra={"transfer_id": r.id})
            case Action.RESUBMIT:
                self.store.advance([Change(r.id, S.HELD, f"release {r.dest_tx_hash} reverted")])
            case Action.HOLD:
                self.store.advance([Change(
                    r.id, S.HELD, f"release {r.dest_tx_hash} is final but the bridge does not "
                    "show the burn released")])
            case _:
                pass  # WAIT_RELEASE: the transaction is pending or not yet at depth
        return 0

    # ------------------------------------------------------------------ all at once
    def tick(self) -> None:
        """Run every job once, in dependency order (tests and benchmarks call this)."""
        for chain in self.chains:
            self.run_chain(chain)
        self.mint()
        self.watch_ledger()
        for chain in self.chains:
            self._release_any(chain)

    def refresh_gauges(self) -> None:
        """The ``gauges`` job: the database-derived gauges (`relayer.gauges`)."""
        refresh_db_gauges(self.store, self.metrics, self.clock.now(), current_members(self))


def _event_of(r: Any) -> LockEvent:
    return LockEvent(
        chain=r.source_chain, contract=r.event_key.split("/")[1], nonce=r.nonce, token=r.token,
        sender=r.sender, amount=int(r.amount), recipient=parse_hex(r.recipient, 32),
        tx_hash=r.src_tx_hash, log_index=r.log_index, block_number=r.block_number,
        block_hash=r.block_hash)


def _release_sigs(
    r: Any, a: ChainAdapter, atts: Mapping[str, list[tuple[str, str, str]]], set_nonce: int,
    members: tuple[str, ...], threshold: int,
) -> tuple[bytes, ...]:
    """`threshold` signatures over OUR record of the burn, by distinct current members, in
    ascending signer order (the bridge's rule); empty if there are fewer."""
    digest = "0x" + a.release_message_hash(
        parse_hex(r.event_key, 32), r.token, r.recipient, int(r.amount), set_nonce).hex()
    by_signer = {v: s for v, s, mh in atts.get(r.event_key, []) if mh == digest and v in members}
    if len(by_signer) < threshold:
        return ()
    chosen = sorted(by_signer)[:threshold]
    return tuple(parse_hex(by_signer[v], 65) for v in chosen)
