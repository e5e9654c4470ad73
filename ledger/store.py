"""SQL access of the ledger, in SQLAlchemy Core over the SQLModel tables (no per-row ORM
objects: the mint hot path loads and writes whole batches with ``executemany``).

Owns: the statements that read and write ledger tables. Must not decide anything: callers
(`ledger.service`, `ledger.minting`) check the rules and hold the write transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, bindparam, insert, select, update
from sqlalchemy.engine import Connection, Row

from ledger import history
from ledger.journal import JournalChain
from ledger.models import (
    AccountRow,
    AssetRow,
    BalanceRow,
    BridgeRow,
    BurnRow,
    DepositAddressRow,
    JournalRow,
    LedgerStateRow,
    MintRow,
    TransferRow,
    ValidatorSetRow,
)
from ledger.types import AssetInfo, BurnRecord, DepositRegistration, JournalEntry
from validators.attestation import ValidatorInfo, ValidatorSet, canonical

STATE: Table = LedgerStateRow.__table__  # type: ignore[attr-defined]
JOURNAL: Table = JournalRow.__table__  # type: ignore[attr-defined]
VSETS: Table = ValidatorSetRow.__table__  # type: ignore[attr-defined]
BRIDGES: Table = BridgeRow.__table__  # type: ignore[attr-defined]
ASSETS: Table = AssetRow.__table__  # type: ignore[attr-defined]
ACCOUNTS: Table = AccountRow.__table__  # type: ignore[attr-defined]
BALANCES: Table = BalanceRow.__table__  # type: ignore[attr-defined]
MINTS: Table = MintRow.__table__  # type: ignore[attr-defined]
BURNS: Table = BurnRow.__table__  # type: ignore[attr-defined]
TRANSFERS: Table = TransferRow.__table__  # type: ignore[attr-defined]
DEPOSITS: Table = DepositAddressRow.__table__  # type: ignore[attr-defined]
CHUNK = 500  # keys per IN (...) query, well under SQLite's bound-parameter limit


@dataclass(frozen=True, slots=True)
class State:
    """The `ledger_state` row: network, current epoch, journal (seq, 32-byte head)."""

    network: str
    epoch: int
    seq: int
    head: bytes


def chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def lock_state(conn: Connection) -> State | None:
    """Read (and on PostgreSQL row-lock, ``FOR UPDATE``) the state row; None before genesis."""
    row = conn.execute(select(STATE).where(STATE.c.id == 1).with_for_update()).first()
    if row is None:
        return None
    return State(row.network, row.epoch, row.journal_seq, bytes.fromhex(row.journal_head[2:]))


def read_state(conn: Connection) -> State | None:
    """The state row without a lock."""
    row = conn.execute(select(STATE).where(STATE.c.id == 1)).first()
    if row is None:
        return None
    return State(row.network, row.epoch, row.journal_seq, bytes.fromhex(row.journal_head[2:]))


def create_state(conn: Connection, network: str, epoch: int, chain: JournalChain) -> None:
    conn.execute(insert(STATE).values(
        id=1, network=network, epoch=epoch, journal_seq=chain.seq,
        journal_head="0x" + chain.head.hex(),
    ))


def save_head(conn: Connection, chain: JournalChain, epoch: int | None = None) -> None:
    """Store the journal head after appending; optionally the new epoch."""
    values: dict[str, object] = {"journal_seq": chain.seq, "journal_head": "0x" + chain.head.hex()}
    if epoch is not None:
        values["epoch"] = epoch
    conn.execute(update(STATE).where(STATE.c.id == 1).values(**values))


def insert_journal(conn: Connection, rows: Sequence[dict[str, object]]) -> None:
    """Insert journal rows and, in the same transaction, their account-history index rows
    (`ledger.history`): every journal write goes through here."""
    if rows:
        conn.execute(insert(JOURNAL), list(rows))
        history.insert_account_entries(conn, rows)


def journal_page(conn: Connection, after_seq: int, limit: int) -> list[JournalEntry]:
    rows = conn.execute(
        select(JOURNAL).where(JOURNAL.c.seq > after_seq).order_by(JOURNAL.c.seq).limit(limit)
    )
    return [
        JournalEntry(r.seq, r.kind, r.payload, bytes.fromhex(r.prev_hash[2:]),
                     bytes.fromhex(r.hash[2:]))
        for r in rows
    ]


def members_json(vset: ValidatorSet) -> str:
    return canonical({"members": [m.to_json() for m in vset.members]}).decode()


def insert_validator_set(conn: Connection, vset: ValidatorSet, seq: int) -> None:
    conn.execute(insert(VSETS).values(
        epoch=vset.epoch, threshold=vset.threshold, members=members_json(vset), seq=seq
    ))


def load_validator_set(conn: Connection, epoch: int) -> ValidatorSet | None:
    row = conn.execute(select(VSETS).where(VSETS.c.epoch == epoch)).first()
    if row is None:
        return None
    members = json.loads(row.members)["members"]
    return ValidatorSet(
        epoch=row.epoch, threshold=row.threshold,
        members=tuple(ValidatorInfo.from_json(m) for m in members),
    )


def load_bridges(conn: Connection) -> dict[str, str]:
    """Origin chain -> bridge contract."""
    return {r.chain: r.contract for r in conn.execute(select(BRIDGES.c.chain, BRIDGES.c.contract))}


def insert_bridge(conn: Connection, chain: str, contract: str, seq: int) -> None:
    conn.execute(insert(BRIDGES).values(chain=chain, contract=contract, seq=seq))


def _asset_info(r: object) -> AssetInfo:
    return AssetInfo(
        asset=r.asset, symbol=r.symbol, origin_chain=r.origin_chain,  # type: ignore[attr-defined]
        origin_token=r.origin_token, decimals=r.decimals, supply=r.supply,  # type: ignore[attr-defined]
        minted_total=r.minted_total, burned_total=r.burned_total,  # type: ignore[attr-defined]
    )


def load_assets(conn: Connection) -> dict[str, AssetInfo]:
    """Asset id -> registered asset with its counters, ordered by id."""
    rows = conn.execute(select(ASSETS).order_by(ASSETS.c.asset))
    return {r.asset: _asset_info(r) for r in rows}


def load_asset(conn: Connection, asset: str) -> AssetInfo | None:
    row = conn.execute(select(ASSETS).where(ASSETS.c.asset == asset)).first()
    return None if row is None else _asset_info(row)


def insert_asset(conn: Connection, info: AssetInfo, seq: int) -> None:
    conn.execute(insert(ASSETS).values(
        asset=info.asset, symbol=info.symbol, origin_chain=info.origin_chain,
        origin_token=info.origin_token, decimals=info.decimals, supply=info.supply,
        minted_total=info.minted_total, burned_total=info.burned_total, seq=seq,
    ))


def save_asset_counters(conn: Connection, infos: Iterable[AssetInfo]) -> None:
    params = [
        {"b_asset": i.asset, "b_supply": i.supply, "b_minted": i.minted_total,
         "b_burned": i.burned_total}
        for i in infos
    ]
    if params:
        conn.execute(
            update(ASSETS).where(ASSETS.c.asset == bindparam("b_asset")).values(
                supply=bindparam("b_supply"), minted_total=bindparam("b_minted"),
                burned_total=bindparam("b_burned"),
            ),
            params,
        )


def load_nonces(conn: Connection, accounts: Sequence[str]) -> dict[str, int]:
    """Account hex -> next nonce, for the accounts that exist."""
    found: dict[str, int] = {}
    for part in chunks(sorted(set(accounts))):
        q = select(ACCOUNTS.c.account, ACCOUNTS.c.nonce).where(ACCOUNTS.c.account.in_(part))
        found.update({r.account: r.nonce for r in conn.execute(q)})
    return found


def insert_accounts(conn: Connection, accounts: Iterable[str]) -> None:
    params = [{"account": a, "nonce": 0} for a in accounts]
    if params:
        conn.execute(insert(ACCOUNTS), params)


def set_nonce(conn: Connection, account: str, nonce: int) -> None:
    conn.execute(update(ACCOUNTS).where(ACCOUNTS.c.account == account).values(nonce=nonce))


def load_balances(conn: Connection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """(account hex, asset) -> amount, for the pairs that have a row."""
    wanted = set(pairs)
    found: dict[tuple[str, str], int] = {}
    for part in chunks(sorted({a for a, _ in wanted})):
        q = select(BALANCES).where(BALANCES.c.account.in_(part))
        for r in conn.execute(q):
            if (r.account, r.asset) in wanted:
                found[(r.account, r.asset)] = r.amount
    return found


def write_balances(
    conn: Connection, new: dict[tuple[str, str], int], existing: dict[tuple[str, str], int]
) -> None:
    """Insert rows for pairs in `new` and update those in `existing`."""
    if new:
        conn.execute(insert(BALANCES), [
            {"account": a, "asset": s, "amount": v} for (a, s), v in new.items()
        ])
    if existing:
        conn.execute(
            update(BALANCES)
            .where(BALANCES.c.account == bindparam("b_account"))
            .where(BALANCES.c.asset == bindparam("b_asset"))
            .values(amount=bindparam("b_amount")),
            [{"b_account": a, "b_asset": s, "b_amount": v} for (a, s), v in existing.items()],
        )


def minted_seqs(conn: Connection, event_ids: Sequence[str]) -> dict[str, int]:
    """Event id -> journal seq of its mint, for the ids already minted."""
    found: dict[str, int] = {}
    for part in chunks(sorted(set(event_ids))):
        q = select(MINTS.c.event_id, MINTS.c.seq).where(MINTS.c.event_id.in_(part))
        found.update({r.event_id: r.seq for r in conn.execute(q)})
    return found


def _burns_select() -> Select[Any]:
    return select(BURNS, ASSETS.c.origin_chain, ASSETS.c.origin_token).join(
        ASSETS, ASSETS.c.asset == BURNS.c.asset)


def _burn_record(r: Row[Any]) -> BurnRecord:
    return BurnRecord(
        seq=r.seq, burn_id=bytes.fromhex(r.burn_id[2:]), account=bytes.fromhex(r.account[2:]),
        asset=r.asset, origin_chain=r.origin_chain, origin_token=r.origin_token,
        amount=r.amount, dest_chain=r.dest_chain, dest_address=r.dest_address,
        tx=json.loads(r.tx), signature=bytes.fromhex(r.signature[2:]),
    )


def burns_page(conn: Connection, after_seq: int, limit: int) -> list[BurnRecord]:
    """Burns with journal seq > `after_seq`, oldest first, at most `limit`."""
    q = _burns_select().where(BURNS.c.seq > after_seq).order_by(BURNS.c.seq).limit(limit)
    return [_burn_record(r) for r in conn.execute(q)]


def load_burn(conn: Connection, burn_id: str) -> BurnRecord | None:
    """The burn with id `burn_id` (lowercase ``0x`` hex), or None."""
    row = conn.execute(_burns_select().where(BURNS.c.burn_id == burn_id)).first()
    return None if row is None else _burn_record(row)


def _registration(r: Row[Any]) -> DepositRegistration:
    return DepositRegistration(r.seq, r.chain, bytes.fromhex(r.account[2:]), r.registered_at)


def load_deposit_account(conn: Connection, chain: str, account: str) -> DepositRegistration | None:
    """The registration of (chain, account hex), or None."""
    row = conn.execute(
        select(DEPOSITS).where(DEPOSITS.c.chain == chain).where(DEPOSITS.c.account == account)
    ).first()
    return None if row is None else _registration(row)


def insert_deposit_account(
    conn: Connection, chain: str, account: str, registered_at: float
) -> DepositRegistration:
    """Insert (chain, account hex); the database assigns the seq."""
    result = conn.execute(insert(DEPOSITS).values(
        chain=chain, account=account, registered_at=registered_at))
    key = result.inserted_primary_key
    assert key is not None, "insert returned no primary key"
    seq = int(key[0])
    return DepositRegistration(seq, chain, bytes.fromhex(account[2:]), registered_at, True)


def deposit_accounts_page(
    conn: Connection, chain: str, after_seq: int, limit: int
) -> list[DepositRegistration]:
    """Registrations on `chain` with seq > `after_seq`, ascending by seq, at most `limit`."""
    q = (select(DEPOSITS).where(DEPOSITS.c.chain == chain).where(DEPOSITS.c.seq > after_seq)
         .order_by(DEPOSITS.c.seq).limit(limit))
    return [_registration(r) for r in conn.execute(q)]
