"""The ``[[solana]]`` config table, Solana addresses from users, and asset keys that keep the
case of base58 mints (CAIP-19)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address

from adapters.base import asset_key
from adapters.errors import InvalidAddress, UnknownAsset
from adapters.solana.config import SolanaChainConfig, parse_pubkey

GENESIS = "EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG"  # solana-test-validator style
MULTISIG = str(Keypair.from_seed(bytes([1]) * 32).pubkey())
FEE_PAYER = str(Keypair.from_seed(bytes([2]) * 32).pubkey())
NONCE = str(Keypair.from_seed(bytes([3]) * 32).pubkey())
MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
NATIVE_MINT = "So11111111111111111111111111111111111111112"
KEYS = [bytes(Keypair.from_seed(bytes([10 + i]) * 32).pubkey()).hex() for i in range(3)]


def table(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "solana-devnet", "genesis_hash": GENESIS, "rpc_url": "http://127.0.0.1:8899/",
        "multisig": MULTISIG, "validator_pubkeys": ["0x" + KEYS[0].upper(), *KEYS[1:]],
        "threshold": 2, "fee_payer": FEE_PAYER, "nonce_account": NONCE,
        "mints": [{"mint": MINT, "decimals": 6, "min_deposit": 1000, "symbol": "USDC"},
                  {"mint": NATIVE_MINT, "decimals": 9}],
    }
    return {**base, **over}


def test_valid_table_normalises_keys_and_derives_identity() -> None:
    c = SolanaChainConfig.model_validate(table())
    assert c.validator_pubkeys == tuple(KEYS)
    assert c.rpc_url == "http://127.0.0.1:8899"
    assert c.caip2 == "solana:" + GENESIS[:32] and c.bridge_address == MULTISIG.lower()
    assert c.use_finalized_tag is False
    assert (c.confirmation_depth, c.start_block, c.max_block_range) == (0, 0, 500)
    assert (c.poll_interval_s, c.request_timeout_s, c.signing_timeout_s) == (1.0, 10.0, 20.0)
    assert c.escrow_of(MINT) == str(get_associated_token_address(
        Pubkey.from_string(MULTISIG), Pubkey.from_string(MINT)))
    assert c.mint_config(NATIVE_MINT).min_deposit == 1
    with pytest.raises(UnknownAsset):
        c.mint_config(MINT.upper())  # only the exact form and the core's lowercase form match


@pytest.mark.parametrize(("over", "message"), [
    ({"genesis_hash": "not-base58-0OIl"}, "base58 32-byte hash"),
    ({"genesis_hash": "1111"}, "base58 32-byte hash"),
    ({"multisig": MULTISIG[:-2]}, "Solana address"),
    ({"fee_payer": "0x" + "ab" * 32}, "Solana address"),
    ({"rpc_url": "127.0.0.1:8899"}, "http"),
    ({"validator_pubkeys": [KEYS[0], KEYS[0]]}, "duplicates"),
    ({"validator_pubkeys": [KEYS[0][:-2]]}, "32-byte Ed25519"),
    ({"validator_pubkeys": []}, "at least 1"),
    ({"validator_pubkeys": [bytes([i]) * 32 for i in range(12)]}, "at most 11"),
    ({"threshold": 4}, "exceeds"),
    ({"threshold": 0}, "greater than or equal to 1"),
    ({"nonce_account": FEE_PAYER}, "distinct"),
    ({"mints": []}, "at least 1"),
    ({"mints": [{"mint": MINT, "decimals": 6}, {"mint": MINT, "decimals": 6}]}, "twice"),
    ({"mints": [{"mint": MINT, "decimals": 6, "min_deposit": 0}]}, "greater than or equal"),
    ({"mints": [{"mint": MINT, "decimals": 256}]}, "less than or equal"),
    ({"mints": [{"mint": MINT, "decimals": 6, "denom": "x"}]}, "Extra inputs"),
    ({"rpc_urls": ["http://x"]}, "Extra inputs"),
])
def test_invalid_tables_are_refused(over: dict[str, Any], message: str) -> None:
    if over.get("validator_pubkeys") and isinstance(over["validator_pubkeys"][0], bytes):
        over = {**over, "validator_pubkeys": [k.hex() for k in over["validator_pubkeys"]],
                "threshold": 1}
    with pytest.raises(PydanticValidationError, match=message):
        SolanaChainConfig.model_validate(table(**over))


def test_parse_pubkey_accepts_base58_addresses_only() -> None:
    assert parse_pubkey(MINT) == MINT
    for bad in ("", MINT.lower(), MINT + "1", "0x" + "00" * 32, "O" * 44):
        with pytest.raises(InvalidAddress):
            parse_pubkey(bad)


def test_mint_config_resolves_the_lowercase_form_the_core_uses() -> None:
    cfg = SolanaChainConfig(**table())
    m = cfg.mints[0]
    assert cfg.mint_config(m.mint.lower()).mint == m.mint
    assert asset_key(cfg.caip2, m.mint) == f"{cfg.caip2}/{m.mint.lower()}"
    with pytest.raises(UnknownAsset):
        cfg.mint_config(m.mint.upper())
