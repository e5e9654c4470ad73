"""Chain state behind the LiteSVM devnet server: slots, blocks, transactions, account history.

A test tool (used by integration tests and `make demo`), never a network with real value.
Owns: one `solders.litesvm.LiteSVM` (built-in System, SPL Token, Token-2022, Memo and ATA
programs) and everything the method handlers (`adapters.solana.devnet_methods`) answer from:
the slot clock (one block per slot, block height == slot), each slot's blockhash (bound to
the genesis hash, so two devnets never share one), the transaction records (successful and
failed), the per-address signature index, each touched account's state per slot (for reads at
a commitment), and the Solana rules LiteSVM leaves out: blockhash age (150 slots) or a valid
durable nonce, duplicate signatures, and "a failed transaction still pays its fee and advances
its durable nonce". Callers hold `lock` around every read and write. Must not speak HTTP or
JSON-RPC framing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.system_program import TransferParams, transfer
from solders.transaction import SanitizeError, Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from adapters.errors import BridgeError
from adapters.solana import devnet_codec as codec

log = logging.getLogger(__name__)

MAX_PROCESSING_AGE = 150  # slots a blockhash stays valid (solana-sdk MAX_PROCESSING_AGE)
STATUS_CACHE_SLOTS = 300  # getSignatureStatuses without history search sees this far back
LAMPORTS_PER_SIGNATURE = 5000
FAUCET_KEYS = 8
FAUCET_LAMPORTS = 10**17  # per faucet key
_ADVANCE_NONCE = (4).to_bytes(4, "little")  # SystemInstruction::AdvanceNonceAccount
_NONCE_ACCOUNT_LEN = 80
_COMPUTE_BUDGET = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
_DEFAULT_CU_PER_INSTRUCTION = 200_000
_MAX_CU = 1_400_000


class JsonRpcError(BridgeError):
    """A JSON-RPC error reply of the devnet server (Solana's codes: -32002 preflight failure,
    -32003 signature verification, -32004 block not available, -32602 invalid params, ...)."""

    code = "devnet_rpc_error"

    def __init__(self, rpc_code: int, message: str, data: Any = None) -> None:
        self.rpc_code = rpc_code
        self.data = data
        super().__init__(message)


NATIVE_MINT = Pubkey.from_string("So11111111111111111111111111111111111111112")


def genesis_hash_of(seed: str) -> str:
    """The devnet's genesis hash: base58 of sha256(utf-8 `seed`)."""
    return str(Hash(hashlib.sha256(seed.encode()).digest()))


def durable_nonce_of(blockhash: Hash) -> Hash:
    """DurableNonce::from_blockhash: sha256(b"DURABLE_NONCE" || blockhash)."""
    return Hash(hashlib.sha256(b"DURABLE_NONCE" + bytes(blockhash)).digest())


def message_of(tx: VersionedTransaction) -> Message | MessageV0:
    """The legacy or v0 message of `tx`.

    Raises:
        JsonRpcError: -32602 for any other message version (LiteSVM runs legacy and v0 only).
    """
    message = tx.message
    if not isinstance(message, Message | MessageV0):
        raise JsonRpcError(-32602, "invalid transaction: unsupported message version")
    return message


def preflight_failure(err: Any, *, logs: list[str] | None = None, units: int = 0,
                      return_data: Any = None) -> JsonRpcError:
    """The -32002 error sendTransaction answers when preflight simulation fails."""
    data = {"err": err, "logs": logs or [], "accounts": None, "unitsConsumed": units,
            "returnData": return_data, "innerInstructions": None,
            "replacementBlockhash": None, "loadedAccountsDataSize": None}
    return JsonRpcError(-32002, f"Transaction simulation failed: {codec.err_text(err)}", data)


@dataclass
class Block:
    """One slot's block: its blockhash (base58), parent, unix block time and transactions."""

    slot: int
    blockhash: str
    previous_blockhash: str
    block_time: int
    txs: list[TxRecord] = field(default_factory=list)


@dataclass
class TxRecord:
    """A transaction that landed (succeeded or failed), with its precomputed status meta."""

    signature: str
    slot: int
    raw: bytes
    tx: VersionedTransaction
    keys: list[Pubkey]  # static keys, then loaded writable, then loaded readonly
    err: Any  # TransactionError JSON, None on success
    meta: dict[str, Any]  # UiTransactionStatusMeta
    memo: str | None
    block_time: int

    @property
    def is_legacy(self) -> bool:
        return isinstance(self.tx.message, Message)


