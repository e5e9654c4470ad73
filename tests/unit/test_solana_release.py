"""adapters.solana.release: the durable-nonce release message, its checks, and proof on an
in-process LiteSVM (SPL Token multisig escrow, nonce account, real Token and ATA programs)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import solders.system_program as sp
from solders.account import Account
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.instruction import AccountMeta, CompiledInstruction, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.state import Mint, TokenAccount
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from solders.transaction_status import TransactionErrorFieldless, TransactionErrorInstructionError
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token import instructions as ti
from spl.token import models as tm
from spl.token.constants import MINT_LEN, MULTISIG_LEN

from adapters.errors import InvalidSignature, QuorumNotMet, ValidationError
from adapters.solana import release as r

BURN = "0x" + "ab" * 32
ESCROW_FUNDS = 10**9


def _data(svm: LiteSVM, address: Pubkey) -> bytes:
    account = svm.get_account(address)
    assert account is not None, address
    return bytes(account.data)


@dataclass
class World:
    """A LiteSVM with a mint, an m-of-n SPL multisig escrow (funded) and a durable nonce."""

    svm: LiteSVM
    payer: Keypair
    mint: Pubkey
    decimals: int
    multisig: Pubkey
    members: list[Keypair]
    m: int
    nonce: Pubkey
    dest: Pubkey = field(default_factory=lambda: Keypair().pubkey())

    def send(self, ixs: list[Instruction], signers: list[Keypair]) -> None:
        tx = Transaction.new_signed_with_payer(ixs, self.payer.pubkey(), signers,
                                               self.svm.latest_blockhash())
        assert isinstance(self.svm.send_transaction(tx), TransactionMetadata)

    def nonce_value(self) -> str:
        return r.decode_nonce_account(_data(self.svm, self.nonce))[1]

    def balance(self, owner: Pubkey) -> int | None:
        account = self.svm.get_account(ti.get_associated_token_address(owner, self.mint))
        return None if account is None else TokenAccount.from_bytes(bytes(account.data)).amount

    def keys(self) -> list[bytes]:
        return [bytes(k.pubkey()) for k in self.members]

    def args(self, **changes: Any) -> dict[str, Any]:
        """build_release_message's expected arguments, minus nonce value and signers."""
        return {"fee_payer": self.payer.pubkey(), "nonce_account": self.nonce,
                "multisig": self.multisig, "mint": self.mint, "decimals": self.decimals,
                "dest_owner": self.dest, "amount": 1234, "burn_id_hex": BURN} | changes

    def message(self, signers: list[bytes] | None = None, **changes: Any) -> bytes:
        return r.build_release_message(
            nonce_value=Hash.from_string(self.nonce_value()),
            signers=r.choose_signers(self.keys(), self.m) if signers is None else signers,
            **self.args(**changes))

    def sign(self, message: bytes, signers: list[bytes]) -> dict[bytes, bytes]:
        by_key = {bytes(k.pubkey()): k for k in self.members + OUTSIDERS}
        return {s: bytes(by_key[s].sign_message(message)) for s in signers}

    def submit(self, raw: bytes) -> TransactionMetadata | FailedTransactionMetadata:
        return self.svm.send_transaction(VersionedTransaction.from_bytes(raw))


OUTSIDERS = [Keypair() for _ in range(2)]
PAYER = Keypair()


