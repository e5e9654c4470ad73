"""Vault spends: selection, building, BIP-143 sighashes, signing, witnesses, validator checks.

python-bitcoinlib 0.12.2's `VerifyScript` has no witness support (and checks signatures through
OpenSSL), so `run_p2wsh` below is a small independent P2WSH evaluator for our two script
templates: witness-program hash, pushes, OP_DROP, OP_CHECKMULTISIG (Core's matching order,
NULLDUMMY), clean stack; its digests come from `bip143_digest`, an independent BIP-143
implementation checked against the BIP's own vector.
"""

from __future__ import annotations

import hashlib
import struct

import pytest
from bitcoin.core import CMutableTransaction, CMutableTxOut, COutPoint, CTransaction, lx
from bitcoin.core.script import CScript
from coincurve import PublicKey

from adapters.bitcoin import keys
from adapters.bitcoin import tx as btx
from adapters.bitcoin.errors import InsufficientFunds, ReleaseMismatch
from adapters.bitcoin.scripts import Vault, deposit_script, p2wsh
from adapters.bitcoin.tx import (
    CHANGE_MIN_SATS,
    SEQUENCE_RBF,
    Coin,
    assemble,
    build_consolidation,
    build_release,
    bump_release,
    check_consolidation,
    check_release,
    decode_tx,
    decode_unsigned,
    estimate_vsize,
    select_coins,
    sighash_v0,
    sighashes,
    sign_release,
    txid_of,
    verify_input_signature,
)
from adapters.errors import ConfigError, QuorumNotMet, ValidationError

SECRETS = [bytes([i]) * 32 for i in range(1, 16)]
PUBKEYS = [keys.public_key(s) for s in SECRETS]
VAULT = Vault(tuple(PUBKEYS[:3]), 2, "regtest")
ALICE = b"\xa1" * 32
PAYEE = bytes.fromhex("0014751e76e8199196d454941c45d1b3a323f1433bd6")  # P2WPKH
FOREIGN = bytes.fromhex("0014" + "ee" * 20)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def coin(tag: str, amount: int, vout: int = 0, account: bytes | None = None) -> Coin:
    return Coin(tag * 32, vout, amount, account)


def sign_all(unsigned: bytes, coins, vault: Vault, members) -> dict[bytes, list[bytes]]:
    by_pub = dict(zip(PUBKEYS, SECRETS, strict=False))
    return {pk: sign_release(unsigned, coins, vault, by_pub[pk]) for pk in members}


# ----------------------------------------------------------------------------- independent checks


def _h256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _ser_bytes(data: bytes) -> bytes:
    """Bitcoin's length-prefixed bytes (compact size), for lengths below 65536."""
    size = bytes([len(data)]) if len(data) < 0xFD else b"\xfd" + struct.pack("<H", len(data))
    return size + data


def bip143_digest(tx: CTransaction, index: int, script_code: bytes, amount: int) -> bytes:
    """BIP-143 SIGHASH_ALL, written from the BIP's text (no python-bitcoinlib sighash code)."""
    prevouts = b"".join(i.prevout.hash + struct.pack("<I", i.prevout.n) for i in tx.vin)
    sequences = b"".join(struct.pack("<I", i.nSequence) for i in tx.vin)
    outputs = b"".join(struct.pack("<q", o.nValue) + _ser_bytes(bytes(o.scriptPubKey))
                       for o in tx.vout)
    txin = tx.vin[index]
    preimage = (
        struct.pack("<i", tx.nVersion) + _h256(prevouts) + _h256(sequences)
        + txin.prevout.hash + struct.pack("<I", txin.prevout.n) + _ser_bytes(script_code)
        + struct.pack("<q", amount) + struct.pack("<I", txin.nSequence) + _h256(outputs)
        + struct.pack("<I", tx.nLockTime) + struct.pack("<I", 1)
    )
    return _h256(preimage)


