"""`ferry demo`, Solana part: a user deposits 1.5 SOL (as wrapped SOL) and 100 FTEST (an SPL
test token) into the escrow with their ledger account in a Memo, receives wSOL and wFTEST, burns
0.5 wSOL and 40 wFTEST to a fresh Solana wallet, and the validators' SPL multisig pays exactly
that from the escrow, creating the wallet's token accounts.

Owns: that narrative. Like `relayer.cli.demo`, it sees only what a user sees: the Solana RPC
(its own wallet, token balances), the ledger API and the relayer API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from nacl.signing import SigningKey
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from adapters.base import asset_key
from ledger.client import LedgerClient
from ledger.transactions import sign_burn

SOL = 10**9
FTEST = 10**6


def run_solana_story(out: Any, net: Any, cfg: Any, user_key: SigningKey,
                     fmt: Callable[[int, int], str], wait_for: Callable[..., Any],
                     fail: Callable[[str], Exception]) -> None:
    info, sol = net.info, cfg.solana[0]
    ledger = LedgerClient(info.ledger_url)
    relayer = httpx.Client(base_url=info.relayer_url, timeout=5)
    account = "0x" + bytes(user_key.verify_key).hex()
    native, test_mint = info.solana["native_mint"], info.solana["test_mint"]
    out.step("solana escrow (SPL Token multisig of the validators' Ed25519 keys)",
             chain=sol.caip2, multisig=sol.multisig,
             threshold=f"{sol.threshold} of {len(sol.validator_pubkeys)}",
             escrow_wsol=sol.escrow_of(native), escrow_ftest=sol.escrow_of(test_mint),
             nonce_account=sol.nonce_account)
    payee = Keypair().pubkey()
    with net.solana.user() as user:
        user.wrap_sol(2 * SOL)
        deposits = [("SOL", native, 3 * SOL // 2, 9), ("FTEST", test_mint, 100 * FTEST, 6)]
        for symbol, mint, amount, decimals in deposits:
            sig = user.deposit(mint, amount, account, multisig=sol.multisig)
            out.step(f"deposited {fmt(amount, decimals)} {symbol} into the escrow "
                     "(TransferChecked + Memo naming the ledger account)", tx=sig, memo=account)

            def minted(sig: str = sig) -> Any:
                rows = relayer.get("/v1/transfers", params={"tx": sig}).json()["items"]
                return rows if rows and rows[0]["status"] == "transfer.executed" else None
            t = wait_for(f"mint of the {symbol} deposit (at finalized commitment)", minted,
                         timeout_s=90)[0]
            asset = asset_key(sol.caip2, mint)
            balance = ledger.account(bytes(user_key.verify_key)).balances.get(asset, 0)
            out.step(f"minted w{symbol} on the ledger", ledger_seq=t["ledger_seq"],
                     balance=fmt(balance, decimals))
            if balance != amount:
                raise fail(f"w{symbol} balance {balance} != {amount}")

        burns = [("SOL", native, SOL // 2, 9), ("FTEST", test_mint, 40 * FTEST, 6)]
        for symbol, mint, amount, decimals in burns:
            asset = asset_key(sol.caip2, mint)
            nonce = ledger.account(bytes(user_key.verify_key)).nonce
            signed = sign_burn(user_key, cfg.network, nonce, asset, amount, sol.caip2,
                               str(payee))
            receipt = ledger.submit_transaction(signed)
            burn_id = "0x" + signed.tx_id.hex()
            out.step(f"burned {fmt(amount, decimals)} w{symbol} to a new Solana wallet",
                     burn_id=burn_id, payee=str(payee), ledger_seq=receipt.seq)

            def released(burn_id: str = burn_id) -> Any:
                r = relayer.get(f"/v1/transfers/{burn_id}")
                return r.json() if r.status_code == 200 and \
                    r.json()["status"] == "transfer.executed" else None
            t = wait_for(f"release of the w{symbol} burn", released, timeout_s=90)
            received = user.token_balance(mint, payee)
            out.step(f"released {symbol} on Solana ({sol.threshold}-of-"
                     f"{len(sol.validator_pubkeys)} SPL multisig, durable nonce)",
                     tx=t["dest_tx"], payee_token_account=str(
                         get_associated_token_address(payee, Pubkey.from_string(mint))),
                     received=fmt(received, decimals), received_base_units=received)
            if received != amount:
                raise fail(f"payee received {received} of {mint}, expected exactly {amount}")

        for symbol, mint, _, decimals in deposits:
            asset = asset_key(sol.caip2, mint)
            [line] = [a for a in ledger.assets() if a.asset == asset]
            held = user.token_balance(mint, sol.multisig)
            ok = line.supply == held
            out.step(f"supply check w{symbol}", ledger_supply=fmt(line.supply, decimals),
                     escrow_balance=fmt(held, decimals),
                     result="OK: supply == escrow balance" if ok else "MISMATCH")
            if not ok:
                raise fail(f"w{symbol} supply check failed")

