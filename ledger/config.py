"""Configuration models of the native ledger: its `[ledger]` section, its `[[assets]]` entries
and the genesis it is opened with. The lead's top-level pydantic-settings model embeds these.

Owns: `LedgerSection`, `AssetConfig`, `LedgerGenesis`. Must not read files or the environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.base import asset_key
from adapters.errors import ValidationError
from ledger.fields import parse_chain, parse_token
from validators.attestation import ValidatorSet


class LedgerSection(BaseModel):
    """``[ledger]``: where the ledger stores its state and listens.

    Attributes:
        database_url: SQLAlchemy URL. ``sqlite:///path`` (default ``sqlite:///ledger.sqlite``,
            relative to the working directory) or ``postgresql://user:pass@host/db``
            (driven by psycopg 3).
        host, port: where ``ferry ledger serve`` listens (HTTP).
        url: base URL clients use; defaults to ``http://{host}:{port}``.
        operator_token_sha256: hex SHA-256 of the operator token that may release delayed mints
            and pause routes on the ledger (``/v1/ledger/risk/*``); None: those calls are refused.
    """

    model_config = ConfigDict(extra="forbid")

    database_url: str = "sqlite:///ledger.sqlite"
    host: str = "127.0.0.1"
    port: int = Field(default=8600, ge=1, le=65535)
    url: str | None = None
    operator_token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _default_url(self) -> LedgerSection:
        if self.url is None:
            self.url = f"http://{self.host}:{self.port}"
        return self


class AssetConfig(BaseModel):
    """``[[assets]]``: a wrapped asset the ledger mints for locks of (origin_chain, origin_token).

    Attributes:
        symbol: display only (e.g. ``wETH``); never an identifier.
        origin_chain: CAIP-2 id of the chain where the original is locked.
        origin_token: token address there (EVM: 20-byte ``0x`` hex, lowercased here;
            ``adapters.base.NATIVE_TOKEN`` for the native coin).
        decimals: decimals of the origin token (display only; amounts are base units).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
    origin_chain: str
    origin_token: str
    decimals: int = Field(ge=0, le=77)

    @field_validator("origin_chain")
    @classmethod
    def _check_chain(cls, value: str) -> str:
        try:
            return parse_chain(value, "origin_chain")
        except ValidationError as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="before")
    @classmethod
    def _lower_token(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("origin_token"), str):
            return {**data, "origin_token": data["origin_token"].lower()}
        return data

    @model_validator(mode="after")
    def _check_token(self) -> AssetConfig:
        try:
            parse_token(self.origin_chain, self.origin_token, "origin_token")
        except ValidationError as exc:
            raise ValueError(str(exc)) from exc
        return self

    @property
    def asset(self) -> str:
        """The asset id, ``asset_key(origin_chain, origin_token)``."""
        return asset_key(self.origin_chain, self.origin_token)


@dataclass(frozen=True, slots=True)
class LedgerGenesis:
    """What a fresh ledger starts from; checked against the stored state on every later open.

    Attributes:
        validator_set: the genesis validator set (its epoch becomes the first epoch).
        bridges: origin chain (CAIP-2) -> bridge contract address (EVM: lowercase ``0x`` hex).
            A mint is accepted only if its event's contract is the bridge of its chain.
        assets: assets to register (idempotent on reopen).
    """

    validator_set: ValidatorSet
    bridges: Mapping[str, str] = field(default_factory=dict)
    assets: Sequence[AssetConfig] = ()
