"""Bitcoin HTLCs (`htlc.bitcoin`) against a real btcd v0.26.2 in regtest.

The first section is pure (script bytes, strict parsing, spend shapes); the rest funds HTLCs
from the session faucet and lets btcd judge the spends. Chain time is moved with
``generate``, never by sleeping. Every HTLC has fresh keys and a fresh secret.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from bitcoin.core import (
    CMutableTransaction,
    COutPoint,
    CTxIn,
    CTxInWitness,
    CTxOut,
    CTxWitness,
    lx,
)
from bitcoin.core.script import (
    OP_CHECKLOCKTIMEVERIFY,
    OP_CHECKSIG,
    OP_DROP,
    OP_ELSE,
    OP_ENDIF,
    OP_EQUALVERIFY,
    OP_IF,
    OP_SHA256,
    OP_SIZE,
    CScript,
    CScriptWitness,
)

from adapters.bitcoin import keys
from adapters.bitcoin.devnet import BtcdNode, Faucet, address_p2wpkh, btcd_binary
from adapters.bitcoin.errors import FeeTooLow, TxRejected
from adapters.bitcoin.rpc import BtcRpc
from adapters.bitcoin.tx import decode_tx, sighash_v0
from adapters.errors import ConfigError, ValidationError
from htlc.bitcoin import (
    SEQUENCE_REDEEM,
    SEQUENCE_REFUND,
    HtlcScript,
    build_redeem,
    build_refund,
    extract_preimage,
    find_htlc_outputs,
    htlc_address,
    htlc_script,
    htlc_script_pubkey,
    parse_htlc_script,
    preimages_in_block,
)
from htlc.errors import BadPreimage
from htlc.hashlock import hashlock_of, new_secret
from htlc.timelock import BlockHeight, UnixTime, expired

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.integration.conftest import BtcdDevnet

pytestmark = pytest.mark.integration

FEE_RATE = 2  # sat/vB
AMOUNT = 100_000  # sats locked in each HTLC
TXID = "ab" * 32


class Parties:
    """Fresh recipient and refund keys, a secret and its hashlock."""

    def __init__(self) -> None:
        self.recipient_secret = secrets.token_bytes(32)
        self.refund_secret = secrets.token_bytes(32)
        self.recipient_pub = keys.public_key(self.recipient_secret)
        self.refund_pub = keys.public_key(self.refund_secret)
        self.secret = new_secret()
        self.hashlock = hashlock_of(self.secret)

    def script(self, locktime: int, hashlock: bytes | None = None) -> bytes:
        return htlc_script(hashlock or self.hashlock, self.recipient_pub, self.refund_pub,
                           BlockHeight(locktime))


def dest() -> bytes:
    """A fresh P2WPKH scriptPubKey."""
    return bytes([0x00, 0x14]) + os.urandom(20)


def hand_built_redeem(outpoint: tuple[str, int], script: bytes, secret: bytes,
                      preimage: bytes) -> bytes:
    """A redeem built without `build_redeem`'s checks: any preimage, correct signature."""
    txin = CTxIn(COutPoint(lx(outpoint[0]), outpoint[1]), CScript(), SEQUENCE_REDEEM)
    tx = CMutableTransaction([txin], [CTxOut(AMOUNT - 1_000, CScript(dest()))], 0, 2)
    sig = keys.sign_digest(secret, sighash_v0(tx, 0, script, AMOUNT)) + b"\x01"
    tx.wit = CTxWitness([CTxInWitness(CScriptWitness([sig, preimage, b"\x01", script]))])
    return bytes(tx.serialize())


# ============================================================================ pure: the script


def test_script_is_the_bip199_template_byte_for_byte() -> None:
    p = Parties()
    expected = CScript([
        OP_IF, OP_SIZE, 32, OP_EQUALVERIFY, OP_SHA256, p.hashlock, OP_EQUALVERIFY,
        p.recipient_pub, OP_ELSE, 1234, OP_CHECKLOCKTIMEVERIFY, OP_DROP, p.refund_pub,
        OP_ENDIF, OP_CHECKSIG,
    ])
    assert p.script(1234) == bytes(expected)
    assert htlc_script_pubkey(p.script(1234)) == (
        b"\x00\x20" + hashlib.sha256(bytes(expected)).digest())
    assert htlc_address(p.script(1234), "regtest").startswith("bcrt1q")
    assert htlc_address(p.script(1234), "mainnet").startswith("bc1q")


