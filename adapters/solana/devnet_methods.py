"""The JSON-RPC method handlers of the LiteSVM devnet server (a test tool; see
`adapters.solana.devnet_rpc` for the process and framing).

Owns: parameter parsing (Solana's defaults: commitment finalized, account encoding binary,
transaction encoding json / base58 wire) and one handler per method in `METHODS`, each naming
the Solana doc page it follows. Handlers run with `DevnetState.lock` held by the caller and
raise `JsonRpcError` for error replies. Must not touch HTTP, threads or the process.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from solders.message import Message, MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from adapters.solana import devnet_codec as codec
from adapters.solana.devnet_state import (
    MAX_PROCESSING_AGE,
    DevnetState,
    JsonRpcError,
    TxRecord,
    message_of,
)

API_VERSION = "2.2.0"
_COMMITMENTS = {"processed": "processed", "recent": "processed", "confirmed": "confirmed",
                "single": "confirmed", "singleGossip": "confirmed", "finalized": "finalized",
                "max": "finalized", "root": "finalized"}
_ACCOUNT_ENCODINGS = ("base64", "base58", "binary")
_TX_ENCODINGS = ("json", "base64", "base58")

Handler = Callable[[DevnetState, list[Any]], Any]
METHODS: dict[str, Handler] = {}


def rpc_method(name: str) -> Callable[[Handler], Handler]:
    """Register a handler for the JSON-RPC method `name`."""
    def register(fn: Handler) -> Handler:
        METHODS[name] = fn
        return fn
    return register


# ------------------------------------------------------------------------------ parameters


def _invalid(message: str) -> JsonRpcError:
    return JsonRpcError(-32602, message)


def _arg(params: list[Any], index: int, name: str) -> Any:
    if len(params) <= index or params[index] is None:
        raise _invalid(f"Invalid params: missing {name}")
    return params[index]


def _config(params: list[Any], index: int) -> dict[str, Any]:
    config = params[index] if len(params) > index else None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise _invalid("Invalid params: expected a configuration object")
    return config


def _pubkey(text: Any) -> Pubkey:
    try:
        return Pubkey.from_string(str(text))
    except ValueError as exc:
        raise _invalid("Invalid param: Invalid") from exc


def _signature(text: Any) -> str:
    try:
        return str(Signature.from_string(str(text)))
    except ValueError as exc:
        raise _invalid("Invalid param: Invalid") from exc


def _slot_of(state: DevnetState, config: dict[str, Any], *, confirmed: bool = False) -> int:
    """The slot a read answers at (commitment, default finalized); honours minContextSlot."""
    name = _COMMITMENTS.get(config.get("commitment") or "finalized")
    if name is None:
        raise _invalid(f"Invalid params: unknown commitment {config.get('commitment')!r}")
    if confirmed and name == "processed":
        raise _invalid("Method does not support commitment below `confirmed`")
    slot = state.commitment_slot(name)
    min_slot = config.get("minContextSlot")
    if min_slot is not None and slot < int(min_slot):
        raise JsonRpcError(-32016, "Minimum context slot has not been reached",
                           {"contextSlot": slot})
    return slot


def _ctx(slot: int, value: Any) -> dict[str, Any]:
    return {"context": {"slot": slot, "apiVersion": API_VERSION}, "value": value}


def _account_encoding(config: dict[str, Any], default: str = "binary") -> str:
    encoding = config.get("encoding") or default
    if encoding not in _ACCOUNT_ENCODINGS:
        raise _invalid(f"Invalid params: encoding {encoding!r} is not supported by this devnet "
                       f"(use one of {', '.join(_ACCOUNT_ENCODINGS)})")
    return str(encoding)


def _ui_account_at(state: DevnetState, key: Pubkey, slot: int,
                   config: dict[str, Any]) -> dict[str, Any] | None:
    encoding = _account_encoding(config)  # refused even for a missing account
    account = state.account_at(key, slot)
    if account is None:
        return None
    return codec.ui_account(account, encoding, config.get("dataSlice"))


def _decode_wire(text: Any, encoding: str) -> bytes:
    try:
        if encoding == "base64":
            return base64.b64decode(str(text), validate=True)
        if encoding == "base58":
            return codec.b58decode(str(text))
    except ValueError as exc:
        raise _invalid(f"invalid transaction: {exc}") from exc
    raise _invalid(f"Invalid params: unsupported encoding {encoding!r}")


# ------------------------------------------------------------------------------ cluster


@rpc_method("getHealth")
def get_health(state: DevnetState, params: list[Any]) -> str:
    """getHealth: https://solana.com/docs/rpc/http/gethealth"""
    return "ok"