def run_p2wsh(stack_items: list[bytes], script_pubkey: bytes, digest: bytes) -> bool:
    """Evaluate one P2WSH input of our templates; True iff consensus would accept it."""
    *stack, witness_script = [bytes(x) for x in stack_items]
    if script_pubkey != b"\x00\x20" + hashlib.sha256(witness_script).digest():
        return False
    for op, data, _ in CScript(witness_script).raw_iter():
        if op <= 0x4E:  # OP_0 and data pushes
            stack.append(bytes(data))
        elif 0x51 <= op <= 0x60:  # OP_1..OP_16
            stack.append(bytes([op - 0x50]))
        elif op == 0x75:  # OP_DROP
            stack.pop()
        elif op == 0xAE:  # OP_CHECKMULTISIG, as Bitcoin Core's interpreter matches it
            n = stack.pop()[0]
            pubkeys = [stack.pop() for _ in range(n)][::-1]
            m = stack.pop()[0]
            sigs = [stack.pop() for _ in range(m)][::-1]
            if stack.pop() != b"":  # NULLDUMMY
                return False
            isig = ikey = 0
            while isig < m and n - ikey >= m - isig:
                sig = sigs[isig]
                if sig and sig[-1] == 1 and PublicKey(pubkeys[ikey]).verify(
                        sig[:-1], digest, hasher=None):
                    isig += 1
                ikey += 1
            stack.append(b"\x01" if isig == m else b"")
        else:
            return False
    return stack == [b"\x01"]  # clean stack (BIP-141)


def script_pubkey_of(c: Coin, vault: Vault) -> bytes:
    if c.account is None:
        return vault.script_pubkey
    return p2wsh(deposit_script(vault.pubkeys, vault.threshold, c.account))


def witness_satisfies_scripts(raw: bytes, coins, vault: Vault) -> bool:
    tx = CTransaction.deserialize(raw)
    return all(
        run_p2wsh(list(tx.wit.vtxinwit[i].scriptWitness.stack), script_pubkey_of(c, vault),
                  bip143_digest(tx, i, vault.witness_script_for(c.account), c.amount_sats))
        for i, c in enumerate(coins)
    )


# ----------------------------------------------------------------------------- BIP-143 vector

# bip-0143.mediawiki, "P2SH-P2WSH": a 6-of-6 multisig witness script, 9.87654321 BTC input.
BIP143_UNSIGNED = bytes.fromhex(
    "010000000136641869ca081e70f394c6948e8af409e18b619df2ed74aa106c1ca29787b96e0100000000ffff"
    "ffff0200e9a435000000001976a914389ffce9cd9ae88dcc0631e88a821ffdbe9bfe2688acc0832f05000000"
    "001976a9147480a33f950689af511e6e84c138dbbd3c3ee41588ac00000000"
)
BIP143_WITNESS_SCRIPT = bytes.fromhex(
    "56210307b8ae49ac90a048e9b53357a2354b3334e9c8bee813ecb98e99a7e07e8c3ba32103b28f0c28bfab5455"
    "4ae8c658ac5c3e0ce6e79ad336331f78c428dd43eea8449b21034b8113d703413d57761b8b9781957b8c0ac1dfe"
    "69f492580ca4195f50376ba4a21033400f6afecb833092a9a21cfdf1ed1376e58c5d1f47de74683123987e967a8"
    "f42103a6d48b1131e94ba04d9737d61acdaa1322008af9602b3b14862c07a1789aac162102d8b661b0b3302ee2"
    "f162b09e07a55ad5dfbe673a9f01d9f0c19617681024306b56ae"
)
BIP143_SIGHASH_ALL = "185c0be5263dce5b4bb50a047973c1b6272bfbd0103a89444597dc40b248ee7c"
BIP143_KEY_ALL = bytes.fromhex("730fff80e1413068a05b57d6a58261f07551163369787f349438ea38ca80fac6")


@pytest.mark.parametrize(("amount", "matches"), [(987654321, True), (987654320, False)])
def test_sighash_matches_the_bip143_p2sh_p2wsh_vector(amount, matches):
    tx = decode_tx(BIP143_UNSIGNED)
    digest = sighash_v0(tx, 0, BIP143_WITNESS_SCRIPT, amount)
    assert (digest.hex() == BIP143_SIGHASH_ALL) is matches
    assert bip143_digest(tx, 0, BIP143_WITNESS_SCRIPT, amount) == digest  # the test's own copy
    sig = keys.sign_digest(BIP143_KEY_ALL, digest)
    first_key = BIP143_WITNESS_SCRIPT[2:35]  # the vector's key for SIGHASH_ALL
    assert keys.verify_digest(first_key, bytes.fromhex(BIP143_SIGHASH_ALL), sig) is matches


