"""The ledger's side of HTLC-driven minting: the mint-intent registry and the mint of a funded
intent into an HTLC of origin ``mint``.

Owns: the ``ledger_mint_intents`` table's reads and writes (`register`, `load`, `page`), the
registration rules, and `mint_htlc_rows` (what `ledger.minting` writes instead of a balance
credit when a certified lock event funds an intent). Must not open transactions or take locks
(`ledger.service` does), read the wall clock (callers pass `now`), or derive a script or an
address (the chain adapters do, `htlc.mint`).

Rules (SECURITY: each check runs before anything is written):
- register: chain has a bridge (`UnknownBridge`); terms well formed (`MintIntent`);
  ``ledger_timelock > now`` (`ValidationError`); one intent per (chain, hashlock): the same
  terms again answer the stored registration, other terms `ValidationError`; the intent id is
  not a registered deposit account of the chain, nor may a deposit account later be an intent
  id (`ledger.service.Ledger.register_deposit_account`), so a lock event's recipient names
  either a balance or an HTLC, never both.
- mint (inside `ledger.minting`, after the quorum check): an event carrying the ``htlc:``
  sender mark must name a registered intent of its chain as recipient (`ValidationError`); the intent's
  ledger timelock must still be in the future (`ValidationError`). The HTLC (id
  `htlc.mint_intent.mint_htlc_id` of the event id) is ``locked`` for the intent's account with
  the intent's hashlock and ledger timelock; supply and minted_total rise by the amount, which
  is in no balance. Journal kind ``htlc_mint`` {event_id, event, epoch, asset, signatures,
  htlc_id, intent, at}; replayed by `ledger.htlcs.HtlcReplay`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection, Row

from adapters.errors import ValidationError
from htlc.mint_intent import MintIntent, is_htlc_sender, mint_htlc_id
from ledger import store
from ledger.errors import UnknownBridge
from ledger.models import MintIntentRow

log = logging.getLogger(__name__)
INTENTS: Table = MintIntentRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class IntentRegistration:
    """A registered mint intent.

    Attributes:
        seq: the registry's own order (ascending from 1; not a journal seq).
        intent: the terms.
        registered_at: ledger-clock seconds.
        created: whether the call that returned it stored it (False for a repeat and in
            listings).

    JSON: ``{"seq", "intent_id", "intent": MintIntent.to_json(), "registered_at", "created"}``.
    """

    seq: int
    intent: MintIntent
    registered_at: float
    created: bool = False

    @property
    def intent_id(self) -> bytes:
        return self.intent.intent_id

    def to_json(self) -> dict[str, object]:
        return {"seq": self.seq, "intent_id": "0x" + self.intent_id.hex(),
                "intent": self.intent.to_json(), "registered_at": self.registered_at,
                "created": self.created}

    @classmethod
    def from_json(cls, data: Any) -> IntentRegistration:
        """Parse `to_json` output; checks the id is the terms' id.

        Raises:
            ValidationError, InvalidAddress: malformed, or an id that is not the terms'.
        """
        if not isinstance(data, dict):
            raise ValidationError("an intent registration is a JSON object")
        intent = MintIntent.from_json(data.get("intent"))
        if data.get("intent_id") != "0x" + intent.intent_id.hex():
            raise ValidationError("intent_id is not the id of the intent's terms")
        seq, at, created = data.get("seq"), data.get("registered_at"), data.get("created", False)
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise ValidationError("registration seq must be an integer >= 1")
        if isinstance(at, bool) or not isinstance(at, int | float) or at < 0:
            raise ValidationError("registered_at must be a number >= 0")
        if not isinstance(created, bool):
            raise ValidationError("created must be a boolean")
        return cls(seq, intent, float(at), created)


def _registration(r: Row[Any]) -> IntentRegistration:
    return IntentRegistration(r.seq, MintIntent(
        chain=r.chain, account=bytes.fromhex(r.account[2:]), hashlock=bytes.fromhex(r.hashlock[2:]),
        refund_pubkey=bytes.fromhex(r.refund_pubkey[2:]), btc_expiry=r.btc_expiry,
        ledger_timelock=r.ledger_timelock), r.registered_at)


def register(conn: Connection, intent: MintIntent, now: float) -> IntentRegistration:
    """Store `intent` (rules in the module docstring); idempotent for identical terms.

    Raises:
        UnknownBridge: no bridge for the intent's chain.
        ValidationError: timelock not after `now`; the hashlock is registered with other terms;
            the intent id is a deposit account of the chain.
    """
    if intent.chain not in store.load_bridges(conn):
        raise UnknownBridge(f"no bridge configured for chain {intent.chain!r}")
    key = "0x" + intent.intent_id.hex()
    row = conn.execute(select(INTENTS).where(INTENTS.c.chain == intent.chain)
                       .where(INTENTS.c.hashlock == "0x" + intent.hashlock.hex())).first()
    if row is not None:
        if row.intent_id != key:
            raise ValidationError("this hashlock is already registered with other terms")
        return _registration(row)
    if not intent.ledger_timelock > now:
        raise ValidationError(f"ledger_timelock {intent.ledger_timelock} is not after the "
                              f"ledger time {int(now)}")
    if store.load_deposit_account(conn, intent.chain, key) is not None:
        raise ValidationError("the intent id is a registered deposit account")
    result = conn.execute(insert(INTENTS).values(
        intent_id=key, chain=intent.chain, account="0x" + intent.account.hex(),
        hashlock="0x" + intent.hashlock.hex(), refund_pubkey="0x" + intent.refund_pubkey.hex(),
        btc_expiry=intent.btc_expiry, ledger_timelock=intent.ledger_timelock,
        registered_at=now))
    pk = result.inserted_primary_key
    assert pk is not None, "insert returned no primary key"
    log.info("mint intent registered chain=%s intent=%s seq=%d", intent.chain, key, int(pk[0]))
    return IntentRegistration(int(pk[0]), intent, now, True)


def load(conn: Connection, intent_id: bytes) -> IntentRegistration | None:
    """The registration with this 32-byte id, or None."""
    row = conn.execute(select(INTENTS).where(INTENTS.c.intent_id == "0x" + intent_id.hex())).first()
    return None if row is None else _registration(row)


def load_many(conn: Connection, ids: list[str]) -> dict[str, IntentRegistration]:
    """Registrations among `ids` (``0x`` hex), by id."""
    if not ids:
        return {}
    rows = conn.execute(select(INTENTS).where(INTENTS.c.intent_id.in_(sorted(set(ids)))))
    return {r.intent_id: _registration(r) for r in rows}


def page(conn: Connection, chain: str, after_seq: int, limit: int) -> list[IntentRegistration]:
    """Registrations on `chain` with seq > `after_seq`, ascending, at most `limit`."""
    q = (select(INTENTS).where(INTENTS.c.chain == chain).where(INTENTS.c.seq > after_seq)
         .order_by(INTENTS.c.seq).limit(limit))
    return [_registration(r) for r in conn.execute(q)]


def check_funding(sender: str, intent: IntentRegistration | None, now: float) -> None:
    """The mint-time rules of a certified event against the intent its recipient names (or
    None when the recipient is no intent).

    Raises:
        ValidationError: mark and intent disagree, or the intent's ledger timelock passed.
    """
    if is_htlc_sender(sender) != (intent is not None):
        raise ValidationError("an htlc-marked lock must fund a registered intent, and only it")
    if intent is not None and not intent.intent.ledger_timelock > now:
        raise ValidationError(f"intent's ledger timelock {intent.intent.ledger_timelock} passed")


def htlc_row(event_id: str, seq: int, intent: MintIntent, asset: str, amount: int,
             now: float) -> dict[str, Any]:
    """The ``ledger_htlcs`` row a funded intent mints (state ``locked``, origin ``mint``)."""
    return {
        "htlc_id": "0x" + mint_htlc_id(event_id).hex(), "seq": seq, "origin": "mint",
        "sender": None, "recipient": "0x" + intent.account.hex(), "asset": asset,
        "amount": amount, "hashlock": "0x" + intent.hashlock.hex(),
        "timelock": intent.ledger_timelock, "state": "locked", "preimage": None,
        "created_at": now, "settled_at": None,
    }
