"""The Solana adapter against the LiteSVM devnet server (session fixture ``svm_node``): deposits
into the SPL Token multisig's escrow ATAs, the start-up checks, and a durable-nonce release
planned, checked, co-signed by m validator Ed25519 keys, assembled and broadcast.

One escrow (fresh keys, mint, multisig, nonce account) is deployed per module; each test makes
its own deposits. Slots pass every 100 ms and finalized = slot - 8, so waits are short.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import transfer
from spl.token.models import TransferParams

from adapters.base import ReleasePlan, TxStatus
from adapters.errors import ConfigError, RpcUnavailable, ValidationError, WrongChain
from adapters.solana import release
from adapters.solana.adapter import SolanaAdapter
from adapters.solana.config import SolanaChainConfig
from adapters.solana.devnet import SolanaDeployer, SolanaWallet, memo_ix
from adapters.solana.errors import BroadcastRefused, NonceConsumed, SolanaRpcError
from adapters.solana.release import NATIVE_MINT, TOKEN_PROGRAM
from adapters.solana.rpc import ALREADY_PROCESSED, BLOCKHASH_NOT_FOUND, SolanaRpc
from adapters.solana.watcher import (
    BAD_MEMO,
    DUST,
    FAILED_TX,
    NO_RECIPIENT,
    UNCHECKED_TRANSFER,
    UNKNOWN_MINT,
)
from validators.keystore import ValidatorKeys

DECIMALS = 6
MIN_DEPOSIT = 1_000
SOL_MIN_DEPOSIT = 1_000_000
ACCOUNT = bytes(range(32))
MEMO = "0x" + ACCOUNT.hex()
BURN_ID = "0x" + "5e" * 32


@dataclass
class Bridge:
    node: Any
    deployer: SolanaDeployer
    user: SolanaWallet
    keys: list[Keypair]  # validator Ed25519 keys, members of the multisig
    fee_payer: Keypair
    multisig: Pubkey
    mint: Pubkey
    other_mint: Pubkey  # not configured; the multisig owns a token account of it
    nonce: Pubkey
    config: SolanaChainConfig
    adapter: SolanaAdapter

    def table(self, **over: Any) -> SolanaChainConfig:
        return SolanaChainConfig.model_validate({**self.config.model_dump(), **over})


@pytest.fixture(scope="module")
def bridge(svm_node: Any) -> Iterator[Bridge]:
    deployer = SolanaDeployer(svm_node.url, chain=svm_node.caip2)
    deployer.airdrop(1_000 * 10**9)
    keys = sorted((Keypair() for _ in range(3)), key=lambda k: bytes(k.pubkey()))
    fee_payer = Keypair()
    deployer.airdrop(10 * 10**9, fee_payer.pubkey())
    mint = deployer.create_mint(DECIMALS)
    other_mint = deployer.create_mint(DECIMALS)
    multisig = deployer.create_multisig([bytes(k.pubkey()) for k in keys], 2)
    deployer.create_escrow_accounts(multisig, [mint, NATIVE_MINT])
    deployer.create_token_account(multisig, other_mint)
    nonce = deployer.create_nonce_account(fee_payer.pubkey())
    mints = [{"mint": str(mint), "decimals": DECIMALS, "min_deposit": MIN_DEPOSIT},
             {"mint": str(NATIVE_MINT), "decimals": 9, "min_deposit": SOL_MIN_DEPOSIT}]
    config = SolanaChainConfig.model_validate({
        "name": "svm", "genesis_hash": svm_node.genesis_hash, "rpc_url": svm_node.url,
        "multisig": str(multisig), "validator_pubkeys": [bytes(k.pubkey()).hex() for k in keys],
        "threshold": 2, "fee_payer": str(fee_payer.pubkey()), "nonce_account": str(nonce),
        "mints": mints, "request_timeout_s": 5.0})
    user = SolanaWallet(svm_node.url, multisig=multisig, chain=svm_node.caip2)
    user.airdrop(100 * 10**9)
    SolanaWallet(svm_node.url, deployer.keypair, chain=svm_node.caip2).mint_to(
        mint, user.pubkey, 10**12)
    SolanaWallet(svm_node.url, deployer.keypair, chain=svm_node.caip2).mint_to(
        other_mint, user.pubkey, 10**12)
    user.wrap_sol(10 * 10**9)
    deployer.wait_slot_finalized(deployer.rpc.slot("confirmed"))
    adapter = SolanaAdapter(config, fee_payer_secret=fee_payer, read_attempts=2,
                            read_deadline_s=5.0)
    try:
        yield Bridge(svm_node, deployer, user, keys, fee_payer, multisig, mint, other_mint,
                     nonce, config, adapter)
    finally:
        adapter.close()
        user.close()
        deployer.close()


def _events_of(bridge: Bridge, signatures: list[str]) -> dict[str, list[Any]]:
    """Wait until every signature is finalized, then read their slots' events by signature."""
    slots = [bridge.user.wait_finalized(s).slot for s in signatures]
    events = bridge.adapter.lock_events(min(slots), max(slots))
    return {s: [e for e in events if e.tx_hash == s] for s in signatures}


