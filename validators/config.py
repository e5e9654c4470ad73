"""The ``[validator]`` section of Ferry's TOML config, as a pydantic model.

Owns: `ValidatorSection`, the settings one validator process needs beyond ``network`` and
``[[chains]]``. Must not read files or the environment itself: the process-wide
pydantic-settings model (env prefix ``FERRY_``, nested delimiter ``__``) embeds this section, so
the passphrase arrives from ``FERRY_VALIDATOR__PASSPHRASE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class ValidatorSection(BaseModel):
    """One validator process.

    Attributes:
        name: operator-chosen label, used in logs only.
        signer: where the keys are: ``"file"`` (default: `keystore` decrypted into this
            process) or ``"socket"`` (an external ``ferry signer serve`` process on
            `signer_socket`, `validators.socket_signer`).
        signer_socket: the external signer's Unix socket; required with ``signer = "socket"``
            and refused otherwise.
        keystore: encrypted key file (`validators.keystore` format); required with
            ``signer = "file"``, refused with ``"socket"`` (the signer process holds it).
        passphrase: keystore passphrase, with ``signer = "file"`` only. SECURITY: no default;
            supply it through the environment (``FERRY_VALIDATOR__PASSPHRASE``), never in the
            TOML file.
        relayer_url: base URL of the relayer's attestation inbox (``POST /v1/attestations``).
        relayer_urls: further relayer replicas (same database), tried in order when the
            current one cannot be reached (`validators.delivery.FailoverTransport`).
        ledger_url: base URL of the native ledger API, read over this validator's own connection.
        poll_interval_s: seconds between scan passes (each asks every chain for its head).
        ledger_poll_interval_s: seconds between ledger reads (status and burns) in the scan
            loop; between reads, locks are signed under the epoch read last.
        batch_size: maximum attestations per POST and burns per ledger page.
        state_file: JSON file holding the scan cursors (last final block per chain, last burn seq).
        rotation_resend_blocks: on a ledger epoch change, lock events in this many final blocks
            before each chain's cursor are re-signed under the new epoch.
        rotation_resend_burns: on a bridge ``setNonce`` change, this many burns before the burn
            cursor are re-signed under the new set nonce.
        metrics_port: port of this validator's ``/metrics``, ``/healthz`` and ``/readyz``
            (`validators.observability`); None (default): not served.
        metrics_host: address that server listens on (``0.0.0.0`` in a container).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    signer: Literal["file", "socket"] = "file"
    signer_socket: Path | None = None
    keystore: Path | None = None
    passphrase: SecretStr | None = None
    relayer_url: str
    relayer_urls: list[str] = Field(default_factory=list)
    ledger_url: str
    poll_interval_s: float = Field(default=0.5, gt=0)
    ledger_poll_interval_s: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=500, ge=1, le=10_000)
    state_file: Path
    rotation_resend_blocks: int = Field(default=1000, ge=0)
    rotation_resend_burns: int = Field(default=1000, ge=0)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"

    @model_validator(mode="after")
    def _signer_inputs(self) -> Self:
        if self.signer == "file":
            missing = [n for n in ("keystore", "passphrase") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"{' and '.join(missing)} required with signer = \"file\" "
                                 "(the passphrase from FERRY_VALIDATOR__PASSPHRASE)")
            if self.signer_socket is not None:
                raise ValueError('signer_socket is only read with signer = "socket"')
        else:
            if self.signer_socket is None:
                raise ValueError('signer_socket is required with signer = "socket"')
            extra = [n for n in ("keystore", "passphrase") if getattr(self, n) is not None]
            if extra:
                raise ValueError(f"{' and '.join(extra)} must not be set with signer = "
                                 '"socket" (the signer process holds the keys)')
        return self

    @field_validator("relayer_url", "ledger_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("relayer_urls")
    @classmethod
    def _http_urls(cls, values: list[str]) -> list[str]:
        return [cls._http_url(v) for v in values]