@dataclass
class _Keys:
    keys: list[Pubkey]
    writable: list[bool]
    loaded_writable: list[Pubkey]
    loaded_readonly: list[Pubkey]


class DevnetState:
    """The devnet's chain, guarded by `lock` (an RLock: hold it around every call).

    Args:
        genesis_seed: text whose sha256 is the genesis hash.
        finality_slots: finalized = current slot - finality_slots (floor 0).
        wall_clock: unix time in seconds (block times); injectable for tests.
    """

    def __init__(self, *, genesis_seed: str, finality_slots: int,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.genesis_hash = genesis_hash_of(genesis_seed)
        self._genesis_bytes = bytes(Hash.from_string(self.genesis_hash))
        self.finality_slots = finality_slots
        self._wall_clock = wall_clock
        self.svm = LiteSVM().with_blockhash_check(False).with_transaction_history(0)
        self.slot = 0
        self.blocks: list[Block] = []
        self._blockhash_slot: dict[str, int] = {}
        self.txs: dict[str, TxRecord] = {}
        self._by_address: dict[Pubkey, list[TxRecord]] = {}
        self._address_pos: dict[Pubkey, dict[str, int]] = {}
        self._history: dict[Pubkey, list[tuple[int, Account | None]]] = {}
        self._token_accounts_of: dict[Pubkey, set[Pubkey]] = {}
        self._faucets = [Keypair.from_seed(hashlib.sha256(f"{genesis_seed}/faucet/{i}".encode())
                                           .digest()) for i in range(FAUCET_KEYS)]
        for faucet in self._faucets:
            self.svm.set_account(faucet.pubkey(),
                                 Account(FAUCET_LAMPORTS, b"", SYSTEM_PROGRAM, False, 0))
        # The native mint exists from genesis on every cluster (wrapped SOL). SPL Token `Mint`
        # layout (82 bytes): mint_authority COption<Pubkey> = None, supply u64 = 0,
        # decimals u8 = 9, is_initialized = 1, freeze_authority = None.
        native = bytes(36) + (0).to_bytes(8, "little") + bytes([9, 1]) + bytes(36)
        self.svm.set_account(NATIVE_MINT, Account(
            self.svm.minimum_balance_for_rent_exemption(len(native)), native, codec.TOKEN_PROGRAM,
            False, 0))
        self._open_block(previous=str(Hash.default()))

    # -------------------------------------------------------------------------- slots

    def _open_block(self, previous: str) -> None:
        now = int(self._wall_clock())
        self.svm.warp_to_slot(self.slot)
        clock = self.svm.get_clock()
        clock.unix_timestamp = now
        self.svm.set_clock(clock)
        # Public blockhash = sha256(genesis hash || LiteSVM's blockhash): LiteSVM's own sequence
        # is the same in every instance, so devnets with different seeds must not share it.
        # (LiteSVM's blockhash check is off; it only feeds durable nonce values.)
        blockhash = str(Hash(hashlib.sha256(self._genesis_bytes
                                            + bytes(self.svm.latest_blockhash())).digest()))
        self._blockhash_slot[blockhash] = self.slot
        self.blocks.append(Block(self.slot, blockhash, previous, now))

    def tick(self, slots: int = 1) -> int:
        """End the current slot `slots` times (new slot, new blockhash). Returns the new slot."""
        for _ in range(slots):
            previous = self.blocks[-1].blockhash
            self.slot += 1
            self.svm.expire_blockhash()
            self._open_block(previous)
        return self.slot

    def latest_blockhash(self) -> Hash:
        """The current slot's blockhash (what getLatestBlockhash answers at processed)."""
        return Hash.from_string(self.blocks[-1].blockhash)

    def commitment_slot(self, commitment: str) -> int:
        """processed = current slot, confirmed = slot - 1, finalized = slot - finality_slots."""
        if commitment == "processed":
            return self.slot
        if commitment == "confirmed":
            return max(self.slot - 1, 0)
        return max(self.slot - self.finality_slots, 0)

    def confirmation_status(self, slot: int) -> tuple[str, int | None]:
        """(confirmationStatus, confirmations) of a transaction that landed in `slot`."""
        if slot <= self.commitment_slot("finalized"):
            return "finalized", None
        if slot <= self.commitment_slot("confirmed"):
            return "confirmed", self.slot - slot
        return "processed", 0

    def blockhash_slot(self, blockhash: str) -> int | None:
        """The slot whose blockhash is `blockhash` (base58), or None if unknown."""
        return self._blockhash_slot.get(blockhash)

    # -------------------------------------------------------------------------- accounts

    def account_at(self, key: Pubkey, slot: int) -> Account | None:
        """`key`'s account as of the end of `slot` (None if it did not exist or had 0 lamports)."""
        history = self._history.get(key)
        if history is None or slot >= self.slot:
            account = self.svm.get_account(key)
        else:
            account = history[bisect_right(history, slot, key=lambda e: e[0]) - 1][1]
        return account if account is not None and account.lamports > 0 else None

    def token_accounts_of(self, owner: Pubkey) -> set[Pubkey]:
        """Every token account that `owner` owned at some point (filter by `account_at`)."""
        return set(self._token_accounts_of.get(owner, ()))

    def _remember(self, key: Pubkey, before: Account | None, after: Account | None) -> None:
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = [(-1, before)]
        if history[-1][0] == self.slot:
            history[-1] = (self.slot, after)
        else:
            history.append((self.slot, after))
        if codec.is_token_account(after):
            assert after is not None
            _, owner, _ = codec.token_account_fields(after)
            self._token_accounts_of.setdefault(owner, set()).add(key)

    # -------------------------------------------------------------------------- signatures

    def signatures_for(self, address: Pubkey, *, slot: int, before: str | None,
                       until: str | None, limit: int) -> list[TxRecord]:
        """Transactions naming `address` that landed at or before `slot`, newest first,
        strictly older than `before` and strictly newer than `until` (signatures), at most
        `limit`. An unknown `before` gives no result; an unknown `until` does not bound."""
        records = self._by_address.get(address, [])
        positions = self._address_pos.get(address, {})
        end = bisect_right(records, slot, key=lambda r: r.slot)
        if before is not None:
            if before not in positions:
                return []
            end = min(end, positions[before])
        start = positions[until] + 1 if until is not None and until in positions else 0
        start = max(start, end - limit)
        return records[start:end][::-1] if start < end else []

    def in_status_cache(self, record: TxRecord) -> bool:
        """Whether getSignatureStatuses finds `record` without searchTransactionHistory."""
        return self.slot - record.slot <= STATUS_CACHE_SLOTS

    # -------------------------------------------------------------------------- admission

    def _message_keys(self, message: Message | MessageV0) -> _Keys:
        static = list(message.account_keys)
        header = message.header
        signed = header.num_required_signatures
        writable = [i < signed - header.num_readonly_signed_accounts if i < signed
                    else i < len(static) - header.num_readonly_unsigned_accounts
                    for i in range(len(static))]
        loaded_w: list[Pubkey] = []
        loaded_r: list[Pubkey] = []
        if isinstance(message, MessageV0):
            for lookup in message.address_table_lookups:
                table = self.svm.get_account(lookup.account_key)
                addresses = bytes(table.data)[56:] if table is not None else b""  # ALT header
                for indexes, out in ((lookup.writable_indexes, loaded_w),
                                     (lookup.readonly_indexes, loaded_r)):
                    out.extend(Pubkey(addresses[32 * i:32 * i + 32]) for i in indexes
                               if 32 * i + 32 <= len(addresses))
        return _Keys(static + loaded_w + loaded_r,
                     writable + [True] * len(loaded_w) + [False] * len(loaded_r),
                     loaded_w, loaded_r)

    def nonce_account_of(self, message: Message | MessageV0) -> Pubkey | None:
        """The nonce account if `message` is a usable durable-nonce transaction now: its first
        instruction is System AdvanceNonceAccount, the nonce account is initialized, stores
        exactly the message's recent_blockhash, its authority signs the message, and that
        value is not the nonce of the current blockhash (it must advance). Else None."""
        if not message.instructions:
            return None
        first = message.instructions[0]
        keys = message.account_keys
        if (keys[first.program_id_index] != SYSTEM_PROGRAM
                or bytes(first.data)[:4] != _ADVANCE_NONCE or not first.accounts
                or first.accounts[0] >= len(keys)):
            return None
        nonce_key = keys[first.accounts[0]]
        account = self.svm.get_account(nonce_key)
        if account is None or account.owner != SYSTEM_PROGRAM:
            return None
        data = bytes(account.data)
        if len(data) != _NONCE_ACCOUNT_LEN or data[0:8] != bytes([1, 0, 0, 0, 1, 0, 0, 0]):
            return None  # not Versions::Current(State::Initialized)
        value = message.recent_blockhash
        if data[40:72] != bytes(value) or value == durable_nonce_of(self.svm.latest_blockhash()):
            return None
        signers = keys[:message.header.num_required_signatures]
        return nonce_key if Pubkey(data[8:40]) in signers else None

    def check_age(self, message: Message | MessageV0) -> Pubkey | None:
        """Admission by recent_blockhash: None if it is one of the last 150 slots' blockhashes,
        the nonce account if it is a valid durable nonce (see `nonce_account_of`).

        Raises:
            JsonRpcError: -32002 BlockhashNotFound preflight failure otherwise.
        """
        slot = self._blockhash_slot.get(str(message.recent_blockhash))
        if slot is not None and self.slot - slot <= MAX_PROCESSING_AGE:
            return None
        nonce = self.nonce_account_of(message)
        if nonce is None:
            raise preflight_failure("BlockhashNotFound")
        return nonce

    def fee_for(self, message: Message | MessageV0) -> int:
        """Lamports charged for `message`: 5000 per signature plus the priority fee
        (ceil(compute unit price [micro-lamports] * compute unit limit / 10^6))."""
        price = 0
        limit: int | None = None
        counted = 0
        keys = message.account_keys
        for ix in message.instructions:
            data = bytes(ix.data)
            if keys[ix.program_id_index] != _COMPUTE_BUDGET:
                counted += 1
            elif data[:1] == b"\x02" and len(data) >= 5:  # SetComputeUnitLimit(u32)
                limit = int.from_bytes(data[1:5], "little")
            elif data[:1] == b"\x03" and len(data) >= 9:  # SetComputeUnitPrice(u64)
                price = int.from_bytes(data[1:9], "little")
        if limit is None:
            limit = counted * _DEFAULT_CU_PER_INSTRUCTION
        limit = min(limit, _MAX_CU)
        priority = (price * limit + 999_999) // 1_000_000
        return LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures + priority

    # -------------------------------------------------------------------------- execution

    def submit(self, raw: bytes, *, preflight: bool) -> str:
        """sendTransaction: admit, (optionally) simulate, execute and record `raw`.

        With `preflight`, a refused transaction raises (AlreadyProcessed, BlockhashNotFound,
        bad signature, failing simulation) and nothing changes. Without it, Solana's
        behaviour: the signature is returned even when the transaction is dropped (duplicate,
        expired blockhash, fee payer cannot pay); a transaction that pays its fee but fails is
        recorded with its error.

        Returns:
            The first signature, base58.

        Raises:
            JsonRpcError: -32602 undecodable transaction; -32003 / -32002 preflight refusals.
        """
        try:
            tx = VersionedTransaction.from_bytes(raw)
            tx.sanitize()
        except (ValueError, SanitizeError) as exc:
            raise JsonRpcError(-32602, f"invalid transaction: {exc}") from exc
        if not tx.signatures:
            raise JsonRpcError(-32602, "invalid transaction: no signatures")
        message = message_of(tx)
        signature = str(tx.signatures[0])
        with self.lock:
            if signature in self.txs:
                if preflight:
                    raise preflight_failure("AlreadyProcessed")
                return signature
            if preflight and not all(tx.verify_with_results()):
                raise JsonRpcError(-32003, "Transaction signature verification failure")
            try:
                nonce = self.check_age(message)
            except JsonRpcError:
                if preflight:
                    raise
                log.info("dropped tx=%s: BlockhashNotFound", signature)
                return signature
            if preflight:
                simulated = self.svm.simulate_transaction(tx)
                if isinstance(simulated, FailedTransactionMetadata):
                    meta = simulated.meta()
                    raise preflight_failure(
                        codec.err_json(simulated.err()), logs=list(meta.logs()),
                        units=meta.compute_units_consumed(),
                        return_data=codec.return_data_json(meta.return_data()))
            self._execute(tx, message, raw, nonce)
        return signature

    def _execute(self, tx: VersionedTransaction, message: Message | MessageV0, raw: bytes,
                 nonce: Pubkey | None) -> None:
        signature = str(tx.signatures[0])
        keys = self._message_keys(message)
        writable = [k for k, w in zip(keys.keys, keys.writable, strict=True) if w]
        before = {k: self.svm.get_account(k) for k in writable}
        pre_balances = [self.svm.get_balance(k) or 0 for k in keys.keys]
        result = self.svm.send_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            if (self.svm.get_balance(keys.keys[0]) or 0) >= pre_balances[0]:
                log.info("dropped tx=%s: %s (fee not charged)", signature, result.err())
                return  # never landed: Solana records only transactions that paid their fee
            if nonce is not None:
                self._advance_nonce(nonce)
            meta, err = result.meta(), codec.err_json(result.err())
        else:
            meta, err = result, None
        failed = err is not None
        after = {k: self.svm.get_account(k) for k in writable}
        for key in writable:
            self._remember(key, before[key], after[key])
        block = self.blocks[-1]
        record = TxRecord(
            signature=signature, slot=self.slot, raw=raw, tx=tx, keys=keys.keys, err=err,
            meta={
                "err": err, "status": {"Err": err} if failed else {"Ok": None},
                "fee": meta.fee(), "preBalances": pre_balances,
                "postBalances": [self.svm.get_balance(k) or 0 for k in keys.keys],
                "innerInstructions": codec.inner_instructions_json(meta.inner_instructions()),
                "logMessages": list(meta.logs()),
                "preTokenBalances": self._token_balances(keys.keys, before),
                "postTokenBalances": self._token_balances(keys.keys, after),
                "rewards": [],
                "loadedAddresses": {"writable": [str(k) for k in keys.loaded_writable],
                                    "readonly": [str(k) for k in keys.loaded_readonly]},
                "computeUnitsConsumed": meta.compute_units_consumed(),
            },
            memo=codec.memo_of(message), block_time=block.block_time)
        return_data = codec.return_data_json(meta.return_data())
        if return_data is not None:
            record.meta["returnData"] = return_data
        self.txs[signature] = record
        block.txs.append(record)
        for key in dict.fromkeys(keys.keys):
            records = self._by_address.setdefault(key, [])
            self._address_pos.setdefault(key, {})[signature] = len(records)
            records.append(record)
        log.debug("landed tx=%s slot=%d err=%s", signature, self.slot, err)

    def _advance_nonce(self, nonce: Pubkey) -> None:
        """What Solana does to the nonce account of a failed durable-nonce transaction."""
        account = self.svm.get_account(nonce)
        assert account is not None  # checked by nonce_account_of before execution
        data = bytearray(account.data)
        data[40:72] = bytes(durable_nonce_of(self.svm.latest_blockhash()))
        self.svm.set_account(nonce, Account(account.lamports, bytes(data), account.owner,
                                            account.executable, account.rent_epoch))

    def _token_balances(self, keys: list[Pubkey],
                        accounts: dict[Pubkey, Account | None]) -> list[dict[str, Any]]:
        out = []
        for index, key in enumerate(keys):
            account = accounts.get(key)
            if account is None or not codec.is_token_account(account):
                continue
            mint, owner, amount = codec.token_account_fields(account)
            decimals = codec.mint_decimals(self.svm.get_account(mint))
            if decimals is None:
                continue
            out.append({"accountIndex": index, "mint": str(mint), "owner": str(owner),
                        "programId": str(account.owner),
                        "uiTokenAmount": codec.ui_token_amount(amount, decimals)})
        return out

    def airdrop(self, to: Pubkey, lamports: int) -> str:
        """requestAirdrop: a System transfer from a faucet key, sent like any transaction
        (a faucet key whose identical transfer already landed in this blockhash is skipped).

        Raises:
            JsonRpcError: -32002 if the transfer fails preflight; -32603 if every faucet key
                already sent this exact transfer at the current blockhash.
        """
        with self.lock:
            blockhash = self.latest_blockhash()
            for faucet in self._faucets:
                ix = transfer(TransferParams(from_pubkey=faucet.pubkey(), to_pubkey=to,
                                             lamports=lamports))
                tx = Transaction([faucet], Message([ix], faucet.pubkey()), blockhash)
                if str(tx.signatures[0]) not in self.txs:
                    return self.submit(bytes(tx), preflight=True)
        raise JsonRpcError(-32603, "airdrop request failed: too many identical requests")