# ---------------------------------------------------------------------------- deposits
def test_deposit_is_one_credited_event_at_finalized_and_not_before(bridge: Bridge) -> None:
    sig = bridge.user.send([memo_ix(MEMO),
                            bridge.user.transfer_checked_ix(
                                bridge.mint, bridge.config.escrow_of(str(bridge.mint)), 25_000)],
                           commitment="processed")
    slot = bridge.user.wait_status(sig, "processed").slot
    if bridge.adapter.rpc.slot("finalized") < slot - 2:  # 8 slots (800 ms) of margin
        with pytest.raises(RpcUnavailable, match="finalized"):
            bridge.adapter.lock_events(slot, slot)
        assert bridge.adapter.head().number < slot
        assert bridge.adapter.tx_status(sig) == TxStatus.INCLUDED
    with pytest.raises(RpcUnavailable, match="finalized"):
        bridge.adapter.lock_events(0, slot + 1_000)  # never a range above the finalized slot
    bridge.user.wait_finalized(sig)
    [event] = bridge.adapter.lock_events(slot, slot)
    assert event.uncredited is None and event.recipient == ACCOUNT
    assert (event.chain, event.contract, event.token, event.sender, event.amount) == (
        bridge.config.caip2, str(bridge.multisig), str(bridge.mint), bridge.user.address, 25_000)
    assert (event.tx_hash, event.log_index, event.block_number) == (sig, 1, slot)
    assert event.block_hash == bridge.adapter.block_hash(slot)
    assert bridge.adapter.tx_status(sig) == TxStatus.FINAL
    assert bridge.adapter.lock_events(slot, slot) == [event]  # re-scan: same event


def test_wrapped_sol_deposit_is_credited(bridge: Bridge) -> None:
    sig = bridge.user.deposit(NATIVE_MINT, 2 * 10**9, MEMO)
    [[event]] = _events_of(bridge, [sig]).values()
    assert event.uncredited is None and event.token == str(NATIVE_MINT)
    assert event.amount == 2 * 10**9 and event.recipient == ACCOUNT


