"""The relayer's HTLC swaps: their terms, both legs as last observed, and the status history.

Owns: every read and write of the ``swaps`` and ``swap_history`` tables (migration 0003), the
swap id, and building the machine's input (`htlc.machine.SwapLegs`) from a row.
`SwapStore.advance` is the only writer of a swap's status: it checks
`htlc.machine.check_transition`, locks on the status the caller read (optimistic lock), and
writes status, reason, time and the history row in one transaction. `SwapStore.update_legs`
records what the chains show (leg statuses, lock refs and txs, the secret, the user's refund)
and never writes status. Must not call chains, read the wall clock (a `Clock` is injected) or
choose the next step (`htlc.machine.next_action`, run by the engine).

Swap id (``0x`` + 64 hex)::

    id        = "0x" + hex(SHA-256(canonical))
    canonical = UTF-8 JSON, keys sorted, separators "," and ":", ASCII only, integers as
                decimal strings:
      {"version": "1", "pair": str, "hashlock": "0x<64 hex>",
       "lock_deadline": {"kind": "height" | "time", "value": "<int>"},
       "initiator":   {"chain", "asset", "amount", "sender", "recipient",
                       "expiry": {"kind", "value"}},
       "participant": {... the same keys ...},
       "quote": {"rate_num", "rate_den", "fee"}}

Identities (chain, asset, sender, recipient) are hashed as given: the API parses them into each
chain's canonical form first (lowercase EVM addresses, ...), so one swap has one id. The user's
pre-signed refund is not part of the terms (it spends the user's lock, which exists only later).

SECURITY: one swap per hashlock (a unique column): a secret revealed in one swap would open
every other leg locked to the same hashlock, and a secret seen on chain must map to one swap.
A secret is stored only if it opens the swap's hashlock, and once stored is never cleared.
Logs carry ``swap_id=`` and the hashlock, never the secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapters.base import Clock, SystemClock
from adapters.errors import IllegalTransition, ValidationError
from htlc.hashlock import HASHLOCK_LEN, check_preimage, to_hex
from htlc.machine import TERMINAL, LegStatus, SwapLegs, SwapStatus, check_transition
from htlc.timelock import BlockHeight, Instant, UnixTime
from ledger.fields import MAX_AMOUNT, check_amount, parse_chain
from relayer.db import make_engine, migrate, write_transaction
from relayer.models import Swap, SwapHistory

log = logging.getLogger(__name__)

W = Swap.__table__  # type: ignore[attr-defined]
WH = SwapHistory.__table__  # type: ignore[attr-defined]

SWAP_ID_VERSION = "1"
MAX_IDENTITY_LEN = 140  # characters of a chain, asset, sender or recipient column
MAX_REF_LEN = 200  # characters of a lock ref
MAX_INSTANT = 2**63 - 1  # expiries and deadlines are BIGINT columns
_OPEN = [s.value for s in SwapStatus if s not in TERMINAL]
_HEX = re.compile(r"(?:[0-9a-f]{2})+")


# --------------------------------------------------------------------------- terms
@dataclass(frozen=True, slots=True)
class SwapLegTerms:
    """One leg as agreed: what is locked, by whom, for whom, until when.

    Attributes:
        chain: CAIP-2 id of the leg's chain.
        asset: token address or denom on `chain` (the chain's canonical form).
        amount: base units, 1..2**256-1.
        sender: who locks (refunds go back here), the chain's native identity.
        recipient: who redeems with the secret.
        expiry: the HTLC's timelock: `BlockHeight` on a height chain, `UnixTime` on a time chain.

    Raises:
        ValidationError: a field is empty, too long or out of range.
    """

    chain: str
    asset: str
    amount: int
    sender: str
    recipient: str
    expiry: Instant

    def __post_init__(self) -> None:
        parse_chain(self.chain)
        for name in ("asset", "sender", "recipient"):
            value = getattr(self, name)
            if not isinstance(value, str) or not 0 < len(value) <= MAX_IDENTITY_LEN:
                raise ValidationError(f"{name} must be 1..{MAX_IDENTITY_LEN} characters")
        check_amount(self.amount)
        _check_instant(self.expiry, "expiry")

    def canonical(self) -> dict[str, Any]:
        return {"chain": self.chain, "asset": self.asset, "amount": str(self.amount),
                "sender": self.sender, "recipient": self.recipient,
                "expiry": _instant_json(self.expiry)}


@dataclass(frozen=True, slots=True)
class SwapTerms:
    """Everything a swap's id binds (see the module docstring for the encoding).

    Attributes:
        pair: the `relayer.quotes.SwapPair` name, e.g. ``"BTC/ETH"``.
        initiator: the user's leg (locked first, longer timelock).
        participant: the relayer's leg (shorter timelock).
        hashlock: SHA-256 of the user's secret, 32 bytes.
        lock_deadline: last instant, on the participant chain's clock, at which the relayer may
            still lock; same kind as ``participant.expiry`` and not after it.
        rate_num, rate_den: the quoted rate (`relayer.quotes`).
        fee: the quoted fee, participant-asset base units (the participant amount is
            ``initiator.amount * rate_num // rate_den - fee``, `relayer.quotes.Quote`).

    Raises:
        ValidationError: a bad field, or a lock deadline of another kind than, or after, the
            participant's expiry.
    """

    pair: str
    initiator: SwapLegTerms
    participant: SwapLegTerms
    hashlock: bytes
    lock_deadline: Instant
    rate_num: int
    rate_den: int
    fee: int

    def __post_init__(self) -> None:
        if not isinstance(self.pair, str) or not 0 < len(self.pair) <= 64:
            raise ValidationError("pair must be 1..64 characters")
        for name in ("initiator", "participant"):
            if not isinstance(getattr(self, name), SwapLegTerms):
                raise ValidationError(f"{name} must be SwapLegTerms")
        if not isinstance(self.hashlock, bytes) or len(self.hashlock) != HASHLOCK_LEN:
            raise ValidationError(f"a hashlock is {HASHLOCK_LEN} bytes")
        _check_instant(self.lock_deadline, "lock_deadline")
        if type(self.lock_deadline) is not type(self.participant.expiry):
            raise ValidationError("lock_deadline must be on the participant leg's clock "
                                  f"({type(self.participant.expiry).__name__})")
        if self.lock_deadline.value > self.participant.expiry.value:
            raise ValidationError("lock_deadline is after the participant leg's expiry")
        check_amount(self.rate_num, "rate_num")
        check_amount(self.rate_den, "rate_den")
        if type(self.fee) is not int or not 0 <= self.fee <= MAX_AMOUNT:
            raise ValidationError(f"fee must be an integer in 0..2**256-1, got {self.fee!r}")

    def canonical(self) -> bytes:
        """The bytes hashed into the swap id (module docstring)."""
        doc = {"version": SWAP_ID_VERSION, "pair": self.pair, "hashlock": to_hex(self.hashlock),
               "lock_deadline": _instant_json(self.lock_deadline),
               "initiator": self.initiator.canonical(),
               "participant": self.participant.canonical(),
               "quote": {"rate_num": str(self.rate_num), "rate_den": str(self.rate_den),
                         "fee": str(self.fee)}}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")

    @property
    def id(self) -> str:
        """``0x`` + hex SHA-256 of `canonical` (66 characters)."""
        return "0x" + hashlib.sha256(self.canonical()).hexdigest()


# --------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class SwapLegRecord:
    """One leg as stored: its terms and what its chain last showed.

    Attributes:
        status: the leg as the chain last showed it (may move back on a reorg).
        lock_ref: the HTLC on chain (EVM/ledger: its id; Bitcoin: ``txid:vout``), once known.
        lock_tx: the lock transaction: the user's lock tx hash (initiator), or the relayer's
            signed raw lock, hex, persisted before it is broadcast (participant).
    """

    chain: str
    asset: str
    amount: int
    sender: str
    recipient: str
    expiry: Instant
    status: LegStatus
    lock_ref: str | None
    lock_tx: str | None

    @property
    def terms(self) -> SwapLegTerms:
        return SwapLegTerms(self.chain, self.asset, self.amount, self.sender, self.recipient,
                            self.expiry)


@dataclass(frozen=True, slots=True)
class SwapRecord:
    """A stored swap. `secret` (32 bytes, once learnt) and `user_refund` (raw tx hex) are left
    out of ``repr``."""

    id: str
    pair: str
    status: SwapStatus
    initiator: SwapLegRecord
    participant: SwapLegRecord
    hashlock: bytes
    lock_deadline: Instant
    rate_num: int
    rate_den: int
    fee: int
    reason: str
    created_at: float
    updated_at: float
    secret: bytes | None = field(default=None, repr=False)
    user_refund: str | None = field(default=None, repr=False)

    @property
    def terms(self) -> SwapTerms:
        """The terms this row was created from (their `id` is this record's `id`)."""
        return SwapTerms(self.pair, self.initiator.terms, self.participant.terms, self.hashlock,
                         self.lock_deadline, self.rate_num, self.rate_den, self.fee)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One `swap_history` row. `from_status` is None for the creation."""

    from_status: SwapStatus | None
    to_status: SwapStatus
    reason: str
    at: float


class LegFields(TypedDict, total=False):
    """What `SwapStore.update_legs` and `SwapStore.advance` may set besides status.

    ``*_status``: a `LegStatus`. ``*_lock_ref`` / ``*_lock_tx``: text or None (clears).
    ``secret``: 32 bytes opening the hashlock; never cleared. ``user_refund``: the user's
    pre-signed refund of its leg, lowercase raw tx hex without ``0x``, or None (clears).
    """

    initiator_status: LegStatus
    initiator_lock_ref: str | None
    initiator_lock_tx: str | None
    participant_status: LegStatus
    participant_lock_ref: str | None
    participant_lock_tx: str | None
    secret: bytes
    user_refund: str | None


# --------------------------------------------------------------------------- the store
class SwapStore:
    """Swap database access, on the relayer's database (the engine `relayer.store.Store` uses).
    Thread-safe: each call opens its own connection; each write is one transaction."""

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()

    @classmethod
    def open(cls, database_url: str, clock: Clock | None = None) -> SwapStore:
        """Migrate `database_url` to the newest relayer schema and open it."""
        migrate(database_url)
        return cls(make_engine(database_url), clock)

    def create(self, terms: SwapTerms) -> SwapRecord:
        """Store a new swap as `swap.offered` (with its history row); idempotent by id.

        Args:
            terms: the agreed terms; the swap id is ``terms.id``.

        Returns:
            The stored swap: the new one, or the one already stored under that id (as it is
            now, whatever its status).

        Raises:
            ValidationError: another swap already uses `terms.hashlock`.
        """
        swap_id, now = terms.id, self.clock.now()
        row = _terms_row(swap_id, terms, now)
        with write_transaction(self.engine) as conn:
            dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            created = conn.execute(dialect_insert(W).values(**row).on_conflict_do_nothing()
                                   .returning(W.c.id)).first() is not None
            if created:
                conn.execute(insert(WH).values(
                    swap_id=swap_id, from_status=None, to_status=SwapStatus.OFFERED.value,
                    reason="swap offered", at=now))
            found = _select(conn, swap_id)
            if found is None:  # the insert hit the unique hashlock, not the id
                raise ValidationError(
                    f"hashlock {to_hex(terms.hashlock)} is already used by another swap")
        if created:
            log.info("swap offered swap_id=%s pair=%s hashlock=%s", swap_id, terms.pair,
                     to_hex(terms.hashlock))
        return _record(found)

    def get(self, swap_id: str) -> SwapRecord | None:
        """The swap stored under `swap_id`, or None."""
        with self.engine.connect() as conn:
            row = _select(conn, swap_id)
        return None if row is None else _record(row)

    def open_swaps(self, limit: int = 500, *, chain: str | None = None,
                   after: str = "") -> list[SwapRecord]:
        """Swaps not in a terminal status, in id order, with id above `after` (page by
        passing the last id seen), optionally only those with a leg on `chain`."""
        q = select(W).where(W.c.status.in_(_OPEN), W.c.id > after)
        if chain is not None:
            q = q.where(or_(W.c.initiator_chain == chain, W.c.participant_chain == chain))
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(W.c.id).limit(limit)).all()
        return [_record(r) for r in rows]

    def history(self, swap_id: str) -> list[StatusChange]:
        """Every status change of `swap_id`, oldest first (the creation first)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(WH).where(WH.c.swap_id == swap_id).order_by(WH.c.id))
            return [StatusChange(None if r.from_status is None else SwapStatus(r.from_status),
                                 SwapStatus(r.to_status), r.reason, r.at) for r in rows]

    def advance(self, swap: SwapRecord | str, to: SwapStatus, reason: str,
                **fields: Unpack[LegFields]) -> SwapRecord:
        """The only writer of a swap's status: move it to `to`, with `reason`, the clock's time,
        a history row and any `fields`, in one transaction.

        Args:
            swap: a record read earlier (its `status` is the one the caller's decision rests
                on: the move is refused if the row has moved since), or a bare id (the status
                read inside this transaction is the one checked).
            to: the new status; ``current -> to`` must be in `htlc.machine.TRANSITIONS`.
            reason: why, for operators (stored with the status and in the history).
            **fields: leg fields set in the same transaction (`LegFields`), e.g. the signed
                participant lock with `swap.participant_locked`: intent persisted before any
                broadcast.

        Returns:
            The swap as it now is.

        Raises:
            IllegalTransition: no such swap, a move not in `TRANSITIONS`, or the swap moved
                since `swap` was read (nothing is written).
            ValidationError, BadPreimage: a bad field (nothing is written).
            TypeError: an unknown field (``status`` is only ever `to`).
        """
        swap_id, expect = (swap.id, swap.status) if isinstance(swap, SwapRecord) else (swap, None)
        to = SwapStatus(to)
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            row = _select(conn, swap_id)
            if row is None:
                raise IllegalTransition(f"swap {swap_id} does not exist")
            current = SwapStatus(row.status)
            if expect is not None and current != expect:
                raise IllegalTransition(f"swap {swap_id} is {current}, not {expect} as read: "
                                        "it was moved concurrently")
            try:
                check_transition(current, to)
            except IllegalTransition as exc:
                raise IllegalTransition(f"swap {swap_id}: {exc}") from exc
            values = _leg_values(fields, row)
            moved = conn.execute(update(W).where(and_(
                W.c.id == swap_id, W.c.status == current.value)).values(
                status=to.value, reason=reason[:500], updated_at=now, **values)).rowcount
            if moved != 1:  # another writer moved it between our read and this write
                raise IllegalTransition(f"swap {swap_id} was moved concurrently")
            conn.execute(insert(WH).values(swap_id=swap_id, from_status=current.value,
                                           to_status=to.value, reason=reason[:500], at=now))
            out = _select(conn, swap_id)
        log.info("swap advanced swap_id=%s from=%s to=%s reason=%s", swap_id, current, to, reason)
        return _record(out)

    def update_legs(self, swap_id: str, **fields: Unpack[LegFields]) -> SwapRecord:
        """Record what the chains show: leg statuses, lock refs and txs, the secret, the user's
        refund (`LegFields`). Never writes status or reason; any status is allowed (a reorg
        or a late observation may arrive after a terminal status).

        Returns:
            The swap as it now is.

        Raises:
            ValidationError: no such swap, or a bad field; BadPreimage: a secret that does not
                open the hashlock (nothing is written).
            TypeError: an unknown field, or ``status`` (written by `advance` only).
        """
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            row = _select(conn, swap_id)
            if row is None:
                raise ValidationError(f"no swap {swap_id}")
            values = _leg_values(fields, row)
            if values:
                conn.execute(update(W).where(W.c.id == swap_id).values(updated_at=now, **values))
                row = _select(conn, swap_id)
        if values:
            log.info("swap legs updated swap_id=%s fields=%s", swap_id, ",".join(sorted(values)))
        return _record(row)

    @staticmethod
    def legs(record: SwapRecord, *, anyone_can_refund: bool = False) -> SwapLegs:
        """The state machine's input (`htlc.machine.SwapLegs`) for `record`.

        Args:
            record: a stored swap.
            anyone_can_refund: the initiator chain's HTLC lets anyone refund an expired lock
                to its sender (the EVM contract, the ledger), so the relayer needs no
                pre-signed refund to unwind the user's leg (the engine asks the leg's adapter).

        Returns:
            Expiries and the lock deadline as stored (`BlockHeight` or `UnixTime` by kind),
            `secret_known` when a secret is stored, `user_refund_held` when a pre-signed
            refund is stored or `anyone_can_refund`.
        """
        return SwapLegs(
            status=record.status, initiator=record.initiator.status,
            participant=record.participant.status,
            initiator_expiry=record.initiator.expiry,
            participant_expiry=record.participant.expiry, lock_deadline=record.lock_deadline,
            secret_known=record.secret is not None,
            user_refund_held=record.user_refund is not None or anyone_can_refund)


# --------------------------------------------------------------------------- rows
_LEG_FIELDS = frozenset(LegFields.__annotations__)


def _leg_values(fields: Mapping[str, Any], row: Any) -> dict[str, Any]:
    """`fields` checked and turned into column values (on the caller's transaction)."""
    unknown = set(fields) - _LEG_FIELDS
    if unknown:
        if unknown & {"status", "reason"}:
            raise TypeError("a swap's status and reason are written by SwapStore.advance only")
        raise TypeError(f"unknown swap fields: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for name, value in fields.items():
        out[name] = value
        if name.endswith("_status"):
            if value not in set(LegStatus):
                raise ValidationError(f"{name} must be a LegStatus, got {value!r}")
            out[name] = LegStatus(value).value
        elif name.endswith("_lock_ref") and value is not None and (
                not isinstance(value, str) or not 0 < len(value) <= MAX_REF_LEN):
            raise ValidationError(f"{name} must be non-empty text of at most {MAX_REF_LEN} "
                                  "characters")
        elif name.endswith("_lock_tx") and value is not None and (
                not isinstance(value, str) or not value):
            raise ValidationError(f"{name} must be non-empty text")
        elif name == "secret":
            if not isinstance(value, bytes):
                raise ValidationError("a known secret is never cleared" if value is None
                                      else "secret must be 32 bytes")
            check_preimage(value, bytes.fromhex(row.hashlock[2:]))  # SECURITY: BadPreimage
            out[name] = to_hex(value)
        elif name == "user_refund" and value is not None and (
                not isinstance(value, str) or not _HEX.fullmatch(value)):
            raise ValidationError("user_refund must be lowercase raw transaction hex")
    return out


def _terms_row(swap_id: str, t: SwapTerms, now: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": swap_id, "pair": t.pair, "status": SwapStatus.OFFERED.value,
        "hashlock": to_hex(t.hashlock), "secret": None, "lock_deadline": t.lock_deadline.value,
        "user_refund": None, "quote_rate_num": t.rate_num, "quote_rate_den": t.rate_den,
        "quote_fee": t.fee, "reason": "swap offered", "created_at": now, "updated_at": now,
    }
    for role, leg in (("initiator", t.initiator), ("participant", t.participant)):
        row.update({
            f"{role}_chain": leg.chain, f"{role}_asset": leg.asset, f"{role}_amount": leg.amount,
            f"{role}_sender": leg.sender, f"{role}_recipient": leg.recipient,
            f"{role}_expiry_kind": leg.expiry.kind, f"{role}_expiry": leg.expiry.value,
            f"{role}_status": LegStatus.NONE.value, f"{role}_lock_ref": None,
            f"{role}_lock_tx": None,
        })
    return row


def _select(conn: Connection, swap_id: str) -> Any | None:
    return conn.execute(select(W).where(W.c.id == swap_id)).first()


def _leg_record(row: Any, role: str) -> SwapLegRecord:
    def col(name: str) -> Any:
        return getattr(row, f"{role}_{name}")

    return SwapLegRecord(
        chain=col("chain"), asset=col("asset"), amount=int(col("amount")), sender=col("sender"),
        recipient=col("recipient"), expiry=_instant(col("expiry_kind"), col("expiry")),
        status=LegStatus(col("status")), lock_ref=col("lock_ref"), lock_tx=col("lock_tx"))


def _record(row: Any) -> SwapRecord:
    participant = _leg_record(row, "participant")
    return SwapRecord(
        id=row.id, pair=row.pair, status=SwapStatus(row.status),
        initiator=_leg_record(row, "initiator"), participant=participant,
        hashlock=bytes.fromhex(row.hashlock[2:]),
        lock_deadline=_instant(participant.expiry.kind, row.lock_deadline),
        rate_num=int(row.quote_rate_num), rate_den=int(row.quote_rate_den),
        fee=int(row.quote_fee), reason=row.reason, created_at=row.created_at,
        updated_at=row.updated_at,
        secret=None if row.secret is None else bytes.fromhex(row.secret[2:]),
        user_refund=row.user_refund)


def _instant(kind: str, value: int) -> Instant:
    """A stored (kind, value) as `BlockHeight` or `UnixTime`: a height never comes back as a
    time, nor the other way round."""
    if kind == BlockHeight.kind:
        return BlockHeight(int(value))
    if kind == UnixTime.kind:
        return UnixTime(int(value))
    raise ValueError(f"unknown expiry kind {kind!r} in the swaps table")


def _instant_json(instant: Instant) -> dict[str, str]:
    return {"kind": instant.kind, "value": str(instant.value)}


def _check_instant(value: object, name: str) -> None:
    if not isinstance(value, BlockHeight | UnixTime):
        raise ValidationError(f"{name} must be a BlockHeight or a UnixTime, "
                              f"got {type(value).__name__}")
    if value.value > MAX_INSTANT:
        raise ValidationError(f"{name} is out of range: {value.value}")
