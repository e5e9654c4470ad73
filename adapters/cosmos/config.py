"""Configuration of one Cosmos SDK chain: the ``[[cosmos]]`` table of Ferry's TOML file.

Owns: `CosmosChainConfig` and `DenomConfig`, and their validation. Must not touch the network;
checking that every RPC endpoint serves ``chain_id`` is the adapter's job at start
(`CosmosAdapter.verify_chain`).
"""

from __future__ import annotations

import hashlib
import re
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.config_fields import compressed_pubkeys, http_url
from adapters.multi_rpc import check_quorum, distinct_urls

_CHAIN_ID = re.compile(r"^[-_a-zA-Z0-9]{1,32}$")
_DENOM = re.compile(r"^[a-zA-Z][a-zA-Z0-9/:._-]{2,127}$")  # sdk.ValidateDenom's pattern


class DenomConfig(BaseModel):
    """A denom the escrow accepts.

    Attributes:
        denom: the full on-chain denom (``stake``, ``uatom``, ``ibc/<HASH>``); compared exactly.
        ibc_path, base_denom: for an ``ibc/`` denom, its trace (``transfer/channel-0``,
            ``uatom``): the adapter checks ``ibc/<HASH>`` == ``ibc/`` + uppercase hex
            sha256(``path/base``) (ICS-20), so a look-alike hash is never accepted.
        min_deposit: smaller deposits are reported, not credited (base units).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    denom: str
    ibc_path: str | None = None
    base_denom: str | None = None
    min_deposit: int = Field(default=1, ge=1)

    @field_validator("denom")
    @classmethod
    def _denom(cls, value: str) -> str:
        if not _DENOM.match(value):
            raise ValueError(f"{value!r} is not a valid Cosmos SDK denom")
        return value

    @model_validator(mode="after")
    def _trace(self) -> DenomConfig:
        if self.denom.startswith("ibc/"):
            if not self.ibc_path or not self.base_denom:
                raise ValueError(f"{self.denom}: an ibc/ denom needs ibc_path and base_denom")
            expected = "ibc/" + hashlib.sha256(
                f"{self.ibc_path}/{self.base_denom}".encode()).hexdigest().upper()
            if self.denom != expected:
                raise ValueError(f"{self.denom} is not the ICS-20 hash of "
                                 f"{self.ibc_path}/{self.base_denom} ({expected})")
        elif self.ibc_path or self.base_denom:
            raise ValueError(f"{self.denom}: ibc_path/base_denom only apply to ibc/ denoms")
        return self


class CosmosChainConfig(BaseModel):
    """One Cosmos SDK chain Ferry watches and pays out on.

    Attributes:
        name: operator-facing label; never an identity.
        chain_id: the chain id the node must report (else `WrongChain`).
        rpc_url: CometBFT RPC (``http://host:26657``): blocks, results, broadcast; the first
            one tried.
        rpc_urls: more CometBFT RPC endpoints (independent nodes) of the same chain, tried in
            this order after `rpc_url` (failover; see `adapters.cosmos.rpc.MultiCometRpc`).
            Duplicates are dropped.
        rpc_quorum: endpoints that must return the same answer for the reads that decide
            minting (latest height, block hashes, the blocks and their results scanned for
            deposits); 1 <= rpc_quorum <= number of distinct endpoints.
        rest_url: the SDK's REST API (``http://host:1317``): accounts, balances. One endpoint,
            no quorum: nothing read over REST decides minting (the escrow's account sequence
            plans releases; its balance feeds the accountant's check). Put several REST
            servers behind one URL (a load balancer) for failover.
        bech32_prefix: account address prefix (``cosmos``).
        validator_pubkeys: the escrow members, 33-byte compressed secp256k1 keys (hex).
        threshold: signatures a release needs (m of n).
        denoms: the denoms the escrow accepts; anything else is reported, not credited.
        confirmation_depth: blocks on top before a deposit counts (CometBFT is final at 1).
        start_block, max_block_range, poll_interval_s, request_timeout_s: watcher pacing.
        fee_denom, fee_amount, gas_limit: the fee of a release or refund, paid by the escrow.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    chain_id: str
    rpc_url: str
    rpc_urls: tuple[str, ...] = ()
    rpc_quorum: int = Field(default=1, ge=1)
    rest_url: str
    bech32_prefix: str = "cosmos"
    validator_pubkeys: tuple[str, ...] = Field(min_length=1, max_length=20)
    threshold: int = Field(ge=1)
    denoms: tuple[DenomConfig, ...] = Field(min_length=1)
    confirmation_depth: int = Field(default=1, ge=1)
    start_block: int = Field(default=1, ge=1)
    max_block_range: int = Field(default=50, ge=1)
    poll_interval_s: float = Field(default=1.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    fee_denom: str = "stake"
    fee_amount: int = Field(default=5000, ge=0)
    gas_limit: int = Field(default=200_000, ge=50_000)

    @field_validator("chain_id")
    @classmethod
    def _chain_id(cls, value: str) -> str:
        if not _CHAIN_ID.match(value):
            raise ValueError("chain_id must be 1-32 of [-_a-zA-Z0-9] (a CAIP-2 reference)")
        return value

    @field_validator("rpc_url", "rest_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value).rstrip("/")

    @field_validator("rpc_urls")
    @classmethod
    def _http_urls(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(http_url(v).rstrip("/") for v in values)

    @field_validator("validator_pubkeys")
    @classmethod
    def _pubkeys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return compressed_pubkeys(value)

    @model_validator(mode="after")
    def _cross(self) -> CosmosChainConfig:
        if self.threshold > len(self.validator_pubkeys):
            raise ValueError(f"threshold {self.threshold} exceeds the "
                             f"{len(self.validator_pubkeys)} pubkeys")
        if len({d.denom for d in self.denoms}) != len(self.denoms):
            raise ValueError("a denom is listed twice")
        check_quorum(self.rpc_quorum, self.endpoints)
        return self

    @property
    def endpoints(self) -> tuple[str, ...]:
        """``rpc_url`` then ``rpc_urls``, without repeats (`adapters.multi_rpc.distinct_urls`)."""
        return distinct_urls(self.rpc_url, self.rpc_urls)

    @property
    def caip2(self) -> str:
        """CAIP-2 chain id, ``"cosmos:<chain_id>"``."""
        return f"cosmos:{self.chain_id}"

    @cached_property
    def escrow_address(self) -> str:
        """The escrow multisig's bech32 address (`adapters.cosmos.multisig.escrow_address`)."""
        from adapters.cosmos.multisig import escrow_address

        return escrow_address([bytes.fromhex(k) for k in self.validator_pubkeys],
                              self.threshold, prefix=self.bech32_prefix)

    @property
    def bridge_address(self) -> str:
        """The escrow address: the chain's "bridge" in ledger and attestation terms."""
        return self.escrow_address

    @property
    def use_finalized_tag(self) -> bool:
        return False