# ----------------------------------------------------------------------------- sizing & selection


@pytest.mark.parametrize(
    ("n_inputs", "m", "n", "deposit"),
    [(1, 1, 1, False), (1, 2, 3, True), (3, 2, 3, False), (2, 3, 5, True), (2, 15, 15, True)],
)
def test_estimated_vsize_bounds_the_signed_transaction(n_inputs, m, n, deposit):
    vault = Vault(tuple(PUBKEYS[:n]), m, "regtest")
    coins = [coin(f"{i + 1:02x}", 100_000, account=ALICE if deposit else None)
             for i in range(n_inputs)]
    built = build_release(coins, PAYEE, n_inputs * 100_000 - 20_000, 3, vault)
    raw = assemble(built.tx, coins, vault, sign_all(built.tx, coins, vault, PUBKEYS[:m]))
    actual = (CTransaction.deserialize(raw).calc_weight() + 3) // 4
    estimate = estimate_vsize(n_inputs, [PAYEE, vault.script_pubkey], m, n)
    assert built.vsize == estimate
    assert witness_satisfies_scripts(raw, coins, vault)
    assert actual <= estimate <= actual + n_inputs * (m + (0 if deposit else 9)) + 1


@pytest.mark.parametrize(("n_inputs", "m", "n"), [(0, 2, 3), (1, 0, 3), (1, 4, 3), (1, 16, 16)])
def test_estimate_vsize_refuses_impossible_spends(n_inputs, m, n):
    with pytest.raises(ValidationError):
        estimate_vsize(n_inputs, [PAYEE], m, n)


COINS = [coin("aa", 50_000), coin("bb", 30_000), coin("cc", 20_000), coin("dd", 20_000)]


@pytest.mark.parametrize(
    ("amount", "chosen"),
    [
        (40_000, ["aa"]),  # largest first, change 10 000
        (50_000, ["aa"]),  # exact: no change
        (49_500, ["aa", "bb"]),  # change 500 is under CHANGE_MIN_SATS: take another coin
        (70_000, ["aa", "bb"]),
        (100_000, ["aa", "bb", "cc"]),  # ties (20 000) broken by txid
    ],
)
def test_selects_fewest_coins_largest_first(amount, chosen):
    picked = select_coins(COINS, amount, fee_rate_sat_vb=2, payee_spk=PAYEE, vault=VAULT)
    assert [c.txid[:2] for c in picked] == chosen
    change = sum(c.amount_sats for c in picked) - amount
    assert change == 0 or change >= CHANGE_MIN_SATS


@pytest.mark.parametrize(
    ("amount", "rate", "match"),
    [
        (120_001, 2, "cannot pay"),  # more than all coins
        (119_500, 2, "cannot pay"),  # every selection leaves a change under the minimum
        (1_000, 20, "payee would get"),  # the fee eats the payee's share
    ],
)
def test_selection_refuses_what_the_coins_cannot_pay(amount, rate, match):
    with pytest.raises(InsufficientFunds, match=match):
        select_coins(COINS, amount, fee_rate_sat_vb=rate, payee_spk=PAYEE, vault=VAULT)


# ----------------------------------------------------------------------------- building


def test_builds_a_release_as_designed():
    coins = [coin("aa", 60_000), coin("bb", 50_000, account=ALICE)]
    built = build_release(coins, PAYEE, 100_000, 5, VAULT)
    tx = decode_tx(built.tx)
    assert (tx.nVersion, tx.nLockTime) == (2, 0)
    assert [i.nSequence for i in tx.vin] == [SEQUENCE_RBF] * 2
    assert [(o.nValue, bytes(o.scriptPubKey)) for o in tx.vout] == [
        (100_000 - built.fee_sats, PAYEE), (10_000, VAULT.script_pubkey)]
    assert built.fee_sats == built.vsize * 5 and built.burn_amount_sats == 100_000
    assert built.txid == txid_of(built.tx) and built.kind == "release"
    assert decode_unsigned(built.tx, coins, VAULT) == built

    exact = build_release(coins, PAYEE, 110_000, 5, VAULT)
    assert len(decode_tx(exact.tx).vout) == 1 and exact.change_sats == 0


