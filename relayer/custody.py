"""Releases on UTXO-custody chains (Bitcoin): plan, collect signatures, assemble, broadcast,
follow, bump. The chain-neutral counterpart of `Engine.release` for `UtxoCustody` adapters.

Owns: the custody release job. Must not import a chain library: the chain is a `UtxoCustody`.

Lifecycle of a burn to such a chain (transfer statuses in brackets)::

    [confirmed] plan stored, coins reserved --> validators sign each input (inbox)
    [attested]  >= m signers for every input --> signed bytes stored
    [submitted] broadcast; followed until final --> [executed], coins spent, change added
    fee too low / stuck for ``bump_after_blocks`` --> same inputs at a higher fee ([confirmed])

Every version of a burn's spend uses the same inputs, so at most one can ever confirm; the
follower checks all of them. After a crash the stored plan and bytes are reused, never rebuilt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

from adapters.base import ReleasePlan, TxStatus, UtxoCustody
from adapters.errors import BridgeError, IllegalTransition, RetryableChainError, ValidationError
from relayer.coins import (
    BROADCAST,
    LIVE,
    REPLACED,
    SIGNING,
    SWEEP_KIND,
    CoinStore,
    bump_on,
    final_on,
    plan_of,
    reserve_on,
    signed_on,
)
from relayer.machine import TransferKind, TransferStatus
from relayer.metrics import RelayerMetrics
from relayer.store import Change, Store

log = logging.getLogger(__name__)
S = TransferStatus
KIND = "utxo_release"  # attestation kind of per-input signatures (event_key = plan txid)
BUMP_FACTOR_NUM, BUMP_FACTOR_DEN = 3, 2  # each bump raises the fee rate by at least 50 %


def _call(fn: Callable[..., None], *args: Any) -> None:
    """`partial(_call, fn, *args)(conn)` runs ``fn(conn, *args)``: a write on `advance`'s
    transaction."""
    conn, rest = args[-1], args[:-1]
    fn(conn, *rest)


def _is_fee_too_low(exc: BaseException) -> bool:
    return getattr(exc, "code", "") == "fee_too_low"


class CustodySettings(Protocol):
    """Per-chain knobs (`adapters.bitcoin.config.BitcoinChainConfig` fits)."""

    confirmation_depth: int
    bump_after_blocks: int  # blocks a broadcast spend may wait before a fee bump
    max_fee_rate_sat_vb: int  # the highest fee rate a bump may reach
    consolidate_min_utxos: int  # consolidate when more coins than this are unspent
    consolidate_max_inputs: int  # at most this many coins per consolidation


class CustodyReleases:
    """The release and consolidation jobs of UTXO-custody chains.

    Args:
        store: the relayer store.
        chains: per CAIP-2 id, the chain's `UtxoCustody` adapter.
        settings: per CAIP-2 id, its `CustodySettings`.
    """

    def __init__(self, store: Store, chains: Mapping[str, UtxoCustody],
                 settings: Mapping[str, CustodySettings],
                 metrics: RelayerMetrics | None = None, batch_size: int = 100) -> None:
        self.store = store
        self.coins = CoinStore(store)
        self.chains = chains
        self.settings = settings
        self.metrics = metrics or RelayerMetrics()
        self.batch_size = batch_size
        self.risk: Any = None  # relayer.risk_gate.RiskGate (set by the engine)

    def run(self, chain: str, head_number: int) -> int:
        """One pass over `chain`; returns the number of transfers executed."""
        self.coins.sync_deposit_coins(chain)
        a, cfg = self.chains[chain], self.settings[chain]
        self.coins.sync_topup_coins(chain, a.coin_depth, cfg.confirmation_depth)
        self._plan_new(chain)
        self._consolidate(chain)
        self._assemble(chain, head_number)
        return self._follow(chain, head_number)

    # ------------------------------------------------------------------ plan
    def _plan_new(self, chain: str) -> None:
        a = self.chains[chain]
        rows = self.store.transfers(S.CONFIRMED, kind=TransferKind.BURN, chain=chain,
                                    limit=self.batch_size)
        waiting = {p.transfer_id for p in self.coins.plans(chain, LIVE)}
        todo = [r for r in rows if r.id not in waiting]
        rp = None if self.risk is None or not todo else self.risk.begin()
        if rp is not None:  # limits, delays, pauses: usage is counted with the stored plan
            todo = rp.admit(todo)
        if not todo:
            return
        rate = a.fee_rate()
        for r in todo:
            spendable = self.coins.coins(chain)
            try:
                plan = a.plan_release(spendable, r.recipient, int(r.amount), rate)
            except ValidationError as exc:
                if exc.code == "insufficient_funds":
                    log.warning("release waits for coins transfer_id=%s chain=%s amount=%s: %s",
                                r.id, chain, r.amount, exc, extra={"transfer_id": r.id})
                    continue
                self.store.advance([Change(r.id, S.HELD, f"cannot release: {exc}")])
                continue
            now = self.store.clock.now()
            reserve = partial(_call, reserve_on, plan, r.id, now)
            self.store.advance([], also=reserve if rp is None else rp.usage(r, reserve))
            log.info("release planned transfer_id=%s chain=%s tx=%s fee=%d inputs=%d", r.id,
                     chain, plan.txid, plan.fee, len(plan.coins), extra={"transfer_id": r.id})

    def _consolidate(self, chain: str) -> None:
        """Merge the smallest coins into one when the vault holds too many. The miner fee comes
        from the operator's fee reserve (top-ups of the bare vault address); without enough
        reserve nothing is spent and a warning says how much to top up."""
        cfg, a = self.settings[chain], self.chains[chain]
        if any(p.kind == "consolidation" for p in self.coins.plans(chain, LIVE)):
            return
        unspent = self.coins.coins(chain)
        if len(unspent) <= cfg.consolidate_min_utxos:
            return
        chosen = sorted(unspent, key=lambda c: (c.amount, c.txid, c.vout))
        plan = a.plan_consolidation(chosen[: cfg.consolidate_max_inputs], a.fee_rate())
        reserve = self.coins.fee_reserve(chain)
        if plan.fee > reserve:
            log.warning("consolidation of %d coins chain=%s needs a fee of %d sats; fee reserve "
                        "is %d: top up the vault address", len(plan.coins), chain, plan.fee,
                        reserve)
            return
        now = self.store.clock.now()
        self.store.advance([], also=partial(_call, reserve_on, plan, None, now))
        log.info("consolidation planned chain=%s tx=%s inputs=%d fee=%d", chain, plan.txid,
                 len(plan.coins), plan.fee)

    # ------------------------------------------------------------------ signatures -> bytes
    def signatures(self, plan: ReleasePlan) -> dict[str, list[bytes]]:
        """Stored (inbox-verified) per-input signatures of `plan`, by signer pubkey hex."""
        atts = self.store.attestations_for(KIND, [plan.txid], 0)
        return {v: [bytes.fromhex(s) for s in sig.split(",")]
                for v, sig, mh in atts.get(plan.txid, []) if mh == plan.txid}

    def _assemble(self, chain: str, head_number: int) -> None:
        a = self.chains[chain]
        for row in self.coins.plans(chain, (SIGNING,)):
            plan = plan_of(row)
            if plan.kind == SWEEP_KIND:
                continue  # assembled with the secret by relayer.htlc_mint
            sigs = self.signatures(plan)
            if len(sigs) < a.threshold:
                continue
            prepared = a.assemble_release(plan, sigs)
            now = self.store.clock.now()
            changes = []
            transfer = self.store.get_by_id(row.transfer_id) if row.transfer_id else None
            if transfer is not None:
                if transfer.status == S.CONFIRMED.value:
                    self.store.advance([Change(transfer.id, S.ATTESTED,
                                               f"{len(sigs)} of {a.threshold} signers")])
                changes.append(Change(transfer.id, S.SUBMITTED, "release signed; broadcasting", {
                    "dest_tx_hash": plan.txid, "dest_raw_tx": prepared.raw.hex()}))
            self.store.advance(changes, also=partial(_call, signed_on, row.id, prepared.raw,
                                                     head_number, now))
            self._broadcast(row, plan, prepared.raw)

    def _broadcast(self, row: Any, plan: ReleasePlan, raw: bytes) -> None:
        from adapters.base import PreparedTx

        a = self.chains[plan.chain]
        try:
            a.broadcast(PreparedTx(plan.txid, raw, 0))
            log.info("custody spend broadcast transfer_id=%s chain=%s tx=%s fee=%d", row.transfer_id,
                     plan.chain, plan.txid, plan.fee, extra={"transfer_id": row.transfer_id})
        except RetryableChainError as exc:
            if _is_fee_too_low(exc):
                log.warning("fee too low, bumping transfer_id=%s tx=%s: %s", row.transfer_id,
                            plan.txid, exc, extra={"transfer_id": row.transfer_id})
                self._bump(row, plan)
            else:
                log.warning("broadcast failed transfer_id=%s tx=%s: %s", row.transfer_id,
                            plan.txid, exc, extra={"transfer_id": row.transfer_id})
        except BridgeError as exc:
            log.error("broadcast refused transfer_id=%s tx=%s: %s", row.transfer_id, plan.txid,
                      exc, extra={"transfer_id": row.transfer_id})

    def _bump(self, row: Any, plan: ReleasePlan) -> None:
        a = self.chains[plan.chain]
        cap = self.settings[plan.chain].max_fee_rate_sat_vb
        rate = max(a.fee_rate(), -(-plan.fee_rate * BUMP_FACTOR_NUM // BUMP_FACTOR_DEN))
        if plan.fee_rate >= cap:
            log.error("fee bump at the cap transfer_id=%s tx=%s rate=%d", row.transfer_id,
                      plan.txid, plan.fee_rate, extra={"transfer_id": row.transfer_id})
            return
        try:
            bumped = a.bump_release(plan, min(rate, cap))
        except ValidationError as exc:
            log.error("cannot bump transfer_id=%s tx=%s: %s", row.transfer_id, plan.txid, exc,
                      extra={"transfer_id": row.transfer_id})
            return
        now = self.store.clock.now()
        changes = []
        transfer = self.store.get_by_id(row.transfer_id) if row.transfer_id else None
        if transfer is not None and transfer.status != S.CONFIRMED.value:
            changes.append(Change(transfer.id, S.CONFIRMED,
                                  f"fee bump to {bumped.fee_rate} sat/vB: re-signing"))
        self.store.advance(changes, also=partial(_call, bump_on, row.id, bumped,
                                                 row.transfer_id, now))
        log.info("fee bumped transfer_id=%s old=%s new=%s rate=%d", row.transfer_id, plan.txid,
                 bumped.txid, bumped.fee_rate, extra={"transfer_id": row.transfer_id})

    # ------------------------------------------------------------------ follow
    def _follow(self, chain: str, head_number: int) -> int:
        a = self.chains[chain]
        executed = 0
        rows = self.coins.plans(chain, (BROADCAST, REPLACED))
        for row in rows:
            if row.raw_tx is None:
                continue  # replaced before it was ever signed
            plan = plan_of(row)
            status = a.tx_status(plan.txid)
            if status == TxStatus.FINAL:
                executed += self._finalize(row, plan)
            elif status == TxStatus.UNKNOWN and row.status == BROADCAST:
                self._broadcast(row, plan, bytes.fromhex(row.raw_tx))
            elif (status == TxStatus.PENDING and row.status == BROADCAST
                  and plan.kind != SWEEP_KIND and head_number - (row.broadcast_height or head_number)
                  >= self.settings[chain].bump_after_blocks):
                self._bump(row, plan)
        return executed

    def _finalize(self, row: Any, plan: ReleasePlan) -> int:
        now = self.store.clock.now()
        transfer = self.store.get_by_id(row.transfer_id) if row.transfer_id else None
        changes = []
        if transfer is not None and transfer.status != S.EXECUTED.value:
            fields = {"dest_tx_hash": plan.txid, "dest_raw_tx": row.raw_tx}
            if transfer.status == S.CONFIRMED.value:  # an older version confirmed mid-bump
                self.store.advance([Change(transfer.id, S.ATTESTED, "an earlier version confirmed")])
            if transfer.status in (S.CONFIRMED.value, S.ATTESTED.value):
                self.store.advance([Change(transfer.id, S.SUBMITTED, "found on chain", fields)])
            changes.append(Change(transfer.id, S.EXECUTED,
                                  f"released in {plan.txid} (fee {plan.fee})", fields))
        try:
            self.store.advance(changes, also=partial(_call, final_on, plan, now))
        except IllegalTransition as exc:
            log.warning("finalize raced transfer_id=%s: %s", row.transfer_id, exc,
                        extra={"transfer_id": row.transfer_id})
            return 0
        self.metrics.executed.labels(plan.chain).inc()
        log.info("custody spend final transfer_id=%s chain=%s tx=%s", row.transfer_id,
                 plan.chain, plan.txid, extra={"transfer_id": row.transfer_id})
        return 1 if changes else 0