@rpc_method("getVersion")
def get_version(state: DevnetState, params: list[Any]) -> dict[str, Any]:
    """getVersion: https://solana.com/docs/rpc/http/getversion"""
    return {"solana-core": API_VERSION, "feature-set": 0}


@rpc_method("getGenesisHash")
def get_genesis_hash(state: DevnetState, params: list[Any]) -> str:
    """getGenesisHash: https://solana.com/docs/rpc/http/getgenesishash"""
    return state.genesis_hash


@rpc_method("getSlot")
def get_slot(state: DevnetState, params: list[Any]) -> int:
    """getSlot: https://solana.com/docs/rpc/http/getslot"""
    return _slot_of(state, _config(params, 0))


@rpc_method("getBlockHeight")
def get_block_height(state: DevnetState, params: list[Any]) -> int:
    """getBlockHeight: https://solana.com/docs/rpc/http/getblockheight (== slot here)."""
    return _slot_of(state, _config(params, 0))


@rpc_method("getLatestBlockhash")
def get_latest_blockhash(state: DevnetState, params: list[Any]) -> dict[str, Any]:
    """getLatestBlockhash: https://solana.com/docs/rpc/http/getlatestblockhash"""
    slot = _slot_of(state, _config(params, 0))
    return _ctx(slot, {"blockhash": state.blocks[slot].blockhash,
                       "lastValidBlockHeight": slot + MAX_PROCESSING_AGE})


@rpc_method("isBlockhashValid")
def is_blockhash_valid(state: DevnetState, params: list[Any]) -> dict[str, Any]:
    """isBlockhashValid: https://solana.com/docs/rpc/http/isblockhashvalid"""
    slot = _slot_of(state, _config(params, 1))
    made = state.blockhash_slot(str(_arg(params, 0, "blockhash")))
    return _ctx(slot, made is not None and made <= slot and slot - made <= MAX_PROCESSING_AGE)


@rpc_method("getMinimumBalanceForRentExemption")
def get_minimum_balance_for_rent_exemption(state: DevnetState, params: list[Any]) -> int:
    """getMinimumBalanceForRentExemption:
    https://solana.com/docs/rpc/http/getminimumbalanceforrentexemption"""
    return state.svm.minimum_balance_for_rent_exemption(int(_arg(params, 0, "data length")))


@rpc_method("getFeeForMessage")
def get_fee_for_message(state: DevnetState, params: list[Any]) -> dict[str, Any]:
    """getFeeForMessage: https://solana.com/docs/rpc/http/getfeeformessage (null when the
    message's blockhash is neither recent nor a usable durable nonce)."""
    slot = _slot_of(state, _config(params, 1))
    try:
        message = from_bytes_versioned(base64.b64decode(str(_arg(params, 0, "message"))))
    except ValueError as exc:
        raise _invalid(f"Invalid params: invalid message: {exc}") from exc
    if not isinstance(message, Message | MessageV0):
        raise _invalid("Invalid params: unsupported message version")
    made = state.blockhash_slot(str(message.recent_blockhash))
    usable = (made is not None and state.slot - made <= MAX_PROCESSING_AGE) or (
        state.nonce_account_of(message) is not None)
    return _ctx(slot, state.fee_for(message) if usable else None)


@rpc_method("ferry_advanceSlots")
def advance_slots(state: DevnetState, params: list[Any]) -> int:
    """Devnet-only (not a Solana method): end `params[0]` slots now (1..10000) so tests move
    chain time instead of sleeping. Returns the new current slot."""
    count = int(_arg(params, 0, "slot count"))
    if not 1 <= count <= 10_000:
        raise _invalid("Invalid params: slot count must be in 1..10000")
    return state.tick(count)


# ------------------------------------------------------------------------------ accounts


@rpc_method("getAccountInfo")
def get_account_info(state: DevnetState, params: list[Any]) -> dict[str, Any]:
    """getAccountInfo: https://solana.com/docs/rpc/http/getaccountinfo (jsonParsed refused)."""
    config = _config(params, 1)
    slot = _slot_of(state, config)
    return _ctx(slot, _ui_account_at(state, _pubkey(_arg(params, 0, "pubkey")), slot, config))


