"""Escrow releases: amino JSON sign bytes, signatures, the assembled multisig tx, the check.

Vectors come from simd v0.50.3 (Cosmos SDK simapp) with the test_cosmos_multisig keys
imported into a scratch keyring and a scratch chain "ferry-scratch-1":
- SIMD_SIGNATURES: `simd tx bank send <escrow> <to> <amount> --generate-only --fees ...
  --gas ... --note ...`, then `simd tx sign <file> --from k<i> --multisig <escrow>
  --sign-mode amino-json --offline --account-number A --sequence S --signature-only`.
  Signatures are RFC 6979 deterministic, so equal signatures prove equal sign bytes.
- ON_CHAIN: releases built, signed, `assemble`d here and broadcast to that chain with CometBFT
  `broadcast_tx_sync`; both were accepted (CheckTx and DeliverTx code 0) under these hashes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from coincurve import PrivateKey
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.cosmos.crypto.multisig.keys_pb2 import LegacyAminoPubKey
from cosmpy.protos.cosmos.crypto.multisig.v1beta1.multisig_pb2 import MultiSignature
from cosmpy.protos.cosmos.tx.v1beta1 import tx_pb2

from adapters.cosmos.multisig import escrow_address
from adapters.cosmos.release import (
    SIGN_MODE_LEGACY_AMINO_JSON,
    Coin,
    CosmosReleaseMismatch,
    Fee,
    UnsignedRelease,
    amino_sign_doc,
    assemble,
    build_release,
    check_release,
    sign,
    txhash,
    verify,
)
from adapters.errors import ConfigError, InvalidAddress, QuorumNotMet, ValidationError

_SECRETS = [hashlib.sha256(f"ferry cosmos vector key {i}".encode()).digest() for i in (1, 2, 3)]
SECRETS = sorted(_SECRETS, key=lambda s: PrivateKey(s).public_key.format())  # key order
PUBKEYS = [PrivateKey(s).public_key.format() for s in SECRETS]
ESCROW = "cosmos1rn8sq3wz9k9zjlgujeaj77ajnkx0wqhknnyd8s"  # 2-of-3 of PUBKEYS (simd)
TO = "cosmos1ya274fhsxatyqw7ne78te99k2edche8reaxwuf"  # simd keys show k2 -a
OTHER = "cosmos1cfr80qzls3h4jlr0t6u3v9f59gvp2z0d08vdld"  # simd keys show k1 -a
CHAIN = "ferry-scratch-1"
MEMO = "ferry release 0x" + "ab" * 32
FEE = Fee([Coin("stake", 500)], 200_000)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def send(amount: list[Coin], frm: str = ESCROW, to: str = TO) -> MsgSend:
    return MsgSend(from_address=frm, to_address=to, amount=[c.to_proto() for c in amount])


# (signer index, account number, sequence, fee, memo, amount, simd's signature)
SIMD_SIGNATURES = [
    (0, 7, 0, FEE, "ferry release 0x01", 1234,
     "4ZElUdLBYyu1qJ8P0TA2GKFhUxYjTY+q2/gqEMwV7dkecpPbH1sS+tzETJTX9s9GalqyhYBiOjKojCL/JT05SA=="),
    (1, 0, 0, Fee([], 100_000), "", 1,
     "iS0VjixrFmnWxpltpB+CNAEwT3qox8GZpRBGPHHmdGkXHlLNUmtNpT8Vzvhz/XPfEn90fURH2nJZ2YXngr5r1Q=="),
    (2, 12, 34, Fee([Coin("zeta", 7), Coin("stake", 500)], 123_456), 'a"b<>&\\', 99,
     "DWm8RD0IbLFGeoB8YHNRA0OcYkV/gJNjdr8uTbxDVaEPiaFU32Vgwgzh99IzS+JLg84JQB9xxbB9s3sDqct5Vg=="),
]


@pytest.mark.parametrize(("signer", "account", "seq", "fee", "memo", "amount", "want"),
                         SIMD_SIGNATURES)
def test_sign_doc_signature_equals_simds(
    signer: int, account: int, seq: int, fee: Fee, memo: str, amount: int, want: str,
) -> None:
    doc = amino_sign_doc(CHAIN, account, seq, fee, memo, [send([Coin("stake", amount)])])
    assert sign(doc, SECRETS[signer]) == base64.b64decode(want)
    assert verify(doc, PUBKEYS[signer], base64.b64decode(want))


def test_sign_doc_bytes_are_sorted_compact_json_with_empty_fields_as_the_sdk() -> None:
    doc = amino_sign_doc(CHAIN, 0, 0, Fee([], 100_000), "", [send([Coin("stake", 1)])])
    assert doc == (
        b'{"account_number":"0","chain_id":"ferry-scratch-1","fee":{"amount":[],"gas":"100000"},'
        b'"memo":"","msgs":[{"type":"cosmos-sdk/MsgSend","value":{"amount":[{"amount":"1",'
        b'"denom":"stake"}],"from_address":"' + ESCROW.encode() + b'","to_address":"'
        + TO.encode() + b'"}}],"sequence":"0"}')
    html = amino_sign_doc(CHAIN, 1, 2, FEE, "<&>", [send([Coin("b-x", 2), Coin("a-x", 1)])])
    assert b'"memo":"\\u003c\\u0026\\u003e"' in html
    assert b'[{"amount":"1","denom":"a-x"},{"amount":"2","denom":"b-x"}]' in html


@pytest.mark.parametrize(
    ("chain_id", "account", "seq", "memo", "msg"),
    [
        pytest.param(CHAIN, 0, 0, "caf\u00e9", send([Coin("stake", 1)]), id="non-ascii-memo"),
        pytest.param(CHAIN, 0, 0, "a\nb", send([Coin("stake", 1)]), id="control-char-memo"),
        pytest.param(CHAIN, 0, 0, "m" * 257, send([Coin("stake", 1)]), id="memo-too-long"),
        pytest.param("", 0, 0, "", send([Coin("stake", 1)]), id="empty-chain-id"),
        pytest.param(CHAIN, -1, 0, "", send([Coin("stake", 1)]), id="negative-account"),
        pytest.param(CHAIN, 0, 2**64, "", send([Coin("stake", 1)]), id="sequence-overflow"),
        pytest.param(CHAIN, 0, 0, "", send([]), id="no-coins"),
        pytest.param(CHAIN, 0, 0, "", MsgSend(from_address=ESCROW, to_address=TO, amount=[
            {"denom": "stake", "amount": "-1"}]), id="negative-coin"),
        pytest.param(CHAIN, 0, 0, "", LegacyAminoPubKey(), id="not-a-msgsend"),
    ],
)
def test_sign_doc_refuses_what_it_cannot_encode_exactly(
    chain_id: str, account: int, seq: int, memo: str, msg: MsgSend,
) -> None:
    with pytest.raises(ValidationError):
        amino_sign_doc(chain_id, account, seq, FEE, memo, [msg])


@pytest.mark.parametrize(
    ("denom", "amount"),
    [("st", 1), ("1stake", 1), ("stake", 0), ("stake", -5), ("stake", 2**256), ("stake", True)],
)
def test_coin_refuses_bad_denom_or_amount(denom: str, amount: int) -> None:
    assert Coin("ibc/" + "A" * 64, 2**256 - 1).amount == 2**256 - 1
    with pytest.raises(ValidationError):
        Coin(denom, amount)


def test_fee_sorts_coins_and_refuses_duplicates_and_zero_gas() -> None:
    assert [c.denom for c in Fee([Coin("zeta", 1), Coin("stake", 2)], 1).amount] == [
        "stake", "zeta"]
    for coins, gas in (([Coin("stake", 1), Coin("stake", 2)], 1), ([], 0), ([], 2**64)):
        with pytest.raises(ValidationError):
            Fee(coins, gas)


def release(**changes: Any) -> UnsignedRelease:
    args: dict[str, Any] = {
        "chain_id": CHAIN, "escrow_pubkeys": PUBKEYS, "threshold": 2, "account_number": 7,
        "sequence": 0, "to_address": TO, "denom": "stake", "amount": 1234, "fee": FEE,
        "memo": MEMO}
    return build_release(**{**args, **changes})


def test_build_release_body_and_sign_bytes_agree() -> None:
    unsigned = release()
    assert (unsigned.escrow, unsigned.to_address, unsigned.coin) == (ESCROW, TO, Coin("stake", 1234))
    body = tx_pb2.TxBody.FromString(unsigned.body_bytes)
    assert body.memo == MEMO and body.timeout_height == 0 and len(body.messages) == 1
    assert body.messages[0].type_url == "/cosmos.bank.v1beta1.MsgSend"
    msg = MsgSend.FromString(body.messages[0].value)
    assert unsigned.sign_bytes == amino_sign_doc(CHAIN, 7, 0, FEE, MEMO, [msg])
    assert unsigned.digest() == hashlib.sha256(unsigned.sign_bytes).digest()
    assert release(to_address=TO.upper()).to_address == TO


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"to_address": "osmo1ya274fhsxatyqw7ne78te99k2edche8rsrsyfc"}, InvalidAddress),
        ({"threshold": 4}, ConfigError),
        ({"amount": 0}, ValidationError),
        ({"denom": "x"}, ValidationError),
        ({"memo": "\u00e9"}, ValidationError),
    ],
)
def test_build_release_refuses_bad_input(changes: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        release(**changes)


def test_signatures_are_64_byte_low_s_and_verify_only_for_their_key_and_bytes() -> None:
    unsigned = release()
    sig = sign(unsigned, SECRETS[0])
    assert len(sig) == 64 and int.from_bytes(sig[32:], "big") <= SECP256K1_N // 2
    assert verify(unsigned, PUBKEYS[0], sig)
    assert verify(unsigned.sign_bytes, PUBKEYS[0], sig)
    high_s = sig[:32] + (SECP256K1_N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
    assert not verify(unsigned, PUBKEYS[0], high_s)
    assert not verify(unsigned, PUBKEYS[1], sig)
    assert not verify(release(sequence=1), PUBKEYS[0], sig)
    assert not verify(unsigned, PUBKEYS[0], sig[:63])
    assert not verify(unsigned, PUBKEYS[0], b"\xff" * 64)
    assert not verify(unsigned, b"\x02" + b"\xff" * 32, sig)


# (sequence, signer indices, tx hash accepted by ferry-scratch-1)
ON_CHAIN = [
    (0, (0, 2), "53F2B4311FDF8AA435A9705BA86786065C0B165DD2B8D70B3D2A93C88F993E49"),
    (1, (1, 2), "E3B0BE221EEA69013D72F6A49F9FFCD53BB7AF29F1E1092C6661F34F1E0EF4FD"),
]


@pytest.mark.parametrize(("sequence", "signers", "hash_"), ON_CHAIN)
def test_assembled_tx_is_byte_identical_to_one_simd_accepted(
    sequence: int, signers: tuple[int, ...], hash_: str,
) -> None:
    unsigned = release(sequence=sequence)
    raw = assemble(unsigned, PUBKEYS, 2, {PUBKEYS[i]: sign(unsigned, SECRETS[i]) for i in signers})
    assert txhash(raw) == hash_


def test_assemble_layout_uses_first_threshold_valid_signatures_in_key_order() -> None:
    unsigned = release()
    sigs = {PUBKEYS[i]: sign(unsigned, SECRETS[i]) for i in (2, 1, 0)}
    sigs[PUBKEYS[0]] = sign(release(sequence=9), SECRETS[0])  # invalid here: ignored
    tx = tx_pb2.TxRaw.FromString(assemble(unsigned, reversed(PUBKEYS), 2, sigs))
    assert tx.body_bytes == unsigned.body_bytes
    auth = tx_pb2.AuthInfo.FromString(tx.auth_info_bytes)
    assert [(c.denom, c.amount) for c in auth.fee.amount] == [("stake", "500")]
    assert auth.fee.gas_limit == 200_000
    (signer,) = auth.signer_infos
    assert signer.sequence == 0
    assert signer.public_key.type_url == "/cosmos.crypto.multisig.LegacyAminoPubKey"
    assert escrow_address(PUBKEYS, LegacyAminoPubKey.FromString(
        signer.public_key.value).threshold) == ESCROW
    multi = signer.mode_info.multi
    assert (multi.bitarray.extra_bits_stored, multi.bitarray.elems) == (3, bytes([0b01100000]))
    assert [m.single.mode for m in multi.mode_infos] == [SIGN_MODE_LEGACY_AMINO_JSON] * 2
    (multisig_bytes,) = tx.signatures
    assert list(MultiSignature.FromString(multisig_bytes).signatures) == [
        sigs[PUBKEYS[1]], sigs[PUBKEYS[2]]]


@pytest.mark.parametrize(
    ("n", "signers", "extra_bits", "elems"),
    [  # n=7 (4-of-7), 8 (5-of-8) and 10 (6-of-10) layouts were also accepted on simd chains
        (7, (0, 3, 5, 6), 7, [0b10010110]),
        (8, (0, 2, 4, 6, 7), 0, [0b10101011]),
        (10, (1, 2, 3, 7, 8, 9), 2, [0b01110001, 0b11000000]),
    ],
)
def test_compact_bit_array_is_msb_first_with_n_mod_8_extra_bits(
    n: int, signers: tuple[int, ...], extra_bits: int, elems: list[int],
) -> None:
    secrets = sorted((hashlib.sha256(b"member %d" % i).digest() for i in range(n)),
                     key=lambda s: PrivateKey(s).public_key.format())
    keys = [PrivateKey(s).public_key.format() for s in secrets]
    m = len(signers)
    unsigned = build_release(CHAIN, keys, m, 1, 0, TO, "stake", 5, FEE, MEMO, tx_sig_limit=16)
    sigs = {keys[i]: sign(unsigned, secrets[i]) for i in signers}
    tx = tx_pb2.TxRaw.FromString(assemble(unsigned, keys, m, sigs, tx_sig_limit=16))
    bits = tx_pb2.AuthInfo.FromString(tx.auth_info_bytes).signer_infos[0].mode_info.multi.bitarray
    assert (bits.extra_bits_stored, list(bits.elems)) == (extra_bits, elems)
    if n > 7:  # the default x/auth tx_sig_limit (7) refuses such an escrow
        with pytest.raises(ConfigError):
            assemble(unsigned, keys, m, sigs)


def test_assemble_refuses_below_threshold_and_a_foreign_escrow() -> None:
    unsigned = release()
    one = {PUBKEYS[2]: sign(unsigned, SECRETS[2])}
    with pytest.raises(QuorumNotMet):
        assemble(unsigned, PUBKEYS, 2, one)
    stranger = PrivateKey(b"\x07" * 32)
    with pytest.raises(QuorumNotMet):  # a non-member's signature does not count
        assemble(unsigned, PUBKEYS, 2, {**one, stranger.public_key.format(): sign(
            unsigned, stranger.secret)})
    with pytest.raises(ConfigError):
        assemble(unsigned, PUBKEYS, 3, {PUBKEYS[i]: sign(unsigned, SECRETS[i]) for i in range(3)})


def test_txhash_is_uppercase_sha256_hex() -> None:
    assert txhash(b"") == hashlib.sha256(b"").hexdigest().upper()


# ----------------------------------------------------------------------------- check_release

def check(sign_bytes: UnsignedRelease | bytes, **changes: Any) -> None:
    """check_release against the burn `release()` pays, with `changes` to the expectations."""
    expect: dict[str, Any] = {
        "chain_id": CHAIN, "escrow": ESCROW, "to_address": TO, "denom": "stake", "amount": 1234,
        "max_fee": Coin("stake", 500), "burn_id_memo": MEMO}
    check_release(sign_bytes, **{**expect, **changes})


def doc(**changes: Any) -> bytes:
    args: dict[str, Any] = {"chain_id": CHAIN, "account_number": 7, "sequence": 0, "fee": FEE,
                            "memo": MEMO, "msgs": [send([Coin("stake", 1234)])]}
    return amino_sign_doc(**{**args, **changes})


def test_check_release_accepts_the_release_it_was_built_for() -> None:
    check(release())
    check(release().sign_bytes, account_number=7, sequence=0)
    check(doc(fee=Fee([Coin("stake", 499)], 10**9)))
    check(doc(fee=Fee([], 1)), to_address=TO.upper())


_REWRITTEN = doc().replace(b'"memo"', b'"memo" ')
_DUPLICATE = doc().replace(b'"memo":', b'"memo":"x","memo":')


@pytest.mark.parametrize(
    ("sign_bytes", "expect"),
    [
        pytest.param(doc(msgs=[send([Coin("stake", 1234)], to=OTHER)]), {}, id="recipient"),
        pytest.param(doc(msgs=[send([Coin("stake", 1235)])]), {}, id="amount"),
        pytest.param(doc(msgs=[send([Coin("uatom", 1234)])]), {}, id="denom"),
        pytest.param(doc(msgs=[send([Coin("stake", 1234), Coin("uatom", 1)])]), {},
                     id="extra-coin"),
        pytest.param(doc(msgs=[send([Coin("stake", 1234)])] * 2), {}, id="extra-msg"),
        pytest.param(doc(msgs=[]), {}, id="no-msg"),
        pytest.param(doc(msgs=[send([Coin("stake", 1234)], frm=OTHER)]), {}, id="not-from-escrow"),
        pytest.param(doc(msgs=[send([Coin("stake", 1234)], to=ESCROW)]), {"to_address": ESCROW},
                     id="pays-the-escrow"),
        pytest.param(doc(fee=Fee([Coin("stake", 501)], 200_000)), {}, id="higher-fee"),
        pytest.param(doc(fee=Fee([Coin("uatom", 1)], 200_000)), {}, id="fee-other-denom"),
        pytest.param(doc(fee=Fee([Coin("stake", 1), Coin("uatom", 1)], 1)), {}, id="fee-2-denoms"),
        pytest.param(doc(chain_id="cosmoshub-4"), {}, id="chain-id"),
        pytest.param(doc(memo="ferry release 0x" + "cd" * 32), {}, id="memo"),
        pytest.param(doc(memo=""), {}, id="empty-memo"),
        pytest.param(doc(sequence=1), {"sequence": 0}, id="sequence"),
        pytest.param(doc(account_number=8), {"account_number": 7}, id="account-number"),
        pytest.param(_REWRITTEN, {}, id="non-canonical-json"),
        pytest.param(_DUPLICATE, {}, id="duplicate-key"),
        pytest.param(doc().replace(b"cosmos-sdk/MsgSend", b"cosmos-sdk/MsgMultiSend"), {},
                     id="other-msg-type"),
        pytest.param(doc().replace(b'"amount":"1234"', b'"amount":1234'), {}, id="int-amount"),
        pytest.param(doc().replace(b'"amount":"1234"', b'"amount":"01234"'), {}, id="padded"),
        pytest.param(json.dumps({**json.loads(doc()), "tip": None}).encode(), {}, id="extra-field"),
        pytest.param(b"\xff\xfe", {}, id="not-utf8"),
        pytest.param(b"[]", {}, id="not-an-object"),
        pytest.param(doc(), {"escrow": "cosmos1bad"}, id="bad-expected-escrow"),
    ],
)
def test_check_release_refuses_any_difference(sign_bytes: bytes, expect: dict[str, Any]) -> None:
    with pytest.raises(CosmosReleaseMismatch) as info:
        check(sign_bytes, **expect)
    assert info.value.code == "release_mismatch"
    assert isinstance(info.value, ValidationError)


def test_check_release_refuses_oversized_or_deeply_nested_input_as_a_mismatch() -> None:
    for junk in (b"[" * 10_000 + b"]" * 10_000, b'{"a":"' + b"x" * 20_000 + b'"}'):
        with pytest.raises(CosmosReleaseMismatch):
            check(junk)
