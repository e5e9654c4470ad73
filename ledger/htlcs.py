"""Native-ledger HTLCs (hashed-timelock contracts): the ledger's side of atomic swaps and, later,
of HTLC-driven minting (Ferry HTLC rules v1, `htlc.hashlock`).

Owns: the HTLC rules and effects (`lock`, `redeem`, `refund`), their reads (`load`,
`by_hashlock`, `locked_totals`), the state table (`TRANSITIONS`, `TERMINAL`), the journal
payloads of the three HTLC kinds and their replay (`HtlcReplay`, `check_replayed`). Must not
open transactions or take locks (`ledger.service` does: every writer here runs inside the
caller's write transaction, after `store.lock_state`), read the wall clock (callers pass `now`
from the ledger's injected `Clock`), or log a preimage.

Rules (SECURITY: each check runs before anything is written; a refusal changes nothing):
- lock (a signed ``htlc_lock``, `ledger.transactions`): asset registered (`UnknownAsset`),
  nonce is the account's next (`BadNonce`), ``timelock > now`` (`ValidationError`), balance
  covers the amount (`InsufficientBalance`). Debits the sender, consumes the nonce, creates
  the HTLC ``locked`` with id = the tx id (sha256 of the signed bytes).
- redeem(htlc_id, preimage): not signed; the secret is the authority (as on Bitcoin and EVM).
  Preimage exactly 32 bytes (`BadPreimage`), HTLC exists (`UnknownHtlc`), state ``locked``
  (`HtlcAlreadySettled`), ``sha256(preimage) == hashlock`` (`BadPreimage`), ``now < timelock``
  (`HtlcExpired`). Credits the recipient; stores the preimage where anyone can read it.
- refund(htlc_id): not signed. HTLC exists, state ``locked``, ``now >= timelock``
  (`HtlcNotExpired`). Origin ``lock``: credits the sender. Origin ``mint``: burns the amount
  (supply falls, burned_total rises; the BTC it stood for goes back to the user at its CLTV).
The supply does not change: a locked amount is in no balance, so the invariant is
``supply == balances + locked HTLCs`` (`ledger.types.SupplyReport`).

Journal payloads (Ferry journal v1; integers decimal strings, bytes ``0x`` hex)::

    htlc_lock   {htlc_id, tx, signature, at}
    htlc_redeem {htlc_id, preimage, recipient, asset, amount, at}
    htlc_refund {htlc_id, origin, sender, asset, amount, at}   (sender null for origin mint)
    htlc_mint   {event_id, event, epoch, asset, signatures, htlc_id, intent, at}

``at`` is ``floor(now)`` in ledger-clock seconds. Timelocks are whole seconds, so
``floor(now) < timelock`` exactly when ``now < timelock``: the replay re-checks every timelock
rule, the hashlock and the state machine from the journal alone.

HTLC-driven minting (`ledger.mint_intents`): a mint certified by the validators for an event
funding a registered intent inserts a row with origin ``mint`` and no sender (supply and
minted_total rise at the mint, the amount in no balance), journaled as ``htlc_mint``. Its
redeem is unchanged. Its refund burns instead of crediting (supply falls and burned_total rises
by the amount). `HtlcReplay` replays both.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import Connection, Row

from adapters.errors import (
    BadNonce,
    InsufficientBalance,
    UnknownAsset,
    ValidationError,
)
from htlc.errors import BadPreimage, HtlcAlreadySettled, HtlcExpired, HtlcNotExpired, UnknownHtlc
from htlc.mint_intent import MintIntent, mint_htlc_id
from ledger import store
from ledger.errors import JournalCorrupt
from ledger.fields import account_hex
from ledger.journal import JournalChain, JournalKind, Replay
from ledger.models import HtlcRow
from ledger.transactions import TX_DOMAIN, HtlcLockTx, TxKind
from ledger.types import Htlc, HtlcOrigin, HtlcState, TxReceipt
from validators.attestation import canonical

log = logging.getLogger(__name__)
HTLCS: Table = HtlcRow.__table__  # type: ignore[attr-defined]
PREIMAGE_BYTES = 32  # Ferry HTLC rules v1 (`htlc.hashlock`): every HTLC refuses any other length

TRANSITIONS: Mapping[HtlcState, frozenset[HtlcState]] = {
    HtlcState.LOCKED: frozenset({HtlcState.REDEEMED, HtlcState.REFUNDED}),
    HtlcState.REDEEMED: frozenset(),
    HtlcState.REFUNDED: frozenset(),
}
TERMINAL = frozenset({HtlcState.REDEEMED, HtlcState.REFUNDED})


def hashlock_of(preimage: bytes) -> bytes:
    """The hashlock of a preimage: ``sha256(preimage)`` (32 bytes).

    Raises:
        BadPreimage: `preimage` is not exactly 32 bytes.
    """
    if not isinstance(preimage, bytes) or len(preimage) != PREIMAGE_BYTES:
        raise BadPreimage(f"preimage must be exactly {PREIMAGE_BYTES} bytes")
    return hashlib.sha256(preimage).digest()


def _id_hex(htlc_id: bytes) -> str:
    if not isinstance(htlc_id, bytes) or len(htlc_id) != 32:
        raise ValidationError("htlc_id must be 32 bytes")
    return "0x" + htlc_id.hex()


def _at(now: float) -> str:
    return str(math.floor(now))


# ---- writes (inside the caller's write transaction) -----------------------------------------


def lock(conn: Connection, state: store.State, tx: HtlcLockTx, now: float) -> TxReceipt:
    """Apply a verified ``htlc_lock`` (`ledger.transactions.verify_transaction`).

    Args:
        conn: the write transaction (ledger state row already locked).
        state: the locked state row (journal head).
        tx: the parsed, signature-checked transaction.
        now: ledger-clock seconds.

    Returns:
        The journal seq and the 32-byte `htlc_id` (= the tx id).

    Raises:
        UnknownAsset, BadNonce, InsufficientBalance: as for a transfer.
        ValidationError: ``timelock <= now``.
    """
    account = account_hex(tx.account)
    asset = store.load_asset(conn, tx.asset)
    if asset is None:
        raise UnknownAsset(f"no asset {tx.asset}")
    expected = store.load_nonces(conn, [account]).get(account, 0)
    if tx.nonce != expected:
        raise BadNonce(f"account {account} next nonce is {expected}, got {tx.nonce}")
    if not tx.timelock > now:
        raise ValidationError(f"timelock {tx.timelock} is not after the ledger time {_at(now)}")
    balance = store.load_balances(conn, [(account, tx.asset)]).get((account, tx.asset), 0)
    if balance < tx.amount:
        raise InsufficientBalance(f"balance {balance} < amount {tx.amount} of {tx.asset}")
    htlc_id = "0x" + tx.htlc_id.hex()
    recipient = account_hex(tx.recipient)
    journal = JournalChain(state.seq, state.head)
    store.insert_journal(conn, [journal.append(JournalKind.HTLC_LOCK, {
        "htlc_id": htlc_id, "tx": dict(tx.signed.body),
        "signature": "0x" + tx.signed.signature.hex(), "at": _at(now),
    })])
    if recipient not in store.load_nonces(conn, [recipient]):
        store.insert_accounts(conn, [recipient])  # the row's foreign key; credited on redeem
    store.write_balances(conn, {}, {(account, tx.asset): balance - tx.amount})
    conn.execute(insert(HTLCS).values(
        htlc_id=htlc_id, seq=journal.seq, origin=HtlcOrigin.LOCK.value, sender=account,
        recipient=recipient, asset=tx.asset, amount=tx.amount,
        hashlock="0x" + tx.hashlock.hex(), timelock=tx.timelock,
        state=HtlcState.LOCKED.value, preimage=None, created_at=now, settled_at=None,
    ))
    store.set_nonce(conn, account, expected + 1)
    store.save_head(conn, journal)
    log.info("htlc locked htlc=%s seq=%d asset=%s timelock=%d", htlc_id, journal.seq, tx.asset,
             tx.timelock)
    return TxReceipt(seq=journal.seq, burn_id=None, htlc_id=tx.htlc_id)


def redeem(
    conn: Connection, state: store.State, htlc_id: bytes, preimage: bytes, now: float
) -> Htlc:
    """Redeem a locked HTLC with its preimage: credit the recipient, reveal the preimage.

    Anyone may call it: knowing the 32-byte secret is the authority (as on Bitcoin and EVM).

    Args:
        conn, state: the write transaction and its locked state row.
        htlc_id: 32 bytes.
        preimage: exactly 32 bytes whose sha256 is the hashlock.
        now: ledger-clock seconds.

    Returns:
        The HTLC, now ``redeemed``, with `preimage` and `settled_at` set.

    Raises:
        ValidationError: `htlc_id` is not 32 bytes.
        BadPreimage: not 32 bytes, or its sha256 is not the hashlock.
        UnknownHtlc: no such HTLC.
        HtlcAlreadySettled: redeemed or refunded before.
        HtlcExpired: ``now >= timelock``.
    """
    key = _id_hex(htlc_id)
    digest = hashlock_of(preimage)  # SECURITY: the length check comes before any lookup
    htlc = _load_settleable(conn, key, HtlcState.REDEEMED)
    if digest != htlc.hashlock:
        raise BadPreimage(f"sha256 of the preimage is not the hashlock of htlc {key}")
    if not now < htlc.timelock:
        raise HtlcExpired(f"htlc {key} expired at {htlc.timelock}; ledger time is {_at(now)}")
    recipient = account_hex(htlc.recipient)
    journal = JournalChain(state.seq, state.head)
    store.insert_journal(conn, [journal.append(JournalKind.HTLC_REDEEM, {
        "htlc_id": key, "preimage": "0x" + preimage.hex(), "recipient": recipient,
        "asset": htlc.asset, "amount": str(htlc.amount), "at": _at(now),
    })])
    _credit(conn, recipient, htlc.asset, htlc.amount)
    settled = _advance(conn, htlc, HtlcState.REDEEMED, now, preimage)
    store.save_head(conn, journal)
    log.info("htlc redeemed htlc=%s seq=%d", key, journal.seq)
    return settled


def refund(conn: Connection, state: store.State, htlc_id: bytes, now: float) -> Htlc:
    """Refund a locked HTLC whose timelock has passed.

    Anyone may call it: the refund only ever pays the sender (origin ``lock``).

    Args:
        conn, state: the write transaction and its locked state row.
        htlc_id: 32 bytes.
        now: ledger-clock seconds.

    Returns:
        The HTLC, now ``refunded``, with `settled_at` set.

    Raises:
        ValidationError: `htlc_id` is not 32 bytes.
        UnknownHtlc: no such HTLC.
        HtlcAlreadySettled: redeemed or refunded before.
        HtlcNotExpired: ``now < timelock``.
    Origin ``mint``: the amount is burned (supply -= amount, burned_total += amount).
    """
    key = _id_hex(htlc_id)
    htlc = _load_settleable(conn, key, HtlcState.REFUNDED)
    if now < htlc.timelock:
        raise HtlcNotExpired(f"htlc {key} can be refunded from {htlc.timelock}; "
                             f"ledger time is {_at(now)}")
    payee: str | None = None
    match htlc.origin:
        case HtlcOrigin.LOCK:
            assert htlc.sender is not None, "a lock-origin HTLC always has a sender"
            payee = account_hex(htlc.sender)
        case HtlcOrigin.MINT:
            payee = None  # a burn: the minted amount leaves the supply
    journal = JournalChain(state.seq, state.head)
    store.insert_journal(conn, [journal.append(JournalKind.HTLC_REFUND, {
        "htlc_id": key, "origin": htlc.origin.value, "sender": payee, "asset": htlc.asset,
        "amount": str(htlc.amount), "at": _at(now),
    })])
    if payee is not None:
        _credit(conn, payee, htlc.asset, htlc.amount)
    else:
        asset = store.load_asset(conn, htlc.asset)
        assert asset is not None, "an htlc's asset is registered (foreign key)"
        store.save_asset_counters(conn, [replace(
            asset, supply=asset.supply - htlc.amount,
            burned_total=asset.burned_total + htlc.amount)])
    settled = _advance(conn, htlc, HtlcState.REFUNDED, now, None)
    store.save_head(conn, journal)
    log.info("htlc refunded htlc=%s seq=%d", key, journal.seq)
    return settled


def _load_settleable(conn: Connection, key: str, to: HtlcState) -> Htlc:
    row = conn.execute(select(HTLCS).where(HTLCS.c.htlc_id == key)).first()
    if row is None:
        raise UnknownHtlc(f"no htlc {key}")
    htlc = _htlc(row)
    if to not in TRANSITIONS[htlc.state]:
        raise HtlcAlreadySettled(f"htlc {key} is already {htlc.state.value}")
    return htlc


def _advance(
    conn: Connection, htlc: Htlc, to: HtlcState, now: float, preimage: bytes | None
) -> Htlc:
    """The only writer of ``ledger_htlcs.state``: one legal move, compare-and-set on the row."""
    if to not in TRANSITIONS[htlc.state]:
        raise HtlcAlreadySettled(f"htlc 0x{htlc.htlc_id.hex()} is already {htlc.state.value}")
    key = "0x" + htlc.htlc_id.hex()
    result = conn.execute(
        update(HTLCS).where(HTLCS.c.htlc_id == key).where(HTLCS.c.state == htlc.state.value)
        .values(state=to.value, settled_at=now,
                preimage=None if preimage is None else "0x" + preimage.hex()))
    if result.rowcount != 1:  # only if a writer bypassed the ledger's write lock
        raise HtlcAlreadySettled(f"htlc {key} changed state concurrently")
    return replace(htlc, state=to, preimage=preimage, settled_at=float(now))


def _credit(conn: Connection, account: str, asset: str, amount: int) -> None:
    if account not in store.load_nonces(conn, [account]):
        store.insert_accounts(conn, [account])
    current = store.load_balances(conn, [(account, asset)])
    store.write_balances(conn, {} if current else {(account, asset): amount},
                         {k: v + amount for k, v in current.items()})


# ---- reads ------------------------------------------------------------------------------------


def _htlc(r: Row[Any]) -> Htlc:
    return Htlc(
        htlc_id=bytes.fromhex(r.htlc_id[2:]), seq=r.seq, origin=HtlcOrigin(r.origin),
        sender=None if r.sender is None else bytes.fromhex(r.sender[2:]),
        recipient=bytes.fromhex(r.recipient[2:]), asset=r.asset, amount=r.amount,
        hashlock=bytes.fromhex(r.hashlock[2:]), timelock=r.timelock, state=HtlcState(r.state),
        preimage=None if r.preimage is None else bytes.fromhex(r.preimage[2:]),
        created_at=r.created_at, settled_at=r.settled_at,
    )


def load(conn: Connection, htlc_id: bytes) -> Htlc | None:
    """The HTLC with this 32-byte id, or None. Raises `ValidationError` for another length."""
    row = conn.execute(select(HTLCS).where(HTLCS.c.htlc_id == _id_hex(htlc_id))).first()
    return None if row is None else _htlc(row)


def by_hashlock(conn: Connection, hashlock: bytes, after_seq: int, limit: int) -> list[Htlc]:
    """HTLCs with this 32-byte hashlock and seq > `after_seq`, ascending by seq, at most
    `limit`. Raises `ValidationError` if `hashlock` is not 32 bytes."""
    if not isinstance(hashlock, bytes) or len(hashlock) != 32:
        raise ValidationError("hashlock must be 32 bytes")
    q = (select(HTLCS).where(HTLCS.c.hashlock == "0x" + hashlock.hex())
         .where(HTLCS.c.seq > after_seq).order_by(HTLCS.c.seq).limit(limit))
    return [_htlc(r) for r in conn.execute(q)]


def locked_totals(conn: Connection) -> dict[str, int]:
    """Asset -> sum of the amounts of its ``locked`` HTLCs (assets with none omitted)."""
    totals: dict[str, int] = {}
    q = select(HTLCS.c.asset, HTLCS.c.amount).where(HTLCS.c.state == HtlcState.LOCKED.value)
    for r in conn.execute(q):
        totals[r.asset] = totals.get(r.asset, 0) + r.amount
    return totals


# ---- replay -----------------------------------------------------------------------------------


@dataclass
class ReplayedHtlc:
    """An HTLC as re-derived from the journal (account and byte fields ``0x`` hex)."""

    seq: int
    origin: HtlcOrigin
    sender: str | None
    recipient: str
    asset: str
    amount: int
    hashlock: str
    timelock: int
    state: HtlcState = HtlcState.LOCKED
    preimage: str | None = None


@dataclass
class HtlcReplay(Replay):
    """`ledger.journal.Replay` that also replays the HTLC kinds and re-checks their rules:
    the id is the tx id, the nonce, no overdraft, ``timelock > at`` at lock, one settlement per
    HTLC, a 32-byte preimage hashing to the hashlock before the timelock, a refund at or after
    it, and that each settlement moves the locked amount to the right account."""

    htlcs: dict[str, ReplayedHtlc] = field(default_factory=dict)

    def _apply(self, kind: JournalKind, body: dict[str, Any], seq: int) -> None:
        match kind:
            case JournalKind.HTLC_LOCK:
                self._lock(body, seq)
            case JournalKind.HTLC_MINT:
                self._mint(body, seq)
            case JournalKind.HTLC_REDEEM:
                htlc = self._settle(body, seq, HtlcState.REDEEMED)
                preimage = bytes.fromhex(body["preimage"].removeprefix("0x"))
                if len(preimage) != PREIMAGE_BYTES or (
                    "0x" + hashlib.sha256(preimage).hexdigest() != htlc.hashlock
                ):
                    raise JournalCorrupt("redeem with a bad preimage", seq=seq)
                if not int(body["at"]) < htlc.timelock:
                    raise JournalCorrupt("redeem at or after the timelock", seq=seq)
                if body["recipient"] != htlc.recipient:
                    raise JournalCorrupt("redeem paid another account", seq=seq)
                htlc.preimage = body["preimage"]
                self._credit(htlc.recipient, htlc.asset, htlc.amount)
            case JournalKind.HTLC_REFUND:
                htlc = self._settle(body, seq, HtlcState.REFUNDED)
                if int(body["at"]) < htlc.timelock:
                    raise JournalCorrupt("refund before the timelock", seq=seq)
                match htlc.origin:
                    case HtlcOrigin.LOCK:
                        if body["sender"] != htlc.sender:
                            raise JournalCorrupt("refund paid another account", seq=seq)
                        self._credit(body["sender"], htlc.asset, htlc.amount)
                    case HtlcOrigin.MINT:  # a burn
                        if body["sender"] is not None:
                            raise JournalCorrupt("refund of a minted htlc paid someone", seq=seq)
                        self.supply[htlc.asset] -= htlc.amount
                        self.burned[htlc.asset] += htlc.amount
            case _:
                super()._apply(kind, body, seq)

    def _lock(self, body: dict[str, Any], seq: int) -> None:
        tx = body["tx"]
        htlc_id = "0x" + hashlib.sha256(TX_DOMAIN + canonical(tx)).hexdigest()
        if tx["kind"] != TxKind.HTLC_LOCK.value or body["htlc_id"] != htlc_id:
            raise JournalCorrupt("htlc_lock id is not the sha256 of its tx", seq=seq)
        if htlc_id in self.htlcs:
            raise JournalCorrupt(f"htlc {htlc_id} locked twice", seq=seq)
        account, asset, amount = tx["account"], tx["asset"], int(tx["amount"])
        if int(tx["nonce"]) != self.nonces.get(account, 0):
            raise JournalCorrupt(f"nonce {tx['nonce']} out of order", seq=seq)
        if not int(tx["timelock"]) > int(body["at"]):
            raise JournalCorrupt("htlc locked with a timelock not in the future", seq=seq)
        self.nonces[account] = int(tx["nonce"]) + 1
        self._credit(account, asset, -amount)
        if self.balances[(account, asset)] < 0:
            raise JournalCorrupt("balance went negative", seq=seq)
        self.htlcs[htlc_id] = ReplayedHtlc(
            seq=seq, origin=HtlcOrigin.LOCK, sender=account, recipient=tx["recipient"],
            asset=asset, amount=amount, hashlock=tx["hashlock"], timelock=int(tx["timelock"]))

    def _mint(self, body: dict[str, Any], seq: int) -> None:
        """An ``htlc_mint`` (`ledger.mint_intents`): the event's recipient is the intent id,
        the HTLC id is derived from the event id, and the timelock was in the future."""
        intent = MintIntent.from_json(body["intent"])
        event = body["event"]
        if event["recipient"] != "0x" + intent.intent_id.hex():
            raise JournalCorrupt("htlc_mint of an event that does not fund its intent", seq=seq)
        if body["event_id"] in self.event_ids:
            raise JournalCorrupt(f"event {body['event_id']} minted twice", seq=seq)
        htlc_id = "0x" + mint_htlc_id(body["event_id"]).hex()
        if body["htlc_id"] != htlc_id or htlc_id in self.htlcs:
            raise JournalCorrupt("htlc_mint id is not derived from its event", seq=seq)
        if not intent.ledger_timelock > int(body["at"]):
            raise JournalCorrupt("htlc minted with a timelock not in the future", seq=seq)
        self.event_ids.add(body["event_id"])
        asset, amount = body["asset"], int(event["amount"])
        self.supply[asset] += amount
        self.minted[asset] += amount
        self.htlcs[htlc_id] = ReplayedHtlc(
            seq=seq, origin=HtlcOrigin.MINT, sender=None,
            recipient="0x" + intent.account.hex(), asset=asset, amount=amount,
            hashlock="0x" + intent.hashlock.hex(), timelock=intent.ledger_timelock)

    def _settle(self, body: dict[str, Any], seq: int, to: HtlcState) -> ReplayedHtlc:
        htlc = self.htlcs.get(body["htlc_id"])
        if htlc is None:
            raise JournalCorrupt(f"{to.value} of unknown htlc {body['htlc_id']}", seq=seq)
        if to not in TRANSITIONS[htlc.state]:
            raise JournalCorrupt(f"htlc {body['htlc_id']} settled twice", seq=seq)
        if (body["asset"], int(body["amount"])) != (htlc.asset, htlc.amount):
            raise JournalCorrupt("settlement of another asset or amount", seq=seq)
        htlc.state = to
        return htlc


def check_replayed(conn: Connection, replay: HtlcReplay) -> None:
    """Compare the ``ledger_htlcs`` rows with the replayed HTLCs (inside a read transaction).

    Raises:
        JournalCorrupt: a row is missing, extra, or differs in any replayed field.
    """
    stored = {
        r.htlc_id: ReplayedHtlc(
            seq=r.seq, origin=HtlcOrigin(r.origin), sender=r.sender, recipient=r.recipient,
            asset=r.asset, amount=r.amount, hashlock=r.hashlock, timelock=r.timelock,
            state=HtlcState(r.state), preimage=r.preimage)
        for r in conn.execute(select(HTLCS))
    }
    if stored != replay.htlcs:
        bad = sorted(set(stored) ^ set(replay.htlcs)) or sorted(
            k for k in stored if stored[k] != replay.htlcs[k])
        raise JournalCorrupt(f"stored htlcs differ from the replayed ones: {bad[:3]}")
