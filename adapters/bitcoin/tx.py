"""Vault spends: release and consolidation transactions, BIP-143 sighashes, signatures, witnesses.

Owns: coin selection, building unsigned releases (and their fee bumps) and consolidations,
the validators' security check of a proposed spend (`check_release`, `check_consolidation`),
BIP-143 sighashes, signing through `adapters.bitcoin.keys`, and assembling the signed witness.
Must not: talk to a node, read the clock, hold keys, or use python-bitcoinlib's global chain
parameters or its OpenSSL keys (`CKey`).

Transaction layout (Ferry release v1): version 2, locktime 0, every input nSequence
0xfffffffd (BIP-125 opt-in RBF), empty scriptSigs (native P2WSH inputs). Outputs: [0] payee,
burn amount - fee; [1] change to the vault scriptPubKey, omitted when 0. The vault loses exactly
the burned amount: sum(inputs) - change == burn amount. Witness per input (BIP-141):
``[b"", sig_1 .. sig_m (in the script's key order), witness_script]``; each sig is strict DER
(BIP-66), low-S, + 0x01 (SIGHASH_ALL), over the BIP-143 digest with scriptCode = that input's
witness script and amount = its value. All amounts are int satoshis; fee rates int sat/vB.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bitcoin.core import COutPoint, CTransaction, CTxIn, CTxInWitness, CTxOut, CTxWitness, b2lx, lx
from bitcoin.core.script import SIGVERSION_WITNESS_V0, CScript, CScriptWitness, SignatureHash
from bitcoin.core.serialize import SerializationError

from adapters.bitcoin import keys
from adapters.bitcoin.errors import InsufficientFunds, ReleaseMismatch
from adapters.bitcoin.scripts import Vault, address_from_script_pubkey
from adapters.errors import ConfigError, QuorumNotMet, ValidationError

if TYPE_CHECKING:
    from adapters import base

TX_VERSION = 2
TX_LOCKTIME = 0
SEQUENCE_RBF = 0xFFFFFFFD  # BIP-125: signals replaceability, no relative lock-time (BIP-68)
SIGHASH_ALL = 0x01
DUST_SATS = 546  # smallest payee output we create (Bitcoin Core's P2PKH dust limit, the largest)
CHANGE_MIN_SATS = 1000  # smallest change output; a smaller change is not worth an output
MAX_SIG_LEN = 73  # DER signature (at most 72 bytes) + sighash byte
MAX_MONEY_SATS = 21_000_000 * 100_000_000
MAX_TX_BYTES = 400_000  # MAX_STANDARD_TX_WEIGHT: no standard transaction serializes larger
MAX_INPUTS = 200  # 15-of-15 inputs are ~457 vB: 200 stay under the 100 000 vB standard limit

Kind = Literal["release", "consolidation"]


@dataclass(frozen=True)
class Coin:
    """An unspent vault output.

    Attributes:
        txid: funding transaction id, display (RPC) hex, 64 lowercase characters.
        vout: output index.
        amount_sats: its value.
        account: None for the plain vault script, else the 32-byte account whose deposit script
            holds the coin (its witness script is `Vault.deposit(account)`).
    """

    txid: str
    vout: int
    amount_sats: int
    account: bytes | None = None

    def __post_init__(self) -> None:
        txid_ok = isinstance(self.txid, str) and len(self.txid) == 64
        if not txid_ok or self.txid.strip("0123456789abcdefABCDEF") or not 0 <= self.vout < 2**32:
            raise ValidationError(f"bad outpoint {self.txid!r}:{self.vout}")
        _positive("amount_sats", self.amount_sats)
        if self.account is not None and len(self.account) != 32:
            raise ValidationError("a coin's account is 32 bytes")
        object.__setattr__(self, "txid", self.txid.lower())
        if self.account is not None:
            object.__setattr__(self, "account", bytes(self.account))

    @classmethod
    def from_custody(cls, coin: base.Coin) -> Coin:
        """This library's coin of an `adapters.base.Coin` (whose value field is `amount`)."""
        return cls(coin.txid, coin.vout, coin.amount, coin.account)