def make_world(m: int, n: int, *, native: bool = False) -> World:
    svm = LiteSVM()
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 100 * 10**9)
    members = [Keypair() for _ in range(n)]
    multisig, nonce, mint_kp = Keypair(), Keypair(), Keypair()
    rent = svm.minimum_balance_for_rent_exemption
    tp = r.TOKEN_PROGRAM
    if native:
        mint, decimals = r.NATIVE_MINT, 9
        svm.set_account(mint, Account(lamports=rent(MINT_LEN), owner=tp, executable=False,
                                      data=bytes(Mint(None, 0, 9, True, None)), rent_epoch=0))
    else:
        mint, decimals = mint_kp.pubkey(), 6
    world = World(svm, payer, mint, decimals, multisig.pubkey(), members, m, nonce.pubkey())
    escrow = r.escrow_ata(world.multisig, mint)
    setup = [] if native else [
        sp.create_account(sp.CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=mint,
                                                 lamports=rent(MINT_LEN), space=MINT_LEN,
                                                 owner=tp)),
        ti.initialize_mint(tm.InitializeMintParams(decimals=decimals, program_id=tp, mint=mint,
                                                   mint_authority=payer.pubkey()))]
    setup += [
        sp.create_account(sp.CreateAccountParams(
            from_pubkey=payer.pubkey(), to_pubkey=world.multisig, lamports=rent(MULTISIG_LEN),
            space=MULTISIG_LEN, owner=tp)),
        ti.initialize_multisig(tm.InitializeMultisigParams(
            program_id=tp, multisig=world.multisig, m=m, signers=[k.pubkey() for k in members])),
        ti.create_idempotent_associated_token_account(payer.pubkey(), world.multisig, mint),
        *sp.create_nonce_account(payer.pubkey(), world.nonce, payer.pubkey(), 10**7)]
    if native:
        setup += [sp.transfer(sp.TransferParams(from_pubkey=payer.pubkey(), to_pubkey=escrow,
                                                lamports=ESCROW_FUNDS)),
                  ti.sync_native(tm.SyncNativeParams(program_id=tp, account=escrow))]
    else:
        setup.append(ti.mint_to(tm.MintToParams(program_id=tp, mint=mint, dest=escrow,
                                                mint_authority=payer.pubkey(),
                                                amount=ESCROW_FUNDS)))
    world.send(setup, [payer, multisig, nonce] + ([] if native else [mint_kp]))
    svm.expire_blockhash()
    return world


# ------------------------------------------------------------------ releases on a real SVM


@pytest.mark.parametrize("m, n, native, dest_ata_exists", [
    (2, 3, False, False),
    (3, 5, False, False),
    (2, 3, False, True),
    (3, 5, True, False),
])
def test_release_pays_exactly_the_amount_from_the_escrow(m: int, n: int, native: bool,
                                                         dest_ata_exists: bool) -> None:
    world = make_world(m, n, native=native)
    if dest_ata_exists:
        world.send([ti.create_idempotent_associated_token_account(
            world.payer.pubkey(), world.dest, world.mint)], [world.payer])
        assert world.balance(world.dest) == 0
    message = world.message()
    signers = r.choose_signers(world.keys(), m)
    raw = r.assemble(message, world.sign(message, signers), world.payer)
    result = world.submit(raw)
    assert isinstance(result, TransactionMetadata), result
    assert world.balance(world.dest) == 1234
    assert world.balance(world.multisig) == ESCROW_FUNDS - 1234
    tx = VersionedTransaction.from_bytes(raw)
    assert r.tx_signature(raw) == str(tx.signatures[0]) == str(result.signature())


@pytest.mark.parametrize("m, n", [(2, 3), (3, 5)])
def test_assemble_refuses_fewer_than_m_or_bad_signatures(m: int, n: int) -> None:
    world = make_world(m, n)
    message = world.message()
    signers = r.choose_signers(world.keys(), m)
    sigs = world.sign(message, signers)
    with pytest.raises(QuorumNotMet):
        r.assemble(message, {k: sigs[k] for k in signers[:-1]}, world.payer)
    with pytest.raises(InvalidSignature):
        r.assemble(message, sigs | {signers[0]: bytes(64)}, world.payer)
    with pytest.raises(ValidationError, match="fee payer"):
        r.assemble(message, sigs, Keypair())
    assert len(r.assemble(message, sigs, world.payer)) <= r.PACKET_DATA_SIZE


def test_token_program_refuses_a_non_member_signer() -> None:
    world = make_world(2, 3)
    signers = sorted([world.keys()[0], bytes(OUTSIDERS[0].pubkey())])
    message = world.message(signers)
    result = world.submit(r.assemble(message, world.sign(message, signers), world.payer))
    assert isinstance(result, FailedTransactionMetadata)
    err = result.err()
    assert isinstance(err, TransactionErrorInstructionError) and err.index == 2  # TransferChecked
    assert "Program log: Error: MissingRequiredSignature" in result.meta().logs()
    assert world.balance(world.multisig) == ESCROW_FUNDS and world.balance(world.dest) is None
    with pytest.raises(ValidationError, match="not a member"):
        r.check_release_message(message, members=world.keys(), threshold=2, **world.args())


def test_same_raw_transaction_sent_twice_lands_once() -> None:
    world = make_world(2, 3)
    message = world.message()
    raw = r.assemble(message, world.sign(message, r.choose_signers(world.keys(), 2)), world.payer)
    assert isinstance(world.submit(raw), TransactionMetadata)
    again = world.submit(raw)
    assert isinstance(again, FailedTransactionMetadata)
    assert again.err() in (TransactionErrorFieldless.AlreadyProcessed,
                           TransactionErrorFieldless.BlockhashNotFound)
    assert world.balance(world.dest) == 1234


