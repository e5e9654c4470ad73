"""The LiteSVM devnet JSON-RPC server (`adapters.solana.devnet_rpc`) through solana-py.

Every call goes through solana-py 0.41's `AsyncClient`, so each answer is also checked to parse
into solders' response types. Tests that need exact slots use a private server whose slots move
only through `SvmNode.advance_slots` (``slot_ms=0``); the session `svm_node` (a slot per 100 ms)
checks that slots and finality advance on their own. Each test uses fresh keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.core import RPCException
from solana.rpc.jsonrpc import JsonRpcRequest, SolanaJsonRpcError
from solana.rpc.models import TokenAccountOpts, TxOpts
from solders.commitment_config import CommitmentLevel
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.rpc.config import RpcContextConfig
from solders.rpc.errors import (
    InvalidParamsMessage,
    SendTransactionPreflightFailureMessage,
    UnsupportedTransactionVersionMessage,
)
from solders.rpc.requests import IsBlockhashValid
from solders.rpc.responses import IsBlockhashValidResp
from solders.signature import Signature
from solders.system_program import (
    AdvanceNonceAccountParams,
    CreateAccountParams,
    TransferParams,
    advance_nonce_account,
    create_account,
    create_nonce_account,
    transfer,
)
from solders.transaction import Legacy, Transaction, VersionedTransaction
from solders.transaction_status import (
    TransactionConfirmationStatus,
    TransactionDetails,
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
)
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import (
    create_associated_token_account,
    get_associated_token_address,
    initialize_mint,
    mint_to_checked,
    transfer_checked,
)
from spl.token.models import InitializeMintParams, MintToCheckedParams, TransferCheckedParams

from adapters.errors import ChainError
from adapters.solana.svm_node import SvmNode

pytestmark = pytest.mark.integration

MEMO_V2 = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
SOL = 10**9  # lamports
RENT_MIN = 890_880  # lamports a new 0-byte account needs (rent exemption)
FINALITY = 8
T = TypeVar("T")


@pytest.fixture(scope="module")
def manual_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvmNode]:
    """A private server whose slots move only when a test calls `advance_slots`."""
    node = SvmNode.start(tmp_path_factory.mktemp("svm-manual"), slot_ms=0,
                         finality_slots=FINALITY, genesis_seed="ferry-test-manual")
    try:
        yield node
    finally:
        node.stop()


def run(url: str, body: Callable[[AsyncClient], Awaitable[T]]) -> T:
    """Run `body` with a fresh `AsyncClient` of `url` (default commitment finalized)."""
    async def main() -> T:
        async with AsyncClient(url, timeout=10.0) as client:
            return await body(client)
    return asyncio.run(main())


async def blockhash(client: AsyncClient) -> Hash:
    return (await client.get_latest_blockhash(Processed)).value.blockhash


async def send(client: AsyncClient, tx: Transaction, *, skip_preflight: bool = False) -> Signature:
    opts = TxOpts(skip_preflight=skip_preflight, preflight_commitment=Processed)
    return (await client.send_raw_transaction(bytes(tx), opts)).value


async def funded(client: AsyncClient, lamports: int = 10 * SOL) -> Keypair:
    key = Keypair()
    await client.request_airdrop(key.pubkey(), lamports, Processed)
    return key


async def pay(client: AsyncClient, payer: Keypair, to: Pubkey, lamports: int,
              *, skip_preflight: bool = False) -> Signature:
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))
    tx = Transaction([payer], Message([ix], payer.pubkey()), await blockhash(client))
    return await send(client, tx, skip_preflight=skip_preflight)


async def is_blockhash_valid(client: AsyncClient, value: Hash) -> bool:
    """isBlockhashValid at processed (solana-py 0.41 has no wrapper for it)."""
    request = IsBlockhashValid(value, RpcContextConfig(commitment=CommitmentLevel.Processed))
    return (await client._provider.make_request(request, IsBlockhashValidResp)).value


def preflight_error(exc: pytest.ExceptionInfo[RPCException]) -> SendTransactionPreflightFailureMessage:
    error = exc.value.args[0]
    assert isinstance(error, SendTransactionPreflightFailureMessage), error
    return error


def raw_call(url: str, payload: Any) -> Any:
    return httpx.post(url, json=payload, timeout=10.0).json()


# ------------------------------------------------------------------------------ process


def test_svm_node_reports_identity_and_slots_advance_on_their_own(svm_node: SvmNode) -> None:
    assert svm_node.caip2 == "solana:" + svm_node.genesis_hash[:32]

    async def body(client: AsyncClient) -> tuple[bool, Hash, int]:
        return (await client.is_connected(), (await client.get_genesis_hash()).value,
                (await client.get_slot(Processed)).value)

    healthy, genesis, first = run(svm_node.url, body)
    assert healthy and str(genesis) == svm_node.genesis_hash
    later = svm_node.wait_slot(first + 3, commitment="processed", timeout_s=10.0)
    assert svm_node.wait_slot(later, commitment="finalized", timeout_s=15.0) >= later


def test_svm_node_start_fails_fast_with_the_log_when_the_server_cannot_start(
        tmp_path: Path) -> None:
    with pytest.raises(ChainError, match="exited") as exc:
        SvmNode.start(tmp_path, finality_slots=0, ready_timeout_s=20.0)
    assert "--finality-slots >= 1" in str(exc.value)  # the log tail says why


def test_devnets_with_different_genesis_seeds_never_share_a_blockhash(
        svm_node: SvmNode, manual_node: SvmNode) -> None:
    assert svm_node.genesis_hash != manual_node.genesis_hash
    genesis_blocks = [node.call("getBlock", 0, {"transactionDetails": "none"})["blockhash"]
                      for node in (svm_node, manual_node)]
    assert genesis_blocks[0] != genesis_blocks[1]


def test_transaction_in_session_node_becomes_finalized_within_finality_slots(
        svm_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> TransactionConfirmationStatus:
        payer = await funded(client)
        signature = await pay(client, payer, Keypair().pubkey(), RENT_MIN)
        status = await client.confirm_transaction(signature, Finalized, sleep_seconds=0.1)
        return status.value[0].confirmation_status

    assert run(svm_node.url, body) == TransactionConfirmationStatus.Finalized


# ------------------------------------------------------------------------------ cluster methods


def test_cluster_methods_answer_per_commitment(manual_node: SvmNode) -> None:
    slot = manual_node.advance_slots(FINALITY + 3)

    async def body(client: AsyncClient) -> dict[str, Any]:
        latest = await client.get_latest_blockhash(Processed)
        finalized_hash = await client.get_latest_blockhash(Finalized)
        return {
            "slots": [(await client.get_slot(c)).value for c in (Processed, Confirmed, Finalized)],
            "height": (await client.get_block_height(Processed)).value,
            "latest": latest.value, "latest_ctx": latest.context.slot,
            "finalized_hash": finalized_hash.value.blockhash,
            "valid_latest": await is_blockhash_valid(client, latest.value.blockhash),
            "valid_unknown": await is_blockhash_valid(client, Hash.new_unique()),
            "rent0": (await client.get_minimum_balance_for_rent_exemption(0)).value,
            "rent165": (await client.get_minimum_balance_for_rent_exemption(165)).value,
            "version": (await client.get_version()).value.solana_core,
        }

    got = run(manual_node.url, body)
    assert got["slots"] == [slot, slot - 1, slot - FINALITY]
    assert got["height"] == slot
    assert got["latest_ctx"] == slot
    assert got["latest"].last_valid_block_height == slot + 150
    assert got["finalized_hash"] != got["latest"].blockhash
    assert got["valid_latest"] is True and got["valid_unknown"] is False
    assert got["rent0"] == 890_880 and got["rent165"] == 2_039_280
    assert got["version"]


def test_fee_for_message_counts_signatures_and_priority_fee(manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> tuple[int | None, int | None, int | None, int]:
        payer, other = await funded(client), await funded(client)
        recent = await blockhash(client)
        ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=other.pubkey(),
                                     lamports=5))
        ix2 = transfer(TransferParams(from_pubkey=other.pubkey(), to_pubkey=payer.pubkey(),
                                      lamports=5))
        one = MessageV0.try_compile(payer.pubkey(), [ix], [], recent)
        two = Message.new_with_blockhash([ix, ix2], payer.pubkey(), recent)
        priced = [set_compute_unit_limit(100_000), set_compute_unit_price(1000), ix]
        stale = MessageV0.try_compile(payer.pubkey(), [ix], [], Hash.new_unique())
        fees = [(await client.get_fee_for_message(m, Processed)).value for m in (one, two, stale)]
        # what LiteSVM actually charges for the priced message
        before = (await client.get_balance(payer.pubkey(), Processed)).value
        await send(client, Transaction([payer], Message(priced, payer.pubkey()), recent))
        after = (await client.get_balance(payer.pubkey(), Processed)).value
        return fees[0], fees[1], fees[2], before - after - 5

    one, two, stale, charged = run(manual_node.url, body)
    assert (one, two, stale) == (5000, 10_000, None)
    assert charged == 5000 + 100  # ceil(1000 micro-lamports * 100_000 CU / 10^6)


# ------------------------------------------------------------------------------ commitment


def test_transfer_is_visible_at_processed_and_finalized_only_after_finality_slots(
        manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> None:
        payer = await funded(client, 5 * SOL)
        manual_node.advance_slots(FINALITY)  # the airdrop is final
        dest = Keypair().pubkey()
        signature = await pay(client, payer, dest, 1 * SOL)

        async def status() -> Any:
            return (await client.get_signature_statuses([signature])).value[0]

        assert (await client.get_balance(dest, Processed)).value == 1 * SOL
        assert (await client.get_balance(dest, Finalized)).value == 0
        assert (await client.get_account_info(dest, Finalized)).value is None
        assert (await client.get_balance(payer.pubkey(), Finalized)).value == 5 * SOL
        assert (await status()).confirmation_status == TransactionConfirmationStatus.Processed
        assert (await client.get_transaction(signature, commitment=Confirmed)).value is None

        manual_node.advance_slots(1)
        assert (await status()).confirmation_status == TransactionConfirmationStatus.Confirmed
        assert (await client.get_transaction(signature, commitment=Confirmed)).value is not None
        assert (await client.get_transaction(signature, commitment=Finalized)).value is None
        assert await client.get_signatures_for_address(dest, commitment=Finalized) is not None
        assert (await client.get_signatures_for_address(dest, commitment=Finalized)).value == []
        assert (await client.get_balance(payer.pubkey(), Finalized)).value == 5 * SOL

        manual_node.advance_slots(FINALITY - 1)
        final = await status()
        assert final.confirmation_status == TransactionConfirmationStatus.Finalized
        assert final.confirmations is None
        assert (await client.get_balance(dest, Finalized)).value == 1 * SOL
        assert (await client.get_balance(payer.pubkey(), Finalized)).value == 4 * SOL - 5000
        info = (await client.get_account_info(dest, Finalized)).value
        assert info is not None and info.lamports == 1 * SOL and info.owner == Pubkey.default()
        sigs = (await client.get_signatures_for_address(dest, commitment=Finalized)).value
        assert [s.signature for s in sigs] == [signature]

    run(manual_node.url, body)


def test_reads_below_confirmed_are_refused_like_solana(manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> Any:
        with pytest.raises(RPCException) as exc:
            await client.get_transaction(Signature.default(), commitment=Processed)
        return exc.value.args[0]

    error = run(manual_node.url, body)
    assert isinstance(error, InvalidParamsMessage)
    assert "below `confirmed`" in error.message


# ------------------------------------------------------------------------------ admission


def test_blockhash_older_than_150_slots_is_refused_but_a_recent_one_is_accepted(
        manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> None:
        payer = await funded(client)
        manual_node.advance_slots(1)
        old = await blockhash(client)
        manual_node.advance_slots(150)  # `old` is now exactly 150 slots old: still valid
        recent_ix = transfer(TransferParams(from_pubkey=payer.pubkey(),
                                            to_pubkey=Keypair().pubkey(), lamports=RENT_MIN))
        edge = Transaction([payer], Message([recent_ix], payer.pubkey()), old)
        assert await is_blockhash_valid(client, old) is True
        landed = await send(client, edge)
        assert (await client.get_signature_statuses([landed])).value[0].err is None

        manual_node.advance_slots(1)  # 151 slots old
        assert await is_blockhash_valid(client, old) is False
        late_ix = transfer(TransferParams(from_pubkey=payer.pubkey(),
                                          to_pubkey=Keypair().pubkey(), lamports=RENT_MIN + 1))
        late = Transaction([payer], Message([late_ix], payer.pubkey()), old)
        with pytest.raises(RPCException) as exc:
            await send(client, late)
        assert preflight_error(exc).data.err == TransactionErrorFieldless.BlockhashNotFound
        # without preflight Solana answers the signature but the transaction never lands
        dropped = await send(client, late, skip_preflight=True)
        assert dropped == late.signatures[0]
        assert (await client.get_signature_statuses([dropped], True)).value == [None]

    run(manual_node.url, body)


def test_failing_transaction_is_refused_by_preflight_and_nothing_changes(
        manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> None:
        payer = await funded(client, 1 * SOL)
        with pytest.raises(RPCException) as exc:
            await pay(client, payer, Keypair().pubkey(), 2 * SOL)
        error = preflight_error(exc)
        assert isinstance(error.data.err, TransactionErrorInstructionError)
        assert error.data.err.index == 0
        assert error.data.logs and "insufficient lamports" in " ".join(error.data.logs)
        assert (await client.get_balance(payer.pubkey(), Processed)).value == 1 * SOL

    run(manual_node.url, body)


def test_failing_transaction_with_skip_preflight_is_recorded_and_pays_its_fee(
        manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> None:
        payer = await funded(client, 1 * SOL)
        dest = Keypair().pubkey()
        signature = await pay(client, payer, dest, 2 * SOL, skip_preflight=True)
        manual_node.advance_slots(FINALITY)

        status = (await client.get_signature_statuses([signature])).value[0]
        assert isinstance(status.err, TransactionErrorInstructionError)
        assert status.err.index == 0
        listed = (await client.get_signatures_for_address(dest, commitment=Finalized)).value
        assert [s.signature for s in listed] == [signature]
        assert isinstance(listed[0].err, TransactionErrorInstructionError)
        for encoding in ("json", "base64"):
            tx = (await client.get_transaction(signature, encoding,
                                               max_supported_transaction_version=0)).value
            assert tx is not None
            meta = tx.transaction.meta
            assert isinstance(meta.err, TransactionErrorInstructionError)
            assert meta.fee == 5000
            assert meta.pre_balances[0] - meta.post_balances[0] == 5000
        assert (await client.get_balance(payer.pubkey(), Finalized)).value == 1 * SOL - 5000
        assert (await client.get_balance(dest, Finalized)).value == 0

    run(manual_node.url, body)


def test_durable_nonce_transaction_lands_once_and_its_nonce_value_cannot_be_reused(
        manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> None:
        authority = await funded(client)
        nonce = Keypair()
        rent = (await client.get_minimum_balance_for_rent_exemption(80)).value
        create = create_nonce_account(authority.pubkey(), nonce.pubkey(), authority.pubkey(), rent)
        await send(client, Transaction([authority, nonce], Message(create, authority.pubkey()),
                                       await blockhash(client)))
        manual_node.advance_slots(1)  # a nonce cannot advance within the slot that set it

        async def nonce_value() -> Hash:
            info = (await client.get_account_info(nonce.pubkey(), Processed)).value
            assert info is not None
            return Hash(bytes(info.data)[40:72])

        def nonce_tx(value: Hash, lamports: int) -> Transaction:
            ixs = [advance_nonce_account(AdvanceNonceAccountParams(
                       nonce_pubkey=nonce.pubkey(), authorized_pubkey=authority.pubkey())),
                   transfer(TransferParams(from_pubkey=authority.pubkey(),
                                           to_pubkey=Keypair().pubkey(), lamports=lamports))]
            return Transaction([authority], Message(ixs, authority.pubkey()), value)

        value = await nonce_value()
        assert (await client.get_fee_for_message(nonce_tx(value, 1).message, Processed)
                ).value == 5000
        manual_node.advance_slots(200)  # durable: blockhash expiry does not apply
        first = nonce_tx(value, RENT_MIN)
        landed = await send(client, first)
        assert (await client.get_signature_statuses([landed])).value[0].err is None
        assert await nonce_value() != value

        with pytest.raises(RPCException) as exc:  # the same bytes again
            await send(client, first)
        assert preflight_error(exc).data.err == TransactionErrorFieldless.AlreadyProcessed
        assert await send(client, first, skip_preflight=True) == landed  # deduplicated

        with pytest.raises(RPCException) as exc:  # another transaction at the used value
            await send(client, nonce_tx(value, RENT_MIN + 1))
        assert preflight_error(exc).data.err == TransactionErrorFieldless.BlockhashNotFound
        assert (await client.get_fee_for_message(nonce_tx(value, 1).message, Processed)
                ).value is None

        # a failing durable-nonce transaction still pays its fee and consumes its nonce
        manual_node.advance_slots(1)
        current = await nonce_value()
        before = (await client.get_balance(authority.pubkey(), Processed)).value
        failing = await send(client, nonce_tx(current, 100 * SOL), skip_preflight=True)
        status = (await client.get_signature_statuses([failing])).value[0]
        assert isinstance(status.err, TransactionErrorInstructionError) and status.err.index == 1
        assert (await client.get_balance(authority.pubkey(), Processed)).value == before - 5000
        assert await nonce_value() != current
        manual_node.advance_slots(1)
        sigs = (await client.get_signatures_for_address(nonce.pubkey(), commitment=Confirmed)
                ).value
        assert [s.signature for s in sigs][:2] == [failing, landed]

    run(manual_node.url, body)


# ------------------------------------------------------------------------------ history


def test_signatures_for_address_pages_newest_first_with_before_until_and_limit(
        manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> None:
        payer = await funded(client)
        dest = Keypair().pubkey()
        sent = []
        for i in range(5):
            sent.append(await pay(client, payer, dest, 1_000_000 + i))
            manual_node.advance_slots(1)
        newest_first = sent[::-1]
        every = (await client.get_signatures_for_address(dest, commitment=Confirmed)).value
        assert [s.signature for s in every] == newest_first
        assert [s.slot for s in every] == sorted((s.slot for s in every), reverse=True)
        assert all(s.memo is None and s.block_time is not None for s in every)

        page = (await client.get_signatures_for_address(dest, limit=2,
                                                        commitment=Confirmed)).value
        assert [s.signature for s in page] == newest_first[:2]
        page = (await client.get_signatures_for_address(dest, before=page[-1].signature, limit=2,
                                                        commitment=Confirmed)).value
        assert [s.signature for s in page] == newest_first[2:4]
        page = (await client.get_signatures_for_address(dest, until=sent[1],
                                                        commitment=Confirmed)).value
        assert [s.signature for s in page] == newest_first[:3]
        page = (await client.get_signatures_for_address(dest, before=sent[3], until=sent[0],
                                                        commitment=Confirmed)).value
        assert [s.signature for s in page] == [sent[2], sent[1]]
        unknown = (await client.get_signatures_for_address(
            dest, before=Keypair().sign_message(b"x"), commitment=Confirmed)).value
        assert unknown == []

    run(manual_node.url, body)


def test_get_transaction_and_get_block_in_each_encoding(manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> None:
        payer = await funded(client)
        dest = Keypair().pubkey()
        signature = await pay(client, payer, dest, RENT_MIN + 123_456)
        raw = None
        slot = (await client.get_signature_statuses([signature])).value[0].slot
        manual_node.advance_slots(FINALITY)

        as_b64 = (await client.get_transaction(signature, "base64")).value
        assert as_b64 is not None and as_b64.slot == slot and as_b64.block_time is not None
        assert as_b64.transaction.version is None  # not asked for
        raw = as_b64.transaction.transaction
        assert isinstance(raw, VersionedTransaction) and raw.signatures[0] == signature
        meta = as_b64.transaction.meta
        assert meta.err is None and meta.fee == 5000
        assert meta.post_balances[1] == RENT_MIN + 123_456 and meta.pre_balances[1] == 0
        assert meta.log_messages and meta.compute_units_consumed

        as_json = (await client.get_transaction(signature, "json",
                                                max_supported_transaction_version=0)).value
        assert as_json is not None and as_json.transaction.version == Legacy.Legacy
        message = as_json.transaction.transaction.message
        assert message.account_keys[:2] == [payer.pubkey(), dest]
        assert as_json.transaction.transaction.signatures == [signature]

        block = (await client.get_block(slot, "base64",
                                        max_supported_transaction_version=0)).value
        assert block.block_height == slot and block.parent_slot == slot - 1
        assert signature in [t.transaction.signatures[0] for t in block.transactions]
        parent = (await client.get_block(slot - 1, transaction_details=TransactionDetails.None_)
                  ).value
        assert block.previous_blockhash == parent.blockhash
        sigs = (await client.get_block(slot, transaction_details=TransactionDetails.Signatures)
                ).value
        assert signature in sigs.signatures
        json_block = (await client.get_block(slot, "json")).value
        assert json_block.transactions is not None and len(json_block.transactions) >= 1

        latest = (await client.get_slot(Processed)).value
        with pytest.raises(RPCException, match="Block not available"):
            await client.get_block(latest, commitment=Finalized)

    run(manual_node.url, body)


def test_v0_transaction_needs_max_supported_transaction_version(manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> None:
        payer = await funded(client)
        message = MessageV0.try_compile(payer.pubkey(), [transfer(TransferParams(
            from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=RENT_MIN))], [],
            await blockhash(client))
        signature = (await client.send_transaction(
            VersionedTransaction(message, [payer]),
            TxOpts(preflight_commitment=Processed))).value
        manual_node.advance_slots(1)
        with pytest.raises(RPCException) as exc:
            await client.get_transaction(signature, "base64", commitment=Confirmed)
        assert isinstance(exc.value.args[0], UnsupportedTransactionVersionMessage)
        got = (await client.get_transaction(signature, "json", commitment=Confirmed,
                                            max_supported_transaction_version=0)).value
        assert got is not None and got.transaction.version == 0
        assert got.transaction.meta.loaded_addresses is not None

    run(manual_node.url, body)


def test_signature_statuses_need_history_search_beyond_the_status_cache(
        manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> tuple[Any, Any, Any]:
        payer = await funded(client)
        signature = await pay(client, payer, Keypair().pubkey(), RENT_MIN)
        manual_node.advance_slots(301)
        recent = (await client.get_signature_statuses([signature, Signature.default()])).value
        searched = (await client.get_signature_statuses([signature], True)).value
        return recent, searched, signature

    recent, searched, _ = run(manual_node.url, body)
    assert recent == [None, None]
    assert searched[0] is not None and searched[0].err is None


def test_spl_token_transfer_checked_with_memo_round_trips(manual_node: SvmNode) -> None:
    memo_text = "0x" + "ab" * 32

    async def body(client: AsyncClient) -> None:
        owner = await funded(client)
        receiver = Keypair()
        mint = Keypair()
        rent = (await client.get_minimum_balance_for_rent_exemption(82)).value
        source = get_associated_token_address(owner.pubkey(), mint.pubkey())
        dest = get_associated_token_address(receiver.pubkey(), mint.pubkey())
        setup = [
            create_account(CreateAccountParams(from_pubkey=owner.pubkey(),
                                               to_pubkey=mint.pubkey(), lamports=rent, space=82,
                                               owner=TOKEN_PROGRAM_ID)),
            initialize_mint(InitializeMintParams(decimals=6, program_id=TOKEN_PROGRAM_ID,
                                                 mint=mint.pubkey(),
                                                 mint_authority=owner.pubkey())),
            create_associated_token_account(owner.pubkey(), owner.pubkey(), mint.pubkey()),
            create_associated_token_account(owner.pubkey(), receiver.pubkey(), mint.pubkey()),
            mint_to_checked(MintToCheckedParams(program_id=TOKEN_PROGRAM_ID, mint=mint.pubkey(),
                                                dest=source, mint_authority=owner.pubkey(),
                                                amount=5_000_000, decimals=6)),
        ]
        setup_sig = await send(client, Transaction([owner, mint], Message(setup, owner.pubkey()),
                                                   await blockhash(client)))
        ixs = [transfer_checked(TransferCheckedParams(
                   program_id=TOKEN_PROGRAM_ID, source=source, mint=mint.pubkey(), dest=dest,
                   owner=owner.pubkey(), amount=1_500_000, decimals=6)),
               create_memo(MemoParams(program_id=MEMO_V2, signer=owner.pubkey(),
                                      message=memo_text.encode()))]
        sent = Transaction([owner], Message(ixs, owner.pubkey()), await blockhash(client))
        signature = await send(client, sent)
        manual_node.advance_slots(FINALITY)

        got = (await client.get_transaction(signature, "base64",
                                            max_supported_transaction_version=0)).value
        assert got is not None and bytes(got.transaction.transaction) == bytes(sent)
        assert got.transaction.version == Legacy.Legacy
        meta = got.transaction.meta
        post = {str(b.owner): b.ui_token_amount.amount for b in meta.post_token_balances}
        pre = {str(b.owner): b.ui_token_amount.amount for b in meta.pre_token_balances}
        assert post == {str(owner.pubkey()): "3500000", str(receiver.pubkey()): "1500000"}
        assert pre == {str(owner.pubkey()): "5000000", str(receiver.pubkey()): "0"}

        setup_tx = (await client.get_transaction(setup_sig, "json")).value
        assert setup_tx is not None
        inner = setup_tx.transaction.meta.inner_instructions  # the ATA program's CPIs
        assert inner and {i.index for i in inner} == {2, 3}

        listed = (await client.get_signatures_for_address(dest, limit=1)).value
        assert listed[0].signature == signature
        assert listed[0].memo == f"[{len(memo_text)}] {memo_text}"
        assert listed[0].confirmation_status == TransactionConfirmationStatus.Finalized

        balance = (await client.get_token_account_balance(dest)).value
        assert (balance.amount, balance.decimals, balance.ui_amount_string) == (
            "1500000", 6, "1.5")
        by_mint = (await client.get_token_accounts_by_owner(
            receiver.pubkey(), TokenAccountOpts(mint=mint.pubkey()))).value
        by_program = (await client.get_token_accounts_by_owner(
            owner.pubkey(), TokenAccountOpts(program_id=TOKEN_PROGRAM_ID))).value
        assert [a.pubkey for a in by_mint] == [dest]
        assert [a.pubkey for a in by_program] == [source]
        assert by_mint[0].account.owner == TOKEN_PROGRAM_ID
        assert len(by_mint[0].account.data) == 165
        assert bytes(by_mint[0].account.data)[32:64] == bytes(receiver.pubkey())
        many = (await client.get_multiple_accounts([mint.pubkey(), dest, Keypair().pubkey()])
                ).value
        assert many[0] is not None and many[0].owner == TOKEN_PROGRAM_ID
        assert many[1] is not None and len(many[1].data) == 165 and many[2] is None

    run(manual_node.url, body)


# ------------------------------------------------------------------------------ simulation


def test_simulate_transaction_reports_success_failure_and_account_state(
        manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> None:
        payer = await funded(client, 1 * SOL)
        dest = Keypair().pubkey()
        recent = await blockhash(client)
        ok = VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [transfer(TransferParams(
            from_pubkey=payer.pubkey(), to_pubkey=dest, lamports=RENT_MIN))], [], recent), [payer])
        sim = (await client.simulate_transaction(ok, accounts_addresses=[dest])).value
        assert sim.err is None and sim.logs and sim.units_consumed
        assert sim.accounts is not None and sim.accounts[0].lamports == RENT_MIN
        assert (await client.get_balance(dest, Processed)).value == 0  # nothing committed

        too_much = VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [transfer(
            TransferParams(from_pubkey=payer.pubkey(), to_pubkey=dest, lamports=2 * SOL))], [],
            recent), [payer])
        failed = (await client.simulate_transaction(too_much)).value
        assert isinstance(failed.err, TransactionErrorInstructionError)

        stale = VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [transfer(
            TransferParams(from_pubkey=payer.pubkey(), to_pubkey=dest, lamports=RENT_MIN))], [],
            Hash.new_unique()), [payer])
        assert (await client.simulate_transaction(stale)).value.err == (
            TransactionErrorFieldless.BlockhashNotFound)
        replaced = (await client.simulate_transaction(stale, replace_recent_blockhash=True)).value
        assert replaced.err is None and replaced.replacement_blockhash is not None

        forged = VersionedTransaction.populate(ok.message, [Keypair().sign_message(b"x")])
        assert (await client.simulate_transaction(forged)).value.err is None  # sigVerify off
        with pytest.raises(RPCException):
            await client.simulate_transaction(forged, sig_verify=True)

    run(manual_node.url, body)


# ------------------------------------------------------------------------------ json-rpc


def test_json_rpc_errors_follow_solana_codes(manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> tuple[int, Any]:
        with pytest.raises(SolanaJsonRpcError) as exc:
            await client.send_rpc_request(JsonRpcRequest(method="getNoSuchThing"), Any)
        with pytest.raises(RPCException) as bad:
            await client.get_token_account_balance(Keypair().pubkey())
        return exc.value.code, bad.value.args[0]

    code, bad = run(manual_node.url, body)
    assert code == -32601
    assert isinstance(bad, InvalidParamsMessage)

    assert raw_call(manual_node.url, {"jsonrpc": "2.0", "id": 7, "method": "getBalance",
                                      "params": ["not-a-key"]})["error"]["code"] == -32602
    assert raw_call(manual_node.url, {"jsonrpc": "2.0", "id": 8, "method": "getSignaturesForAddress",
                                      "params": [str(Keypair().pubkey()), {"limit": 1001}]}
                    )["error"]["code"] == -32602
    batch = raw_call(manual_node.url, [
        {"jsonrpc": "2.0", "id": 1, "method": "getHealth"},
        {"jsonrpc": "2.0", "id": 2, "method": "getSlot", "params": [{"commitment": "processed"}]},
        {"jsonrpc": "2.0", "id": 3, "method": "nope"}])
    assert [r["id"] for r in batch] == [1, 2, 3]
    assert batch[0]["result"] == "ok" and isinstance(batch[1]["result"], int)
    assert batch[2]["error"]["code"] == -32601
    assert httpx.post(manual_node.url, content=b"{", timeout=10.0).json()["error"]["code"] == (
        -32700)
    assert httpx.get(manual_node.url + "/health", timeout=10.0).text == "ok"


def test_request_airdrop_is_a_recorded_transfer(manual_node: SvmNode) -> None:
    async def body(client: AsyncClient) -> None:
        key = Keypair().pubkey()
        first = (await client.request_airdrop(key, 3 * SOL, Processed)).value
        again = (await client.request_airdrop(key, 3 * SOL, Processed)).value  # same slot
        assert first != again
        assert (await client.get_balance(key, Processed)).value == 6 * SOL
        manual_node.advance_slots(1)
        sigs = (await client.get_signatures_for_address(key, commitment=Confirmed)).value
        assert {s.signature for s in sigs} == {first, again}

    run(manual_node.url, body)
