"""`ferry demo`, Cosmos part: a user sends 100 STAKE to the escrow multisig with their ledger
account in the memo, receives wSTAKE, burns 40 of it to a Cosmos address and the escrow pays it.

Owns: that narrative. Like `relayer.cli.demo`, it sees only what a user sees: the simd node
(the user's own wallet and REST balances), the ledger API and the relayer API.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
from nacl.signing import SigningKey

from adapters.base import asset_key
from adapters.cosmos.adapter import CosmosAdapter
from adapters.cosmos.devnet import CosmosWallet
from ledger.client import LedgerClient
from ledger.transactions import sign_burn

STAKE = 10**6  # base units of one STAKE (6 decimals, as configured)


def run_cosmos_story(out: Any, net: Any, cfg: Any, user_key: SigningKey,
                     fmt: Callable[[int, int], str], wait_for: Callable[..., Any],
                     fail: Callable[[str], Exception]) -> None:
    info = net.info
    cosmos = cfg.cosmos[0]
    ledger = LedgerClient(info.ledger_url)
    relayer = httpx.Client(base_url=info.relayer_url, timeout=5)
    wallet = CosmosWallet(net.simd, net.cosmos_user_secret)
    account = "0x" + bytes(user_key.verify_key).hex()
    out.step("cosmos escrow (legacy amino multisig of the validators' keys)",
             escrow=cosmos.escrow_address, threshold=f"{cosmos.threshold} of "
             f"{len(cosmos.validator_pubkeys)}", user_wallet=wallet.address)
    tx = wallet.send(cosmos.escrow_address, 100 * STAKE, "stake", memo=account)
    out.step("sent 100 STAKE to the escrow with the ledger account in the memo", tx=tx,
             memo=account)

    def minted() -> Any:
        rows = relayer.get("/v1/transfers", params={"tx": tx}).json()["items"]
        return rows if rows and rows[0]["status"] == "transfer.executed" else None
    t = wait_for("mint of the STAKE deposit", minted, timeout_s=60)[0]
    asset = asset_key(cosmos.caip2, "stake")
    balance = ledger.account(bytes(user_key.verify_key)).balances.get(asset, 0)
    out.step("minted wSTAKE on the ledger", deposit_tx=tx, attestations=f"{net.threshold} of "
             f"{net.n}", ledger_seq=t["ledger_seq"], wSTAKE=fmt(balance, 6))
    if balance != 100 * STAKE:
        raise fail(f"wSTAKE balance {balance} != {100 * STAKE}")

    payee = CosmosWallet.address_of(secrets.token_bytes(32))
    nonce = ledger.account(bytes(user_key.verify_key)).nonce
    signed = sign_burn(user_key, cfg.network, nonce, asset, 40 * STAKE, cosmos.caip2, payee)
    receipt = ledger.submit_transaction(signed)
    burn_id = "0x" + signed.tx_id.hex()
    out.step("burned 40 wSTAKE to a Cosmos address", burn_id=burn_id, payee=payee,
             ledger_seq=receipt.seq)

    def released() -> Any:
        r = relayer.get(f"/v1/transfers/{burn_id}")
        return r.json() if r.status_code == 200 and r.json()["status"] == "transfer.executed" \
            else None
    t = wait_for("release of the wSTAKE burn", released, timeout_s=60)
    adapter = CosmosAdapter(cosmos)
    received = adapter.rpc.balance(payee, "stake")
    out.step("released on Cosmos (2-of-3 amino-JSON multisig)".replace(
        "2-of-3", f"{cosmos.threshold}-of-{len(cosmos.validator_pubkeys)}"),
        tx=t["dest_tx"], payee=payee, received_stake=fmt(received, 6),
        received_base_units=received)
    if received != 40 * STAKE:
        raise fail(f"payee received {received}, expected exactly {40 * STAKE}")
    [line] = [a for a in ledger.assets() if a.asset == asset]
    held = adapter.escrow_balance("stake")
    ok = line.supply == held
    out.step("supply check wSTAKE", ledger_supply=fmt(line.supply, 6),
             escrow_balance=fmt(held, 6),
             result="OK: supply == escrow balance" if ok else "MISMATCH")
    if not ok:
        raise fail("wSTAKE supply check failed")
