"""An in-process Ferry stack over a real btcd regtest node: the real ledger (SQLite, its FastAPI
app), the real relayer engine, custody job and inbox (built by the CLI's wiring), and real
validator daemons with their own keys, own Bitcoin adapters and own ledger connections.
Tests drive it step by step (`mine`, `tick`, `run_validators`) instead of sleeping.

Not a fake: HTTP between the parts goes through Starlette's TestClient (the real ASGI apps),
the chain is btcd, every signature is real and every spend is checked by btcd's script engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from nacl.signing import SigningKey

from adapters.base import asset_key
from adapters.bitcoin.config import GENESIS
from adapters.bitcoin.scripts import script_pubkey_from_address
from api.ledger import create_ledger_app
from api.relayer import create_relayer_app
from ledger.client import LedgerClient
from ledger.config import LedgerGenesis
from ledger.service import Ledger
from ledger.transactions import sign_burn
from relayer.cli.wiring import build_relayer
from relayer.config import FerryConfig
from relayer.machine import TransferKind, TransferStatus
from validators.config import ValidatorSection
from validators.daemon import ValidatorDaemon
from validators.keystore import ValidatorKeys

NETWORK = "ferry-test"
REGTEST = f"bip122:{GENESIS['regtest'][:32]}"
BTC = 10**8


class BtcStack:
    """Ledger + relayer + `n` validators over one btcd node (fixture `btcd`)."""

    def __init__(self, tmp: Path, btcd: Any, *, n: int = 5, threshold: int = 3, depth: int = 3,
                 signers: int | None = None, fee_rate_sat_vb: int = 2,
                 max_fee_rate_sat_vb: int = 200, **bitcoin: Any) -> None:
        self.tmp, self.btcd, self.depth = tmp, btcd, depth
        self.keys = [ValidatorKeys.generate() for _ in range(n)]
        height = btcd.rpc.block_count()
        self.cfg = FerryConfig(
            network=NETWORK,
            bitcoin=[{
                "name": "bitcoin", "network": "regtest", "rpc_url": btcd.node.rpc_url,
                "rpc_user": btcd.node.rpc_user, "rpc_password": btcd.node.rpc_password,
                "validator_pubkeys": [k.secp256k1_public.hex() for k in self.keys],
                "threshold": threshold, "confirmation_depth": depth,
                "start_block": height + 1, "min_deposit_sats": 10_000,
                "fee_rate_sat_vb": fee_rate_sat_vb, "max_fee_rate_sat_vb": max_fee_rate_sat_vb,
                "bump_after_blocks": 2, "poll_interval_s": 0.2, **bitcoin}],
            assets=[_asset(REGTEST)],
            ledger={"database_url": f"sqlite:///{tmp}/ledger.sqlite"},
            relayer={"database_url": f"sqlite:///{tmp}/relayer.sqlite"},
            validator_set={"epoch": 1, "threshold": threshold, "members": [
                {"name": f"v{i}", "ed25519": k.ed25519_public_hex, "evm_address": k.evm_address}
                for i, k in enumerate(self.keys)]})
        self.btc = self.cfg.bitcoin[0]
        self.chain = self.btc.caip2
        self.asset = asset_key(self.chain, "btc")
        self.ledger = Ledger.open(self.cfg.ledger.database_url, NETWORK, LedgerGenesis(
            self.cfg.genesis_set(), self.cfg.bridges(), list(self.cfg.assets)))
        self.ledger_app = create_ledger_app(self.ledger)
        self.start_relayer()
        active = self.keys[: signers if signers is not None else n]
        self.daemons = [self._daemon(i, k) for i, k in enumerate(active)]

    # ------------------------------------------------------------------ parts
    def ledger_client(self) -> LedgerClient:
        return LedgerClient("http://ledger", http=TestClient(self.ledger_app,
                                                             base_url="http://ledger"))

    def start_relayer(self) -> None:
        """(Re)build the relayer from its database, as a restarted process would."""
        self.engine, self.inbox = build_relayer(self.cfg, ledger=self.ledger_client())
        self.relayer_http = TestClient(create_relayer_app(self.engine.store, self.inbox),
                                       base_url="http://relayer")

    def _daemon(self, i: int, keys: ValidatorKeys) -> ValidatorDaemon:
        section = ValidatorSection(
            name=f"v{i}", keystore=self.tmp / f"v{i}.json", passphrase="unused-in-process",
            relayer_url="http://relayer", ledger_url="http://ledger",
            state_file=self.tmp / f"v{i}-{keys.ed25519_public_hex[:10]}.state.json")
        return ValidatorDaemon(section, NETWORK, [], keys, bitcoin=self.cfg.bitcoin,
                               ledger=self.ledger_client(), relayer=self.relayer_http)

    # ------------------------------------------------------------------ driving
    def run_validators(self) -> None:
        for d in self.daemons:
            d._relayer = self.relayer_http  # follow a restarted relayer
            d.run_once()

    def tick(self) -> None:
        self.engine.ledger_status.invalidate()
        self.engine.tick()

    def mine(self, blocks: int) -> list[str]:
        return list(self.btcd.rpc.generate(blocks))

    def settle(self, rounds: int = 4) -> None:
        """Confirm everything pending: mine past depth, let validators sign, run the jobs."""
        for _ in range(rounds):
            self.mine(self.depth)
            self.tick()
            self.run_validators()
            self.tick()

    # ------------------------------------------------------------------ user actions
    def deposit_address(self, account: bytes) -> str:
        self.ledger_client().register_deposit_account(self.chain, account)
        return self.btc.vault.deposit(account).address

    def pay(self, address: str, sats: int, **kw: Any) -> str:
        spk = script_pubkey_from_address(address, "regtest")
        return str(self.btcd.faucet.pay(spk, sats, **kw))

    def burn(self, user: SigningKey, sats: int, payee: str) -> str:
        account = bytes(user.verify_key)
        nonce = self.ledger.account(account).nonce
        signed = sign_burn(user, NETWORK, nonce, self.asset, sats, self.chain, payee)
        self.ledger.submit_transaction(signed)
        return "0x" + signed.burn_id.hex()

    def balance(self, account: bytes) -> int:
        return int(self.ledger.account(account).balances.get(self.asset, 0))

    def transfer(self, key: str) -> Any:
        return self.engine.store.get(key)

    def lock_transfers(self) -> list[Any]:
        return list(self.engine.store.transfers(tuple(TransferStatus), kind=TransferKind.LOCK,
                                                chain=self.chain, limit=1000))

    def close(self) -> None:
        for d in self.daemons:
            d.close()
        self.ledger.close()


def _asset(chain: str) -> dict[str, Any]:
    return {"symbol": "wBTC", "origin_chain": chain, "origin_token": "btc", "decimals": 8}
