"""`ferry demo`, Bitcoin part: a user deposits BTC to their own deposit address, receives wBTC,
burns part of it to a Bitcoin address and receives the BTC (minus the miner fee).

Owns: that narrative. Like `relayer.cli.demo`, it sees only what a user sees: the btcd node
(through the devnet's faucet wallet and its own `BitcoinAdapter`), the ledger API and the
relayer API; regtest blocks are mined on demand while it waits.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
from bitcoin.core import CTransaction
from nacl.signing import SigningKey

from adapters.base import Coin, asset_key
from adapters.bitcoin.adapter import BitcoinAdapter
from adapters.bitcoin.devnet import address_p2wpkh
from adapters.bitcoin.keys import public_key
from adapters.bitcoin.scripts import script_pubkey_from_address
from ledger.client import LedgerClient
from ledger.transactions import sign_burn
from relayer.cli.wiring import deposit_address
from relayer.solvency import custody_report

SAT = 10**8


def run_bitcoin_story(out: Any, net: Any, cfg: Any, user_key: SigningKey,
                      fmt: Callable[[int, int], str], fail: Callable[[str], Exception]) -> None:
    info = net.info
    btc = cfg.bitcoin[0]
    ledger = LedgerClient(info.ledger_url)
    relayer = httpx.Client(base_url=info.relayer_url, timeout=5)
    account = "0x" + bytes(user_key.verify_key).hex()
    reg = deposit_address(cfg, account, None, offline=False)
    out.step("bitcoin deposit address for the user's ledger account", account=account,
             deposit_address=reg["deposit_address"], vault=reg["vault_address"],
             vault_threshold=reg["threshold"])

    spk = script_pubkey_from_address(reg["deposit_address"], "regtest")
    deposit_tx = net.faucet.pay(spk, 75 * SAT // 100)
    out.step("deposited 0.75 BTC from an ordinary wallet", tx=deposit_tx)
    net.mine_bitcoin(btc.confirmation_depth)

    def minted() -> Any:
        rows = relayer.get("/v1/transfers", params={"tx": deposit_tx}).json()["items"]
        return rows if rows and rows[0]["status"] == "transfer.executed" else None
    t = wait_mining(net, "mint of the BTC deposit", minted, fail)[0]
    asset = asset_key(btc.caip2, "btc")
    balance = ledger.account(bytes(user_key.verify_key)).balances.get(asset, 0)
    seen = net.btcd.rpc().transaction_info(deposit_tx) or {}
    out.step("minted wBTC on the ledger", deposit_tx=deposit_tx,
             confirmations=f"{seen.get('confirmations', '?')} (needed {btc.confirmation_depth})",
             attestations=f"{net.threshold} of {net.n}", ledger_seq=t["ledger_seq"],
             wBTC=fmt(balance, 8))
    if balance != 75 * SAT // 100:
        raise fail(f"wBTC balance {balance} != 75000000 sats")

    payee = address_p2wpkh(public_key(secrets.token_bytes(32)), "regtest")
    nonce = ledger.account(bytes(user_key.verify_key)).nonce
    burned = 25 * SAT // 100
    signed = sign_burn(user_key, cfg.network, nonce, asset, burned, btc.caip2, payee)
    receipt = ledger.submit_transaction(signed)
    burn_id = "0x" + signed.tx_id.hex()
    out.step("burned 0.25 wBTC to a Bitcoin address", burn_id=burn_id, payee=payee,
             ledger_seq=receipt.seq)

    def released() -> Any:
        r = relayer.get(f"/v1/transfers/{burn_id}")
        return r.json() if r.status_code == 200 and r.json()["status"] == "transfer.executed" \
            else None
    t = wait_mining(net, "release of the wBTC burn", released, fail)
    raw = net.btcd.rpc().raw_transaction(t["dest_tx"])
    payee_spk = script_pubkey_from_address(payee, "regtest")
    received = sum(o.nValue for o in CTransaction.deserialize(raw).vout
                   if bytes(o.scriptPubKey) == payee_spk)
    out.step("released on Bitcoin (3-of-5 multisig, BIP-143 signatures)", tx=t["dest_tx"],
             payee=payee, received_btc=fmt(received, 8), received_sats=received,
             miner_fee_sats=burned - received)
    if not 0 < burned - received < 100_000:
        raise fail(f"payee received {received} sats of {burned}: fee out of bounds")

    adapter = BitcoinAdapter(btc)
    book = relayer.get("/v1/custody/coins", params={"chain": btc.caip2}).json()
    coins = [Coin(c["txid"], int(c["vout"]), int(c["amount"])) for c in book["coins"]]
    lines = custody_report(ledger.assets(), {btc.caip2: (
        coins, int(book["pending_release"]), int(book["fee_reserve"]))},
                           {btc.caip2: adapter.coin_unspent})
    for line in lines:
        out.step(f"supply check {line.symbol}", ledger_supply=fmt(line.supply, 8),
                 vault_confirmed_holdings=fmt(line.holdings, 8),
                 pending_releases=fmt(line.pending_release, 8),
                 result="OK: supply == holdings - pending" if line.balanced else "MISMATCH")
    if len(lines) != 1 or not lines[0].balanced:
        raise fail("wBTC supply check failed")


def wait_mining(net: Any, what: str, check: Callable[[], Any], fail: Callable[[str], Exception],
                 timeout_s: float = 90.0) -> Any:
    """Poll `check`, mining one regtest block every second meanwhile (blocks on demand)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        net.mine_bitcoin(1)
        time.sleep(1.0)
    raise fail(f"timed out after {timeout_s}s waiting for {what}")
