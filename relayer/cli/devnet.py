"""A complete local Ferry network in one directory: two anvil chains (Ethereum and BSC devnets),
a btcd regtest node (blocks mined on demand) with a funded faucet, a simd chain (Cosmos SDK
simapp) with funded wallets, a LiteSVM-backed Solana cluster (`relayer.cli.devnet_solana`),
deployed bridges and a test
token, encrypted keys, one `ferry.toml`, and the ledger, relayer,
validator and API processes (`ferry api serve`, with an operator API key made by the real CLI,
the ledger's operator token, `[risk]` limits on every route and a local webhook receiver).

Owns: building and tearing down that network for `ferry demo`, `ferry devnet up|down` and the
end-to-end tests. Must not be pointed at a network with real value: it funds accounts with
``anvil_setBalance`` and deploys with anvil's public dev key. It is part of the composition root
(`relayer.cli`), so it may import concrete adapters.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eth_account import Account

from adapters.base import NATIVE_TOKEN, asset_key
from adapters.bitcoin.devnet import BtcdNode, Faucet, address_p2wpkh, p2wpkh_script
from adapters.bitcoin.keys import public_key
from adapters.bitcoin.scripts import Vault
from adapters.cosmos.devnet import CosmosWallet, SimdNode
from adapters.cosmos.multisig import escrow_address
from adapters.evm import devnet as evm
from relayer.cli.devnet_solana import SolanaDevnet
from relayer.cli.procs import ServiceFailed, ServiceProcess, WebhookSink
from validators.keystore import PRODUCTION_KDF, KdfParams, ValidatorKeys, new_keystore

ETH_CHAIN_ID = 31337
BSC_CHAIN_ID = 31338
EVM_FUNDS_WEI = 1_000 * 10**18
SWAP_WALLET_SATS = 10 * 10**8  # the relayer's BTC for ETH->BTC swaps
LARGE_ETH_LOCK_WEI = 5 * 10**18  # a wETH lock of at least this much waits DELAY_S (risk demo)
LARGE_DELAY_S = 3600
OPERATOR_SCOPES = ("routes:write", "chains:write", "transfers:write", "risk:read")


@dataclass
class DevnetInfo:
    """What a running devnet exposes (also written to ``<root>/devnet.json``)."""

    root: str
    config: str
    rpc: dict[str, str]  # chain name -> RPC URL
    chain_ids: dict[str, int]
    bridges: dict[str, str]  # chain name -> bridge address
    test_token: str  # on ethereum
    ledger_url: str
    relayer_url: str
    metrics_url: str
    validators: list[dict[str, str]] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    bitcoin: dict[str, str] = field(default_factory=dict)  # rpc_url, chain, vault_address
    cosmos: dict[str, str] = field(default_factory=dict)  # rpc_url, rest_url, chain, escrow
    htlcs: dict[str, str] = field(default_factory=dict)  # chain name -> HTLC contract
    solana: dict[str, str] = field(default_factory=dict)  # `SolanaDevnet.info`
    api_url: str = ""  # `ferry api serve`
    webhook_url: str = ""  # the local receiver of the [[api.webhooks]] subscription
    # relayer replica name (`relayer`, `relayer-2`, ...) -> {"url", "metrics_url"}; the first
    # is `relayer_url` / `metrics_url`
    relayers: dict[str, dict[str, str]] = field(default_factory=dict)


def write_evm_keystore(path: Path, passphrase: str) -> str:
    """Create a fresh EVM account as a Web3 Secret Storage (v3, scrypt) file, mode 0600; the
    relayer's gas-paying submitter key. Returns its lowercase address."""
    account = Account.create()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(Account.encrypt(account.key, passphrase), f)
    return str(account.address).lower()


