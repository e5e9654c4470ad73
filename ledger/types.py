"""Value types shared by the ledger service, its HTTP router and its client, with their JSON
wire forms (notes/DESIGN.md "Ledger HTTP API").

Owns: `MintRequest`, `MintResult`, `MintStatus`, `TxReceipt`, `AccountInfo`, `BurnRecord`,
`AssetInfo`, `LedgerStatus`, `JournalEntry`, `DepositRegistration`, `Htlc` (with `HtlcState`,
`HtlcOrigin`) and their ``to_json``/``from_json``. Must not touch a database or the network.

Wire conventions: amounts, nonces and epochs are decimal strings; sequence numbers (journal and
deposit registry) and decimals are JSON integers; times are JSON numbers (seconds since the
epoch); byte strings are lowercase ``0x`` hex. ``from_json`` parses untrusted input and raises a
`ValidationError` subclass (never KeyError/TypeError).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from adapters.base import LockEvent
from adapters.errors import ConfigError, InvalidAddress, InvalidSignature, ValidationError
from ledger.fields import account_hex, parse_account, parse_chain, parse_uint
from validators.attestation import ValidatorInfo, ValidatorSet, parse_hex

# Error code of ``GET /v1/ledger/burns/{burn_id}`` (HTTP 404) for a burn id the ledger does not
# have. Interim: it belongs to an `UnknownBurn` class in `ledger.errors`, which will carry it.
UNKNOWN_BURN_CODE = "unknown_burn"


class MintStatus(StrEnum):
    MINTED = "minted"  # credited now
    DUPLICATE = "duplicate"  # this event id was minted before; nothing changed
    REJECTED = "rejected"  # refused; `code` says why; nothing changed
    DEFERRED = "deferred"  # held back by the risk rules (`ledger.risk`); `code` says why and
    # `retry_at` when it may pass (None: only an operator can move it); nothing minted


def _obj(data: object, what: str) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise ValidationError(f"{what} must be a JSON object")
    return data


def _get(data: Mapping[str, object], key: str, what: str) -> object:
    if key not in data:
        raise ValidationError(f"{what}: missing {key!r}")
    return data[key]


def _str(data: Mapping[str, object], key: str, what: str) -> str:
    value = _get(data, key, what)
    if not isinstance(value, str):
        raise ValidationError(f"{what}: {key!r} must be a string")
    return value


def _int(data: Mapping[str, object], key: str, what: str) -> int:
    return parse_uint(_get(data, key, what), f"{what}.{key}")


def _hex(data: Mapping[str, object], key: str, what: str, length: int | None = None) -> bytes:
    return parse_hex(_str(data, key, what), length)


def _list(data: Mapping[str, object], key: str, what: str) -> list[object]:
    value = _get(data, key, what)
    if not isinstance(value, list):
        raise ValidationError(f"{what}: {key!r} must be a list")
    return value


def lock_event_to_json(event: LockEvent) -> dict[str, str]:
    """LockEvent as JSON: every integer a decimal string, ``recipient`` ``0x`` hex (32 bytes)."""
    return {
        "chain": event.chain,
        "contract": event.contract.lower(),
        "nonce": str(event.nonce),
        "token": event.token.lower(),
        "sender": event.sender.lower(),
        "amount": str(event.amount),
        "recipient": "0x" + event.recipient.hex(),
        "tx_hash": event.tx_hash.lower(),
        "log_index": str(event.log_index),
        "block_number": str(event.block_number),
        "block_hash": event.block_hash.lower(),
    }


def lock_event_from_json(data: object) -> LockEvent:
    """Parse `lock_event_to_json` output (integers as decimal strings or JSON integers).

    Hex fields are lowercased; semantic checks (bridge, asset, amount range) are the ledger's.

    Raises:
        ValidationError: wrong shape or a non-decimal integer. InvalidAddress: recipient not 32 B.
    """
    d = _obj(data, "event")
    return LockEvent(
        chain=_str(d, "chain", "event"),
        contract=_str(d, "contract", "event").lower(),
        nonce=_int(d, "nonce", "event"),
        token=_str(d, "token", "event").lower(),
        sender=_str(d, "sender", "event").lower(),
        amount=_int(d, "amount", "event"),
        recipient=_hex(d, "recipient", "event", 32),
        tx_hash=_str(d, "tx_hash", "event").lower(),
        log_index=_int(d, "log_index", "event"),
        block_number=_int(d, "block_number", "event"),
        block_hash=_str(d, "block_hash", "event").lower(),
    )


def signatures_to_json(signatures: Sequence[tuple[bytes, bytes]]) -> list[dict[str, str]]:
    """(32-byte Ed25519 key, 64-byte signature) pairs as ``[{"validator","signature"}]``."""
    return [{"validator": "0x" + k.hex(), "signature": "0x" + s.hex()} for k, s in signatures]


def signatures_from_json(data: object) -> list[tuple[bytes, bytes]]:
    """Parse ``[{"validator": "0x<32 B>", "signature": "0x<64 B>"}]``.

    Raises:
        ValidationError: wrong shape. InvalidAddress: bad key. InvalidSignature: bad signature.
    """
    if not isinstance(data, list):
        raise ValidationError("signatures must be a list")
    pairs = []
    for item in data:
        d = _obj(item, "signature")
        key = _hex(d, "validator", "signature", 32)
        try:
            sig = _hex(d, "signature", "signature", 64)
        except InvalidAddress as exc:
            raise InvalidSignature(str(exc)) from exc
        pairs.append((key, sig))
    return pairs


def validator_set_from_json(data: object) -> ValidatorSet:
    """Parse `ValidatorSet.to_json` output strictly.

    Raises:
        ValidationError: wrong shape, bad key or address, or an invalid set (threshold, duplicates).
    """
    d = _obj(data, "validator_set")
    members = []
    for item in _list(d, "members", "validator_set"):
        m = _obj(item, "member")
        evm = _str(m, "evm_address", "member").lower()
        parse_hex(evm, 20)
        members.append(ValidatorInfo(ed25519=_hex(m, "ed25519", "member", 32), evm_address=evm))
    try:
        return ValidatorSet(
            epoch=_int(d, "epoch", "validator_set"),
            threshold=_int(d, "threshold", "validator_set"),
            members=tuple(members),
        )
    except ConfigError as exc:
        raise ValidationError(f"invalid validator set: {exc}") from exc


@dataclass(frozen=True, slots=True)
class MintRequest:
    """A lock event with the quorum certificate that allows minting it.

    Attributes:
        event: the lock event (its `event_id` is the mint's idempotency key).
        epoch: validator-set epoch the signatures were made under (must be current).
        signatures: (32-byte Ed25519 public key, 64-byte signature) pairs over
            `lock_attestation_message(network, event, epoch)`.
    """

    event: LockEvent
    epoch: int
    signatures: list[tuple[bytes, bytes]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "event": lock_event_to_json(self.event),
            "epoch": str(self.epoch),
            "signatures": signatures_to_json(self.signatures),
        }

    @classmethod
    def from_json(cls, data: object) -> MintRequest:
        d = _obj(data, "mint")
        return cls(
            event=lock_event_from_json(_get(d, "event", "mint")),
            epoch=_int(d, "epoch", "mint"),
            signatures=signatures_from_json(_get(d, "signatures", "mint")),
        )


@dataclass(frozen=True, slots=True)
class MintResult:
    """Outcome of one mint. `seq`: journal entry of the mint (for `DUPLICATE`, of the original);
    `code`: the `BridgeError.code` of a rejection, or for `DEFERRED` the risk code
    (``rate_limited``, ``large_transfer_delay``, ``route_paused``); `retry_at`: for `DEFERRED`,
    the ledger-clock time (seconds) it may pass, None when only an operator can move it.
    JSON ``"retry_at"`` is a number or null (absent is read as null)."""

    event_id: str
    status: MintStatus
    code: str | None = None
    seq: int | None = None
    retry_at: float | None = None

    def to_json(self) -> dict[str, object]:
        return {"event_id": self.event_id, "status": self.status.value, "code": self.code,
                "seq": self.seq, "retry_at": self.retry_at}

    @classmethod
    def from_json(cls, data: object) -> MintResult:
        d = _obj(data, "result")
        code, seq = d.get("code"), d.get("seq")
        try:
            status = MintStatus(_str(d, "status", "result"))
        except ValueError as exc:
            raise ValidationError(f"unknown mint status {d.get('status')!r}") from exc
        return cls(
            event_id=_str(d, "event_id", "result"),
            status=status,
            code=code if isinstance(code, str) else None,
            seq=parse_uint(seq, "seq") if seq is not None else None,
            retry_at=_optional_time(d.get("retry_at"), "result.retry_at"),
        )


@dataclass(frozen=True, slots=True)
class TxReceipt:
    """An accepted transaction: its journal `seq`; for a burn its 32-byte `burn_id`, for an
    ``htlc_lock`` its 32-byte `htlc_id` (both = sha256 of the signed bytes)."""

    seq: int
    burn_id: bytes | None
    htlc_id: bytes | None = None

    def to_json(self) -> dict[str, object]:
        return {"seq": self.seq,
                "burn_id": None if self.burn_id is None else "0x" + self.burn_id.hex(),
                "htlc_id": None if self.htlc_id is None else "0x" + self.htlc_id.hex()}

    @classmethod
    def from_json(cls, data: object) -> TxReceipt:
        d = _obj(data, "receipt")
        burn_id, htlc_id = d.get("burn_id"), d.get("htlc_id")
        return cls(
            seq=_int(d, "seq", "receipt"),
            burn_id=None if burn_id is None else _hex(d, "burn_id", "receipt", 32),
            htlc_id=None if htlc_id is None else _hex(d, "htlc_id", "receipt", 32),
        )


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """An account's next nonce and balances (asset id -> base units; assets never held omitted)."""

    account: bytes
    nonce: int
    balances: dict[str, int]

    def to_json(self) -> dict[str, object]:
        return {"account": account_hex(self.account), "nonce": str(self.nonce),
                "balances": {a: str(v) for a, v in sorted(self.balances.items())}}

    @classmethod
    def from_json(cls, data: object) -> AccountInfo:
        d = _obj(data, "account")
        balances = _obj(_get(d, "balances", "account"), "balances")
        return cls(
            account=parse_account(_get(d, "account", "account")),
            nonce=_int(d, "nonce", "account"),
            balances={str(a): parse_uint(v, f"balance {a}") for a, v in balances.items()},
        )


@dataclass(frozen=True, slots=True)
class BurnRecord:
    """A burn the bridge must pay out: `amount` of (`origin_chain`, `origin_token`) to
    `dest_address` on `dest_chain`, keyed by the 32-byte `burn_id`. `tx`/`signature` are the
    user's signed transaction (Ferry tx v1), so anyone can re-verify it."""

    seq: int
    burn_id: bytes
    account: bytes
    asset: str
    origin_chain: str
    origin_token: str
    amount: int
    dest_chain: str
    dest_address: str
    tx: dict[str, str]
    signature: bytes

    def to_json(self) -> dict[str, object]:
        return {
            "seq": self.seq, "burn_id": "0x" + self.burn_id.hex(),
            "account": account_hex(self.account), "asset": self.asset,
            "origin_chain": self.origin_chain, "origin_token": self.origin_token,
            "amount": str(self.amount), "dest_chain": self.dest_chain,
            "dest_address": self.dest_address, "tx": dict(self.tx),
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: object) -> BurnRecord:
        d = _obj(data, "burn")
        tx = _obj(_get(d, "tx", "burn"), "burn.tx")
        return cls(
            seq=_int(d, "seq", "burn"),
            burn_id=_hex(d, "burn_id", "burn", 32),
            account=parse_account(_get(d, "account", "burn")),
            asset=_str(d, "asset", "burn"),
            origin_chain=_str(d, "origin_chain", "burn"),
            origin_token=_str(d, "origin_token", "burn"),
            amount=_int(d, "amount", "burn"),
            dest_chain=_str(d, "dest_chain", "burn"),
            dest_address=_str(d, "dest_address", "burn"),
            tx={str(k): str(v) for k, v in tx.items()},
            signature=_hex(d, "signature", "burn", 64),
        )


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """A registered wrapped asset and its supply counters (base units of the origin token)."""

    asset: str
    symbol: str
    origin_chain: str
    origin_token: str
    decimals: int
    supply: int
    minted_total: int
    burned_total: int

    def to_json(self) -> dict[str, object]:
        return {
            "asset": self.asset, "symbol": self.symbol, "origin_chain": self.origin_chain,
            "origin_token": self.origin_token, "decimals": self.decimals,
            "supply": str(self.supply), "minted_total": str(self.minted_total),
            "burned_total": str(self.burned_total),
        }

    @classmethod
    def from_json(cls, data: object) -> AssetInfo:
        d = _obj(data, "asset")
        return cls(
            asset=_str(d, "asset", "asset"), symbol=_str(d, "symbol", "asset"),
            origin_chain=_str(d, "origin_chain", "asset"),
            origin_token=_str(d, "origin_token", "asset"), decimals=_int(d, "decimals", "asset"),
            supply=_int(d, "supply", "asset"), minted_total=_int(d, "minted_total", "asset"),
            burned_total=_int(d, "burned_total", "asset"),
        )


@dataclass(frozen=True, slots=True)
class LedgerStatus:
    """The ledger's network, current validator set and journal head (32-byte hash)."""

    network: str
    epoch: int
    validator_set: ValidatorSet
    journal_seq: int
    journal_head: bytes

    def to_json(self) -> dict[str, object]:
        return {
            "network": self.network, "epoch": str(self.epoch),
            "validator_set": self.validator_set.to_json(), "journal_seq": self.journal_seq,
            "journal_head": "0x" + self.journal_head.hex(),
        }

    @classmethod
    def from_json(cls, data: object) -> LedgerStatus:
        d = _obj(data, "status")
        return cls(
            network=_str(d, "network", "status"), epoch=_int(d, "epoch", "status"),
            validator_set=validator_set_from_json(_get(d, "validator_set", "status")),
            journal_seq=_int(d, "journal_seq", "status"),
            journal_head=_hex(d, "journal_head", "status", 32),
        )


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journal entry. `payload` is the exact canonical JSON text that was hashed:
    ``hash = sha256(prev_hash || payload.encode())``; both hashes are 32 bytes."""

    seq: int
    kind: str
    payload: str
    prev_hash: bytes
    hash: bytes

    def to_json(self) -> dict[str, object]:
        return {"seq": self.seq, "kind": self.kind, "payload": self.payload,
                "prev_hash": "0x" + self.prev_hash.hex(), "hash": "0x" + self.hash.hex()}

    @classmethod
    def from_json(cls, data: object) -> JournalEntry:
        d = _obj(data, "entry")
        return cls(
            seq=_int(d, "seq", "entry"), kind=_str(d, "kind", "entry"),
            payload=_str(d, "payload", "entry"),
            prev_hash=_hex(d, "prev_hash", "entry", 32), hash=_hex(d, "hash", "entry", 32),
        )


@dataclass(frozen=True, slots=True)
class SupplyReport:
    """Supply counters of one asset, the sum of all balances and the amount held in HTLCs that
    are still locked (base units).

    Invariant: ``supply == minted_total - burned_total == balances_total + htlc_locked``
    (a locked HTLC has left its sender's balance and not yet reached anyone's).
    """

    asset: str
    supply: int
    minted_total: int
    burned_total: int
    balances_total: int
    htlc_locked: int = 0

    @property
    def holds(self) -> bool:
        """Whether the invariant holds."""
        return (self.supply == self.minted_total - self.burned_total
                == self.balances_total + self.htlc_locked)


@dataclass(frozen=True, slots=True)
class DepositRegistration:
    """An (origin chain, account) pair in the deposit-address registry.

    Scanners derive the account's deposit address on `chain` (that is the chain adapter's job,
    never the ledger's) and credit deposits to it to `account`.

    Attributes:
        seq: the registry's own order (not a journal seq), ascending, from 1.
        chain: CAIP-2 origin chain with a configured bridge.
        account: 32-byte ledger account (Ed25519 public key).
        registered_at: seconds since the epoch, from the ledger's clock.
        created: whether the call that returned it stored it (False for a repeat registration
            and for every listed one). Not sent in listings.
    """

    seq: int
    chain: str
    account: bytes
    registered_at: float
    created: bool = False

    def to_json(self) -> dict[str, object]:
        return {"seq": self.seq, "chain": self.chain, "account": account_hex(self.account),
                "registered_at": self.registered_at, "created": self.created}

    @classmethod
    def from_json(cls, data: object) -> DepositRegistration:
        d = _obj(data, "registration")
        at = _get(d, "registered_at", "registration")
        if isinstance(at, bool) or not isinstance(at, int | float) or not (
            math.isfinite(at) and at >= 0
        ):
            raise ValidationError(f"registration: bad registered_at {at!r}")
        created = d.get("created", False)
        if not isinstance(created, bool):
            raise ValidationError("registration: 'created' must be a boolean")
        return cls(
            seq=_int(d, "seq", "registration"),
            chain=parse_chain(_get(d, "chain", "registration")),
            account=parse_account(_get(d, "account", "registration")),
            registered_at=float(at),
            created=created,
        )


class HtlcState(StrEnum):
    """State of a ledger HTLC. Persisted in ``ledger_htlcs.state``; members are never renamed.

    ``locked -> redeemed`` (preimage shown before the timelock) or ``locked -> refunded``
    (at or after the timelock); both are terminal (`ledger.htlcs.TRANSITIONS`).
    """

    LOCKED = "locked"
    REDEEMED = "redeemed"
    REFUNDED = "refunded"


class HtlcOrigin(StrEnum):
    """Where an HTLC's amount came from. Persisted in ``ledger_htlcs.origin``.

    ``lock``: debited from `Htlc.sender`'s balance by a signed ``htlc_lock`` transaction; a
    refund credits the sender. ``mint``: reserved for HTLC-driven minting (no sender; a refund
    will burn instead of crediting, see `ledger.htlcs.refund`); nothing creates it yet.
    """

    LOCK = "lock"
    MINT = "mint"


@dataclass(frozen=True, slots=True)
class Htlc:
    """A hashed-timelock contract held by the ledger (Ferry HTLC rules v1, `htlc.hashlock`).

    Attributes:
        htlc_id: 32 bytes; for origin ``lock`` the tx id (sha256 of the signed bytes).
        seq: journal seq of the entry that created it.
        origin: see `HtlcOrigin`.
        sender: 32-byte account refunded after the timelock; None for origin ``mint``.
        recipient: 32-byte account credited on redeem.
        asset: asset id (`adapters.base.asset_key`).
        amount: base units, 1..2**256-1.
        hashlock: 32 bytes, sha256 of the 32-byte preimage.
        timelock: ledger-clock seconds since the epoch; redeem needs ``now < timelock``,
            refund ``now >= timelock``.
        state: see `HtlcState`.
        preimage: the 32-byte secret once redeemed (public: watchers read it), else None.
        created_at, settled_at: ledger-clock seconds of the lock and of the redeem/refund.

    JSON: ``{"htlc_id", "seq", "origin", "sender", "recipient", "asset", "amount", "hashlock",
    "timelock", "state", "preimage", "created_at", "settled_at"}``; amount and timelock are
    decimal strings (the timelock as signed in the ``htlc_lock`` body), seq an integer, the
    times JSON numbers, byte strings ``0x`` hex, sender/preimage/settled_at null when absent.
    """

    htlc_id: bytes
    seq: int
    origin: HtlcOrigin
    sender: bytes | None
    recipient: bytes
    asset: str
    amount: int
    hashlock: bytes
    timelock: int
    state: HtlcState
    preimage: bytes | None
    created_at: float
    settled_at: float | None

    def to_json(self) -> dict[str, object]:
        return {
            "htlc_id": "0x" + self.htlc_id.hex(), "seq": self.seq, "origin": self.origin.value,
            "sender": None if self.sender is None else account_hex(self.sender),
            "recipient": account_hex(self.recipient), "asset": self.asset,
            "amount": str(self.amount), "hashlock": "0x" + self.hashlock.hex(),
            "timelock": str(self.timelock), "state": self.state.value,
            "preimage": None if self.preimage is None else "0x" + self.preimage.hex(),
            "created_at": self.created_at, "settled_at": self.settled_at,
        }

    @classmethod
    def from_json(cls, data: object) -> Htlc:
        d = _obj(data, "htlc")
        try:
            origin = HtlcOrigin(_str(d, "origin", "htlc"))
            state = HtlcState(_str(d, "state", "htlc"))
        except ValueError as exc:
            raise ValidationError(f"htlc: unknown origin or state: {exc}") from exc
        sender, preimage = _get(d, "sender", "htlc"), _get(d, "preimage", "htlc")
        return cls(
            htlc_id=_hex(d, "htlc_id", "htlc", 32),
            seq=_int(d, "seq", "htlc"),
            origin=origin,
            sender=None if sender is None else parse_account(sender, "htlc.sender"),
            recipient=parse_account(_get(d, "recipient", "htlc"), "htlc.recipient"),
            asset=_str(d, "asset", "htlc"),
            amount=_int(d, "amount", "htlc"),
            hashlock=_hex(d, "hashlock", "htlc", 32),
            timelock=_int(d, "timelock", "htlc"),
            state=state,
            preimage=None if preimage is None else _hex(d, "preimage", "htlc", 32),
            created_at=_time(_get(d, "created_at", "htlc"), "htlc.created_at"),
            settled_at=_optional_time(_get(d, "settled_at", "htlc"), "htlc.settled_at"),
        )


def _time(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        math.isfinite(value) and value >= 0
    ):
        raise ValidationError(f"{name}: bad time {value!r}")
    return float(value)


def _optional_time(value: object, name: str) -> float | None:
    return None if value is None else _time(value, name)
