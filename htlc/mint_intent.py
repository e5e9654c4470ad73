"""HTLC-driven minting: the terms a user registers (a mint intent) and the ids derived from them.

Owns: `MintIntent` (the terms, their JSON and their id), `mint_htlc_id` (the ledger HTLC a
funded intent mints into) and the lock-event conventions of a funded intent. Pure: imports no
chain library, so the ledger, the adapters, the validators and the relayer all share it.
Must not read a clock or talk to anything.

Format (Ferry mint intents v1):
- ``intent_id = sha256(b"ferry/mint-intent/v1\\n" || canonical(intent.to_json()))`` (32 bytes);
  canonical JSON as in `validators.attestation.canonical` (sorted keys, no whitespace, every
  integer a decimal string, every byte string ``0x`` hex).
- A funding output of an intent is a `adapters.base.LockEvent` with ``recipient = intent_id``
  and ``sender = "htlc:" + <the usual sender>`` (`HTLC_SENDER_PREFIX`): the ledger mints it
  into an HTLC (origin ``mint``) instead of a balance, and the relayer never spends it as a
  vault coin (its script needs the secret).
- ``mint_htlc_id(event_id) = sha256(b"ferry/htlc-mint/v1\\n" || event_id utf-8)``: one ledger
  HTLC per funding output, so a replayed mint is a duplicate (exactly once).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from adapters.errors import InvalidAddress, ValidationError
from validators.attestation import canonical

INTENT_DOMAIN = b"ferry/mint-intent/v1\n"
MINT_HTLC_DOMAIN = b"ferry/htlc-mint/v1\n"
HTLC_SENDER_PREFIX = "htlc:"
MAX_HEIGHT = 500_000_000 - 1  # CLTV: at or above 500 000 000 the locktime is a unix time
MAX_TIMELOCK_S = 2**63 - 1


def _hex(value: object, length: int, name: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise InvalidAddress(f"{name} must be 0x hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidAddress(f"{name} is not hex") from None
    if len(raw) != length:
        raise InvalidAddress(f"{name} must be {length} bytes, got {len(raw)}")
    return raw


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(f"{name} must be an integer (decimal string in JSON)")
    text = str(value)
    if not text.isdigit() or len(text) > 20:
        raise ValidationError(f"{name} must be a non-negative decimal integer")
    return int(text)


@dataclass(frozen=True, slots=True)
class MintIntent:
    """The terms of one HTLC mint, registered on the ledger before the user pays.

    Attributes:
        chain: CAIP-2 origin chain (a Bitcoin network with a configured vault).
        account: 32-byte ledger account the minted HTLC pays on redeem.
        hashlock: 32-byte sha256 of the user's 32-byte secret (`htlc.hashlock`).
        refund_pubkey: 33-byte compressed secp256k1 key of the user's BTC refund branch.
        btc_expiry: absolute block height of the BTC refund branch (CLTV, BIP-65),
            1..499 999 999.
        ledger_timelock: absolute ledger-clock second at which the minted HTLC expires.

    Raises:
        ValidationError, InvalidAddress: a field outside these rules (shape only: whether the
            key is on the curve is checked where the script is built, `htlc.mint`).
    """

    chain: str
    account: bytes
    hashlock: bytes
    refund_pubkey: bytes
    btc_expiry: int
    ledger_timelock: int

    def __post_init__(self) -> None:
        if not isinstance(self.chain, str) or ":" not in self.chain or len(self.chain) > 64:
            raise ValidationError("chain must be a CAIP-2 id")
        for name, length in (("account", 32), ("hashlock", 32), ("refund_pubkey", 33)):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != length:
                raise InvalidAddress(f"{name} must be {length} bytes")
        if self.refund_pubkey[0] not in (2, 3):
            raise InvalidAddress("refund_pubkey must be a compressed key (0x02/0x03 prefix)")
        if isinstance(self.btc_expiry, bool) or not 1 <= self.btc_expiry <= MAX_HEIGHT:
            raise ValidationError(f"btc_expiry must be a block height in 1..{MAX_HEIGHT}")
        if isinstance(self.ledger_timelock, bool) or not 1 <= self.ledger_timelock <= MAX_TIMELOCK_S:
            raise ValidationError("ledger_timelock must be ledger-clock seconds >= 1")

    def to_json(self) -> dict[str, str]:
        """``{"chain", "account", "hashlock", "refund_pubkey", "btc_expiry",
        "ledger_timelock"}``: bytes ``0x`` hex, integers decimal strings."""
        return {
            "chain": self.chain, "account": "0x" + self.account.hex(),
            "hashlock": "0x" + self.hashlock.hex(), "refund_pubkey": "0x" + self.refund_pubkey.hex(),
            "btc_expiry": str(self.btc_expiry), "ledger_timelock": str(self.ledger_timelock),
        }

    @classmethod
    def from_json(cls, data: Any) -> MintIntent:
        """Parse `to_json` output (integers as decimal strings or JSON integers).

        Raises:
            ValidationError, InvalidAddress: a missing or malformed field.
        """
        if not isinstance(data, dict):
            raise ValidationError("a mint intent is a JSON object")
        try:
            return cls(
                chain=str(data["chain"]), account=_hex(data["account"], 32, "account"),
                hashlock=_hex(data["hashlock"], 32, "hashlock"),
                refund_pubkey=_hex(data["refund_pubkey"], 33, "refund_pubkey"),
                btc_expiry=_int(data["btc_expiry"], "btc_expiry"),
                ledger_timelock=_int(data["ledger_timelock"], "ledger_timelock"))
        except KeyError as exc:
            raise ValidationError(f"mint intent lacks {exc}") from None

    @property
    def intent_id(self) -> bytes:
        """32-byte id binding every term (module docstring)."""
        return hashlib.sha256(INTENT_DOMAIN + canonical(self.to_json())).digest()


def mint_htlc_id(event_id: str) -> bytes:
    """The 32-byte id of the ledger HTLC minted for the lock event `event_id`."""
    return hashlib.sha256(MINT_HTLC_DOMAIN + event_id.encode()).digest()


def is_htlc_sender(sender: str) -> bool:
    """Whether a lock event's sender marks the funding output of a mint intent."""
    return sender.startswith(HTLC_SENDER_PREFIX)
