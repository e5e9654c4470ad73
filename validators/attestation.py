"""Canonical attestation messages signed with Ed25519 for the native ledger.

Owns: the byte format of what validators sign for the ledger (lock attestations and validator-set
rotations) and the `ValidatorSet` value type. Must not touch the network, a database or a key file.

Format (Ferry attestation v1): ``DOMAIN || canonical_json(body)`` where ``DOMAIN`` is
``b"ferry/attestation/v1\\n"`` and canonical JSON is UTF-8, keys sorted, no whitespace
(``json.dumps(sort_keys=True, separators=(",", ":"))``), every integer a decimal string and
every byte string lowercase ``0x`` hex. Each body carries the domain-separation fields
``network, chain, contract, event_id, kind, epoch``: a signature made for one network, chain,
contract, kind or validator-set epoch never verifies for another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from adapters.base import LockEvent
from adapters.errors import ConfigError, InvalidAddress

DOMAIN = b"ferry/attestation/v1\n"
LEDGER_CHAIN = "ferry:ledger"  # the CAIP-2-style name of the native ledger


class AttestationKind(StrEnum):
    LOCK = "lock"
    VALIDATOR_SET = "validator_set"


@dataclass(frozen=True, slots=True)
class ValidatorInfo:
    """One validator's public identity.

    Attributes:
        ed25519: 32-byte Ed25519 public key (signs ledger attestations).
        evm_address: lowercase ``0x`` hex address of its secp256k1 key (signs EVM releases).
    """

    ed25519: bytes
    evm_address: str

    def to_json(self) -> dict[str, str]:
        return {"ed25519": "0x" + self.ed25519.hex(), "evm_address": self.evm_address.lower()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> ValidatorInfo:
        return cls(ed25519=parse_hex(data["ed25519"], 32), evm_address=data["evm_address"].lower())


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """An m-of-n validator set under one epoch.

    Raises:
        ConfigError: threshold of zero or above the set size, or duplicate members.
    """

    epoch: int
    members: tuple[ValidatorInfo, ...]
    threshold: int

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= len(self.members):
            raise ConfigError(
                f"threshold {self.threshold} must be in 1..{len(self.members)} (set size)"
            )
        if len({m.ed25519 for m in self.members}) != len(self.members) or len(
            {m.evm_address for m in self.members}
        ) != len(self.members):
            raise ConfigError("validator set has duplicate members")

    @property
    def ed25519_keys(self) -> frozenset[bytes]:
        return frozenset(m.ed25519 for m in self.members)

    @property
    def evm_addresses(self) -> tuple[str, ...]:
        return tuple(m.evm_address for m in self.members)

    def to_json(self) -> dict[str, object]:
        return {
            "epoch": str(self.epoch),
            "threshold": str(self.threshold),
            "members": [m.to_json() for m in self.members],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ValidatorSet:
        members = data["members"]
        assert isinstance(members, list)
        return cls(
            epoch=int(str(data["epoch"])),
            threshold=int(str(data["threshold"])),
            members=tuple(ValidatorInfo.from_json(m) for m in members),
        )


def parse_hex(value: str, length: int | None = None) -> bytes:
    """Parse ``0x``-prefixed hex into bytes, checking the byte length when given.

    Raises:
        InvalidAddress: not hex, or the wrong length.
    """
    text = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise InvalidAddress(f"not hex: {value!r}") from exc
    if length is not None and len(raw) != length:
        raise InvalidAddress(f"expected {length} bytes, got {len(raw)}: {value!r}")
    return raw


def canonical(body: Mapping[str, object]) -> bytes:
    """Canonical JSON bytes of `body` (sorted keys, no whitespace, UTF-8)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def lock_attestation_body(network: str, event: LockEvent, epoch: int) -> dict[str, str]:
    """The fields a validator attests for one lock event, all as strings."""
    return {
        "network": network,
        "kind": AttestationKind.LOCK.value,
        "chain": event.chain,
        "contract": event.contract.lower(),
        "event_id": event.event_id,
        "epoch": str(epoch),
        "nonce": str(event.nonce),
        "token": event.token.lower(),
        "sender": event.sender.lower(),
        "amount": str(event.amount),
        "recipient": "0x" + event.recipient.hex(),
        "tx_hash": event.tx_hash.lower(),
    }


def lock_attestation_message(network: str, event: LockEvent, epoch: int) -> bytes:
    """Bytes signed (Ed25519, RFC 8032) by a validator attesting `event` under `epoch`."""
    return DOMAIN + canonical(lock_attestation_body(network, event, epoch))


def validator_set_message(network: str, current_epoch: int, new_set: ValidatorSet) -> bytes:
    """Bytes the current set signs (Ed25519) to hand the ledger over to `new_set`.

    The new epoch must exceed `current_epoch`; the ledger checks that.
    """
    body: dict[str, str | list[object] | dict[str, object]] = {
        "network": network,
        "kind": AttestationKind.VALIDATOR_SET.value,
        "chain": LEDGER_CHAIN,
        "contract": "",
        "event_id": f"validator_set/{new_set.epoch}",
        "epoch": str(current_epoch),
        "new_set": new_set.to_json(),
    }
    return DOMAIN + canonical(body)
