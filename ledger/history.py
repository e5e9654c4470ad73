"""Account history and journal proofs: the per-account index of journal entries, the journal's
Merkle tree (RFC 6962, `ledger.merkle`), and the proofs that tie each history entry to a root.

Owns: `account_deltas` (pure: which balances a journal entry moves), the
``ledger_account_entries`` table and its writer `insert_account_entries` (called by
`ledger.store.insert_journal`, the one place journal rows are inserted, so the index is written
in the same transaction as the entry), and `LedgerHistory` (the tree, kept in memory and brought
up to date from the journal table before every answer; the proofs; the history pages). Must not
decide anything about balances (`ledger.service` does) nor speak HTTP or cursors (the API owns
the cursor format and passes a position here).

Index rows (``ledger_account_entries``): one per balance an entry moves, ``(account, seq, n)``
(``n`` = the row's position among the entry's deltas), with ``asset``, ``delta`` (signed decimal
string, base units), ``kind`` and ``counterparty`` (the other ledger account, or NULL). Summing
an account's deltas per asset gives its balance. By kind (payloads: `ledger.journal`,
`ledger.htlcs`):

    mint         recipient +amount                       counterparty NULL
    burn         account -amount                         NULL
    transfer     account -amount, to +amount             each other
    htlc_lock    sender -amount                          the HTLC recipient
    htlc_redeem  recipient +amount                       NULL
    htlc_refund  sender +amount (origin lock; a minted   NULL
                 HTLC's refund is a burn of an amount
                 in no balance: no row)
    htlc_mint    no row (the amount is in no balance until the redeem)
    genesis, bridge, asset, validator_set: no row

Journal tree: leaf ``i`` (0-based) is the 32-byte hash of journal entry ``seq = i + 1``; a tree
of size ``n`` covers entries 1..n, so its root commits to the whole journal at seq ``n``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    and_,
    insert,
    or_,
    select,
)
from sqlalchemy.engine import Connection, Engine

from adapters.errors import ValidationError
from ledger.db import read_transaction
from ledger.errors import JournalCorrupt
from ledger.fields import account_hex
from ledger.journal import JournalKind
from ledger.merkle import MerkleTree, verify_inclusion
from ledger.models import JournalRow, LedgerStateRow, metadata

ACCOUNT_ENTRIES = Table(
    "ledger_account_entries", metadata,
    Column("account", String(66), primary_key=True),
    Column("seq", BigInteger, ForeignKey("ledger_journal.seq"), primary_key=True),
    Column("n", Integer, primary_key=True, autoincrement=False),
    Column("asset", String(200), nullable=False),
    Column("delta", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("counterparty", String(66), nullable=True),
)
JOURNAL: Table = JournalRow.__table__  # type: ignore[attr-defined]
STATE: Table = LedgerStateRow.__table__  # type: ignore[attr-defined]
ROWS_PER_ENTRY = 16  # positions: seq * 16 + n; no kind writes more than 2 rows per entry
SYNC_PAGE = 50_000
MAX_HISTORY_PAGE = 500

Delta = tuple[str, str, int, str | None]  # (account hex, asset, signed delta, counterparty)


def account_deltas(kind: str, payload: Mapping[str, Any]) -> list[Delta]:
    """The balances a journal entry moves (table in the module docstring).

    Args:
        kind: the entry's kind (`ledger.journal.JournalKind` value).
        payload: the entry's decoded payload.

    Returns:
        ``(account hex, asset, signed delta in base units, counterparty hex or None)`` per
        balance moved, in a fixed order.

    Raises:
        JournalCorrupt: an unknown kind (a new kind must say here what it moves) or a payload
            missing a field its kind needs.
    """
    try:
        return _deltas(JournalKind(kind), payload)
    except (KeyError, ValueError, TypeError) as exc:
        raise JournalCorrupt(f"no account deltas for {kind!r}: {exc!r}",
                             seq=int(payload.get("seq", -1))) from exc


def _deltas(kind: JournalKind, body: Mapping[str, Any]) -> list[Delta]:
    match kind:
        case JournalKind.MINT:
            event = body["event"]
            return [(event["recipient"], body["asset"], int(event["amount"]), None)]
        case JournalKind.BURN:
            tx = body["tx"]
            return [(tx["account"], tx["asset"], -int(tx["amount"]), None)]
        case JournalKind.TRANSFER:
            tx = body["tx"]
            amount = int(tx["amount"])
            return [(tx["account"], tx["asset"], -amount, tx["to"]),
                    (tx["to"], tx["asset"], amount, tx["account"])]
        case JournalKind.HTLC_LOCK:
            tx = body["tx"]
            return [(tx["account"], tx["asset"], -int(tx["amount"]), tx["recipient"])]
        case JournalKind.HTLC_REDEEM:
            return [(body["recipient"], body["asset"], int(body["amount"]), None)]
        case JournalKind.HTLC_REFUND:
            if body["sender"] is None:  # refund of a minted HTLC: a burn, no balance moves
                return []
            return [(body["sender"], body["asset"], int(body["amount"]), None)]
        case (JournalKind.HTLC_MINT | JournalKind.GENESIS | JournalKind.BRIDGE
              | JournalKind.ASSET | JournalKind.VALIDATOR_SET):
            return []
    raise ValueError(f"unhandled journal kind {kind}")  # pragma: no cover (match is total)


def entry_rows(seq: int, kind: str, payload: Mapping[str, Any]) -> list[dict[str, object]]:
    """The ``ledger_account_entries`` rows of one journal entry."""
    return [
        {"account": account, "seq": seq, "n": n, "asset": asset, "delta": str(delta),
         "kind": kind, "counterparty": counterparty}
        for n, (account, asset, delta, counterparty) in enumerate(account_deltas(kind, payload))
    ]


def insert_account_entries(conn: Connection, journal_rows: Sequence[Mapping[str, object]]) -> None:
    """Index the journal rows just inserted (each with seq, kind, payload), in the caller's
    write transaction (`ledger.store.insert_journal`)."""
    rows: list[dict[str, object]] = []
    for row in journal_rows:
        seq = row["seq"]
        assert isinstance(seq, int), "journal rows carry an int seq"
        rows.extend(entry_rows(seq, str(row["kind"]), json.loads(str(row["payload"]))))
    if rows:
        conn.execute(insert(ACCOUNT_ENTRIES), rows)


def position(seq: int, n: int) -> int:
    """The sortable position of index row (seq, n): what a history cursor stands for."""
    return seq * ROWS_PER_ENTRY + n


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """An audit path of one journal entry in the tree of the first `tree_size` entries.

    JSON: ``{"tree_size": int, "root": "0x<32 B>", "path": ["0x<32 B>", ...]}``.
    """

    tree_size: int
    root: bytes
    path: tuple[bytes, ...]

    def verify(self, seq: int, entry_hash: bytes) -> bool:
        """Whether this proves entry `seq` has hash `entry_hash` under `root`."""
        return verify_inclusion(entry_hash, seq - 1, self.tree_size, self.path, self.root)

    def to_json(self) -> dict[str, object]:
        return {"tree_size": self.tree_size, "root": _hex(self.root),
                "path": [_hex(p) for p in self.path]}

    @classmethod
    def from_json(cls, data: object) -> InclusionProof:
        d = _obj(data, "proof")
        path = d.get("path")
        if not isinstance(path, list):
            raise ValidationError("proof.path must be a list")
        return cls(_uint(d.get("tree_size"), "tree_size"), _hash(d.get("root"), "root"),
                   tuple(_hash(p, "path") for p in path))


@dataclass(frozen=True, slots=True)
class JournalProof:
    """``GET /v1/ledger/journal/{seq}/proof``: entry `seq`'s hash (`leaf_hash`: the leaf data;
    the RFC 6962 leaf hash is ``SHA-256(0x00 || leaf_hash)``) and its audit path.

    JSON: ``{"seq", "leaf_hash", "tree_size", "root", "proof": ["0x..", ...]}``.
    """

    seq: int
    leaf_hash: bytes
    proof: InclusionProof

    def verify(self) -> bool:
        return self.proof.verify(self.seq, self.leaf_hash)

    def to_json(self) -> dict[str, object]:
        p = self.proof.to_json()
        return {"seq": self.seq, "leaf_hash": _hex(self.leaf_hash), "tree_size": p["tree_size"],
                "root": p["root"], "proof": p["path"]}

    @classmethod
    def from_json(cls, data: object) -> JournalProof:
        d = _obj(data, "journal proof")
        proof = InclusionProof.from_json(
            {"tree_size": d.get("tree_size"), "root": d.get("root"), "path": d.get("proof")})
        return cls(_uint(d.get("seq"), "seq"), _hash(d.get("leaf_hash"), "leaf_hash"), proof)


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One balance change of an account. `delta` is signed, in base units; `at` is the entry's
    ledger-clock second when its payload has one (HTLC kinds), else None.

    JSON: ``{"seq", "kind", "asset", "delta": "<signed int>", "counterparty": "0x.."|null,
    "at": int|null, "journal_hash": "0x..", "proof": InclusionProof}``.
    """

    seq: int
    n: int
    kind: str
    asset: str
    delta: int
    counterparty: str | None
    at: int | None
    journal_hash: bytes
    proof: InclusionProof

    def verify(self) -> bool:
        return self.proof.verify(self.seq, self.journal_hash)

    def to_json(self) -> dict[str, object]:
        return {"seq": self.seq, "kind": self.kind, "asset": self.asset, "delta": str(self.delta),
                "counterparty": self.counterparty, "at": self.at,
                "journal_hash": _hex(self.journal_hash), "proof": self.proof.to_json()}

    @classmethod
    def from_json(cls, data: object, n: int = 0) -> HistoryItem:
        d = _obj(data, "history item")
        kind, asset, cp, at = d.get("kind"), d.get("asset"), d.get("counterparty"), d.get("at")
        delta = d.get("delta")
        if not isinstance(kind, str) or not isinstance(asset, str):
            raise ValidationError("history item kind/asset must be strings")
        if not isinstance(delta, str) or not delta.lstrip("-").isdigit():
            raise ValidationError("history item delta must be a signed decimal string")
        if cp is not None and not isinstance(cp, str):
            raise ValidationError("history item counterparty must be a string or null")
        if at is not None and (isinstance(at, bool) or not isinstance(at, int)):
            raise ValidationError("history item at must be an integer or null")
        return cls(_uint(d.get("seq"), "seq"), n, kind, asset, int(delta), cp, at,
                   _hash(d.get("journal_hash"), "journal_hash"), InclusionProof.from_json(
                       d.get("proof")))


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of an account's history, newest first; `next_cursor` None on the last page."""

    items: list[HistoryItem]
    next_cursor: str | None

    def to_json(self) -> dict[str, object]:
        return {"items": [i.to_json() for i in self.items], "next_cursor": self.next_cursor}

    @classmethod
    def from_json(cls, data: object) -> HistoryPage:
        d = _obj(data, "history page")
        items, cursor = d.get("items"), d.get("next_cursor")
        if not isinstance(items, list) or not (cursor is None or isinstance(cursor, str)):
            raise ValidationError("history page needs items (list) and next_cursor (str|null)")
        return cls([HistoryItem.from_json(i) for i in items], cursor)