def test_second_release_at_a_consumed_nonce_value_fails() -> None:
    world = make_world(2, 3)
    signers = r.choose_signers(world.keys(), 2)
    first, second = world.message(), world.message(amount=99)  # same nonce value
    raw1 = r.assemble(first, world.sign(first, signers), world.payer)
    raw2 = r.assemble(second, world.sign(second, signers), world.payer)
    assert isinstance(world.submit(raw1), TransactionMetadata)
    assert world.nonce_value() != r.read_release(first).nonce_value
    result = world.submit(raw2)
    assert isinstance(result, FailedTransactionMetadata)
    assert result.err() == TransactionErrorFieldless.BlockhashNotFound
    assert world.balance(world.dest) == 1234


# ------------------------------------------------------------------ check_release_message


def _keypairs(n: int) -> list[Keypair]:
    return [Keypair() for _ in range(n)]


@pytest.fixture(scope="module")
def pure() -> World:
    """A 3-of-5 world shared by the tests that only build, read and check (never send)."""
    return make_world(3, 5)


STRANGER = Keypair().pubkey()
TAMPER: list[tuple[str, Callable[[World], bytes], str]] = [
    ("amount", lambda w: w.message(amount=1235), "amount"),
    ("destination", lambda w: w.message(dest_owner=STRANGER), "dest_owner"),
    ("mint", lambda w: w.message(mint=STRANGER), "mint"),
    ("decimals", lambda w: w.message(decimals=9), "decimals"),
    ("memo", lambda w: w.message(burn_id_hex="0x" + "cd" * 32), "memo"),
    ("fee payer", lambda w: w.message(fee_payer=STRANGER), "fee_payer"),
    ("nonce account", lambda w: w.message(nonce_account=STRANGER), "nonce_account"),
    ("multisig", lambda w: w.message(multisig=STRANGER), "multisig"),
    ("non-member signer", lambda w: w.message(
        w.keys()[:2] + [bytes(OUTSIDERS[0].pubkey())]), "not a member"),
    ("too few signers", lambda w: w.message(w.keys()[:2]), "want exactly 3"),
    ("too many signers", lambda w: w.message(w.keys()[:4]), "want exactly 3"),
]


def test_check_release_message_accepts_the_expected_release(pure: World) -> None:
    message = pure.message()
    shape = r.check_release_message(message, members=pure.keys(), threshold=3, **pure.args())
    assert shape.signers == tuple(sorted(pure.keys())[:3])
    assert (shape.amount, shape.decimals, shape.mint, shape.dest_owner) == (
        1234, 6, pure.mint, pure.dest)
    assert shape.nonce_value == pure.nonce_value() and shape.memo == r.release_memo(BURN)
    # The other members' signer sets, in any order, are as good.
    assert r.check_release_message(pure.message(pure.keys()[2:]), members=pure.keys()[::-1],
                                   threshold=3, **pure.args()).signers == tuple(
                                       sorted(pure.keys()[2:]))


