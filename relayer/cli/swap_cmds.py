"""`ferry swap ...`: a user's side of an atomic swap with a Ferry relayer (typer commands over
`relayer.cli.swap_user.SwapUser`).

The user's key file is a `ferry keys new` file (passphrase in FERRY_PASSPHRASE); the secret is
created by ``start`` into a new 0600 file and read back by ``redeem``; it is never printed nor
sent to the relayer (only its SHA-256 hashlock is).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from adapters.errors import ConfigError, ValidationError

swap_app = typer.Typer(no_args_is_help=True, help="Atomic swaps with the relayer (user side).")
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.",
                                                envvar="FERRY_CONFIG")]
KeyOpt = Annotated[Path, typer.Option(help="Your key file (`ferry keys new`).")]
RelayerOpt = Annotated[str | None, typer.Option("--relayer", help="Relayer URL (default: the "
                                                "config's relayer host and port).")]
SecretOpt = Annotated[Path, typer.Option(help="File holding your 32-byte secret (hex).")]


def _user(config: Path | None, keystore: Path, relayer: str | None) -> Any:
    from nacl.signing import SigningKey

    from relayer.cli import _load, _load_keys
    from relayer.cli.swap_user import SwapUser
    from validators.keystore import hot_wallet_secrets

    cfg = _load(config)
    seed, secp = hot_wallet_secrets(_load_keys(keystore))
    url = relayer or f"http://{cfg.relayer.host}:{cfg.relayer.port}"
    return SwapUser(cfg, url, SigningKey(seed), secp)


def _echo(doc: dict[str, Any]) -> None:
    typer.echo(json.dumps(doc, indent=2))


def _summary(swap: dict[str, Any]) -> dict[str, Any]:
    return {"id": swap["id"], "status": swap["status"], "hashlock": swap["hashlock"],
            "next_action": swap["next_action"],
            "user_action": swap["user_action"], "initiator": swap["initiator"],
            "participant": swap["participant"]}


@swap_app.command("quote")
def quote(pair: str, amount: Annotated[str, typer.Argument(help="Base units you lock.")],
          config: ConfigOpt = None, relayer: RelayerOpt = None) -> None:
    """Price AMOUNT (base units of the pair's user asset) on PAIR, e.g. BTC/ETH."""
    import httpx

    from relayer.cli import _load

    cfg = _load(config)
    url = relayer or f"http://{cfg.relayer.host}:{cfg.relayer.port}"
    r = httpx.get(f"{url}/v1/quotes", params={"pair": pair, "amount": amount}, timeout=30)
    if r.status_code >= 400:
        raise ValidationError(r.json().get("error", {}).get("message", r.text))
    _echo(r.json())


@swap_app.command("start")
def start(pair: str, amount: Annotated[str, typer.Argument(help="Base units you lock.")],
          keystore: KeyOpt, secret_file: SecretOpt,
          recipient: Annotated[str | None, typer.Option(help="Who the relayer pays, 0x hex "
                                                             "(default: your key).")] = None,
          config: ConfigOpt = None, relayer: RelayerOpt = None) -> None:
    """Create a secret (written to SECRET_FILE, mode 0600, must not exist) and agree a swap;
    prints the swap with the HTLC you must lock."""
    from htlc.hashlock import hashlock_of, new_secret

    if not amount.isdigit():
        raise ValidationError("amount must be a positive integer in base units")
    user = _user(config, keystore, relayer)
    secret = new_secret()
    try:
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{secret_file} exists: one secret per swap") from exc
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex() + "\n")
    to = None if recipient is None else bytes.fromhex(recipient.removeprefix("0x"))
    _echo(_summary(user.start(pair, int(amount), hashlock_of(secret), to)))


@swap_app.command("status")
def status(swap_id: str, config: ConfigOpt = None, relayer: RelayerOpt = None) -> None:
    """Show a swap: both legs, timelocks, next action and what you must do."""
    import httpx

    from relayer.cli import _load

    cfg = _load(config)
    url = relayer or f"http://{cfg.relayer.host}:{cfg.relayer.port}"
    r = httpx.get(f"{url}/v1/swaps/{swap_id}", timeout=30)
    if r.status_code >= 400:
        raise ValidationError(r.json().get("error", {}).get("message", r.text))
    _echo(_summary(r.json()))


@swap_app.command("lock")
def lock(swap_id: str, keystore: KeyOpt, config: ConfigOpt = None,
         relayer: RelayerOpt = None) -> None:
    """Lock your leg exactly as agreed (Bitcoin: from your key's P2WPKH coins)."""
    user = _user(config, keystore, relayer)
    ref = user.lock(user.status(swap_id))
    _echo({"swap": swap_id, "chain": ref.chain, "htlc": ref.id})


@swap_app.command("presign-refund")
def presign_refund(swap_id: str, keystore: KeyOpt, config: ConfigOpt = None,
                   relayer: RelayerOpt = None) -> None:
    """Sign your Bitcoin lock's refund now and hand it to the relayer to broadcast at the
    timelock should you be offline then."""
    user = _user(config, keystore, relayer)
    swap = user.presign_refund(user.status(swap_id))
    _echo({"swap": swap_id, "user_refund_held": swap["user_refund_held"]})


@swap_app.command("redeem")
def redeem(swap_id: str, keystore: KeyOpt, secret_file: SecretOpt, config: ConfigOpt = None,
           relayer: RelayerOpt = None) -> None:
    """Redeem the relayer's leg with your secret (once it is confirmed)."""
    from htlc.hashlock import check_preimage

    user = _user(config, keystore, relayer)
    swap = user.status(swap_id)
    try:
        secret = bytes.fromhex(secret_file.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the secret from {secret_file}") from exc
    check_preimage(secret, bytes.fromhex(swap["hashlock"][2:]))
    _echo({"swap": swap_id, "redeem_tx": user.redeem(swap, secret)})


@swap_app.command("refund")
def refund(swap_id: str, keystore: KeyOpt, config: ConfigOpt = None,
           relayer: RelayerOpt = None) -> None:
    """Refund your own leg (from its timelock on)."""
    user = _user(config, keystore, relayer)
    _echo({"swap": swap_id, "refund_tx": user.refund(user.status(swap_id))})