@pytest.mark.parametrize("locktime,push", [
    (1, "51"), (16, "60"), (17, "0111"), (127, "017f"), (128, "028000"),
    (65_535, "03ffff00"), (499_999_999, "04ff64cd1d"),
])
def test_locktime_is_pushed_minimally_and_parses_back(locktime: int, push: str) -> None:
    p = Parties()
    script = p.script(locktime)
    assert script[75:75 + len(push) // 2].hex() == push
    assert parse_htlc_script(script) == HtlcScript(p.hashlock, p.recipient_pub, p.refund_pub,
                                                   BlockHeight(locktime))


def test_script_refuses_times_and_out_of_range_heights() -> None:
    p = Parties()
    with pytest.raises(TypeError):
        when = UnixTime(1_700_000_000)
        htlc_script(p.hashlock, p.recipient_pub, p.refund_pub, when)  # type: ignore[arg-type]
    for height in (0, 500_000_000):
        with pytest.raises(ValidationError):
            p.script(height)
    with pytest.raises(ValidationError):
        htlc_script(p.hashlock[:31], p.recipient_pub, p.refund_pub, BlockHeight(10))
    with pytest.raises(ValidationError):  # uncompressed key
        htlc_script(p.hashlock, b"\x04" + os.urandom(64), p.refund_pub, BlockHeight(10))
    with pytest.raises(ConfigError):
        htlc_address(p.script(10), "moonnet")


def _tamper(script: bytes, at: int, new: bytes, drop: int = 1) -> bytes:
    return script[:at] + new + script[at + drop:]


@pytest.mark.parametrize("mutate,why", [
    (lambda s: s + b"\x75", "trailing opcode"),
    (lambda s: s[:-1], "truncated"),
    (lambda s: _tamper(s, 3, b"\x21"), "OP_SIZE compares with 33"),
    (lambda s: _tamper(s, 5, b"\xaa"), "OP_HASH256 instead of OP_SHA256"),
    (lambda s: _tamper(s, 0, b"\x64"), "OP_NOTIF"),
    (lambda s: _tamper(s, len(s) - 1, b"\xad"), "OP_CHECKSIGVERIFY"),
    (lambda s: _tamper(s, 75, b"\x01\x05"), "non-minimal push of 5"),
    (lambda s: _tamper(s, 75, b"\x02\x11\x00", drop=2), "non-minimal push of 17"),
    (lambda s: _tamper(s, 75, b"\x01\x85"), "negative locktime"),
    (lambda s: _tamper(s, 75, b"\x04\x00\x65\xcd\x1d", drop=3), "unix-time locktime"),
    (lambda s: _tamper(s, 41, b"\x05"), "recipient key with a bad prefix"),
    (lambda s: b"", "empty"),
])
def test_parse_refuses_anything_but_the_exact_template(mutate, why) -> None:
    script = Parties().script(1_000)  # locktime push: 02 e8 03
    assert parse_htlc_script(script).locktime == BlockHeight(1_000)
    with pytest.raises(ValidationError):
        parse_htlc_script(mutate(script))


# ============================================================================ pure: the spends


def test_redeem_has_the_documented_shape_and_a_valid_signature() -> None:
    p = Parties()
    script = p.script(500)
    raw = build_redeem((TXID, 1), AMOUNT, script, p.secret, p.recipient_secret, dest(), FEE_RATE)
    tx = decode_tx(raw)
    assert (tx.nVersion, tx.nLockTime, tx.vin[0].nSequence) == (2, 0, SEQUENCE_REDEEM)
    sig, preimage, branch, witness_script = tx.wit.vtxinwit[0].scriptWitness.stack
    assert (preimage, branch, witness_script) == (p.secret, b"\x01", script)
    digest = sighash_v0(tx, 0, script, AMOUNT)
    assert sig[-1] == 1 and keys.verify_digest(p.recipient_pub, digest, sig[:-1])
    fee = AMOUNT - tx.vout[0].nValue
    assert FEE_RATE * 100 < fee < FEE_RATE * 200  # ~150 vB
    assert extract_preimage(raw, p.hashlock) == p.secret


def test_redeem_refuses_a_wrong_or_wrong_length_preimage_and_a_wrong_key() -> None:
    p = Parties()
    script = p.script(500)
    for bad in (os.urandom(32), p.secret + b"\x00", p.secret[:31]):
        with pytest.raises(BadPreimage):
            build_redeem((TXID, 0), AMOUNT, script, bad, p.recipient_secret, dest(), FEE_RATE)
    with pytest.raises(ValidationError, match="recipient"):
        build_redeem((TXID, 0), AMOUNT, script, p.secret, p.refund_secret, dest(), FEE_RATE)
    with pytest.raises(ValidationError):  # dust after the fee
        build_redeem((TXID, 0), 700, script, p.secret, p.recipient_secret, dest(), FEE_RATE)


def test_refund_has_the_documented_shape_and_refuses_early_locktimes_and_wrong_keys() -> None:
    p = Parties()
    script = p.script(500)
    raw = build_refund((TXID, 0), AMOUNT, script, p.refund_secret, dest(), FEE_RATE)
    tx = decode_tx(raw)
    assert (tx.nLockTime, tx.vin[0].nSequence) == (500, SEQUENCE_REFUND)
    sig, branch, witness_script = tx.wit.vtxinwit[0].scriptWitness.stack
    assert (branch, witness_script) == (b"", script)
    assert keys.verify_digest(p.refund_pub, sighash_v0(tx, 0, script, AMOUNT), sig[:-1])
    assert extract_preimage(raw, p.hashlock) is None
    later = build_refund((TXID, 0), AMOUNT, script, p.refund_secret, dest(), FEE_RATE,
                         locktime=BlockHeight(600))
    assert decode_tx(later).nLockTime == 600
    with pytest.raises(ValidationError, match="before"):
        build_refund((TXID, 0), AMOUNT, script, p.refund_secret, dest(), FEE_RATE,
                     locktime=BlockHeight(499))
    with pytest.raises(ValidationError, match="refund key"):
        build_refund((TXID, 0), AMOUNT, script, p.recipient_secret, dest(), FEE_RATE)


def test_extract_preimage_reads_witness_stacks_and_ignores_other_hashlocks() -> None:
    p = Parties()
    stack = [b"\x30" * 71, p.secret, b"\x01", p.script(9)]
    assert extract_preimage(stack, p.hashlock) == p.secret
    assert extract_preimage(stack, hashlock_of(new_secret())) is None
    assert extract_preimage([b"\x30" * 71, b"", p.script(9)], p.hashlock) is None
    with pytest.raises(ValidationError):
        extract_preimage(stack, p.hashlock[:31])
    with pytest.raises(ValidationError):
        extract_preimage(b"\x02\x00", p.hashlock)


# ============================================================================ on btcd


@dataclass(frozen=True)
class StrictBtcd:
    """A private btcd with mainnet's standardness policy, its RPC client and faucet."""

    node: BtcdNode
    rpc: BtcRpc
    faucet: Faucet


@pytest.fixture(scope="module")
def strict_btcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrictBtcd]:
    """A private btcd that applies mainnet's standardness policy (``--rejectnonstd``), which
    refuses non-final transactions; btcd's regtest default relays them. Always stopped."""
    workdir = tmp_path_factory.mktemp("btcd-strict")
    wrapper = workdir / "btcd-rejectnonstd"
    wrapper.write_text(f'#!/bin/sh\nexec "{btcd_binary()}" "$@" --rejectnonstd\n')
    wrapper.chmod(0o755)
    secret = secrets.token_bytes(32)
    node = BtcdNode(workdir / "node", binary=wrapper,
                    mining_address=address_p2wpkh(keys.public_key(secret), "regtest"))
    try:
        node.start()
        node.wait_ready(timeout_s=30.0)
        with node.rpc() as rpc:
            faucet = Faucet(rpc, secret)
            faucet.mature()
            yield StrictBtcd(node, rpc, faucet)
    except BaseException:
        print(f"strict btcd log tail:\n{node.log_tail()}")
        raise
    finally:
        node.stop()


