"""`htlc.bitcoin.check_presigned_refund`: what a watchtower accepts as a user's pre-signed
refund of a Bitcoin HTLC (the real spend is proven on btcd in test_swap_api.py)."""

from __future__ import annotations

import os

import pytest
from bitcoin.core import CMutableTransaction, COutPoint, CTxIn, CTxInWitness, CTxWitness, lx

from adapters.bitcoin.keys import public_key
from adapters.bitcoin.tx import decode_tx
from adapters.errors import ValidationError
from htlc.bitcoin import build_refund, check_presigned_refund, htlc_script
from htlc.hashlock import hashlock_of, new_secret
from htlc.timelock import BlockHeight

REFUNDER, RECIPIENT = os.urandom(32), os.urandom(32)
SCRIPT = htlc_script(hashlock_of(new_secret()), public_key(RECIPIENT), public_key(REFUNDER),
                     BlockHeight(500))
OUTPOINT = ("ab" * 32, 1)
AMOUNT = 1_000_000
DEST = b"\x00\x14" + b"\x11" * 20


def _refund(**kw: object) -> bytes:
    return build_refund(OUTPOINT, AMOUNT, SCRIPT, REFUNDER, DEST, 2, **kw)  # type: ignore[arg-type]


def _edit(raw: bytes, change: object) -> bytes:
    tx = CMutableTransaction.from_tx(decode_tx(raw))
    change(tx)  # type: ignore[operator]
    return bytes(tx.serialize())


def _add_input(tx: CMutableTransaction) -> None:
    tx.vin.append(CTxIn(COutPoint(lx("cd" * 32), 0)))
    tx.wit = CTxWitness([*tx.wit.vtxinwit, CTxInWitness()])


def test_a_refund_signed_by_the_refund_key_is_accepted_with_its_txid() -> None:
    raw = _refund()
    txid = check_presigned_refund(raw, OUTPOINT, AMOUNT, SCRIPT)
    assert len(txid) == 64
    assert check_presigned_refund(_refund(locktime=BlockHeight(600)), OUTPOINT, AMOUNT, SCRIPT)


@pytest.mark.parametrize("change,message", [
    (lambda tx: setattr(tx.vout[0], "nValue", tx.vout[0].nValue - 1), "does not verify"),
    (lambda tx: setattr(tx.vin[0], "nSequence", 0xFFFFFFFF), "final nSequence"),
    (lambda tx: setattr(tx, "nLockTime", 499), "not a height at or after"),
    (lambda tx: setattr(tx, "nLockTime", 500_000_001), "not a height at or after"),
    (lambda tx: _add_input(tx), "exactly one input"),
    (lambda tx: setattr(tx.vout[0], "nValue", AMOUNT + 1), "more than the HTLC holds"),
])
def test_a_tampered_refund_is_refused(change, message) -> None:
    with pytest.raises(ValidationError, match=message):
        check_presigned_refund(_edit(_refund(), change), OUTPOINT, AMOUNT, SCRIPT)


def test_a_refund_of_another_output_or_value_or_script_is_refused() -> None:
    raw = _refund()
    with pytest.raises(ValidationError, match="does not spend this HTLC"):
        check_presigned_refund(raw, ("ab" * 32, 0), AMOUNT, SCRIPT)
    with pytest.raises(ValidationError, match="does not verify"):
        check_presigned_refund(raw, OUTPOINT, AMOUNT + 1, SCRIPT)  # BIP-143 signs the value
    other = htlc_script(hashlock_of(new_secret()), public_key(RECIPIENT), public_key(REFUNDER),
                        BlockHeight(500))
    with pytest.raises(ValidationError, match="witness is not"):
        check_presigned_refund(raw, OUTPOINT, AMOUNT, other)
    with pytest.raises(ValidationError, match="not a bitcoin transaction"):
        check_presigned_refund(b"\x00\x01", OUTPOINT, AMOUNT, SCRIPT)
