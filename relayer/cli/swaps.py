"""Wiring of the relayer's swap side: the swap key file, one HTLC driver per ``[[swaps.chains]]``
entry, the Bitcoin swap wallet, and the `SwapEngine` over the relayer's database. Part of the
composition root (it may import concrete chain drivers).

Owns: construction and the swap job (`SwapRuntime.run`). Must not hold swap logic
(`relayer.swap_engine`) nor HTTP (`api.swaps`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from nacl.signing import SigningKey

from adapters.errors import ConfigError, WrongChain
from relayer.config import FerryConfig
from relayer.quotes import SwapChain, SwapsSection

log = logging.getLogger(__name__)
DEFAULT_BLOCK_TIME_S = {"eip155": 12, "bip122": 600, "ferry": 1}


@dataclass
class SwapRuntime:
    """What the relayer process runs for swaps.

    Attributes:
        engine: the `relayer.swap_engine.SwapEngine`.
        section: the ``[swaps]`` config (pairs for quotes).
        wallets: the Bitcoin swap wallets (`htlc.btc_wallet.ScanningWallet`), synced each pass.
    """

    engine: Any
    section: SwapsSection
    wallets: list[Any] = field(default_factory=list)

    def run(self) -> int:
        """One pass of the swap job: sync the wallets, then drive every open swap."""
        for wallet in self.wallets:
            wallet.sync()
        return int(self.engine.run())


def load_swap_keys(section: SwapsSection) -> tuple[SigningKey, bytes]:
    """(Ed25519 signing key, secp256k1 secret) from ``swaps.keystore``.

    Raises:
        ConfigError: no keystore or no passphrase configured. KeystoreError: unreadable file
            or wrong passphrase.
    """
    from validators.keystore import hot_wallet_secrets, load_keystore

    if section.keystore is None:
        raise ConfigError("swaps.keystore is not set")
    if section.passphrase is None:
        raise ConfigError("swaps.passphrase is required with swaps.keystore "
                          "(set FERRY_SWAPS__PASSPHRASE)")
    seed, secp = hot_wallet_secrets(load_keystore(section.keystore,
                                                  section.passphrase.get_secret_value()))
    return SigningKey(seed), secp


def build_swap_runtime(cfg: FerryConfig, keys: tuple[SigningKey, bytes] | None = None
                       ) -> SwapRuntime | None:
    """The swap runtime, or None when no pair is configured.

    Args:
        keys: the swap keys, instead of reading ``swaps.keystore``.

    Raises:
        ConfigError: a swaps chain that is not configured elsewhere, or bad keys.
        WrongChain: a node serves another chain than configured.
    """
    from relayer.swap_engine import SwapEngine
    from relayer.swap_store import SwapStore

    section = cfg.swaps
    if not section.pairs:
        return None
    ed_key, secp = keys or load_swap_keys(section)
    legs: dict[str, Any] = {}
    identities: dict[str, bytes] = {}
    anyone: set[str] = set()
    wallets: list[Any] = []
    for chain in section.chains:
        leg, identity, refundable, wallet = _leg(cfg, chain, ed_key, secp)
        legs[chain.chain], identities[chain.chain] = leg, identity
        if refundable:
            anyone.add(chain.chain)
        if wallet is not None:
            wallets.append(wallet)
    engine = SwapEngine(SwapStore.open(cfg.relayer.database_url), legs, identities,
                        anyone_can_refund=frozenset(anyone))
    log.info("swaps enabled pairs=%s chains=%s", [p.name for p in section.pairs], list(legs))
    return SwapRuntime(engine, section, wallets)


def chain_timing(chain: SwapChain, depth: int, kind: str) -> Any:
    """`htlc.timelock.ChainTiming` of a swaps chain: its block time (or the family default)
    and `depth` (at least 1)."""
    from htlc.timelock import ChainTiming

    default = DEFAULT_BLOCK_TIME_S[chain.chain.split(":", 1)[0]]
    return ChainTiming(block_time_s=chain.block_time_s or default,
                       confirmation_depth=max(1, depth), kind=kind)  # type: ignore[arg-type]


def _leg(cfg: FerryConfig, chain: SwapChain, ed_key: SigningKey, secp: bytes
         ) -> tuple[Any, bytes, bool, Any]:
    """(driver, the relayer's identity there, anyone can refund there, wallet or None)."""
    namespace = chain.chain.split(":", 1)[0]
    if namespace == "eip155":
        from adapters.evm.devnet import connect
        from htlc.legs_evm import EvmLeg
        from validators.eip712 import address_of

        evm = next((c for c in cfg.chains if c.caip2 == chain.chain), None)
        if evm is None:
            raise ConfigError(f"swaps chain {chain.chain} is not a configured [[chains]] entry")
        assert chain.htlc_address is not None  # SwapChain requires it on EVM chains
        leg: Any = EvmLeg(connect(evm.rpc_url, evm.request_timeout_s), chain.htlc_address,
                     "0x" + secp.hex(), chain_timing(chain, evm.confirmation_depth, "time"))
        if leg.chain != chain.chain:
            raise WrongChain(f"{evm.rpc_url} serves {leg.chain}, configured {chain.chain}")
        return leg, bytes.fromhex(address_of(secp)[2:]), True, None
    if namespace == "bip122":
        from adapters.bitcoin.adapter import BitcoinAdapter
        from adapters.bitcoin.keys import public_key
        from htlc.btc_wallet import ScanningWallet
        from htlc.legs_bitcoin import BitcoinLeg

        btc = cfg.bitcoin_chain(chain.chain)
        reader = BitcoinAdapter(btc)
        reader.verify_chain()
        wallet = ScanningWallet(reader.rpc, secp, chain.wallet_start_height)
        btc_leg = BitcoinLeg(reader.rpc, btc.network, secp,
                         chain_timing(chain, btc.confirmation_depth, "height"), None,
                         btc.fee_rate_sat_vb, wallet)
        return btc_leg, public_key(secp), False, wallet
    if chain.chain == "ferry:ledger":
        from htlc.legs_ledger import LedgerLeg
        from ledger.client import LedgerClient

        ledger_leg = LedgerLeg(LedgerClient(str(cfg.ledger.url)), ed_key, cfg.network,
                        chain_timing(chain, 1, "time"))
        return ledger_leg, bytes(ed_key.verify_key), True, None
    raise ConfigError(f"swaps on {chain.chain} are not supported (EVM, Bitcoin and the ledger)")
