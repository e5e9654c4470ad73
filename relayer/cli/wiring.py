"""Wiring: turn a validated `FerryConfig` into running processes. Part of the composition root,
so it may import concrete adapters (`adapters.evm`), the ledger service and the validator daemon.

Owns: construction only. Must not hold business logic.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from eth_account import Account

from adapters.errors import ConfigError, KeystoreError, UnknownAsset, ValidationError
from adapters.evm.adapter import EvmAdapter
from relayer.config import FerryConfig

log = logging.getLogger(__name__)


def chain_adapters(cfg: FerryConfig, submitter_key: bytes | None = None) -> dict[str, EvmAdapter]:
    """One adapter per configured chain; each checks its RPC's chain id first (WrongChain)."""
    adapters = {}
    for c in cfg.chains:
        adapter = EvmAdapter(c, submitter_key)
        adapter.verify_chain()
        adapters[c.caip2] = adapter
    return adapters


def load_submitter_key(cfg: FerryConfig) -> bytes | None:
    """The relayer's gas-paying EVM key from its Web3 Secret Storage file, or None if unset.

    Raises:
        KeystoreError: unreadable file or wrong passphrase. ConfigError: passphrase missing.
    """
    path = cfg.relayer.submitter_keystore
    if path is None:
        return None
    if cfg.relayer.submitter_passphrase is None:
        raise ConfigError("relayer.submitter_passphrase is required with submitter_keystore "
                          "(set FERRY_RELAYER__SUBMITTER_PASSPHRASE)")
    try:
        return bytes(Account.decrypt(json.loads(path.read_text()),
                                     cfg.relayer.submitter_passphrase.get_secret_value()))
    except OSError as exc:
        raise KeystoreError(f"cannot read submitter keystore {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise KeystoreError(f"cannot decrypt submitter keystore {path} (wrong passphrase?)") from exc


def load_solana_fee_payer(cfg: FerryConfig) -> Any:
    """The relayer's Solana fee payer (`validators.keystore.ValidatorKeys`: its Ed25519 key
    signs), from ``[relayer] solana_keystore``; None if unset.

    Raises:
        KeystoreError: unreadable file or wrong passphrase. ConfigError: passphrase missing.
    """
    path = cfg.relayer.solana_keystore
    if path is None:
        return None
    if cfg.relayer.solana_passphrase is None:
        raise ConfigError("relayer.solana_passphrase is required with solana_keystore "
                          "(set FERRY_RELAYER__SOLANA_PASSPHRASE)")
    from validators.keystore import load_keystore

    return load_keystore(path, cfg.relayer.solana_passphrase.get_secret_value())


def open_ledger(cfg: FerryConfig) -> Any:
    from ledger.config import LedgerGenesis
    from ledger.service import Ledger

    genesis = LedgerGenesis(
        validator_set=cfg.genesis_set(),
        bridges=cfg.bridges(),
        assets=list(cfg.assets),
    )
    return Ledger.open(cfg.ledger.database_url, cfg.network, genesis, risk=cfg.risk,
                       operator_token_sha256=cfg.ledger.operator_token_sha256)


def serve_ledger(cfg: FerryConfig) -> None:
    import uvicorn

    from api.ledger import create_ledger_app

    ledger = open_ledger(cfg)
    log.info("ledger serving network=%s port=%d", cfg.network, cfg.ledger.port)
    uvicorn.run(create_ledger_app(ledger), host=cfg.ledger.host, port=cfg.ledger.port,
                log_level="warning", log_config=None)  # log_config=None: our JSON/text logs


def build_relayer(
    cfg: FerryConfig, ledger: Any = None, submitter_key: bytes | None = None
) -> tuple[Any, Any]:
    """(Engine, AttestationInbox) over the configured store, chains and ledger.

    Args:
        ledger: a ledger client to use instead of `LedgerClient(cfg.ledger.url)`.
        submitter_key: the gas-paying EVM key, instead of reading the configured keystore.
    """
    from ledger.client import LedgerClient
    from ledger.types import MintRequest
    from relayer.custody import CustodyReleases
    from relayer.engine import ChainPlan, Engine
    from relayer.escrow import EscrowReleases
    from relayer.htlc_mint import HtlcMints
    from relayer.inbox import AttestationInbox
    from relayer.store import Store

    store = Store.open(cfg.relayer.database_url)
    ledger = ledger or LedgerClient(str(cfg.ledger.url))
    adapters: dict[str, Any] = dict(chain_adapters(cfg, submitter_key or load_submitter_key(cfg)))
    btc = bitcoin_adapters(cfg, ledger)
    adapters.update(btc)
    escrows = cosmos_adapters(cfg)
    escrows.update(solana_adapters(cfg, load_solana_fee_payer(cfg) if cfg.solana else None))
    adapters.update(escrows)
    chain_cfgs: dict[str, Any] = {c.caip2: c for c in cfg.chains}
    chain_cfgs.update({b.caip2: b for b in cfg.bitcoin})
    chain_cfgs.update({c.caip2: c for c in cfg.cosmos})
    chain_cfgs.update({c.caip2: c for c in cfg.solana})
    plans = {
        caip2: ChainPlan(
            adapter=a, start_block=chain_cfgs[caip2].start_block,
            max_block_range=chain_cfgs[caip2].max_block_range,
            poll_interval_s=chain_cfgs[caip2].poll_interval_s,
            assets={x.origin_token: x.asset for x in cfg.assets if x.origin_chain == caip2})
        for caip2, a in adapters.items()}
    custody = CustodyReleases(
        store, btc, settings={b.caip2: b for b in cfg.bitcoin}) if btc else None
    htlc_mints = HtlcMints(store, ledger, btc) if btc else None
    engine = Engine(store, plans, ledger, cfg.network, mint_request=MintRequest,
                    batch_size=cfg.relayer.batch_size, custody=custody,
                    escrow=EscrowReleases(store, escrows) if escrows else None,
                    htlc_mints=htlc_mints, risk=cfg.risk, replica_id=replica_id(cfg),
                    claim_ttl_s=cfg.relayer.claim_ttl_s)
    if custody is not None:
        custody.metrics = engine.metrics
    from relayer.accountant import Accountant

    engine.accountant = Accountant(store, ledger, adapters, engine.metrics, custody=custody,
                                   escrow=engine.escrow)
    inbox = AttestationInbox(store, cfg.network, engine.ledger_status, adapters,
                             engine.bridge_sets, engine.metrics)
    return engine, inbox


def cosmos_adapters(cfg: FerryConfig) -> dict[str, Any]:
    """One adapter per configured Cosmos chain; each checks its node's chain id (WrongChain)."""
    from adapters.cosmos.adapter import CosmosAdapter

    out = {}
    for c in cfg.cosmos:
        adapter = CosmosAdapter(c)
        adapter.verify_chain()
        out[c.caip2] = adapter
    return out


def solana_adapters(cfg: FerryConfig, fee_payer: Any = None,
                    verify: bool = True) -> dict[str, Any]:
    """One adapter per configured Solana cluster; each checks its RPC's genesis hash, the
    escrow multisig and the nonce account first (`SolanaAdapter.verify_chain`).

    Args:
        fee_payer: the relayer's Solana key (`load_solana_fee_payer`): it must be the
            configured ``fee_payer``; None for a process that never assembles releases.

    Raises:
        ConfigError: the fee payer key is not the configured ``fee_payer``.
    """
    from adapters.solana.adapter import SolanaAdapter

    out = {}
    for c in cfg.solana:
        adapter = SolanaAdapter(c, fee_payer=fee_payer)
        if verify:
            adapter.verify_chain()
        out[c.caip2] = adapter
    return out


def bitcoin_adapters(cfg: FerryConfig, ledger: Any) -> dict[str, Any]:
    """One adapter per configured Bitcoin network, its deposit registry fed by the ledger's;
    each checks its node's genesis hash first (WrongChain)."""
    from adapters.bitcoin.adapter import BitcoinAdapter
    from relayer.htlc_mint import intent_source

    out = {}
    for b in cfg.bitcoin:
        def source(after: int, caip2: str = b.caip2) -> list[tuple[int, bytes]]:
            return [(r.seq, r.account)
                    for r in ledger.deposit_accounts(caip2, after_seq=after, limit=1000)]

        adapter = BitcoinAdapter(b, registry_source=source,
                                 intent_source=intent_source(ledger, b.caip2))
        adapter.verify_chain()
        out[b.caip2] = adapter
    return out


def replica_id(cfg: FerryConfig) -> str:
    """``[relayer] replica_id``, or ``<hostname>-<pid>`` when unset."""
    from relayer.leases import default_replica_id

    return cfg.relayer.replica_id or default_replica_id()


def run_relayer_process(cfg: FerryConfig) -> None:
    from relayer.cli.swaps import build_swap_runtime
    from relayer.leases import Leases
    from relayer.service import run_relayer

    engine, inbox = build_relayer(cfg)
    leases = Leases(engine.store.engine, engine.replica_id, cfg.relayer.lease_ttl_s)
    swaps = build_swap_runtime(cfg)
    webhooks = build_webhooks(cfg, engine.store)
    log.info("relayer starting replica=%s chains=%s port=%d metrics_port=%d swaps=%s",
             engine.replica_id, list(engine.chains), cfg.relayer.port, cfg.relayer.metrics_port,
             swaps is not None)
    run_relayer(engine, inbox, cfg.relayer.host, cfg.relayer.port, cfg.relayer.metrics_port,
                cfg.relayer.poll_interval_s, cfg.relayer.ledger_poll_interval_s, swaps,
                webhooks=webhooks, cfg=cfg, leases=leases)


def build_webhooks(cfg: FerryConfig, store: Any) -> Any:
    """A `relayer.webhooks.WebhookDispatcher` for ``[[api.webhooks]]``, or None if none."""
    if not cfg.api.webhooks:
        return None
    from adapters.base import SystemClock
    from relayer.webhooks import WebhookDispatcher

    return WebhookDispatcher(store, cfg.api.webhooks, SystemClock(),
                             max_backoff_s=cfg.api.webhook_max_backoff_s)


def run_validator_process(cfg: FerryConfig) -> None:
    from validators.daemon import ValidatorDaemon

    if cfg.validator is None:
        raise ConfigError("validator section missing (config [validator] or FERRY_VALIDATOR__*)")
    section = cfg.validator
    keys = build_key_signer(section)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("validator starting name=%s validator=%s", section.name, keys.ed25519_public_hex)
    with ValidatorDaemon(section, cfg.network, cfg.chains, keys, bitcoin=cfg.bitcoin,
                         cosmos=cfg.cosmos, solana=cfg.solana, risk=cfg.risk) as daemon:
        from validators.observability import ValidatorHttp

        http = None if section.metrics_port is None else ValidatorHttp(
            daemon.metrics, section.metrics_host, section.metrics_port).start()
        try:
            daemon.run_forever(stop)
        finally:
            if http is not None:
                http.close()


SIGNER_READY_TIMEOUT_S = 60.0  # how long a validator waits for its external signer at start


def build_key_signer(section: Any) -> Any:
    """The `validators.key_signer.KeySigner` of ``[validator] signer``: the decrypted key file
    (``"file"``), or a `SocketSigner` on ``signer_socket`` (``"socket"``) once it answers.

    Raises:
        KeystoreError: unreadable key file or wrong passphrase. SignerUnavailable: no signer
            answered within `SIGNER_READY_TIMEOUT_S`. SignerRefused: it answered with an error.
    """
    if section.signer == "socket":
        from validators.socket_signer import SocketSigner

        signer = SocketSigner(section.signer_socket)
        signer.wait_ready(timeout_s=SIGNER_READY_TIMEOUT_S)
        return signer
    from validators.keystore import load_keystore

    return load_keystore(section.keystore, section.passphrase.get_secret_value())


def burn(cfg: FerryConfig, keys: Any, asset: str, amount: str, to: str) -> dict[str, Any]:
    """Sign and submit a burn of `amount` base units of `asset` (symbol or id) to `to`."""
    from ledger.client import LedgerClient
    from ledger.transactions import sign_burn

    match = [a for a in cfg.assets if asset in (a.symbol, a.asset)]
    if not match:
        raise UnknownAsset(f"no asset {asset!r} in config")
    try:
        value = Decimal(amount)
    except InvalidOperation as exc:
        raise ValidationError(f"amount {amount!r} is not a number") from exc
    if value != value.to_integral_value() or value <= 0:
        raise ValidationError("amount must be a positive integer in base units")
    for b in cfg.bitcoin:  # refuse a Bitcoin payout address of another network before burning
        if match[0].origin_chain == b.caip2:
            from adapters.bitcoin.scripts import script_pubkey_from_address

            script_pubkey_from_address(to, b.network)
    for c in cfg.cosmos:  # refuse a payout address of another chain before burning
        if match[0].origin_chain == c.caip2:
            from adapters.cosmos.multisig import parse_address

            parse_address(to, c.bech32_prefix)
    for s in cfg.solana:
        if match[0].origin_chain == s.caip2:
            from adapters.solana.config import parse_pubkey

            parse_pubkey(to)
    client = LedgerClient(str(cfg.ledger.url))
    nonce = client.account(keys.ed25519_public).nonce
    signed = sign_burn(keys, cfg.network, nonce, match[0].asset, int(value),
                       match[0].origin_chain, to)
    receipt = client.submit_transaction(signed)
    return {"burn_id": "0x" + signed.tx_id.hex(), "seq": receipt.seq,
            "asset": match[0].asset, "amount": str(int(value)),
            "to": signed.body["dest_address"]}


def deposit_address(cfg: FerryConfig, account: str, chain: str | None,
                    offline: bool) -> dict[str, Any]:
    """ACCOUNT's deposit address on a configured Bitcoin network, registered with the ledger
    (so scanners watch it) unless `offline`.

    Raises:
        ConfigError: no (or no such) Bitcoin network configured. InvalidAddress: bad account.
    """
    from ledger.client import LedgerClient
    from ledger.fields import parse_account

    if not cfg.bitcoin:
        raise ConfigError("no [[bitcoin]] network in the config")
    if chain is None and len(cfg.bitcoin) > 1:
        raise ConfigError("several Bitcoin networks configured: pass --chain")
    b = cfg.bitcoin[0] if chain is None else cfg.bitcoin_chain(chain)
    raw = parse_account(account)
    deposit = b.vault.deposit(raw)
    out: dict[str, Any] = {"account": "0x" + raw.hex(), "chain": b.caip2,
                           "deposit_address": deposit.address,
                           "witness_script": deposit.witness_script.hex(),
                           "vault_address": b.vault.address,
                           "threshold": f"{b.threshold} of {len(b.validator_pubkeys)}",
                           "registered": False}
    if not offline:
        reg = LedgerClient(str(cfg.ledger.url)).register_deposit_account(b.caip2, raw)
        out["registered"] = True
        out["registry_seq"] = reg.seq
    return out


def build_api_context(cfg: FerryConfig) -> Any:
    """The `api.app.ApiContext` of ``ferry api serve``: the relayer database, a ledger client,
    swaps if configured, and an attestation inbox like the relayer's (`build_relayer`), over
    adapters that make no call at start: the API answers from the database even while a
    chain's node is down (release signatures are checked against the bridge's set when a
    delivery arrives)."""
    from adapters.base import SystemClock
    from adapters.bitcoin.adapter import BitcoinAdapter
    from adapters.cosmos.adapter import CosmosAdapter
    from api.app import ApiContext
    from ledger.client import LedgerClient
    from relayer.cli.swaps import build_swap_runtime
    from relayer.inbox import AttestationInbox, TtlCache
    from relayer.metrics import RelayerMetrics
    from relayer.store import Store

    clock = SystemClock()
    store = Store.open(cfg.relayer.database_url, clock)
    ledger = LedgerClient(str(cfg.ledger.url))
    adapters: dict[str, Any] = {c.caip2: EvmAdapter(c) for c in cfg.chains}
    adapters.update({b.caip2: BitcoinAdapter(b) for b in cfg.bitcoin})
    adapters.update({c.caip2: CosmosAdapter(c) for c in cfg.cosmos})
    adapters.update(solana_adapters(cfg, verify=False))
    inbox = AttestationInbox(
        store, cfg.network, TtlCache(ledger.status, 1.0, clock), adapters,
        {chain: TtlCache(a.validator_set, 2.0, clock) for chain, a in adapters.items()},
        RelayerMetrics(), clock)
    return ApiContext(cfg=cfg, store=store, ledger=ledger, inbox=inbox,
                      swaps=build_swap_runtime(cfg), clock=clock)


def serve_api(cfg: FerryConfig, config_path: Path | None = None, workers: int = 1) -> None:
    """Serve the API (`api.app.create_api_app`) on ``[api] host:port`` without the relayer's
    jobs, until SIGINT/SIGTERM.

    Args:
        cfg: the validated config (read from `config_path`).
        workers: uvicorn worker processes (> 1 needs `config_path`: each worker re-reads it).
            Rate limits are kept per process, so each worker allows the configured rate.
    """
    import uvicorn

    from api.app import create_api_app

    log.info("api serving network=%s host=%s port=%d workers=%d", cfg.network, cfg.api.host,
             cfg.api.port, workers)
    if workers > 1:
        if config_path is None:
            raise ConfigError("--workers above 1 needs --config (each worker reads it)")
        os.environ[API_CONFIG_ENV] = str(Path(config_path).resolve())
        uvicorn.run("relayer.cli.wiring:api_app_from_env", factory=True, workers=workers,
                    host=cfg.api.host, port=cfg.api.port, log_level="warning", log_config=None)
        return
    uvicorn.run(create_api_app(build_api_context(cfg)), host=cfg.api.host, port=cfg.api.port,
                log_level="warning", log_config=None)


API_CONFIG_ENV = "FERRY_API_CONFIG_FILE"  # the config path a uvicorn API worker reads


def api_app_from_env() -> Any:
    """The API app of one uvicorn worker (`serve_api` with workers > 1)."""
    from api.app import create_api_app
    from relayer.config import load_config
    from relayer.logs import setup_logging

    setup_logging()  # a spawned worker starts without the parent's logging

    return create_api_app(build_api_context(load_config(Path(os.environ[API_CONFIG_ENV]))))
