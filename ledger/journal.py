"""The ledger journal: an append-only hash chain of every state change, and a replay of it.

Owns: the journal entry format, `JournalChain` (computes new entries), `verify_chain` and
`Replay` (re-derives balances, supply and nonces from payloads alone). Must not touch a
database; `ledger.service` reads and writes the rows.

Format (Ferry journal v1):
- ``payload`` = canonical JSON (validators.attestation.canonical: sorted keys, no whitespace,
  ASCII) of ``{"seq": "<n>", "kind": "<kind>", ...fields}``; every integer a decimal string.
  Putting seq and kind inside the payload binds them into the hash.
- ``hash = sha256(prev_hash || payload)`` (32 bytes each); the first entry (seq 1) has
  ``prev_hash`` = 32 zero bytes; entry n's ``prev_hash`` is entry n-1's ``hash``.
- Fields by kind: genesis {network, validator_set}; bridge {chain, contract}; asset {asset,
  symbol, origin_chain, origin_token, decimals}; mint {event_id, event, epoch, asset,
  signatures}; burn {burn_id, tx, signature}; transfer {tx_id, tx, signature};
  validator_set {previous_epoch, validator_set, signatures}; htlc_lock, htlc_redeem,
  htlc_refund and htlc_mint: see `ledger.htlcs` and `ledger.mint_intents` (replayed by
  `ledger.htlcs.HtlcReplay`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ledger.errors import JournalCorrupt
from ledger.types import JournalEntry
from validators.attestation import canonical

ZERO_HASH = b"\x00" * 32


class JournalKind(StrEnum):
    GENESIS = "genesis"
    BRIDGE = "bridge"
    ASSET = "asset"
    MINT = "mint"
    BURN = "burn"
    TRANSFER = "transfer"
    VALIDATOR_SET = "validator_set"
    HTLC_LOCK = "htlc_lock"
    HTLC_REDEEM = "htlc_redeem"
    HTLC_REFUND = "htlc_refund"
    HTLC_MINT = "htlc_mint"


def entry_hash(prev_hash: bytes, payload: bytes) -> bytes:
    """``sha256(prev_hash || payload)`` (32 bytes)."""
    return hashlib.sha256(prev_hash + payload).digest()


class JournalChain:
    """Builds the next entries after (`seq`, `head`); the caller inserts the rows it returns
    in the same DB transaction that applies the change, then stores `seq`/`head`."""

    def __init__(self, seq: int, head: bytes) -> None:
        self.seq = seq
        self.head = head

    def append(self, kind: JournalKind, fields: Mapping[str, Any]) -> dict[str, object]:
        """The row (seq, kind, payload, prev_hash, hash; hashes ``0x`` hex) of the next entry."""
        seq = self.seq + 1
        body: dict[str, Any] = {**fields, "seq": str(seq), "kind": kind.value}
        payload = canonical(body)
        digest = entry_hash(self.head, payload)
        row: dict[str, object] = {
            "seq": seq, "kind": kind.value, "payload": payload.decode("ascii"),
            "prev_hash": "0x" + self.head.hex(), "hash": "0x" + digest.hex(),
        }
        self.seq, self.head = seq, digest
        return row


def verify_chain(
    entries: Iterable[JournalEntry], seq: int = 0, head: bytes = ZERO_HASH
) -> tuple[int, bytes]:
    """Recompute the chain over `entries` (in seq order), continuing from (`seq`, `head`).

    Returns:
        The last (seq, hash) seen, to continue with the next page.

    Raises:
        JournalCorrupt: a gap in seq, a prev_hash that is not the previous hash, a hash that is
            not sha256(prev_hash || payload), or a payload whose seq/kind differ from the row's.
    """
    for entry in entries:
        if entry.seq != seq + 1:
            raise JournalCorrupt(f"expected seq {seq + 1}", seq=entry.seq)
        if entry.prev_hash != head:
            raise JournalCorrupt("prev_hash is not the previous entry's hash", seq=entry.seq)
        if entry_hash(entry.prev_hash, entry.payload.encode()) != entry.hash:
            raise JournalCorrupt("hash does not match payload", seq=entry.seq)
        body = decode_payload(entry)
        if body.get("seq") != str(entry.seq) or body.get("kind") != entry.kind:
            raise JournalCorrupt("payload seq/kind differ from the entry", seq=entry.seq)
        seq, head = entry.seq, entry.hash
    return seq, head


def decode_payload(entry: JournalEntry) -> dict[str, Any]:
    """The payload as a dict. Raises `JournalCorrupt` if it is not a canonical JSON object."""
    try:
        body = json.loads(entry.payload)
    except ValueError as exc:
        raise JournalCorrupt("payload is not JSON", seq=entry.seq) from exc
    if not isinstance(body, dict) or canonical(body).decode() != entry.payload:
        raise JournalCorrupt("payload is not canonical JSON", seq=entry.seq)
    return body


@dataclass
class Replay:
    """State re-derived from journal payloads only; compare it with the tables.

    Attributes (amounts in base units): balances (account hex, asset) -> amount; supply,
    minted, burned: asset -> amount; nonces: account hex -> next nonce; epoch: current epoch.
    """

    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    supply: dict[str, int] = field(default_factory=dict)
    minted: dict[str, int] = field(default_factory=dict)
    burned: dict[str, int] = field(default_factory=dict)
    nonces: dict[str, int] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)
    epoch: int = -1

    def apply(self, entry: JournalEntry) -> None:
        """Apply one verified entry. Raises `JournalCorrupt` if the entry is impossible
        (unknown kind, a second mint of an event, a bad nonce, an overdraft)."""
        body = decode_payload(entry)
        try:
            self._apply(JournalKind(entry.kind), body, entry.seq)
        except (KeyError, ValueError, TypeError) as exc:
            raise JournalCorrupt(f"malformed {entry.kind} payload: {exc!r}", seq=entry.seq) from exc

    def _apply(self, kind: JournalKind, body: dict[str, Any], seq: int) -> None:
        match kind:
            case JournalKind.GENESIS:
                self.epoch = int(body["validator_set"]["epoch"])
            case JournalKind.VALIDATOR_SET:
                if int(body["previous_epoch"]) != self.epoch:
                    raise JournalCorrupt("rotation from a stale epoch", seq=seq)
                self.epoch = int(body["validator_set"]["epoch"])
            case JournalKind.ASSET:
                for table in (self.supply, self.minted, self.burned):
                    table.setdefault(body["asset"], 0)
            case JournalKind.BRIDGE:
                pass
            case JournalKind.MINT:
                if body["event_id"] in self.event_ids:
                    raise JournalCorrupt(f"event {body['event_id']} minted twice", seq=seq)
                self.event_ids.add(body["event_id"])
                asset, amount = body["asset"], int(body["event"]["amount"])
                self._credit(body["event"]["recipient"], asset, amount)
                self.supply[asset] += amount
                self.minted[asset] += amount
            case JournalKind.BURN | JournalKind.TRANSFER:
                tx = body["tx"]
                account, asset, amount = tx["account"], tx["asset"], int(tx["amount"])
                if int(tx["nonce"]) != self.nonces.get(account, 0):
                    raise JournalCorrupt(f"nonce {tx['nonce']} out of order", seq=seq)
                self.nonces[account] = int(tx["nonce"]) + 1
                self._credit(account, asset, -amount)
                if self.balances[(account, asset)] < 0:
                    raise JournalCorrupt("balance went negative", seq=seq)
                if kind is JournalKind.BURN:
                    self.supply[asset] -= amount
                    self.burned[asset] += amount
                else:
                    self._credit(tx["to"], asset, amount)

    def _credit(self, account: str, asset: str, amount: int) -> None:
        key = (account, asset)
        self.balances[key] = self.balances.get(key, 0) + amount
