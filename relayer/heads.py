"""Where each watched chain stands, as the engine last saw it: head, finalized height and the
scan cursor, one row per chain in ``chain_heads`` (migration 0005). The API serves it
(``GET /v1/chains``) and derives a lock's confirmations from it, without asking the chain.

Owns: the ``chain_heads`` table, `record_head` (the engine's write, once per chain pass) and
`chain_heads` (the read). Must not call a chain: the engine passes what it already read.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    MetaData,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapters.base import BlockRef
from relayer.db import write_transaction
from relayer.store import Store

metadata = MetaData()
chain_heads_table = Table(
    "chain_heads", metadata,
    Column("chain", String(64), primary_key=True),  # CAIP-2 id
    Column("head", BigInteger, nullable=False),
    Column("finalized", BigInteger, nullable=False),
    Column("scanned", BigInteger),  # the scan cursor (last block scanned), None before any
    Column("updated_at", Float, nullable=False),  # the store's clock, seconds
)
CH = chain_heads_table


@dataclass(frozen=True, slots=True)
class ChainHead:
    """One chain as the engine last saw it (heights are block numbers)."""

    chain: str
    head: int
    finalized: int
    scanned: int | None
    updated_at: float


def record_head(store: Store, chain: str, head: BlockRef, finalized: BlockRef,
                scanned: BlockRef | None) -> None:
    """Upsert `chain`'s row, stamped with the store's clock (one short write transaction)."""
    values = {"head": head.number, "finalized": finalized.number,
              "scanned": None if scanned is None else scanned.number,
              "updated_at": store.clock.now()}
    with write_transaction(store.engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(pg_insert(CH).values(chain=chain, **values)
                         .on_conflict_do_update(index_elements=["chain"], set_=values))
            return
        if conn.execute(update(CH).where(CH.c.chain == chain).values(**values)).rowcount == 0:
            conn.execute(sqlite_insert(CH).values(chain=chain, **values))


def chain_heads(store: Store, conn: Connection | None = None) -> dict[str, ChainHead]:
    """Every recorded chain, by CAIP-2 id (read on `conn` if given)."""
    if conn is None:
        with store.engine.connect() as own:
            return chain_heads(store, own)
    return {r.chain: ChainHead(r.chain, r.head, r.finalized, r.scanned, r.updated_at)
            for r in conn.execute(select(CH))}


def chain_head(store: Store, chain: str) -> ChainHead | None:
    """`chain`'s row, or None if the engine never recorded it."""
    with store.engine.connect() as conn:
        r = conn.execute(select(CH).where(CH.c.chain == chain)).first()
    return None if r is None else ChainHead(r.chain, r.head, r.finalized, r.scanned,
                                            r.updated_at)
