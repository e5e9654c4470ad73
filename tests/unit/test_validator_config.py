"""The [validator] config section: strict keys, secret passphrase from the environment."""

from __future__ import annotations

import pydantic
import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from validators.config import ValidatorSection

BASE = {
    "name": "v1",
    "keystore": "/keys/v1.json",
    "relayer_url": "http://127.0.0.1:8100/",
    "ledger_url": "http://127.0.0.1:8000",
    "state_file": "/data/v1-state.json",
}


class _Settings(BaseSettings):
    """Stand-in for the process settings model: env prefix FERRY_, nested delimiter __."""

    model_config = SettingsConfigDict(
        env_prefix="FERRY_", env_nested_delimiter="__", extra="forbid"
    )
    validator: ValidatorSection


def test_passphrase_comes_from_the_environment_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("FERRY_VALIDATOR__PASSPHRASE", "s3cret-pass")
    settings = _Settings(validator={**BASE})  # type: ignore[arg-type]
    section = settings.validator
    assert section.passphrase.get_secret_value() == "s3cret-pass"
    assert "s3cret-pass" not in repr(section) and "s3cret-pass" not in str(section)
    assert section.relayer_url == "http://127.0.0.1:8100"
    assert (section.poll_interval_s, section.batch_size) == (0.5, 500)


def test_passphrase_has_no_default():
    with pytest.raises(pydantic.ValidationError, match="passphrase"):
        ValidatorSection(**BASE)


@pytest.mark.parametrize(
    "changes",
    [
        {"unknown_key": 1},
        {"relayer_url": "ftp://x"},
        {"poll_interval_s": 0},
        {"batch_size": 0},
        {"name": ""},
    ],
)
def test_bad_validator_section_is_refused(changes):
    with pytest.raises(pydantic.ValidationError):
        ValidatorSection(**{**BASE, "passphrase": "p", **changes})