def fund(btcd: BtcdDevnet | StrictBtcd, script: bytes, *, mine: bool = True) -> tuple[str, int]:
    """Pay AMOUNT to the HTLC from the faucet; returns the funding outpoint."""
    txid = btcd.faucet.pay(htlc_script_pubkey(script), AMOUNT)
    raw = btcd.rpc.raw_transaction(txid)
    assert raw is not None
    [(vout, value)] = find_htlc_outputs(raw, script)
    assert value == AMOUNT
    if mine:
        btcd.rpc.generate(1)
    return txid, vout


def tip(btcd: BtcdDevnet | StrictBtcd) -> BlockHeight:
    return BlockHeight(btcd.rpc.block_count())


def confirmations(btcd: BtcdDevnet | StrictBtcd, txid: str) -> int:
    info = btcd.rpc.transaction_info(txid)
    assert info is not None
    return int(info["confirmations"])


def test_redeem_with_the_32_byte_preimage_is_accepted_and_pays_the_destination(
    btcd: BtcdDevnet,
) -> None:
    p = Parties()
    script = p.script(tip(btcd).value + 50)
    outpoint = fund(btcd, script)
    payee = dest()
    raw = build_redeem(outpoint, AMOUNT, script, p.secret, p.recipient_secret, payee, FEE_RATE)
    txid = btcd.rpc.send_raw_transaction(raw)
    btcd.rpc.generate(1)
    out = btcd.rpc.tx_out(txid, 0)
    assert out is not None
    assert out["script_pubkey"] == payee and out["confirmations"] == 1
    assert btcd.rpc.tx_out(*outpoint) is None  # the HTLC output is spent