class LedgerHistory:
    """The journal tree of one ledger database and the reads that need it. Thread-safe.

    The tree lives in memory and is brought up to the database's journal before each answer
    (entries with seq above its size, in order), so it stays right when several processes or
    `Ledger` objects write the same database; each answer is taken inside one read snapshot and
    uses the journal size of that snapshot.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._tree = MerkleTree()
        self._lock = threading.Lock()

    def _sync(self, conn: Connection) -> int:
        """Append the entries the tree lacks; returns the journal size of `conn`'s snapshot.

        Raises:
            JournalCorrupt: the journal has a gap, or no state row (no genesis).
        """
        size = conn.execute(select(STATE.c.journal_seq).where(STATE.c.id == 1)).scalar()
        if size is None:
            raise JournalCorrupt("ledger has no genesis")
        with self._lock:
            while self._tree.size < size:
                have = self._tree.size
                rows = conn.execute(
                    select(JOURNAL.c.seq, JOURNAL.c.hash).where(JOURNAL.c.seq > have)
                    .where(JOURNAL.c.seq <= size).order_by(JOURNAL.c.seq).limit(SYNC_PAGE)).all()
                if not rows:
                    raise JournalCorrupt("journal is shorter than the state row says", seq=have)
                for expected, row in enumerate(rows, have + 1):
                    if row.seq != expected:
                        raise JournalCorrupt(f"journal gap: expected seq {expected}", seq=row.seq)
                self._tree.extend(bytes.fromhex(r.hash[2:]) for r in rows)
        return int(size)

    def _proof(self, seq: int, tree_size: int, root: bytes | None = None) -> InclusionProof:
        path = self._tree.inclusion_path(seq - 1, tree_size)
        root = self._tree.root(tree_size) if root is None else root
        return InclusionProof(tree_size, root, tuple(path))

    def root(self, tree_size: int | None = None) -> tuple[int, bytes]:
        """(tree size, 32-byte root): of the whole journal, or of its first `tree_size` entries.

        Raises:
            ValidationError: `tree_size` is not in 1..journal size.
        """
        with read_transaction(self._engine) as conn:
            size = self._sync(conn)
        if tree_size is not None and not 1 <= tree_size <= size:
            raise ValidationError(f"tree_size must be in 1..{size}, got {tree_size}")
        size = size if tree_size is None else tree_size
        return size, self._tree.root(size)

    def journal_proof(self, seq: int, tree_size: int | None = None) -> JournalProof:
        """The audit path of entry `seq` in the tree of the first `tree_size` entries (default:
        the whole journal).

        Raises:
            ValidationError: not ``1 <= seq <= tree_size <= journal size``.
        """
        with read_transaction(self._engine) as conn:
            size = self._sync(conn)
            if tree_size is None:
                tree_size = size
            if not 1 <= seq <= tree_size <= size:
                raise ValidationError(
                    f"need 1 <= seq <= tree_size <= {size} (the journal size), got seq {seq}, "
                    f"tree_size {tree_size}")
            entry = conn.execute(select(JOURNAL.c.hash).where(JOURNAL.c.seq == seq)).scalar_one()
        return JournalProof(seq, bytes.fromhex(entry[2:]), self._proof(seq, tree_size))

    def account_history(
        self, account: bytes, before: int | None = None, limit: int = 100
    ) -> tuple[list[HistoryItem], bool]:
        """The balance changes of `account`, newest first, each with its journal hash and a proof
        against the root of the journal at this read (one tree size for the whole page).

        Args:
            account: 32-byte account.
            before: only rows whose `position` is below this (the cursor); None: from the newest.
            limit: 1..500 rows.

        Returns:
            The items and whether more follow.

        Raises:
            InvalidAddress: `account` is not 32 bytes. ValidationError: bad `limit`/`before`.
        """
        key = account_hex(account)
        if not 1 <= limit <= MAX_HISTORY_PAGE or (before is not None and before < 0):
            raise ValidationError(f"need limit in 1..{MAX_HISTORY_PAGE} and before >= 0")
        e = ACCOUNT_ENTRIES.c
        q = (select(e.seq, e.n, e.kind, e.asset, e.delta, e.counterparty, JOURNAL.c.hash,
                    JOURNAL.c.payload)
             .join(JOURNAL, JOURNAL.c.seq == e.seq).where(e.account == key))
        if before is not None:
            seq, n = divmod(before, ROWS_PER_ENTRY)
            q = q.where(or_(e.seq < seq, and_(e.seq == seq, e.n < n)))
        q = q.order_by(e.seq.desc(), e.n.desc()).limit(limit + 1)
        with read_transaction(self._engine) as conn:
            size = self._sync(conn)
            rows = conn.execute(q).all()
        root = self._tree.root(size)
        items = []
        for r in rows[:limit]:
            at = json.loads(r.payload).get("at")
            items.append(HistoryItem(
                seq=r.seq, n=r.n, kind=r.kind, asset=r.asset, delta=int(r.delta),
                counterparty=r.counterparty, at=None if at is None else int(at),
                journal_hash=bytes.fromhex(r.hash[2:]), proof=self._proof(r.seq, size, root)))
        return items, len(rows) > limit


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _obj(data: object, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError(f"{what} must be a JSON object")
    return data


def _uint(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{name} must be a non-negative integer")
    return value


def _hash(value: object, name: str) -> bytes:
    if not isinstance(value, str) or len(value) != 66 or not value.startswith("0x"):
        raise ValidationError(f"{name} must be 0x + 64 hex digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise ValidationError(f"{name} must be 0x + 64 hex digits") from exc
