"""Decode fetched Solana transactions into Ferry deposit events: pure, no network.

Owns: what counts as a deposit to the escrow (notes/DESIGN-solana.md "Identity on Solana").
Must not talk to a node: `adapters.solana.adapter` fetches, at ``finalized`` commitment, the
token accounts the multisig owns (both token programs), their signatures in a slot range and
each transaction (``getTransaction`` base64), then calls `deposits`.

Rules, per transaction, over its top-level instructions (``instructions`` of the message; the
account list of a v0 message is its static keys then the loaded writable, then the loaded
readonly addresses, as the runtime orders them):

- a transfer into the escrow is an SPL Token ``Transfer`` (tag 3) or ``TransferChecked`` (tag
  12) of the classic Token or Token-2022 program whose destination is a token account the
  multisig owns (`EscrowAccount`); each is one event, numbered by its instruction index;
- it is credited only if the transaction succeeded, it is a classic-Token ``TransferChecked``
  into ATA(multisig, mint) of a configured mint, the transaction has exactly one Memo
  instruction (Memo v2 or v1) whose UTF-8 text is the ledger account ``0x`` + 64 hex, and the
  amount is at least the mint's ``min_deposit``;
- otherwise it is reported (``LockEvent.uncredited``, recipient 32 zero bytes), with the first
  reason that applies, in this order: ``failed_tx`` (``meta.err`` set), ``unknown_mint`` (a
  Token-2022 transfer, a mint not configured, or a multisig-owned account that is not the
  mint's escrow ATA), ``unchecked_transfer`` (a plain ``Transfer``), ``bad_memo`` (no memo,
  several, or not an account), ``dust``.

Not seen (a known limit): transfers made by another program through CPI (inner instructions).

Instruction layouts: SPL Token ``TokenInstruction`` (spl-token 4.x ``instruction.rs``):
``Transfer`` = ``[3] amount:u64le``, accounts (source, destination, authority, signers...);
``TransferChecked`` = ``[12] amount:u64le decimals:u8``, accounts (source, mint, destination,
authority, signers...). Memo: the instruction data is the memo text (spl-memo).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from solders.instruction import CompiledInstruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.token.associated import get_associated_token_address
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_status import EncodedConfirmedTransactionWithStatusMeta

from adapters.base import LockEvent

TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
MEMO_PROGRAMS = frozenset({
    Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"),  # spl-memo v2 (v3.0)
    Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo"),  # spl-memo v1
})
NO_RECIPIENT = bytes(32)
FAILED_TX, BAD_MEMO, UNKNOWN_MINT = "failed_tx", "bad_memo", "unknown_mint"
UNCHECKED_TRANSFER, DUST = "unchecked_transfer", "dust"
_TRANSFER, _TRANSFER_CHECKED = 3, 12
_ADVANCE_NONCE = (4).to_bytes(4, "little")  # SystemInstruction::AdvanceNonceAccount
_ACCOUNT = re.compile(r"^0x[0-9a-fA-F]{64}$")


@dataclass(frozen=True, slots=True)
class EscrowAccount:
    """A token account the multisig owns, as ``getTokenAccountsByOwner`` showed it.

    Attributes:
        mint: the account's mint (base58).
        program: the token program that owns the account (base58): classic or Token-2022.
    """

    mint: str
    program: str


@dataclass(frozen=True, slots=True)
class FetchedTx:
    """One transaction as the watcher needs it.

    Attributes:
        signature: its first signature (base58; the transaction id).
        slot: the slot it was processed in. block_hash: that slot's blockhash (base58).
        account_keys: the message's full account list (static keys, then the addresses a v0
            message loads from lookup tables: writable, then readonly).
        instructions: its top-level compiled instructions, in order.
        failed: ``meta.err`` is set (it moved nothing; fees and a durable nonce aside).
        recent_blockhash: the message's blockhash (base58): a durable nonce value if
            instruction 0 advances a nonce account (`consumed_nonce`).
    """

    signature: str
    slot: int
    block_hash: str
    account_keys: tuple[Pubkey, ...]
    instructions: tuple[CompiledInstruction, ...]
    failed: bool
    recent_blockhash: str = ""


def fetched_tx(tx: Transaction | VersionedTransaction, *, slot: int, block_hash: str,
               failed: bool, loaded_writable: Iterable[Pubkey] = (),
               loaded_readonly: Iterable[Pubkey] = ()) -> FetchedTx:
    """A `FetchedTx` from a decoded transaction and its status.

    Args:
        tx: the transaction (legacy or versioned).
        slot, block_hash: where it sits. failed: its ``meta.err`` is set.
        loaded_writable, loaded_readonly: ``meta.loadedAddresses`` of a v0 message.

    Raises:
        ValueError: the transaction has no signature.
    """
    message = tx.message
    if not tx.signatures:
        raise ValueError("transaction without a signature")
    keys = tuple(message.account_keys)
    if isinstance(message, MessageV0):
        keys += tuple(loaded_writable) + tuple(loaded_readonly)
    return FetchedTx(signature=str(tx.signatures[0]), slot=slot, block_hash=block_hash,
                     account_keys=keys, instructions=tuple(message.instructions),
                     failed=failed, recent_blockhash=str(message.recent_blockhash))


def from_encoded(encoded: EncodedConfirmedTransactionWithStatusMeta,
                 block_hash: str) -> FetchedTx:
    """A `FetchedTx` from a ``getTransaction`` answer in ``base64`` (or ``base58``) encoding.

    Args:
        encoded: solders' parse of the RPC ``result``.
        block_hash: the blockhash of ``encoded.slot`` (base58), read separately.

    Raises:
        ValueError: the answer has no status meta or is not in a binary encoding (json).
    """
    inner = encoded.transaction
    meta = inner.meta
    tx = inner.transaction
    if meta is None:
        raise ValueError(f"transaction at slot {encoded.slot} has no status meta")
    if not isinstance(tx, VersionedTransaction):
        raise ValueError("getTransaction answer is not in a binary encoding")  # noqa: TRY004
    loaded = meta.loaded_addresses
    return fetched_tx(tx, slot=encoded.slot, block_hash=block_hash, failed=meta.err is not None,
                      loaded_writable=() if loaded is None else _keys(loaded.writable),
                      loaded_readonly=() if loaded is None else _keys(loaded.readonly))


def consumed_nonce(tx: FetchedTx, nonce_account: str) -> str | None:
    """SECURITY: the durable nonce value `tx` consumed of `nonce_account`: its recent_blockhash
    if instruction 0 is System ``AdvanceNonceAccount`` (bincode tag 4, u32 LE) of exactly that
    account (as the runtime requires of a durable-nonce transaction), else None. Another
    nonce account may hold the same value (values derive from blockhashes), so the account is
    checked, not just the blockhash."""
    if not tx.instructions:
        return None
    first = tx.instructions[0]
    accounts = bytes(first.accounts)
    if (_key(tx, first.program_id_index) != SYSTEM_PROGRAM
            or bytes(first.data)[:4] != _ADVANCE_NONCE or not accounts
            or _key(tx, accounts[0]) != Pubkey.from_string(nonce_account)):
        return None
    return tx.recent_blockhash


def deposit_nonce(signature: str, index: int) -> int:
    """Stable id of the transfer at instruction `index` of transaction `signature` (base58):
    the first 28 bytes of the 64-byte signature then the index as 4 big-endian bytes, as one
    256-bit integer."""
    return int.from_bytes(bytes(Signature.from_string(signature))[:28] + index.to_bytes(4, "big"),
                          "big")


def memo_account(memo: str) -> bytes | None:
    """The 32-byte ledger account a memo names (``0x`` + 64 hex, surrounding whitespace
    ignored), or None if it names none exactly."""
    text = memo.strip()
    return bytes.fromhex(text[2:]) if _ACCOUNT.match(text) else None


def deposits(txs: Iterable[FetchedTx], *, chain: str, multisig: str,
             escrow_accounts: Mapping[str, EscrowAccount],
             min_deposit: Mapping[str, int]) -> list[LockEvent]:
    """Transfers into the multisig's token accounts, credited and reported, in (slot,
    signature, instruction index) order. A transaction given twice yields its events once.

    Args:
        txs: the fetched transactions (any order).
        chain: CAIP-2 id. multisig: the SPL Token multisig (base58), the events' contract.
        escrow_accounts: every token account the multisig owns (base58 address -> its mint
            and program), configured mint or not.
        min_deposit: configured mint (base58) -> smallest creditable amount (base units).
    """
    owner = Pubkey.from_string(multisig)
    escrows = {mint: str(get_associated_token_address(owner, Pubkey.from_string(mint)))
               for mint in min_deposit}
    events: list[LockEvent] = []
    seen: set[str] = set()
    for tx in sorted(txs, key=lambda t: (t.slot, t.signature)):
        if tx.signature in seen:
            continue
        seen.add(tx.signature)
        memos = [_text(ix.data) for ix in tx.instructions
                 if _key(tx, ix.program_id_index) in MEMO_PROGRAMS]
        account = memo_account(memos[0]) if len(memos) == 1 and memos[0] is not None else None
        for index, ix in enumerate(tx.instructions):
            transfer = _transfer(tx, ix)
            if transfer is None:
                continue
            program, tag, destination, mint_key, authority, amount = transfer
            held = escrow_accounts.get(destination)
            if held is None:
                continue
            reason = _reason(tx, program, tag, destination, mint_key, held, escrows, account,
                             amount, min_deposit)
            events.append(LockEvent(
                chain=chain, contract=multisig, nonce=deposit_nonce(tx.signature, index),
                token=held.mint, sender=authority, amount=amount,
                recipient=account if reason is None and account is not None else NO_RECIPIENT,
                tx_hash=tx.signature, log_index=index, block_number=tx.slot,
                block_hash=tx.block_hash, uncredited=reason))
    return events


def _reason(tx: FetchedTx, program: Pubkey, tag: int, destination: str, mint_key: str | None,
            held: EscrowAccount, escrows: Mapping[str, str], account: bytes | None,
            amount: int, min_deposit: Mapping[str, int]) -> str | None:
    """Why this transfer into `destination` is not credited (module docstring), or None."""
    if tx.failed:
        return FAILED_TX
    if (program != TOKEN_PROGRAM or held.program != str(TOKEN_PROGRAM)
            or held.mint not in min_deposit or escrows.get(held.mint) != destination
            or (mint_key is not None and mint_key != held.mint)):
        return UNKNOWN_MINT
    if tag != _TRANSFER_CHECKED:
        return UNCHECKED_TRANSFER
    if account is None:
        return BAD_MEMO
    if amount < min_deposit[held.mint]:
        return DUST
    return None


def _transfer(tx: FetchedTx, ix: CompiledInstruction
              ) -> tuple[Pubkey, int, str, str | None, str, int] | None:
    """(program, tag, destination, mint or None, authority, amount) of a token ``Transfer`` or
    ``TransferChecked``, else None (also for malformed data or account lists)."""
    program = _key(tx, ix.program_id_index)
    if program not in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM) or not ix.data:
        return None
    data, accounts = bytes(ix.data), bytes(ix.accounts)
    tag = data[0]
    if tag == _TRANSFER and len(data) >= 9 and len(accounts) >= 3:
        dest, mint, authority = _key(tx, accounts[1]), None, _key(tx, accounts[2])
    elif tag == _TRANSFER_CHECKED and len(data) >= 10 and len(accounts) >= 4:
        dest, mint, authority = (_key(tx, accounts[2]), _key(tx, accounts[1]),
                                 _key(tx, accounts[3]))
    else:
        return None
    if dest is None or authority is None:
        return None
    return (program, tag, str(dest), None if mint is None else str(mint), str(authority),
            int.from_bytes(data[1:9], "little"))


def _key(tx: FetchedTx, index: int) -> Pubkey | None:
    return tx.account_keys[index] if index < len(tx.account_keys) else None


def _text(data: bytes) -> str | None:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _keys(values: Iterable[object]) -> tuple[Pubkey, ...]:
    return tuple(v if isinstance(v, Pubkey) else Pubkey.from_string(str(v)) for v in values)
