"""The ``[api]`` config section: the user and operator HTTP API (`ferry api serve`), its
webhooks and rate limits.

Owns: `ApiSection`, `WebhookConfig`. Must not hold logic; `api/` reads these settings.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from adapters.config_fields import http_url


class WebhookConfig(BaseModel):
    """``[[api.webhooks]]``: one subscriber of transfer and swap state changes.

    Attributes:
        name: stable id of the subscription (its delivery cursor is kept under this name).
        url: where each event is POSTed.
        secret: HMAC-SHA256 key of the ``Ferry-Signature`` header (no default).
        events: which histories to deliver: ``transfer`` and/or ``swap``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    url: str
    secret: SecretStr
    events: list[str] = Field(default_factory=lambda: ["transfer", "swap"])

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        bad = set(value) - {"transfer", "swap"}
        if bad or not value:
            raise ValueError("events must be a non-empty subset of ['transfer', 'swap']")
        return value


class ApiSection(BaseModel):
    """``[api]``: the HTTP API process (`ferry api serve`). It reads the relayer's database
    (``[relayer] database_url``) and the ledger over HTTP (``[ledger] url``).

    Attributes:
        host, port: where it listens.
        rate_limit_per_ip: requests per client IP (`limits` syntax, e.g. ``"600/minute"``).
        rate_limit_per_key: requests per operator API key.
        idempotency_ttl_s: how long a stored ``Idempotency-Key`` answer is replayed.
        ledger_operator_token: the ledger's operator token (``[ledger] operator_token_sha256``
            is its SHA-256), used to pass operator releases and pauses on to the ledger.
        webhooks: subscribers of state changes.
        webhook_max_backoff_s: the longest wait between two delivery attempts.
    """

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8800, ge=1, le=65535)
    rate_limit_per_ip: str = "1200/minute"
    rate_limit_per_key: str = "2400/minute"
    idempotency_ttl_s: int = Field(default=86_400, ge=60)
    ledger_operator_token: SecretStr | None = None
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    webhook_max_backoff_s: float = Field(default=300.0, gt=0)
