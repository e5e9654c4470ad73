"""Parsers for the untrusted scalar fields the ledger accepts (amounts, accounts, chain ids,
asset ids, destination addresses). Each turns text from the wire into a typed value once, or
raises a typed `ValidationError` subclass; nothing past the edge re-parses.

Owns: the field formats below. Must not touch a database, the network or a key.

Formats:
- integers: decimal strings ``0|[1-9][0-9]*`` (no sign, no leading zeros, no spaces), as in
  Ferry attestation v1 (validators/attestation.py); at most 78 digits.
- amounts: base units, ``1 <= amount < 2**256`` (uint256, the EVM bridge's range).
- accounts: 32-byte Ed25519 public keys (RFC 8032), lowercase ``0x`` + 64 hex chars.
- chain ids: CAIP-2 (``namespace:reference``; namespace ``[-a-z0-9]{3,8}``, reference
  ``[-_a-zA-Z0-9]{1,32}``), e.g. ``eip155:31337``.
- asset ids: ``adapters.base.asset_key(chain, token)`` = ``"<caip2>/<token lowercase>"``.
- EVM addresses (``eip155:`` chains): lowercase ``0x`` + 40 hex chars.
"""

from __future__ import annotations

import re

from adapters.base import NATIVE_TOKEN
from adapters.errors import InvalidAddress, ValidationError

MAX_AMOUNT = 2**256 - 1  # largest amount (uint256)
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,77}")
_ACCOUNT = re.compile(r"0x[0-9a-f]{64}")
_EVM_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
_CAIP2 = re.compile(r"[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}")
_OPAQUE_ADDRESS = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no whitespace


def parse_uint(value: object, name: str, *, allow_int: bool = True) -> int:
    """Parse a non-negative integer given as a canonical decimal string (or, if `allow_int`, a
    JSON integer; never a bool or float).

    Raises:
        ValidationError: anything else.
    """
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= MAX_AMOUNT:
            return value
        raise ValidationError(f"{name} out of range: {value}")
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return int(value)
    raise ValidationError(f"{name} must be a canonical decimal string, got {value!r}")


def parse_amount(value: object, name: str = "amount", *, allow_int: bool = True) -> int:
    """Parse an amount in base units: ``1 <= amount < 2**256``.

    Raises:
        ValidationError: not a canonical decimal, zero, or too large.
    """
    amount = parse_uint(value, name, allow_int=allow_int)
    check_amount(amount, name)
    return amount


def check_amount(amount: int, name: str = "amount") -> None:
    """Raise `ValidationError` unless ``1 <= amount < 2**256``."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise ValidationError(f"{name} must be an integer in 1..2**256-1, got {amount!r}")


def parse_account(value: object, name: str = "account") -> bytes:
    """Parse an account (lowercase ``0x`` hex of a 32-byte Ed25519 public key).

    Raises:
        InvalidAddress: wrong type, case, prefix or length.
    """
    if isinstance(value, str) and _ACCOUNT.fullmatch(value):
        return bytes.fromhex(value[2:])
    raise InvalidAddress(f"{name} must be lowercase 0x + 64 hex chars, got {value!r}")


def account_hex(account: bytes) -> str:
    """``0x`` hex of a 32-byte account. Raises `InvalidAddress` for another length."""
    if len(account) != 32:
        raise InvalidAddress(f"account must be 32 bytes, got {len(account)}")
    return "0x" + account.hex()


def parse_chain(value: object, name: str = "chain") -> str:
    """Parse a CAIP-2 chain id. Raises `ValidationError`."""
    if isinstance(value, str) and _CAIP2.fullmatch(value):
        return value
    raise ValidationError(f"{name} must be a CAIP-2 chain id, got {value!r}")


CASE_SENSITIVE_NAMESPACES = frozenset({"solana"})  # payout addresses kept as given (base58)


def is_evm_chain(chain: str) -> bool:
    """Whether `chain` is an EVM chain (CAIP-2 namespace ``eip155``)."""
    return chain.startswith("eip155:")


def parse_token(chain: str, value: object, name: str = "token") -> str:
    """Parse a token on `chain`: a lowercase 20-byte ``0x`` address on EVM chains (the zero
    address is the native coin), otherwise an opaque printable denom/address.

    Raises:
        InvalidAddress: malformed for the chain family.
    """
    if is_evm_chain(chain):
        if isinstance(value, str) and _EVM_ADDRESS.fullmatch(value):
            return value
        raise InvalidAddress(f"{name} must be lowercase 0x + 40 hex chars, got {value!r}")
    if isinstance(value, str) and _OPAQUE_ADDRESS.fullmatch(value) and value == value.lower():
        return value
    raise InvalidAddress(f"{name} must be 1..128 printable lowercase chars, got {value!r}")


def parse_asset_id(value: object, name: str = "asset") -> tuple[str, str]:
    """Split an asset id ``"<caip2>/<token>"`` into (origin chain, origin token).

    Raises:
        ValidationError: not of that form.
    """
    if not isinstance(value, str) or "/" not in value:
        raise ValidationError(f"{name} must be '<caip2>/<token>', got {value!r}")
    chain, token = value.split("/", 1)
    return parse_chain(chain, name), parse_token(chain, token, name)


def parse_dest_address(chain: str, value: object, name: str = "dest_address") -> str:
    """Parse a payout address on `chain`.

    SECURITY: on EVM chains the zero address is refused (the bridge cannot pay it, so the burned
    funds would be stuck).

    Addresses keep their case on chains whose addresses are case-sensitive (CAIP-2 namespace
    ``solana``: base58); elsewhere they are lowercase, like tokens.

    Raises:
        InvalidAddress: malformed for the chain family, or the EVM zero address.
    """
    if chain.split(":", 1)[0] in CASE_SENSITIVE_NAMESPACES:
        if isinstance(value, str) and _OPAQUE_ADDRESS.fullmatch(value):
            return value
        raise InvalidAddress(f"{name} must be 1..128 printable chars, got {value!r}")
    address = parse_token(chain, value, name)
    if is_evm_chain(chain) and address == NATIVE_TOKEN:
        raise InvalidAddress(f"{name} must not be the zero address")
    return address
