"""`ferry api keys ...`: create, list and revoke the operator API keys (`api.auth`) in the
relayer database (``[relayer] database_url``; migrated on open).

Owns: these commands only. A token is printed once, by `create`, and never again: only its
SHA-256 is stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

api_keys_app = typer.Typer(no_args_is_help=True,
                           help="Operator API keys (stored hashed in the relayer database).")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.",
                                                envvar="FERRY_CONFIG")]


def _keys(config: Path | None) -> Any:
    from api.auth import ApiKeyStore
    from relayer.config import load_config
    from relayer.store import Store

    cfg = load_config(config)
    return ApiKeyStore(Store.open(cfg.relayer.database_url))


@api_keys_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what holds it ([A-Za-z0-9._-]).")],
    scope: Annotated[list[str], typer.Option(
        "--scope", help="routes:write, chains:write, transfers:write or risk:read; repeat it.")],
    config: ConfigOpt = None,
) -> None:
    """Create a key; print it (JSON, with the token, shown only this once)."""
    key, token = _keys(config).create(name, scope)
    typer.echo(json.dumps({**key.as_json(), "token": token}, indent=2))


@api_keys_app.command("list")
def list_keys(config: ConfigOpt = None) -> None:
    """Every key (id, name, scopes, created_at, revoked_at), never a token."""
    typer.echo(json.dumps({"keys": [k.as_json() for k in _keys(config).all()]}, indent=2))


@api_keys_app.command("revoke")
def revoke(key_id: Annotated[int, typer.Argument(help="The key's id (see `list`).")],
           config: ConfigOpt = None) -> None:
    """Revoke a key for good (it stays listed, with its revocation time)."""
    keys = _keys(config)
    changed = keys.revoke(key_id)
    typer.echo(json.dumps({"revoked": changed, "key": keys.get(key_id).as_json()}, indent=2))
