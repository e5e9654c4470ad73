"""JSON shapes of the LiteSVM devnet's JSON-RPC replies, and the SPL byte layouts it reads.

A test tool: part of the devnet server (`adapters.solana.devnet_rpc`). Owns: base58, account
encodings (UiAccount), transaction encodings (json / base64 / base58 UiTransaction), status
meta pieces (errors, inner instructions, token balances, memos) as Solana's RPC writes them
(https://solana.com/docs/rpc/json-structures). Must not hold state, lock, or speak HTTP; must
not be used by the bridge's own adapter (which decodes with solders).
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

from solders.account import Account
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult

TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
TOKEN_PROGRAMS = frozenset({TOKEN_PROGRAM, TOKEN_2022_PROGRAM})
MEMO_PROGRAMS = frozenset({Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"),
                           Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")})
TOKEN_ACCOUNT_LEN = 165  # spl_token::state::Account::LEN
MINT_LEN = 82  # spl_token::state::Mint::LEN
_ACCOUNT_TYPE_ACCOUNT = 2  # Token-2022 AccountType byte at offset 165 of an extended account
_ACCOUNT_TYPE_MINT = 1

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

# Display text of common TransactionErrors (solana-sdk `impl Display for TransactionError`).
_ERR_TEXT = {
    "BlockhashNotFound": "Blockhash not found",
    "AlreadyProcessed": "This transaction has already been processed",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "SignatureFailure": "Transaction did not pass signature verification",
}


def b58encode(data: bytes) -> str:
    """Bitcoin-alphabet base58 of `data` (leading zero bytes become ``1``)."""
    num = int.from_bytes(data, "big")
    out = []
    while num:
        num, rem = divmod(num, 58)
        out.append(_B58[rem])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Inverse of `b58encode`. Raises ValueError on a character outside the alphabet."""
    num = 0
    for char in text:
        num = num * 58 + _B58.index(char)  # ValueError if not base58
    body = num.to_bytes((num.bit_length() + 7) // 8, "big")
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + body


# ------------------------------------------------------------------------------ accounts


def ui_account(account: Account, encoding: str, data_slice: dict[str, int] | None) -> dict[str, Any]:
    """UiAccount of `account` (https://solana.com/docs/rpc/json-structures).

    Args:
        encoding: ``base64``, ``base58`` or ``binary`` (legacy bare base58 string).
        data_slice: optional ``{"offset": int, "length": int}`` cut of the data.
    """
    data = bytes(account.data)
    if data_slice is not None:
        offset = int(data_slice.get("offset", 0))
        data = data[offset:offset + int(data_slice.get("length", len(data)))]
    encoded: Any
    if encoding == "base64":
        encoded = [base64.b64encode(data).decode(), "base64"]
    elif encoding == "base58":
        encoded = [b58encode(data), "base58"]
    else:
        encoded = b58encode(data)
    return {"data": encoded, "executable": account.executable, "lamports": account.lamports,
            "owner": str(account.owner), "rentEpoch": account.rent_epoch,
            "space": len(account.data)}


def is_token_account(account: Account | None) -> bool:
    """True if `account` is an SPL Token (or Token-2022) token account, not a mint or multisig."""
    if account is None or account.owner not in TOKEN_PROGRAMS:
        return False
    data = account.data
    if len(data) == TOKEN_ACCOUNT_LEN:
        return True
    return (account.owner == TOKEN_2022_PROGRAM and len(data) > TOKEN_ACCOUNT_LEN
            and data[TOKEN_ACCOUNT_LEN] == _ACCOUNT_TYPE_ACCOUNT)


def token_account_fields(account: Account) -> tuple[Pubkey, Pubkey, int]:
    """(mint, owner, amount) of a token account (layout: mint 0..32, owner 32..64, u64 LE)."""
    data = bytes(account.data)
    return Pubkey(data[0:32]), Pubkey(data[32:64]), int.from_bytes(data[64:72], "little")


def mint_decimals(account: Account | None) -> int | None:
    """Decimals of an SPL mint (byte 44), or None if `account` is not an initialized mint."""
    if account is None or account.owner not in TOKEN_PROGRAMS:
        return None
    data = account.data
    is_mint = len(data) == MINT_LEN or (
        account.owner == TOKEN_2022_PROGRAM and len(data) > TOKEN_ACCOUNT_LEN
        and data[TOKEN_ACCOUNT_LEN] == _ACCOUNT_TYPE_MINT)
    if not is_mint or data[45] != 1:  # is_initialized
        return None
    return int(data[44])


def ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    """UiTokenAmount: amount (base units, string), decimals, uiAmount (float), uiAmountString."""
    text = format(Decimal(amount).scaleb(-decimals), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return {"amount": str(amount), "decimals": decimals,
            "uiAmount": float(text), "uiAmountString": text}


# ------------------------------------------------------------------------------ transactions


def err_json(err: Any) -> Any:
    """JSON form of a solders TransactionError (``"BlockhashNotFound"``,
    ``{"InstructionError": [1, {"Custom": 1}]}``, ...); None stays None."""
    if err is None:
        return None
    return json.loads(RpcSimulateTransactionResult(err=err).to_json())["err"]


def err_text(err: Any) -> str:
    """Human text of a TransactionError JSON value, as in RPC error messages."""
    if isinstance(err, str):
        return _ERR_TEXT.get(err, err)
    if isinstance(err, dict) and "InstructionError" in err:
        index, inner = err["InstructionError"]
        if isinstance(inner, dict) and "Custom" in inner:
            return f"Error processing Instruction {index}: custom program error: {inner['Custom']:#x}"
        return f"Error processing Instruction {index}: {json.dumps(inner)}"
    return json.dumps(err)


def memo_of(message: Message | MessageV0) -> str | None:
    """The ``memo`` of getSignaturesForAddress: each top-level Memo (v1/v2) instruction as
    ``[<byte len>] <utf-8 text>`` joined by ``"; "`` (solana-transaction-status
    extract_memos), or None if the message has none."""
    keys = message.account_keys
    memos = []
    for ix in message.instructions:
        if keys[ix.program_id_index] in MEMO_PROGRAMS:
            data = bytes(ix.data)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = "(unparseable)"
            memos.append(f"[{len(data)}] {text}")
    return "; ".join(memos) if memos else None


def ui_message(message: Message | MessageV0) -> dict[str, Any]:
    """UiRawMessage (``json`` encoding): header, accountKeys, recentBlockhash, instructions
    (data base58), and addressTableLookups for a v0 message."""
    header = message.header
    out: dict[str, Any] = {
        "accountKeys": [str(k) for k in message.account_keys],
        "header": {"numRequiredSignatures": header.num_required_signatures,
                   "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
                   "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts},
        "recentBlockhash": str(message.recent_blockhash),
        "instructions": [{"programIdIndex": ix.program_id_index, "accounts": list(ix.accounts),
                          "data": b58encode(bytes(ix.data)), "stackHeight": None}
                         for ix in message.instructions],
    }
    if isinstance(message, MessageV0):
        out["addressTableLookups"] = [
            {"accountKey": str(lk.account_key), "writableIndexes": list(lk.writable_indexes),
             "readonlyIndexes": list(lk.readonly_indexes)}
            for lk in message.address_table_lookups]
    return out


def encode_transaction(raw: bytes, signatures: list[str], message: Message | MessageV0,
                       encoding: str) -> Any:
    """EncodedTransaction: ``[b64, "base64"]``, ``[b58, "base58"]`` or the ``json`` UiTransaction."""
    if encoding == "base64":
        return [base64.b64encode(raw).decode(), "base64"]
    if encoding == "base58":
        return [b58encode(raw), "base58"]
    return {"signatures": signatures, "message": ui_message(message)}


def inner_instructions_json(per_instruction: list[list[Any]]) -> list[dict[str, Any]]:
    """UiInnerInstructions from LiteSVM's per-top-level-instruction lists (empty ones left out)."""
    out = []
    for index, inner in enumerate(per_instruction):
        if not inner:
            continue
        out.append({"index": index, "instructions": [
            {"programIdIndex": ci.program_id_index, "accounts": list(ci.accounts),
             "data": b58encode(bytes(ci.data)), "stackHeight": ii.stack_height()}
            for ii in inner for ci in [ii.instruction()]]})
    return out


def return_data_json(return_data: Any) -> dict[str, Any] | None:
    """UiTransactionReturnData, or None when the program set no return data."""
    data = bytes(return_data.data) if return_data is not None else b""
    if not data:
        return None
    return {"programId": str(return_data.program_id),
            "data": [base64.b64encode(data).decode(), "base64"]}