@rpc_method("getMultipleAccounts")
def get_multiple_accounts(state: DevnetState, params: list[Any]) -> dict[str, Any]:
    """getMultipleAccounts: https://solana.com/docs/rpc/http/getmultipleaccounts (<= 100)."""
    keys = _arg(params, 0, "pubkeys")
    if not isinstance(keys, list) or len(keys) > 100:
        raise _invalid("Invalid params: expected an array of at most 100 pubkeys")
    config = _config(params, 1)
    slot = _slot_of(state, config)
    return _ctx(slot, [_ui_account_at(state, _pubkey(k), slot, config) for k in keys])


@rpc_method("getBalance")
def get_balance(state: DevnetState, params: list[Any]) -> dict[str, Any]:
    """getBalance: https://solana.com/docs/rpc/http/getbalance"""
    slot = _slot_of(state, _config(params, 1))
    account = state.account_at(_pubkey(_arg(params, 0, "pubkey")), slot)
    return _ctx(slot, account.lamports if account is not None else 0)


@rpc_method("getTokenAccountBalance")
def get_token_account_balance(state: DevnetState, params: list[Any]) -> dict[str, Any]:
    """getTokenAccountBalance: https://solana.com/docs/rpc/http/gettokenaccountbalance"""
    slot = _slot_of(state, _config(params, 1))
    account = state.account_at(_pubkey(_arg(params, 0, "pubkey")), slot)
    if account is None or not codec.is_token_account(account):
        raise _invalid("Invalid param: not a Token account")
    mint, _, amount = codec.token_account_fields(account)
    decimals = codec.mint_decimals(state.account_at(mint, slot))
    if decimals is None:
        raise _invalid("Invalid param: could not find mint")
    return _ctx(slot, codec.ui_token_amount(amount, decimals))


@rpc_method("getTokenAccountsByOwner")
def get_token_accounts_by_owner(state: DevnetState, params: list[Any]) -> dict[str, Any]:
    """getTokenAccountsByOwner: https://solana.com/docs/rpc/http/gettokenaccountsbyowner
    (filter ``{"mint"}`` or ``{"programId"}``; base64/base58 encodings)."""
    owner = _pubkey(_arg(params, 0, "owner"))
    token_filter = _arg(params, 1, "filter")
    config = _config(params, 2)
    slot = _slot_of(state, config)
    mint: Pubkey | None = None
    if isinstance(token_filter, dict) and token_filter.get("mint"):
        mint = _pubkey(token_filter["mint"])
        mint_account = state.account_at(mint, slot)
        if mint_account is None or codec.mint_decimals(mint_account) is None:
            raise _invalid("Invalid param: could not find mint")
        program = mint_account.owner
    elif isinstance(token_filter, dict) and token_filter.get("programId"):
        program = _pubkey(token_filter["programId"])
        if program not in codec.TOKEN_PROGRAMS:
            raise _invalid("Invalid param: unrecognized Token program id")
    else:
        raise _invalid("Invalid params: filter must be {\"mint\": ...} or {\"programId\": ...}")
    found = []
    for key in sorted(state.token_accounts_of(owner), key=str):
        account = state.account_at(key, slot)
        if account is None or account.owner != program or not codec.is_token_account(account):
            continue
        account_mint, account_owner, _ = codec.token_account_fields(account)
        if account_owner == owner and (mint is None or account_mint == mint):
            found.append({"pubkey": str(key), "account": codec.ui_account(
                account, _account_encoding(config), config.get("dataSlice"))})
    return _ctx(slot, found)


# ------------------------------------------------------------------------------ history


def _tx_body(record: TxRecord, encoding: str, max_version: Any) -> dict[str, Any]:
    """transaction + meta (+ version) of one landed transaction (getTransaction, getBlock)."""
    if max_version is None and not record.is_legacy:
        raise JsonRpcError(
            -32015, "Transaction version (0) is not supported by the requesting client. "
            "Please try the request again with the following configuration parameter: "
            "\"maxSupportedTransactionVersion\": 0")
    body: dict[str, Any] = {
        "transaction": codec.encode_transaction(
            record.raw, [str(s) for s in record.tx.signatures], message_of(record.tx), encoding),
        "meta": record.meta}
    if max_version is not None:
        body["version"] = "legacy" if record.is_legacy else 0
    return body