def test_transfers_that_are_not_deposits_are_reported_with_their_reason(bridge: Bridge) -> None:
    user, escrow = bridge.user, bridge.config.escrow_of(str(bridge.mint))
    other_escrow = str(release.escrow_ata(bridge.multisig, bridge.other_mint))
    plain = transfer(TransferParams(program_id=TOKEN_PROGRAM, source=user.ata(bridge.mint),
                                    dest=Pubkey.from_string(escrow), owner=user.pubkey,
                                    amount=5_000))
    cases = {
        FAILED_TX: user.send([memo_ix(MEMO), user.transfer_checked_ix(bridge.mint, escrow,
                                                                      10**15)],
                             skip_preflight=True, expect_failure=True),
        "no memo": user.deposit(bridge.mint, 5_000, None),
        "two memos": user.send([memo_ix(MEMO), memo_ix(MEMO),
                                user.transfer_checked_ix(bridge.mint, escrow, 5_000)]),
        UNKNOWN_MINT: user.send([memo_ix(MEMO),
                                 user.transfer_checked_ix(bridge.other_mint, other_escrow,
                                                          5_000)]),
        UNCHECKED_TRANSFER: user.send([memo_ix(MEMO), plain]),
        DUST: user.deposit(bridge.mint, MIN_DEPOSIT - 1, MEMO),
    }
    found = _events_of(bridge, list(cases.values()))
    want = {FAILED_TX: FAILED_TX, "no memo": BAD_MEMO, "two memos": BAD_MEMO,
            UNKNOWN_MINT: UNKNOWN_MINT, UNCHECKED_TRANSFER: UNCHECKED_TRANSFER, DUST: DUST}
    for case, sig in cases.items():
        [event] = found[sig]
        assert (case, event.uncredited) == (case, want[case])
        assert event.recipient == NO_RECIPIENT and event.sender == user.address
    assert found[cases[UNKNOWN_MINT]][0].token == str(bridge.other_mint)


# ---------------------------------------------------------------------------- start-up checks
def test_verify_chain_accepts_the_deployed_escrow(bridge: Bridge) -> None:
    bridge.adapter.verify_chain()


@pytest.mark.parametrize(("change", "error", "match"), [
    ("genesis", WrongChain, "serves genesis"),
    ("threshold", ConfigError, "multisig"),
    ("signers", ConfigError, "multisig"),
    ("fee_payer", ConfigError, "authority"),
    ("decimals", ConfigError, "decimals"),
])
def test_verify_chain_refuses_a_config_the_chain_disagrees_with(
        bridge: Bridge, change: str, error: type[Exception], match: str) -> None:
    keys = list(bridge.config.validator_pubkeys)
    changes: dict[str, dict[str, Any]] = {
        "genesis": {"genesis_hash": str(Hash.new_unique())},
        "threshold": {"threshold": 3},
        "signers": {"validator_pubkeys": [*keys[:2], bytes(Keypair().pubkey()).hex()]},
        "fee_payer": {"fee_payer": str(Keypair().pubkey())},
        "decimals": {"mints": [{"mint": str(bridge.mint), "decimals": DECIMALS + 1}]},
    }
    over = changes[change]
    adapter = SolanaAdapter(bridge.table(**over), read_attempts=1)
    try:
        with pytest.raises(error, match=match):
            adapter.verify_chain()
    finally:
        adapter.close()


def test_a_fee_payer_key_other_than_the_config_is_refused(bridge: Bridge) -> None:
    with pytest.raises(ConfigError, match="fee payer"):
        SolanaAdapter(bridge.config, fee_payer_secret=Keypair(), rpc=bridge.adapter.rpc)


# ---------------------------------------------------------------------------- releases
class _NonceCheckedFirst:
    """The devnet's RPC as a real cluster answers a landed durable-nonce transaction sent
    again: the runtime checks the nonce before the status cache, so ``BlockhashNotFound``."""

    def __init__(self, rpc: Any) -> None:
        self._rpc = rpc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rpc, name)

    def send_transaction(self, raw: bytes, **kwargs: Any) -> str:
        try:
            return str(self._rpc.send_transaction(raw, **kwargs))
        except BroadcastRefused as exc:
            if exc.reason != ALREADY_PROCESSED:
                raise
            raise BroadcastRefused("Blockhash not found", chain=exc.chain,
                                   reason=BLOCKHASH_NOT_FOUND) from exc