@dataclass(frozen=True)
class UnsignedRelease:
    """An unsigned vault spend, ready for `sighashes` / `sign_release` / `assemble`.

    Attributes:
        tx: non-witness serialization (BIP-144 "stripped" form); its hash256 is the txid.
        txid: display hex.
        coins: the inputs, in input order.
        payee_spk: output 0's scriptPubKey (the vault's own for a consolidation).
        payee_sats: output 0's value.
        change_sats: output 1's value (to the vault), 0 when there is no output 1.
        fee_sats: sum(inputs) - sum(outputs) = vsize * fee_rate_sat_vb.
        fee_rate_sat_vb: the rate the fee was computed at.
        vsize: the upper-bound virtual size the fee was computed for (`estimate_vsize`).
        kind: "release" (pays a burn) or "consolidation" (merges vault coins).
    """

    tx: bytes
    txid: str
    coins: tuple[Coin, ...]
    payee_spk: bytes
    payee_sats: int
    change_sats: int
    fee_sats: int
    fee_rate_sat_vb: int
    vsize: int
    kind: Kind = "release"

    @property
    def burn_amount_sats(self) -> int:
        """What the vault loses: payee + fee for a release, only the fee for a consolidation."""
        return self.fee_sats if self.kind == "consolidation" else self.payee_sats + self.fee_sats


