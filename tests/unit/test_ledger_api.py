"""The ledger HTTP API (api/ledger.py) and its client (ledger/client.py), end to end through
FastAPI's TestClient and through uvicorn on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from nacl.signing import SigningKey

from adapters.errors import (
    BadNonce,
    InsufficientBalance,
    InvalidAddress,
    RpcUnavailable,
    UnknownAsset,
    ValidationError,
)
from api.ledger import create_ledger_app
from ledger.client import LedgerClient
from ledger.errors import WrongEpoch, WrongNetwork
from ledger.testing import Harness, make_validator_set, sign_rotation
from ledger.transactions import sign_burn, sign_transfer
from ledger.types import MintStatus

PAYEE = "0x" + "22" * 20



@pytest.fixture()
def http(h: Harness) -> Iterator[TestClient]:
    with TestClient(create_ledger_app(h.ledger)) as client:
        yield client


@pytest.fixture()
def client(http: TestClient) -> LedgerClient:
    return LedgerClient("http://testserver", http=http)


def test_status_round_trip(h, http, client):
    raw = http.get("/v1/ledger/status").json()
    assert set(raw) == {"network", "epoch", "validator_set", "journal_seq", "journal_head",
                        "journal_root"}
    assert raw["validator_set"] == h.validator_set.to_json() and raw["epoch"] == "1"
    assert client.status() == h.ledger.status()


def test_mints_round_trip_with_per_item_results(h, http, client):
    alice = bytes(SigningKey.generate().verify_key)
    good = h.certify(h.lock(1, 10**18, alice))
    weak = h.certify(h.lock(2, 5, alice), signers=h.keys[:1])
    results = client.submit_mints([good, weak, good])
    assert [(r.status, r.code) for r in results] == [
        (MintStatus.MINTED, None), (MintStatus.REJECTED, "quorum_not_met"),
        (MintStatus.DUPLICATE, None)]
    assert results[0].event_id == good.event.event_id and results[2].seq == results[0].seq
    assert client.account(alice).balances == {h.native_asset: 10**18}

    # a malformed item is rejected on its own; the others still apply
    body = {"mints": [good.to_json(), h.certify(h.lock(3, 7, alice)).to_json()]}
    body["mints"][0]["event"]["recipient"] = "0x1234"
    raw = http.post("/v1/ledger/mints", json=body).json()["results"]
    assert raw[0] == {"event_id": good.event.event_id, "status": "rejected",
                      "code": "invalid_address", "seq": None, "retry_at": None}
    assert raw[1]["status"] == "minted" and isinstance(raw[1]["seq"], int)


def test_burn_transfer_account_burns_assets_journal_round_trip(h, http, client):
    key = SigningKey.generate()
    alice = bytes(key.verify_key)
    client.submit_mints([h.certify(h.lock(1, 1000, alice))])
    tx = sign_burn(key, h.network, 0, h.native_asset, 400, h.chain, PAYEE)
    receipt = client.submit_transaction(tx)
    assert receipt.burn_id == tx.burn_id
    raw_account = http.get(f"/v1/ledger/accounts/0x{alice.hex()}").json()
    assert raw_account == {"account": "0x" + alice.hex(), "nonce": "1",
                           "balances": {h.native_asset: "600"}}
    client.submit_transaction(sign_transfer(key, h.network, 1, h.native_asset, 100, bytes(32)))
    assert client.account(alice) == h.ledger.account(alice)

    raw_burn = http.get("/v1/ledger/burns", params={"after_seq": 0, "limit": 10}).json()["burns"]
    assert set(raw_burn[0]) == {"seq", "burn_id", "account", "asset", "origin_chain",
                                "origin_token", "amount", "dest_chain", "dest_address", "tx",
                                "signature"}
    assert raw_burn[0]["amount"] == "400" and raw_burn[0]["burn_id"] == "0x" + tx.burn_id.hex()
    assert client.burns() == h.ledger.burns()
    assert client.burns(after_seq=receipt.seq) == []

    raw_assets = http.get("/v1/ledger/assets").json()["assets"]
    weth = next(a for a in raw_assets if a["asset"] == h.native_asset)
    assert weth == {"asset": h.native_asset, "symbol": "wETH", "origin_chain": h.chain,
                    "origin_token": "0x" + "00" * 20, "decimals": 18, "supply": "600",
                    "minted_total": "1000", "burned_total": "400"}
    assert client.assets() == h.ledger.assets()

    assert client.journal(0, 1000) == h.ledger.journal(0, 1000)
    assert client.journal(after_seq=2, limit=1)[0].seq == 3
    raw_entry = http.get("/v1/ledger/journal?after_seq=0&limit=1").json()["entries"][0]
    assert set(raw_entry) == {"seq", "kind", "payload", "prev_hash", "hash"}


def test_rotation_round_trip(h, client):
    new_set, _ = make_validator_set(4, 3, epoch=2)
    seq = client.rotate_validator_set(new_set, sign_rotation(h.keys[:3], h.network, 1, new_set))
    assert client.status().validator_set == new_set and client.status().journal_seq == seq
    with pytest.raises(WrongEpoch):
        client.rotate_validator_set(new_set, sign_rotation(h.keys[:3], h.network, 2, new_set))


def test_typed_errors_come_back_through_the_client(h, http, client):
    key = SigningKey.generate()
    client.submit_mints([h.certify(h.lock(1, 10, bytes(key.verify_key)))])
    cases = [
        (sign_burn(key, h.network, 1, h.native_asset, 1, h.chain, PAYEE), BadNonce, 409),
        (sign_burn(key, h.network, 0, h.native_asset, 11, h.chain, PAYEE), InsufficientBalance,
         409),
        (sign_burn(key, h.network, 0, h.token_asset, 1, h.other_chain, PAYEE), ValidationError,
         400),
        (sign_burn(key, h.network, 0, "eip155:31337/0x" + "dd" * 20, 1, h.chain, PAYEE),
         UnknownAsset, 404),
        (sign_burn(key, "mainnet", 0, h.native_asset, 1, h.chain, PAYEE), WrongNetwork, 400),
    ]
    for tx, error, status in cases:
        with pytest.raises(error):
            client.submit_transaction(tx)
        response = http.post("/v1/ledger/transactions", json=tx.to_json())
        assert response.status_code == status
        assert response.json()["error"]["code"] == error.code
        assert set(response.json()["error"]) == {"code", "message"}
    assert client.account(bytes(key.verify_key)).nonce == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/ledger/transactions", {"tx": {}}, 400, "invalid_input"),
        ("POST", "/v1/ledger/mints", {"mints": "x"}, 400, "invalid_input"),
        ("POST", "/v1/ledger/mints", {"mints": [], "extra": 1}, 400, "invalid_input"),
        ("GET", "/v1/ledger/accounts/0x12", None, 400, "invalid_address"),
        ("GET", "/v1/ledger/burns?limit=0", None, 400, "invalid_input"),
        ("GET", "/v1/ledger/journal?limit=1001", None, 400, "invalid_input"),
        ("GET", "/v1/ledger/nope", None, 404, "not_found"),
    ],
)
def test_bad_requests_get_the_error_body(http, method, path, body, status, code):
    response = http.request(method, path, json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_client_raises_typed_error_for_bad_account_path(client):
    with pytest.raises(InvalidAddress):
        client.account(b"\x01" * 31)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_transport_failure_is_rpc_unavailable():
    client = LedgerClient(f"http://127.0.0.1:{_free_port()}", timeout_s=2.0)
    with pytest.raises(RpcUnavailable) as err:
        client.status()
    assert err.value.chain == "ferry:ledger"
    client.close()


def test_server_error_is_rpc_unavailable():
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    http = httpx.Client(base_url="http://ledger", transport=httpx.MockTransport(handler))
    with pytest.raises(RpcUnavailable):
        LedgerClient("http://ledger", http=http).assets()


def test_round_trip_over_uvicorn_on_a_free_port(h):
    port = _free_port()
    config = uvicorn.Config(create_ledger_app(h.ledger), host="127.0.0.1", port=port,
                            log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        with LedgerClient(f"http://127.0.0.1:{port}", timeout_s=5.0) as client:
            alice = bytes(SigningKey.generate().verify_key)
            (result,) = client.submit_mints([h.certify(h.lock(1, 3, alice))])
            assert result.status is MintStatus.MINTED
            assert client.account(alice).balances == {h.native_asset: 3}
            assert client.status().journal_seq == result.seq
    finally:
        server.should_exit = True
        thread.join(timeout=10)
