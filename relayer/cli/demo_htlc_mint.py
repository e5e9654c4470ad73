"""`ferry demo`, HTLC-mint part: a user turns BTC into wBTC without trusting anyone, then walks
away from a second mint and gets the BTC back.

Owns: that narrative. Like `relayer.cli.demo_bitcoin`, it sees only what a user sees: the btcd
node (the devnet's faucet wallet), the ledger API and the relayer API. Regtest blocks are mined
on demand while it waits; the ledger's clock is the wall clock, so the walk-away HTLC uses a
short ledger timelock (`WALK_AWAY_LEDGER_S`).

Story 1: register a mint intent (hashlock of the user's secret, refund key, BTC expiry height,
ledger timelock), fund its mint-HTLC address, wait for the ledger HTLC of origin ``mint``,
redeem it with the secret, see the wBTC balance and the BTC swept into the vault, check supply.
Story 2: another intent, funded, minted; the user never redeems: the ledger HTLC expires and is
burned (supply back), and the user refunds the BTC once the chain passes the CLTV height.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
from nacl.signing import SigningKey

from adapters.base import Coin, asset_key, event_id
from adapters.bitcoin.adapter import BitcoinAdapter
from adapters.bitcoin.devnet import address_p2wpkh
from adapters.bitcoin.keys import public_key
from adapters.bitcoin.scripts import outpoint_nonce, script_pubkey_from_address
from adapters.bitcoin.tx import Coin as TxCoin
from adapters.errors import BridgeError
from htlc import mint
from htlc.hashlock import hashlock_of, new_secret
from htlc.mint_intent import MintIntent, mint_htlc_id
from ledger.client import LedgerClient
from ledger.types import HtlcState
from relayer.solvency import custody_report

SAT = 10**8
MINT_SATS = 40 * SAT // 100
WALK_AWAY_SATS = 10 * SAT // 100
REDEEM_LEDGER_S, REDEEM_BLOCKS = 600, 1200  # generous: the user redeems within seconds
WALK_AWAY_LEDGER_S, WALK_AWAY_BLOCKS = 25, 90  # margin on regtest: 90 * 0.75 - 25 > 14 s


def run_htlc_mint_story(out: Any, net: Any, cfg: Any, user_key: SigningKey,
                        fmt: Callable[[int, int], str],
                        wait_for: Callable[..., Any] | None,
                        fail: Callable[[str], Exception]) -> None:
    """Run both stories against a running devnet (`relayer.cli.devnet`).

    Args:
        out: the demo's step printer (``out.step(title, **fields)``).
        net: the running devnet (``info.ledger_url``, ``info.relayer_url``, ``faucet``,
            ``btcd``, ``mine_bitcoin``).
        cfg: the devnet's `FerryConfig` (its first ``[[bitcoin]]`` chain is used).
        user_key: the user's ledger key.
        fmt: ``(base units, decimals) -> display string``.
        wait_for: ``(net, what, check, fail) -> value`` polling while mining (default: this
            module's `_wait_mining`).
        fail: builds the exception raised when a step does not hold.
    """
    wait = wait_for or _wait_mining
    btc = cfg.bitcoin[0]
    ledger = LedgerClient(net.info.ledger_url)
    relayer = httpx.Client(base_url=net.info.relayer_url, timeout=5)
    account = bytes(user_key.verify_key)
    asset = asset_key(btc.caip2, "btc")
    rpc = net.btcd.rpc()

    # ---------------------------------------------------------------- story 1: redeem
    secret = new_secret()
    refund_secret = secrets.token_bytes(32)
    _intent, _htlc, coin = _fund(out, net, ledger, btc, rpc, account, secret, refund_secret,
                               MINT_SATS, REDEEM_LEDGER_S, REDEEM_BLOCKS, fmt)
    htlc_id = _wait_minted(out, net, ledger, btc, coin, wait, fail, fmt)
    before = ledger.account(account).balances.get(asset, 0)
    redeemed = ledger.redeem_htlc(htlc_id, secret)
    out.step("user redeemed the ledger HTLC with the secret (the preimage is now public)",
             htlc_id="0x" + htlc_id.hex(), state=redeemed.state.value)
    balance = ledger.account(account).balances.get(asset, 0)
    if balance - before != MINT_SATS:
        raise fail(f"wBTC balance rose by {balance - before}, not {MINT_SATS}")
    adapter = BitcoinAdapter(btc)
    wait(net, "sweep of the HTLC coin into the vault",
         lambda: adapter.coin_unspent(Coin(coin.txid, coin.vout, coin.amount_sats)) is None, fail)
    out.step("relayer swept the BTC into the vault (3-of-5 signatures + the revealed secret)",
             htlc_coin=f"{coin.txid}:{coin.vout}", wBTC=fmt(balance, 8))
    _supply_check(out, net, ledger, relayer, btc, adapter, fmt, fail)

    # ---------------------------------------------------------------- story 2: walk away
    secret2 = new_secret()
    refund2 = secrets.token_bytes(32)
    intent2, htlc2, coin2 = _fund(out, net, ledger, btc, rpc, account, secret2, refund2,
                                  WALK_AWAY_SATS, WALK_AWAY_LEDGER_S, WALK_AWAY_BLOCKS, fmt)
    htlc_id2 = _wait_minted(out, net, ledger, btc, coin2, wait, fail, fmt)
    supply_minted = _supply(ledger, asset)

    def burned() -> Any:
        h = ledger.htlc(htlc_id2)
        return h if h is not None and h.state is HtlcState.REFUNDED else None
    wait(net, "expiry and burn of the unredeemed ledger HTLC", burned, fail,
         timeout_s=WALK_AWAY_LEDGER_S + 60)
    supply = _supply(ledger, asset)
    out.step("user walked away: the ledger HTLC expired and the minted wBTC was burned",
             htlc_id="0x" + htlc_id2.hex(), supply_before=fmt(supply_minted, 8),
             supply_after=fmt(supply, 8))
    if supply_minted - supply != WALK_AWAY_SATS:
        raise fail(f"supply fell by {supply_minted - supply}, not {WALK_AWAY_SATS}")

    payee = address_p2wpkh(public_key(refund2), "regtest")
    refund = mint.build_user_refund(coin2, htlc2, refund2,
                                    script_pubkey_from_address(payee, "regtest"), 2)
    head = rpc.block_count()
    if head < intent2.btc_expiry:
        net.mine_bitcoin(intent2.btc_expiry - head)
    txid = rpc.send_raw_transaction(refund)
    net.mine_bitcoin(1)
    if rpc.tx_out(txid, 0, include_mempool=False) is None:
        raise fail("the user's BTC refund did not confirm")
    out.step("user refunded the BTC after the CLTV height", refund_tx=txid, payee=payee,
             cltv_height=intent2.btc_expiry)
    _supply_check(out, net, ledger, relayer, btc, adapter, fmt, fail)


def _fund(out: Any, net: Any, ledger: LedgerClient, btc: Any, rpc: Any, account: bytes,
          secret: bytes, refund_secret: bytes, sats: int, ledger_s: int, blocks: int,
          fmt: Callable[[int, int], str]) -> tuple[MintIntent, mint.MintHtlc, TxCoin]:
    intent = MintIntent(chain=btc.caip2, account=account, hashlock=hashlock_of(secret),
                        refund_pubkey=public_key(refund_secret),
                        btc_expiry=rpc.block_count() + blocks,
                        ledger_timelock=int(time.time()) + ledger_s)
    ledger.register_mint_intent(intent)
    htlc = mint.MintHtlc(intent, btc.vault)
    txid = str(net.faucet.pay(htlc.script_pubkey, sats))
    vout = next(i for i, o in enumerate(_vout(rpc, txid)) if o == htlc.script_pubkey)
    out.step("registered a mint intent and funded its HTLC address", address=htlc.address,
             tx=txid, amount=fmt(sats, 8), btc_expiry_height=intent.btc_expiry,
             ledger_timelock_s=ledger_s, intent_id="0x" + intent.intent_id.hex())
    return intent, htlc, TxCoin(txid, vout, sats, intent.intent_id)


def _vout(rpc: Any, txid: str) -> list[bytes]:
    from bitcoin.core import CTransaction

    raw = rpc.raw_transaction(txid)
    return [bytes(o.scriptPubKey) for o in CTransaction.deserialize(raw).vout]


def _wait_minted(out: Any, net: Any, ledger: LedgerClient, btc: Any, coin: TxCoin,
                 wait: Callable[..., Any], fail: Callable[[str], Exception],
                 fmt: Callable[[int, int], str]) -> bytes:
    htlc_id = mint_htlc_id(event_id(btc.caip2, btc.vault.address,
                                    outpoint_nonce(coin.txid, coin.vout)))
    htlc = wait(net, "mint into a ledger HTLC", lambda: ledger.htlc(htlc_id), fail)
    out.step("validators attested the HTLC; the ledger minted wBTC into an HTLC (origin mint)",
             htlc_id="0x" + htlc_id.hex(), amount=fmt(htlc.amount, 8), state=htlc.state.value,
             timelock=htlc.timelock)
    return htlc_id


def _supply(ledger: LedgerClient, asset: str) -> int:
    return next(a.supply for a in ledger.assets() if a.asset == asset)


def _supply_check(out: Any, net: Any, ledger: LedgerClient, relayer: httpx.Client, btc: Any,
                  adapter: BitcoinAdapter, fmt: Callable[[int, int], str],
                  fail: Callable[[str], Exception]) -> None:
    def report() -> Any:
        book = relayer.get("/v1/custody/coins", params={"chain": btc.caip2}).json()
        coins = [Coin(c["txid"], int(c["vout"]), int(c["amount"])) for c in book["coins"]]
        [line] = custody_report(ledger.assets(), {btc.caip2: (
            coins, int(book["pending_release"]), int(book["fee_reserve"]))},
            {btc.caip2: adapter.coin_unspent})
        return line

    # A sweep in flight spends the HTLC coin before its vault output is final in the relayer's
    # books: poll (mining) until both agree, and show the final line either way.
    deadline = time.monotonic() + 30
    line = report()
    while not line.balanced and time.monotonic() < deadline:
        net.mine_bitcoin(1)
        time.sleep(1.0)
        line = report()
    out.step(f"supply check {line.symbol}", ledger_supply=fmt(line.supply, 8),
             vault_confirmed_holdings=fmt(line.holdings, 8),
             fee_reserve=fmt(line.fee_reserve, 8),
             result="OK: supply == holdings - pending - reserve" if line.balanced else "MISMATCH")
    if not line.balanced:
        raise fail("wBTC supply check failed")


def _wait_mining(net: Any, what: str, check: Callable[[], Any],
                 fail: Callable[[str], Exception], timeout_s: float = 90.0) -> Any:
    """Poll `check`, mining one regtest block every second meanwhile."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except BridgeError:
            value = None
        if value:
            return value
        net.mine_bitcoin(1)
        time.sleep(1.0)
    raise fail(f"timed out waiting for {what}")