@pytest.mark.parametrize(
    ("coins", "payee", "burn", "error"),
    [
        ([coin("aa", 60_000)], PAYEE, 60_001, InsufficientFunds),  # short
        ([coin("aa", 60_000)], PAYEE, 59_500, InsufficientFunds),  # change under the minimum
        ([coin("aa", 60_000)], PAYEE, 600, InsufficientFunds),  # payee would be dust
        ([coin("aa", 60_000)], VAULT.script_pubkey, 50_000, ValidationError),  # pays the vault
        ([coin("aa", 60_000)], bytes.fromhex("6a00"), 50_000, ValidationError),  # OP_RETURN
        ([coin("aa", 60_000)] * 2, PAYEE, 50_000, ValidationError),  # the same coin twice
        ([], PAYEE, 50_000, ValidationError),
    ],
)
def test_build_release_refuses_bad_releases(coins, payee, burn, error):
    with pytest.raises(error):
        build_release(coins, payee, burn, 5, VAULT)


def test_bump_keeps_inputs_and_change_and_shrinks_the_payee():
    coins = [coin("aa", 60_000), coin("bb", 50_000)]
    built = build_release(coins, PAYEE, 100_000, 5, VAULT)
    bumped = bump_release(built, 9, VAULT)
    old, new = decode_tx(built.tx), decode_tx(bumped.tx)
    assert [i.prevout for i in new.vin] == [i.prevout for i in old.vin]
    assert bumped.change_sats == built.change_sats == 10_000
    assert bumped.payee_sats == built.payee_sats - 4 * built.vsize
    assert bumped.burn_amount_sats == 100_000 and bumped.txid != built.txid
    check_release(bumped.tx, coins, VAULT, burn_amount_sats=100_000, payee_spk=PAYEE,
                  max_fee_rate_sat_vb=9)
    with pytest.raises(ValidationError):
        bump_release(built, 5, VAULT)  # BIP-125 needs a higher rate
    with pytest.raises(InsufficientFunds):
        bump_release(built, 100_000 // built.vsize, VAULT)


def test_consolidation_merges_coins_into_one_vault_output():
    coins = [coin("aa", 20_000), coin("bb", 30_000, account=ALICE), coin("cc", 5_000)]
    built = build_consolidation(coins, 4, VAULT)
    tx = decode_tx(built.tx)
    assert [bytes(o.scriptPubKey) for o in tx.vout] == [VAULT.script_pubkey]
    assert tx.vout[0].nValue == 55_000 - built.fee_sats and built.kind == "consolidation"
    assert check_consolidation(built.tx, coins, VAULT, 4) == built.fee_sats
    assert decode_unsigned(built.tx, coins, VAULT) == built
    with pytest.raises(ReleaseMismatch, match="outside"):
        check_consolidation(built.tx, coins, VAULT, 3)  # above the cap
    foreign = build_release(coins, PAYEE, 55_000, 4, VAULT)
    with pytest.raises(ReleaseMismatch, match="one output"):
        check_consolidation(foreign.tx, coins, VAULT, 4)
    with pytest.raises(ValidationError):
        build_consolidation(coins[:1], 4, VAULT)


# ----------------------------------------------------------------------------- signing


def test_sighashes_follow_bip143_with_each_coins_own_script():
    coins = [coin("aa", 60_000), coin("bb", 50_000, account=ALICE)]
    built = build_release(coins, PAYEE, 100_000, 5, VAULT)
    tx = decode_tx(built.tx)
    expected = [bip143_digest(tx, 0, VAULT.witness_script, 60_000),
                bip143_digest(tx, 1, VAULT.deposit(ALICE).witness_script, 50_000)]
    assert sighashes(built.tx, coins, VAULT) == expected
    with pytest.raises(ReleaseMismatch):
        sighashes(built.tx, coins[::-1], VAULT)


def test_assembles_m_signatures_in_key_order_that_satisfy_the_scripts():
    coins = [coin("aa", 60_000), coin("bb", 50_000, account=ALICE)]
    built = build_release(coins, PAYEE, 100_000, 5, VAULT)
    sigs = sign_all(built.tx, coins, VAULT, PUBKEYS[:3])
    raw = assemble(built.tx, coins, VAULT, sigs)
    signed = CTransaction.deserialize(raw)
    first, second = VAULT.sorted_pubkeys[:2]
    for i, c in enumerate(coins):
        stack = list(signed.wit.vtxinwit[i].scriptWitness.stack)
        assert stack == [b"", sigs[first][i], sigs[second][i], VAULT.witness_script_for(c.account)]
        assert all(len(s) <= 73 and s[-1] == 1 for s in stack[1:3])
    assert txid_of(raw) == built.txid
    assert witness_satisfies_scripts(raw, coins, VAULT)

    # Only the last two members signed: still in key order.
    late = {pk: sigs[pk] for pk in VAULT.sorted_pubkeys[1:]}
    raw_late = assemble(built.tx, coins, VAULT, late)
    stack = list(CTransaction.deserialize(raw_late).wit.vtxinwit[0].scriptWitness.stack)
    assert stack[1:3] == [late[VAULT.sorted_pubkeys[1]][0], late[VAULT.sorted_pubkeys[2]][0]]
    assert witness_satisfies_scripts(raw_late, coins, VAULT)


def test_script_check_refuses_a_tampered_witness():
    coins = [coin("aa", 60_000)]
    built = build_release(coins, PAYEE, 50_000, 5, VAULT)
    raw = assemble(built.tx, coins, VAULT, sign_all(built.tx, coins, VAULT, PUBKEYS[:2]))
    tx = CTransaction.deserialize(raw)
    stack = list(tx.wit.vtxinwit[0].scriptWitness.stack)
    digest = bip143_digest(tx, 0, VAULT.witness_script, 60_000)
    assert run_p2wsh(stack, VAULT.script_pubkey, digest)
    assert not run_p2wsh([stack[0], stack[2], stack[1], stack[3]], VAULT.script_pubkey, digest)
    assert not run_p2wsh([b"\x00", *stack[1:]], VAULT.script_pubkey, digest)  # NULLDUMMY
    assert not run_p2wsh(stack, VAULT.deposit(ALICE).script_pubkey, digest)
    assert not run_p2wsh(stack, VAULT.script_pubkey,
                         bip143_digest(tx, 0, VAULT.witness_script, 60_001))


def _high_s(sig: bytes) -> bytes:
    der = sig[:-1]
    len_r = der[3]
    r, s = der[4:4 + len_r], int.from_bytes(der[6 + len_r:], "big")
    s_bytes = (SECP256K1_N - s).to_bytes(33, "big").lstrip(b"\x00")
    if s_bytes[0] & 0x80:
        s_bytes = b"\x00" + s_bytes
    body = b"\x02" + bytes([len(r)]) + r + b"\x02" + bytes([len(s_bytes)]) + s_bytes
    return b"\x30" + bytes([len(body)]) + body + sig[-1:]


def test_verify_input_signature_accepts_only_strict_low_s_sighash_all():
    coins = [coin("aa", 60_000), coin("bb", 50_000, account=ALICE)]
    built = build_release(coins, PAYEE, 100_000, 5, VAULT)
    sig = sign_release(built.tx, coins, VAULT, SECRETS[0])[1]
    assert verify_input_signature(built.tx, coins, VAULT, 1, PUBKEYS[0], sig)
    for bad_index, bad_key, bad_sig in [
        (0, PUBKEYS[0], sig),  # another input's digest
        (1, PUBKEYS[1], sig),  # another member
        (1, PUBKEYS[5], sig),  # not a member
        (1, PUBKEYS[0], sig[:-1] + b"\x02"),  # SIGHASH_NONE
        (1, PUBKEYS[0], sig[:-1] + b"\x81"),  # ALL|ANYONECANPAY
        (1, PUBKEYS[0], _high_s(sig)),  # high S
        (1, PUBKEYS[0], b"\x30" + bytes([sig[1] + 1]) + sig[2:-1] + b"\x00\x01"),  # loose DER
        (1, PUBKEYS[0], b""),
    ]:
        assert not verify_input_signature(built.tx, coins, VAULT, bad_index, bad_key, bad_sig)
    with pytest.raises(ConfigError):
        sign_release(built.tx, coins, VAULT, SECRETS[5])


@pytest.mark.parametrize(
    "signers",
    [
        [0],  # m - 1 members
        [0, 5],  # one member and one outsider
        [],
    ],
)
def test_assemble_refuses_fewer_than_m_valid_signatures(signers):
    coins = [coin("aa", 60_000)]
    built = build_release(coins, PAYEE, 50_000, 5, VAULT)
    digests = sighashes(built.tx, coins, VAULT)
    sigs = {PUBKEYS[i]: [keys.sign_digest(SECRETS[i], d) + b"\x01" for d in digests]
            for i in signers}  # the outsider signs the right digest, but is no member
    with pytest.raises(QuorumNotMet):
        assemble(built.tx, coins, VAULT, sigs)


def test_assemble_ignores_signatures_of_another_transaction():
    coins = [coin("aa", 60_000)]
    built = build_release(coins, PAYEE, 50_000, 5, VAULT)
    other = bump_release(built, 6, VAULT)
    sigs = sign_all(built.tx, coins, VAULT, PUBKEYS[:1])
    sigs.update(sign_all(other.tx, coins, VAULT, PUBKEYS[1:2]))
    with pytest.raises(QuorumNotMet):
        assemble(built.tx, coins, VAULT, sigs)


# ----------------------------------------------------------------------------- validator check


CHECK_COINS = [coin("aa", 60_000), coin("bb", 50_000, account=ALICE)]
CHECKED = build_release(CHECK_COINS, PAYEE, 100_000, 5, VAULT)


def _mutate(fn) -> bytes:
    tx = CMutableTransaction.from_tx(decode_tx(CHECKED.tx))
    fn(tx)
    return bytes(tx.serialize())


TAMPERINGS = {  # name: (mutation, the refusal's reason)
    "payee_gets_the_fee": (lambda tx: setattr(tx.vout[0], "nValue", 100_000), "fee 0"),
    "payee_short_fee_above_cap": (lambda tx: setattr(tx.vout[0], "nValue", 60_000), "cap"),
    "payee_script_changed": (
        lambda tx: setattr(tx.vout[0], "scriptPubKey", CScript(FOREIGN)), "destination"),
    "extra_foreign_output": (
        lambda tx: tx.vout.append(CMutableTxOut(1_000, CScript(FOREIGN))), "3 outputs"),
    "extra_vault_output": (
        lambda tx: tx.vout.append(CMutableTxOut(1_000, CScript(VAULT.script_pubkey))),
        "3 outputs"),
    "change_to_foreign_script": (
        lambda tx: setattr(tx.vout[1], "scriptPubKey", CScript(FOREIGN)), "foreign script"),
    "change_lowered": (lambda tx: setattr(tx.vout[1], "nValue", 9_000), "lose 101000"),
    "change_raised": (lambda tx: setattr(tx.vout[1], "nValue", 10_001), "lose 99999"),
    "change_dropped": (lambda tx: tx.vout.pop(), "lose 110000"),
    "outputs_swapped": (lambda tx: tx.vout.reverse(), "foreign script"),
    "input_swapped": (
        lambda tx: setattr(tx.vin[0], "prevout", COutPoint(lx("99" * 32), 0)), "input 0 spends"),
    "inputs_reordered": (lambda tx: tx.vin.reverse(), "input 0 spends"),
    "input_dropped": (lambda tx: tx.vin.pop(), "1 inputs, 2 coins"),
    "final_sequence": (lambda tx: setattr(tx.vin[0], "nSequence", 0xFFFFFFFF), "nSequence"),
    "script_sig": (lambda tx: setattr(tx.vin[1], "scriptSig", CScript(b"\x51")), "scriptSig"),
    "version_1": (lambda tx: setattr(tx, "nVersion", 1), "version 1"),
    "locktime": (lambda tx: setattr(tx, "nLockTime", 800_000), "locktime 800000"),
}


def test_check_release_accepts_the_built_release():
    fee = check_release(CHECKED.tx, CHECK_COINS, VAULT, burn_amount_sats=100_000,
                        payee_spk=PAYEE, max_fee_rate_sat_vb=5)
    assert fee == CHECKED.fee_sats


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_check_release_refuses_a_tampered_transaction(name):
    mutation, reason = TAMPERINGS[name]
    tampered = _mutate(mutation)
    assert tampered != CHECKED.tx
    with pytest.raises(ReleaseMismatch, match=reason):
        check_release(tampered, CHECK_COINS, VAULT, burn_amount_sats=100_000, payee_spk=PAYEE,
                      max_fee_rate_sat_vb=5)


def _signed() -> bytes:
    return assemble(CHECKED.tx, CHECK_COINS, VAULT,
                    sign_all(CHECKED.tx, CHECK_COINS, VAULT, PUBKEYS[:2]))


@pytest.mark.parametrize(
    ("raw", "coins", "burn", "payee", "max_rate", "match"),
    [
        (b"\x02\x00\x00", CHECK_COINS, 100_000, PAYEE, 5, "not a bitcoin transaction"),
        (CHECKED.tx + b"\x00", CHECK_COINS, 100_000, PAYEE, 5, "not a bitcoin transaction"),
        (None, CHECK_COINS, 100_000, PAYEE, 5, "witnesses"),
        (CHECKED.tx, CHECK_COINS, 100_001, PAYEE, 5, "lose"),  # another burn's amount
        (CHECKED.tx, CHECK_COINS, 100_000, FOREIGN, 5, "destination"),  # another payee
        (CHECKED.tx, CHECK_COINS, 100_000, VAULT.script_pubkey, 5, "vault itself"),
        (CHECKED.tx, CHECK_COINS, 100_000, PAYEE, 4, "cap"),  # fee above the cap
        (CHECKED.tx, CHECK_COINS[::-1], 100_000, PAYEE, 5, "input 0"),
        (CHECKED.tx, [CHECK_COINS[0], coin("bb", 50_001)], 100_000, PAYEE, 5, "lose"),
        (CHECKED.tx, [CHECK_COINS[0]] * 2, 100_000, PAYEE, 5, "twice"),
        (CHECKED.tx, [], 100_000, PAYEE, 5, "no coins"),
    ],
)
def test_check_release_refuses_mismatched_claims(raw, coins, burn, payee, max_rate, match):
    with pytest.raises(ReleaseMismatch, match=match):
        check_release(_signed() if raw is None else raw, coins, VAULT, burn_amount_sats=burn,
                      payee_spk=payee, max_fee_rate_sat_vb=max_rate)


def test_check_release_refuses_a_dust_payee():
    coins = [coin("aa", 60_000)]
    built = build_release(coins, PAYEE, 5_000, 1, VAULT)

    def shrink(tx):
        tx.vout[0].nValue = 500

    tx = CMutableTransaction.from_tx(decode_tx(built.tx))
    shrink(tx)
    with pytest.raises(ReleaseMismatch, match="dust"):
        check_release(bytes(tx.serialize()), coins, VAULT, burn_amount_sats=5_000,
                      payee_spk=PAYEE, max_fee_rate_sat_vb=100)


def test_coins_refuse_malformed_outpoints():
    for args in [("ab" * 31, 0, 1), ("ab" * 32, -1, 1), ("ab" * 32, 0, 0), ("zz" * 32, 0, 1)]:
        with pytest.raises(ValidationError):
            Coin(*args)
    with pytest.raises(ValidationError):
        Coin("ab" * 32, 0, 1, b"\x01")
    assert Coin("AB" * 32, 0, 1).txid == "ab" * 32
    from adapters.base import Coin as CustodyCoin

    assert Coin.from_custody(CustodyCoin("ab" * 32, 1, 5, ALICE)) == Coin("ab" * 32, 1, 5, ALICE)
    assert btx.DUST_SATS == 546 and btx.CHANGE_MIN_SATS == 1000
