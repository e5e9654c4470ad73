"""The relayer's persistent state: transfers, their history, attestations and chain cursors.

Owns: every read and write of the relayer database. `advance` is the only function that writes
a transfer's status; it checks the transition table, writes the history row and the status in
one transaction. Must not call chains or the ledger.

Hot paths (recording thousands of events, advancing batches) use SQLAlchemy Core statements
over the SQLModel tables; each public write is one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapters.base import BlockRef, Clock, LockEvent, SystemClock
from adapters.errors import IllegalTransition
from relayer.db import make_engine, migrate, write_transaction
from relayer.machine import TransferKind, TransferStatus, check_transition
from relayer.models import Attestation, Cursor, ScannedBlock, Transfer, TransferHistory

T = Transfer.__table__  # type: ignore[attr-defined]
H = TransferHistory.__table__  # type: ignore[attr-defined]
A = Attestation.__table__  # type: ignore[attr-defined]
C = Cursor.__table__  # type: ignore[attr-defined]
B = ScannedBlock.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Change:
    """One status change: transfer `id` moves to `to` for `reason`, setting `fields` too."""

    id: int
    to: TransferStatus
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewBurn:
    """A ledger burn the relayer will release on `dest_chain`."""

    burn_id: str  # 0x hex, 32 bytes
    seq: int
    dest_chain: str
    token: str
    asset: str
    amount: int
    account: str
    dest_address: str


class Store:
    """Relayer database access. Thread-safe: each call opens its own connection."""

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()

    @classmethod
    def open(cls, database_url: str, clock: Clock | None = None) -> Store:
        """Migrate `database_url` to the newest schema and open it."""
        migrate(database_url)
        return cls(make_engine(database_url), clock)

    # ----------------------------------------------------------------- status writes
    def advance(self, changes: Iterable[Change],
                also: Callable[[Connection], None] | None = None) -> int:
        """Apply status changes in ONE transaction, each checked against `TRANSITIONS`.

        A change whose transfer is no longer in the status it was read in (another worker moved
        it) raises `IllegalTransition` and rolls the whole batch back.

        Args:
            changes: the moves.
            also: further writes (custody coins and plans) made on the same transaction, so a
                status and the state it stands for commit together or not at all.

        Returns:
            The number of transfers moved.
        """
        changes = list(changes)
        if not changes and also is None:
            return 0
        if len({c.id for c in changes}) != len(changes):
            raise IllegalTransition("a transfer appears twice in one batch of changes")
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            current: dict[int, str] = {}
            for chunk in _chunks([c.id for c in changes], 900):
                rows = conn.execute(select(T.c.id, T.c.status).where(T.c.id.in_(chunk)))
                current.update({r.id: r.status for r in rows})
            moves = []
            for c in changes:
                if c.id not in current:
                    raise IllegalTransition(f"transfer {c.id} does not exist")
                moves.append(Move(c.id, TransferStatus(current[c.id]), c.to, c.reason, c.fields))
            if moves:
                _move_many(conn, moves, now)
            if also is not None:
                also(conn)
        return len(changes)

    # ----------------------------------------------------------------- observation
    def record_lock_events(
        self, chain: str, events: Sequence[LockEvent], scanned_to: BlockRef, assets: dict[str, str]
    ) -> int:
        """Persist newly seen lock events as `observed`, and move the chain cursor, in one
        transaction. Events of unregistered tokens are stored `held` (reason unknown_asset).

        An event already stored is left alone, unless it was `dropped` by a reorg and has
        reappeared (moved back to `observed` with its new block), or is still `observed` in a
        block that changed (block fields updated).

        Args:
            chain: CAIP-2 id.
            events: lock events from the bridge, in log order.
            scanned_to: the last block scanned (becomes the cursor and a reorg-trail entry).
            assets: origin token (lowercase) -> ledger asset key, for this chain.

        Returns:
            The number of new transfers.
        """
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            keys = [e.event_id for e in events]
            existing: dict[str, Any] = {}
            for chunk in _chunks(keys, 900):
                for row in conn.execute(
                    select(T.c.id, T.c.event_key, T.c.status, T.c.block_hash).where(
                        T.c.event_key.in_(chunk)
                    )
                ):
                    existing[row.event_key] = row
            new_rows = []
            for e in events:
                old = existing.get(e.event_id)
                if old is None:
                    asset = assets.get(e.token.lower())
                    ok = asset and e.uncredited is None
                    status = TransferStatus.OBSERVED if ok else TransferStatus.HELD
                    new_row = _lock_row(e, asset or "", status, now)
                    if not ok:
                        new_row["reason"] = ("not credited: " + e.uncredited
                                             if e.uncredited else "unknown_asset")
                    new_rows.append(new_row)
                elif old.status == TransferStatus.DROPPED.value or (
                    old.status == TransferStatus.OBSERVED.value and old.block_hash != e.block_hash
                ):
                    # The same lock reappeared after a reorg: in another block, or in the same
                    # block when the chain switched back to it (`reconsiderblock`).
                    fields = {"block_number": e.block_number, "block_hash": e.block_hash,
                              "src_tx_hash": e.tx_hash, "log_index": e.log_index,
                              "amount": str(e.amount), "recipient": "0x" + e.recipient.hex(),
                              "sender": e.sender, "token": e.token}
                    if old.status == TransferStatus.DROPPED.value:
                        _move_many(conn, [Move(old.id, TransferStatus.DROPPED,
                                               TransferStatus.OBSERVED,
                                               "re-observed in a new block after a reorg",
                                               fields)], now)
                    else:
                        conn.execute(update(T).where(T.c.id == old.id).values(
                            updated_at=now, **fields))
            if new_rows:
                ids = conn.execute(insert(T).returning(T.c.id, T.c.status, T.c.reason),
                                   new_rows).all()
                conn.execute(insert(H), [
                    {"transfer_id": r.id, "from_status": None, "to_status": r.status,
                     "reason": "lock observed" if r.status == TransferStatus.OBSERVED.value
                     else r.reason, "at": now} for r in ids])
            self._set_cursor(conn, f"chain:{chain}", scanned_to)
            conn.execute(delete(B).where(and_(B.c.chain == chain, B.c.number == scanned_to.number)))
            conn.execute(insert(B).values(chain=chain, number=scanned_to.number,
                                          hash=scanned_to.hash))
        return len(new_rows)

    def rewind(self, chain: str, fork: BlockRef, reason: str) -> int:
        """After a reorg: drop `observed` transfers above the fork, forget the scanned trail
        above it and move the cursor back to `fork`, in one transaction.

        Returns:
            The number of transfers dropped.
        """
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            rows = conn.execute(select(T.c.id).where(and_(
                T.c.source_chain == chain, T.c.kind == TransferKind.LOCK.value,
                T.c.block_number > fork.number,
                T.c.status == TransferStatus.OBSERVED.value))).all()
            if rows:
                _move_many(conn, [Move(r.id, TransferStatus.OBSERVED, TransferStatus.DROPPED,
                                       reason) for r in rows], now)
            conn.execute(delete(B).where(and_(B.c.chain == chain, B.c.number > fork.number)))
            self._set_cursor(conn, f"chain:{chain}", fork)
        return len(rows)

    def record_burns(self, burns: Sequence[NewBurn], ledger_cursor: int) -> int:
        """Persist ledger burns as `confirmed` transfers (the ledger is final) and move the
        ledger cursor, in one transaction. Already-stored burn ids are skipped."""
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            keys = [b.burn_id for b in burns]
            seen: set[str] = set()
            for chunk in _chunks(keys, 900):
                seen.update(r.event_key for r in conn.execute(
                    select(T.c.event_key).where(T.c.event_key.in_(chunk))))
            rows = [{
                "kind": TransferKind.BURN.value, "event_key": b.burn_id,
                "source_chain": "ferry:ledger", "dest_chain": b.dest_chain, "token": b.token,
                "asset": b.asset, "amount": str(b.amount), "sender": b.account,
                "recipient": b.dest_address, "src_tx_hash": b.burn_id, "nonce": b.seq,
                "ledger_seq": b.seq, "status": TransferStatus.CONFIRMED.value,
                "reason": "burn final on the ledger", "created_at": now, "updated_at": now,
            } for b in burns if b.burn_id not in seen]
            if rows:
                ids = conn.execute(insert(T).returning(T.c.id), rows).all()
                conn.execute(insert(H), [
                    {"transfer_id": r.id, "from_status": None,
                     "to_status": TransferStatus.CONFIRMED.value,
                     "reason": "burn final on the ledger", "at": now} for r in ids])
            self._set_cursor(conn, "ledger:burns", BlockRef(ledger_cursor, ""))
        return len(rows)

    # ----------------------------------------------------------------- attestations
    def add_attestations(self, rows: Sequence[dict[str, Any]]) -> int:
        """Store verified attestations; a repeat (same kind, key, epoch, validator) is ignored.

        Each row: kind, event_key, epoch, validator, signature, message_hash.
        Returns the number newly stored.
        """
        if not rows:
            return 0
        now = self.clock.now()
        fresh = [{**r, "epoch": int(r["epoch"]), "received_at": now} for r in rows]
        with write_transaction(self.engine) as conn:
            dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            stmt = dialect_insert(A).on_conflict_do_nothing(
                index_elements=["kind", "event_key", "epoch", "validator"]).returning(A.c.id)
            # RETURNING counts the stored rows on every dialect (executemany rowcount is -1
            # on PostgreSQL).
            return len(conn.execute(stmt, fresh).all())

    def attestations_for(
        self, kind: str, keys: Sequence[str], epoch: int
    ) -> dict[str, list[tuple[str, str, str]]]:
        """(validator, signature, message_hash) per event key, for one epoch/set nonce."""
        out: dict[str, list[tuple[str, str, str]]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(keys), 900):
                for r in conn.execute(select(
                        A.c.event_key, A.c.validator, A.c.signature, A.c.message_hash).where(
                        and_(A.c.kind == kind, A.c.epoch == epoch, A.c.event_key.in_(chunk)))):
                    out.setdefault(r.event_key, []).append(
                        (r.validator, r.signature, r.message_hash))
        return out

    def attestation_counts(
        self, kind: str, keys: Sequence[str], epoch: int
    ) -> dict[tuple[str, str], int]:
        """Stored signatures per (event key, message hash) for one epoch/set nonce."""
        out: dict[tuple[str, str], int] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(keys)), 900):
                for r in conn.execute(
                    select(A.c.event_key, A.c.message_hash, func.count().label("n"))
                    .where(and_(A.c.kind == kind, A.c.epoch == epoch, A.c.event_key.in_(chunk)))
                    .group_by(A.c.event_key, A.c.message_hash)
                ):
                    out[(r.event_key, r.message_hash)] = r.n
        return out

    # ----------------------------------------------------------------- reads
    def transfers(
        self, status: TransferStatus | tuple[TransferStatus, ...], *,
        kind: TransferKind | None = None, chain: str | None = None,
        max_block: int | None = None, after_id: int = 0, limit: int = 500,
    ) -> list[Any]:
        """Transfers in `status` (one or several), oldest first, with id above `after_id`
        (page by passing the last id seen), optionally of one kind and chain (the source chain
        for locks, the destination for burns), at or below `max_block`."""
        statuses = (status,) if isinstance(status, TransferStatus) else status
        q = select(T).where(T.c.status.in_([s.value for s in statuses]), T.c.id > after_id)
        if kind is not None:
            q = q.where(T.c.kind == kind.value)
        if chain is not None:
            q = q.where((T.c.source_chain if kind == TransferKind.LOCK else T.c.dest_chain)
                        == chain)
        if max_block is not None:
            q = q.where(T.c.block_number <= max_block)
        with self.engine.connect() as conn:
            return list(conn.execute(q.order_by(T.c.id).limit(limit)).all())

    def claim_mint_page(
        self, holder: str, ttl_s: float, epoch: int, at_least: int, *, after_id: int = 0,
        limit: int = 500,
    ) -> list[Any]:
        """Claim, for replica `holder`, up to `limit` confirmed or attested locks that have at
        least `at_least` attestations of `epoch` and are not claimed by another replica (or
        whose claim lapsed), oldest first with id above `after_id`; return them claimed until
        now + `ttl_s`.

        One transaction. On PostgreSQL the candidate rows are locked with
        ``SELECT ... FOR UPDATE OF transfers SKIP LOCKED``, so concurrent replicas claim
        disjoint pages without waiting for each other; SQLite serializes the whole transaction.
        """
        now = self.clock.now()
        # A correlated count per candidate (an index-only lookup in uq_attestation), not a join
        # with all attestations grouped: planned with statistics from before a burst of locks,
        # PostgreSQL ran that join as a nested loop re-aggregating every attestation for every
        # transfer (minutes for 5,000 locks; bench/replicas.py).
        counted = (
            select(func.count()).select_from(A)
            .where(A.c.kind == "lock", A.c.event_key == T.c.event_key, A.c.epoch == epoch)
            .correlate(T).scalar_subquery()
        )
        free = or_(T.c.claimed_by.is_(None), T.c.claimed_by == holder,
                   T.c.claim_expires_at < now)
        q = (select(T.c.id)
             .where(T.c.status.in_([TransferStatus.CONFIRMED.value,
                                    TransferStatus.ATTESTED.value]),
                    T.c.kind == TransferKind.LOCK.value, T.c.id > after_id, free,
                    counted >= at_least)
             .order_by(T.c.id).limit(limit)
             .with_for_update(of=T, skip_locked=True))
        with write_transaction(self.engine) as conn:
            ids = [r.id for r in conn.execute(q)]
            if not ids:
                return []
            for chunk in _chunks(ids, 900):
                conn.execute(update(T).where(T.c.id.in_(chunk)).values(
                    claimed_by=holder, claim_expires_at=now + ttl_s))
            rows: list[Any] = []
            for chunk in _chunks(ids, 900):
                rows.extend(conn.execute(select(T).where(T.c.id.in_(chunk))))
        return sorted(rows, key=lambda r: r.id)

    def release_claims(self, holder: str, ids: Sequence[int]) -> None:
        """Drop `holder`'s claims on `ids` (its work on them is recorded or given up)."""
        if not ids:
            return
        with write_transaction(self.engine) as conn:
            for chunk in _chunks(list(ids), 900):
                conn.execute(update(T).where(and_(T.c.id.in_(chunk), T.c.claimed_by == holder))
                             .values(claimed_by=None, claim_expires_at=None))

    def get_by_id(self, transfer_id: int) -> Any | None:
        with self.engine.connect() as conn:
            return conn.execute(select(T).where(T.c.id == transfer_id)).first()

    def get(self, event_key: str) -> Any | None:
        with self.engine.connect() as conn:
            return conn.execute(select(T).where(T.c.event_key == event_key)).first()

    def by_source_tx(self, tx_hash: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(T).where(T.c.src_tx_hash == tx_hash)).all())

    def history(self, transfer_id: int) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(H).where(H.c.transfer_id == transfer_id).order_by(H.c.id)).all())

    def counts_by_status(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {r.status: r.n for r in conn.execute(
                select(T.c.status, func.count().label("n")).group_by(T.c.status))}

    def cursor(self, name: str) -> BlockRef | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(C).where(C.c.name == name)).first()
        return BlockRef(row.number, row.hash) if row else None

    def scanned_trail(self, chain: str, limit: int = 256) -> list[BlockRef]:
        """Recent scanned (height, hash) pairs, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(B.c.number, B.c.hash).where(B.c.chain == chain)
                                .order_by(B.c.number.desc()).limit(limit)).all()
        return [BlockRef(r.number, r.hash) for r in rows]

    def prune_trail(self, chain: str, below: int) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(delete(B).where(and_(B.c.chain == chain, B.c.number < below)))

    @staticmethod
    def _set_cursor(conn: Any, name: str, ref: BlockRef) -> None:
        res = conn.execute(update(C).where(C.c.name == name).values(
            number=ref.number, hash=ref.hash))
        if res.rowcount == 0:
            conn.execute(insert(C).values(name=name, number=ref.number, hash=ref.hash))


@dataclass(frozen=True, slots=True)
class Move:
    id: int
    frm: TransferStatus
    to: TransferStatus
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)


def _move_many(conn: Any, moves: Sequence[Move], now: float) -> None:
    """The single writer of transfer status: check every move against the transition table,
    write each only if its row is still in `frm` (optimistic lock), and append the history
    rows, on the caller's transaction. Statements are batched (executemany) per field set.

    Raises:
        IllegalTransition: a move not in `TRANSITIONS`, or a row that another worker moved.
    """
    groups: dict[tuple[str, ...], list[Move]] = {}
    for m in moves:
        check_transition(m.frm, m.to)
        groups.setdefault(tuple(sorted(m.fields)), []).append(m)
    for names, group in groups.items():
        stmt = update(T).where(
            and_(T.c.id == bindparam("_id"), T.c.status == bindparam("_from"))
        ).values(status=bindparam("_to"), reason=bindparam("_reason"), updated_at=now,
                 **{n: bindparam(f"_f_{n}") for n in names})
        params = [{"_id": m.id, "_from": m.frm.value, "_to": m.to.value, "_reason": m.reason,
                   **{f"_f_{n}": m.fields[n] for n in names}} for m in group]
        if conn.dialect.supports_sane_multi_rowcount or len(params) == 1:
            changed = conn.execute(stmt, params).rowcount
        else:
            changed = sum(conn.execute(stmt, p).rowcount for p in params)
        if changed != len(params):
            raise IllegalTransition("a transfer was moved concurrently; batch rolled back")
    conn.execute(insert(H), [
        {"transfer_id": m.id, "from_status": m.frm.value, "to_status": m.to.value,
         "reason": m.reason, "at": now} for m in moves])


def _lock_row(e: LockEvent, asset: str, status: TransferStatus, now: float) -> dict[str, Any]:
    return {
        "kind": TransferKind.LOCK.value, "event_key": e.event_id, "source_chain": e.chain,
        "dest_chain": "ferry:ledger", "token": e.token.lower(), "asset": asset,
        "amount": str(e.amount), "sender": e.sender.lower(), "recipient": "0x" + e.recipient.hex(),
        "src_tx_hash": e.tx_hash.lower(), "log_index": e.log_index,
        "block_number": e.block_number, "block_hash": e.block_hash, "nonce": e.nonce,
        "status": status.value, "reason": "" if asset else "unknown_asset",
        "created_at": now, "updated_at": now,
    }


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
