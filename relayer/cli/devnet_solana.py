"""The Solana part of the local devnet (`relayer.cli.devnet.Devnet`): the LiteSVM-backed
JSON-RPC server (`adapters.solana.devnet_rpc`, a test tool), the escrow multisig of the
validators' Ed25519 keys, its token accounts for wrapped SOL and a test SPL token, the
releases' durable nonce account, the relayer's fee payer keystore and a funded user wallet.

Owns: that setup and the ``[[solana]]`` config text. Must not be pointed at a network with real
value: it airdrops, and the user's key lives in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from adapters.solana.devnet import SolanaDeployer, SolanaWallet
from adapters.solana.release import NATIVE_MINT
from adapters.solana.svm_node import SvmNode
from validators.keystore import KdfParams, ValidatorKeys, new_keystore

SOL = 10**9  # lamports
TEST_DECIMALS = 6
SLOT_MS = 100  # devnet slot time (Solana's is ~400 ms)
FINALITY_SLOTS = 8  # finalized = 8 slots behind the tip on the devnet
SIGNING_TIMEOUT_S = 8.0  # a release plan not signed by then is re-planned without the laggards


@dataclass
class SolanaDevnet:
    """The devnet's Solana cluster.

    Attributes:
        node: the running server. user: the demo user's wallet (100 SOL, 1,000,000 FTEST).
        info: public facts (``rpc_url``, ``chain``, ``genesis_hash``, ``multisig``,
            ``test_mint``, ``native_mint``, ``nonce_account``, ``fee_payer``, ``start_slot``).
    """

    node: SvmNode
    user_key: Keypair = field(default_factory=Keypair)
    info: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, root: Path) -> SolanaDevnet:
        (root / "solana").mkdir(parents=True, exist_ok=True)
        return cls(SvmNode.start(root / "solana", slot_ms=SLOT_MS,
                                 finality_slots=FINALITY_SLOTS))

    def user(self) -> SolanaWallet:
        return SolanaWallet(self.node.url, self.user_key, chain=self.node.caip2)

    def deploy(self, validators: list[ValidatorKeys], threshold: int, keystore: Path,
               passphrase: str, kdf: KdfParams) -> dict[str, str]:
        """Create the fee payer keystore, the test mint, the escrow multisig and its token
        accounts, the nonce account, and fund the user. Returns `info`."""
        fee_payer = new_keystore(keystore, passphrase, kdf=kdf)
        payer = Pubkey(fee_payer.ed25519_public)
        with SolanaDeployer(self.node.url, chain=self.node.caip2) as deployer:
            deployer.airdrop(1_000 * SOL)
            deployer.airdrop(100 * SOL, payer)
            test_mint = deployer.create_mint(TEST_DECIMALS)
            multisig = deployer.create_multisig([k.ed25519_public for k in validators],
                                                threshold)
            deployer.create_escrow_accounts(multisig, [test_mint, NATIVE_MINT])
            nonce = deployer.create_nonce_account(payer)
            with self.user() as user:
                user.airdrop(100 * SOL)
                with SolanaWallet(self.node.url, deployer.keypair,
                                  chain=self.node.caip2) as minter:
                    minter.mint_to(test_mint, user.pubkey, 1_000_000 * 10**TEST_DECIMALS)
            start = deployer.rpc.slot("finalized")
            deployer.wait_slot_finalized(deployer.rpc.slot("confirmed"))
        self.info = {"rpc_url": self.node.url, "chain": self.node.caip2,
                     "genesis_hash": self.node.genesis_hash, "multisig": str(multisig),
                     "test_mint": str(test_mint), "native_mint": str(NATIVE_MINT),
                     "nonce_account": str(nonce), "fee_payer": str(payer),
                     "start_slot": str(start)}
        return self.info

    def config_text(self, validators: list[ValidatorKeys], threshold: int,
                    poll_interval_s: float) -> str:
        """The ``[[solana]]`` table with its two mints, and the wSOL and wFTEST assets."""
        i = self.info
        pubkeys = ", ".join(f'"{k.ed25519_public.hex()}"' for k in validators)
        return (
            f'\n[[solana]]\nname = "solana"\ngenesis_hash = "{i["genesis_hash"]}"\n'
            f'rpc_url = "{i["rpc_url"]}"\nmultisig = "{i["multisig"]}"\n'
            f"validator_pubkeys = [{pubkeys}]\nthreshold = {threshold}\n"
            f'fee_payer = "{i["fee_payer"]}"\nnonce_account = "{i["nonce_account"]}"\n'
            f'start_block = {i["start_slot"]}\npoll_interval_s = {poll_interval_s}\n'
            f"signing_timeout_s = {SIGNING_TIMEOUT_S}\n"
            f'\n[[solana.mints]]\nmint = "{i["native_mint"]}"\ndecimals = 9\n'
            f'symbol = "SOL"\nmin_deposit = 1000000\n'
            f'\n[[solana.mints]]\nmint = "{i["test_mint"]}"\ndecimals = {TEST_DECIMALS}\n'
            f'symbol = "FTEST"\nmin_deposit = 1000\n'
            f'\n[[assets]]\nsymbol = "wSOL"\norigin_chain = "{i["chain"]}"\n'
            f'origin_token = "{i["native_mint"]}"\ndecimals = 9\n'
            f'\n[[assets]]\nsymbol = "wFTEST"\norigin_chain = "{i["chain"]}"\n'
            f'origin_token = "{i["test_mint"]}"\ndecimals = {TEST_DECIMALS}\n')

    def risk_assets(self) -> list[tuple[str, str, int]]:
        """(chain, token, decimals) of the bridged Solana assets, for ``[[risk.routes]]``."""
        return [(self.info["chain"], self.info["native_mint"], 9),
                (self.info["chain"], self.info["test_mint"], TEST_DECIMALS)]

    def stop(self) -> None:
        self.node.stop()


def summary(net: Any) -> dict[str, str]:
    """What `ferry devnet up` prints about the Solana cluster."""
    return dict(net.solana.info) if getattr(net, "solana", None) else {}