def _signed(bridge: Bridge, plan: Any) -> dict[str, list[bytes]]:
    [message] = bridge.adapter.release_sighashes(plan)
    named = set(bridge.adapter.plan_signers(plan))
    return {bytes(k.pubkey()).hex(): [bytes(k.sign_message(message))] for k in bridge.keys
            if bytes(k.pubkey()).hex() in named}


def test_release_pays_exactly_once_and_consumes_the_nonce(bridge: Bridge) -> None:
    a, dest = bridge.adapter, Keypair().pubkey()
    bridge.user.wait_finalized(bridge.user.deposit(bridge.mint, 1_000_000, MEMO))
    escrow_before = a.escrow_balance(str(bridge.mint))
    old = a.current_sequence()
    assert old is not None

    plan = a.plan_release(str(dest), str(bridge.mint), 400_000, BURN_ID)
    assert a.plan_sequence(plan) == old
    assert plan.txid == hashlib.sha256(plan.unsigned).hexdigest()
    a.check_release(plan, dest_address=str(dest), amount=400_000, token=str(bridge.mint),
                    burn_id=BURN_ID)
    with pytest.raises(ValidationError):
        a.check_release(plan, dest_address=str(dest), amount=400_001, token=str(bridge.mint),
                        burn_id=BURN_ID)
    signatures = _signed(bridge, plan)
    assert len(signatures) == 2
    for member, sig in signatures.items():
        assert a.verify_release_signatures(plan, member, sig)
    outsider = next(bytes(k.pubkey()).hex() for k in bridge.keys
                    if bytes(k.pubkey()).hex() not in signatures)
    assert not a.verify_release_signatures(plan, outsider, [bytes(bridge.keys[0].sign_message(
        plan.unsigned))])

    prepared = a.assemble_release(plan, signatures)
    assert prepared.tx_hash == a.tx_id(prepared.raw)
    assert a.broadcast(prepared) == prepared.tx_hash
    seen = [a.tx_status(prepared.tx_hash)]
    deadline = time.monotonic() + 20
    while seen[-1] != TxStatus.FINAL and time.monotonic() < deadline:
        time.sleep(0.05)
        seen.append(a.tx_status(prepared.tx_hash))
    assert seen[0] == TxStatus.INCLUDED and seen[-1] == TxStatus.FINAL
    assert set(seen) == {TxStatus.INCLUDED, TxStatus.FINAL}
    assert bridge.user.token_balance(bridge.mint, dest) == 400_000
    assert a.escrow_balance(str(bridge.mint)) == escrow_before - 400_000

    assert a.broadcast(prepared) == prepared.tx_hash  # same bytes again: nothing more
    mainnet_like = SolanaAdapter(bridge.config, rpc=cast(Any, _NonceCheckedFirst(a.rpc)))
    assert mainnet_like.broadcast(prepared) == prepared.tx_hash
    bridge.user.wait_slot_finalized(a.rpc.slot("confirmed"))
    assert bridge.user.token_balance(bridge.mint, dest) == 400_000

    assert a.current_sequence() != old
    assert a.sequence_consumed(old) and not a.sequence_consumed(a.current_sequence() or "")
    assert a.memo_at_sequence(old) == f"ferry release {BURN_ID}"
    with pytest.raises(ValidationError, match="no finalized transaction"):
        a.memo_at_sequence(str(Hash.new_unique()))

    # Another burn planned at the consumed value can never land.
    stale = release.build_release_message(
        fee_payer=bridge.fee_payer.pubkey(), nonce_account=bridge.nonce,
        nonce_value=Hash.from_string(old), multisig=bridge.multisig, mint=bridge.mint,
        decimals=DECIMALS, dest_owner=dest, amount=1_000, burn_id_hex="0x" + "77" * 32,
        signers=[bytes(k.pubkey()) for k in bridge.keys[:2]])
    stale_plan = ReleasePlan(kind="release", chain=plan.chain,
                             txid=hashlib.sha256(stale).hexdigest(), unsigned=stale, coins=(),
                             dest_address=str(dest), amount=1_000, payee_amount=1_000, fee=0,
                             fee_rate=0, change=0)
    with pytest.raises(NonceConsumed):
        a.broadcast(a.assemble_release(stale_plan, _signed(bridge, stale_plan)))
    assert bridge.user.token_balance(bridge.mint, dest) == 400_000


