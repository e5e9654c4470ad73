"""HTLC-driven minting on Bitcoin: the mint-HTLC script, the vault's sweep of it and the
user's refund of it.

Owns: the witness script of a mint intent (`MintHtlc`), its P2WSH scriptPubKey and address,
the unsigned sweep into the vault (`build_sweep`), the validators' check of a proposed sweep
(`check_sweep`), its BIP-143 sighash and witness (`sweep_sighash`, `assemble_sweep`), and the
user's signed refund after the CLTV (`build_user_refund`). Must not talk to a node, read a
clock, hold keys beyond one call, or use python-bitcoinlib's global chain parameters or OpenSSL
keys (signing goes through `adapters.bitcoin.keys`, sighashes `adapters.bitcoin.tx.sighash_v0`).

Witness script (Ferry mint HTLC v1; P2WSH per BIP-141, keys BIP-67 sorted, CLTV per BIP-65)::

    <32-byte account> OP_DROP
    OP_IF
        OP_SIZE <32> OP_EQUALVERIFY OP_SHA256 <32-byte hashlock> OP_EQUALVERIFY
        OP_m <vault pk1> .. <vault pkn> OP_n OP_CHECKMULTISIG
    OP_ELSE
        <btc expiry height> OP_CHECKLOCKTIMEVERIFY OP_DROP <33-byte refund pubkey> OP_CHECKSIG
    OP_ENDIF

Spends (version 2, one input, one output; BIP-143 SIGHASH_ALL, strict DER, low S):

    sweep   nLockTime 0, nSequence 0xfffffffd, output: the vault scriptPubKey (coin - fee),
            witness [b"", sig_1 .. sig_m (vault key order), preimage (32 bytes), 0x01, script]
    refund  nLockTime = btc expiry, nSequence 0xfffffffe, witness [sig, b"", script]

The sweep needs the secret, which the user reveals by redeeming the minted ledger HTLC; the
refund needs the chain past the expiry height. The fee is the spend's virtual size (BIP-141,
73-byte signature placeholders) times the rate, taken from the output.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from bitcoin.core import (
    COutPoint,
    CTransaction,
    CTxIn,
    CTxInWitness,
    CTxOut,
    CTxWitness,
    b2lx,
    lx,
)
from bitcoin.core.script import CScript, CScriptWitness

from adapters.bitcoin import keys
from adapters.bitcoin.errors import InsufficientFunds, ReleaseMismatch
from adapters.bitcoin.scripts import HRP, Vault, encode_segwit_address, p2wsh
from adapters.bitcoin.tx import (
    DUST_SATS,
    MAX_MONEY_SATS,
    SIGHASH_ALL,
    Coin,
    decode_tx,
    is_strict_der,
    sighash_v0,
)
from adapters.errors import QuorumNotMet, ValidationError
from htlc.bitcoin import _push_number
from htlc.hashlock import SECRET_LEN, check_preimage
from htlc.mint_intent import MintIntent

OP_IF, OP_ELSE, OP_ENDIF, OP_DROP, OP_SIZE = 0x63, 0x67, 0x68, 0x75, 0x82
OP_EQUALVERIFY, OP_SHA256, OP_CHECKSIG, OP_CHECKLOCKTIMEVERIFY = 0x88, 0xA8, 0xAC, 0xB1
TX_VERSION = 2
SEQUENCE_SWEEP = 0xFFFFFFFD  # BIP-125 opt-in RBF
SEQUENCE_REFUND = 0xFFFFFFFE  # not final, so nLockTime (and CLTV) apply
MAX_SIG_LEN = 73
REDEEM_BRANCH = b"\x01"
REFUND_BRANCH = b""


@dataclass(frozen=True)
class MintHtlc:
    """The mint-HTLC script of one intent under one vault.

    Raises:
        ValidationError: the intent's refund key is not on the curve (`InvalidAddress`).
    """

    intent: MintIntent
    vault: Vault

    def __post_init__(self) -> None:
        keys.parse_public_key(self.intent.refund_pubkey)

    @cached_property
    def witness_script(self) -> bytes:
        """The script bytes (module docstring)."""
        v, i = self.vault, self.intent
        multisig = v.witness_script  # OP_m <pk..> OP_n OP_CHECKMULTISIG, keys BIP-67 sorted
        return (bytes([32]) + i.account + bytes([OP_DROP, OP_IF, OP_SIZE, 0x01, SECRET_LEN,
                                                OP_EQUALVERIFY, OP_SHA256, 32])
                + i.hashlock + bytes([OP_EQUALVERIFY]) + multisig + bytes([OP_ELSE])
                + _push_number(i.btc_expiry) + bytes([OP_CHECKLOCKTIMEVERIFY, OP_DROP, 33])
                + i.refund_pubkey + bytes([OP_CHECKSIG, OP_ENDIF]))

    @cached_property
    def script_pubkey(self) -> bytes:
        """34-byte P2WSH ``OP_0 <sha256(script)>``."""
        return p2wsh(self.witness_script)

    @property
    def address(self) -> str:
        """Bech32 P2WSH address on the vault's network (BIP-173), lowercase."""
        return encode_segwit_address(HRP[self.vault.network], 0,
                                     hashlib.sha256(self.witness_script).digest())


