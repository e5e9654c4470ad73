"""What differs per chain family at the API edge, as one table: how a user deposits into the
bridge (EVM ``Bridge.lock`` calldata, a Bitcoin deposit address, a Cosmos escrow send with a
memo), how a payout address is checked, and the finality figures the API shows (confirmations
needed, block time, signatures a release needs).

Owns: `Family` and `FAMILIES` (by chain config type), `chain_config`, `ledger_burn`. The API
core (`api.transfers`, `api.network`) asks this table and never branches on a chain id. It may
import the adapter packages (their parsers and scripts); it never calls a chain: the EVM
calldata is encoded from the ``Bridge`` artifact's ABI, the Bitcoin address is derived from the
vault keys in config.

SECURITY: every instruction is derived from the operator's config only (bridge address, vault
keys, escrow keys), never from the request, except the amount and the recipient account the
user asks for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.base import NATIVE_TOKEN
from adapters.bitcoin.config import BitcoinChainConfig
from adapters.cosmos.config import CosmosChainConfig
from adapters.errors import (
    AmountTooSmall,
    InvalidAddress,
    UnknownAsset,
    UnknownChain,
    ValidationError,
)
from adapters.evm.config import EvmChainConfig
from adapters.solana.config import SolanaChainConfig
from ledger.config import AssetConfig
from ledger.fields import parse_dest_address
from ledger.transactions import SignedTx, TxKind, parse_transaction
from relayer.config import FerryConfig
from validators.attestation import LEDGER_CHAIN

ChainConfig = EvmChainConfig | BitcoinChainConfig | CosmosChainConfig | SolanaChainConfig
Register = Callable[[str, bytes], None]  # (chain, 32-byte account): register for scanning
COSMOS_BLOCK_TIME_S = 6.0  # CometBFT's usual block interval (no config field)


@dataclass(frozen=True, slots=True)
class Family:
    """One chain family's part of the API.

    Attributes:
        name: ``evm``, ``bitcoin``, ``cosmos`` or ``solana`` (shown by ``GET /v1/chains``).
        deposit: instructions to lock `amount` of `asset` for a 32-byte ledger account.
        payout: parse a payout address on the chain (a burn's recipient); returns the form
            the ledger stores.
        sender: parse the optional depositing address (informational).
        min_amount: the smallest deposit of `asset` the chain's watcher credits.
        confirmations: blocks counted from a lock's own block (it counts 1) until the engine
            confirms it; None when the chain's ``finalized`` tag decides instead.
        block_time_s: expected seconds per block (ETAs only).
        release_threshold: signatures a release on this chain needs; None: the ledger's
            current threshold (the EVM bridge's set mirrors the ledger's).
    """

    name: str
    deposit: Callable[[Any, AssetConfig, int, bytes, Register], dict[str, Any]]
    payout: Callable[[Any, str], str]
    sender: Callable[[Any, str], str]
    min_amount: Callable[[Any, AssetConfig], int]
    confirmations: Callable[[Any], int | None]
    block_time_s: Callable[[Any], float]
    release_threshold: Callable[[Any], int | None]


# ------------------------------------------------------------------------------ EVM
@functools.cache
def _bridge_contract() -> Any:
    from web3 import Web3

    from contracts import load_artifact

    return Web3().eth.contract(abi=load_artifact("Bridge").abi)


def _evm_deposit(c: EvmChainConfig, asset: AssetConfig, amount: int, account: bytes,
                 _register: Register) -> dict[str, Any]:
    """``Bridge.lock(token, amount, recipient)`` calldata (Solidity ABI spec), the ETH value,
    and for an ERC-20 the ``approve`` the bridge needs first."""
    from web3 import Web3

    token = asset.origin_token
    data = _bridge_contract().encode_abi(
        "lock", args=[Web3.to_checksum_address(token), amount, account])
    native = token == NATIVE_TOKEN
    out: dict[str, Any] = {"kind": "evm_call", "chain": c.caip2, "to": c.bridge_address,
                           "value": str(amount) if native else "0", "data": data}
    if not native:
        out["approve"] = {"token": token, "spender": c.bridge_address, "amount": str(amount)}
    return out


def _evm_address(c: EvmChainConfig, text: str) -> str:
    from adapters.evm.calls import hex_address

    try:
        return hex_address(text, "address")
    except ValidationError as exc:  # report it with the address code
        raise InvalidAddress(str(exc)) from exc


EVM = Family(
    name="evm", deposit=_evm_deposit,
    payout=lambda c, text: parse_dest_address(c.caip2, _evm_address(c, text), "recipient"),
    sender=_evm_address, min_amount=lambda c, a: 1,
    confirmations=lambda c: None if c.use_finalized_tag else c.confirmation_depth + 1,
    block_time_s=lambda c: float(c.block_time_s), release_threshold=lambda c: None)


# ------------------------------------------------------------------------------ Bitcoin
def _bitcoin_deposit(b: BitcoinChainConfig, asset: AssetConfig, amount: int, account: bytes,
                     register: Register) -> dict[str, Any]:
    """The account's own deposit address (``<account> OP_DROP`` + the vault multisig, P2WSH;
    `adapters.bitcoin.scripts.Vault.deposit`), registered with the ledger so scanners watch it
    (as ``ferry btc deposit-address`` does)."""
    deposit = b.vault.deposit(account)
    register(b.caip2, account)
    return {"kind": "bitcoin_address", "chain": b.caip2, "address": deposit.address,
            "amount_sats": str(amount), "min_amount_sats": str(b.min_deposit_sats),
            "confirmations": b.confirmation_depth}


def _bitcoin_payout(b: BitcoinChainConfig, text: str) -> str:
    from adapters.bitcoin.scripts import script_pubkey_from_address

    script_pubkey_from_address(text, b.network)
    return parse_dest_address(b.caip2, text, "recipient")


BITCOIN = Family(
    name="bitcoin", deposit=_bitcoin_deposit, payout=_bitcoin_payout,
    sender=lambda b, text: _opaque(text), min_amount=lambda b, a: b.min_deposit_sats,
    confirmations=lambda b: b.confirmation_depth,
    block_time_s=lambda b: float(b.htlc_block_time_s), release_threshold=lambda b: b.threshold)


# ------------------------------------------------------------------------------ Cosmos
def _cosmos_denom(c: CosmosChainConfig, asset: AssetConfig) -> Any:
    for d in c.denoms:
        if d.denom.lower() == asset.origin_token:
            return d
    raise UnknownAsset(f"{c.caip2} escrow does not accept {asset.origin_token}")


def _cosmos_deposit(c: CosmosChainConfig, asset: AssetConfig, amount: int, account: bytes,
                    _register: Register) -> dict[str, Any]:
    """A bank send to the escrow multisig whose memo is exactly the ledger account
    (`adapters.cosmos.watcher.memo_account`); any other memo is refunded, not credited."""
    denom = _cosmos_denom(c, asset)
    return {"kind": "cosmos_send", "chain": c.caip2, "escrow": c.escrow_address,
            "memo": "0x" + account.hex(), "denom": denom.denom, "amount": str(amount)}


def _cosmos_payout(c: CosmosChainConfig, text: str) -> str:
    from adapters.cosmos.multisig import parse_address

    parse_address(text, c.bech32_prefix)
    return parse_dest_address(c.caip2, text, "recipient")


COSMOS = Family(
    name="cosmos", deposit=_cosmos_deposit, payout=_cosmos_payout,
    sender=lambda c, text: _opaque(text),
    min_amount=lambda c, a: int(_cosmos_denom(c, a).min_deposit),
    confirmations=lambda c: c.confirmation_depth,
    block_time_s=lambda c: COSMOS_BLOCK_TIME_S, release_threshold=lambda c: c.threshold)


# ------------------------------------------------------------------------------ Solana
SOLANA_SLOT_TIME_S = 0.4  # Solana's target slot time (no config field)


def _solana_mint(c: SolanaChainConfig, asset: AssetConfig) -> Any:
    try:
        return c.mint_config(asset.origin_token)
    except ValidationError as exc:
        raise UnknownAsset(f"{c.caip2} escrow does not accept {asset.origin_token}") from exc


def _solana_deposit(c: SolanaChainConfig, asset: AssetConfig, amount: int, account: bytes,
                    _register: Register) -> dict[str, Any]:
    """An SPL Token ``TransferChecked`` into the escrow's token account of the mint, in one
    transaction with a Memo whose text is exactly the ledger account
    (`adapters.solana.watcher`); SOL goes in as wrapped SOL (the native mint)."""
    m = _solana_mint(c, asset)
    return {"kind": "solana_transfer_checked", "chain": c.caip2, "mint": m.mint,
            "decimals": m.decimals, "escrow": c.escrow_of(m.mint),
            "escrow_authority": c.multisig, "memo": "0x" + account.hex(),
            "amount": str(amount)}


def _solana_payout(c: SolanaChainConfig, text: str) -> str:
    from adapters.solana.config import parse_pubkey

    return parse_dest_address(c.caip2, parse_pubkey(text), "recipient")


SOLANA = Family(
    name="solana", deposit=_solana_deposit, payout=_solana_payout,
    sender=lambda c, text: _opaque(text),
    min_amount=lambda c, a: int(_solana_mint(c, a).min_deposit),
    confirmations=lambda c: None,  # deposits count at `finalized` commitment
    block_time_s=lambda c: SOLANA_SLOT_TIME_S, release_threshold=lambda c: c.threshold)

FAMILIES: dict[type, Family] = {EvmChainConfig: EVM, BitcoinChainConfig: BITCOIN,
                                CosmosChainConfig: COSMOS, SolanaChainConfig: SOLANA}


def _opaque(text: str) -> str:
    if not (0 < len(text) <= 128 and text.isprintable() and " " not in text):
        raise InvalidAddress("sender must be 1..128 printable characters")
    return text


def all_chains(cfg: FerryConfig) -> list[ChainConfig]:
    """Every configured chain: EVM, Bitcoin, Cosmos, then Solana, in config order."""
    return [*cfg.chains, *cfg.bitcoin, *cfg.cosmos, *cfg.solana]


def chain_config(cfg: FerryConfig, chain: str) -> tuple[Family, ChainConfig]:
    """The family and config of CAIP-2 `chain`.

    Raises:
        UnknownChain: not a configured chain.
    """
    for c in all_chains(cfg):
        if c.caip2 == chain:
            return FAMILIES[type(c)], c
    raise UnknownChain(f"no chain {chain!r} is configured")


def deposit_instructions(cfg: FerryConfig, asset: AssetConfig, amount: int, account: bytes,
                         register: Register) -> dict[str, Any]:
    """How to lock `amount` of `asset` on its origin chain for ledger `account`.

    Raises:
        AmountTooSmall: below what the chain's watcher credits. UnknownChain, UnknownAsset.
    """
    family, chain = chain_config(cfg, asset.origin_chain)
    smallest = family.min_amount(chain, asset)
    if amount < smallest:
        raise AmountTooSmall(f"{asset.origin_chain} credits deposits of at least {smallest} "
                             "base units; smaller ones are never minted")
    return family.deposit(chain, asset, amount, account, register)


def ledger_burn(network: str, account: bytes, nonce: int, asset: str, amount: int,
                dest_chain: str, dest_address: str) -> dict[str, Any]:
    """The unsigned burn (Ferry tx v1, `ledger.transactions`) a user signs and submits.

    Returns:
        ``{"kind": "ledger_burn", "tx", "sign", "sign_bytes", "burn_id", "submit"}``;
        `burn_id` is what the burn's id will be if `tx` is submitted unchanged.

    Raises:
        ValidationError, InvalidAddress: the ledger would refuse the body.
    """
    body = {"network": network, "kind": TxKind.BURN.value, "account": "0x" + account.hex(),
            "nonce": str(nonce), "asset": asset, "amount": str(amount),
            "dest_chain": dest_chain, "dest_address": dest_address}
    unsigned = SignedTx(body=body, signature=b"\x00" * 64)
    parse_transaction(unsigned)
    return {"kind": "ledger_burn", "chain": LEDGER_CHAIN, "tx": body,
            "sign": 'Ed25519 (RFC 8032) with the account key over b"ferry/tx/v1\\n" + '
                    "canonical(tx) (JSON, sorted keys, no whitespace, UTF-8): sign_bytes",
            "sign_bytes": "0x" + unsigned.signed_bytes.hex(),
            "burn_id": "0x" + unsigned.tx_id.hex(),
            "submit": 'POST /v1/ledger/transactions {"tx": tx, "signature": "0x<64 bytes>"}'}
