"""An in-process Ferry stack over a real simd node (Cosmos SDK v0.50 simapp): the real ledger,
the real relayer engine and inbox (built by the CLI's wiring), and real validator daemons with
their own keys, own Cosmos adapters and own ledger connections; driven step by step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from adapters.base import asset_key
from api.ledger import create_ledger_app
from api.relayer import create_relayer_app
from ledger.client import LedgerClient
from ledger.config import LedgerGenesis
from ledger.service import Ledger
from relayer.cli.wiring import build_relayer
from relayer.config import FerryConfig
from relayer.machine import TransferKind, TransferStatus
from validators.config import ValidatorSection
from validators.daemon import ValidatorDaemon
from validators.keystore import ValidatorKeys

NETWORK = "ferry-test"


class CosmosStack:
    """Ledger + relayer + `n` validators over the session's simd node (fixture `simd`); each
    stack has its own escrow (fresh validator keys), so stacks never see each other's deposits."""

    def __init__(self, tmp: Path, simd: Any, *, n: int = 3, threshold: int = 2) -> None:
        self.tmp, self.simd = tmp, simd
        self.keys = [ValidatorKeys.generate() for _ in range(n)]
        node = simd.node
        height = int(_status_height(node))
        chain = f"cosmos:{node.chain_id}"
        self.cfg = FerryConfig(
            network=NETWORK,
            cosmos=[{
                "name": "simd", "chain_id": node.chain_id, "rpc_url": node.rpc_url,
                "rest_url": node.rest_url,
                "validator_pubkeys": [k.secp256k1_public.hex() for k in self.keys],
                "threshold": threshold, "start_block": height + 1,
                "denoms": [{"denom": "stake", "min_deposit": 1000}, {"denom": "uatom"}],
                "poll_interval_s": 0.2}],
            assets=[{"symbol": "wSTAKE", "origin_chain": chain, "origin_token": "stake",
                     "decimals": 6},
                    {"symbol": "wATOM", "origin_chain": chain, "origin_token": "uatom",
                     "decimals": 6}],
            ledger={"database_url": f"sqlite:///{tmp}/ledger.sqlite"},
            relayer={"database_url": f"sqlite:///{tmp}/relayer.sqlite"},
            validator_set={"epoch": 1, "threshold": threshold, "members": [
                {"name": f"v{i}", "ed25519": k.ed25519_public_hex, "evm_address": k.evm_address}
                for i, k in enumerate(self.keys)]})
        self.chain = chain
        self.cosmos = self.cfg.cosmos[0]
        self.escrow = self.cosmos.escrow_address
        self.ledger = Ledger.open(self.cfg.ledger.database_url, NETWORK, LedgerGenesis(
            self.cfg.genesis_set(), self.cfg.bridges(), list(self.cfg.assets)))
        self.ledger_app = create_ledger_app(self.ledger)
        self.start_relayer()
        self.daemons = [self._daemon(i, k) for i, k in enumerate(self.keys)]

    def ledger_client(self) -> LedgerClient:
        return LedgerClient("http://ledger", http=TestClient(self.ledger_app,
                                                             base_url="http://ledger"))

    def start_relayer(self) -> None:
        self.engine, self.inbox = build_relayer(self.cfg, ledger=self.ledger_client())
        self.relayer_http = TestClient(create_relayer_app(self.engine.store, self.inbox),
                                       base_url="http://relayer")

    def _daemon(self, i: int, keys: ValidatorKeys) -> ValidatorDaemon:
        section = ValidatorSection(
            name=f"v{i}", keystore=self.tmp / f"v{i}.json", passphrase="unused-in-process",
            relayer_url="http://relayer", ledger_url="http://ledger",
            state_file=self.tmp / f"v{i}-{keys.ed25519_public_hex[:10]}.state.json")
        return ValidatorDaemon(section, NETWORK, [], keys, cosmos=self.cfg.cosmos,
                               ledger=self.ledger_client(), relayer=self.relayer_http)

    def settle(self, rounds: int = 3) -> None:
        """Let blocks pass (CometBFT makes one about every 0.3 s), sign, run the jobs."""
        import time

        for _ in range(rounds):
            time.sleep(0.4)
            self.engine.ledger_status.invalidate()
            self.engine.tick()
            for d in self.daemons:
                d._relayer = self.relayer_http
                d.run_once()
            self.engine.tick()

    def balance(self, account: bytes, denom: str = "stake") -> int:
        return int(self.ledger.account(account).balances.get(asset_key(self.chain, denom), 0))

    def lock_transfers(self) -> list[Any]:
        return list(self.engine.store.transfers(tuple(TransferStatus), kind=TransferKind.LOCK,
                                                chain=self.chain, limit=1000))

    def close(self) -> None:
        for d in self.daemons:
            d.close()
        self.ledger.close()


def _status_height(node: Any) -> int:
    import httpx

    body = httpx.get(f"{node.rpc_url}/status", timeout=5).json()
    return int(body["result"]["sync_info"]["latest_block_height"])


def burn_to(stack: CosmosStack, user: Any, denom: str, amount: int, to_address: str) -> str:
    """The user signs a burn of `amount` wrapped `denom` to `to_address`; returns the burn id."""
    from ledger.transactions import sign_burn

    account = bytes(user.verify_key)
    nonce = stack.ledger.account(account).nonce
    signed = sign_burn(user, NETWORK, nonce, asset_key(stack.chain, denom), amount, stack.chain,
                       to_address)
    stack.ledger.submit_transaction(signed)
    return "0x" + signed.burn_id.hex()
