"""The user API against the in-process stack on a real anvil node: a user asks for a transfer,
sends exactly the transaction the API describes, and follows it through confirmations,
signatures and execution; then burns back with the unsigned burn the API hands out."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from nacl.signing import SigningKey
from web3 import Web3

from adapters.base import NATIVE_TOKEN, asset_key
from adapters.evm import devnet as evm
from api.app import ApiContext, create_api_app
from ledger.transactions import SignedTx
from tests.integration.stack import UNIT, Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path, anvil_eth):
    s = Stack(tmp_path, {"ethereum": anvil_eth})
    yield s
    s.close()


@pytest.fixture
def api(stack) -> TestClient:
    ctx = ApiContext(cfg=stack.cfg, store=stack.engine.store, ledger=stack.ledger_client(),
                     inbox=stack.inbox, swaps=None, clock=stack.engine.store.clock)
    return TestClient(create_api_app(ctx, rate_limits=False))


def send_call(w3: Web3, ins: dict[str, Any]) -> str:
    """Sign and send the API's ``evm_call`` as an ordinary wallet would (anvil's dev key)."""
    sender = Account.from_key(evm.ANVIL_DEV_KEY)
    tx = {"from": sender.address, "to": Web3.to_checksum_address(ins["to"]),
          "value": int(ins["value"]), "data": ins["data"], "chainId": w3.eth.chain_id,
          "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
          "gasPrice": w3.eth.gas_price}
    tx["gas"] = w3.eth.estimate_gas(tx)
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    return str(receipt["transactionHash"].to_0x_hex())


def test_an_eth_lock_asked_through_the_api_is_followed_to_execution(stack, api):
    chain = stack.chains["ethereum"]
    user = SigningKey.generate()
    account = bytes(user.verify_key)
    eth = asset_key(chain.caip2, NATIVE_TOKEN)
    created = api.post("/v1/transfers", headers={"Idempotency-Key": "lock-1"}, json={
        "source_chain": chain.caip2, "dest_chain": "ferry:ledger", "asset": eth,
        "amount": str(3 * UNIT // 2), "recipient": "0x" + account.hex()})
    assert created.status_code == 201, created.text
    request_id, ins = created.json()["id"], created.json()["instructions"]
    assert ins["to"] == stack.cfg.chains[0].bridge_address

    tx = send_call(chain.w3, ins)
    stack.tick()
    seen = api.get(f"/v1/transfers/{request_id}").json()
    assert (seen["status"], seen["source_tx"]) == ("transfer.observed", tx)
    assert seen["confirmations"] == {"have": 1, "need": stack.depth + 1}
    assert seen["waiting"]["reason"] == "confirmations" and seen["waiting"]["eta"] is not None
    assert seen["signatures"] == {"have": 0, "need": 3}

    stack.mine(stack.depth + 1)
    stack.tick()
    confirmed = api.get(f"/v1/transfers/{request_id}").json()
    assert confirmed["status"] == "transfer.confirmed"
    assert confirmed["confirmations"]["have"] >= confirmed["confirmations"]["need"]
    assert confirmed["waiting"] == {"reason": "quorum", "eta": None}

    stack.run_validators()
    signed = api.get(f"/v1/transfers/{request_id}").json()
    assert signed["signatures"] == {"have": 3, "need": 3} and signed["waiting"] is None

    stack.tick()
    done = api.get(f"/v1/transfers/{request_id}").json()
    assert done["status"] == "transfer.executed" and done["waiting"] is None
    assert [s["status"] for s in done["lifecycle"]] == [
        "awaiting_deposit", "transfer.observed", "transfer.confirmed", "transfer.attested",
        "transfer.executed"]
    times = [s["at"] for s in done["lifecycle"]]
    assert times == sorted(times)
    assert stack.balance(account, "ethereum") == 3 * UNIT // 2
    listed = api.get("/v1/transfers", params={"tx": tx}).json()["items"]
    assert [t["id"] for t in listed] == [request_id]

    chains = api.get("/v1/chains").json()["chains"]
    assert chains[0]["head"] >= done["block_number"] + stack.depth
    assert chains[0]["scanned"] is not None and chains[0]["lag_blocks"] is not None
    members = api.get("/v1/validators").json()["members"]
    assert sum(m["last_attestation_at"] is not None for m in members) >= 3

    # Burn back with the unsigned burn the API hands out, signed by the user's key.
    payee = Account.create().address.lower()
    burn = api.post("/v1/transfers", json={
        "source_chain": "ferry:ledger", "dest_chain": chain.caip2, "asset": eth,
        "amount": str(UNIT // 2), "recipient": payee, "sender": "0x" + account.hex()}).json()
    body = burn["instructions"]
    signature = user.sign(bytes.fromhex(body["sign_bytes"][2:])).signature
    stack.ledger_client().submit_transaction(SignedTx(body["tx"], signature))
    stack.settle()
    released = api.get(f"/v1/transfers/{burn['id']}").json()
    assert (released["event_key"], released["status"]) == (body["burn_id"], "transfer.executed")
    assert released["dest_tx"] is not None
    assert chain.w3.eth.get_balance(Web3.to_checksum_address(payee)) == UNIT // 2
