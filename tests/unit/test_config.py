"""Configuration: the example in deploy/ is valid and complete; bad config is one clear line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from adapters.errors import ConfigError
from relayer.config import FerryConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "ferry.example.toml"


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        out.add(name)
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            inner = getattr(arg, "__args__", (arg,))
            for t in inner:
                if isinstance(t, type) and issubclass(t, BaseModel):
                    out |= _keys(t)
    return out


def test_example_config_loads(monkeypatch):
    monkeypatch.setenv("FERRY_VALIDATOR__PASSPHRASE", "from-the-environment")
    cfg = load_config(EXAMPLE)
    assert cfg.validator is not None and cfg.validator.passphrase.get_secret_value()
    assert [c.caip2 for c in cfg.chains] == ["eip155:1", "eip155:56"]
    assert cfg.genesis_set().threshold == 2


def test_example_config_documents_every_key():
    text = EXAMPLE.read_text()
    documented = set(re.findall(r"^#?\s*([a-z0-9_]+)\s*=", text, re.MULTILINE))
    documented |= set(re.findall(r"^\[+([a-z_.]+)\]+", text, re.MULTILINE))
    documented |= {part for d in list(documented) for part in d.split(".")}
    missing = _keys(FerryConfig) - documented
    assert not missing, f"deploy/ferry.example.toml does not document: {sorted(missing)}"


@pytest.mark.parametrize(
    "toml,message",
    [
        ("[relayer]\nprot = 1\n", "relayer.prot: Extra inputs are not permitted"),
        ("[relayer]\nport = 0\n", "relayer.port"),
        ("network = \n", "not valid TOML"),
        ('[[assets]]\nsymbol="w"\norigin_chain="eip155:9"\norigin_token="0x' + "00" * 20
         + '"\ndecimals=18\n', "origin_chain eip155:9 is not in chains"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path, toml, message):
    path = tmp_path / "ferry.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path)


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    path = tmp_path / "ferry.toml"
    path.write_text("[relayer]\nport = 8701\n")
    monkeypatch.setenv("FERRY_RELAYER__PORT", "8702")
    assert load_config(path).relayer.port == 8702


def test_cli_reports_bad_config_in_one_line_with_exit_code_1(tmp_path):
    path = tmp_path / "ferry.toml"
    path.write_text("[relayer]\nprot = 1\n")
    run = subprocess.run([sys.executable, "-m", "relayer.cli", "relayer", "run", "--config",
                          str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "ferry: error: relayer.prot: Extra inputs are not permitted"]
    assert "Traceback" not in run.stderr + run.stdout


def test_cli_reports_a_missing_config_file_in_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "relayer.cli", "ledger", "balance", "0x00",
                          "--config", str(tmp_path / "nope.toml")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1
    assert len(run.stderr.strip().splitlines()) == 1 and "cannot read config" in run.stderr