def test_plan_avoids_members_that_did_not_sign_and_refunds_are_refused(bridge: Bridge) -> None:
    a, dest = bridge.adapter, str(Keypair().pubkey())
    first = a.plan_release(dest, str(bridge.mint), 5_000, BURN_ID)
    named = a.plan_signers(first)
    assert list(named) == sorted(a.members())[:2]
    again = a.plan_release(dest, str(bridge.mint), 5_000, BURN_ID, avoid=frozenset(named[:1]))
    assert set(a.plan_signers(again)) == set(a.members()) - {named[0]}
    assert a.plan_sequence(again) == a.plan_sequence(first)
    with pytest.raises(ValidationError):
        a.plan_release("not-an-address", str(bridge.mint), 5_000, BURN_ID)
    with pytest.raises(ValidationError):
        a.plan_release(dest, str(bridge.other_mint), 5_000, BURN_ID)
    with pytest.raises(ValidationError):
        a.plan_refund("x/0")
    with pytest.raises(ValidationError):
        a.assemble_release(first, {})
    # The relayer's keystore key (an Ed25519 signer, not a Keypair) assembles the same bytes.
    keystore_key = ValidatorKeys(bridge.fee_payer.secret(), (1).to_bytes(32, "big"))
    relayer = SolanaAdapter(bridge.config, fee_payer=keystore_key, rpc=a.rpc)
    assert relayer.assemble_release(first, _signed(bridge, first)) == \
        a.assemble_release(first, _signed(bridge, first))
    assert a.validator_set() == (1, a.members(), 2) and a.key_type == "ed25519"


# ---------------------------------------------------------------------------- RPC boundary
class _Canned(http.server.BaseHTTPRequestHandler):
    """Answers every POST with ``reply`` (status, body)."""

    reply: tuple[int, bytes] = (200, b"")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status, body = self.reply
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _rpc_error(code: int, message: str, **data: Any) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data:
        error["data"] = data
    return json.dumps({"jsonrpc": "2.0", "id": 0, "error": error}).encode()


@pytest.mark.parametrize(("reply", "error", "match"), [
    ((200, b"<html>proxy error</html>"), RpcUnavailable, "unreadable"),
    ((502, b"bad gateway"), RpcUnavailable, "HTTPStatusError"),
    ((200, _rpc_error(-32005, "Node is unhealthy", numSlotsBehind=42)), RpcUnavailable,
     "unhealthy"),
    ((200, _rpc_error(-32005, "Node is unhealthy")), RpcUnavailable, "parser panic"),
    ((200, _rpc_error(-32602, "Invalid params")), SolanaRpcError, "Invalid params"),
])
def test_rpc_faults_become_ferry_errors(reply: tuple[int, bytes], error: type[Exception],
                                        match: str) -> None:
    _Canned.reply = reply
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rpc = SolanaRpc(f"http://127.0.0.1:{server.server_port}", chain="solana:test",
                    read_attempts=2, read_deadline_s=2.0)
    try:
        with pytest.raises(error, match=match):
            rpc.slot()
    finally:
        rpc.close()
        server.shutdown()
        server.server_close()
    with pytest.raises(SolanaRpcError, match="closed"):
        rpc.slot()


def test_rpc_node_down_is_retryable_and_bounded() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rpc = SolanaRpc(f"http://127.0.0.1:{port}", chain="solana:test", read_attempts=3,
                    read_deadline_s=2.0)
    started = time.monotonic()
    try:
        with pytest.raises(RpcUnavailable, match="ConnectError"):
            rpc.genesis_hash()
    finally:
        rpc.close()
    assert time.monotonic() - started < 5.0
