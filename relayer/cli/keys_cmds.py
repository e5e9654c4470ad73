"""``ferry keys ...`` (create, import, export, rotate, show validator key files) and
``ferry signer serve`` (the external signer a validator can sign through).

Owns: the typer commands only; the work is `validators.key_files` and
`validators.signer_server`. Passphrases come from the environment or a terminal prompt, never
from the command line:

- ``FERRY_PASSPHRASE``: the key file's (``--keystore`` or ``--out`` of create/import).
- ``FERRY_EXPORT_PASSPHRASE``: the export file's (``export --out``, ``import --from-export``).
- ``FERRY_NEW_PASSPHRASE``: optional, the rotated file's new passphrase (default: unchanged).

Must not print or log a secret: every command prints public keys only (JSON on stdout), and no
command writes a private key unencrypted.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from adapters.errors import ConfigError

keys_app = typer.Typer(no_args_is_help=True, help="Validator key files (encrypted, mode 0600).")
signer_app = typer.Typer(no_args_is_help=True,
                         help="The external signer: validator keys outside the validator.")

KeystoreOpt = Annotated[Path, typer.Option(help="Key file (passphrase: FERRY_PASSPHRASE).")]
OutOpt = Annotated[Path, typer.Option(help="Key file to create (mode 0600; never overwritten).")]


def _secret(env: str, label: str, *, confirm: bool = False) -> str:
    """`env`, else a hidden prompt (twice with `confirm`); a ConfigError without a terminal."""
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise ConfigError(f"set {env} (no terminal to prompt for the {label})")
    return str(typer.prompt(label, hide_input=True, confirmation_prompt=confirm))


def _echo(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, indent=2))


@keys_app.command("create")
def keys_create(out: OutOpt) -> None:
    """Create a key file: a new Ed25519 + secp256k1 key pair under FERRY_PASSPHRASE.

    Prints the public keys (JSON)."""
    from validators.key_files import public_identity
    from validators.keystore import new_keystore

    keys = new_keystore(out, _secret("FERRY_PASSPHRASE", "passphrase", confirm=True))
    _echo({"keystore": str(out), **public_identity(keys)})


keys_app.command("new", help="Alias of `ferry keys create`.")(keys_create)


@keys_app.command("import")
def keys_import(
    out: OutOpt,
    ed25519_seed_file: Annotated[Path | None, typer.Option(
        help="File with the 32-byte Ed25519 seed (64 hex digits or 32 raw bytes).")] = None,
    secp256k1_key_file: Annotated[Path | None, typer.Option(
        help="File with the 32-byte secp256k1 private key (64 hex digits or 32 raw bytes).")
    ] = None,
    from_export: Annotated[Path | None, typer.Option(
        help="A `ferry keys export` file (passphrase: FERRY_EXPORT_PASSPHRASE).")] = None,
) -> None:
    """Create a key file from existing keys: raw key files, or an export.

    The new file is encrypted under FERRY_PASSPHRASE. Delete raw key files afterwards."""
    from validators.key_files import import_raw, public_identity, reencrypt

    raw = (ed25519_seed_file, secp256k1_key_file)
    if from_export is not None and any(raw):
        raise ConfigError("pass either --from-export or the two raw key files, not both")
    if from_export is not None:
        keys = reencrypt(from_export, _secret("FERRY_EXPORT_PASSPHRASE", "export passphrase"),
                         out, _secret("FERRY_PASSPHRASE", "passphrase", confirm=True))
    elif ed25519_seed_file is not None and secp256k1_key_file is not None:
        keys = import_raw(out, _secret("FERRY_PASSPHRASE", "passphrase", confirm=True),
                          ed25519_seed_file=ed25519_seed_file,
                          secp256k1_key_file=secp256k1_key_file)
    else:
        raise ConfigError("pass --from-export FILE, or both --ed25519-seed-file and "
                          "--secp256k1-key-file")
    _echo({"keystore": str(out), **public_identity(keys)})


@keys_app.command("export")
def keys_export(keystore: KeystoreOpt, out: OutOpt) -> None:
    """Copy a key file, re-encrypted under an export passphrase.

    The export passphrase (FERRY_EXPORT_PASSPHRASE) must differ from FERRY_PASSPHRASE. Keys are
    never exported in plaintext; `ferry keys import --from-export` reads the file."""
    from validators.key_files import public_identity, reencrypt

    keys = reencrypt(keystore, _secret("FERRY_PASSPHRASE", "passphrase"), out,
                     _secret("FERRY_EXPORT_PASSPHRASE", "export passphrase", confirm=True))
    _echo({"keystore": str(keystore), "export": str(out), **public_identity(keys)})


@keys_app.command("rotate")
def keys_rotate(keystore: KeystoreOpt) -> None:
    """Replace a key file's keys with fresh ones; keep the old file as .retired.

    The new keys replace the file atomically; the old file is kept, still encrypted, as
    <file>.<UTC time>.retired. Prints the old and new public keys (JSON): propose the
    validator-set change with them, keep the validator on the retired file until the change is
    applied, then restart it on the new keys. New passphrase: FERRY_NEW_PASSPHRASE (default:
    unchanged)."""
    from validators.key_files import public_identity, rotate

    new_passphrase = os.environ.get("FERRY_NEW_PASSPHRASE") or None
    old, new, retired = rotate(keystore, _secret("FERRY_PASSPHRASE", "passphrase"),
                               now=datetime.now(UTC), new_passphrase=new_passphrase)
    _echo({"keystore": str(keystore), "retired": str(retired), "old": public_identity(old),
           "new": public_identity(new)})


@keys_app.command("show")
def keys_show(
    keystore: Annotated[Path, typer.Option(help="Key file.")],
    verify: Annotated[bool, typer.Option(help="Decrypt (FERRY_PASSPHRASE) and check the public "
                                              "fields against the keys.")] = False,
) -> None:
    """Print a key file's public keys (JSON).

    No passphrase is needed, unless --verify or the file predates stored secp256k1 public
    keys."""
    from validators.key_files import show

    _echo(show(keystore, lambda: _secret("FERRY_PASSPHRASE", "passphrase"), verify=verify))


@signer_app.command("serve")
def signer_serve(
    keystore: KeystoreOpt,
    socket: Annotated[Path, typer.Option(help="Unix socket to create (0600, in a 0700 "
                                              "directory).")],
) -> None:
    """Serve a key file's signatures on a Unix socket until SIGTERM/SIGINT.

    A validator configured with signer = "socket" and signer_socket = this socket signs through
    it. SECURITY: it signs whatever a client on the socket asks (the validator decides what);
    the socket's file mode (0600) is the access control."""
    import signal

    from relayer.cli import _setup_logging
    from validators.keystore import load_keystore
    from validators.signer_server import SignerServer

    _setup_logging()
    keys = load_keystore(keystore, _secret("FERRY_PASSPHRASE", "passphrase"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with SignerServer(keys, socket):
        stop.wait()
