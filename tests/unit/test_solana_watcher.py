"""Deposits on Solana: which transfers into the multisig's token accounts are credited and
which are reported (and why), decoded from transactions built here with solders and spl-token
instruction builders, as ``getTransaction`` (base64) would return them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    EncodedTransactionWithStatusMeta,
    InstructionErrorCustom,
    TransactionErrorInstructionError,
    UiLoadedAddresses,
    UiTransactionStatusMeta,
)
from spl.token.instructions import transfer, transfer_checked
from spl.token.models import TransferCheckedParams, TransferParams

from adapters.base import TxStatus
from adapters.solana import watcher
from adapters.solana.finality import finalized_slot, tx_status
from adapters.solana.watcher import (
    BAD_MEMO,
    DUST,
    FAILED_TX,
    NO_RECIPIENT,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    UNCHECKED_TRANSFER,
    UNKNOWN_MINT,
    EscrowAccount,
    deposit_nonce,
    deposits,
    fetched_tx,
    from_encoded,
)

CHAIN = "solana:ferrytestgenesis00000000000000"
MEMO_V2 = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
MEMO_V1 = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")
MULTISIG = Pubkey.from_string("7Np41oeYqPefeNQEHSv1UDhYrehxin3NStELsSKCT4K2")
MINT = Pubkey.from_string("9wFFyRfZBsuAha4YcuxcXLKwMxJR43S7fPfQLusDBzvT")
NATIVE_MINT = Pubkey.from_string("So11111111111111111111111111111111111111112")
OTHER_MINT = Pubkey.from_string("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")
ESCROW = get_associated_token_address(MULTISIG, MINT)
ESCROW_SOL = get_associated_token_address(MULTISIG, NATIVE_MINT)
ESCROW_OTHER = get_associated_token_address(MULTISIG, OTHER_MINT)  # unconfigured mint
ESCROW_2022 = get_associated_token_address(MULTISIG, MINT, TOKEN_2022_PROGRAM)
NON_ATA = Pubkey.from_string("8qbHbw2BbbTHBW1sbeqakYXVKRQM8Ne7pLK7m6CVfeR")  # owned, not ATA
ACCOUNTS = {
    str(ESCROW): EscrowAccount(str(MINT), str(TOKEN_PROGRAM)),
    str(ESCROW_SOL): EscrowAccount(str(NATIVE_MINT), str(TOKEN_PROGRAM)),
    str(ESCROW_OTHER): EscrowAccount(str(OTHER_MINT), str(TOKEN_PROGRAM)),
    str(ESCROW_2022): EscrowAccount(str(MINT), str(TOKEN_2022_PROGRAM)),
    str(NON_ATA): EscrowAccount(str(MINT), str(TOKEN_PROGRAM)),
}
MIN_DEPOSIT = {str(MINT): 1_000, str(NATIVE_MINT): 10_000}
ACCOUNT = bytes(range(32))
MEMO = "0x" + ACCOUNT.hex()
USER = Keypair.from_seed(bytes([7]) * 32)
USER_ATA = get_associated_token_address(USER.pubkey(), MINT)
BLOCKHASH = Hash.new_unique()


def checked(amount: int, dest: Pubkey = ESCROW, mint: Pubkey = MINT,
            program: Pubkey = TOKEN_PROGRAM) -> Instruction:
    return transfer_checked(TransferCheckedParams(
        program_id=program, source=USER_ATA, mint=mint, dest=dest, owner=USER.pubkey(),
        amount=amount, decimals=6))


def plain(amount: int, dest: Pubkey = ESCROW) -> Instruction:
    return transfer(TransferParams(program_id=TOKEN_PROGRAM, source=USER_ATA, dest=dest,
                                   owner=USER.pubkey(), amount=amount))


def memo(text: str | bytes, program: Pubkey = MEMO_V2) -> Instruction:
    return Instruction(program, text.encode() if isinstance(text, str) else text, [])


def signed(ixs: Sequence[Instruction]) -> Transaction:
    return Transaction([USER], Message.new_with_blockhash(ixs, USER.pubkey(), BLOCKHASH),
                       BLOCKHASH)


def events(*ixs: Instruction, failed: bool = False, slot: int = 42) -> list:
    tx = fetched_tx(signed(ixs), slot=slot, block_hash=str(BLOCKHASH), failed=failed)
    return deposits([tx], chain=CHAIN, multisig=str(MULTISIG), escrow_accounts=ACCOUNTS,
                    min_deposit=MIN_DEPOSIT)


def test_transfer_checked_with_one_memo_is_credited_to_the_memo_account() -> None:
    tx = signed([memo(MEMO), checked(5_000)])
    [e] = deposits([fetched_tx(tx, slot=42, block_hash=str(BLOCKHASH), failed=False)],
                   chain=CHAIN, multisig=str(MULTISIG), escrow_accounts=ACCOUNTS,
                   min_deposit=MIN_DEPOSIT)
    assert e.uncredited is None and e.recipient == ACCOUNT
    assert (e.chain, e.contract, e.token, e.sender, e.amount) == (
        CHAIN, str(MULTISIG), str(MINT), str(USER.pubkey()), 5_000)
    assert (e.tx_hash, e.log_index, e.block_number, e.block_hash) == (
        str(tx.signatures[0]), 1, 42, str(BLOCKHASH))
    assert e.nonce == int.from_bytes(bytes(tx.signatures[0])[:28] + (1).to_bytes(4, "big"),
                                     "big")


def test_wrapped_sol_and_memo_v1_are_credited() -> None:
    [e] = events(checked(20_000, ESCROW_SOL, NATIVE_MINT), memo(MEMO, MEMO_V1))
    assert e.uncredited is None and e.token == str(NATIVE_MINT) and e.amount == 20_000


@pytest.mark.parametrize(("ixs", "failed", "reason"), [
    ((memo(MEMO), checked(5_000)), True, FAILED_TX),
    ((memo(MEMO), plain(5_000, ESCROW_OTHER)), True, FAILED_TX),
    ((checked(5_000),), False, BAD_MEMO),
    ((memo(MEMO), memo(MEMO), checked(5_000)), False, BAD_MEMO),
    ((memo(MEMO), memo(MEMO, MEMO_V1), checked(5_000)), False, BAD_MEMO),
    ((memo("for " + MEMO), checked(5_000)), False, BAD_MEMO),
    ((memo("0x" + "ab" * 31), checked(5_000)), False, BAD_MEMO),
    ((memo(b"\xff" * 34), checked(5_000)), False, BAD_MEMO),
    ((memo(MEMO), checked(5_000, ESCROW_OTHER, OTHER_MINT)), False, UNKNOWN_MINT),
    ((memo(MEMO), checked(5_000, ESCROW_2022, MINT, TOKEN_2022_PROGRAM)), False, UNKNOWN_MINT),
    ((memo(MEMO), checked(5_000, NON_ATA)), False, UNKNOWN_MINT),
    ((memo(MEMO), plain(5_000)), False, UNCHECKED_TRANSFER),
    ((memo(MEMO), checked(999)), False, DUST),
    ((memo(MEMO), checked(9_999, ESCROW_SOL, NATIVE_MINT)), False, DUST),
])
def test_transfers_into_the_escrow_that_are_reported_not_credited(
        ixs: tuple[Instruction, ...], failed: bool, reason: str) -> None:
    [e] = events(*ixs, failed=failed)
    assert e.uncredited == reason and e.recipient == NO_RECIPIENT
    assert e.amount in (999, 5_000, 9_999)


def test_boundary_amount_equal_to_min_deposit_is_credited() -> None:
    [e] = events(memo(MEMO), checked(1_000))
    assert e.uncredited is None


def test_transfers_elsewhere_and_other_instructions_are_ignored() -> None:
    stranger = Keypair().pubkey()
    assert events(memo(MEMO), checked(5_000, stranger)) == []
    assert events(memo(MEMO)) == []
    assert events(Instruction(TOKEN_PROGRAM, bytes([12]), [])) == []  # malformed: no accounts


def test_several_transfers_in_one_transaction_are_numbered_by_instruction() -> None:
    found = events(checked(2_000), memo(MEMO), checked(3_000, ESCROW_SOL, NATIVE_MINT))
    assert [(e.log_index, e.amount, e.uncredited) for e in found] == [
        (0, 2_000, None), (2, 3_000, DUST)]
    assert len({e.nonce for e in found}) == 2


def test_events_are_ordered_by_slot_then_signature_and_duplicates_dropped() -> None:
    txs = []
    for slot, amount in ((9, 1_001), (5, 1_002), (5, 1_003)):
        tx = signed([memo(MEMO), checked(amount)])
        txs.append(fetched_tx(tx, slot=slot, block_hash=str(BLOCKHASH), failed=False))
    found = deposits(txs + txs[:1], chain=CHAIN, multisig=str(MULTISIG),
                     escrow_accounts=ACCOUNTS, min_deposit=MIN_DEPOSIT)
    assert [(e.block_number, e.tx_hash) for e in found] == sorted(
        (t.slot, t.signature) for t in txs)


def test_from_encoded_reads_a_v0_message_with_loaded_addresses() -> None:
    # The escrow ATA arrives through an address lookup table (loaded writable address).
    from solders.instruction import CompiledInstruction
    from solders.message import MessageAddressTableLookup, MessageHeader

    keys = [USER.pubkey(), USER_ATA, MINT, TOKEN_PROGRAM, MEMO_V2]
    loaded_escrow_index = len(keys)
    data = bytes(checked(5_000).data)
    ixs = [CompiledInstruction(4, MEMO.encode(), b""),
           CompiledInstruction(3, data, bytes([1, 2, loaded_escrow_index, 0]))]
    message = MessageV0(MessageHeader(1, 0, 3), keys, BLOCKHASH, ixs,
                        [MessageAddressTableLookup(Keypair().pubkey(), bytes([0]), b"")])
    tx = VersionedTransaction(message, [USER])
    meta = UiTransactionStatusMeta(None, 5000, [], [],
                                   loaded_addresses=UiLoadedAddresses([ESCROW], []))
    encoded = EncodedConfirmedTransactionWithStatusMeta(
        77, EncodedTransactionWithStatusMeta(tx, meta, 0))
    fetched = from_encoded(encoded, str(BLOCKHASH))
    assert fetched.slot == 77 and fetched.signature == str(tx.signatures[0])
    [e] = deposits([fetched], chain=CHAIN, multisig=str(MULTISIG), escrow_accounts=ACCOUNTS,
                   min_deposit=MIN_DEPOSIT)
    assert e.uncredited is None and e.amount == 5_000 and e.log_index == 1


def test_from_encoded_marks_a_failed_transaction_and_refuses_a_missing_meta() -> None:
    tx = VersionedTransaction.from_legacy(signed([memo(MEMO), checked(5_000)]))
    err = TransactionErrorInstructionError(1, InstructionErrorCustom(1))
    meta = UiTransactionStatusMeta(err, 5000, [], [])
    failed = from_encoded(EncodedConfirmedTransactionWithStatusMeta(
        3, EncodedTransactionWithStatusMeta(tx, meta, None)), str(BLOCKHASH))
    assert failed.failed
    [e] = deposits([failed], chain=CHAIN, multisig=str(MULTISIG), escrow_accounts=ACCOUNTS,
                   min_deposit=MIN_DEPOSIT)
    assert e.uncredited == FAILED_TX
    with pytest.raises(ValueError, match="no status meta"):
        from_encoded(EncodedConfirmedTransactionWithStatusMeta(
            3, EncodedTransactionWithStatusMeta(tx, None, None)), str(BLOCKHASH))


def test_deposit_nonce_and_memo_account() -> None:
    sig = signed([memo(MEMO)]).signatures[0]
    assert deposit_nonce(str(sig), 0) >> 32 == int.from_bytes(bytes(sig)[:28], "big")
    assert deposit_nonce(str(sig), 3) & 0xFFFFFFFF == 3
    assert watcher.memo_account(" " + MEMO.upper().replace("0X", "0x") + "\n") == ACCOUNT
    assert watcher.memo_account("0x" + "g" * 64) is None


@pytest.mark.parametrize(("slot", "failed", "rooted", "expected"), [
    (None, False, False, TxStatus.UNKNOWN),
    (100, False, False, TxStatus.INCLUDED),
    (100, True, False, TxStatus.INCLUDED),   # a failure not yet final may still be undone
    (100, False, True, TxStatus.FINAL),
    (100, True, True, TxStatus.FAILED),
    (101, False, True, TxStatus.INCLUDED),   # above finalized - depth
])
def test_tx_status_is_final_only_at_finalized(slot: int | None, failed: bool, rooted: bool,
                                              expected: TxStatus) -> None:
    assert tx_status(slot=slot, failed=failed, rooted=rooted, finalized=102,
                     confirmation_depth=2) == expected


def test_finalized_slot_subtracts_the_depth_and_floors_at_zero() -> None:
    assert finalized_slot(100, 0) == 100 and finalized_slot(100, 8) == 92
    assert finalized_slot(3, 8) == 0
    with pytest.raises(ValueError):
        finalized_slot(-1, 0)


def test_consumed_nonce_requires_advance_nonce_of_this_account_first() -> None:
    from solders.system_program import AdvanceNonceAccountParams, advance_nonce_account

    nonce, other = Keypair().pubkey(), Keypair().pubkey()

    def advancing(account: Pubkey, *rest: Instruction) -> watcher.FetchedTx:
        ix = advance_nonce_account(AdvanceNonceAccountParams(
            nonce_pubkey=account, authorized_pubkey=USER.pubkey()))
        return fetched_tx(signed([ix, *rest]), slot=1, block_hash="", failed=False)

    assert watcher.consumed_nonce(advancing(nonce, memo(MEMO)), str(nonce)) == str(BLOCKHASH)
    assert watcher.consumed_nonce(advancing(other), str(nonce)) is None  # same value, other acct
    later = advance_nonce_account(AdvanceNonceAccountParams(
        nonce_pubkey=nonce, authorized_pubkey=USER.pubkey()))
    not_first = fetched_tx(signed([memo(MEMO), later]), slot=1, block_hash="", failed=False)
    assert watcher.consumed_nonce(not_first, str(nonce)) is None
    assert watcher.consumed_nonce(fetched_tx(signed([memo(MEMO)]), slot=1, block_hash="",
                                             failed=False), str(nonce)) is None