@pytest.mark.parametrize("length", [31, 33])
def test_btcd_refuses_a_preimage_that_hashes_right_but_is_not_32_bytes(
    btcd: BtcdDevnet, length: int,
) -> None:
    p = Parties()
    odd = os.urandom(length)
    script = p.script(tip(btcd).value + 50, hashlock=hashlib.sha256(odd).digest())
    outpoint = fund(btcd, script)
    with pytest.raises(BadPreimage):  # Ferry will not build it ...
        build_redeem(outpoint, AMOUNT, script, odd, p.recipient_secret, dest(), FEE_RATE)
    with pytest.raises(TxRejected, match="OP_EQUALVERIFY failed"):  # ... nor will btcd: the
        # signature and hash are right, OP_SIZE 32 OP_EQUALVERIFY is what fails.
        btcd.rpc.send_raw_transaction(hand_built_redeem(outpoint, script, p.recipient_secret, odd))
    assert btcd.rpc.tx_out(*outpoint) is not None

    # Control: the same hand-built spend with a 32-byte preimage is valid.
    good = Parties()
    good_script = good.script(tip(btcd).value + 50)
    good_outpoint = fund(btcd, good_script)
    btcd.rpc.send_raw_transaction(
        hand_built_redeem(good_outpoint, good_script, good.recipient_secret, good.secret))
    btcd.rpc.generate(1)


def test_refund_is_refused_as_non_final_until_the_tip_reaches_the_locktime(
    strict_btcd: StrictBtcd,
) -> None:
    p = Parties()
    locktime = tip(strict_btcd) + 4
    script = p.script(locktime.value)
    outpoint = fund(strict_btcd, script)
    refund = build_refund(outpoint, AMOUNT, script, p.refund_secret, dest(), FEE_RATE)
    refused = 0
    while not expired(locktime, tip(strict_btcd)):
        with pytest.raises(TxRejected, match="not finalized"):
            strict_btcd.rpc.send_raw_transaction(refund)
        refused += 1
        strict_btcd.rpc.generate(1)
    assert refused == 3 and tip(strict_btcd) == locktime
    txid = strict_btcd.rpc.send_raw_transaction(refund)
    assert txid in strict_btcd.rpc.mempool_txids()
    [block_hash] = strict_btcd.rpc.generate(1)
    assert strict_btcd.rpc.transaction_info(txid)["blockhash"] == block_hash  # type: ignore[index]


