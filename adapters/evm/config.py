"""Configuration of one EVM chain: the ``[[chains]]`` table of Ferry's TOML file.

Owns: `EvmChainConfig` and its validation. Must not touch the network; checking that every RPC
endpoint really serves ``chain_id`` is the adapter's job at start (`EvmAdapter.verify_chain`).
"""

from __future__ import annotations

import re

from eth_utils import is_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.config_fields import http_url

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class EvmChainConfig(BaseModel):
    """One EVM chain Ferry watches and pays out on.

    Attributes:
        name: operator-facing label ("ethereum", "bsc"); never used as an identity.
        chain_id: EIP-155 chain id; every RPC endpoint must report it (else `WrongChain`).
        rpc_url: ``http://`` or ``https://`` JSON-RPC endpoint; the first one tried.
        rpc_urls: more endpoints of the same chain, tried in this order after `rpc_url`
            (failover; see `adapters.evm.multi`). Duplicates of an earlier URL are dropped.
        rpc_quorum: endpoints that must return the same answer for the reads that decide
            minting (logs, blocks, finality); 1 <= rpc_quorum <= number of endpoints.
        bridge_address: the `Bridge` contract, 20-byte hex; stored lowercase. A mixed-case value
            must carry a valid EIP-55 checksum (a typo is refused, not lowercased away).
        confirmation_depth: blocks on top of a block before it counts as final (0 = head).
        use_finalized_tag: use the node's ``finalized`` block tag instead of the depth.
        start_block: first block scanned when no cursor is stored yet.
        max_block_range: most blocks per ``eth_getLogs`` request (>= 1).
        poll_interval_s: seconds between watcher polls.
        request_timeout_s: seconds before one HTTP request is abandoned.
        gas_limit_release: gas limit of a ``release`` transaction.
        max_fee_cap_gwei: ceiling of ``maxFeePerGas`` (and the priority fee), in gwei.
        block_time_s: expected seconds per block (ETAs shown by the API only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    chain_id: int = Field(gt=0)
    rpc_url: str
    rpc_urls: tuple[str, ...] = ()
    rpc_quorum: int = Field(default=1, ge=1)
    bridge_address: str
    confirmation_depth: int = Field(default=2, ge=0)
    use_finalized_tag: bool = False
    start_block: int = Field(default=0, ge=0)
    max_block_range: int = Field(default=2000, ge=1)
    poll_interval_s: float = Field(default=1.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    gas_limit_release: int = Field(default=300_000, ge=21_000)
    max_fee_cap_gwei: int = Field(default=500, ge=1)
    block_time_s: float = Field(default=12.0, gt=0)

    @field_validator("rpc_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("rpc_urls")
    @classmethod
    def _http_urls(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(http_url(v) for v in values)

    @model_validator(mode="after")
    def _quorum_reachable(self) -> EvmChainConfig:
        if self.rpc_quorum > len(self.endpoints):
            raise ValueError(
                f"rpc_quorum {self.rpc_quorum} exceeds the {len(self.endpoints)} distinct "
                "RPC endpoint(s) (rpc_url + rpc_urls)"
            )
        return self

    @field_validator("bridge_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _HEX_ADDRESS.match(value):
            raise ValueError("bridge_address must be 0x followed by 40 hex digits")
        body = value[2:]
        if body != body.lower() and body != body.upper() and not is_checksum_address(value):
            raise ValueError("bridge_address has mixed case but an invalid EIP-55 checksum")
        return value.lower()

    @property
    def endpoints(self) -> tuple[str, ...]:
        """``rpc_url`` then ``rpc_urls``, without repeats (a trailing ``/`` is ignored when
        comparing). Two URLs of the same node still count twice: the operator must point them
        at independent nodes for `rpc_quorum` to mean anything."""
        seen: set[str] = set()
        out: list[str] = []
        for url in (self.rpc_url, *self.rpc_urls):
            key = url.rstrip("/")
            if key not in seen:
                seen.add(key)
                out.append(url)
        return tuple(out)

    @property
    def caip2(self) -> str:
        """CAIP-2 chain id, ``"eip155:<chain_id>"``."""
        return f"eip155:{self.chain_id}"
