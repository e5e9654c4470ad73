"""Configuration of one EVM chain: the ``[[chains]]`` table of Ferry's TOML file.

Owns: `EvmChainConfig` and its validation. Must not touch the network; checking that the RPC
really serves ``chain_id`` is the adapter's job at start (`EvmAdapter.verify_chain`).
"""

from __future__ import annotations

import re

from eth_utils import is_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.config_fields import http_url

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class EvmChainConfig(BaseModel):
    """One EVM chain Ferry watches and pays out on.

    Attributes:
        name: operator-facing label ("ethereum", "bsc"); never used as an identity.
        chain_id: EIP-155 chain id; the RPC must report the same id (else `WrongChain`).
        rpc_url: ``http://`` or ``https://`` JSON-RPC endpoint.
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
    def caip2(self) -> str:
        """CAIP-2 chain id, ``"eip155:<chain_id>"``."""
        return f"eip155:{self.chain_id}"
