"""The user API over a real relayer store (SQLite) and the real ledger app (in process):
deposit instructions per chain family, validation codes, a transfer's lifecycle,
confirmations, signatures and waiting reason, cursor pages, chains and validators, and
idempotency keys."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading

import pytest
from fastapi.testclient import TestClient
from nacl.signing import SigningKey
from sqlalchemy import select, update
from web3 import Web3

from adapters.base import NATIVE_TOKEN, BlockRef, LockEvent, asset_key
from adapters.bitcoin.keys import public_key
from adapters.errors import RpcUnavailable
from api.app import ApiContext, create_api_app
from api.deposits import _bridge_contract
from api.idempotency import IdempotencyStore, request_hash
from api.ledger import create_ledger_app
from api.pagination import encode_cursor
from api.transfers import requests_table
from contracts import load_artifact
from ledger.client import LedgerClient
from ledger.config import LedgerGenesis
from ledger.service import Ledger
from ledger.transactions import SignedTx, verify_transaction
from relayer.config import FerryConfig
from relayer.heads import record_head
from relayer.inbox import AttestationInbox, TtlCache
from relayer.machine import TransferStatus as S
from relayer.metrics import RelayerMetrics
from relayer.models import Transfer
from relayer.store import Change, Store
from validators.eip712 import address_of

NETWORK = "ferry-test"
EVM = "eip155:31337"
BRIDGE = "0x" + "b1" * 20
TOKEN = "0x" + "70" * 20
T0 = 1_700_000_000.0
ETH = asset_key(EVM, NATIVE_TOKEN)
ERC20 = asset_key(EVM, TOKEN)
TT = Transfer.__table__  # type: ignore[attr-defined]


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


SOL_GENESIS = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d"
SOL_MULTISIG = "CqNfpD3Jbfj4nSLNha74B6mvqL6XmCgKensZ85wpB17Q"
SOL_FEE_PAYER = "H4LWJcmer93yo1PkunhX1rdobgz3PKb1oZ53NZ2mxYtF"
SOL_NONCE = "c6qFu9RjWoGXGfPfnm6Y3URbntaCqCqs63JWJ7Ji5yE"
SOL_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"

class World:
    def __init__(self, tmp_path) -> None:
        self.clock = Clock()
        self.members = [SigningKey.generate() for _ in range(3)]
        secp = [public_key(os.urandom(32)).hex() for _ in range(3)]
        self.cfg = FerryConfig(
            network=NETWORK,
            chains=[{"name": "ethereum", "chain_id": 31337, "rpc_url": "http://127.0.0.1:9",
                     "bridge_address": BRIDGE, "confirmation_depth": 2, "block_time_s": 2}],
            bitcoin=[{"name": "bitcoin", "network": "regtest", "rpc_url": "http://127.0.0.1:9",
                      "rpc_user": "u", "rpc_password": "p", "validator_pubkeys": secp,
                      "threshold": 2, "confirmation_depth": 3}],
            cosmos=[{"name": "cosmos", "chain_id": "ferry-sim", "rpc_url": "http://127.0.0.1:9",
                     "rest_url": "http://127.0.0.1:9", "validator_pubkeys": secp,
                     "threshold": 2, "denoms": [{"denom": "stake", "min_deposit": 100}]}],
            solana=[{"name": "solana", "genesis_hash": SOL_GENESIS, "rpc_url": "http://127.0.0.1:9",
                     "multisig": SOL_MULTISIG, "validator_pubkeys": [
                         bytes(k.verify_key).hex() for k in self.members],
                     "threshold": 2, "fee_payer": SOL_FEE_PAYER, "nonce_account": SOL_NONCE,
                     "mints": [{"mint": SOL_MINT, "decimals": 6, "min_deposit": 1000}]}],
            assets=[{"symbol": "wETH", "origin_chain": EVM, "origin_token": NATIVE_TOKEN,
                     "decimals": 18},
                    {"symbol": "wTEST", "origin_chain": EVM, "origin_token": TOKEN,
                     "decimals": 18}],
            validator_set={"threshold": 2, "members": [
                {"name": f"v{i}", "ed25519": "0x" + bytes(k.verify_key).hex(),
                 "evm_address": address_of(os.urandom(32))} for i, k in enumerate(self.members)]},
            api={"idempotency_ttl_s": 60})
        self.btc, self.cosmos, self.sol = self.cfg.bitcoin[0], self.cfg.cosmos[0], self.cfg.solana[0]
        self.cfg = self.cfg.model_copy(update={"assets": [*self.cfg.assets, *[
            type(self.cfg.assets[0])(symbol=s, origin_chain=c, origin_token=t, decimals=d)
            for s, c, t, d in (("wBTC", self.btc.caip2, "btc", 8),
                               ("wSTAKE", self.cosmos.caip2, "stake", 6),
                               ("wFTEST", self.sol.caip2, SOL_MINT, 6))]]})
        self.ledger = Ledger.open(f"sqlite:///{tmp_path}/ledger.sqlite", NETWORK, LedgerGenesis(
            self.cfg.genesis_set(), self.cfg.bridges(), list(self.cfg.assets)), clock=self.clock)
        self.ledger_client = LedgerClient("http://ledger", http=TestClient(
            create_ledger_app(self.ledger), base_url="http://ledger"))
        self.store = Store.open(f"sqlite:///{tmp_path}/relayer.sqlite", self.clock)
        inbox = AttestationInbox(self.store, NETWORK, TtlCache(self.ledger_client.status, 1.0,
                                                                self.clock), {}, {},
                                 RelayerMetrics(), self.clock)
        self.ctx = ApiContext(self.cfg, self.store, self.ledger_client, inbox, None, self.clock)
        self.app = create_api_app(self.ctx, rate_limits=False)
        self.http = TestClient(self.app)
        self.nonce = 0

    def post(self, body: dict, **kw):
        return self.http.post("/v1/transfers", json=body, **kw)

    def lock_request(self, account: bytes, amount: int = 10**18, asset: str = ETH) -> dict:
        r = self.post({"source_chain": asset.split("/")[0], "dest_chain": "ferry:ledger",
                       "asset": asset, "amount": str(amount), "recipient": "0x" + account.hex()})
        assert r.status_code == 201, r.text
        return r.json()

    def observe(self, account: bytes, amount: int = 10**18, block: int = 10) -> str:
        """The relayer sees a lock of `amount` wei for `account` in `block`."""
        self.nonce += 1
        e = LockEvent(EVM, BRIDGE, self.nonce, NATIVE_TOKEN, "0x" + "aa" * 20, amount, account,
                      "0x" + self.nonce.to_bytes(32, "big").hex(), 0, block,
                      "0x" + block.to_bytes(32, "big").hex())
        self.store.record_lock_events(EVM, [e], BlockRef(block, e.block_hash), {NATIVE_TOKEN: ETH})
        return e.event_id

    def move(self, key: str, to: S, **fields) -> None:
        self.clock.t += 1
        self.store.advance([Change(self.store.get(key).id, to, f"to {to}", fields)])

    def head(self, head: int, finalized: int) -> None:
        record_head(self.store, EVM, BlockRef(head, "0x" + "00" * 32),
                    BlockRef(finalized, "0x" + "00" * 32), BlockRef(head, "0x" + "00" * 32))

    def attest(self, key: str, signers: list[SigningKey]) -> None:
        self.store.add_attestations([
            {"kind": "lock", "event_key": key, "epoch": 1,
             "validator": "0x" + bytes(k.verify_key).hex(), "signature": "0x" + "11" * 64,
             "message_hash": "0x" + "22" * 32} for k in signers])


@pytest.fixture
def w(tmp_path):
    world = World(tmp_path)
    yield world
    world.ledger.close()


def user() -> bytes:
    return bytes(SigningKey.generate().verify_key)


# ------------------------------------------------------------------------- instructions
def test_native_lock_returns_bridge_lock_calldata_with_the_value(w):
    account = user()
    out = w.lock_request(account, 3 * 10**17)
    assert out["id"].startswith("tr_") and len(out["id"]) == 35
    assert out["status"] == "awaiting_deposit"
    ins = out["instructions"]
    assert (ins["kind"], ins["chain"], ins["to"], ins["value"]) == ("evm_call", EVM, BRIDGE,
                                                                    str(3 * 10**17))
    fn, args = _bridge_contract().decode_function_input(ins["data"])
    assert fn.fn_name == "lock"
    assert (args["token"].lower(), args["amount"], args["recipient"]) == (NATIVE_TOKEN,
                                                                          3 * 10**17, account)
    assert "approve" not in ins


def test_erc20_lock_asks_for_an_approve_and_sends_no_value(w):
    account = user()
    ins = w.lock_request(account, 5, ERC20)["instructions"]
    assert ins["value"] == "0"
    assert ins["approve"] == {"token": TOKEN, "spender": BRIDGE, "amount": "5"}
    bridge = Web3().eth.contract(abi=load_artifact("Bridge").abi)
    _, args = bridge.decode_function_input(ins["data"])
    assert (args["token"].lower(), args["amount"], args["recipient"]) == (TOKEN, 5, account)


def test_bitcoin_lock_gives_the_accounts_registered_deposit_address(w):
    account = user()
    ins = w.lock_request(account, 50_000, asset_key(w.btc.caip2, "btc"))["instructions"]
    assert ins["kind"] == "bitcoin_address"
    assert ins["address"] == w.btc.vault.deposit(account).address
    assert [r.account for r in w.ledger_client.deposit_accounts(w.btc.caip2)] == [account]


def test_cosmos_lock_sends_to_the_escrow_with_the_account_as_memo(w):
    account = user()
    ins = w.lock_request(account, 500, asset_key(w.cosmos.caip2, "stake"))["instructions"]
    assert ins == {"kind": "cosmos_send", "chain": w.cosmos.caip2,
                   "escrow": w.cosmos.escrow_address, "memo": "0x" + account.hex(),
                   "denom": "stake", "amount": "500"}


def test_solana_lock_is_a_transfer_checked_into_the_escrow_with_the_account_as_memo(w):
    account = user()
    ins = w.lock_request(account, 5000, asset_key(w.sol.caip2, SOL_MINT))["instructions"]
    assert ins == {"kind": "solana_transfer_checked", "chain": w.sol.caip2, "mint": SOL_MINT,
                   "decimals": 6, "escrow": w.sol.escrow_of(SOL_MINT),
                   "escrow_authority": SOL_MULTISIG, "memo": "0x" + account.hex(),
                   "amount": "5000"}
    r = w.post({"source_chain": w.sol.caip2, "dest_chain": "ferry:ledger",
                "asset": asset_key(w.sol.caip2, SOL_MINT), "amount": "999",
                "recipient": "0x" + account.hex()})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "amount_too_small")


def test_a_solana_payout_address_keeps_its_case_in_the_burn(w):
    key = SigningKey.generate()
    payee = SOL_FEE_PAYER  # any base58 address; base58 is case-sensitive
    r = w.post({"source_chain": "ferry:ledger", "dest_chain": w.sol.caip2,
                "asset": asset_key(w.sol.caip2, SOL_MINT), "amount": "7",
                "recipient": payee, "sender": "0x" + bytes(key.verify_key).hex()})
    assert r.status_code == 201, r.text
    ins = r.json()["instructions"]
    assert ins["tx"]["dest_address"] == payee and ins["tx"]["dest_chain"] == w.sol.caip2
    signed = SignedTx(ins["tx"], key.sign(bytes.fromhex(ins["sign_bytes"][2:])).signature)
    assert verify_transaction(signed, NETWORK).dest_address == payee


def test_burn_returns_the_unsigned_ledger_burn_with_the_next_nonce_and_its_id(w):
    key = SigningKey.generate()
    payee = "0x" + "Ab" * 20
    r = w.post({"source_chain": "ferry:ledger", "dest_chain": EVM, "asset": ETH, "amount": "7",
                "recipient": payee, "sender": "0x" + bytes(key.verify_key).hex()})
    assert r.status_code == 201, r.text
    ins = r.json()["instructions"]
    assert ins["kind"] == "ledger_burn" and ins["tx"]["nonce"] == "0"
    assert ins["tx"]["dest_address"] == payee.lower() and r.json()["recipient"] == payee.lower()
    signed_bytes = bytes.fromhex(ins["sign_bytes"][2:])
    assert ins["burn_id"] == "0x" + hashlib.sha256(signed_bytes).hexdigest()
    signed = SignedTx(ins["tx"], key.sign(signed_bytes).signature)
    assert verify_transaction(signed, NETWORK).amount == 7
    assert "0x" + signed.tx_id.hex() == ins["burn_id"]


BTC_MAINNET = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"


@pytest.mark.parametrize("change,status,code", [
    ({"asset": asset_key(EVM, "0x" + "99" * 20)}, 404, "unknown_asset"),
    ({"dest_chain": EVM}, 404, "unknown_route"),
    ({"source_chain": "ferry:ledger"}, 404, "unknown_route"),
    ({"amount": "0"}, 400, "invalid_input"),
    ({"amount": "1.5"}, 400, "invalid_input"),
    ({"amount": str(2**256)}, 400, "invalid_input"),
    ({"recipient": "0x" + "AB" * 32}, 400, "invalid_address"),
    ({"recipient": "0x1234"}, 400, "invalid_address"),
    ({"sender": "not-an-address"}, 400, "invalid_address"),
    ({"memo": "x"}, 400, "invalid_input"),
])
def test_lock_requests_are_validated_with_stable_codes(w, change, status, code):
    body = {"source_chain": EVM, "dest_chain": "ferry:ledger", "asset": ETH, "amount": "1",
            "recipient": "0x" + user().hex(), **change}
    r = w.post(body)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    with w.store.engine.connect() as conn:
        assert conn.execute(select(requests_table)).all() == []


def test_a_deposit_below_the_chains_minimum_is_refused(w):
    r = w.post({"source_chain": w.btc.caip2, "dest_chain": "ferry:ledger",
                "asset": asset_key(w.btc.caip2, "btc"), "amount": "9999",
                "recipient": "0x" + user().hex()})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "amount_too_small")


@pytest.mark.parametrize("dest,recipient,sender,code", [
    ("evm", "0x" + "00" * 20, "ok", "invalid_address"),
    ("evm", "0x12", "ok", "invalid_address"),
    ("evm", "0x" + "ab" * 20, None, "invalid_input"),
    ("evm", "0x" + "ab" * 20, "0x12", "invalid_address"),
    ("btc", BTC_MAINNET, "ok", "invalid_address"),
    ("cosmos", "osmo1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", "ok", "invalid_address"),
    ("solana", "0x" + "ab" * 20, "ok", "invalid_address"),
    ("solana", "So1111111111111111111111111111111111111111I", "ok", "invalid_address"),
])
def test_burn_requests_check_the_payout_address_and_the_account(w, dest, recipient, sender, code):
    chain, asset = {"evm": (EVM, ETH), "btc": (w.btc.caip2, asset_key(w.btc.caip2, "btc")),
                    "cosmos": (w.cosmos.caip2, asset_key(w.cosmos.caip2, "stake")),
                    "solana": (w.sol.caip2, asset_key(w.sol.caip2, SOL_MINT))}[dest]
    body = {"source_chain": "ferry:ledger", "dest_chain": chain, "asset": asset, "amount": "1",
            "recipient": recipient}
    if sender is not None:
        body["sender"] = "0x" + user().hex() if sender == "ok" else sender
    r = w.post(body)
    assert (r.status_code, r.json()["error"]["code"]) == (400, code), r.text


# ------------------------------------------------------------------------- lifecycle
def test_a_request_follows_its_lock_through_confirmations_signatures_and_execution(w):
    account = user()
    req = w.lock_request(account)
    view = w.http.get(f"/v1/transfers/{req['id']}").json()
    assert (view["status"], view["event_key"], view["waiting"]) == ("awaiting_deposit", None,
                                                                    None)
    assert view["instructions"] == req["instructions"]

    w.clock.t += 5
    w.observe(account, 10**18 + 1)  # another amount: not this request's deposit
    key = w.observe(account)
    w.head(10, 8)
    view = w.http.get(f"/v1/transfers/{req['id']}").json()
    assert (view["event_key"], view["status"]) == (key, "transfer.observed")
    assert view["confirmations"] == {"have": 1, "need": 3}  # depth 2: final 2 blocks on top
    assert view["signatures"] == {"have": 0, "need": 2}
    assert view["waiting"] == {"reason": "confirmations", "eta": w.clock.t + 2 * 2.0}

    w.head(12, 10)
    w.move(key, S.CONFIRMED)
    w.attest(key, w.members[:1])
    view = w.http.get(f"/v1/transfers/{req['id']}").json()
    assert view["confirmations"] == {"have": 3, "need": 3}
    assert view["signatures"] == {"have": 1, "need": 2}
    assert view["waiting"] == {"reason": "quorum", "eta": None}

    w.attest(key, w.members[1:])
    assert w.http.get(f"/v1/transfers/{key}").json()["waiting"] is None
    w.move(key, S.ATTESTED)
    w.move(key, S.EXECUTED, ledger_seq=4)
    view = w.http.get(f"/v1/transfers/{key}").json()
    assert (view["id"], view["request_id"]) == (req["id"], req["id"])
    assert view["signatures"] == {"have": 3, "need": 2} and view["ledger_seq"] == 4
    assert [(s["status"], s["at"]) for s in view["lifecycle"]] == [
        ("awaiting_deposit", T0), ("transfer.observed", T0 + 5), ("transfer.confirmed", T0 + 6),
        ("transfer.attested", T0 + 7), ("transfer.executed", T0 + 8)]
    assert view["amount"] == str(10**18) and view["route"] == f"{EVM}>ferry:ledger:{ETH}"


def test_a_lock_made_before_the_request_is_not_linked_to_it(w):
    account = user()
    w.observe(account)
    w.clock.t += 1
    req = w.lock_request(account)
    assert w.http.get(f"/v1/transfers/{req['id']}").json()["status"] == "awaiting_deposit"


def test_two_requests_for_the_same_deposit_link_to_distinct_transfers(w):
    account = user()
    first, second = w.lock_request(account), w.lock_request(account)
    keys = [w.observe(account), w.observe(account)]
    assert [w.http.get(f"/v1/transfers/{r['id']}").json()["event_key"]
            for r in (second, first)] == keys


def test_a_burn_request_links_to_its_burn_by_the_id_given_in_advance(w):
    key = SigningKey.generate()
    account = "0x" + bytes(key.verify_key).hex()
    r = w.post({"source_chain": "ferry:ledger", "dest_chain": EVM, "asset": ETH, "amount": "7",
                "recipient": "0x" + "ab" * 20, "sender": account}).json()
    from relayer.store import NewBurn

    burn_id = r["instructions"]["burn_id"]
    w.store.record_burns([NewBurn(burn_id, 3, EVM, NATIVE_TOKEN, ETH, 7, account,
                                  "0x" + "ab" * 20)], 3)
    view = w.http.get(f"/v1/transfers/{r['id']}").json()
    assert (view["event_key"], view["kind"], view["status"]) == (burn_id, "burn",
                                                                 "transfer.confirmed")
    assert view["confirmations"] is None
    assert view["signatures"] == {"have": 0, "need": 2}
    assert view["waiting"] == {"reason": "quorum", "eta": None}


@pytest.mark.parametrize("reason,until", [("rate_limit", T0 + 600.0),
                                          ("large_transfer_delay", T0 + 86_400.0),
                                          ("paused", None)])
def test_the_engines_persisted_wait_reason_is_shown_with_its_eta(w, reason, until):
    key = w.observe(user())
    w.move(key, S.CONFIRMED)
    w.attest(key, w.members)
    with w.store.engine.begin() as conn:
        conn.execute(update(TT).where(TT.c.event_key == key).values(wait_reason=reason,
                                                                    wait_until=until))
    assert w.http.get(f"/v1/transfers/{key}").json()["waiting"] == {"reason": reason,
                                                                    "eta": until}


def test_a_held_transfer_waits_for_an_operator(w):
    key = w.observe(user())
    w.move(key, S.HELD)
    assert w.http.get(f"/v1/transfers/{key}").json()["waiting"] == {"reason": "held",
                                                                    "eta": None}


def test_unknown_ids_are_404(w):
    for path in ("tr_" + "00" * 16, f"{EVM}/{BRIDGE}/99", "0x" + "00" * 32):
        r = w.http.get(f"/v1/transfers/{path}")
        assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_transfer")


# ------------------------------------------------------------------------- lists
def test_an_accounts_transfers_page_newest_first_until_the_last_page(w):
    account, other = user(), user()
    keys = [w.observe(account, 10**18 + i) for i in range(7)]
    w.observe(other)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"account": "0x" + account.hex(), "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = w.http.get("/v1/transfers", params=params).json()
        seen += [t["event_key"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == keys[::-1] and pages == 3


def test_lists_filter_by_tx_and_status(w):
    account = user()
    keys = [w.observe(account) for _ in range(3)]
    w.move(keys[1], S.CONFIRMED)
    tx = w.store.get(keys[2]).src_tx_hash
    by_tx = w.http.get("/v1/transfers", params={"tx": tx.upper().replace("0X", "0x")}).json()
    assert [t["event_key"] for t in by_tx["items"]] == [keys[2]]
    assert by_tx["next_cursor"] is None
    for status in ("confirmed", "transfer.confirmed"):
        page = w.http.get("/v1/transfers", params={"account": "0x" + account.hex(),
                                                   "status": status}).json()
        assert [t["event_key"] for t in page["items"]] == [keys[1]]


@pytest.mark.parametrize("params,code", [
    ({}, "invalid_input"),
    ({"account": "0xab", "cursor": "not a cursor!"}, "invalid_cursor"),
    ({"account": "0xab", "cursor": encode_cursor("swaps", 5)}, "invalid_cursor"),
    ({"account": "0xab", "cursor": encode_cursor("transfers", 5) + "A"}, "invalid_cursor"),
    ({"account": "0xab", "cursor": base64.urlsafe_b64encode(b"transfers:" + b"9" * 20)
      .decode()}, "invalid_cursor"),
    ({"account": "0xab", "limit": 501}, "invalid_input"),
    ({"account": "0xab", "status": "transfer.lost"}, "invalid_input"),
])
def test_bad_list_queries_are_400_with_a_code(w, params, code):
    r = w.http.get("/v1/transfers", params=params)
    assert (r.status_code, r.json()["error"]["code"]) == (400, code)


# ------------------------------------------------------------------------- network
def test_chains_show_head_finalized_scanned_and_lag(w):
    chains = {c["chain"]: c for c in w.http.get("/v1/chains").json()["chains"]}
    assert {c: v["family"] for c, v in chains.items()} == {
        EVM: "evm", w.btc.caip2: "bitcoin", w.cosmos.caip2: "cosmos", w.sol.caip2: "solana"}
    assert chains[EVM]["head"] is None
    record_head(w.store, EVM, BlockRef(20, "0x"), BlockRef(18, "0x"), BlockRef(15, "0x"))
    evm = w.http.get("/v1/chains").json()["chains"][0]
    assert (evm["head"], evm["finalized"], evm["scanned"], evm["lag_blocks"],
            evm["updated_at"]) == (20, 18, 15, 5, T0)


def test_validators_show_each_members_last_attestation_and_lag(w):
    w.attest("k1", w.members[:2])
    w.clock.t += 30
    w.attest("k2", w.members[:1])
    out = w.http.get("/v1/validators").json()
    assert (out["epoch"], out["threshold"]) == (1, 2)
    got = {m["ed25519"]: (m["last_attestation_at"], m["lag_s"]) for m in out["members"]}
    hexes = ["0x" + bytes(k.verify_key).hex() for k in w.members]
    assert [got[h] for h in hexes] == [(T0 + 30, 0.0), (T0, 30.0), (None, None)]


# ------------------------------------------------------------------------- idempotency
def _raw(body: dict) -> bytes:
    return json.dumps(body).encode()


def _post_raw(w, raw: bytes, key: str, path: str = "/v1/transfers"):
    return w.http.post(path, content=raw, headers={"Idempotency-Key": key,
                                                   "Content-Type": "application/json"})


def _lock_body() -> dict:
    return {"source_chain": EVM, "dest_chain": "ferry:ledger", "asset": ETH, "amount": "1",
            "recipient": "0x" + user().hex()}


def _requests(w) -> int:
    with w.store.engine.connect() as conn:
        return len(conn.execute(select(requests_table)).all())


def test_a_repeated_key_replays_the_first_answer_and_executes_once(w):
    raw = _raw(_lock_body())
    first, again = _post_raw(w, raw, "k-1"), _post_raw(w, raw, "k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replay"] == "true"
    assert "idempotent-replay" not in first.headers and _requests(w) == 1
    bad = _raw({**_lock_body(), "amount": "0"})
    assert [_post_raw(w, bad, "k-2").status_code for _ in range(2)] == [400, 400]
    assert _post_raw(w, bad, "k-2").headers["idempotent-replay"] == "true"


def test_a_key_reused_for_another_body_is_422_and_changes_nothing(w):
    assert _post_raw(w, _raw(_lock_body()), "k-1").status_code == 201
    r = _post_raw(w, _raw(_lock_body()), "k-1")
    assert (r.status_code, r.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert _requests(w) == 1


def test_a_key_in_flight_is_409_until_its_claim_goes_stale(w):
    raw = _raw(_lock_body())
    keys = IdempotencyStore(w.store, 60, w.clock)
    assert keys.claim(hashlib.sha256(b"").hexdigest(), "k-1",
                      request_hash("POST", "/v1/transfers", raw)) is None
    r = _post_raw(w, raw, "k-1")
    assert (r.status_code, r.json()["error"]["code"]) == (409, "idempotency_in_progress")
    assert _requests(w) == 0
    w.clock.t += 301  # the claiming process died: its claim is taken over
    assert _post_raw(w, raw, "k-1").status_code == 201 and _requests(w) == 1


def test_keys_expire_after_the_ttl_and_are_scoped_by_credentials(w):
    raw = _raw(_lock_body())
    ids = {_post_raw(w, raw, "k-1").json()["id"]}
    other = w.http.post("/v1/transfers", content=raw, headers={
        "Idempotency-Key": "k-1", "Content-Type": "application/json",
        "Authorization": "Bearer fry_x"})
    ids.add(other.json()["id"])
    w.clock.t += 61
    ids.add(_post_raw(w, raw, "k-1").json()["id"])
    assert len(ids) == 3 and _requests(w) == 3


def test_server_errors_are_not_stored_so_a_retry_runs_again(w):
    calls = []

    def flaky() -> dict:
        calls.append(1)
        if len(calls) == 1:
            raise RpcUnavailable("ledger down", chain="ferry:ledger")
        return {"ok": len(calls)}

    w.app.add_api_route("/v1/test-flaky", flaky, methods=["POST"])
    assert _post_raw(w, b"{}", "k-1", "/v1/test-flaky").status_code == 503
    assert _post_raw(w, b"{}", "k-1", "/v1/test-flaky").json() == {"ok": 2}
    assert _post_raw(w, b"{}", "k-1", "/v1/test-flaky").json() == {"ok": 2}
    assert len(calls) == 2


def test_a_concurrent_call_with_the_same_key_does_not_run_while_the_first_is_in_flight(w):
    started, release, runs, first = threading.Event(), threading.Event(), [], []

    def slow() -> dict:
        runs.append(1)
        started.set()
        release.wait(10)
        return {"runs": len(runs)}

    w.app.add_api_route("/v1/test-slow", slow, methods=["POST"])
    worker = threading.Thread(target=lambda: first.append(
        _post_raw(w, b"{}", "k-1", "/v1/test-slow")))
    worker.start()
    assert started.wait(10)
    r = _post_raw(w, b"{}", "k-1", "/v1/test-slow")
    assert (r.status_code, r.json()["error"]["code"]) == (409, "idempotency_in_progress")
    release.set()
    worker.join(10)
    assert first[0].json() == {"runs": 1}
    assert _post_raw(w, b"{}", "k-1", "/v1/test-slow").json() == {"runs": 1}
    assert len(runs) == 1


@pytest.mark.parametrize("key", ["", "x" * 201, "bad key"])
def test_malformed_idempotency_keys_are_refused(w, key):
    r = _post_raw(w, _raw(_lock_body()), key)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_idempotency_key")
    assert _requests(w) == 0