def _varint_len(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9


def estimate_vsize(n_inputs: int, output_script_pubkeys: Sequence[bytes], m: int, n: int) -> int:
    """Upper bound of the virtual size (BIP-141: ceil(weight / 4)) of an m-of-n vault spend.

    Every input is counted as a deposit input (witness script 34n + 37 bytes, 34 more than the
    vault's) carrying m 73-byte signatures (72-byte DER + sighash byte) and the empty dummy.

    Raises:
        ValidationError: no inputs, or m/n out of 1 <= m <= n <= 15.
    """
    if n_inputs < 1 or not 1 <= m <= n <= 15:
        raise ValidationError(f"cannot size a spend of {n_inputs} inputs, {m}-of-{n}")
    outputs = sum(8 + _varint_len(len(spk)) + len(spk) for spk in output_script_pubkeys)
    base = 4 + _varint_len(n_inputs) + 41 * n_inputs  # outpoint 36, empty scriptSig 1, seq 4
    base += _varint_len(len(output_script_pubkeys)) + outputs + 4
    script_len = 34 * n + 37
    per_input = _varint_len(m + 2) + 1 + m * (1 + MAX_SIG_LEN) + _varint_len(script_len)
    witness = 2 + n_inputs * (per_input + script_len)  # marker and flag, then the stacks
    return (4 * base + witness + 3) // 4


def _vsize(n_inputs: int, spks: Sequence[bytes], vault: Vault) -> int:
    return estimate_vsize(n_inputs, spks, vault.threshold, len(vault.pubkeys))


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_MONEY_SATS:
        raise ValidationError(f"{name} must be a positive int, got {value!r}")


def _distinct(coins: Iterable[Coin]) -> tuple[Coin, ...]:
    out = tuple(coins)
    if len({(c.txid, c.vout) for c in out}) != len(out):
        raise ValidationError("the same coin appears twice")
    return out


def select_coins(
    coins: Iterable[Coin], amount_sats: int, *, fee_rate_sat_vb: int, payee_spk: bytes,
    vault: Vault, max_inputs: int = MAX_INPUTS,
) -> list[Coin]:
    """Choose the coins paying a burn of `amount_sats`: deterministic, largest first (ties by
    (txid, vout)) until they cover it with a change of 0 or >= CHANGE_MIN_SATS. The fee comes
    out of the payee's share, so the selection never covers it.

    Raises:
        InsufficientFunds: no such selection within `max_inputs` coins, or the payee would get
            less than DUST_SATS after the fee.
        ValidationError: bad amount or rate, duplicate coins.
    """
    _positive("amount_sats", amount_sats)
    _positive("fee_rate_sat_vb", fee_rate_sat_vb)
    ordered = sorted(_distinct(coins), key=lambda c: (-c.amount_sats, c.txid, c.vout))
    total = 0
    for k, coin in enumerate(ordered[:max_inputs], start=1):
        total += coin.amount_sats
        change = total - amount_sats
        if change < 0 or 0 < change < CHANGE_MIN_SATS:
            continue
        spks = [payee_spk, vault.script_pubkey] if change else [payee_spk]
        fee = _vsize(k, spks, vault) * fee_rate_sat_vb
        if amount_sats - fee < DUST_SATS:
            raise InsufficientFunds(f"payee would get {amount_sats - fee} sats after {fee} fee")
        return ordered[:k]
    raise InsufficientFunds(
        f"{len(ordered)} coins ({sum(c.amount_sats for c in ordered)} sats) cannot pay "
        f"{amount_sats} sats with a change of 0 or >= {CHANGE_MIN_SATS} in <= {max_inputs} inputs"
    )


def _make_tx(coins: Sequence[Coin], outputs: Sequence[tuple[int, bytes]]) -> CTransaction:
    vin = [CTxIn(COutPoint(lx(c.txid), c.vout), CScript(), SEQUENCE_RBF) for c in coins]
    vout = [CTxOut(value, CScript(spk)) for value, spk in outputs]
    return CTransaction(vin, vout, TX_LOCKTIME, TX_VERSION)


def _finish(
    kind: Kind, coins: tuple[Coin, ...], payee_spk: bytes, gross_sats: int, change_sats: int,
    rate: int, vault: Vault,
) -> UnsignedRelease:
    """Size the spend, take the fee out of output 0 (`gross_sats` - fee) and serialize it."""
    _positive("fee_rate_sat_vb", rate)
    spks = [payee_spk] + ([vault.script_pubkey] if change_sats else [])
    vsize = _vsize(len(coins), spks, vault)
    fee = vsize * rate
    payee_sats = gross_sats - fee
    if payee_sats < DUST_SATS:
        raise InsufficientFunds(f"output 0 would get {payee_sats} sats after a {fee}-sat fee")
    outputs = [(payee_sats, payee_spk)] + ([(change_sats, spks[-1])] if change_sats else [])
    tx = _make_tx(coins, outputs)
    return UnsignedRelease(
        tx=tx.serialize(), txid=b2lx(tx.GetTxid()), coins=coins, payee_spk=payee_spk,
        payee_sats=payee_sats, change_sats=change_sats, fee_sats=fee, fee_rate_sat_vb=rate,
        vsize=vsize, kind=kind,
    )


def build_release(
    coins: Iterable[Coin], payee_spk: bytes, burn_amount_sats: int, fee_rate_sat_vb: int,
    vault: Vault,
) -> UnsignedRelease:
    """Build the unsigned release paying a burn (layout in the module docstring).

    Args:
        coins: the inputs, in this order (typically from `select_coins`).
        payee_spk: the burn destination's scriptPubKey (`scripts.script_pubkey_from_address`).
        burn_amount_sats: what the vault loses; the payee gets it minus the fee, where
            fee = `estimate_vsize(...)` * `fee_rate_sat_vb`.

    Raises:
        InsufficientFunds: coins short of the burn, change under CHANGE_MIN_SATS, dust payee.
        ValidationError: no or duplicate coins, bad amounts, a payee that is the vault itself
            or not a standard address form.
    """
    chosen, payee_spk = _distinct(coins), bytes(payee_spk)
    _positive("burn_amount_sats", burn_amount_sats)
    if not chosen:
        raise ValidationError("a release needs at least one coin")
    if payee_spk == vault.script_pubkey or not address_from_script_pubkey(payee_spk, vault.network):
        raise ValidationError("payee must be a standard address other than the vault")
    change = sum(c.amount_sats for c in chosen) - burn_amount_sats
    if change < 0:
        raise InsufficientFunds(f"coins are {-change} sats short of the burn")
    if 0 < change < CHANGE_MIN_SATS:
        raise InsufficientFunds(f"change of {change} sats is below {CHANGE_MIN_SATS}")
    return _finish("release", chosen, payee_spk, burn_amount_sats, change, fee_rate_sat_vb, vault)


def bump_release(
    unsigned: UnsignedRelease, new_fee_rate_sat_vb: int, vault: Vault
) -> UnsignedRelease:
    """A BIP-125 replacement: same inputs and change, higher fee taken from output 0 (for a
    consolidation too).

    Raises:
        ValidationError: the new rate is not higher (BIP-125 needs a higher fee and rate).
        InsufficientFunds: output 0 would fall below DUST_SATS.
    """
    if new_fee_rate_sat_vb <= unsigned.fee_rate_sat_vb:
        raise ValidationError("a replacement must pay a higher fee rate (BIP-125)")
    gross = unsigned.payee_sats + unsigned.fee_sats
    return _finish(unsigned.kind, unsigned.coins, unsigned.payee_spk, gross, unsigned.change_sats,
                   new_fee_rate_sat_vb, vault)


def build_consolidation(
    coins: Iterable[Coin], fee_rate_sat_vb: int, vault: Vault
) -> UnsignedRelease:
    """Merge vault coins into one output to the vault (kind "consolidation", no change).

    Raises:
        ValidationError: fewer than two coins, duplicates, bad rate.
        InsufficientFunds: the merged output would be below DUST_SATS after the fee.
    """
    chosen = _distinct(coins)
    if len(chosen) < 2:
        raise ValidationError("a consolidation merges at least two coins")
    total = sum(c.amount_sats for c in chosen)
    return _finish("consolidation", chosen, vault.script_pubkey, total, 0, fee_rate_sat_vb, vault)


def decode_unsigned(tx_bytes: bytes, coins: Sequence[Coin], vault: Vault) -> UnsignedRelease:
    """Rebuild the `UnsignedRelease` of stored unsigned bytes (e.g. to bump it after a restart).

    The kind is "consolidation" when the only output pays the vault, else "release"; the rate
    is the fee divided by `estimate_vsize` (exact for spends built here).

    Raises:
        ReleaseMismatch: the bytes fail the shape checks of `check_release` (inputs, version,
            locktime, nSequence) or the outputs are not [payee] or [payee, vault change].
    """
    tx, chosen = _check_spend(tx_bytes, coins, vault)
    change = _change_sats(tx, vault)
    spks = [bytes(o.scriptPubKey) for o in tx.vout]
    kind: Kind = "consolidation" if spks == [vault.script_pubkey] else "release"
    fee = sum(c.amount_sats for c in chosen) - sum(o.nValue for o in tx.vout)
    vsize = _vsize(len(chosen), spks, vault)
    if fee <= 0:
        raise ReleaseMismatch(f"fee of {fee} sats")
    return UnsignedRelease(
        tx=bytes(tx_bytes), txid=b2lx(tx.GetTxid()), coins=chosen, payee_spk=spks[0],
        payee_sats=tx.vout[0].nValue, change_sats=change, fee_sats=fee,
        fee_rate_sat_vb=fee // vsize, vsize=vsize, kind=kind,
    )


def decode_tx(raw: bytes) -> CTransaction:
    """Parse a serialized transaction (with or without BIP-144 witness data).

    Raises:
        ValidationError: not a complete transaction, trailing bytes, or over MAX_TX_BYTES.
    """
    if len(raw) > MAX_TX_BYTES:
        raise ValidationError(f"transaction of {len(raw)} bytes is too large")
    try:
        return CTransaction.deserialize(bytes(raw))
    except (SerializationError, ValueError, struct.error) as exc:
        raise ValidationError(f"not a bitcoin transaction: {exc}") from None


def txid_of(tx_bytes: bytes) -> str:
    """The txid (display hex) of a serialized transaction; witness data does not change it."""
    return str(b2lx(decode_tx(tx_bytes).GetTxid()))


def _inputs_match(tx: CTransaction, coins: Sequence[Coin]) -> str | None:
    if len(tx.vin) != len(coins):
        return f"transaction has {len(tx.vin)} inputs, {len(coins)} coins given"
    for i, (txin, coin) in enumerate(zip(tx.vin, coins, strict=True)):
        if (b2lx(txin.prevout.hash), txin.prevout.n) != (coin.txid, coin.vout):
            return f"input {i} spends {txin.prevout}, expected {coin.txid}:{coin.vout}"
    return None


# ----------------------------------------------------------------------------- signatures


def sighash_v0(tx: CTransaction, index: int, script_code: bytes, amount_sats: int) -> bytes:
    """BIP-143 SIGHASH_ALL digest (32 bytes) of input `index` for a P2WSH `script_code`."""
    return bytes(SignatureHash(CScript(script_code), tx, index, SIGHASH_ALL, amount=amount_sats,
                               sigversion=SIGVERSION_WITNESS_V0))


def sighashes(tx_bytes: bytes, coins: Sequence[Coin], vault: Vault) -> list[bytes]:
    """BIP-143 SIGHASH_ALL digest of every input (scriptCode = the coin's witness script).

    Raises:
        ReleaseMismatch: the inputs are not `coins` in order.
        ValidationError: `tx_bytes` does not parse.
    """
    tx = decode_tx(tx_bytes)
    problem = _inputs_match(tx, coins)
    if problem:
        raise ReleaseMismatch(problem)
    return [sighash_v0(tx, i, vault.witness_script_for(c.account), c.amount_sats)
            for i, c in enumerate(coins)]


def is_strict_der(sig: bytes) -> bool:
    """BIP-66 ``IsValidSignatureEncoding``: `sig` is strict DER plus one sighash byte."""
    if not 9 <= len(sig) <= MAX_SIG_LEN or sig[0] != 0x30 or sig[1] != len(sig) - 3:
        return False
    len_r = sig[3]
    if 5 + len_r >= len(sig):
        return False
    len_s = sig[5 + len_r]
    if len_r + len_s + 7 != len(sig) or sig[2] != 0x02 or len_r == 0 or sig[4] & 0x80:
        return False
    if len_r > 1 and sig[4] == 0 and not sig[5] & 0x80:
        return False
    if sig[len_r + 4] != 0x02 or len_s == 0 or sig[len_r + 6] & 0x80:
        return False
    return not (len_s > 1 and sig[len_r + 6] == 0 and not sig[len_r + 7] & 0x80)


def _sig_ok(digest: bytes, pubkey: bytes, sig: bytes) -> bool:
    return is_strict_der(sig) and sig[-1] == SIGHASH_ALL and keys.verify_digest(
        pubkey, digest, sig[:-1])


def sign_release(
    tx_bytes: bytes, coins: Sequence[Coin], vault: Vault, secret: bytes
) -> list[bytes]:
    """One signature per input: low-S strict DER + 0x01 (SIGHASH_ALL), RFC 6979 deterministic.

    SECURITY: signs whatever `tx_bytes` says; a validator runs `check_release` (or
    `check_consolidation`) on the same bytes and coins first.

    Raises:
        ConfigError: `secret`'s public key is not a vault member.
        ReleaseMismatch: the inputs are not `coins` in order.
    """
    if keys.public_key(secret) not in vault.sorted_pubkeys:
        raise ConfigError("the signing key is not a member of the vault")
    digests = sighashes(tx_bytes, coins, vault)
    return [keys.sign_digest(secret, d) + bytes([SIGHASH_ALL]) for d in digests]


def verify_input_signature(
    tx_bytes: bytes, coins: Sequence[Coin], vault: Vault, index: int, pubkey: bytes,
    sig_with_hashtype: bytes,
) -> bool:
    """Whether `sig_with_hashtype` is a valid SIGHASH_ALL signature of input `index` by `pubkey`
    (a vault member); strict DER (BIP-66), low S, hashtype byte 0x01.

    Raises:
        ValidationError: `index` out of range or `tx_bytes` does not parse.
        ReleaseMismatch: the inputs are not `coins` in order.
    """
    if not 0 <= index < len(coins):
        raise ValidationError(f"input index {index} out of range")
    if bytes(pubkey) not in vault.sorted_pubkeys:
        return False
    digest = sighashes(tx_bytes, coins, vault)[index]
    return _sig_ok(digest, bytes(pubkey), bytes(sig_with_hashtype))


def assemble(
    tx_bytes: bytes, coins: Sequence[Coin], vault: Vault,
    signatures: Mapping[bytes, Sequence[bytes]],
) -> bytes:
    """The signed transaction (BIP-144 serialization): each input's witness is [b"", the first
    m valid signatures in the script's key order, witness script].

    Args:
        signatures: member pubkey -> its signatures, one per input in input order (as
            `sign_release` returns them). Non-members and invalid signatures are ignored.

    Raises:
        QuorumNotMet: an input has fewer than m valid signatures.
        ValidationError: `tx_bytes` does not parse or already carries witnesses.
        ReleaseMismatch: the inputs are not `coins` in order.
    """
    tx = decode_tx(tx_bytes)
    if tx.has_witness():
        raise ValidationError("transaction is already signed")
    m = vault.threshold
    witnesses = []
    for i, (coin, digest) in enumerate(zip(coins, sighashes(tx_bytes, coins, vault), strict=True)):
        chosen: list[bytes] = []
        for pubkey in vault.sorted_pubkeys:
            sigs = signatures.get(pubkey, ())
            if len(chosen) < m and i < len(sigs) and _sig_ok(digest, pubkey, bytes(sigs[i])):
                chosen.append(bytes(sigs[i]))
        if len(chosen) < m:
            raise QuorumNotMet(
                f"input {i} ({coin.txid}:{coin.vout}) has {len(chosen)} valid signatures of {m}")
        stack = [b"", *chosen, vault.witness_script_for(coin.account)]
        witnesses.append(CTxInWitness(CScriptWitness(stack)))
    signed = CTransaction(tx.vin, tx.vout, tx.nLockTime, tx.nVersion, CTxWitness(witnesses))
    return bytes(signed.serialize())


# ----------------------------------------------------------------------------- security checks


def _check_spend(tx_bytes: bytes, coins: Sequence[Coin], vault: Vault
                 ) -> tuple[CTransaction, tuple[Coin, ...]]:
    """Checks shared by releases and consolidations; ReleaseMismatch on any failure."""
    try:
        tx = decode_tx(tx_bytes)
        chosen = _distinct(coins)
    except ValidationError as exc:
        raise ReleaseMismatch(str(exc)) from None
    if tx.has_witness():
        raise ReleaseMismatch("an unsigned spend must not carry witnesses")
    if tx.serialize() != bytes(tx_bytes):
        raise ReleaseMismatch("transaction is not canonically serialized")
    if not chosen:
        raise ReleaseMismatch("no coins given")
    if tx.nVersion != TX_VERSION or tx.nLockTime != TX_LOCKTIME:
        raise ReleaseMismatch(f"version {tx.nVersion} / locktime {tx.nLockTime}, expected 2 / 0")
    problem = _inputs_match(tx, chosen)
    if problem:
        raise ReleaseMismatch(problem)
    for i, txin in enumerate(tx.vin):
        if txin.nSequence != SEQUENCE_RBF:
            raise ReleaseMismatch(f"input {i} has nSequence {txin.nSequence:#x}, not 0xfffffffd")
        if len(txin.scriptSig) != 0:
            raise ReleaseMismatch(f"input {i} has a scriptSig (native P2WSH spends have none)")
    for i, txout in enumerate(tx.vout):
        if not 0 < txout.nValue <= MAX_MONEY_SATS:
            raise ReleaseMismatch(f"output {i} has value {txout.nValue}")
    return tx, chosen


def _change_sats(tx: CTransaction, vault: Vault) -> int:
    """Output 1's value after checking the outputs are [payee] or [payee, change to the vault]."""
    if not 1 <= len(tx.vout) <= 2:
        raise ReleaseMismatch(f"{len(tx.vout)} outputs; expected a payee and at most a change")
    if len(tx.vout) == 2 and bytes(tx.vout[1].scriptPubKey) != vault.script_pubkey:
        raise ReleaseMismatch("output 1 pays a foreign script, not the vault")
    return int(tx.vout[1].nValue) if len(tx.vout) == 2 else 0


def _fee_cap(tx: CTransaction, vault: Vault, max_fee_rate_sat_vb: int) -> int:
    spks = [bytes(o.scriptPubKey) for o in tx.vout]
    return max_fee_rate_sat_vb * _vsize(len(tx.vin), spks, vault)


def check_release(
    tx_bytes: bytes, coins: Sequence[Coin], vault: Vault, *, burn_amount_sats: int,
    payee_spk: bytes, max_fee_rate_sat_vb: int,
) -> int:
    """SECURITY: the validator's check that an unsigned release pays exactly one burn.

    `coins` must be the validator's own view of the spent vault outputs (a wrong amount or
    account only yields signatures invalid on chain: BIP-143 commits to both), and `payee_spk`
    its own parse of the burn's destination address.

    Returns:
        The fee in satoshis.

    Raises:
        ReleaseMismatch: unparsable or witness-carrying bytes; inputs other than `coins` in
            order; version, locktime or nSequence not as designed; output 0 not paying
            `payee_spk`; any other output (at most one) not paying the vault; the vault losing
            other than `burn_amount_sats`; fee <= 0 or above `max_fee_rate_sat_vb` times the
            estimated vsize; payee below DUST_SATS.
    """
    tx, chosen = _check_spend(tx_bytes, coins, vault)
    if bytes(payee_spk) == vault.script_pubkey:
        raise ReleaseMismatch("the payee is the vault itself")
    change = _change_sats(tx, vault)
    if bytes(tx.vout[0].scriptPubKey) != bytes(payee_spk):
        raise ReleaseMismatch("output 0 does not pay the burn's destination")
    total = sum(c.amount_sats for c in chosen)
    if total - change != burn_amount_sats:
        raise ReleaseMismatch(f"vault would lose {total - change} sats, not {burn_amount_sats}")
    payee = tx.vout[0].nValue
    fee = total - payee - change
    if payee != burn_amount_sats - fee or fee <= 0:
        raise ReleaseMismatch(f"payee gets {payee} of {burn_amount_sats} sats: fee {fee}")
    cap = _fee_cap(tx, vault, max_fee_rate_sat_vb)
    if fee > cap:
        raise ReleaseMismatch(f"fee {fee} sats exceeds the cap of {cap} sats")
    if payee < DUST_SATS:
        raise ReleaseMismatch(f"payee output of {payee} sats is dust")
    return fee


def check_consolidation(
    tx_bytes: bytes, coins: Sequence[Coin], vault: Vault, max_fee_rate_sat_vb: int
) -> int:
    """SECURITY: the validator's check that a consolidation only merges vault coins.

    Returns:
        The fee in satoshis.

    Raises:
        ReleaseMismatch: as `check_release` for parsing, inputs and fields; not exactly one
            output, paying the vault; fee <= 0 or above the cap.
    """
    tx, chosen = _check_spend(tx_bytes, coins, vault)
    if len(tx.vout) != 1 or bytes(tx.vout[0].scriptPubKey) != vault.script_pubkey:
        raise ReleaseMismatch("a consolidation has exactly one output, to the vault")
    fee = sum(c.amount_sats for c in chosen) - tx.vout[0].nValue
    cap = _fee_cap(tx, vault, max_fee_rate_sat_vb)
    if not 0 < fee <= cap:
        raise ReleaseMismatch(f"consolidation fee {fee} sats outside (0, {cap}]")
    return fee