class Devnet:
    """Build, start and stop a local Ferry network under `root`.

    Args:
        root: directory for config, keys, databases and logs (created).
        validators, threshold: the m-of-n validator set (3 of 5 by default).
        confirmation_depth: blocks each chain waits before a lock counts.
        block_time_s: anvil interval mining (None mines a block per transaction).
        kdf: Argon2id cost of the keystores (tests pass a cheap one).
        database_url: the relayer's database (a ``postgresql+psycopg://`` URL for replicas);
            None: ``<root>/relayer.sqlite``.
        relayer_replicas: how many ``ferry relayer run`` processes share that database
            (``relayer``, ``relayer-2``, ...; each its own port, metrics port and replica id).
        socket_signers: the first this many validators sign through ``ferry signer serve``
            processes (``signer-<i>``, started before them, on sockets in a private temp
            directory) instead of decrypting their key files themselves.
        solana: run the Solana cluster too (`relayer.cli.devnet_solana`); tests of other
            chains leave it out (fewer processes polling on a small machine).
    """

    def __init__(self, root: Path, *, validators: int = 5, threshold: int = 3,
                 confirmation_depth: int = 2, block_time_s: float | None = 1.0,
                 kdf: KdfParams = PRODUCTION_KDF, poll_interval_s: float = 0.25,
                 database_url: str | None = None, relayer_replicas: int = 1,
                 socket_signers: int = 0, solana: bool = True) -> None:
        self.root = Path(root).resolve()
        if relayer_replicas < 1:
            raise ValueError("relayer_replicas must be at least 1")
        self.database_url = database_url or f"sqlite:///{self.root}/relayer.sqlite"
        self.relayer_names = ["relayer"] + [f"relayer-{i}" for i in range(2, relayer_replicas + 1)]
        if not 0 <= socket_signers <= validators:
            raise ValueError("socket_signers must be between 0 and the number of validators")
        self.socket_signers = socket_signers
        self.signer_dir: Path | None = None  # made when first needed; removed by `stop`
        self.n, self.threshold, self.depth = validators, threshold, confirmation_depth
        self.block_time_s, self.kdf, self.poll_interval_s = block_time_s, kdf, poll_interval_s
        # Devnet-only passphrase: the keystores are real and encrypted, the secret is handed to
        # child processes through the environment and kept in a 0600 file for `devnet down/up`.
        self.passphrase = secrets.token_urlsafe(24)
        self.nodes: dict[str, evm.AnvilNode] = {}
        self.btcd: BtcdNode | None = None
        self.faucet: Faucet | None = None
        self.btc_depth = confirmation_depth
        self.simd: SimdNode | None = None
        self.cosmos_user_secret = secrets.token_bytes(32)  # the demo user's funded Cosmos wallet
        self.cosmos_operator_secret = secrets.token_bytes(32)  # pays the escrow's fee reserve
        self.with_solana = solana
        self.solana: SolanaDevnet | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.keys: list[ValidatorKeys] = []
        self.info: DevnetInfo | None = None
        # The ledger's operator token reaches the API process through its environment only;
        # the config holds its SHA-256. Kept in <root>/operator-token (0600).
        self.operator_token = secrets.token_urlsafe(32)
        self.webhook_secret = secrets.token_urlsafe(24)
        self.webhooks: WebhookSink | None = None
        self.risk_routes: list[dict[str, str | int]] = []

    # ------------------------------------------------------------------ chains
    def start_chains(self) -> None:
        for name, chain_id in (("ethereum", ETH_CHAIN_ID), ("bsc", BSC_CHAIN_ID)):
            node = evm.AnvilNode(chain_id, block_time_s=self.block_time_s,
                                 workdir=self.root / f"anvil-{name}")
            node.workdir.mkdir(parents=True, exist_ok=True)
            node.start()
            self.nodes[name] = node
        secret = secrets.token_bytes(32)
        self.btcd = BtcdNode(self.root / "btcd",
                             mining_address=address_p2wpkh(public_key(secret), "regtest"))
        self.btcd.start()
        self.simd = SimdNode(self.root / "simd", accounts={
            CosmosWallet.address_of(self.cosmos_user_secret): 10**12,
            CosmosWallet.address_of(self.cosmos_operator_secret): 10**12})
        self.simd.start()
        if self.with_solana:
            self.solana = SolanaDevnet.start(self.root)
        for node in self.nodes.values():
            node.wait_ready(timeout_s=30)
        self.btcd.wait_ready(timeout_s=30)
        self.simd.wait_ready(timeout_s=60)
        self.faucet = Faucet(self.btcd.rpc(), secret)
        self.faucet.mature()  # coinbases need 100 blocks before the faucet can spend them

    def deploy(self) -> DevnetInfo:
        """Create keys, deploy bridges and the test token, fund the relayer, write the config."""
        keydir = self.root / "keys"
        (self.root / "passphrase").write_text(self.passphrase)
        (self.root / "passphrase").chmod(0o600)
        self.keys = [new_keystore(keydir / f"validator-{i}.json", self.passphrase, kdf=self.kdf)
                     for i in range(1, self.n + 1)]
        submitter_address = write_evm_keystore(keydir / "relayer.json", self.passphrase)
        members = sorted(k.evm_address for k in self.keys)
        rpc, bridges = {}, {}
        test_token = ""
        for name, node in self.nodes.items():
            w3 = evm.connect(node.rpc_url)
            allowed = [NATIVE_TOKEN]
            if name == "ethereum":
                test_token = evm.deploy_test_token(w3, sender_key=evm.ANVIL_DEV_KEY,
                                                   name="Ferry Test", symbol="TEST")
                allowed.append(test_token)
            bridges[name] = evm.deploy_bridge(w3, members, self.threshold, allowed,
                                              sender_key=evm.ANVIL_DEV_KEY)
            evm.fund(w3, submitter_address, EVM_FUNDS_WEI)
            rpc[name] = node.rpc_url
        ports = {k: evm.free_port() for k in ("ledger", "relayer", "metrics", "api", "webhook")}
        relayer_ports = {"relayer": (ports["relayer"], ports["metrics"])} | {
            name: (evm.free_port(), evm.free_port()) for name in self.relayer_names[1:]}
        htlcs = self._deploy_swaps(keydir)
        if self.solana is not None:
            self.solana.deploy(self.keys, self.threshold, keydir / "relayer-solana.json",
                               self.passphrase, self.kdf)
        _write_secret(self.root / "operator-token", self.operator_token)
        self.risk_routes = self._risk_routes(test_token)
        self.webhooks = WebhookSink(ports["webhook"]).start()
        config = self.root / "ferry.toml"
        config.write_text(self._config_text(rpc, bridges, test_token, ports)
                          + self._bitcoin_text() + self._cosmos_text()
                          + self._solana_text()
                          + self._swaps_text(htlcs)
                          + self._risk_text() + self._api_text(ports["api"]))
        config.chmod(0o600)  # it holds the webhook secret and the btcd RPC password
        self.info = DevnetInfo(
            root=str(self.root), config=str(config), rpc=rpc,
            chain_ids={"ethereum": ETH_CHAIN_ID, "bsc": BSC_CHAIN_ID}, bridges=bridges,
            test_token=test_token, ledger_url=f"http://127.0.0.1:{ports['ledger']}",
            relayer_url=f"http://127.0.0.1:{ports['relayer']}",
            metrics_url=f"http://127.0.0.1:{ports['metrics']}/metrics",
            htlcs=htlcs, api_url=f"http://127.0.0.1:{ports['api']}", solana=self.solana.info if self.solana else {},
            webhook_url=self.webhooks.url,
            relayers={name: {"url": f"http://127.0.0.1:{port}",
                             "metrics_url": f"http://127.0.0.1:{metrics}/metrics"}
                      for name, (port, metrics) in relayer_ports.items()},
            validators=[{"name": f"validator-{i + 1}", "ed25519": k.ed25519_public_hex,
                         "evm_address": k.evm_address,
                         "secp256k1_pubkey": k.secp256k1_public.hex()}
                        for i, k in enumerate(self.keys)])
        assert self.btcd is not None
        vault = Vault(tuple(k.secp256k1_public for k in self.keys), self.threshold, "regtest")
        self.info.bitcoin = {"rpc_url": self.btcd.rpc_url, "chain": self.btcd.chain,
                             "vault_address": vault.address}
        assert self.simd is not None
        escrow = escrow_address([k.secp256k1_public for k in self.keys], self.threshold)
        self.info.cosmos = {"rpc_url": self.simd.rpc_url, "rest_url": self.simd.rest_url,
                            "chain": self.simd.caip2, "escrow": escrow}
        # The operator funds the escrow's fee reserve (fees are paid in uatom, never in the
        # bridged stake, so the escrow's stake stays exactly the wrapped supply).
        CosmosWallet(self.simd, self.cosmos_operator_secret).send(escrow, 10**9, "uatom")
        self._save()
        return self.info

    def _config_text(self, rpc: dict[str, str], bridges: dict[str, str], token: str,
                     ports: dict[str, int]) -> str:
        chains = "".join(
            f'\n[[chains]]\nname = "{name}"\nchain_id = {cid}\nrpc_url = "{rpc[name]}"\n'
            f'bridge_address = "{bridges[name]}"\nconfirmation_depth = {self.depth}\n'
            f"poll_interval_s = {self.poll_interval_s}\n"
            for name, cid in (("ethereum", ETH_CHAIN_ID), ("bsc", BSC_CHAIN_ID)))
        assets = "".join(
            f'\n[[assets]]\nsymbol = "{sym}"\norigin_chain = "eip155:{cid}"\n'
            f'origin_token = "{tok}"\ndecimals = 18\n'
            for sym, cid, tok in (("wETH", ETH_CHAIN_ID, NATIVE_TOKEN),
                                  ("wTEST", ETH_CHAIN_ID, token),
                                  ("wBNB", BSC_CHAIN_ID, NATIVE_TOKEN)))
        members = "".join(
            f'\n[[validator_set.members]]\nname = "validator-{i + 1}"\n'
            f'ed25519 = "{k.ed25519_public_hex}"\nevm_address = "{k.evm_address}"\n'
            for i, k in enumerate(self.keys))
        return (
            "# Generated by `ferry devnet up` / `ferry demo`: a local devnet, no real value.\n"
            'network = "ferry-devnet"\n\n'
            f'[ledger]\ndatabase_url = "sqlite:///{self.root}/ledger.sqlite"\n'
            f"port = {ports['ledger']}\noperator_token_sha256 = "
            f'"{hashlib.sha256(self.operator_token.encode()).hexdigest()}"\n\n'
            f'[relayer]\ndatabase_url = "{self.database_url}"\n'
            f"port = {ports['relayer']}\nmetrics_port = {ports['metrics']}\n"
            f"poll_interval_s = {self.poll_interval_s}\n"
            f'submitter_keystore = "{self.root}/keys/relayer.json"\n'
            + (f'solana_keystore = "{self.root}/keys/relayer-solana.json"\n'
               if self.solana is not None else "")
            + f"{chains}{assets}\n[validator_set]\nepoch = 1\nthreshold = {self.threshold}\n"
            f"{members}")

    def _bitcoin_text(self) -> str:
        """The ``[[bitcoin]]`` table (btcd regtest; the vault is the validators' secp256k1 keys)
        and the wBTC asset."""
        assert self.btcd is not None
        pubkeys = ", ".join(f'"{k.secp256k1_public.hex()}"' for k in self.keys)
        return (
            f'\n[[bitcoin]]\nname = "bitcoin"\nnetwork = "regtest"\n'
            f'rpc_url = "{self.btcd.rpc_url}"\nrpc_user = "{self.btcd.rpc_user}"\n'
            f'rpc_password = "{self.btcd.rpc_password}"\nvalidator_pubkeys = [{pubkeys}]\n'
            f"threshold = {self.threshold}\nconfirmation_depth = {self.btc_depth}\n"
            f"poll_interval_s = {self.poll_interval_s}\nfee_rate_sat_vb = 2\n"
            f'\n[[assets]]\nsymbol = "wBTC"\norigin_chain = "{self.btcd.chain}"\n'
            f'origin_token = "btc"\ndecimals = 8\n')

    def _cosmos_text(self) -> str:
        """The ``[[cosmos]]`` table (simd; the escrow is the validators' secp256k1 keys) and
        the wSTAKE asset."""
        assert self.simd is not None
        pubkeys = ", ".join(f'"{k.secp256k1_public.hex()}"' for k in self.keys)
        return (
            f'\n[[cosmos]]\nname = "simd"\nchain_id = "{self.simd.chain_id}"\n'
            f'rpc_url = "{self.simd.rpc_url}"\nrest_url = "{self.simd.rest_url}"\n'
            f"validator_pubkeys = [{pubkeys}]\nthreshold = {self.threshold}\n"
            f"poll_interval_s = {self.poll_interval_s}\n"
            f'fee_denom = "uatom"\nfee_amount = 5000\ngas_limit = 200000\n'
            f'\n[[cosmos.denoms]]\ndenom = "stake"\nmin_deposit = 1000\n'
            f'\n[[assets]]\nsymbol = "wSTAKE"\norigin_chain = "{self.simd.caip2}"\n'
            f'origin_token = "stake"\ndecimals = 6\n')

    def _solana_text(self) -> str:
        """The ``[[solana]]`` table and its assets ("" without the Solana cluster)."""
        if self.solana is None:
            return ""
        return self.solana.config_text(self.keys, self.threshold, self.poll_interval_s)

    def _deploy_swaps(self, keydir: Path) -> dict[str, str]:
        """Deploy the HTLC contract on both anvil chains and create the relayer's swap key file;
        fund its EVM address on both chains and its Bitcoin P2WPKH address (10 BTC, confirmed).
        Returns chain name -> HTLC contract address."""
        from htlc.evm import deploy_htlc

        assert self.faucet is not None
        swap_keys = new_keystore(keydir / "relayer-swaps.json", self.passphrase, kdf=self.kdf)
        htlcs = {}
        for name, node in self.nodes.items():
            w3 = evm.connect(node.rpc_url)
            htlcs[name] = deploy_htlc(w3, sender_key=evm.ANVIL_DEV_KEY).lower()
            evm.fund(w3, swap_keys.evm_address, EVM_FUNDS_WEI)
        self.faucet.pay(p2wpkh_script(swap_keys.secp256k1_public), SWAP_WALLET_SATS)
        self.faucet.mine(1)
        return htlcs

    def _swaps_text(self, htlcs: dict[str, str]) -> str:
        """The ``[swaps]`` section: the relayer trades BTC (regtest) against ETH (anvil) both
        ways at 20 ETH per BTC, 0.3% fee. Devnet clocks: 1 s per block on every chain (btcd
        mines on demand), so timelocks are short; the relayer re-checks the margin."""
        assert self.btcd is not None
        btc, eth = self.btcd.chain, f"eip155:{ETH_CHAIN_ID}"
        common = ("fee_bps = 30\nuser_timelock_s = 600\nrelayer_timelock_s = 300\n"
                  "lock_deadline_s = 120\n")
        return (
            f'\n[swaps]\nkeystore = "{self.root}/keys/relayer-swaps.json"\n'
            f'\n[[swaps.chains]]\nchain = "{btc}"\nblock_time_s = 1\n'
            f'\n[[swaps.chains]]\nchain = "{eth}"\nhtlc_address = "{htlcs["ethereum"]}"\n'
            f"block_time_s = 1\n"
            f'\n[[swaps.pairs]]\nname = "BTC/ETH"\nuser_chain = "{btc}"\nuser_asset = "btc"\n'
            f'relayer_chain = "{eth}"\nrelayer_asset = "{NATIVE_TOKEN}"\n'
            f"rate_num = 200000000000\nrate_den = 1\nmin_amount = 10000\n"
            f"max_amount = 100000000\n{common}"
            f'\n[[swaps.pairs]]\nname = "ETH/BTC"\nuser_chain = "{eth}"\n'
            f'user_asset = "{NATIVE_TOKEN}"\nrelayer_chain = "{btc}"\nrelayer_asset = "btc"\n'
            f"rate_num = 1\nrate_den = 200000000000\nmin_amount = 10000000000000000\n"
            f"max_amount = 20000000000000000000\n{common}")

    def _risk_routes(self, token: str) -> list[dict[str, str | int]]:
        """``[[risk.routes]]``: both directions of every devnet asset limited to a million
        whole units a day (no demo or test comes near), and a wETH lock of 5 ETH or more
        delayed one hour (the demo's operator release)."""
        assert self.btcd is not None and self.simd is not None
        eth = f"eip155:{ETH_CHAIN_ID}"
        assets = ((eth, NATIVE_TOKEN, 18), (eth, token, 18),
                  (f"eip155:{BSC_CHAIN_ID}", NATIVE_TOKEN, 18), (self.btcd.chain, "btc", 8),
                  (self.simd.caip2, "stake", 6),
                  *(self.solana.risk_assets() if self.solana is not None else ()))
        routes: list[dict[str, str | int]] = []
        for chain, tok, decimals in assets:
            for src, dst in ((chain, "ferry:ledger"), ("ferry:ledger", chain)):
                route: dict[str, str | int] = {
                    "source_chain": src, "dest_chain": dst, "asset": asset_key(chain, tok),
                    "daily_limit": str(10**6 * 10**decimals)}
                if (src, tok) == (eth, NATIVE_TOKEN):
                    route |= {"large_transfer": str(LARGE_ETH_LOCK_WEI), "delay_s": LARGE_DELAY_S}
                routes.append(route)
        return routes

    def _risk_text(self) -> str:
        """``[risk]`` (`_risk_routes`), applied by the ledger, the relayer and every validator,
        and shown by the API."""
        text = f"\n[risk]\nwindow_s = 86400\ndelay_s = {LARGE_DELAY_S}\n"
        for route in self.risk_routes:
            text += "\n[[risk.routes]]\n" + "".join(
                f"{k} = {json.dumps(v)}\n" for k, v in route.items())
        return text

    def _api_text(self, port: int) -> str:
        """``[api]`` (its own port; a per-IP limit the demo's polling never reaches; quick
        webhook retries) and one webhook subscription to the local receiver."""
        assert self.webhooks is not None
        return (f'\n[api]\nport = {port}\nrate_limit_per_ip = "100000/minute"\n'
                f"webhook_max_backoff_s = 2.0\n"
                f'\n[[api.webhooks]]\nname = "devnet"\nurl = "{self.webhooks.url}"\n'
                f'secret = "{self.webhook_secret}"\nevents = ["transfer", "swap"]\n')

    def mine_bitcoin(self, blocks: int) -> list[str]:
        """Mine `blocks` regtest blocks now (btcd mines on demand only)."""
        assert self.faucet is not None
        return self.faucet.mine(blocks)

    # ------------------------------------------------------------------ services
    def api_env(self) -> dict[str, str]:
        return {**self.service_env(),
                "FERRY_API__LEDGER_OPERATOR_TOKEN": self.operator_token}

    def create_api_key(self, name: str, scopes: tuple[str, ...]) -> str:
        """Create an operator API key with the real CLI (``ferry api keys create``); return
        its token (printed once by the CLI, never stored but as a SHA-256).

        Raises:
            ServiceFailed: the command failed (its output is in the message).
        """
        assert self.info is not None
        args = [sys.executable, "-m", "relayer.cli", "api", "keys", "create", "--config",
                self.info.config, "--name", name]
        for scope in scopes:
            args += ["--scope", scope]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise ServiceFailed(f"ferry api keys create failed: {done.stderr or done.stdout}")
        return str(json.loads(done.stdout)["token"])

    def operator_key(self) -> str:
        """The all-scopes operator API key (``<root>/operator-key``)."""
        return (self.root / "operator-key").read_text()

    def service_env(self) -> dict[str, str]:
        return {"FERRY_RELAYER__SUBMITTER_PASSPHRASE": self.passphrase,
                "FERRY_RELAYER__SOLANA_PASSPHRASE": self.passphrase,
                "FERRY_SWAPS__PASSPHRASE": self.passphrase}

    def relayer_env(self, name: str) -> dict[str, str]:
        """Environment of relayer replica `name`: its own ports and replica id (the config
        file's ``[relayer]`` holds the first replica's ports and the shared database)."""
        assert self.info is not None
        urls = self.info.relayers[name]
        return {**self.service_env(), "FERRY_RELAYER__REPLICA_ID": name,
                "FERRY_RELAYER__PORT": urls["url"].rsplit(":", 1)[1],
                "FERRY_RELAYER__METRICS_PORT": urls["metrics_url"].split(":")[2].split("/")[0]}

    def validator_env(self, i: int) -> dict[str, str]:
        assert self.info is not None
        env = {
            "FERRY_VALIDATOR__NAME": f"validator-{i}",
            "FERRY_VALIDATOR__KEYSTORE": str(self.root / "keys" / f"validator-{i}.json"),
            "FERRY_VALIDATOR__PASSPHRASE": self.passphrase,
            "FERRY_VALIDATOR__LEDGER_URL": self.info.ledger_url,
            "FERRY_VALIDATOR__STATE_FILE": str(self.root / f"validator-{i}.state.json"),
            "FERRY_VALIDATOR__POLL_INTERVAL_S": str(self.poll_interval_s),
        }
        if i <= self.socket_signers:  # keys and passphrase stay in `signer-<i>`
            del env["FERRY_VALIDATOR__KEYSTORE"], env["FERRY_VALIDATOR__PASSPHRASE"]
            env |= {"FERRY_VALIDATOR__SIGNER": "socket",
                    "FERRY_VALIDATOR__SIGNER_SOCKET": str(self.signer_socket(i))}
        # Validators spread over the relayer replicas (validator i starts at replica i mod n:
        # the attestation inbox is the relayer's main work), the others tried in order when
        # the current one is unreachable.
        urls = [r["url"] for r in self.info.relayers.values()]
        start = (i - 1) % len(urls)
        ordered = urls[start:] + urls[:start]
        env["FERRY_VALIDATOR__RELAYER_URL"] = ordered[0]
        if len(ordered) > 1:
            env["FERRY_VALIDATOR__RELAYER_URLS"] = json.dumps(ordered[1:])
        return env

    def service(self, name: str) -> ServiceProcess:
        """A (not yet started) process for `ledger`, `api`, a relayer replica (`relayer`,
        `relayer-<i>`) or `validator-<i>`."""
        assert self.info is not None
        cfg = ["--config", self.info.config]
        logs = self.root / "logs"
        if name == "ledger":
            return ServiceProcess(name, ["ledger", "serve", *cfg], logs / "ledger.log")
        if name in self.relayer_names:
            return ServiceProcess(name, ["relayer", "run", *cfg], logs / f"{name}.log",
                                  self.relayer_env(name))
        if name == "api":
            return ServiceProcess(name, ["api", "serve", *cfg], logs / "api.log", self.api_env())
        i = int(name.rsplit("-", 1)[1])
        if name.startswith("signer-"):
            return ServiceProcess(name, ["signer", "serve", "--keystore",
                                         str(self.root / "keys" / f"validator-{i}.json"),
                                         "--socket", str(self.signer_socket(i))],
                                  logs / f"{name}.log", {"FERRY_PASSPHRASE": self.passphrase})
        return ServiceProcess(name, ["validator", "run", *cfg], logs / f"{name}.log",
                              self.validator_env(i))

    def start_services(self) -> None:
        """The operator API key first (``<root>/operator-key``), then the ledger, the relayer,
        the API and the validators, each service but the validators waited for."""
        assert self.info is not None
        if not (self.root / "operator-key").exists():
            _write_secret(self.root / "operator-key",
                          self.create_api_key("demo-operator", OPERATOR_SCOPES))
        self.services["ledger"] = self.service("ledger").start()
        self.services["ledger"].wait_http(f"{self.info.ledger_url}/v1/ledger/status")
        for name in self.relayer_names:
            self.start_relayer(name)
        self.services["api"] = self.service("api").start()
        self.services["api"].wait_http(f"{self.info.api_url}/healthz")
        for i in range(1, self.socket_signers + 1):
            self.services[f"signer-{i}"] = self.service(f"signer-{i}").start()
            self.services[f"signer-{i}"].wait_socket(self.signer_socket(i))
        for i in range(1, self.n + 1):
            self.services[f"validator-{i}"] = self.service(f"validator-{i}").start()
        self._save()

    def start_relayer(self, name: str = "relayer") -> ServiceProcess:
        """Start relayer replica `name` (again, after a kill) and wait for its ``/healthz``."""
        assert self.info is not None
        proc = self.service(name).start()
        self.services[name] = proc
        proc.wait_http(f"{self.info.relayers[name]['url']}/healthz")
        return proc

    def kill_relayer(self, name: str = "relayer") -> None:
        """SIGKILL relayer replica `name` (no cleanup, no flush: a crashed replica)."""
        if name not in self.relayer_names:
            raise ValueError(f"no relayer replica named {name!r}")
        self.services[name].kill()

    def stop(self) -> None:
        """Stop every process this object started (services first, then chains)."""
        for proc in reversed(list(self.services.values())):
            proc.stop()
        for node in self.nodes.values():
            node.stop()
        if self.btcd is not None:
            self.btcd.stop()
        if self.simd is not None:
            self.simd.stop()
        if self.solana is not None:
            self.solana.stop()
        if self.webhooks is not None:
            self.webhooks.stop()
        if self.signer_dir is not None:  # the sockets of the stopped signers
            shutil.rmtree(self.signer_dir, ignore_errors=True)

    def signer_socket(self, i: int) -> Path:
        """Socket of ``signer-<i>``, in a temp directory (mode 0700, a short path: Unix
        sockets allow about 100 bytes)."""
        if self.signer_dir is None:
            self.signer_dir = Path(tempfile.mkdtemp(prefix="ferry-signers-"))
        return self.signer_dir / f"{i}.sock"

    def _save(self) -> None:
        assert self.info is not None
        self.info.pids = {n: p.pid for n, p in self.services.items() if p.alive()}
        self.info.pids.update({f"anvil-{n}": node.pid for n, node in self.nodes.items()
                               if node.pid is not None})
        if self.btcd is not None and self.btcd.pid is not None:
            self.info.pids["btcd"] = self.btcd.pid
        if self.simd is not None and self.simd.pid is not None:
            self.info.pids["simd"] = self.simd.pid
        if self.solana is not None and self.solana.node.pid is not None:
            self.info.pids["solana"] = self.solana.node.pid
        (self.root / "devnet.json").write_text(json.dumps(asdict(self.info), indent=2) + "\n")


def _write_secret(path: Path, text: str) -> None:
    """Write `text` to a new file `path` readable by its owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
