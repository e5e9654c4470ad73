"""Helpers for tests and devnets: throwaway validator sets and the certificates they sign.

Owns: `make_validator_set`, `sign_lock`, `sign_rotation`, `lock_event`, `Harness`. Must not be
imported by `ledger.service`, the API or the client; keys made here are for tests only (never
persisted).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from nacl.signing import SigningKey

from adapters.base import NATIVE_TOKEN, LockEvent, asset_key
from ledger.config import AssetConfig, LedgerGenesis
from ledger.service import Ledger
from ledger.types import MintRequest
from validators.attestation import (
    ValidatorInfo,
    ValidatorSet,
    lock_attestation_message,
    validator_set_message,
)


def make_validator_set(
    n: int, threshold: int, epoch: int = 1
) -> tuple[ValidatorSet, list[SigningKey]]:
    """A fresh set of `n` random Ed25519 validators (fake EVM addresses derived from the keys).

    Returns:
        The set and the signing keys, in member order.
    """
    keys = [SigningKey.generate() for _ in range(n)]
    members = tuple(
        ValidatorInfo(
            ed25519=bytes(k.verify_key),
            evm_address="0x" + hashlib.sha256(bytes(k.verify_key)).digest()[:20].hex(),
        )
        for k in keys
    )
    return ValidatorSet(epoch=epoch, members=members, threshold=threshold), keys


def sign_message(keys: Sequence[SigningKey], message: bytes) -> list[tuple[bytes, bytes]]:
    """(32-byte public key, 64-byte Ed25519 signature) of each key over `message`."""
    return [(bytes(k.verify_key), k.sign(message).signature) for k in keys]


def sign_lock(
    keys: Sequence[SigningKey], network: str, event: LockEvent, epoch: int
) -> list[tuple[bytes, bytes]]:
    """Each key's signature over `lock_attestation_message(network, event, epoch)`."""
    return sign_message(keys, lock_attestation_message(network, event, epoch))


def sign_rotation(
    keys: Sequence[SigningKey], network: str, current_epoch: int, new_set: ValidatorSet
) -> list[tuple[bytes, bytes]]:
    """Each key's signature over `validator_set_message(network, current_epoch, new_set)`."""
    return sign_message(keys, validator_set_message(network, current_epoch, new_set))


def lock_event(
    chain: str, contract: str, nonce: int, token: str, amount: int, recipient: bytes
) -> LockEvent:
    """A plausible `LockEvent` with deterministic tx/block fields derived from the nonce."""
    return LockEvent(
        chain=chain, contract=contract.lower(), nonce=nonce, token=token.lower(),
        sender="0x" + "ab" * 20, amount=amount, recipient=recipient,
        tx_hash="0x" + hashlib.sha256(f"tx{chain}{nonce}".encode()).hexdigest(),
        log_index=0, block_number=100 + nonce,
        block_hash="0x" + hashlib.sha256(f"block{chain}{nonce}".encode()).hexdigest(),
    )


@dataclass
class Harness:
    """A ledger on a throwaway database with a 3-of-5 validator set, two origin chains with a
    bridge each, and three assets (native coin of each chain, one ERC-20 on the first)."""

    ledger: Ledger
    validator_set: ValidatorSet
    keys: list[SigningKey]
    network: str = "ferry-test"
    chain: str = "eip155:31337"
    other_chain: str = "eip155:31338"
    bridge: str = "0x" + "b1" * 20
    other_bridge: str = "0x" + "b2" * 20
    token: str = "0x" + "7e" * 20

    @property
    def native_asset(self) -> str:
        return asset_key(self.chain, NATIVE_TOKEN)

    @property
    def token_asset(self) -> str:
        return asset_key(self.chain, self.token)

    def lock(self, nonce: int, amount: int, recipient: bytes, *, token: str = NATIVE_TOKEN,
             chain: str | None = None, contract: str | None = None) -> LockEvent:
        """A lock event on `chain` (default: the first chain) from its bridge."""
        chain = chain or self.chain
        bridge = self.bridge if chain == self.chain else self.other_bridge
        return lock_event(chain, contract or bridge, nonce, token, amount, recipient)

    def certify(self, event: LockEvent, *, signers: Sequence[SigningKey] | None = None,
                epoch: int | None = None, network: str | None = None) -> MintRequest:
        """A mint request signed by `signers` (default: the first threshold keys)."""
        epoch = self.validator_set.epoch if epoch is None else epoch
        signers = self.keys[: self.validator_set.threshold] if signers is None else signers
        return MintRequest(event, epoch, sign_lock(signers, network or self.network, event, epoch))


def open_harness(database_url: str, *, network: str = "ferry-test") -> Harness:
    """Open a fresh ledger at `database_url` (e.g. ``sqlite:///<tmp>/ledger.sqlite``)."""
    vset, keys = make_validator_set(5, 3)
    h = Harness(ledger=None, validator_set=vset, keys=keys, network=network)  # type: ignore[arg-type]
    genesis = LedgerGenesis(
        validator_set=vset,
        bridges={h.chain: h.bridge, h.other_chain: h.other_bridge},
        assets=[
            AssetConfig(symbol="wETH", origin_chain=h.chain, origin_token=NATIVE_TOKEN,
                        decimals=18),
            AssetConfig(symbol="wTKN", origin_chain=h.chain, origin_token=h.token, decimals=6),
            AssetConfig(symbol="wBNB", origin_chain=h.other_chain, origin_token=NATIVE_TOKEN,
                        decimals=18),
        ],
    )
    h.ledger = Ledger.open(database_url, network, genesis)
    return h


def downgrade(database_url: str, revision: str) -> None:
    """Alembic-downgrade the ledger at `database_url` to `revision` (tests build a database at
    an old revision by writing at head and downgrading: the current code writes tables that old
    revisions lack, and a downgrade keeps the rows of the tables the old revision has)."""
    from alembic import command
    from alembic.config import Config

    from ledger.db import MIGRATIONS_DIR, make_engine

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)
    finally:
        engine.dispose()
