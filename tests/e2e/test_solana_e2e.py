"""Solana end to end: separate processes (ledger, relayer, five validators, threshold 3) over
the LiteSVM-backed JSON-RPC server, driven as a user would (an ordinary Solana wallet, the
ledger and relayer HTTP APIs). One devnet for the module: the tests only add deposits and
burns of their own, and the one that stops validators starts them again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey
from solders.keypair import Keypair

from adapters.base import asset_key
from adapters.solana.devnet import SolanaDeployer, SolanaWallet
from ledger.client import LedgerClient
from ledger.transactions import sign_burn
from relayer.cli.devnet import Devnet
from relayer.cli.devnet_solana import SIGNING_TIMEOUT_S
from tests.e2e.conftest import FAST_KDF, _running, wait_until

pytestmark = pytest.mark.e2e
FTEST = 10**6


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Iterator[Devnet]:
    devnet = Devnet(tmp_path_factory.mktemp("solana-e2e") / "devnet", block_time_s=0.2,
                    kdf=FAST_KDF, poll_interval_s=0.2)
    _running.append(devnet)
    try:
        devnet.start_chains()
        devnet.deploy()
        devnet.start_services()
        yield devnet
    finally:
        _running.remove(devnet)
        devnet.stop()


def _wait(check: Any, what: str, timeout_s: float = 90) -> Any:
    return wait_until(check, timeout_s, what)


def _transfer_of_tx(net: Devnet, sig: str) -> dict[str, Any] | None:
    assert net.info is not None
    items = httpx.get(f"{net.info.relayer_url}/v1/transfers", params={"tx": sig},
                      timeout=5).json()["items"]
    return items[0] if items else None


def _transfer(net: Devnet, key: str) -> dict[str, Any] | None:
    assert net.info is not None
    r = httpx.get(f"{net.info.relayer_url}/v1/transfers/{key}", timeout=5)
    return r.json() if r.status_code == 200 else None


def _balance(net: Devnet, user: SigningKey, mint: str) -> int:
    assert net.info is not None
    asset = asset_key(net.info.solana["chain"], mint)
    return LedgerClient(net.info.ledger_url).account(
        bytes(user.verify_key)).balances.get(asset, 0)


def _mint_ftest(net: Devnet, wallet: SolanaWallet, user: SigningKey, amount: int) -> None:
    assert net.info is not None
    mint, multisig = net.info.solana["test_mint"], net.info.solana["multisig"]
    before = _balance(net, user, mint)
    sig = wallet.deposit(mint, amount, "0x" + bytes(user.verify_key).hex(), multisig=multisig)
    _wait(lambda: (_transfer_of_tx(net, sig) or {}).get("status") == "transfer.executed",
          "the deposit minted")
    assert _balance(net, user, mint) == before + amount


def _burn(net: Devnet, user: SigningKey, mint: str, amount: int, to: str) -> str:
    assert net.info is not None
    ledger = LedgerClient(net.info.ledger_url)
    signed = sign_burn(user, "ferry-devnet", ledger.account(bytes(user.verify_key)).nonce,
                       asset_key(net.info.solana["chain"], mint), amount,
                       net.info.solana["chain"], to)
    ledger.submit_transaction(signed)
    return "0x" + signed.tx_id.hex()


def test_deposits_mint_once_and_bad_memo_unknown_mint_and_failed_txs_are_held(
        net: Devnet) -> None:
    assert net.info is not None and net.solana is not None
    info = net.info.solana
    user = SigningKey.generate()
    account = "0x" + bytes(user.verify_key).hex()
    wallet = net.solana.user()
    wallet.wrap_sol(3 * 10**9)
    sol_sig = wallet.deposit(info["native_mint"], 2 * 10**9, account,
                             multisig=info["multisig"])
    _mint_ftest(net, wallet, user, 25 * FTEST)
    _wait(lambda: (_transfer_of_tx(net, sol_sig) or {}).get("status") == "transfer.executed",
          "the wrapped SOL deposit minted")
    assert _balance(net, user, info["native_mint"]) == 2 * 10**9

    # An unknown mint: someone creates the multisig's token account of a mint Ferry does not
    # bridge and pays into it with a valid memo.
    with SolanaDeployer(info["rpc_url"], chain=info["chain"]) as deployer:
        deployer.airdrop(10 * 10**9)
        other = deployer.create_mint(6)
        deployer.create_token_account(_pubkey(info["multisig"]), other)
        with SolanaWallet(info["rpc_url"], deployer.keypair, chain=info["chain"]) as minter:
            minter.mint_to(other, wallet.pubkey, 10**9)
    held = {
        "bad_memo": wallet.deposit(info["test_mint"], 5 * FTEST, "for my ledger account",
                                   multisig=info["multisig"]),
        "unknown_mint": wallet.deposit(other, 5 * FTEST, account, multisig=info["multisig"]),
        "failed_tx": wallet.deposit(info["test_mint"], 10**15, account,
                                    multisig=info["multisig"], skip_preflight=True,
                                    expect_failure=True),
    }
    for reason, sig in held.items():
        t = _wait(lambda sig=sig: _transfer_of_tx(net, sig), f"the {reason} deposit reported")
        _wait(lambda sig=sig: (_transfer_of_tx(net, sig) or {}).get("status")
              == "transfer.held", f"the {reason} deposit held")
        t = _transfer_of_tx(net, sig)
        assert t is not None and reason in t["reason"], t
    assert _balance(net, user, info["test_mint"]) == 25 * FTEST  # nothing more was credited
    assert _balance(net, user, info["native_mint"]) == 2 * 10**9
    wallet.close()


def test_burn_is_released_once_despite_a_relayer_crash_after_submit(net: Devnet) -> None:
    assert net.info is not None and net.solana is not None
    info = net.info.solana
    user = SigningKey.generate()
    wallet = net.solana.user()
    _mint_ftest(net, wallet, user, 100 * FTEST)
    payee = str(Keypair().pubkey())
    escrow_before = wallet.token_balance(info["test_mint"], info["multisig"])
    supply_before = _supply(net)
    burn_id = _burn(net, user, info["test_mint"], 30 * FTEST, payee)
    _wait(lambda: (_transfer(net, burn_id) or {}).get("status") in (
        "transfer.submitted", "transfer.executed"), "the release broadcast")
    net.kill_relayer()  # SIGKILL right after the signed release was stored and sent
    net.start_relayer()
    t = _wait(lambda: (_transfer(net, burn_id) or {}).get("status") == "transfer.executed"
              and _transfer(net, burn_id), "the release executed")
    assert wallet.token_balance(info["test_mint"], payee) == 30 * FTEST
    time.sleep(3)  # a second payment would land within a few slots
    assert wallet.token_balance(info["test_mint"], payee) == 30 * FTEST
    assert t["dest_tx"]
    # The escrow paid exactly the burn, once; the ledger's supply fell by exactly as much.
    assert wallet.token_balance(info["test_mint"], info["multisig"]) == escrow_before - 30 * FTEST
    assert _supply(net) == supply_before - 30 * FTEST
    wallet.close()


def _supply(net: Devnet) -> int:
    assert net.info is not None
    info = net.info.solana
    [line] = [a for a in LedgerClient(net.info.ledger_url).assets()
              if a.asset == asset_key(info["chain"], info["test_mint"])]
    return int(line.supply)


def test_release_waits_for_m_signers_and_goes_once_a_third_returns(net: Devnet) -> None:
    assert net.info is not None and net.solana is not None
    info = net.info.solana
    user = SigningKey.generate()
    wallet = net.solana.user()
    _mint_ftest(net, wallet, user, 50 * FTEST)
    for i in (3, 4, 5):  # two of five validators left: below the threshold of 3
        net.services[f"validator-{i}"].stop()
    payee = str(Keypair().pubkey())
    burn_id = _burn(net, user, info["test_mint"], 20 * FTEST, payee)
    time.sleep(2 * SIGNING_TIMEOUT_S + 2)  # plans stall and are re-planned; none can land
    t = _transfer(net, burn_id)
    assert t is not None and t["status"] in ("transfer.observed", "transfer.confirmed"), t
    assert wallet.token_balance(info["test_mint"], payee) == 0
    net.services["validator-3"] = net.service("validator-3").start()
    _wait(lambda: (_transfer(net, burn_id) or {}).get("status") == "transfer.executed",
          "the release once a third signer is back", timeout_s=120)
    assert wallet.token_balance(info["test_mint"], payee) == 20 * FTEST
    for i in (4, 5):
        net.services[f"validator-{i}"] = net.service(f"validator-{i}").start()
    wallet.close()


def _pubkey(text: str) -> Any:
    from solders.pubkey import Pubkey

    return Pubkey.from_string(text)
