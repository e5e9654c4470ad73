"""The one configuration model of every Ferry process, read from one TOML file with
environment overrides (prefix ``FERRY_``, nested keys joined by ``__``, e.g.
``FERRY_RELAYER__PORT=8701`` or ``FERRY_VALIDATOR__PASSPHRASE=...``).

Owns: `FerryConfig`, `RelayerSection`, `load_config`. Each section's model lives with the
package that uses it (ledger.config, validators.config, adapters.evm.config, relayer.quotes);
this module assembles them and validates cross-references. Unknown keys are errors
(``extra="forbid"``); secrets have no defaults. `deploy/ferry.example.toml` documents every key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from adapters.bitcoin.config import BitcoinChainConfig
from adapters.cosmos.config import CosmosChainConfig
from adapters.errors import ConfigError
from adapters.evm.config import EvmChainConfig
from adapters.solana.config import SolanaChainConfig
from ledger.config import AssetConfig, LedgerSection
from relayer.api_settings import ApiSection
from relayer.quotes import SwapsSection
from validators.attestation import LEDGER_CHAIN, ValidatorInfo, ValidatorSet, parse_hex
from validators.config import ValidatorSection
from validators.risk import RiskSection


class RelayerSection(BaseModel):
    """The relayer process.

    Attributes:
        database_url: SQLAlchemy URL; ``sqlite:///path`` by default, ``postgresql+psycopg://``.
        host, port: the attestation inbox and transfer API.
        metrics_port: Prometheus ``/metrics`` on its own port.
        poll_interval_s: how often the mint job runs (chain jobs use each chain's own interval).
        ledger_poll_interval_s: how often new ledger burns are read.
        batch_size: transfers per job run and per ledger call.
        submitter_keystore: encrypted keystore (`ferry keys new`) whose EVM key pays release gas.
        submitter_passphrase: its passphrase (set via ``FERRY_RELAYER__SUBMITTER_PASSPHRASE``).
        solana_keystore: Ferry keystore (`ferry keys create`) whose Ed25519 key is the Solana
            fee payer and durable-nonce authority of releases (``[[solana]] fee_payer``).
        solana_passphrase: its passphrase (set via ``FERRY_RELAYER__SOLANA_PASSPHRASE``).
        replica_id: this replica's name when several relayers share one (PostgreSQL) database;
            default ``<hostname>-<pid>``. Must differ between replicas.
        lease_ttl_s: a singleton job's lease (`relayer.leases`) lapses this long after its
            holder stopped renewing it: how fast a dead replica's jobs move to another.
        claim_ttl_s: a claimed page of mints (`Engine.mint`) is free again this long after the
            claim; must exceed the longest ledger mint call.
    """

    model_config = ConfigDict(extra="forbid")

    database_url: str = "sqlite:///.ferry/relayer.sqlite"
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=1, le=65535)
    metrics_port: int = Field(default=9700, ge=1, le=65535)
    poll_interval_s: float = Field(default=0.5, gt=0)
    ledger_poll_interval_s: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=500, ge=1, le=5000)
    submitter_keystore: Path | None = None
    submitter_passphrase: SecretStr | None = None
    solana_keystore: Path | None = None
    solana_passphrase: SecretStr | None = None
    replica_id: str | None = Field(default=None, min_length=1, max_length=200)
    lease_ttl_s: float = Field(default=15.0, gt=0, le=3600)
    claim_ttl_s: float = Field(default=30.0, gt=0, le=3600)


class MemberConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    ed25519: str
    evm_address: str


class ValidatorSetConfig(BaseModel):
    """The genesis validator set (epoch 1 on the ledger, set nonce 1 on each bridge)."""

    model_config = ConfigDict(extra="forbid")

    epoch: int = Field(default=1, ge=1)
    threshold: int
    members: list[MemberConfig]

    def to_set(self) -> ValidatorSet:
        return ValidatorSet(
            epoch=self.epoch,
            threshold=self.threshold,
            members=tuple(
                ValidatorInfo(parse_hex(m.ed25519, 32), m.evm_address.lower())
                for m in self.members
            ),
        )


class FerryConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FERRY_", env_nested_delimiter="__", extra="forbid"
    )

    network: str = "ferry-devnet"
    ledger: LedgerSection = Field(default_factory=LedgerSection)
    relayer: RelayerSection = Field(default_factory=RelayerSection)
    validator: ValidatorSection | None = None
    chains: list[EvmChainConfig] = Field(default_factory=list)
    bitcoin: list[BitcoinChainConfig] = Field(default_factory=list)
    cosmos: list[CosmosChainConfig] = Field(default_factory=list)
    solana: list[SolanaChainConfig] = Field(default_factory=list)
    assets: list[AssetConfig] = Field(default_factory=list)
    validator_set: ValidatorSetConfig | None = None
    swaps: SwapsSection = Field(default_factory=SwapsSection)
    risk: RiskSection = Field(default_factory=RiskSection)
    api: ApiSection = Field(default_factory=ApiSection)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)  # environment overrides the TOML file

    @model_validator(mode="after")
    def _cross_check(self) -> FerryConfig:
        names = [c.name for c in self.chains]
        if len(set(names)) != len(names) or len({c.chain_id for c in self.chains}) != len(names):
            raise ValueError("chain names and chain ids must be unique")
        if len({b.caip2 for b in self.bitcoin}) != len(self.bitcoin):
            raise ValueError("each Bitcoin network may be configured once")
        if len({c.caip2 for c in self.cosmos}) != len(self.cosmos):
            raise ValueError("each Cosmos chain may be configured once")
        if len({c.caip2 for c in self.solana}) != len(self.solana):
            raise ValueError("each Solana cluster may be configured once")
        known = ({c.caip2 for c in self.chains} | {b.caip2 for b in self.bitcoin}
                 | {c.caip2 for c in self.cosmos} | {c.caip2 for c in self.solana})
        for a in self.assets:
            if a.origin_chain not in known:
                raise ValueError(f"asset {a.symbol}: origin_chain {a.origin_chain} is not in chains")
        for p in self.swaps.pairs:
            for key, chain in (("user_chain", p.user_chain), ("relayer_chain", p.relayer_chain)):
                if chain not in known and chain != LEDGER_CHAIN:
                    raise ValueError(f"swap pair {p.name}: {key} {chain} is not configured")
        if self.validator_set is not None:
            try:
                self.validator_set.to_set()
            except Exception as exc:  # ConfigError or InvalidAddress: report as config error
                raise ValueError(f"validator_set: {exc}") from exc
        return self

    def chain(self, caip2: str) -> EvmChainConfig:
        for c in self.chains:
            if c.caip2 == caip2:
                return c
        raise ConfigError(f"no chain {caip2} in config")

    def bitcoin_chain(self, caip2: str) -> BitcoinChainConfig:
        for b in self.bitcoin:
            if b.caip2 == caip2:
                return b
        raise ConfigError(f"no Bitcoin network {caip2} in config")

    def bridges(self) -> dict[str, str]:
        """Origin chain -> its bridge: the EVM bridge contract, the Bitcoin vault address or the
        Cosmos escrow address or the Solana escrow multisig."""
        out = {c.caip2: c.bridge_address for c in self.chains}
        out.update({b.caip2: b.bridge_address for b in self.bitcoin})
        out.update({c.caip2: c.bridge_address for c in self.cosmos})
        out.update({c.caip2: c.bridge_address for c in self.solana})
        return out

    def genesis_set(self) -> ValidatorSet:
        if self.validator_set is None:
            raise ConfigError("validator_set is missing from the config")
        return self.validator_set.to_set()


def load_config(path: Path | None) -> FerryConfig:
    """Read `path` (TOML) and the environment into a validated `FerryConfig`.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown key or invalid value; the message is one
            line naming the key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config {path} is not valid TOML: {exc}") from exc
    try:
        return FerryConfig(**data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"{where}: {first['msg']}") from exc
