"""The ``[validator]`` section of Ferry's TOML config, as a pydantic model.

Owns: `ValidatorSection`, the settings one validator process needs beyond ``network`` and
``[[chains]]``. Must not read files or the environment itself: the process-wide
pydantic-settings model (env prefix ``FERRY_``, nested delimiter ``__``) embeds this section, so
the passphrase arrives from ``FERRY_VALIDATOR__PASSPHRASE``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class ValidatorSection(BaseModel):
    """One validator process.

    Attributes:
        name: operator-chosen label, used in logs only.
        keystore: encrypted key file (`validators.keystore` format).
        passphrase: keystore passphrase. SECURITY: no default; supply it through the
            environment (``FERRY_VALIDATOR__PASSPHRASE``), never in the TOML file.
        relayer_url: base URL of the relayer's attestation inbox (``POST /v1/attestations``).
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
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    keystore: Path
    passphrase: SecretStr
    relayer_url: str
    ledger_url: str
    poll_interval_s: float = Field(default=0.5, gt=0)
    ledger_poll_interval_s: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=500, ge=1, le=10_000)
    state_file: Path
    rotation_resend_blocks: int = Field(default=1000, ge=0)
    rotation_resend_burns: int = Field(default=1000, ge=0)

    @field_validator("relayer_url", "ledger_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")
