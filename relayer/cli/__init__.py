"""The `ferry` command line (typer). The composition root: the one place that wires concrete
chain adapters, the ledger and the validator daemon into processes.

Every command turns a `BridgeError` (bad config, bad input, an unreachable node) into one line
on stderr and exit code 1 — never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from adapters.errors import BridgeError, ConfigError
from relayer.cli.api_keys import api_keys_app
from relayer.cli.keys_cmds import keys_app, signer_app
from relayer.cli.swap_cmds import swap_app

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Ferry: a cross-chain bridge and atomic-swap relayer.")
devnet_app = typer.Typer(no_args_is_help=True, help="Local devnets (anvil chains + Ferry services).")
relayer_app = typer.Typer(no_args_is_help=True, help="The relayer process.")
validator_app = typer.Typer(no_args_is_help=True, help="A validator process.")
ledger_app = typer.Typer(no_args_is_help=True, help="The native ledger.")
btc_app = typer.Typer(no_args_is_help=True, help="Bitcoin: deposit addresses.")
api_app = typer.Typer(no_args_is_help=True, help="The user and operator HTTP API.")

for sub, name in ((swap_app, "swap"),
                  (devnet_app, "devnet"), (relayer_app, "relayer"), (validator_app, "validator"),
                  (keys_app, "keys"), (ledger_app, "ledger"), (btc_app, "btc"),
                  (api_app, "api")):
    app.add_typer(sub, name=name)
api_app.add_typer(api_keys_app, name="keys")
app.add_typer(signer_app, name="signer")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.",
                                                envvar="FERRY_CONFIG")]


def _setup_logging() -> None:
    """Logging of the long-running commands (run/serve): ``FERRY_LOG_FORMAT=json`` (default,
    one JSON object per line) or ``text``, at ``FERRY_LOG_LEVEL`` (`relayer.logs`)."""
    from relayer.logs import setup_logging

    setup_logging(default_format="json")


def _passphrase(env: str, confirm: bool = False) -> str:
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise ConfigError(f"set {env} (no terminal to prompt for the passphrase)")
    return str(typer.prompt("passphrase", hide_input=True, confirmation_prompt=confirm))


@app.command()
def demo(as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
         workdir: Annotated[Path | None, typer.Option(help="Keep state here.")] = None) -> None:
    """Bridge ETH, an ERC-20 and BNB to the ledger and back on local devnets."""
    from relayer.cli.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    run_demo(as_json=as_json, workdir=workdir)


@devnet_app.command("up")
def devnet_up(root: Annotated[Path, typer.Option(help="Devnet directory.")] = Path(".ferry/devnet"),
              ) -> None:
    """Start anvil chains, deploy, start the ledger, relayer and validators; leave them running."""
    from relayer.cli.devnet import Devnet

    if (root / "devnet.json").exists():
        raise ConfigError(f"{root} already holds a devnet; run `ferry devnet down` first")
    net = Devnet(root)
    try:
        net.start_chains()
        info = net.deploy()
        net.start_services()
    except BaseException:
        net.stop()
        raise
    typer.echo(json.dumps({"config": info.config, "rpc": info.rpc, "bridges": info.bridges,
                           "ledger": info.ledger_url, "relayer": info.relayer_url,
                           "api": info.api_url, "metrics": info.metrics_url,
                           "operator_key_file": str(root / "operator-key")}, indent=2))


@devnet_app.command("down")
def devnet_down(root: Annotated[Path, typer.Option(help="Devnet directory.")] = Path(".ferry/devnet"),
                ) -> None:
    """Stop every process `ferry devnet up` started and remove its state."""
    import shutil
    import signal

    state = root / "devnet.json"
    if not state.exists():
        raise ConfigError(f"no devnet at {root}")
    import time

    pids = json.loads(state.read_text()).get("pids", {})
    for name, pid in pids.items():
        try:
            os.kill(pid, signal.SIGTERM)
            typer.echo(f"stopping {name} (pid {pid})")
        except ProcessLookupError:
            pass  # already gone
    deadline = time.monotonic() + 15
    for pid in pids.values():
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(root)
    typer.echo(f"removed {root}")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its dead parent) counts as stopped
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@relayer_app.command("run")
def relayer_run(config: ConfigOpt = None) -> None:
    """Run the relayer: jobs, the API (attestation inbox included) and metrics."""
    from relayer.cli.wiring import run_relayer_process

    _setup_logging()
    run_relayer_process(_load(config))


@api_app.command("serve")
def api_serve(config: ConfigOpt = None,
              workers: Annotated[int, typer.Option(min=1, max=64,
                                                   help="uvicorn worker processes.")] = 1,
              ) -> None:
    """Serve the user and operator API (transfers, chains, validators, ledger, operator) on
    api.host:api.port, without the relayer's jobs. OpenAPI at /docs."""
    from relayer.cli.wiring import serve_api

    _setup_logging()
    serve_api(_load(config), config, workers)


