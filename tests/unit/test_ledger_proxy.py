"""The API's ledger routes (`api.ledger_proxy`) over a real in-process ledger server: balances,
history with proofs, journal proofs and user-signed transactions are relayed through
`LedgerClient`, and a ledger refusal keeps its HTTP status and code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from nacl.signing import SigningKey

from api.ledger import create_ledger_app, install_error_handlers
from api.ledger_proxy import ledger_proxy_router
from ledger.client import LedgerClient
from ledger.merkle import verify_inclusion
from ledger.testing import Harness
from ledger.transactions import sign_burn, sign_transfer
from ledger.types import MintStatus


def api_app(client: LedgerClient) -> TestClient:
    app = FastAPI()
    app.include_router(ledger_proxy_router(SimpleNamespace(ledger=client)))
    install_error_handlers(app)
    return TestClient(app)


@dataclass
class Stack:
    h: Harness
    ledger_http: TestClient
    api: TestClient
    alice: SigningKey
    bob: bytes

    @property
    def alice_id(self) -> str:
        return "0x" + bytes(self.alice.verify_key).hex()


@pytest.fixture()
def s(h: Harness) -> Iterator[Stack]:
    ledger_http = TestClient(create_ledger_app(h.ledger))
    alice = SigningKey.generate()
    assert h.ledger.mint(h.certify(h.lock(1, 1000, bytes(alice.verify_key)))).status \
        is MintStatus.MINTED
    yield Stack(h, ledger_http, api_app(LedgerClient("http://ledger", http=ledger_http)), alice,
                b"\x22" * 32)


def test_account_balances_are_decimal_strings(s):
    r = s.api.get(f"/v1/ledger/accounts/{s.alice_id}")
    assert r.status_code == 200
    assert r.json() == {"account": s.alice_id, "nonce": "0",
                        "balances": {s.h.native_asset: "1000"}}
    assert r.json() == s.ledger_http.get(f"/v1/ledger/accounts/{s.alice_id}").json()
    assert s.api.get("/v1/ledger/accounts/0xnothex").status_code == 400


def test_transactions_are_relayed_and_show_up_in_the_history_with_proofs(s):
    transfer = sign_transfer(s.alice, s.h.network, 0, s.h.native_asset, 300, s.bob)
    r = s.api.post("/v1/ledger/transactions", json=transfer.to_json())
    assert r.status_code == 200 and r.json()["burn_id"] is None
    burn = sign_burn(s.alice, s.h.network, 1, s.h.native_asset, 100, s.h.chain,
                     "0x" + "cd" * 20)
    r = s.api.post("/v1/ledger/transactions", json=burn.to_json())
    assert r.status_code == 200 and r.json()["burn_id"] == "0x" + (burn.burn_id or b"").hex()
    body = s.api.get(f"/v1/ledger/accounts/{s.alice_id}/history").json()
    assert body == s.ledger_http.get(f"/v1/ledger/accounts/{s.alice_id}/history").json()
    assert [(i["kind"], i["delta"]) for i in body["items"]] == [
        ("burn", "-100"), ("transfer", "-300"), ("mint", "1000")]
    assert body["items"][1]["counterparty"] == "0x" + s.bob.hex()
    root = s.api.get("/v1/ledger/journal/root").json()
    for item in body["items"]:
        proof = item["proof"]
        assert proof["root"] == root["root"]
        assert verify_inclusion(bytes.fromhex(item["journal_hash"][2:]), item["seq"] - 1,
                                proof["tree_size"], [bytes.fromhex(p[2:]) for p in proof["path"]],
                                bytes.fromhex(root["root"][2:]))


def test_history_pages_through_the_ledger_cursor(s):
    for nonce in range(3):
        tx = sign_transfer(s.alice, s.h.network, nonce, s.h.native_asset, 1, s.bob)
        assert s.api.post("/v1/ledger/transactions", json=tx.to_json()).status_code == 200
    url = f"/v1/ledger/accounts/{s.alice_id}/history"
    first = s.api.get(url, params={"limit": 3}).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    rest = s.api.get(url, params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [i["kind"] for i in rest["items"]] == ["mint"] and rest["next_cursor"] is None
    bad = s.api.get(url, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    assert s.api.get(url, params={"limit": 0}).status_code == 400


def test_journal_proofs_are_relayed(s):
    seq = s.h.ledger.status().journal_seq
    r = s.api.get(f"/v1/ledger/journal/{seq}/proof", params={"tree_size": seq})
    assert r.status_code == 200
    assert r.json() == s.ledger_http.get(f"/v1/ledger/journal/{seq}/proof").json()
    bad = s.api.get(f"/v1/ledger/journal/{seq + 1}/proof")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"


@pytest.mark.parametrize(("make", "status", "code"), [
    (lambda s: sign_transfer(s.alice, s.h.network, 5, s.h.native_asset, 1, s.bob), 409,
     "bad_nonce"),
    (lambda s: sign_transfer(s.alice, s.h.network, 0, s.h.native_asset, 10**6, s.bob), 409,
     "insufficient_balance"),
    (lambda s: sign_transfer(s.alice, "other-net", 0, s.h.native_asset, 1, s.bob), 400,
     "wrong_network"),
    (lambda s: sign_transfer(s.alice, s.h.network, 0, "eip155:1/0x" + "12" * 20, 1, s.bob), 404,
     "unknown_asset"),
])
def test_ledger_refusals_keep_their_status_and_code(s, make, status, code):
    direct = s.ledger_http.post("/v1/ledger/transactions", json=make(s).to_json())
    proxied = s.api.post("/v1/ledger/transactions", json=make(s).to_json())
    assert (direct.status_code, direct.json()["error"]["code"]) == (status, code)
    assert (proxied.status_code, proxied.json()["error"]["code"]) == (status, code)
    assert s.h.ledger.account(bytes(s.alice.verify_key)).nonce == 0  # nothing applied


def test_a_forged_signature_is_refused(s):
    tx = sign_transfer(s.alice, s.h.network, 0, s.h.native_asset, 1, s.bob).to_json()
    tx["signature"] = "0x" + "00" * 64
    r = s.api.post("/v1/ledger/transactions", json=tx)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_signature"
    r = s.api.post("/v1/ledger/transactions", json={"tx": {}, "sig": "x"})
    assert r.status_code == 400


def test_an_unreachable_ledger_is_503(s):
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    api = api_app(LedgerClient("http://ledger", http=httpx.Client(
        base_url="http://ledger", transport=httpx.MockTransport(down))))
    r = api.get(f"/v1/ledger/accounts/{s.alice_id}/history")
    assert r.status_code == 503 and r.json()["error"]["code"] == "rpc_unavailable"