def _tx_encoding(config: dict[str, Any]) -> str:
    encoding = config.get("encoding") or "json"
    if encoding not in _TX_ENCODINGS:
        raise _invalid(f"Invalid params: encoding {encoding!r} is not supported by this devnet "
                       f"(use one of {', '.join(_TX_ENCODINGS)})")
    return str(encoding)


@rpc_method("getTransaction")
def get_transaction(state: DevnetState, params: list[Any]) -> dict[str, Any] | None:
    """getTransaction: https://solana.com/docs/rpc/http/gettransaction (json, base64, base58;
    null until the transaction's slot reaches the commitment)."""
    config = _config(params, 1)
    slot = _slot_of(state, config, confirmed=True)
    record = state.txs.get(_signature(_arg(params, 0, "signature")))
    if record is None or record.slot > slot:
        return None
    body = _tx_body(record, _tx_encoding(config), config.get("maxSupportedTransactionVersion"))
    return {"slot": record.slot, "blockTime": record.block_time, **body}


@rpc_method("getSignaturesForAddress")
def get_signatures_for_address(state: DevnetState, params: list[Any]) -> list[dict[str, Any]]:
    """getSignaturesForAddress: https://solana.com/docs/rpc/http/getsignaturesforaddress
    (newest first; before / until / limit <= 1000)."""
    address = _pubkey(_arg(params, 0, "address"))
    config = _config(params, 1)
    slot = _slot_of(state, config, confirmed=True)
    limit = int(config.get("limit") or 1000)
    if not 1 <= limit <= 1000:
        raise _invalid("Invalid limit; max 1000")
    before = _signature(config["before"]) if config.get("before") else None
    until = _signature(config["until"]) if config.get("until") else None
    out = []
    for record in state.signatures_for(address, slot=slot, before=before, until=until,
                                       limit=limit):
        status, _ = state.confirmation_status(record.slot)
        out.append({"signature": record.signature, "slot": record.slot, "err": record.err,
                    "memo": record.memo, "blockTime": record.block_time,
                    "confirmationStatus": status})
    return out


@rpc_method("getSignatureStatuses")
def get_signature_statuses(state: DevnetState, params: list[Any]) -> dict[str, Any]:
    """getSignatureStatuses: https://solana.com/docs/rpc/http/getsignaturestatuses (<= 256;
    without searchTransactionHistory only the last 300 slots, like the status cache)."""
    signatures = _arg(params, 0, "signatures")
    if not isinstance(signatures, list) or len(signatures) > 256:
        raise _invalid("Invalid params: expected an array of at most 256 signatures")
    search = bool(_config(params, 1).get("searchTransactionHistory"))
    out: list[dict[str, Any] | None] = []
    for text in signatures:
        record = state.txs.get(_signature(text))
        if record is None or not (search or state.in_status_cache(record)):
            out.append(None)
            continue
        status, confirmations = state.confirmation_status(record.slot)
        out.append({"slot": record.slot, "confirmations": confirmations, "err": record.err,
                    "status": record.meta["status"], "confirmationStatus": status})
    return _ctx(state.slot, out)


@rpc_method("getBlock")
def get_block(state: DevnetState, params: list[Any]) -> dict[str, Any]:
    """getBlock: https://solana.com/docs/rpc/http/getblock (transactionDetails full,
    signatures or none; block height == slot)."""
    wanted = int(_arg(params, 0, "slot"))
    config = _config(params, 1)
    slot = _slot_of(state, config, confirmed=True)
    if not 0 <= wanted <= slot:
        raise JsonRpcError(-32004, f"Block not available for slot {wanted}")
    block = state.blocks[wanted]
    out: dict[str, Any] = {"blockhash": block.blockhash,
                           "previousBlockhash": block.previous_blockhash,
                           "parentSlot": max(wanted - 1, 0), "blockTime": block.block_time,
                           "blockHeight": wanted}
    details = config.get("transactionDetails") or "full"
    if details == "full":
        encoding = _tx_encoding(config)
        max_version = config.get("maxSupportedTransactionVersion")
        out["transactions"] = [_tx_body(r, encoding, max_version) for r in block.txs]
    elif details == "signatures":
        out["signatures"] = [r.signature for r in block.txs]
    elif details != "none":
        raise _invalid(f"Invalid params: transactionDetails {details!r} is not supported")
    if config.get("rewards", True) is not False:
        out["rewards"] = []
    return out