def _vsize(tx: CTransaction, stack: list[bytes]) -> int:
    sized = CTransaction(tx.vin, tx.vout, tx.nLockTime, tx.nVersion,
                         CTxWitness([CTxInWitness(CScriptWitness(stack))]))
    return int(-(-sized.calc_weight() // 4))


def _sweep_placeholder(htlc: MintHtlc) -> list[bytes]:
    m = htlc.vault.threshold
    return [b"", *([b"\x00" * MAX_SIG_LEN] * m), b"\x00" * SECRET_LEN, REDEEM_BRANCH,
            htlc.witness_script]


def _sweep_tx(coin: Coin, value: int, vault: Vault) -> CTransaction:
    txin = CTxIn(COutPoint(lx(coin.txid), coin.vout), CScript(), SEQUENCE_SWEEP)
    return CTransaction([txin], [CTxOut(value, CScript(vault.script_pubkey))], 0, TX_VERSION)


@dataclass(frozen=True)
class UnsignedSweep:
    """Attributes: tx (unsigned serialization), txid (display hex), fee_sats, vault_sats
    (output 0), fee_rate_sat_vb."""

    tx: bytes
    txid: str
    fee_sats: int
    vault_sats: int
    fee_rate_sat_vb: int


def build_sweep(coin: Coin, htlc: MintHtlc, fee_rate_sat_vb: int) -> UnsignedSweep:
    """The unsigned sweep of a mint-HTLC coin into the vault (fee from the coin).

    Args:
        coin: the funding output (its value is signed by BIP-143).
        htlc: the coin's script.
        fee_rate_sat_vb: >= 1.

    Raises:
        ValidationError: bad rate.
        InsufficientFunds: the vault output would be below DUST_SATS.
    """
    if isinstance(fee_rate_sat_vb, bool) or not isinstance(fee_rate_sat_vb, int) or (
            fee_rate_sat_vb < 1):
        raise ValidationError(f"fee_rate_sat_vb must be an int >= 1, got {fee_rate_sat_vb!r}")
    fee = _vsize(_sweep_tx(coin, coin.amount_sats, htlc.vault), _sweep_placeholder(htlc)) * (
        fee_rate_sat_vb)
    value = coin.amount_sats - fee
    if value < DUST_SATS:
        raise InsufficientFunds(f"{coin.amount_sats} sats leave {value} after a {fee}-sat fee")
    tx = _sweep_tx(coin, value, htlc.vault)
    return UnsignedSweep(tx.serialize(), b2lx(tx.GetTxid()), fee, value, fee_rate_sat_vb)


def check_sweep(unsigned: bytes, coin: Coin, htlc: MintHtlc, max_fee_rate_sat_vb: int) -> int:
    """SECURITY (validators): the proposed sweep only moves `coin` into the vault.

    `coin` and `htlc` must be the validator's own view (its node's output value, its own
    ledger's intent).

    Returns:
        The fee in sats.

    Raises:
        ReleaseMismatch: unparsable, witness-carrying or non-canonical bytes; not exactly one
            input spending `coin` with nSequence 0xfffffffd and no scriptSig; version or
            locktime not 2 / 0; not exactly one output, paying the vault scriptPubKey; a fee
            <= 0 or above `max_fee_rate_sat_vb` times the sweep's virtual size.
    """
    try:
        tx = decode_tx(unsigned)
    except ValidationError as exc:
        raise ReleaseMismatch(str(exc)) from None
    if tx.has_witness() or tx.serialize() != bytes(unsigned):
        raise ReleaseMismatch("an unsigned sweep is canonical and carries no witness")
    if tx.nVersion != TX_VERSION or tx.nLockTime != 0:
        raise ReleaseMismatch(f"version {tx.nVersion} / locktime {tx.nLockTime}, expected 2 / 0")
    if len(tx.vin) != 1 or (b2lx(tx.vin[0].prevout.hash), tx.vin[0].prevout.n) != (
            coin.txid, coin.vout):
        raise ReleaseMismatch("a sweep spends exactly the HTLC coin")
    if tx.vin[0].nSequence != SEQUENCE_SWEEP or len(tx.vin[0].scriptSig) != 0:
        raise ReleaseMismatch("sweep input nSequence/scriptSig not as designed")
    if len(tx.vout) != 1 or bytes(tx.vout[0].scriptPubKey) != htlc.vault.script_pubkey:
        raise ReleaseMismatch("a sweep has exactly one output, paying the vault")
    value = int(tx.vout[0].nValue)
    if not 0 < value <= MAX_MONEY_SATS:
        raise ReleaseMismatch(f"sweep output value {value}")
    fee = coin.amount_sats - value
    cap = max_fee_rate_sat_vb * _vsize(tx, _sweep_placeholder(htlc))
    if not 0 < fee <= cap:
        raise ReleaseMismatch(f"sweep fee {fee} sats outside (0, {cap}]")
    return fee


def sweep_sighash(unsigned: bytes, coin: Coin, htlc: MintHtlc) -> bytes:
    """BIP-143 SIGHASH_ALL digest (32 bytes) of the sweep's input (scriptCode = the HTLC
    script, amount = the coin's value). Raises `ValidationError` if the bytes do not parse."""
    return sighash_v0(decode_tx(unsigned), 0, htlc.witness_script, coin.amount_sats)


def verify_sweep_signature(unsigned: bytes, coin: Coin, htlc: MintHtlc, pubkey: bytes,
                           sig: bytes) -> bool:
    """Whether `sig` (strict DER + 0x01) by vault member `pubkey` signs the sweep."""
    if bytes(pubkey) not in htlc.vault.sorted_pubkeys:
        return False
    digest = sweep_sighash(unsigned, coin, htlc)
    return (is_strict_der(bytes(sig)) and sig[-1] == SIGHASH_ALL
            and keys.verify_digest(bytes(pubkey), digest, bytes(sig[:-1])))


def assemble_sweep(unsigned: bytes, coin: Coin, htlc: MintHtlc,
                   signatures: dict[bytes, bytes], preimage: bytes) -> bytes:
    """The signed sweep (BIP-144): witness [b"", m valid signatures in vault key order,
    preimage, 0x01, script].

    Args:
        signatures: member pubkey (33 bytes) -> its signature of the one input.
        preimage: the 32-byte secret the ledger revealed.

    Raises:
        BadPreimage: `preimage` is not 32 bytes or does not open the hashlock.
        QuorumNotMet: fewer than m valid signatures.
    """
    check_preimage(bytes(preimage), htlc.intent.hashlock)
    chosen = [bytes(signatures[k]) for k in htlc.vault.sorted_pubkeys
              if k in signatures and verify_sweep_signature(unsigned, coin, htlc, k,
                                                            signatures[k])]
    m = htlc.vault.threshold
    if len(chosen) < m:
        raise QuorumNotMet(f"{len(chosen)} valid sweep signatures of {m}")
    tx = decode_tx(unsigned)
    stack = [b"", *chosen[:m], bytes(preimage), REDEEM_BRANCH, htlc.witness_script]
    signed = CTransaction(tx.vin, tx.vout, tx.nLockTime, tx.nVersion,
                          CTxWitness([CTxInWitness(CScriptWitness(stack))]))
    return bytes(signed.serialize())


def build_user_refund(coin: Coin, htlc: MintHtlc, refund_secret: bytes, dest_spk: bytes,
                      fee_rate_sat_vb: int) -> bytes:
    """The user's signed refund of a mint-HTLC coin, valid from the block after the chain
    reaches ``btc_expiry`` (nLockTime = btc_expiry; BIP-65).

    Args:
        coin: the funding output.
        refund_secret: 32-byte private key of the intent's refund pubkey.
        dest_spk: scriptPubKey receiving ``coin - fee``.
        fee_rate_sat_vb: >= 1.

    Raises:
        ValidationError: another key, a bad rate.
        InsufficientFunds: the output would be dust after the fee.
    """
    if keys.public_key(refund_secret) != htlc.intent.refund_pubkey:
        raise ValidationError("the signing key is not the intent's refund key")
    if isinstance(fee_rate_sat_vb, bool) or not isinstance(fee_rate_sat_vb, int) or (
            fee_rate_sat_vb < 1):
        raise ValidationError(f"fee_rate_sat_vb must be an int >= 1, got {fee_rate_sat_vb!r}")
    txin = CTxIn(COutPoint(lx(coin.txid), coin.vout), CScript(), SEQUENCE_REFUND)
    expiry = htlc.intent.btc_expiry

    def make(value: int) -> CTransaction:
        return CTransaction([txin], [CTxOut(value, CScript(dest_spk))], expiry, TX_VERSION)

    stack = [b"\x00" * MAX_SIG_LEN, REFUND_BRANCH, htlc.witness_script]
    fee = _vsize(make(coin.amount_sats), stack) * fee_rate_sat_vb
    if coin.amount_sats - fee < DUST_SATS:
        raise InsufficientFunds(f"{coin.amount_sats} sats leave {coin.amount_sats - fee}")
    tx = make(coin.amount_sats - fee)
    digest = sighash_v0(tx, 0, htlc.witness_script, coin.amount_sats)
    sig = keys.sign_digest(refund_secret, digest) + bytes([SIGHASH_ALL])
    signed = CTransaction(tx.vin, tx.vout, tx.nLockTime, tx.nVersion, CTxWitness(
        [CTxInWitness(CScriptWitness([sig, REFUND_BRANCH, htlc.witness_script]))]))
    return bytes(signed.serialize())