@validator_app.command("run")
def validator_run(config: ConfigOpt = None) -> None:
    """Run one validator (its identity comes from the [validator] section or FERRY_VALIDATOR__*)."""
    from relayer.cli.wiring import run_validator_process

    _setup_logging()
    run_validator_process(_load(config))


@ledger_app.command("serve")
def ledger_serve(config: ConfigOpt = None) -> None:
    """Serve the native ledger's HTTP API."""
    from relayer.cli.wiring import serve_ledger

    _setup_logging()
    serve_ledger(_load(config))


@ledger_app.command("balance")
def ledger_balance(account: str, config: ConfigOpt = None) -> None:
    """Print ACCOUNT's balances (base units) and next nonce."""
    from ledger.client import LedgerClient
    from ledger.fields import parse_account

    cfg = _load(config)
    info = LedgerClient(str(cfg.ledger.url)).account(parse_account(account))
    symbols = {a.asset: a.symbol for a in cfg.assets}
    typer.echo(json.dumps({"account": account, "nonce": info.nonce, "balances": {
        symbols.get(k, k): str(v) for k, v in info.balances.items()}}, indent=2))


@ledger_app.command("burn")
def ledger_burn(
    keystore: Annotated[Path, typer.Option(help="Key file of the burning account.")],
    asset: Annotated[str, typer.Option(help="Asset symbol (e.g. wETH) or asset id.")],
    amount: Annotated[str, typer.Option(help="Base units (integer).")],
    to: Annotated[str, typer.Option(help="Payout address on the origin chain.")],
    config: ConfigOpt = None,
) -> None:
    """Burn wrapped tokens to release the original on its origin chain."""
    from relayer.cli.wiring import burn

    cfg = _load(config)
    keys = _load_keys(keystore)
    typer.echo(json.dumps(burn(cfg, keys, asset, amount, to), indent=2))


@btc_app.command("deposit-address")
def btc_deposit_address(
    account: Annotated[str, typer.Argument(help="Native-ledger account, 0x + 64 hex.")],
    chain: Annotated[str | None, typer.Option(help="CAIP-2 id (default: the only one).")] = None,
    offline: Annotated[bool, typer.Option(help="Derive only; do not register with the ledger "
                                                "(deposits to an unregistered address are not "
                                                "seen).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Print ACCOUNT's Bitcoin deposit address and register it with the ledger's registry."""
    from relayer.cli.wiring import deposit_address

    typer.echo(json.dumps(deposit_address(_load(config), account, chain, offline), indent=2))


def _load_keys(path: Path):  # type: ignore[no-untyped-def]
    from validators.keystore import load_keystore

    return load_keystore(path, _passphrase("FERRY_PASSPHRASE"))


def _load(config: Path | None):  # type: ignore[no-untyped-def]
    from relayer.config import load_config

    return load_config(config)


def main() -> None:
    """Entry point: run the app; a BridgeError is one line on stderr and exit code 1."""
    try:
        app()
    except BridgeError as exc:
        typer.echo(f"ferry: error: {exc}", err=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
