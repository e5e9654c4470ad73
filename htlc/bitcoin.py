"""Bitcoin HTLCs: the P2WSH hashed-timelock script, its spends, and finding the secret.

Owns: building and strictly parsing the HTLC witness script, its P2WSH scriptPubKey and
address, locating a funding output, building signed redeem and refund transactions, and
extracting a preimage from a redeem seen in the mempool or a block. Must not talk to a node,
read the clock, hold keys beyond one call, or use python-bitcoinlib's global chain parameters
or OpenSSL keys (signing goes through `adapters.bitcoin.keys`, sighashes through
`adapters.bitcoin.tx.sighash_v0`).

Witness script (BIP-199 shape, hash SHA-256 with a 32-byte size check; CLTV per BIP-65)::

    OP_IF
        OP_SIZE <32> OP_EQUALVERIFY OP_SHA256 <32-byte hashlock> OP_EQUALVERIFY
        <33-byte recipient pubkey>
    OP_ELSE
        <locktime> OP_CHECKLOCKTIMEVERIFY OP_DROP
        <33-byte refund pubkey>
    OP_ENDIF
    OP_CHECKSIG

``<locktime>`` is an absolute block height 1 <= h < 500 000 000 (a larger value would be a
unix time to CLTV; Ferry never uses times on Bitcoin), pushed minimally (OP_1..OP_16, else a
little-endian CScriptNum). scriptPubKey: P2WSH ``OP_0 <sha256(script)>`` (BIP-141).

Spends (version 2, one input, one output; BIP-143 SIGHASH_ALL signatures, strict DER, low S):

    redeem  nLockTime 0, nSequence 0xfffffffd (BIP-125 RBF), witness [sig, preimage, 0x01, script]
    refund  nLockTime = locktime, nSequence 0xfffffffe, witness [sig, b"", script]

The refund's nSequence is not final, so nLockTime is enforced (BIP-65); it becomes valid in the
block after the chain reaches `locktime` (`htlc.timelock.expired`). The fee is the spend's
virtual size (BIP-141, 73-byte signature placeholder) times the rate, taken from the output.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from bitcoin.core import (
    CBlock,
    CMutableTransaction,
    COutPoint,
    CTxIn,
    CTxInWitness,
    CTxOut,
    CTxWitness,
    b2lx,
    lx,
)
from bitcoin.core.script import CScript, CScriptWitness
from bitcoin.core.serialize import SerializationError

from adapters.bitcoin import keys
from adapters.bitcoin.errors import InsufficientFunds
from adapters.bitcoin.scripts import HRP, address_from_script_pubkey, encode_segwit_address, p2wsh
from adapters.bitcoin.tx import DUST_SATS, SIGHASH_ALL, Coin, decode_tx, sighash_v0
from adapters.errors import ConfigError, ValidationError
from htlc.hashlock import HASHLOCK_LEN, SECRET_LEN, check_preimage
from htlc.timelock import BlockHeight

OP_IF, OP_ELSE, OP_ENDIF, OP_DROP, OP_SIZE = 0x63, 0x67, 0x68, 0x75, 0x82
OP_EQUALVERIFY, OP_SHA256, OP_CHECKSIG, OP_CHECKLOCKTIMEVERIFY = 0x88, 0xA8, 0xAC, 0xB1
OP_1 = 0x51
LOCKTIME_THRESHOLD = 500_000_000  # nLockTime below: a block height; at or above: a unix time
TX_VERSION = 2
SEQUENCE_REDEEM = 0xFFFFFFFD  # BIP-125 opt-in RBF, no relative lock (BIP-68)
SEQUENCE_REFUND = 0xFFFFFFFE  # not final, so nLockTime (and CLTV) apply; no RBF signal
MAX_SIG_LEN = 73  # DER (at most 72 bytes) + sighash byte
_REDEEM_BRANCH = b"\x01"  # OP_IF takes it true (MINIMALIF: exactly 0x01)
_REFUND_BRANCH = b""  # OP_IF takes it false (MINIMALIF: exactly empty)
_PREFIX = bytes([OP_IF, OP_SIZE, 0x01, SECRET_LEN, OP_EQUALVERIFY, OP_SHA256, HASHLOCK_LEN])


def _push_number(n: int) -> bytes:
    """Minimal push of a positive script number (OP_1..OP_16, else CScriptNum little-endian)."""
    if 1 <= n <= 16:
        return bytes([OP_1 - 1 + n])
    data = n.to_bytes((n.bit_length() + 8) // 8, "little")  # room for the sign bit
    return bytes([len(data)]) + data


def _check_locktime(locktime: BlockHeight) -> int:
    if not isinstance(locktime, BlockHeight):
        raise TypeError(f"a Bitcoin HTLC locktime is a BlockHeight, got {type(locktime).__name__}")
    if not 1 <= locktime.value < LOCKTIME_THRESHOLD:
        raise ValidationError(
            f"locktime height {locktime.value} outside 1..{LOCKTIME_THRESHOLD - 1}")
    return locktime.value


@dataclass(frozen=True)
class HtlcScript:
    """The fields of one HTLC witness script (see the module docstring).

    Attributes:
        hashlock: 32-byte SHA-256 of the secret.
        recipient_pub: 33-byte compressed key that redeems with the secret.
        refund_pub: 33-byte compressed key that refunds from `locktime` on.
        locktime: absolute block height of the refund branch (BIP-65).

    Raises:
        ValidationError: a field out of the rules above (InvalidAddress for a bad key).
        TypeError: `locktime` is not a `BlockHeight`.
    """

    hashlock: bytes
    recipient_pub: bytes
    refund_pub: bytes
    locktime: BlockHeight

    def __post_init__(self) -> None:
        if len(self.hashlock) != HASHLOCK_LEN:
            raise ValidationError(f"a hashlock is {HASHLOCK_LEN} bytes, got {len(self.hashlock)}")
        keys.parse_public_key(bytes(self.recipient_pub))
        keys.parse_public_key(bytes(self.refund_pub))
        _check_locktime(self.locktime)

    @property
    def witness_script(self) -> bytes:
        """The script bytes (what `htlc_script` returns)."""
        return (_PREFIX + bytes(self.hashlock) + bytes([OP_EQUALVERIFY, 33])
                + bytes(self.recipient_pub) + bytes([OP_ELSE]) + _push_number(self.locktime.value)
                + bytes([OP_CHECKLOCKTIMEVERIFY, OP_DROP, 33]) + bytes(self.refund_pub)
                + bytes([OP_ENDIF, OP_CHECKSIG]))

    @property
    def script_pubkey(self) -> bytes:
        """Its 34-byte P2WSH scriptPubKey ``OP_0 <sha256(script)>``."""
        return p2wsh(self.witness_script)

    def address(self, network: str) -> str:
        """Its bech32 P2WSH address on `network` (BIP-173). Raises ConfigError for an unknown
        network."""
        return htlc_address(self.witness_script, network)


def htlc_script(
    hashlock: bytes, recipient_pub: bytes, refund_pub: bytes, locktime: BlockHeight
) -> bytes:
    """The HTLC witness script (module docstring; BIP-199 shape, BIP-65 CLTV).

    Args:
        hashlock: 32-byte SHA-256 of the secret (`htlc.hashlock.hashlock_of`).
        recipient_pub: 33-byte compressed key allowed to redeem with the secret.
        refund_pub: 33-byte compressed key allowed to refund from `locktime`.
        locktime: absolute block height, 1 <= h < 500 000 000.

    Raises:
        ValidationError: bad hashlock length, key or locktime.
        TypeError: `locktime` is not a `BlockHeight` (e.g. a `UnixTime`).
    """
    return HtlcScript(bytes(hashlock), bytes(recipient_pub), bytes(refund_pub),
                      locktime).witness_script


def htlc_script_pubkey(script: bytes) -> bytes:
    """P2WSH scriptPubKey ``OP_0 <sha256(script)>`` of an HTLC witness script (BIP-141)."""
    return p2wsh(bytes(script))


def htlc_address(script: bytes, network: str) -> str:
    """Bech32 P2WSH address (BIP-173) of `script` on `network` (mainnet, testnet, signet,
    regtest: hrp bc / tb / tb / bcrt).

    Raises:
        ConfigError: unknown network.
    """
    if network not in HRP:
        raise ConfigError(f"unknown bitcoin network {network!r}")
    return encode_segwit_address(HRP[network], 0, hashlib.sha256(bytes(script)).digest())


def parse_htlc_script(script: bytes) -> HtlcScript:
    """SECURITY: recognise an HTLC someone else built: exactly this template, nothing else.

    The script must be byte for byte what `htlc_script` builds from the fields it carries
    (so no extra opcodes, no non-minimal pushes, a 32-byte size check, SHA-256, valid
    compressed keys and a height locktime). The caller still compares the fields with the
    swap's terms (hashlock, its own key, the agreed expiry).

    Raises:
        ValidationError: anything else (InvalidAddress when a key is not on the curve).
    """
    raw = bytes(script)
    fixed = len(_PREFIX) + HASHLOCK_LEN + 2 + 33 + 1  # up to and including OP_ELSE
    if len(raw) < fixed + 1 + 3 + 33 + 2 or not raw.startswith(_PREFIX):
        raise ValidationError("not a Ferry HTLC script (prefix or length)")
    hashlock = raw[len(_PREFIX):len(_PREFIX) + HASHLOCK_LEN]
    recipient = raw[len(_PREFIX) + HASHLOCK_LEN + 2:fixed - 1]
    op = raw[fixed]
    if OP_1 <= op <= OP_1 + 15:
        locktime, rest = op - OP_1 + 1, raw[fixed + 1:]
    elif 1 <= op <= 4 and not raw[fixed + op] & 0x80:  # positive CScriptNum of 1..4 bytes
        locktime = int.from_bytes(raw[fixed + 1:fixed + 1 + op], "little")
        rest = raw[fixed + 1 + op:]
    else:
        raise ValidationError("not a Ferry HTLC script (locktime push)")
    try:
        fields = HtlcScript(hashlock, recipient, rest[3:36], BlockHeight(locktime))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"not a Ferry HTLC script: {exc}") from None
    if fields.witness_script != raw:
        raise ValidationError("not a Ferry HTLC script (opcodes or encoding differ)")
    return fields


def find_htlc_outputs(tx_bytes: bytes, script: bytes) -> list[tuple[int, int]]:
    """Outputs of a funding transaction paying the P2WSH of `script`: ``(vout, amount_sats)``.

    Raises:
        ValidationError: `tx_bytes` is not a transaction.
    """
    spk = htlc_script_pubkey(script)
    tx = decode_tx(tx_bytes)
    return [(i, int(o.nValue)) for i, o in enumerate(tx.vout) if bytes(o.scriptPubKey) == spk]


# ----------------------------------------------------------------------------- spends


def _vsize(tx: CMutableTransaction, stack: Sequence[bytes]) -> int:
    """Virtual size (BIP-141: ceil(weight / 4)) of `tx` with witness `stack` on its input."""
    sized = CMutableTransaction.from_tx(tx)
    sized.wit = CTxWitness([CTxInWitness(CScriptWitness(list(stack)))])
    return int(-(-sized.calc_weight() // 4))


def _spend(
    coin: Coin, script: bytes, secret: bytes, branch: Sequence[bytes], dest_spk: bytes,
    fee_rate_sat_vb: int, *, locktime: int, sequence: int,
) -> bytes:
    """Sign the one-input, one-output spend of `coin`; witness ``[sig, *branch, script]``."""
    if isinstance(fee_rate_sat_vb, bool) or not isinstance(fee_rate_sat_vb, int) or (
            fee_rate_sat_vb < 1):
        raise ValidationError(f"fee_rate_sat_vb must be an int >= 1, got {fee_rate_sat_vb!r}")
    if address_from_script_pubkey(bytes(dest_spk), "mainnet") is None:  # the form, any network
        raise ValidationError("the destination is not a standard scriptPubKey")
    txin = CTxIn(COutPoint(lx(coin.txid), coin.vout), CScript(), sequence)
    draft = CMutableTransaction([txin], [CTxOut(coin.amount_sats, CScript(dest_spk))],
                                nLockTime=locktime, nVersion=TX_VERSION)
    fee = _vsize(draft, [b"\x00" * MAX_SIG_LEN, *branch, script]) * fee_rate_sat_vb
    if coin.amount_sats - fee < DUST_SATS:
        raise InsufficientFunds(f"{coin.amount_sats} sats leave {coin.amount_sats - fee} after "
                                f"a {fee}-sat fee (dust is below {DUST_SATS})")
    tx = CMutableTransaction([txin], [CTxOut(coin.amount_sats - fee, CScript(dest_spk))],
                             nLockTime=locktime, nVersion=TX_VERSION)
    digest = sighash_v0(tx, 0, script, coin.amount_sats)
    sig = keys.sign_digest(secret, digest) + bytes([SIGHASH_ALL])
    tx.wit = CTxWitness([CTxInWitness(CScriptWitness([sig, *branch, script]))])
    return bytes(tx.serialize())


def _coin(htlc_outpoint: tuple[str, int], amount_sats: int) -> Coin:
    txid, vout = htlc_outpoint
    return Coin(txid, vout, amount_sats)  # validates the outpoint and amount (ValidationError)


def build_redeem(
    htlc_outpoint: tuple[str, int], amount_sats: int, script: bytes, preimage: bytes,
    recipient_secret: bytes, dest_spk: bytes, fee_rate_sat_vb: int,
) -> bytes:
    """The signed redeem of an HTLC output (BIP-144 serialization).

    Args:
        htlc_outpoint: ``(txid display hex, vout)`` of the funding output.
        amount_sats: its value (BIP-143 signs it: a wrong value makes the signature invalid).
        script: the HTLC witness script (checked with `parse_htlc_script`).
        preimage: the 32-byte secret.
        recipient_secret: 32-byte private key of the script's recipient.
        dest_spk: scriptPubKey receiving ``amount_sats - fee``.
        fee_rate_sat_vb: fee rate; fee = vsize (73-byte signature bound) * rate.

    Raises:
        BadPreimage: `preimage` is not 32 bytes or does not open the hashlock.
        ValidationError: not an HTLC script, a key other than the recipient's, a bad outpoint,
            amount, rate or destination.
        InsufficientFunds: the output would be dust after the fee.
    """
    fields = parse_htlc_script(script)
    check_preimage(bytes(preimage), fields.hashlock)
    if keys.public_key(recipient_secret) != fields.recipient_pub:
        raise ValidationError("the signing key is not the HTLC's recipient")
    return _spend(_coin(htlc_outpoint, amount_sats), bytes(script), recipient_secret,
                  [bytes(preimage), _REDEEM_BRANCH], dest_spk, fee_rate_sat_vb,
                  locktime=0, sequence=SEQUENCE_REDEEM)


def build_refund(
    htlc_outpoint: tuple[str, int], amount_sats: int, script: bytes, refund_secret: bytes,
    dest_spk: bytes, fee_rate_sat_vb: int, *, locktime: BlockHeight | None = None,
) -> bytes:
    """The signed refund of an HTLC output, valid once the chain reaches the locktime.

    It can be built (and handed over pre-signed) at any time; nodes refuse it as non-final
    until their tip height is >= its nLockTime (BIP-65).

    Args:
        htlc_outpoint, amount_sats, script, dest_spk, fee_rate_sat_vb: as `build_redeem`.
        refund_secret: 32-byte private key of the script's refund key.
        locktime: the transaction's nLockTime; None (default) uses the script's locktime,
            the earliest valid. A later height is allowed, an earlier one is not.

    Raises:
        ValidationError: not an HTLC script, another key, a locktime before the script's,
            bad outpoint, amount, rate or destination.
        InsufficientFunds: the output would be dust after the fee.
    """
    fields = parse_htlc_script(script)
    if keys.public_key(refund_secret) != fields.refund_pub:
        raise ValidationError("the signing key is not the HTLC's refund key")
    n_locktime = fields.locktime if locktime is None else locktime
    if _check_locktime(n_locktime) < fields.locktime.value:
        raise ValidationError(f"nLockTime {n_locktime.value} is before the script's "
                              f"{fields.locktime.value}: CLTV would fail")
    return _spend(_coin(htlc_outpoint, amount_sats), bytes(script), refund_secret,
                  [_REFUND_BRANCH], dest_spk, fee_rate_sat_vb,
                  locktime=n_locktime.value, sequence=SEQUENCE_REFUND)


# ----------------------------------------------------------------------------- the secret


def _stacks(tx: CMutableTransaction) -> Iterable[Sequence[bytes]]:
    if not tx.has_witness():
        return []
    return [list(w.scriptWitness.stack) for w in tx.wit.vtxinwit]


def _preimage_in(stacks: Iterable[Sequence[bytes]], wanted: Collection[bytes]
                 ) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    for stack in stacks:
        for item in stack:
            if len(item) == SECRET_LEN:
                digest = hashlib.sha256(item).digest()
                if digest in wanted:
                    found[digest] = bytes(item)
    return found


def extract_preimage(raw_tx_or_witness: bytes | Sequence[bytes], hashlock: bytes) -> bytes | None:
    """The secret of `hashlock` if a witness of this transaction (or this witness stack)
    reveals it, else None.

    Any 32-byte witness item whose SHA-256 is the hashlock is the secret, whatever script it
    was spent with; a mempool or block transaction works alike.

    Args:
        raw_tx_or_witness: a serialized transaction (BIP-144), or one input's witness stack.
        hashlock: 32 bytes.

    Raises:
        ValidationError: `hashlock` is not 32 bytes, or the bytes are not a transaction.
    """
    if len(hashlock) != HASHLOCK_LEN:
        raise ValidationError(f"a hashlock is {HASHLOCK_LEN} bytes")
    if isinstance(raw_tx_or_witness, bytes | bytearray | memoryview):
        stacks = _stacks(decode_tx(bytes(raw_tx_or_witness)))
    else:
        stacks = [list(raw_tx_or_witness)]
    return _preimage_in(stacks, {bytes(hashlock)}).get(bytes(hashlock))


def preimages_in_block(raw_block: bytes, hashlocks: Collection[bytes]) -> dict[bytes, bytes]:
    """Secrets revealed in a block (``getblock <hash> 0``): hashlock -> preimage, for each of
    `hashlocks` some witness item opens (one SHA-256 per 32-byte witness item).

    Raises:
        ValidationError: `raw_block` is not a block.
    """
    try:
        block = CBlock.deserialize(bytes(raw_block))
    except (SerializationError, ValueError, struct.error) as exc:
        raise ValidationError(f"not a bitcoin block: {exc}") from None
    wanted = {bytes(h) for h in hashlocks}
    return _preimage_in((s for tx in block.vtx for s in _stacks(tx)), wanted)


# ----------------------------------------------------------------------------- pre-signed refunds


def check_presigned_refund(raw_tx: bytes, htlc_outpoint: tuple[str, int], amount_sats: int,
                           script: bytes) -> str:
    """Check a refund the HTLC's refunder signed in advance and handed to a watchtower, so the
    watchtower can broadcast it at the locktime; returns its txid (display hex).

    SECURITY: nothing in it is trusted: it must spend exactly `htlc_outpoint` through the
    refund branch of `script` (witness ``[sig, b"", script]``), with nLockTime a height at or
    after the script's locktime and a non-final nSequence (so CLTV applies, BIP-65), pay out
    no more than `amount_sats`, and carry a SIGHASH_ALL signature (BIP-143, strict DER) that
    verifies under the script's refund key. Where it pays is the refunder's business.

    Args:
        raw_tx: the signed transaction (BIP-144 serialization).
        htlc_outpoint: ``(txid display hex, vout)`` of the HTLC output.
        amount_sats: the HTLC output's value (BIP-143 signs it).
        script: the HTLC witness script.

    Raises:
        ValidationError: any rule above broken, or bytes that are not a transaction.
    """
    fields = parse_htlc_script(script)
    try:
        tx = CMutableTransaction.from_tx(decode_tx(bytes(raw_tx)))
    except (ValueError, SerializationError) as exc:
        raise ValidationError(f"not a transaction: {exc}") from None
    if len(tx.vin) != 1 or not tx.vout:
        raise ValidationError("a refund spends exactly one input (the HTLC) to at least one output")
    txin = tx.vin[0]
    if (b2lx(txin.prevout.hash), int(txin.prevout.n)) != (htlc_outpoint[0], htlc_outpoint[1]):
        raise ValidationError("the refund does not spend this HTLC's output")
    if txin.nSequence == 0xFFFFFFFF:
        raise ValidationError("a final nSequence disables nLockTime: CLTV would fail")
    if not fields.locktime.value <= tx.nLockTime < LOCKTIME_THRESHOLD:
        raise ValidationError(f"nLockTime {tx.nLockTime} is not a height at or after the "
                              f"script's {fields.locktime.value}")
    if sum(int(o.nValue) for o in tx.vout) > amount_sats:
        raise ValidationError("the refund pays out more than the HTLC holds")
    stacks = list(_stacks(tx))
    if len(stacks) != 1 or len(stacks[0]) != 3 or bytes(stacks[0][1]) != _REFUND_BRANCH or (
            bytes(stacks[0][2]) != bytes(script)):
        raise ValidationError("the witness is not [signature, refund branch, this HTLC script]")
    sig = bytes(stacks[0][0])
    if not sig or sig[-1] != SIGHASH_ALL:
        raise ValidationError("the refund signature must be SIGHASH_ALL")
    digest = sighash_v0(tx, 0, bytes(script), amount_sats)
    if not keys.verify_digest(fields.refund_pub, digest, sig[:-1]):
        raise ValidationError("the refund signature does not verify under the HTLC's refund key")
    return b2lx(tx.GetTxid())
