"""Custody coins and proposed spends on UTXO chains (Bitcoin): their persistence.

Owns: every read and write of the ``coins`` and ``custody_plans`` tables. Writes that go with a
transfer's status change are functions of a connection (``*_on``) that `Store.advance` runs on
its own transaction (``also=``), so a status and the custody state it stands for commit together.
Must not call chains, the ledger or validators.

Crash safety: a plan's coins are reserved in the same transaction that stores the plan, before
any validator is asked to sign it; the signed bytes are stored before they are broadcast; a coin
is marked spent, and the change coin added, in the transaction that marks the transfer executed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update

from adapters.base import Coin, ReleasePlan
from adapters.errors import IllegalTransition
from relayer.db import write_transaction
from relayer.models import CustodyCoin, CustodyPlan, Transfer
from relayer.store import Store

K = CustodyCoin.__table__  # type: ignore[attr-defined]
P = CustodyPlan.__table__  # type: ignore[attr-defined]
T = Transfer.__table__  # type: ignore[attr-defined]

UNSPENT, RESERVED, SPENT = "unspent", "reserved", "spent"
# A funded mint-intent coin (`relayer.htlc_mint`): backs its minted ledger HTLC while that is
# locked or redeemed (status htlc) until swept (reserved -> spent); once the ledger HTLC
# expired and burned, the coin is the user's again (htlc_burned, backs nothing).
HTLC, HTLC_BURNED = "htlc", "htlc_burned"
BACKING = (UNSPENT, RESERVED, HTLC)  # coin statuses that back the wrapped supply
SWEEP_KIND = "htlc_sweep"
SIGNING, BROADCAST, REPLACED, FINAL, ABANDONED = (
    "signing", "broadcast", "replaced", "final", "abandoned")
LIVE = (SIGNING, BROADCAST, REPLACED)  # plans that may still confirm or be signed
TOPUP_REASON = "not credited: no_recipient_commitment"  # a payment to the bare vault address


class CoinStore:
    """Custody tables over the relayer's database (the same engine as `Store`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine
        self.clock = store.clock

    # ------------------------------------------------------------------ coins
    def sync_deposit_coins(self, chain: str) -> int:
        """Add a coin for every minted deposit of `chain` not yet in the table (idempotent).

        A deposit becomes spendable once its mint executed: from then on it backs supply.
        """
        now = self.clock.now()
        with self.store_tx() as conn:
            known = {(r.txid, r.vout) for r in conn.execute(
                select(K.c.txid, K.c.vout).where(K.c.chain == chain))}
            rows = conn.execute(select(T.c.src_tx_hash, T.c.log_index, T.c.amount,
                                       T.c.recipient).where(and_(
                T.c.source_chain == chain, T.c.kind == "lock",
                T.c.status == "transfer.executed",
                ~T.c.sender.startswith("htlc:")))).all()  # mint-intent coins: relayer.htlc_mint
            new = [{"chain": chain, "txid": r.src_tx_hash, "vout": r.log_index,
                    "amount": int(r.amount), "account": r.recipient, "origin": "deposit",
                    "status": UNSPENT, "spent_by": None, "created_at": now, "updated_at": now}
                   for r in rows if (r.src_tx_hash, r.log_index) not in known]
            if new:
                conn.execute(insert(K), new)
        return len(new)

    def sync_topup_coins(self, chain: str, depth_of: Callable[[Coin], int | None],
                         depth: int) -> int:
        """Add, as ``topup`` coins, payments to the bare vault address (reported, never
        credited) that the chain shows unspent at `depth` confirmations: the operator's fee
        reserve for consolidations. Read from the chain, so a reorged payment never counts."""
        with self.engine.connect() as conn:
            known = {(r.txid, r.vout) for r in conn.execute(
                select(K.c.txid, K.c.vout).where(K.c.chain == chain))}
            rows = conn.execute(select(T.c.src_tx_hash, T.c.log_index, T.c.amount).where(and_(
                T.c.source_chain == chain, T.c.kind == "lock", T.c.status == "transfer.held",
                T.c.reason == TOPUP_REASON))).all()
        candidates = [Coin(r.src_tx_hash, r.log_index, int(r.amount)) for r in rows
                      if (r.src_tx_hash, r.log_index) not in known]
        ready = [c for c in candidates if (depth_of(c) or 0) >= depth]
        if ready:
            now = self.clock.now()
            with self.store_tx() as conn:
                conn.execute(insert(K), [
                    {"chain": chain, "txid": c.txid, "vout": c.vout, "amount": c.amount,
                     "account": None, "origin": "topup", "status": UNSPENT, "spent_by": None,
                     "created_at": now, "updated_at": now} for c in ready])
        return len(ready)

    def sync_htlc_coins(self, chain: str) -> int:
        """Add, with status `HTLC`, a coin for every minted mint-intent funding output of
        `chain` (lock transfers marked ``htlc:``, executed) not yet in the table (idempotent).
        Its account is the intent id."""
        now = self.clock.now()
        with self.store_tx() as conn:
            known = {(r.txid, r.vout) for r in conn.execute(
                select(K.c.txid, K.c.vout).where(K.c.chain == chain))}
            rows = conn.execute(select(T.c.src_tx_hash, T.c.log_index, T.c.amount,
                                       T.c.recipient).where(and_(
                T.c.source_chain == chain, T.c.kind == "lock",
                T.c.status == "transfer.executed", T.c.sender.startswith("htlc:")))).all()
            new = [{"chain": chain, "txid": r.src_tx_hash, "vout": r.log_index,
                    "amount": int(r.amount), "account": r.recipient, "origin": "htlc",
                    "status": HTLC, "spent_by": None, "created_at": now, "updated_at": now}
                   for r in rows if (r.src_tx_hash, r.log_index) not in known]
            if new:
                conn.execute(insert(K), new)
        return len(new)

    def htlc_coins(self, chain: str) -> list[tuple[Coin, str]]:
        """Coins of status `HTLC` on `chain` with the event id of the lock that funded each."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(K, T.c.event_key).join(T, and_(
                T.c.source_chain == K.c.chain, T.c.src_tx_hash == K.c.txid,
                T.c.log_index == K.c.vout, T.c.kind == "lock")).where(and_(
                    K.c.chain == chain, K.c.status == HTLC))).all()
        return [(_coin(r), r.event_key) for r in rows]

    def lock_event_of(self, chain: str, coin: Coin) -> str | None:
        """The event id of the lock transfer whose output `coin` is, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(T.c.event_key).where(and_(
                T.c.source_chain == chain, T.c.src_tx_hash == coin.txid,
                T.c.log_index == coin.vout, T.c.kind == "lock"))).first()
        return None if row is None else str(row.event_key)

    def fee_reserve(self, chain: str) -> int:
        """Sats of the operator's top-ups not yet spent on consolidation and HTLC-sweep fees
        (negative: the operator owes fees). Holdings minus this reserve back the wrapped
        supply."""
        with self.engine.connect() as conn:
            topups = sum(int(r.amount) for r in conn.execute(select(K.c.amount).where(and_(
                K.c.chain == chain, K.c.origin == "topup"))))
            plans = conn.execute(select(P.c.plan).where(and_(
                P.c.chain == chain, P.c.kind.in_(("consolidation", SWEEP_KIND)),
                P.c.status == FINAL))).all()
        return topups - sum(int(json.loads(p.plan)["fee"]) for p in plans)

    def coins(self, chain: str, statuses: tuple[str, ...] = (UNSPENT,)) -> list[Coin]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(K).where(and_(K.c.chain == chain,
                                                     K.c.status.in_(statuses)))).all()
        return [_coin(r) for r in rows]

    def holdings(self, chain: str) -> int:
        """Sats in unspent or reserved coins (reserved ones are still the vault's) and in
        mint-intent coins whose ledger HTLC was not burned (`BACKING`)."""
        return sum(c.amount for c in self.coins(chain, BACKING))

    def pending_releases(self, chain: str) -> int:
        """Sats burned on the ledger for `chain` and not yet paid out (burns not executed)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(T.c.amount).where(and_(
                T.c.dest_chain == chain, T.c.kind == "burn",
                T.c.status != "transfer.executed"))).all()
        return sum(int(r.amount) for r in rows)

    # ------------------------------------------------------------------ plans
    def plans(self, chain: str, statuses: tuple[str, ...]) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(P).where(and_(
                P.c.chain == chain, P.c.status.in_(statuses))).order_by(P.c.id)))

    def plans_of(self, transfer_id: int) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(P).where(P.c.transfer_id == transfer_id)
                                     .order_by(P.c.version)))

    def plan_by_txid(self, txid: str) -> Any | None:
        with self.engine.connect() as conn:
            return conn.execute(select(P).where(P.c.txid == txid)).first()

    def store_tx(self) -> Any:
        return write_transaction(self.engine)


# ---------------------------------------------------------------------- on a transaction
def reserve_on(conn: Connection, plan: ReleasePlan, transfer_id: int | None, now: float) -> None:
    """Store `plan` (status signing) and reserve its coins; `IllegalTransition` if a coin is
    not unspent (another plan took it)."""
    _reserve(conn, plan, transfer_id, now, UNSPENT, "unspent")


def _reserve(conn: Connection, plan: ReleasePlan, transfer_id: int | None, now: float,
             from_status: str, what: str) -> None:
    """Move each coin of `plan` from `from_status` to reserved (by this plan), then store the
    plan; `IllegalTransition` naming `what` the coin should have been if one was not."""
    for c in plan.coins:
        changed = conn.execute(update(K).where(and_(
            K.c.chain == plan.chain, K.c.txid == c.txid, K.c.vout == c.vout,
            K.c.status == from_status)).values(status=RESERVED, spent_by=plan.txid,
                                               updated_at=now)).rowcount
        if changed != 1:
            raise IllegalTransition(f"coin {c.outpoint} is not {what}")
    _insert_plan(conn, plan, transfer_id, now)


def reserve_htlc_on(conn: Connection, plan: ReleasePlan, now: float) -> None:
    """Store a sweep `plan` (status signing) and reserve its one `HTLC` coin;
    `IllegalTransition` if the coin is not in status `HTLC`."""
    _reserve(conn, plan, None, now, HTLC, "an unswept htlc coin")


def htlc_burned_on(conn: Connection, chain: str, coin: Coin, now: float) -> None:
    """The ledger burned the HTLC `coin` backed: it backs nothing any more (the user refunds
    it at its CLTV)."""
    conn.execute(update(K).where(and_(
        K.c.chain == chain, K.c.txid == coin.txid, K.c.vout == coin.vout, K.c.status == HTLC))
        .values(status=HTLC_BURNED, updated_at=now))


def bump_on(conn: Connection, old_id: int, plan: ReleasePlan, transfer_id: int | None,
            now: float) -> None:
    """Store a fee-bumped `plan` (same coins) and mark the old one replaced."""
    conn.execute(update(P).where(P.c.id == old_id).values(status=REPLACED, updated_at=now))
    for c in plan.coins:
        conn.execute(update(K).where(and_(K.c.chain == plan.chain, K.c.txid == c.txid,
                                          K.c.vout == c.vout))
                     .values(spent_by=plan.txid, updated_at=now))
    _insert_plan(conn, plan, transfer_id, now)


def signed_on(conn: Connection, plan_id: int, raw: bytes, height: int, now: float) -> None:
    """Persist the signed bytes of a plan (before broadcasting them)."""
    conn.execute(update(P).where(P.c.id == plan_id).values(
        status=BROADCAST, raw_tx=raw.hex(), broadcast_height=height, updated_at=now))


def final_on(conn: Connection, plan: ReleasePlan, now: float) -> None:
    """The spend `plan` is final: its coins are spent, its change is a new unspent coin, it
    is final and every other plan over the same coins is abandoned."""
    row = conn.execute(select(P.c.id, P.c.transfer_id).where(P.c.txid == plan.txid)).one()
    for c in plan.coins:
        conn.execute(update(K).where(and_(K.c.chain == plan.chain, K.c.txid == c.txid,
                                          K.c.vout == c.vout))
                     .values(status=SPENT, spent_by=plan.txid, updated_at=now))
    conn.execute(update(P).where(P.c.id == row.id).values(status=FINAL, updated_at=now))
    if row.transfer_id is not None:
        conn.execute(update(P).where(and_(P.c.transfer_id == row.transfer_id, P.c.id != row.id))
                     .values(status=ABANDONED, updated_at=now))
    into_vault = plan.kind in ("consolidation", SWEEP_KIND)  # output 0 pays the vault
    change_vout = 0 if into_vault else 1
    change = plan.payee_amount if into_vault else plan.change
    if change > 0:
        exists = conn.execute(select(K.c.id).where(and_(
            K.c.chain == plan.chain, K.c.txid == plan.txid, K.c.vout == change_vout))).first()
        if exists is None:
            conn.execute(insert(K).values(
                chain=plan.chain, txid=plan.txid, vout=change_vout, amount=change, account=None,
                origin="change", status=UNSPENT, spent_by=None, created_at=now, updated_at=now))


def _insert_plan(conn: Connection, plan: ReleasePlan, transfer_id: int | None,
                 now: float) -> None:
    conn.execute(insert(P).values(
        chain=plan.chain, txid=plan.txid, kind=plan.kind, transfer_id=transfer_id,
        version=plan.version, status=SIGNING, plan=json.dumps(plan.to_json()), raw_tx=None,
        broadcast_height=None, created_at=now, updated_at=now))


def plan_of(row: Any) -> ReleasePlan:
    return ReleasePlan.from_json(json.loads(row.plan))


def _coin(r: Any) -> Coin:
    return Coin(txid=r.txid, vout=r.vout, amount=int(r.amount),
                account=None if r.account is None else bytes.fromhex(r.account[2:]))
