"""The native ledger service: accounts, assets, quorum-certified mints, user-signed burns and
transfers, validator-set rotation, the journal, the supply invariants and the deposit-address
registry. HTLCs (lock, redeem, refund) are delegated to `ledger.htlcs`, which holds their rules.

Owns: `Ledger`, the only writer of the ledger tables. Must not speak HTTP (`api/ledger.py`
does), hold any key, read the wall clock other than through the injected `Clock`, or derive a
deposit address or script (chain adapters do; the ledger stores the (chain, account) pair only).

SECURITY: every state change is one DB transaction that holds the ledger's write lock (an
in-process lock plus ``BEGIN IMMEDIATE`` on SQLite / ``FOR UPDATE`` of `ledger_state` on
PostgreSQL) and writes, together, the journal entry, the balances, the supply counters and the
record (mint, burn, transfer, asset, bridge, validator set). Bad input raises a typed error from
`adapters.errors` / `ledger.errors` before anything is written, and the transaction rolls back
on any exception, so a refused request changes nothing. The deposit-address registry is the
one record outside the journal: it moves no balance, so it only takes the write lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from adapters.base import Clock, SystemClock
from adapters.errors import (
    BadNonce,
    ConfigError,
    InsufficientBalance,
    InvalidAddress,
    UnknownAsset,
    ValidationError,
)
from htlc.mint_intent import MintIntent
from ledger import htlcs, mint_intents, risk, store
from ledger.config import AssetConfig, LedgerGenesis
from ledger.db import make_engine, migrate_engine, read_transaction, write_transaction
from ledger.errors import InvariantViolation, JournalCorrupt, UnknownBridge, WrongEpoch
from ledger.fields import account_hex, parse_chain, parse_token
from ledger.history import LedgerHistory
from ledger.journal import ZERO_HASH, JournalChain, JournalKind, verify_chain
from ledger.minting import MAX_INT64, apply_mint_batch
from ledger.transactions import BurnTx, HtlcLockTx, SignedTx, verify_transaction
from ledger.types import (
    AccountInfo,
    AssetInfo,
    BurnRecord,
    DepositRegistration,
    Htlc,
    JournalEntry,
    LedgerStatus,
    MintRequest,
    MintResult,
    SupplyReport,
    TxReceipt,
    signatures_to_json,
)
from validators.attestation import ValidatorSet, canonical, validator_set_message
from validators.quorum import verify_quorum
from validators.risk import RiskSection

log = logging.getLogger(__name__)
MAX_PAGE = 1000  # most rows one burns()/journal()/deposit_accounts() call returns


class Ledger:
    """The native ledger over one database. Thread-safe; open with `Ledger.open`.

    Args:
        engine: from `ledger.db.make_engine`, schema already migrated.
        network: Ferry network name.
        clock: time source of `registered_at` and of HTLC timelocks (default: the system clock).
        risk: the ``[risk]`` limits applied before minting (`ledger.risk`; None: no limits).
        operator_token_sha256: hex SHA-256 of the operator token of the risk endpoints (None:
            operator calls are refused).
    """

    def __init__(self, engine: Engine, network: str, clock: Clock | None = None, *,
                 risk: RiskSection | None = None,
                 operator_token_sha256: str | None = None) -> None:
        self._engine = engine
        self._network = network
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._risk = risk
        self._operator_sha256 = operator_token_sha256
        self.history = LedgerHistory(engine)  # journal tree, proofs, account history

    @classmethod
    def open(
        cls, database_url: str, network: str, genesis: LedgerGenesis, *, migrate: bool = True,
        clock: Clock | None = None, risk: RiskSection | None = None,
        operator_token_sha256: str | None = None,
    ) -> Ledger:
        """Open (creating on first use) the ledger at `database_url`.

        Runs the Alembic migrations (unless `migrate` is False), writes the genesis on an empty
        database, checks it against the stored one otherwise, then registers the genesis
        bridges and assets (idempotent).

        Args:
            database_url: ``sqlite:///path`` or ``postgresql://...``.
            network: Ferry network name (e.g. ``devnet``); signed into every transaction.
            genesis: genesis validator set, bridges and assets.
            clock: time source of `registered_at` (default: the system clock).
            risk, operator_token_sha256: see the class.

        Raises:
            ConfigError: unsupported URL; the stored network or genesis set differs; a bridge
                or asset conflicts with the stored one.
        """
        if not network or len(network) > 64:
            raise ConfigError("network must be 1..64 chars")
        engine = make_engine(database_url)
        if migrate:
            migrate_engine(engine)
        ledger = cls(engine, network, clock, risk=risk,
                     operator_token_sha256=operator_token_sha256)
        ledger._init_genesis(genesis.validator_set)
        for chain, contract in genesis.bridges.items():
            ledger.register_bridge(chain, contract)
        for asset in genesis.assets:
            ledger.register_asset(asset)
        return ledger

    @property
    def network(self) -> str:
        return self._network

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    @contextmanager
    def _writing(self) -> Iterator[tuple[Connection, store.State]]:
        with self._lock, write_transaction(self._engine) as conn:
            state = store.lock_state(conn)
            if state is None:
                raise ConfigError("ledger has no genesis; open it with Ledger.open")
            if state.network != self._network:
                raise ConfigError(f"database is network {state.network!r}, not {self._network!r}")
            yield conn, state

    def _init_genesis(self, genesis_set: ValidatorSet) -> None:
        with self._lock, write_transaction(self._engine) as conn:
            state = store.lock_state(conn)
            if state is None:
                chain = JournalChain(0, ZERO_HASH)
                store.insert_journal(conn, [chain.append(JournalKind.GENESIS, {
                    "network": self._network, "validator_set": genesis_set.to_json(),
                })])
                store.insert_validator_set(conn, genesis_set, chain.seq)
                store.create_state(conn, self._network, genesis_set.epoch, chain)
                log.info("ledger genesis network=%s epoch=%d", self._network, genesis_set.epoch)
                return
            if state.network != self._network:
                raise ConfigError(f"database is network {state.network!r}, not {self._network!r}")
            stored = store.load_validator_set(conn, genesis_set.epoch)
            if stored is None or (stored.threshold, store.members_json(stored)) != (
                genesis_set.threshold, store.members_json(genesis_set)
            ):
                raise ConfigError(f"genesis validator set (epoch {genesis_set.epoch}) differs "
                                  "from the one stored in the ledger")

    def register_bridge(self, chain: str, contract: str) -> None:
        """Record `contract` as the bridge of origin chain `chain` (no-op if already so).

        Raises:
            ValidationError, InvalidAddress: malformed chain id or address.
            ConfigError: `chain` already has another bridge (SECURITY: never silently replaced).
        """
        chain = parse_chain(chain)
        contract = parse_token(chain, contract.lower() if chain.startswith("eip155:") else contract,
                               "bridge contract")
        with self._writing() as (conn, state):
            current = store.load_bridges(conn).get(chain)
            if current == contract:
                return
            if current is not None:
                raise ConfigError(f"{chain} already has bridge {current}, refusing {contract}")
            journal = JournalChain(state.seq, state.head)
            store.insert_journal(conn, [journal.append(
                JournalKind.BRIDGE, {"chain": chain, "contract": contract})])
            store.insert_bridge(conn, chain, contract, journal.seq)
            store.save_head(conn, journal)

    def register_asset(self, asset: AssetConfig) -> AssetInfo:
        """Register the wrapped asset of (origin_chain, origin_token) (no-op if identical).

        Returns:
            The asset with its current counters.

        Raises:
            ConfigError: already registered with another symbol or decimals.
        """
        with self._writing() as (conn, state):
            current = store.load_asset(conn, asset.asset)
            if current is not None:
                if (current.symbol, current.decimals) != (asset.symbol, asset.decimals):
                    raise ConfigError(f"asset {asset.asset} is registered as {current.symbol} "
                                      f"with {current.decimals} decimals")
                return current
            info = AssetInfo(asset.asset, asset.symbol, asset.origin_chain, asset.origin_token,
                             asset.decimals, 0, 0, 0)
            journal = JournalChain(state.seq, state.head)
            store.insert_journal(conn, [journal.append(JournalKind.ASSET, {
                "asset": info.asset, "symbol": info.symbol, "origin_chain": info.origin_chain,
                "origin_token": info.origin_token, "decimals": str(info.decimals),
            })])
            store.insert_asset(conn, info, journal.seq)
            store.save_head(conn, journal)
            return info

    def register_deposit_account(self, chain: str, account: bytes) -> DepositRegistration:
        """Add (chain, account) to the deposit-address registry (idempotent).

        Scanners derive `account`'s deposit address on `chain` from the registry and credit
        deposits to it to `account`; anyone may register any account. Not journaled (no balance
        changes); one write transaction under the ledger write lock, so seqs commit in order.

        Args:
            chain: CAIP-2 origin chain; must have a configured bridge.
            account: 32-byte ledger account (Ed25519 public key).

        Returns:
            The registration; on a repeat call the stored one (same seq) with ``created=False``.

        Raises:
            ValidationError: `chain` is not CAIP-2.
            InvalidAddress: `account` is not 32 bytes.
            UnknownBridge: no bridge is configured for `chain`.
        """
        chain = parse_chain(chain)
        if not isinstance(account, bytes):
            raise InvalidAddress("account must be 32 bytes")
        key = account_hex(account)
        with self._writing() as (conn, _state):
            if chain not in store.load_bridges(conn):
                raise UnknownBridge(f"no bridge configured for chain {chain!r}")
            existing = store.load_deposit_account(conn, chain, key)
            if existing is not None:
                return existing
            if mint_intents.load(conn, account) is not None:
                raise InvalidAddress("this account is a mint intent id, not an account")
            registration = store.insert_deposit_account(conn, chain, key, self._clock.now())
        log.info("deposit account registered chain=%s account=%s seq=%d", chain, key,
                 registration.seq)
        return registration

    def register_mint_intent(self, intent: MintIntent) -> mint_intents.IntentRegistration:
        """Add an HTLC mint intent to the registry (rules: `ledger.mint_intents.register`).

        Not journaled (no balance moves); one write transaction under the write lock.

        Raises:
            UnknownBridge: no bridge for the intent's chain.
            ValidationError: timelock not after the ledger clock, hashlock taken by other
                terms, or the intent id is a deposit account.
        """
        with self._writing() as (conn, _state):
            return mint_intents.register(conn, intent, self._clock.now())

    def mint_intent(self, intent_id: bytes) -> mint_intents.IntentRegistration | None:
        """The registered intent with this 32-byte id, or None."""
        if not isinstance(intent_id, bytes) or len(intent_id) != 32:
            raise InvalidAddress("intent_id must be 32 bytes")
        with read_transaction(self._engine) as conn:
            return mint_intents.load(conn, intent_id)

    def mint_intents(self, chain: str, after_seq: int = 0, limit: int = 100
                     ) -> list[mint_intents.IntentRegistration]:
        """Intents on `chain` with registry seq > `after_seq`, ascending, at most `limit`
        (1..1000). Raises `ValidationError` for a bad chain id or page bounds."""
        chain = parse_chain(chain)
        _check_page(after_seq, limit)
        with read_transaction(self._engine) as conn:
            return mint_intents.page(conn, chain, after_seq, limit)

    def mint(self, request: MintRequest) -> MintResult:
        """`mint_batch` of one request."""
        return self.mint_batch([request])[0]

    def mint_batch(self, requests: Sequence[MintRequest]) -> list[MintResult]:
        """Mint each request that carries a valid quorum certificate (rules: `ledger.minting`).

        One DB transaction for the batch; a rejected or duplicate request writes nothing and
        does not affect the others; one the risk rules hold back (`ledger.risk`) is
        ``deferred`` and writes only its first-sight row. Idempotent: a request whose event id was minted before
        returns ``duplicate`` with the original journal seq.

        Returns:
            One `MintResult` per request, in order (rejections carry the error `code`).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database failed; nothing of the batch applied.
        """
        if not requests:
            return []
        for attempt in (1, 2):
            try:
                with self._writing() as (conn, state):
                    results = apply_mint_batch(conn, state, requests, self._clock.now(),
                                               self._risk)
                break
            except IntegrityError:
                # Only reachable if another writer bypassed the state-row lock; the retry sees
                # its mints as duplicates. The primary key kept the ledger consistent.
                if attempt == 2:
                    raise
                log.warning("mint batch hit a unique constraint; retrying n=%d", len(requests))
        minted = sum(1 for r in results if r.status == "minted")
        log.info("mint batch n=%d minted=%d", len(requests), minted)
        return results

    # ---- risk (rules and tables: `ledger.risk`) -----------------------------------------------

    def authorize_operator(self, token: str | None) -> None:
        """Raise `Unauthorized` unless sha256(`token`) is the configured operator token hash."""
        risk.check_operator(self._operator_sha256, token)

    def risk_report(self) -> risk.RiskReport:
        """Paused routes, deferred mints and window usage per route (`ledger.risk.report`)."""
        with read_transaction(self._engine) as conn:
            return risk.report(conn, self._risk, self._clock.now())

    def release_mint(self, event_id: str) -> bool:
        """Operator release of a (deferred or not yet seen) mint; see `ledger.risk.release`."""
        with self._writing() as (conn, _state):
            return risk.release(conn, event_id, self._clock.now())

    def pause_route(self, route: str, reason: str) -> bool:
        """Pause a route's mints; see `ledger.risk.pause`."""
        with self._writing() as (conn, _state):
            return risk.pause(conn, route, reason, self._clock.now())

    def unpause_route(self, route: str) -> bool:
        """Unpause a route; see `ledger.risk.unpause`."""
        with self._writing() as (conn, _state):
            return risk.unpause(conn, route)

    def submit_transaction(self, signed: SignedTx) -> TxReceipt:
        """Apply a user-signed burn, transfer or htlc_lock (format: `ledger.transactions`).

        A burn debits the account, lowers supply, raises burned_total and records the payout
        (burn_id = sha256 of the signed bytes). A transfer moves balance between accounts. An
        htlc_lock debits the account into a new HTLC (`ledger.htlcs.lock`).

        Returns:
            The journal seq and, for a burn, the 32-byte burn id; for an htlc_lock the htlc id.

        Raises:
            ValidationError, InvalidAddress: malformed body; burn dest_chain is not the asset's
                origin chain; an htlc_lock timelock not after the ledger clock.
            WrongNetwork, InvalidSignature: see `verify_transaction`.
            UnknownAsset: asset not registered.
            BadNonce: nonce is not the account's next nonce (replay or gap).
            InsufficientBalance: balance below amount.
        """
        tx = verify_transaction(signed, self._network)
        if isinstance(tx, HtlcLockTx):
            with self._writing() as (conn, state):
                return htlcs.lock(conn, state, tx, self._clock.now())
        account = account_hex(tx.account)
        with self._writing() as (conn, state):
            asset = store.load_asset(conn, tx.asset)
            if asset is None:
                raise UnknownAsset(f"no asset {tx.asset}")
            if isinstance(tx, BurnTx) and tx.dest_chain != asset.origin_chain:
                raise ValidationError(f"{tx.asset} can only be burned to {asset.origin_chain}, "
                                      f"not {tx.dest_chain}")
            nonces = store.load_nonces(conn, [account])
            expected = nonces.get(account, 0)
            if tx.nonce != expected:
                raise BadNonce(f"account {account} next nonce is {expected}, got {tx.nonce}")
            balance = store.load_balances(conn, [(account, tx.asset)]).get((account, tx.asset), 0)
            if balance < tx.amount:
                raise InsufficientBalance(f"balance {balance} < amount {tx.amount} of {tx.asset}")
            journal = JournalChain(state.seq, state.head)
            body_text = canonical(dict(signed.body)).decode()
            signature = "0x" + signed.signature.hex()
            tx_id = "0x" + signed.tx_id.hex()
            if isinstance(tx, BurnTx):
                row = journal.append(JournalKind.BURN, {
                    "burn_id": tx_id, "tx": dict(signed.body), "signature": signature})
                store.insert_journal(conn, [row])
                store.save_asset_counters(conn, [replace(
                    asset, supply=asset.supply - tx.amount,
                    burned_total=asset.burned_total + tx.amount)])
                conn.execute(insert(store.BURNS).values(
                    burn_id=tx_id, seq=journal.seq, account=account, asset=tx.asset,
                    amount=tx.amount, dest_chain=tx.dest_chain, dest_address=tx.dest_address,
                    tx=body_text, signature=signature,
                ))
                store.write_balances(conn, {}, {(account, tx.asset): balance - tx.amount})
            else:
                to = account_hex(tx.to)
                row = journal.append(JournalKind.TRANSFER, {
                    "tx_id": tx_id, "tx": dict(signed.body), "signature": signature})
                store.insert_journal(conn, [row])
                if to not in store.load_nonces(conn, [to]):
                    store.insert_accounts(conn, [to])
                to_balance = store.load_balances(conn, [(to, tx.asset)])
                store.write_balances(conn, {} if to_balance else {(to, tx.asset): tx.amount}, {
                    (account, tx.asset): balance - tx.amount,
                    **{k: v + tx.amount for k, v in to_balance.items()},
                })
                conn.execute(insert(store.TRANSFERS).values(
                    tx_id=tx_id, seq=journal.seq, account=account, to_account=to,
                    asset=tx.asset, amount=tx.amount, tx=body_text, signature=signature,
                ))
            store.set_nonce(conn, account, expected + 1)
            store.save_head(conn, journal)
        log.info("tx applied kind=%s seq=%d tx=%s", signed.body["kind"], journal.seq, tx_id)
        return TxReceipt(seq=journal.seq, burn_id=signed.burn_id)

    def rotate_validator_set(
        self, new_set: ValidatorSet, signatures: Sequence[tuple[bytes, bytes]]
    ) -> int:
        """Hand the ledger over to `new_set`, certified by a quorum of the current set over
        `validator_set_message(network, current_epoch, new_set)`.

        SECURITY: from the returned seq on, only `new_set` signatures under its epoch count.

        Returns:
            The journal seq of the rotation.

        Raises:
            WrongEpoch: ``new_set.epoch`` is not above the current epoch (or above 2**63-1).
            InvalidSignature, QuorumNotMet: the certificate does not verify.
        """
        with self._writing() as (conn, state):
            if not state.epoch < new_set.epoch <= MAX_INT64:
                raise WrongEpoch(f"new epoch {new_set.epoch} must exceed current {state.epoch}")
            current = store.load_validator_set(conn, state.epoch)
            assert current is not None, "state epoch without a stored validator set"
            message = validator_set_message(self._network, state.epoch, new_set)
            verify_quorum(message, signatures, current)
            journal = JournalChain(state.seq, state.head)
            store.insert_journal(conn, [journal.append(JournalKind.VALIDATOR_SET, {
                "previous_epoch": str(state.epoch), "validator_set": new_set.to_json(),
                "signatures": signatures_to_json(sorted(signatures)),
            })])
            store.insert_validator_set(conn, new_set, journal.seq)
            store.save_head(conn, journal, epoch=new_set.epoch)
        log.info("validator set rotated epoch=%d->%d seq=%d", state.epoch, new_set.epoch,
                 journal.seq)
        return journal.seq

    def redeem_htlc(self, htlc_id: bytes, preimage: bytes) -> Htlc:
        """Redeem a locked HTLC with its 32-byte preimage; see `ledger.htlcs.redeem`.

        Raises:
            BadPreimage, UnknownHtlc, HtlcAlreadySettled, HtlcExpired, ValidationError.
        """
        with self._writing() as (conn, state):
            return htlcs.redeem(conn, state, htlc_id, preimage, self._clock.now())

    def refund_htlc(self, htlc_id: bytes) -> Htlc:
        """Refund a locked HTLC whose timelock has passed; see `ledger.htlcs.refund`.

        Raises:
            UnknownHtlc, HtlcAlreadySettled, HtlcNotExpired, ValidationError, Unsupported.
        """
        with self._writing() as (conn, state):
            return htlcs.refund(conn, state, htlc_id, self._clock.now())

    # ---- reads -------------------------------------------------------------------------------

    def htlc(self, htlc_id: bytes) -> Htlc | None:
        """The HTLC with this 32-byte id, or None. Raises `ValidationError` for another length."""
        with read_transaction(self._engine) as conn:
            return htlcs.load(conn, htlc_id)

    def htlcs_by_hashlock(
        self, hashlock: bytes, after_seq: int = 0, limit: int = 100
    ) -> list[Htlc]:
        """HTLCs with this 32-byte hashlock and seq > `after_seq`, ascending by seq, at most
        `limit` (1..1000). Raises `ValidationError` for bad bounds or hashlock length."""
        _check_page(after_seq, limit)
        with read_transaction(self._engine) as conn:
            return htlcs.by_hashlock(conn, hashlock, after_seq, limit)

    def _state(self, conn: Connection) -> store.State:
        state = store.read_state(conn)
        if state is None:
            raise ConfigError("ledger has no genesis")
        return state

    def status(self) -> LedgerStatus:
        """Network, current epoch and set, journal seq and 32-byte head."""
        with read_transaction(self._engine) as conn:
            state = self._state(conn)
            vset = store.load_validator_set(conn, state.epoch)
        assert vset is not None
        return LedgerStatus(state.network, state.epoch, vset, state.seq, state.head)

    def validator_set(self) -> ValidatorSet:
        """The current validator set."""
        return self.status().validator_set

    def account(self, account: bytes) -> AccountInfo:
        """Next nonce and non-zero balances of a 32-byte account (nonce 0, none if unseen)."""
        key = account_hex(account)
        with read_transaction(self._engine) as conn:
            nonce = store.load_nonces(conn, [key]).get(key, 0)
            rows = conn.execute(select(store.BALANCES).where(store.BALANCES.c.account == key))
            balances = {r.asset: r.amount for r in rows if r.amount}
        return AccountInfo(account, nonce, balances)

    def burns(self, after_seq: int = 0, limit: int = 100) -> list[BurnRecord]:
        """Burns with journal seq > `after_seq`, oldest first, at most `limit` (1..1000)."""
        _check_page(after_seq, limit)
        with read_transaction(self._engine) as conn:
            return store.burns_page(conn, after_seq, limit)

    def burn(self, burn_id: bytes) -> BurnRecord | None:
        """The burn with this 32-byte id (sha256 of the signed bytes), or None if there is none.

        Raises:
            InvalidAddress: `burn_id` is not 32 bytes.
        """
        if not isinstance(burn_id, bytes) or len(burn_id) != 32:
            raise InvalidAddress("burn_id must be 32 bytes")
        with read_transaction(self._engine) as conn:
            return store.load_burn(conn, "0x" + burn_id.hex())

    def deposit_accounts(
        self, chain: str, after_seq: int = 0, limit: int = 100
    ) -> list[DepositRegistration]:
        """Registrations on `chain` with seq > `after_seq`, ascending by seq, at most `limit`
        (1..1000); ``created`` is False in each.

        Raises:
            ValidationError: `chain` is not CAIP-2, or the page bounds are out of range.
            UnknownBridge: no bridge is configured for `chain` (a scanner asking for it is
                misconfigured; an empty answer would hide that).
        """
        chain = parse_chain(chain)
        _check_page(after_seq, limit)
        with read_transaction(self._engine) as conn:
            if chain not in store.load_bridges(conn):
                raise UnknownBridge(f"no bridge configured for chain {chain!r}")
            return store.deposit_accounts_page(conn, chain, after_seq, limit)

    def assets(self) -> list[AssetInfo]:
        """Registered assets with supply counters, by asset id."""
        with read_transaction(self._engine) as conn:
            return list(store.load_assets(conn).values())

    def journal(self, after_seq: int = 0, limit: int = 100) -> list[JournalEntry]:
        """Journal entries with seq > `after_seq`, oldest first, at most `limit` (1..1000)."""
        _check_page(after_seq, limit)
        with read_transaction(self._engine) as conn:
            return store.journal_page(conn, after_seq, limit)

    def verify_journal(self) -> int:
        """Recompute the whole hash chain, replay it, and compare with the stored state.

        Checks: seq continuity from 1, every ``prev_hash`` and ``hash``, the head stored in
        `ledger_state`, and that replaying the payloads yields exactly the stored balances,
        nonces, supply counters, epoch, number of mints and the HTLC rows
        (`ledger.htlcs.HtlcReplay`).

        Returns:
            The number of entries verified.

        Raises:
            JournalCorrupt: the first discrepancy found.
        """
        replay = htlcs.HtlcReplay()
        seq, head = 0, ZERO_HASH
        with read_transaction(self._engine) as conn:
            while page := store.journal_page(conn, seq, MAX_PAGE):
                seq, head = verify_chain(page, seq, head)
                for entry in page:
                    replay.apply(entry)
            state = self._state(conn)
            if (state.seq, state.head) != (seq, head):
                raise JournalCorrupt("stored head differs from the recomputed chain", seq=seq)
            if state.epoch != replay.epoch:
                raise JournalCorrupt("stored epoch differs from the replayed one")
            balances = {(r.account, r.asset): r.amount
                        for r in conn.execute(select(store.BALANCES)) if r.amount}
            if balances != {k: v for k, v in replay.balances.items() if v}:
                raise JournalCorrupt("stored balances differ from the replayed ones")
            nonces = {r.account: r.nonce for r in conn.execute(select(store.ACCOUNTS)) if r.nonce}
            if nonces != replay.nonces:
                raise JournalCorrupt("stored nonces differ from the replayed ones")
            for info in store.load_assets(conn).values():
                if (info.supply, info.minted_total, info.burned_total) != (
                    replay.supply.get(info.asset), replay.minted.get(info.asset),
                    replay.burned.get(info.asset),
                ):
                    raise JournalCorrupt(f"stored counters of {info.asset} differ from replay")
            mints = conn.execute(select(func.count()).select_from(store.MINTS)).scalar_one()
            if mints != len(replay.event_ids):
                raise JournalCorrupt("stored mints differ from the replayed ones")
            htlcs.check_replayed(conn, replay)
        return seq

    def supply_report(self) -> list[SupplyReport]:
        """Per asset: supply, minted_total, burned_total, the sum of all balances and the
        amount held in locked HTLCs."""
        with read_transaction(self._engine) as conn:
            assets = store.load_assets(conn)
            totals = dict.fromkeys(assets, 0)
            for r in conn.execute(select(store.BALANCES.c.asset, store.BALANCES.c.amount)):
                totals[r.asset] += r.amount
            locked = htlcs.locked_totals(conn)
        return [SupplyReport(a, i.supply, i.minted_total, i.burned_total, totals[a],
                             locked.get(a, 0))
                for a, i in assets.items()]

    def check_invariants(self) -> list[SupplyReport]:
        """Check ``supply == minted_total - burned_total == sum of balances + locked HTLCs``
        for every asset.

        Returns:
            The supply report (all holding).

        Raises:
            InvariantViolation: listing every asset where it fails.
        """
        report = self.supply_report()
        bad = [r for r in report if not r.holds]
        if bad:
            raise InvariantViolation("; ".join(
                f"{r.asset}: supply={r.supply} minted={r.minted_total} burned={r.burned_total} "
                f"balances={r.balances_total} htlc_locked={r.htlc_locked}" for r in bad))
        return report


def _check_page(after_seq: int, limit: int) -> None:
    if after_seq < 0 or not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"need after_seq >= 0 and limit in 1..{MAX_PAGE}")
