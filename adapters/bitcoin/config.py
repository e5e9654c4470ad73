"""Configuration of one Bitcoin chain: the ``[[bitcoin]]`` table of Ferry's TOML file.

Owns: `BitcoinChainConfig`, its validation, and the network constants (genesis hashes).
Must not touch the network; checking that every RPC endpoint serves this network (its genesis
hash) is the adapter's job at start (`BitcoinAdapter.verify_chain`).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from adapters.config_fields import compressed_pubkeys, http_url
from adapters.multi_rpc import check_quorum, distinct_urls

if TYPE_CHECKING:
    from adapters.bitcoin.scripts import Vault

Network = Literal["mainnet", "testnet", "signet", "regtest"]

# Genesis block hashes (display hex); CAIP-2 uses the first 32 hex characters (BIP-122).
GENESIS: dict[str, str] = {
    "mainnet": "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    "testnet": "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
    "signet": "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
    "regtest": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
}


class BitcoinChainConfig(BaseModel):
    """One Bitcoin network Ferry watches and pays out on, through a btcd (or compatible) node.

    Attributes:
        name: operator-facing label ("bitcoin"); never used as an identity.
        network: mainnet, testnet, signet or regtest; fixes address prefixes and the genesis
            hash the node must serve (else `WrongChain`).
        rpc_url: ``http://`` or ``https://`` JSON-RPC endpoint of the node; the first one tried.
        rpc_urls: more endpoints (independent nodes) of the same network, tried in this order
            after `rpc_url` (failover; see `adapters.bitcoin.multi.MultiBtcRpc`). Every endpoint
            uses the same `rpc_user`, `rpc_password` and `rpc_cert`. Duplicates are dropped.
        rpc_quorum: endpoints that must return the same answer for the reads that decide
            minting (best block, block hashes, the blocks scanned for deposits);
            1 <= rpc_quorum <= number of distinct endpoints.
        rpc_user, rpc_password: the nodes' RPC credentials (no default; never logged).
        rpc_cert: CA file for ``https://`` nodes with a self-signed certificate (btcd's
            ``rpc.cert``); None uses the system trust store.
        validator_pubkeys: the vault's members, 33-byte compressed secp256k1 keys as hex (any
            order; the scripts sort them, BIP-67).
        threshold: signatures a vault spend needs (m of n).
        confirmation_depth: blocks on top of a deposit's block before it is credited (1 = the
            deposit's own block counts; 6 is the Bitcoin custom).
        start_block: first height scanned when no cursor is stored yet.
        max_block_range: most blocks read per watcher step.
        poll_interval_s: seconds between watcher polls.
        request_timeout_s: seconds before one RPC request is abandoned.
        min_deposit_sats: outputs below this are not credited (reported as dust).
        fee_rate_sat_vb: fee rate used when the node has no estimate.
        max_fee_rate_sat_vb: ceiling for any release or consolidation fee rate (validators refuse
            above it).
        fee_target_blocks: confirmation target asked of the node's fee estimator.
        bump_after_blocks: a release still unconfirmed after this many blocks is fee-bumped.
        consolidate_min_utxos: the consolidation job merges coins when the vault holds more.
        consolidate_max_inputs: most coins one consolidation spends.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    network: Network
    rpc_url: str
    rpc_urls: tuple[str, ...] = ()
    rpc_quorum: int = Field(default=1, ge=1)
    rpc_user: str = Field(min_length=1)
    rpc_password: SecretStr
    rpc_cert: str | None = None
    validator_pubkeys: tuple[str, ...] = Field(min_length=1, max_length=15)
    threshold: int = Field(ge=1)
    confirmation_depth: int = Field(default=6, ge=1)
    start_block: int = Field(default=0, ge=0)
    max_block_range: int = Field(default=50, ge=1)
    poll_interval_s: float = Field(default=2.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    min_deposit_sats: int = Field(default=10_000, ge=1)
    fee_rate_sat_vb: int = Field(default=2, ge=1)
    max_fee_rate_sat_vb: int = Field(default=200, ge=1)
    fee_target_blocks: int = Field(default=6, ge=1)
    bump_after_blocks: int = Field(default=3, ge=1)
    consolidate_min_utxos: int = Field(default=50, ge=2)
    consolidate_max_inputs: int = Field(default=100, ge=2)
    # HTLC-driven minting (`htlc.mint`): a funded intent is credited only if its ledger timelock
    # ends the safety margin before its BTC expiry (`htlc.timelock.check_timelocks`), counting
    # `block_time_s` per block (skewed) and `mint_htlc_extra_s` of slack. None: per network
    # (regtest 1 s blocks and 10 s slack, so a devnet story fits in a minute; else 600 / 3600).
    block_time_s: int | None = Field(default=None, ge=1)
    mint_htlc_extra_s: int | None = Field(default=None, ge=0)

    @property
    def htlc_block_time_s(self) -> int:
        return self.block_time_s or (1 if self.network == "regtest" else 600)

    @property
    def htlc_extra_s(self) -> int:
        if self.mint_htlc_extra_s is not None:
            return self.mint_htlc_extra_s
        return 10 if self.network == "regtest" else 3600

    @field_validator("rpc_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("rpc_urls")
    @classmethod
    def _http_urls(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(http_url(v) for v in values)

    @field_validator("validator_pubkeys")
    @classmethod
    def _pubkeys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return compressed_pubkeys(value)

    @model_validator(mode="after")
    def _threshold(self) -> BitcoinChainConfig:
        if self.threshold > len(self.validator_pubkeys):
            raise ValueError(
                f"threshold {self.threshold} exceeds the {len(self.validator_pubkeys)} pubkeys"
            )
        if self.max_fee_rate_sat_vb < self.fee_rate_sat_vb:
            raise ValueError("max_fee_rate_sat_vb is below fee_rate_sat_vb")
        check_quorum(self.rpc_quorum, self.endpoints)
        return self

    @property
    def endpoints(self) -> tuple[str, ...]:
        """``rpc_url`` then ``rpc_urls``, without repeats (`adapters.multi_rpc.distinct_urls`)."""
        return distinct_urls(self.rpc_url, self.rpc_urls)

    @property
    def caip2(self) -> str:
        """CAIP-2 chain id, ``"bip122:<first 32 hex chars of the genesis hash>"``."""
        return f"bip122:{GENESIS[self.network][:32]}"

    @property
    def genesis_hash(self) -> str:
        return GENESIS[self.network]

    @cached_property
    def vault(self) -> Vault:
        """The vault (and deposit-script factory) these pubkeys and threshold define."""
        from adapters.bitcoin.scripts import Vault

        return Vault(
            tuple(bytes.fromhex(k) for k in self.validator_pubkeys), self.threshold, self.network
        )

    @property
    def bridge_address(self) -> str:
        """The vault's P2WSH address: the chain's "bridge" in ledger and attestation terms."""
        return self.vault.address

    @property
    def use_finalized_tag(self) -> bool:
        """Bitcoin has no finalized tag: finality is always the confirmation depth."""
        return False
