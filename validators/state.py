"""The validator daemon's state file: its scan cursors, persisted as JSON.

Owns: `CursorState` and its file format (``STATE_VERSION``), read by `load_state` and written
atomically by `save_state`. Must not decide when cursors move (that is `validators.daemon`), nor
hold anything secret: the file names the validator by its public Ed25519 key only.

Format (``version`` 1)::

    {"version": 1, "network": "...", "validator": "<ed25519 public hex>", "epoch": 3,
     "burn_seq": 41, "chains": {"eip155:1": {"block": 1200, "set_nonce": 2}},
     "risk_signed": {"<route>": [[<at>, "<amount>", "<key>"], ...]},
     "risk_held": {"<key>": {"kind", "route", "amount", "first_seen", "reason", "until",
                             "payload": {...}}}}

``risk_signed`` and ``risk_held`` (`validators.risk_gate`) were added later: a file without them
loads with both empty. Amounts are decimal strings, times seconds since the epoch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from adapters.errors import ConfigError

STATE_VERSION = 1


@dataclass(slots=True)
class SignedItem:
    """One signature the risk gate let through: ledger-neutral `key`, `amount` in base units,
    `at` this validator's clock (seconds since the epoch)."""

    at: float
    amount: int
    key: str


@dataclass(slots=True)
class HeldItem:
    """Something the risk gate held back (`validators.risk_gate`).

    Attributes:
        key: lock event id, or burn id (``0x`` hex).
        kind: ``lock``, ``release`` (EVM release signature) or ``custody`` (UTXO/escrow spend).
        route: `validators.risk.route_key` of it.
        amount: base units.
        first_seen: when this validator first saw it (its delay started then).
        reason: the `validators.risk.WaitReason` value of the last decision.
        until: earliest time of the last decision (None: it exceeds the whole limit).
        payload: what the daemon needs to sign it later (a lock: the event's fields).
    """

    key: str
    kind: str
    route: str
    amount: int
    first_seen: float
    reason: str
    until: float | None
    payload: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "route": self.route, "amount": str(self.amount),
                "first_seen": self.first_seen, "reason": self.reason, "until": self.until,
                "payload": self.payload}

    @classmethod
    def from_json(cls, key: str, d: dict[str, object]) -> HeldItem:
        until = d.get("until")
        payload = d.get("payload") or {}
        if not isinstance(payload, dict):
            raise TypeError("risk_held payload must be an object")
        return cls(key=str(key), kind=str(d["kind"]), route=str(d["route"]),
                   amount=int(str(d["amount"])), first_seen=float(str(d["first_seen"])),
                   reason=str(d["reason"]), until=None if until is None else float(str(until)),
                   payload={str(k): str(v) for k, v in payload.items()})


@dataclass(slots=True)
class CursorState:
    """The persisted scan position (JSON in ``state_file``).

    Attributes:
        blocks: per CAIP-2 chain, the last final block whose lock events were delivered.
        set_nonces: per CAIP-2 chain, the bridge ``setNonce`` seen last.
        burn_seq: ledger seq of the last burn delivered (the ``after_seq`` of the next read).
        epoch: ledger validator-set epoch seen last (None before the first pass).
        custody_inputs: burn id (0x hex) -> outpoints ("txid:vout") of the first custody spend
            this validator signed for it (`validators.utxo_signer`); never shrinks.
        escrow_sequences: burn id (0x hex) -> escrow sequences this validator signed its release
            at (`validators.escrow_signer`): Cosmos account sequences (int), Solana durable
            nonce values (base58 str); never shrinks.
        risk_signed: per risk route, what this validator let through within the rolling window
            (`validators.risk_gate`; older entries are pruned).
        risk_held: key (lock event id, or burn id 0x hex) -> what the risk rules held back, with
            when this validator first saw it; retried on later passes, never dropped.
    """

    blocks: dict[str, int] = field(default_factory=dict)
    set_nonces: dict[str, int] = field(default_factory=dict)
    burn_seq: int = 0
    epoch: int | None = None
    custody_inputs: dict[str, list[str]] = field(default_factory=dict)
    escrow_sequences: dict[str, list[int | str]] = field(default_factory=dict)
    risk_signed: dict[str, list[SignedItem]] = field(default_factory=dict)
    risk_held: dict[str, HeldItem] = field(default_factory=dict)


def load_state(path: Path, *, network: str, validator: str) -> CursorState:
    """Read the state file; a missing file is an empty state.

    Args:
        path: the state file.
        network: Ferry network name the file must have been written for.
        validator: Ed25519 public key (hex) of the validator the file must belong to.

    Returns:
        The cursors stored in the file, or an empty `CursorState` when there is no file.

    Raises:
        ConfigError: unreadable, corrupt, or written for another network or validator (its
            cursors would skip or replay the wrong events).
    """
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return CursorState()
    except OSError as exc:
        raise ConfigError(f"cannot read validator state {path}: {exc.strerror}") from exc
    try:
        doc = json.loads(raw)
        if doc.get("version") != STATE_VERSION:
            raise ConfigError(f"unsupported validator state version in {path}")
        if doc.get("network") != network or doc.get("validator") != validator:
            raise ConfigError(
                f"validator state {path} belongs to network={doc.get('network')} "
                f"validator={doc.get('validator')}"
            )
        chains = doc["chains"]
        return CursorState(
            blocks={c: int(v["block"]) for c, v in chains.items()},
            set_nonces={
                c: int(v["set_nonce"]) for c, v in chains.items() if v.get("set_nonce") is not None
            },
            burn_seq=int(doc["burn_seq"]),
            epoch=None if doc.get("epoch") is None else int(doc["epoch"]),
            custody_inputs={str(k): [str(o) for o in v]
                            for k, v in doc.get("custody_inputs", {}).items()},
            escrow_sequences={str(k): [q if isinstance(q, str) else int(q) for q in v]
                              for k, v in doc.get("escrow_sequences", {}).items()},
            risk_signed={str(r): [SignedItem(float(at), int(str(amount)), str(key))
                                  for at, amount, key in items]
                         for r, items in doc.get("risk_signed", {}).items()},
            risk_held={str(k): HeldItem.from_json(k, v)
                       for k, v in doc.get("risk_held", {}).items()},
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"corrupt validator state {path}") from exc


def save_state(path: Path, state: CursorState, *, network: str, validator: str) -> None:
    """Write the state file atomically (temp file, ``fsync``, ``os.replace``).

    Args:
        path: the state file; its directory is created if missing.
        state: the cursors to write.
        network: Ferry network name, stored so `load_state` can refuse another network's file.
        validator: Ed25519 public key (hex) of this validator, stored for the same reason.

    Raises:
        OSError: the file could not be written (the previous file is left intact).
    """
    doc = {
        "version": STATE_VERSION,
        "network": network,
        "validator": validator,
        "epoch": state.epoch,
        "burn_seq": state.burn_seq,
        "custody_inputs": state.custody_inputs,
        "escrow_sequences": state.escrow_sequences,
        "risk_signed": {r: [[i.at, str(i.amount), i.key] for i in items]
                        for r, items in state.risk_signed.items() if items},
        "risk_held": {k: h.to_json() for k, h in state.risk_held.items()},
        "chains": {
            chain: {"block": block, "set_nonce": state.set_nonces.get(chain)}
            for chain, block in sorted(state.blocks.items())
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
