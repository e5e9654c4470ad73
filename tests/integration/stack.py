"""An in-process Ferry stack over real anvil nodes: the real ledger (SQLite, served by its
FastAPI app), the real relayer engine and inbox (built by the CLI's wiring), and five real
validator daemons with their own keys and adapters. Tests drive it step by step
(`run_validators`, `tick`, `mine`) instead of sleeping.

Not a fake: HTTP between the parts goes through Starlette's TestClient (the real ASGI apps),
chains are real anvil nodes, signatures are real.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from fastapi.testclient import TestClient
from nacl.signing import SigningKey
from web3 import Web3

from adapters.base import NATIVE_TOKEN, asset_key
from adapters.evm import devnet as evm
from api.ledger import create_ledger_app
from api.relayer import create_relayer_app
from contracts import load_artifact
from ledger.client import LedgerClient
from ledger.config import LedgerGenesis
from ledger.service import Ledger
from ledger.transactions import sign_burn
from relayer.cli.wiring import build_relayer
from relayer.config import FerryConfig
from validators.config import ValidatorSection
from validators.daemon import ValidatorDaemon
from validators.keystore import ValidatorKeys

NETWORK = "ferry-test"
UNIT = 10**18


@dataclass
class ChainUnderTest:
    name: str
    node: evm.AnvilNode
    w3: Web3
    bridge: Any  # web3 contract
    caip2: str


class Stack:
    def __init__(self, tmp: Path, nodes: dict[str, evm.AnvilNode], *, n: int = 5,
                 threshold: int = 3, depth: int = 2) -> None:
        self.tmp, self.depth = tmp, depth
        self.keys = [ValidatorKeys.generate() for _ in range(n)]
        members = sorted(k.evm_address for k in self.keys)
        self.chains: dict[str, ChainUnderTest] = {}
        self.token = ""
        chain_cfgs, assets = [], []
        for name, node in nodes.items():
            w3 = evm.connect(node.rpc_url)
            allowed = [NATIVE_TOKEN]
            if name == "ethereum":
                self.token = evm.deploy_test_token(w3, sender_key=evm.ANVIL_DEV_KEY)
                allowed.append(self.token)
                assets.append({"symbol": "wTEST", "origin_chain": node.chain,
                               "origin_token": self.token, "decimals": 18})
            address = evm.deploy_bridge(w3, members, threshold, allowed,
                                        sender_key=evm.ANVIL_DEV_KEY)
            bridge = w3.eth.contract(address=Web3.to_checksum_address(address),
                                     abi=load_artifact("Bridge").abi)
            self.chains[name] = ChainUnderTest(name, node, w3, bridge, node.chain)
            assets.append({"symbol": f"w{name}", "origin_chain": node.chain,
                           "origin_token": NATIVE_TOKEN, "decimals": 18})
            chain_cfgs.append({"name": name, "chain_id": node.chain_id, "rpc_url": node.rpc_url,
                               "bridge_address": address, "confirmation_depth": depth,
                               "start_block": w3.eth.block_number + 1})
        submitter = Account.create()
        for c in self.chains.values():
            evm.fund(c.w3, submitter.address, 100 * UNIT)
        self.cfg = FerryConfig(
            network=NETWORK, chains=chain_cfgs, assets=assets,
            ledger={"database_url": f"sqlite:///{tmp}/ledger.sqlite"},
            relayer={"database_url": f"sqlite:///{tmp}/relayer.sqlite"},
            validator_set={"epoch": 1, "threshold": threshold, "members": [
                {"name": f"v{i}", "ed25519": k.ed25519_public_hex, "evm_address": k.evm_address}
                for i, k in enumerate(self.keys)]})
        self.ledger = Ledger.open(self.cfg.ledger.database_url, NETWORK, LedgerGenesis(
            self.cfg.genesis_set(), {c.caip2: c.bridge_address for c in self.cfg.chains},
            list(self.cfg.assets)))
        self.ledger_app = create_ledger_app(self.ledger)
        self.submitter_key = bytes(submitter.key)
        self.start_relayer()
        self.daemons = [self._daemon(i, k) for i, k in enumerate(self.keys)]

    # ------------------------------------------------------------------ parts
    def ledger_client(self) -> LedgerClient:
        return LedgerClient("http://ledger", http=TestClient(self.ledger_app,
                                                             base_url="http://ledger"))

    def start_relayer(self) -> None:
        """(Re)build the relayer from its database, as a restarted process would."""
        self.engine, self.inbox = build_relayer(self.cfg, ledger=self.ledger_client(),
                                                submitter_key=self.submitter_key)
        self.relayer_http = TestClient(create_relayer_app(self.engine.store, self.inbox),
                                       base_url="http://relayer")

    def _daemon(self, i: int, keys: ValidatorKeys) -> ValidatorDaemon:
        section = ValidatorSection(
            name=f"v{i}", keystore=self.tmp / f"v{i}.json", passphrase="unused-in-process",
            relayer_url="http://relayer", ledger_url="http://ledger",
            state_file=self.tmp / f"v{i}-{keys.ed25519_public_hex[:10]}.state.json")
        return ValidatorDaemon(section, NETWORK, self.cfg.chains, keys,
                               ledger=self.ledger_client(), relayer=self.relayer_http)

    # ------------------------------------------------------------------ driving
    def run_validators(self) -> None:
        for d in self.daemons:
            d._relayer = self.relayer_http  # follow a restarted relayer
            d.run_once()

    def tick(self) -> None:
        self.engine.ledger_status.invalidate()
        for cache in self.engine.bridge_sets.values():
            cache.invalidate()
        self.engine.tick()

    def mine(self, blocks: int) -> None:
        for c in self.chains.values():
            c.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]

    def settle(self, rounds: int = 4) -> None:
        """Confirm everything pending: mine past depth, let validators sign, run the jobs."""
        for _ in range(rounds):
            self.mine(self.depth + 1)
            self.tick()
            self.run_validators()
            self.tick()

    # ------------------------------------------------------------------ user actions
    def lock(self, chain: str, amount: int, recipient: bytes, token: str = NATIVE_TOKEN,
             bridge: Any = None) -> str:
        c = self.chains[chain]
        bridge = bridge or c.bridge
        if token != NATIVE_TOKEN:
            erc20 = c.w3.eth.contract(address=Web3.to_checksum_address(token),
                                      abi=load_artifact("TestToken").abi)
            evm.transact(c.w3, erc20.functions.mint(Web3.to_checksum_address(evm.ANVIL_DEV_ADDRESS), amount),
                         sender_key=evm.ANVIL_DEV_KEY)
            evm.transact(c.w3, erc20.functions.approve(bridge.address, amount),
                         sender_key=evm.ANVIL_DEV_KEY)
        receipt = evm.transact(
            c.w3, bridge.functions.lock(Web3.to_checksum_address(token), amount, recipient),
            sender_key=evm.ANVIL_DEV_KEY, value_wei=amount if token == NATIVE_TOKEN else 0)
        return str(receipt["transactionHash"].to_0x_hex())

    def burn(self, user: SigningKey, chain: str, amount: int, payee: str,
             token: str = NATIVE_TOKEN) -> str:
        c = self.chains[chain]
        account = bytes(user.verify_key)
        nonce = self.ledger.account(account).nonce
        signed = sign_burn(user, NETWORK, nonce, asset_key(c.caip2, token), amount, c.caip2,
                           payee)
        self.ledger.submit_transaction(signed)
        return "0x" + signed.burn_id.hex()

    def balance(self, account: bytes, chain: str, token: str = NATIVE_TOKEN) -> int:
        asset = asset_key(self.chains[chain].caip2, token)
        return self.ledger.account(account).balances.get(asset, 0)

    def status(self, key: str) -> str | None:
        row = self.engine.store.get(key)
        return None if row is None else str(row.status)

    def close(self) -> None:
        for d in self.daemons:
            d.close()
        self.ledger.close()
