"""Bitcoin scripts and addresses of Ferry's vault: pure functions, no network, no keys.

Owns: BIP-67 key ordering, the vault's m-of-n witness script and the per-account deposit
scripts (P2WSH, BIP-141), address encoding and decoding (base58check, bech32 BIP-173, bech32m
BIP-350), and the lock-event nonce of a deposit outpoint.
Must not: select python-bitcoinlib's global chain parameters (`bitcoin.SelectParams`), sign
anything, or talk to a node. The network is always an explicit argument.

Script templates (Ferry vault v1; P2WSH per BIP-141, keys sorted per BIP-67)::

    vault    witness script: OP_m <pk1> .. <pkn> OP_n OP_CHECKMULTISIG
    deposit  witness script: <32-byte account> OP_DROP OP_m <pk1> .. <pkn> OP_n OP_CHECKMULTISIG
    scriptPubKey (P2WSH):    OP_0 <32-byte sha256(witness script)>

where pk1..pkn are 33-byte compressed keys sorted ascending bytewise (BIP-67).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from bitcoin import base58, segwit_addr

from adapters.bitcoin import keys
from adapters.bitcoin.config import Network
from adapters.errors import ConfigError, InvalidAddress, ValidationError

NETWORKS: tuple[Network, ...] = ("mainnet", "testnet", "signet", "regtest")

#: Bech32 human-readable part of segwit addresses per network (BIP-173; regtest per Bitcoin Core).
HRP: dict[str, str] = {"mainnet": "bc", "testnet": "tb", "signet": "tb", "regtest": "bcrt"}
#: Base58check version byte of P2PKH addresses per network.
P2PKH_VERSION: dict[str, int] = {"mainnet": 0x00, "testnet": 0x6F, "signet": 0x6F, "regtest": 0x6F}
#: Base58check version byte of P2SH addresses (BIP-13) per network.
P2SH_VERSION: dict[str, int] = {"mainnet": 0x05, "testnet": 0xC4, "signet": 0xC4, "regtest": 0xC4}

MAX_MULTISIG_KEYS = 15  # OP_CHECKMULTISIG with OP_1..OP_15 pushes, and the standardness limit.
ACCOUNT_LEN = 32
OP_0, OP_1, OP_DROP, OP_CHECKMULTISIG = 0x00, 0x51, 0x75, 0xAE
OP_DUP, OP_HASH160, OP_EQUAL, OP_EQUALVERIFY, OP_CHECKSIG = 0x76, 0xA9, 0x87, 0x88, 0xAC

_BECH32M_CONST = 0x2BC830A3  # BIP-350
_MAX_ADDRESS_LEN = 90  # BIP-173 limit; also bounds the quadratic base58 decoder


def _check_network(network: str) -> None:
    if network not in HRP:
        raise ConfigError(f"unknown bitcoin network {network!r} (expected one of {NETWORKS})")


def sort_pubkeys(pubkeys: Iterable[bytes]) -> tuple[bytes, ...]:
    """Sort 33-byte compressed public keys ascending bytewise (BIP-67).

    Raises:
        ConfigError: a key is not a compressed secp256k1 point, or a key appears twice.
    """
    checked = []
    for key in pubkeys:
        try:
            checked.append(keys.parse_public_key(bytes(key)))
        except InvalidAddress as exc:
            raise ConfigError(f"bad vault public key: {exc}") from exc
    if len(set(checked)) != len(checked):
        raise ConfigError("duplicate vault public key")
    return tuple(sorted(checked))


def multisig_script(pubkeys: Iterable[bytes], m: int) -> bytes:
    """The vault witness script ``OP_m <pk1>..<pkn> OP_n OP_CHECKMULTISIG`` (keys BIP-67 sorted).

    Args:
        pubkeys: 33-byte compressed keys, any order.
        m: signatures required, 1 <= m <= n <= 15.

    Raises:
        ConfigError: bad keys, duplicates, or m/n out of range.
    """
    ordered = sort_pubkeys(pubkeys)
    n = len(ordered)
    if not 1 <= m <= n <= MAX_MULTISIG_KEYS:
        raise ConfigError(f"multisig needs 1 <= m <= n <= 15, got m={m} n={n}")
    body = b"".join(bytes([33]) + key for key in ordered)
    return bytes([OP_1 - 1 + m]) + body + bytes([OP_1 - 1 + n, OP_CHECKMULTISIG])


def deposit_script(pubkeys: Iterable[bytes], m: int, account: bytes) -> bytes:
    """The deposit witness script of `account`: ``<account> OP_DROP`` + `multisig_script`.

    The account push only makes the address unique per account; spending needs the same
    m-of-n signatures as the vault.

    Args:
        account: the 32-byte ledger account credited for coins paid to this script.

    Raises:
        InvalidAddress: `account` is not 32 bytes.
        ConfigError: as `multisig_script`.
    """
    if len(account) != ACCOUNT_LEN:
        raise InvalidAddress(f"a deposit account is 32 bytes, got {len(account)}")
    return bytes([ACCOUNT_LEN]) + bytes(account) + bytes([OP_DROP]) + multisig_script(pubkeys, m)


def p2wsh(witness_script: bytes) -> bytes:
    """P2WSH scriptPubKey ``OP_0 <sha256(witness_script)>`` (34 bytes, BIP-141)."""
    return bytes([OP_0, 32]) + hashlib.sha256(witness_script).digest()


# ----------------------------------------------------------------------------- bech32 / bech32m


class Bech32Encoding(Enum):
    """Checksum variant: BECH32 (BIP-173, witness v0) or BECH32M (BIP-350, witness v1+)."""

    BECH32 = 1
    BECH32M = _BECH32M_CONST


def bech32_decode(text: str) -> tuple[str, list[int], Bech32Encoding]:
    """Split a bech32/bech32m string into (hrp, 5-bit data without checksum, encoding).

    Raises:
        InvalidAddress: bad characters, mixed case, bad length or separator, bad checksum.
    """
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise InvalidAddress("bech32 string has a character out of range")
    if text.lower() != text and text.upper() != text:
        raise InvalidAddress("bech32 string mixes upper and lower case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text) or len(text) > _MAX_ADDRESS_LEN:
        raise InvalidAddress("bech32 string has a bad separator position or length")
    if any(c not in segwit_addr.CHARSET for c in text[pos + 1 :]):
        raise InvalidAddress("bech32 data has a character outside the bech32 alphabet")
    hrp = text[:pos]
    data = [segwit_addr.CHARSET.find(c) for c in text[pos + 1 :]]
    const = segwit_addr.bech32_polymod(segwit_addr.bech32_hrp_expand(hrp) + data)
    try:
        encoding = Bech32Encoding(const)
    except ValueError:
        raise InvalidAddress("bech32 checksum is wrong") from None
    return hrp, data[:-6], encoding


def bech32_encode(hrp: str, data: list[int], encoding: Bech32Encoding) -> str:
    """Encode 5-bit `data` under `hrp` with a bech32 or bech32m checksum (lowercase)."""
    values = segwit_addr.bech32_hrp_expand(hrp) + data
    polymod = segwit_addr.bech32_polymod(values + [0] * 6) ^ encoding.value
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(segwit_addr.CHARSET[d] for d in data + checksum)


def decode_segwit_address(address: str, hrp: str) -> tuple[int, bytes]:
    """Decode a segwit address into (witness version 0..16, program 2..40 bytes).

    v0 must carry a bech32 checksum and a 20- or 32-byte program (BIP-141/173); v1+ must carry
    a bech32m checksum (BIP-350).

    Raises:
        InvalidAddress: any rule above, or an hrp other than `hrp` (wrong network).
    """
    got_hrp, data, encoding = bech32_decode(address)
    if got_hrp != hrp:
        raise InvalidAddress(f"address is for hrp {got_hrp!r}, this network uses {hrp!r}")
    if not data:
        raise InvalidAddress("segwit address has an empty data section")
    version = data[0]
    if version > 16:
        raise InvalidAddress(f"invalid witness version {version}")
    program = segwit_addr.convertbits(data[1:], 5, 8, False)
    if program is None:
        raise InvalidAddress("segwit address has invalid padding")
    if not 2 <= len(program) <= 40:
        raise InvalidAddress(f"witness program of {len(program)} bytes (2..40 allowed)")
    if version == 0 and len(program) not in (20, 32):
        raise InvalidAddress(f"v0 witness program of {len(program)} bytes (20 or 32 allowed)")
    expected = Bech32Encoding.BECH32 if version == 0 else Bech32Encoding.BECH32M
    if encoding is not expected:
        raise InvalidAddress(f"witness v{version} needs a {expected.name.lower()} checksum")
    return version, bytes(program)


def encode_segwit_address(hrp: str, version: int, program: bytes) -> str:
    """Encode a segwit address (bech32 for v0, bech32m for v1+), lowercase.

    Raises:
        InvalidAddress: version or program length out of the BIP-141 rules.
    """
    encoding = Bech32Encoding.BECH32 if version == 0 else Bech32Encoding.BECH32M
    data = [version] + segwit_addr.convertbits(list(program), 8, 5)
    address = bech32_encode(hrp, data, encoding)
    decode_segwit_address(address, hrp)  # enforces version and length rules
    return address


# ----------------------------------------------------------------------------- base58check


def _base58check_encode(payload: bytes) -> str:
    check = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    return str(base58.encode(payload + check))


def _base58check_decode(address: str) -> bytes:
    try:
        raw = bytes(base58.decode(address))
    except base58.InvalidBase58Error as exc:
        raise InvalidAddress(f"not a bech32 or base58 address: {exc}") from None
    payload, check = raw[:-4], raw[-4:]
    if len(raw) < 5 or hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != check:
        raise InvalidAddress("base58check checksum is wrong")
    return payload


# ----------------------------------------------------------------------------- addresses


def address_from_script_pubkey(script_pubkey: bytes, network: str) -> str | None:
    """The address of a standard scriptPubKey, or None when it has none.

    Recognised: P2PKH ``76a914<20>88ac`` and P2SH ``a914<20>87`` (base58check), P2WPKH
    ``0014<20>`` and P2WSH ``0020<32>`` (bech32), P2TR ``5120<32>`` (bech32m). Anything else
    (OP_RETURN, bare multisig, future witness versions) gives None.

    Raises:
        ConfigError: unknown network.
    """
    _check_network(network)
    spk = bytes(script_pubkey)
    if (
        len(spk) == 25
        and spk[:3] == bytes([OP_DUP, OP_HASH160, 20])
        and spk[23:] == bytes([OP_EQUALVERIFY, OP_CHECKSIG])
    ):
        return _base58check_encode(bytes([P2PKH_VERSION[network]]) + spk[3:23])
    if len(spk) == 23 and spk[:2] == bytes([OP_HASH160, 20]) and spk[22] == OP_EQUAL:
        return _base58check_encode(bytes([P2SH_VERSION[network]]) + spk[2:22])
    if spk[:2] in (bytes([OP_0, 20]), bytes([OP_0, 32])) and len(spk) == 2 + spk[1]:
        return encode_segwit_address(HRP[network], 0, spk[2:])
    if len(spk) == 34 and spk[:2] == bytes([OP_1, 32]):
        return encode_segwit_address(HRP[network], 1, spk[2:])
    return None


def script_pubkey_from_address(address: str, network: str) -> bytes:
    """Parse a destination address of `network` into its scriptPubKey.

    Accepted: P2PKH, P2SH (base58check, per-network version byte), P2WPKH and P2WSH (bech32
    v0, BIP-173), P2TR (bech32m v1 with a 32-byte program, BIP-350).

    Raises:
        InvalidAddress: another network's prefix, bad checksum, mixed case, bad witness program
            length, an unsupported witness version, or an unknown form.
        ConfigError: unknown network.
    """
    _check_network(network)
    if not isinstance(address, str) or not address or len(address) > _MAX_ADDRESS_LEN:
        raise InvalidAddress("address is empty or too long")
    lowered = address.lower()
    prefix = lowered[: lowered.rfind("1")] if "1" in lowered else ""
    if prefix in set(HRP.values()):
        if prefix != HRP[network]:
            raise InvalidAddress(f"address {address!r} is not for {network} (hrp {prefix!r})")
        version, program = decode_segwit_address(address, HRP[network])
        if version == 0:
            return bytes([OP_0, len(program)]) + program
        if version == 1 and len(program) == 32:
            return bytes([OP_1, 32]) + program
        raise InvalidAddress(f"unsupported witness v{version} program of {len(program)} bytes")
    payload = _base58check_decode(address)
    if len(payload) != 21:
        raise InvalidAddress(f"base58check payload of {len(payload)} bytes (21 expected)")
    version_byte, digest = payload[0], payload[1:]
    if version_byte == P2PKH_VERSION[network]:
        return bytes([OP_DUP, OP_HASH160, 20]) + digest + bytes([OP_EQUALVERIFY, OP_CHECKSIG])
    if version_byte == P2SH_VERSION[network]:
        return bytes([OP_HASH160, 20]) + digest + bytes([OP_EQUAL])
    if version_byte in set(P2PKH_VERSION.values()) | set(P2SH_VERSION.values()):
        raise InvalidAddress(f"address {address!r} is not for {network} (version {version_byte})")
    raise InvalidAddress(f"unknown base58 address version {version_byte}")


# ----------------------------------------------------------------------------- the vault


@dataclass(frozen=True)
class DepositScript:
    """One account's deposit script.

    Attributes:
        account: the 32-byte ledger account.
        witness_script: ``<account> OP_DROP`` + the vault multisig script.
        script_pubkey: its 34-byte P2WSH scriptPubKey.
        address: its bech32 address (lowercase).
    """

    account: bytes
    witness_script: bytes
    script_pubkey: bytes
    address: str


@functools.lru_cache(maxsize=65536)
def _derive_deposit(
    sorted_pubkeys: tuple[bytes, ...], threshold: int, network: str, account: bytes
) -> DepositScript:
    witness_script = deposit_script(sorted_pubkeys, threshold, account)
    spk = p2wsh(witness_script)
    address = encode_segwit_address(HRP[network], 0, spk[2:])
    return DepositScript(account, witness_script, spk, address)


@dataclass(frozen=True)
class Vault:
    """Ferry's m-of-n P2WSH vault on one network, and its per-account deposit scripts.

    Attributes:
        pubkeys: the members' 33-byte compressed keys, any order (scripts use BIP-67 order).
        threshold: signatures a spend needs (m).
        network: "mainnet", "testnet", "signet" or "regtest".

    Raises:
        ConfigError: bad or duplicate keys, m/n out of range, unknown network.
    """

    pubkeys: tuple[bytes, ...]
    threshold: int
    network: str
    _sorted: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    _script: bytes = field(init=False, repr=False, compare=False)
    _spk: bytes = field(init=False, repr=False, compare=False)
    _address: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_network(self.network)
        pubkeys = tuple(bytes(k) for k in self.pubkeys)
        script = multisig_script(pubkeys, self.threshold)
        spk = p2wsh(script)
        object.__setattr__(self, "pubkeys", pubkeys)
        object.__setattr__(self, "_sorted", sort_pubkeys(pubkeys))
        object.__setattr__(self, "_script", script)
        object.__setattr__(self, "_spk", spk)
        object.__setattr__(self, "_address", encode_segwit_address(HRP[self.network], 0, spk[2:]))

    @property
    def sorted_pubkeys(self) -> tuple[bytes, ...]:
        """The keys in script (BIP-67) order."""
        return self._sorted

    @property
    def witness_script(self) -> bytes:
        """``OP_m <pk1>..<pkn> OP_n OP_CHECKMULTISIG``."""
        return self._script

    @property
    def script_pubkey(self) -> bytes:
        """The vault's 34-byte P2WSH scriptPubKey (change goes here)."""
        return self._spk

    @property
    def address(self) -> str:
        """The vault's bech32 address, lowercase: the chain's "bridge" identity."""
        return self._address

    def deposit(self, account: bytes) -> DepositScript:
        """The deposit script of `account` (cached, LRU of 65536 entries).

        Raises:
            InvalidAddress: `account` is not 32 bytes.
        """
        if len(account) != ACCOUNT_LEN:
            raise InvalidAddress(f"a deposit account is 32 bytes, got {len(account)}")
        return _derive_deposit(self.sorted_pubkeys, self.threshold, self.network, bytes(account))

    def witness_script_for(self, account: bytes | None) -> bytes:
        """The witness script of the vault itself (None) or of `account`'s deposit script."""
        return self.witness_script if account is None else self.deposit(account).witness_script


def outpoint_nonce(txid_hex: str, vout: int) -> int:
    """The lock-event nonce of a deposit output (Ferry Bitcoin deposits v1: the outpoint).

    ``int.from_bytes(bytes.fromhex(txid_hex)[:28] + vout.to_bytes(4, "big"), "big")``: the
    first 28 bytes of the txid in display (RPC) hex, then the output index big-endian.

    Args:
        txid_hex: 64 hex characters, display order, no 0x.
        vout: output index, 0 <= vout < 2**32.

    Raises:
        ValidationError: malformed txid or vout out of range.
    """
    try:
        txid = bytes.fromhex(txid_hex)
    except (ValueError, TypeError):
        raise ValidationError(f"txid is not hex: {txid_hex!r}") from None
    if len(txid_hex) != 64 or len(txid) != 32 or not 0 <= vout < 2**32:
        raise ValidationError(f"bad outpoint {txid_hex!r}:{vout}")
    return int.from_bytes(txid[:28] + vout.to_bytes(4, "big"), "big")