# ------------------------------------------------------------------------------ transactions


@rpc_method("sendTransaction")
def send_transaction(state: DevnetState, params: list[Any]) -> str:
    """sendTransaction: https://solana.com/docs/rpc/http/sendtransaction (preflight against
    the current state regardless of preflightCommitment; skipPreflight records failures)."""
    config = _config(params, 1)
    raw = _decode_wire(_arg(params, 0, "transaction"), config.get("encoding") or "base58")
    return state.submit(raw, preflight=not config.get("skipPreflight"))


@rpc_method("simulateTransaction")
def simulate_transaction(state: DevnetState, params: list[Any]) -> dict[str, Any]:
    """simulateTransaction: https://solana.com/docs/rpc/http/simulatetransaction (sigVerify,
    replaceRecentBlockhash, accounts, innerInstructions; runs on the current state)."""
    config = _config(params, 1)
    raw = _decode_wire(_arg(params, 0, "transaction"), config.get("encoding") or "base58")
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except ValueError as exc:
        raise _invalid(f"invalid transaction: {exc}") from exc
    message = message_of(tx)
    sig_verify = bool(config.get("sigVerify"))
    if sig_verify and config.get("replaceRecentBlockhash"):
        raise _invalid("sigVerify may not be used with replaceRecentBlockhash")
    slot = _slot_of(state, config)
    replacement = None
    if config.get("replaceRecentBlockhash"):
        blockhash = state.latest_blockhash()
        message = _with_blockhash(message, blockhash)
        tx = VersionedTransaction.populate(message, tx.signatures)
        replacement = {"blockhash": str(blockhash),
                       "lastValidBlockHeight": state.slot + MAX_PROCESSING_AGE}
    else:
        try:
            state.check_age(message)
        except JsonRpcError as exc:
            return _ctx(slot, exc.data)
    if sig_verify and not all(tx.verify_with_results()):
        raise JsonRpcError(-32003, "Transaction signature verification failure")
    state.svm.with_sigverify(False)
    try:
        result = state.svm.simulate_transaction(tx)
    finally:
        state.svm.with_sigverify(True)
    meta = result.meta()
    err = codec.err_json(result.err()) if isinstance(result, FailedTransactionMetadata) else None
    accounts = None
    wanted = config.get("accounts")
    if wanted and not isinstance(result, FailedTransactionMetadata):
        post = dict(result.post_accounts())
        encoding = _account_encoding(wanted, default="base64")
        accounts = []
        for text in wanted.get("addresses") or []:
            key = _pubkey(text)
            account = post.get(key) or state.svm.get_account(key)
            accounts.append(codec.ui_account(account, encoding, None)
                            if account is not None and account.lamports > 0 else None)
    inner = (codec.inner_instructions_json(meta.inner_instructions())
             if config.get("innerInstructions") else None)
    return _ctx(slot, {
        "err": err, "logs": list(meta.logs()),
        "accounts": accounts, "unitsConsumed": meta.compute_units_consumed(),
        "returnData": codec.return_data_json(meta.return_data()), "innerInstructions": inner,
        "replacementBlockhash": replacement, "loadedAccountsDataSize": None})


def _with_blockhash(message: Message | MessageV0, blockhash: Any) -> Message | MessageV0:
    header = message.header
    if isinstance(message, MessageV0):
        return MessageV0(header, list(message.account_keys), blockhash,
                         list(message.instructions), list(message.address_table_lookups))
    return Message.new_with_compiled_instructions(
        header.num_required_signatures, header.num_readonly_signed_accounts,
        header.num_readonly_unsigned_accounts, list(message.account_keys), blockhash,
        list(message.instructions))


@rpc_method("requestAirdrop")
def request_airdrop(state: DevnetState, params: list[Any]) -> str:
    """requestAirdrop: https://solana.com/docs/rpc/http/requestairdrop (a real System transfer
    from a devnet faucet key: it shows in history like any transaction)."""
    lamports = int(_arg(params, 1, "lamports"))
    if lamports <= 0:
        raise _invalid("Invalid params: lamports must be positive")
    return state.airdrop(_pubkey(_arg(params, 0, "pubkey")), lamports)
