"""Releases from an account-based escrow multisig (Cosmos SDK, Solana): plan one release at the
escrow's current sequence, collect member signatures, assemble, persist, broadcast, follow.

A "sequence" is what makes a signed spend single-use: the Cosmos escrow account's sequence, or
the durable nonce value a Solana release message uses as its blockhash (the adapter compares
them: `current_sequence`, `sequence_consumed`). A Solana message also names its m signers, so
a plan not fully signed within the chain's ``signing_timeout_s`` is abandoned and planned again
at the same sequence without the members that did not sign (both plans consume the same
nonce value: at most one can ever land).

Owns: the escrow release job. Must not import a chain library: the chain is an `EscrowCustody`.

One release is in flight per escrow at a time, because each signature commits to the escrow's
next account sequence: two plans at the same sequence could never both land, and a plan at a
sequence that another transaction consumed is dead. Lifecycle (transfer statuses in brackets)::

    [confirmed] plan stored at sequence s -> validators check and sign (inbox verifies)
    [attested]  >= m signers -> signed bytes stored -> [submitted] broadcast
    included with code 0 at depth -> [executed]; code != 0 -> [held]
    sequence moved past s and our tx is not on chain -> plan abandoned, re-planned ([confirmed])

SECURITY against paying a burn twice across sequences lives with the validators
(`validators.escrow_signer`): they sign a burn at a new sequence only after their own node shows
the earlier one consumed by a transaction that is not this burn's release.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Protocol

from adapters.base import PreparedTx, ReleasePlan, TxStatus
from adapters.errors import BridgeError, ChainError, RetryableChainError, ValidationError
from relayer.coins import (
    ABANDONED,
    BROADCAST,
    LIVE,
    SIGNING,
    CoinStore,
    _insert_plan,
    plan_of,
    signed_on,
)
from relayer.custody import _call
from relayer.machine import TransferKind, TransferStatus
from relayer.metrics import RelayerMetrics
from relayer.models import CustodyPlan
from relayer.store import Change, Store

log = logging.getLogger(__name__)
S = TransferStatus
BAD_MEMO_REASON = "not credited: bad_memo"  # `adapters.cosmos.watcher.BAD_MEMO`, as stored
P = CustodyPlan.__table__  # type: ignore[attr-defined]


class EscrowCustody(Protocol):
    """What the job asks of an escrow chain (`adapters.cosmos.adapter.CosmosAdapter` fits)."""

    chain: str
    confirmation_depth: int
    # Seconds a plan's named signers get before it is planned again without the absent ones;
    # None where a plan does not name its signers (any m members may sign: Cosmos).
    signing_timeout_s: float | None

    @property
    def threshold(self) -> int: ...

    def plan_signers(self, plan: ReleasePlan) -> tuple[str, ...]: ...

    def current_sequence(self) -> int | str | None: ...

    def sequence_consumed(self, sequence: int | str) -> bool: ...

    def plan_release(self, dest_address: str, token: str, amount: int, burn_id: str, *,
                     avoid: Sequence[str] = ()) -> ReleasePlan: ...

    def plan_refund(self, deposit_ref: str) -> ReleasePlan: ...

    def plan_sequence(self, plan: ReleasePlan) -> int | str: ...

    def tx_id(self, raw: bytes) -> str: ...

    def assemble_release(self, plan: ReleasePlan,
                         signatures: Mapping[str, list[bytes]]) -> PreparedTx: ...

    def broadcast(self, prepared: PreparedTx) -> str: ...

    def tx_status(self, tx_hash: str) -> TxStatus: ...


class EscrowReleases:
    """The release job of escrow chains.

    Args:
        store: the relayer store.
        chains: per CAIP-2 id, the chain's `EscrowCustody` adapter.
    """

    def __init__(self, store: Store, chains: Mapping[str, EscrowCustody],
                 metrics: RelayerMetrics | None = None) -> None:
        self.store = store
        self.coins = CoinStore(store)
        self.chains = chains
        self.metrics = metrics or RelayerMetrics()
        self._unrefundable: set[int] = set()  # held deposits this process found not refundable
        # chain -> members that let a plan stall and have not signed since, least recently
        # missed first (a re-plan names the others first, then rotates through these)
        self._missed: dict[str, dict[str, int]] = {}
        self._misses = 0
        self.risk: Any = None  # relayer.risk_gate.RiskGate (set by the engine)

    def run(self, chain: str, head_number: int) -> int:
        """One pass over `chain`; returns the number of transfers executed."""
        executed = self._follow(chain)
        self._assemble(chain, head_number)
        self._abandon_stalled(chain)
        self._plan_next(chain)
        return executed

    # ------------------------------------------------------------------ plan
    def _plan_next(self, chain: str) -> None:
        if self.coins.plans(chain, LIVE):
            return  # one release in flight per escrow
        a = self.chains[chain]
        waiting = self.store.transfers(S.CONFIRMED, kind=TransferKind.BURN, chain=chain,
                                       limit=1 if self.risk is None else 100)
        rp = None if self.risk is None or not waiting else self.risk.begin()
        if rp is not None:  # limits, delays, pauses: the first burn that may go is planned
            waiting = rp.admit(waiting)
        if not waiting:
            self._plan_refund(chain)
            return
        r = waiting[0]
        missed = self._missed.get(chain, {})
        avoid = sorted(missed, key=missed.__getitem__)
        try:
            plan = a.plan_release(r.recipient, r.token, int(r.amount), r.event_key, avoid=avoid)
        except ValidationError as exc:
            self.store.advance([Change(r.id, S.HELD, f"cannot release: {exc}")])
            return
        now = self.store.clock.now()
        insert_plan = partial(_call, _insert_or_revive, plan, r.id, now)
        self.store.advance([], also=insert_plan if rp is None else rp.usage(r, insert_plan))
        log.info("escrow release planned transfer_id=%s chain=%s sequence=%s plan=%s", r.id,
                 chain, a.plan_sequence(plan), plan.txid, extra={"transfer_id": r.id})

    def _abandon_stalled(self, chain: str) -> None:
        """Give up a plan whose named signers did not all sign within ``signing_timeout_s``
        (chains whose messages name their signers: Solana); the next plan avoids them."""
        a = self.chains[chain]
        timeout_s = a.signing_timeout_s
        if timeout_s is None:
            return
        now = self.store.clock.now()
        for row in self.coins.plans(chain, (SIGNING,)):
            if now - row.updated_at < timeout_s:
                continue
            plan = plan_of(row)
            signed = set(self._signatures(plan))
            missed = self._missed.setdefault(chain, {})
            for member in signed:
                missed.pop(member, None)
            missing = sorted(set(a.plan_signers(plan)) - signed)
            for member in missing:
                self._misses += 1
                missed[member] = self._misses
            self.store.advance([], also=partial(_call, _set_status, row.id, ABANDONED, now))
            log.warning("escrow release plan stalled chain=%s plan=%s: %d named signers did "
                        "not sign in %.0f s; re-planning without them", chain, plan.txid,
                        len(missing), timeout_s, extra={"transfer_id": row.transfer_id})

    def _plan_refund(self, chain: str) -> None:
        """Pay back one deposit reported for a bad memo (once: the transfer ends refunded)."""
        a = self.chains[chain]
        held = [r for r in self.store.transfers(S.HELD, kind=TransferKind.LOCK, chain=chain,
                                                limit=200)
                if r.reason == BAD_MEMO_REASON and r.id not in self._unrefundable]
        if not held:
            return
        r = held[0]
        try:
            plan = a.plan_refund(f"{r.src_tx_hash}/{r.log_index}")
        except ValidationError as exc:
            self._unrefundable.add(r.id)
            log.warning("deposit not refundable transfer_id=%s: %s", r.id, exc,
                        extra={"transfer_id": r.id})
            return
        now = self.store.clock.now()
        self.store.advance([], also=partial(_call, _insert_plan, plan, r.id, now))
        log.info("refund planned transfer_id=%s chain=%s to=%s amount=%d", r.id, chain,
                 plan.dest_address, plan.amount, extra={"transfer_id": r.id})

    # ------------------------------------------------------------------ signatures -> bytes
    def _signatures(self, plan: ReleasePlan) -> dict[str, list[bytes]]:
        atts = self.store.attestations_for("utxo_release", [plan.txid], 0)
        return {v: [bytes.fromhex(s) for s in sig.split(",")]
                for v, sig, mh in atts.get(plan.txid, []) if mh == plan.txid}

    def _assemble(self, chain: str, head_number: int) -> None:
        a = self.chains[chain]
        for row in self.coins.plans(chain, (SIGNING,)):
            plan = plan_of(row)
            sigs = self._signatures(plan)
            if len(sigs) < a.threshold:
                continue
            for member in sigs:  # they sign again: no longer avoided
                self._missed.get(chain, {}).pop(member, None)
            prepared = a.assemble_release(plan, sigs)
            transfer: Any = self.store.get_by_id(row.transfer_id)
            now = self.store.clock.now()
            if plan.kind == "refund":  # the held deposit keeps its status until refunded
                self.store.advance([], also=partial(_call, signed_on, row.id, prepared.raw,
                                                    head_number, now))
                self._broadcast(row.id, transfer.id, a, prepared)
                continue
            if transfer.status == S.CONFIRMED.value:
                self.store.advance([Change(transfer.id, S.ATTESTED,
                                           f"{len(sigs)} of {a.threshold} signers")])
            now = self.store.clock.now()
            self.store.advance(
                [Change(transfer.id, S.SUBMITTED, "release signed; broadcasting", {
                    "dest_tx_hash": prepared.tx_hash, "dest_raw_tx": prepared.raw.hex()})],
                also=partial(_call, signed_on, row.id, prepared.raw, head_number, now))
            self._broadcast(row.id, transfer.id, a, prepared)

    def _broadcast(self, plan_id: int, transfer_id: int, a: EscrowCustody,
                   prepared: PreparedTx) -> None:
        try:
            a.broadcast(prepared)
            log.info("escrow release broadcast transfer_id=%s chain=%s tx=%s", transfer_id,
                     a.chain, prepared.tx_hash, extra={"transfer_id": transfer_id})
        except RetryableChainError as exc:
            log.warning("broadcast failed transfer_id=%s tx=%s: %s", transfer_id,
                        prepared.tx_hash, exc, extra={"transfer_id": transfer_id})
        except ChainError as exc:  # SequenceMismatch or a refusal: settled by `_follow`
            log.warning("broadcast refused transfer_id=%s tx=%s: %s", transfer_id,
                        prepared.tx_hash, exc, extra={"transfer_id": transfer_id})

    # ------------------------------------------------------------------ follow
    def _follow(self, chain: str) -> int:
        a = self.chains[chain]
        executed = 0
        for row in self.coins.plans(chain, (SIGNING, BROADCAST)):
            plan = plan_of(row)
            transfer: Any = self.store.get_by_id(row.transfer_id)
            txhash = a.tx_id(bytes.fromhex(row.raw_tx)) if row.raw_tx else ""
            status = a.tx_status(txhash) if row.status == BROADCAST else TxStatus.UNKNOWN
            refund = plan.kind == "refund"
            now = self.store.clock.now()
            if status == TxStatus.FINAL:
                done = S.REFUNDED if refund else S.EXECUTED
                what = "refunded" if refund else "released"
                self.store.advance([Change(transfer.id, done, f"{what} in {txhash}",
                                           {"dest_tx_hash": txhash})],
                                   also=partial(_call, _set_status, row.id, "final", now))
                self.metrics.executed.labels(chain).inc()
                executed += 1
            elif status == TxStatus.FAILED:
                moves = [] if refund else [Change(transfer.id, S.HELD,
                                                  f"release {txhash} failed on chain")]
                self.store.advance(moves, also=partial(_call, _set_status, row.id, ABANDONED,
                                                       now))
            elif status == TxStatus.UNKNOWN:
                self._unknown(a, row, plan, transfer, txhash)
        return executed

    def _unknown(self, a: EscrowCustody, row: Any, plan: ReleasePlan, transfer: Any,
                 txhash: str) -> None:
        """Not on chain: if the escrow's sequence moved past the plan's, the plan is dead
        (re-plan); a broadcast plan still at its sequence is sent again (same bytes).

        The node's account state can be ahead of its transaction index: a broadcast plan whose
        sequence moved may be the very transaction that moved it, not yet indexed. So such a
        plan is given up only when its transaction is still unknown `INDEX_GRACE_S` after it
        was broadcast (validators refuse to sign a burn at a new sequence while an earlier
        spend of it could still pay, so giving up early would stall the transfer).
        """
        moved = a.sequence_consumed(a.plan_sequence(plan))
        now = self.store.clock.now()
        if moved and row.status == BROADCAST and (
                now - row.updated_at < INDEX_GRACE_S or a.tx_status(txhash) != TxStatus.UNKNOWN):
            return  # probably ours, not indexed yet: look again next pass
        if moved:
            back = [] if transfer.status in (S.CONFIRMED.value, S.HELD.value) else [Change(
                transfer.id, S.CONFIRMED, f"sequence {a.plan_sequence(plan)} was consumed "
                "elsewhere; re-planning")]
            if transfer.status == S.ATTESTED.value:
                back = [Change(transfer.id, S.CONFIRMED, "sequence consumed; re-planning")]
            self.store.advance(back, also=partial(_call, _set_status, row.id, ABANDONED, now))
            log.warning("escrow sequence moved transfer_id=%s plan=%s: re-planning",
                        transfer.id, plan.txid, extra={"transfer_id": transfer.id})
        elif row.status == BROADCAST and row.raw_tx:
            try:
                a.broadcast(PreparedTx("", bytes.fromhex(row.raw_tx), 0))
            except BridgeError as exc:
                log.warning("rebroadcast failed transfer_id=%s: %s", transfer.id, exc,
                            extra={"transfer_id": transfer.id})


INDEX_GRACE_S = 30.0  # how long a broadcast release may stay unindexed after its sequence moved


def _insert_or_revive(conn: Any, plan: ReleasePlan, transfer_id: int | None,
                      now: float) -> None:
    """Store a new plan, or put an abandoned plan with the very same bytes back to signing
    (a re-plan after a stall may choose the same signers again)."""
    old = conn.execute(P.select().where(P.c.txid == plan.txid)).first()
    if old is None:
        _insert_plan(conn, plan, transfer_id, now)
    elif old.status == ABANDONED:
        conn.execute(P.update().where(P.c.id == old.id).values(
            status=SIGNING, transfer_id=transfer_id, updated_at=now))


def _set_status(conn: Any, plan_id: int, status: str, now: float) -> None:
    conn.execute(P.update().where(P.c.id == plan_id).values(status=status, updated_at=now))