@pytest.mark.parametrize("name, tamper, complaint", TAMPER, ids=[t[0] for t in TAMPER])
def test_check_release_message_refuses_a_changed_release(
        pure: World, name: str, tamper: Callable[[World], bytes], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        r.check_release_message(tamper(pure), members=pure.keys(), threshold=3, **pure.args())


def _compile(w: World, ixs: list[Instruction], blockhash: str | None = None) -> bytes:
    return bytes(Message.new_with_blockhash(
        ixs, w.payer.pubkey(), Hash.from_string(blockhash or w.nonce_value())))


def _release_ixs(w: World) -> list[Instruction]:
    msg = Message.from_bytes(w.message())
    return [_decompile(msg, i) for i in range(4)]


def _decompile(msg: Message, index: int) -> Instruction:
    ix = msg.instructions[index]
    keys, h = msg.account_keys, msg.header
    signed, ro_signed, ro = (h.num_required_signatures, h.num_readonly_signed_accounts,
                             h.num_readonly_unsigned_accounts)

    def writable(i: int) -> bool:
        return i < signed - ro_signed if i < signed else i < len(keys) - ro
    return Instruction(keys[ix.program_id_index], ix.data,
                       [AccountMeta(keys[i], msg.is_signer(i), writable(i)) for i in ix.accounts])


def _flag(ix: Instruction, index: int, *, writable: bool) -> Instruction:
    metas = list(ix.accounts)
    metas[index] = AccountMeta(metas[index].pubkey, metas[index].is_signer, writable)
    return Instruction(ix.program_id, ix.data, metas)


def _memo(w: World, program: Pubkey, text: str) -> Instruction:
    return create_memo(MemoParams(program_id=program, signer=w.payer.pubkey(),
                                  message=text.encode()))


def _v0(w: World, tables: list[AddressLookupTableAccount]) -> bytes:
    return to_bytes_versioned(MessageV0.try_compile(
        w.payer.pubkey(), _release_ixs(w), tables, Hash.from_string(w.nonce_value())))


RESHAPE: list[tuple[str, Callable[[World], bytes], str]] = [
    ("extra instruction", lambda w: _compile(w, _release_ixs(w) + [
        _memo(w, r.MEMO_PROGRAM, "hi")]), "5 instructions"),
    ("missing memo", lambda w: _compile(w, _release_ixs(w)[:3]), "3 instructions"),
    ("swapped order", lambda w: _compile(w, [_release_ixs(w)[i] for i in (0, 2, 1, 3)]),
     "programs"),
    ("memo v1", lambda w: _compile(w, _release_ixs(w)[:3] + [
        _memo(w, r.MEMO_V1_PROGRAM, r.release_memo(BURN))]), "programs"),
    ("writable mint", lambda w: _compile(w, _release_ixs(w)[:2] + [
        _flag(_release_ixs(w)[2], 1, writable=True), _release_ixs(w)[3]]), "layout"),
    ("writable multisig", lambda w: _compile(w, _release_ixs(w)[:2] + [
        _flag(_release_ixs(w)[2], 3, writable=True), _release_ixs(w)[3]]), "layout"),
    ("trailing byte", lambda w: w.message() + b"\x00", "canonical"),
    ("v0 message", lambda w: _v0(w, []), "v0"),
    ("v0 with a lookup table", lambda w: _v0(w, [AddressLookupTableAccount(
        STRANGER, [w.mint, w.multisig, w.dest])]), "v0"),
    ("upper-case memo", lambda w: _compile(w, _release_ixs(w)[:3] + [
        _memo(w, r.MEMO_PROGRAM, "ferry release 0x" + "AB" * 32)]), "memo"),
    ("garbage", lambda w: b"\x01\x02", "unparsable"),
]


def test_read_release_reads_back_what_was_built(pure: World) -> None:
    rebuilt = _compile(pure, _release_ixs(pure))
    assert rebuilt == pure.message()
    assert r.read_release(rebuilt).amount == 1234


@pytest.mark.parametrize("name, reshape, complaint", RESHAPE, ids=[t[0] for t in RESHAPE])
def test_read_release_refuses_any_other_layout(
        pure: World, name: str, reshape: Callable[[World], bytes], complaint: str) -> None:
    message = reshape(pure)
    with pytest.raises(ValidationError, match=complaint):
        r.read_release(message)
    with pytest.raises(ValidationError):
        r.check_release_message(message, members=pure.keys(), threshold=3, **pure.args())


BUILD_REFUSALS: list[tuple[str, Callable[[World], dict[str, Any]], str]] = [
    ("zero amount", lambda w: {"amount": 0}, "positive"),
    ("u64 overflow", lambda w: {"amount": 2**64}, "amount"),
    ("bad burn id", lambda w: {"burn_id_hex": "0x1234"}, "burn id"),
    ("dest is the multisig", lambda w: {"dest_owner": w.multisig}, "multisig"),
    ("member is the fee payer", lambda w: {
        "signers": w.keys()[:2] + [bytes(w.payer.pubkey())]}, "coincide"),
    ("duplicate signers", lambda w: {"signers": w.keys()[:2] + w.keys()[:1]}, "distinct"),
    ("seven signers do not fit", lambda w: {
        "signers": [bytes(k.pubkey()) for k in _keypairs(7)]}, "1..6"),
    ("string key", lambda w: {"mint": str(STRANGER)}, "Pubkey"),
]


def test_build_release_message_fits_six_signers() -> None:
    keys = [bytes(k.pubkey()) for k in _keypairs(6)]
    message = r.build_release_message(
        fee_payer=Keypair().pubkey(), nonce_account=STRANGER, nonce_value=Hash(os.urandom(32)),
        multisig=Keypair().pubkey(), mint=r.NATIVE_MINT, decimals=9,
        dest_owner=Keypair().pubkey(), amount=2**64 - 1, burn_id_hex="AB" * 32, signers=keys)
    assert len(message) + 1 + 64 * 7 <= r.PACKET_DATA_SIZE
    assert r.read_release(message).signers == tuple(sorted(keys))


@pytest.mark.parametrize("name, change, complaint", BUILD_REFUSALS,
                         ids=[t[0] for t in BUILD_REFUSALS])
def test_build_release_message_refuses_bad_arguments(
        pure: World, name: str, change: Callable[[World], dict[str, Any]],
        complaint: str) -> None:
    args = pure.args() | {"signers": pure.keys()[:3]} | change(pure)
    with pytest.raises(ValidationError, match=complaint):
        r.build_release_message(nonce_value=Hash.from_string(pure.nonce_value()), **args)


# ------------------------------------------------------------------ signers, memo, small parts


K = [bytes([i]) * 32 for i in range(1, 6)]


@pytest.mark.parametrize("members, m, avoid, chosen", [
    ([K[2], K[0], K[1]], 2, (), [K[0], K[1]]),
    (K, 3, {K[0]}, [K[1], K[2], K[3]]),
    (K, 3, {K[1], K[3]}, [K[0], K[2], K[4]]),
    (K, 3, [K[0], K[1], K[2]], [K[0], K[3], K[4]]),  # too few left: avoided ones fill in...
    (K, 3, [K[2], K[0], K[1]], [K[2], K[3], K[4]]),  # ...least recently missed first
    (K, 3, list(K), [K[0], K[1], K[2]]),
    (K[:2], 2, {K[0]}, [K[0], K[1]]),
])
def test_choose_signers_skips_avoided_members_when_enough_remain(
        members: list[bytes], m: int, avoid: Any, chosen: list[bytes]) -> None:
    assert r.choose_signers(members, m, avoid) == chosen


@pytest.mark.parametrize("members, m", [
    (K[:2], 3), (K, 0), ([K[0], K[0]], 1), ([b"\x01" * 31], 1), (K, True), (["ab" * 16], 1)])
def test_choose_signers_refuses_bad_members_or_threshold(members: list[bytes], m: int) -> None:
    with pytest.raises(ValidationError):
        r.choose_signers(members, m)


@pytest.mark.parametrize("burn_id, memo", [
    ("0x" + "ab" * 32, "ferry release 0x" + "ab" * 32),
    ("AB" * 32, "ferry release 0x" + "ab" * 32),
])
def test_release_memo_is_lowercase_0x_hex(burn_id: str, memo: str) -> None:
    assert r.release_memo(burn_id) == memo


@pytest.mark.parametrize("burn_id", ["0x" + "ab" * 31, "ab" * 33, "0x" + "zz" * 32, ""])
def test_release_memo_refuses_other_than_32_bytes_of_hex(burn_id: str) -> None:
    with pytest.raises(ValidationError):
        r.release_memo(burn_id)


def test_escrow_ata_is_the_classic_token_ata_of_the_multisig() -> None:
    owner, mint = Keypair().pubkey(), Keypair().pubkey()
    expected, _ = Pubkey.find_program_address(
        [bytes(owner), bytes(r.TOKEN_PROGRAM), bytes(mint)], r.ATA_PROGRAM)
    assert r.escrow_ata(owner, mint) == expected
    assert r.escrow_ata(owner, mint) != ti.get_associated_token_address(
        owner, mint, r.TOKEN_2022_PROGRAM)


def test_verify_signature_accepts_only_the_signers_signature_of_these_bytes() -> None:
    key, other = Keypair(), Keypair()
    sig = bytes(key.sign_message(b"release"))
    assert r.verify_signature(b"release", bytes(key.pubkey()), sig)
    assert not r.verify_signature(b"release!", bytes(key.pubkey()), sig)
    assert not r.verify_signature(b"release", bytes(other.pubkey()), sig)
    assert not r.verify_signature(b"release", bytes(key.pubkey()), sig[:63])


def test_tx_signature_refuses_bytes_that_are_not_a_transaction() -> None:
    with pytest.raises(ValidationError):
        r.tx_signature(b"\x01\x02")


def _plain_tx(ixs: list[Instruction]) -> Transaction:
    return Transaction.new_signed_with_payer(ixs, PAYER.pubkey(), [PAYER], Hash(os.urandom(32)))


def test_durable_nonce_and_memo_of_a_release(pure: World) -> None:
    message = pure.message()
    raw = r.assemble(message, pure.sign(message, r.choose_signers(pure.keys(), 3)), pure.payer)
    for tx in (Transaction.from_bytes(raw), VersionedTransaction.from_bytes(raw)):
        assert r.durable_nonce_of(tx) == pure.nonce_value()
        assert r.durable_nonce_of(tx, nonce_account=pure.nonce) == pure.nonce_value()
        assert r.durable_nonce_of(tx, nonce_account=STRANGER) is None  # advances another one
        assert r.memo_of(tx) == r.release_memo(BURN)


def _compiled_tx(accounts: bytes, data: bytes = b"\x04\0\0\0", readonly: int = 0) -> Transaction:
    """Fee payer, a nonce-like account, then the System program; instruction 0 as given."""
    msg = Message.new_with_compiled_instructions(
        1, 0, 1 + readonly, [PAYER.pubkey(), STRANGER, r.SYSTEM_PROGRAM], Hash(bytes(32)),
        [CompiledInstruction(2, data, accounts)])
    return Transaction.populate(msg, [Signature.default()])


@pytest.mark.parametrize("tx, value", [
    (_compiled_tx(bytes([1])), str(Hash(bytes(32)))),
    (_compiled_tx(bytes([1]), data=b"\x04\0\0\0\x09"), str(Hash(bytes(32)))),
    (_compiled_tx(bytes([1]), readonly=1), None),  # the nonce account is readonly
    (_compiled_tx(b""), None),  # no accounts (solders' uses_durable_nonce says yes)
    (_compiled_tx(bytes([7])), None),  # index past the keys
    (_compiled_tx(bytes([1]), data=b"\x05\0\0\0"), None),  # another System instruction
])
def test_durable_nonce_of_follows_the_runtime_rule(tx: Transaction, value: str | None) -> None:
    assert r.durable_nonce_of(tx) == value


def test_durable_nonce_and_memo_of_other_transactions() -> None:
    payer = PAYER.pubkey()
    transfer = sp.transfer(sp.TransferParams(from_pubkey=payer, to_pubkey=STRANGER, lamports=1))
    nonce_second = _plain_tx([transfer, sp.advance_nonce_account(sp.AdvanceNonceAccountParams(
        nonce_pubkey=STRANGER, authorized_pubkey=payer))])
    memo_v1 = create_memo(MemoParams(program_id=r.MEMO_V1_PROGRAM, signer=payer,
                                     message=b"one"))
    memo_v2 = create_memo(MemoParams(program_id=r.MEMO_PROGRAM, signer=payer, message=b"two"))
    assert r.durable_nonce_of(_plain_tx([transfer])) is None
    assert r.durable_nonce_of(nonce_second) is None
    assert r.memo_of(_plain_tx([transfer])) is None
    assert r.memo_of(_plain_tx([memo_v1])) == "one"
    assert r.memo_of(_plain_tx([memo_v1, transfer, memo_v2])) == "one; two"


def _nonce_data(version: int, state: int, size: int = 80) -> bytes:
    body = version.to_bytes(4, "little") + state.to_bytes(4, "little") + bytes(range(72))
    return body[:size]


def test_decode_nonce_account_reads_authority_and_value(pure: World) -> None:
    authority, value = r.decode_nonce_account(_data(pure.svm, pure.nonce))
    assert authority == str(pure.payer.pubkey())
    assert value == pure.nonce_value() != str(pure.svm.latest_blockhash())
    assert r.decode_nonce_account(_nonce_data(1, 1)) == (
        str(Pubkey(bytes(range(32)))), str(Hash(bytes(range(32, 64)))))


@pytest.mark.parametrize("data", [
    _nonce_data(1, 0), _nonce_data(0, 1), _nonce_data(1, 1, 79), _nonce_data(1, 1) + b"\x00"])
def test_decode_nonce_account_refuses_other_accounts(data: bytes) -> None:
    with pytest.raises(ValidationError):
        r.decode_nonce_account(data)


def test_decode_multisig_reads_threshold_and_members(pure: World) -> None:
    m, keys = r.decode_multisig(_data(pure.svm, pure.multisig))
    assert (m, keys) == (3, tuple(pure.keys()))


@pytest.mark.parametrize("data", [
    bytes([2, 3, 0]) + bytes(352),  # not initialized
    bytes([4, 3, 1]) + bytes(352),  # m > n
    bytes([0, 3, 1]) + bytes(352),  # m = 0
    bytes([2, 12, 1]) + bytes(352),  # n > 11
    bytes([2, 3, 1]) + bytes(351),  # short
])
def test_decode_multisig_refuses_other_accounts(data: bytes) -> None:
    with pytest.raises(ValidationError):
        r.decode_multisig(data)