def test_refund_is_first_mined_in_the_block_after_the_locktime(btcd: BtcdDevnet) -> None:
    """Consensus, whatever the mempool policy: btcd's regtest default relays non-final
    transactions (a strict node refuses them, as above), but no node mines one early."""
    p = Parties()
    locktime = tip(btcd) + 3
    script = p.script(locktime.value)
    outpoint = fund(btcd, script)
    refund = build_refund(outpoint, AMOUNT, script, p.refund_secret, dest(), FEE_RATE)
    txid: str | None = None
    while txid is None or not confirmations(btcd, txid):
        assert tip(btcd).value <= locktime.value
        if txid is None:
            try:
                txid = btcd.rpc.send_raw_transaction(refund)
            except TxRejected:
                assert not expired(locktime, tip(btcd))
        btcd.rpc.generate(1)
    assert tip(btcd) == locktime + 1


def test_redeem_after_the_refund_is_refused_in_the_mempool_and_after_mining(
    btcd: BtcdDevnet,
) -> None:
    p = Parties()
    script = p.script(tip(btcd).value + 1)
    outpoint = fund(btcd, script)  # the tip is now the locktime
    refund_txid = btcd.rpc.send_raw_transaction(
        build_refund(outpoint, AMOUNT, script, p.refund_secret, dest(), FEE_RATE))
    redeem = build_redeem(outpoint, AMOUNT, script, p.secret, p.recipient_secret, dest(),
                          FEE_RATE * 10)
    with pytest.raises(TxRejected, match="(?i)spent"):  # the refund does not signal RBF
        btcd.rpc.send_raw_transaction(redeem)
    btcd.rpc.generate(1)
    assert confirmations(btcd, refund_txid) == 1
    with pytest.raises(TxRejected):
        btcd.rpc.send_raw_transaction(redeem)


def test_after_the_locktime_a_redeem_and_a_refund_race(btcd: BtcdDevnet) -> None:
    """Why the safety margin counts the participant's confirmations: the claim can still be
    made after the participant's expiry, and a refund paying more can replace it (BIP-125)."""
    p = Parties()
    script = p.script(tip(btcd).value + 1)
    outpoint = fund(btcd, script)
    btcd.rpc.generate(2)
    redeem_txid = btcd.rpc.send_raw_transaction(
        build_redeem(outpoint, AMOUNT, script, p.secret, p.recipient_secret, dest(), FEE_RATE))
    assert redeem_txid in btcd.rpc.mempool_txids()
    with pytest.raises(FeeTooLow):
        btcd.rpc.send_raw_transaction(
            build_refund(outpoint, AMOUNT, script, p.refund_secret, dest(), FEE_RATE))
    refund_txid = btcd.rpc.send_raw_transaction(
        build_refund(outpoint, AMOUNT, script, p.refund_secret, dest(), FEE_RATE * 5))
    assert btcd.rpc.mempool_txids() >= {refund_txid} and redeem_txid not in btcd.rpc.mempool_txids()
    btcd.rpc.generate(1)


def test_extract_preimage_finds_the_secret_in_the_mempool_and_in_a_block(
    btcd: BtcdDevnet,
) -> None:
    p = Parties()
    script = p.script(tip(btcd).value + 50)
    funding_txid, vout = fund(btcd, script, mine=False)
    funding = btcd.rpc.raw_transaction(funding_txid)
    assert funding is not None and extract_preimage(funding, p.hashlock) is None
    txid = btcd.rpc.send_raw_transaction(build_redeem(
        (funding_txid, vout), AMOUNT, script, p.secret, p.recipient_secret, dest(), FEE_RATE))

    assert txid in btcd.rpc.mempool_txids()
    in_mempool = btcd.rpc.raw_transaction(txid)
    assert in_mempool is not None
    assert extract_preimage(in_mempool, p.hashlock) == p.secret
    assert extract_preimage(in_mempool, hashlock_of(new_secret())) is None

    [block_hash] = btcd.rpc.generate(1)
    other = hashlock_of(new_secret())
    raw_block = btcd.rpc.raw_block(block_hash)
    assert preimages_in_block(raw_block, {p.hashlock, other}) == {p.hashlock: p.secret}
    assert btcd.rpc.transaction_info(txid)["blockhash"] == block_hash  # type: ignore[index]
