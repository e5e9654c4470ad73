"""Minting: the checks a lock event and its quorum certificate must pass, and the batched write
of the mints that pass.

Owns: `check_mint` (pure) and `apply_mint_batch` (inside the caller's write transaction). Must
not open transactions or take locks (`ledger.service` does), nor read the wall clock.

SECURITY: a mint is accepted only if all hold, checked in this order:
1. its event id was never minted (else `duplicate`, nothing changes; the primary key on
   ``ledger_mints.event_id`` enforces this even if the check were wrong);
2. ``epoch`` is the current epoch (`WrongEpoch`);
3. ``event.contract`` is the configured bridge of ``event.chain`` (`UnknownBridge`);
4. ``asset_key(event.chain, event.token)`` is registered (`UnknownAsset`);
5. ``1 <= amount < 2**256``, recipient is 32 bytes, field sizes fit the schema, and the asset's
   supply stays below 2**256 (`ValidationError`);
6. ``verify_quorum(lock_attestation_message(network, event, epoch), sigs, current set)``
   (`InvalidSignature`, `QuorumNotMet`): so a certificate for another network, chain,
   contract, event or epoch never counts;
7. an event whose recipient is a registered mint intent (HTLC-driven minting) passes
   `ledger.mint_intents.check_funding` and mints into an HTLC of origin ``mint`` instead of
   a balance (journal kind ``htlc_mint``; `ledger.mint_intents`);
8. the risk rules (`ledger.risk.MintGate`: route pause, rolling volume limit, large-transfer
   delay) let it through now; else it is ``deferred`` (only its first-sight row is written).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from adapters.base import asset_key
from adapters.errors import (
    BridgeError,
    InvalidAddress,
    UnknownAsset,
    ValidationError,
)
from htlc.mint_intent import MintIntent, is_htlc_sender
from ledger import mint_intents, risk, store
from ledger.errors import UnknownBridge, WrongEpoch
from ledger.fields import MAX_AMOUNT, check_amount
from ledger.journal import JournalChain, JournalKind
from ledger.models import HtlcRow
from ledger.types import (
    AssetInfo,
    MintRequest,
    MintResult,
    MintStatus,
    lock_event_to_json,
    signatures_to_json,
)
from validators.attestation import ValidatorSet, lock_attestation_message
from validators.quorum import verify_quorum
from validators.risk import RiskSection

log = logging.getLogger(__name__)
MAX_INT64 = 2**63 - 1
_MAX_TEXT = {"sender": 135, "tx_hash": 130, "block_hash": 130}


@dataclass(frozen=True, slots=True)
class CheckedMint:
    """A mint request that passed every check; `signatures` sorted by validator key."""

    request: MintRequest
    asset: str
    signatures: list[tuple[bytes, bytes]]
    intent: MintIntent | None = None  # set when the event funds a mint intent (rule 7)


def check_mint(
    request: MintRequest,
    *,
    network: str,
    validator_set: ValidatorSet,
    bridges: Mapping[str, str],
    assets: Mapping[str, AssetInfo],
) -> CheckedMint:
    """Check one mint request against the current ledger state (rules 2-6 above).

    Args:
        request: the lock event and its certificate.
        network: this ledger's network name (part of the signed message).
        validator_set: the current set (its epoch is the current epoch).
        bridges: origin chain -> configured bridge contract.
        assets: registered assets by id.

    Returns:
        The checked mint.

    Raises:
        WrongEpoch, UnknownBridge, UnknownAsset, ValidationError, InvalidAddress,
        InvalidSignature, QuorumNotMet: see the module docstring.
    """
    event = request.event
    if request.epoch != validator_set.epoch:
        raise WrongEpoch(
            f"certificate epoch {request.epoch}, current epoch {validator_set.epoch}"
        )
    bridge = bridges.get(event.chain)
    if bridge is None:
        raise UnknownBridge(f"no bridge configured for chain {event.chain!r}")
    if event.contract.lower() != bridge:
        raise UnknownBridge(f"{event.contract} is not the bridge of {event.chain} ({bridge})")
    asset = asset_key(event.chain, event.token)
    if asset not in assets:
        raise UnknownAsset(f"no asset registered for {asset}")
    check_amount(event.amount)
    if len(event.recipient) != 32:
        raise InvalidAddress("recipient must be a 32-byte Ed25519 public key")
    if not 0 <= event.nonce <= MAX_AMOUNT:
        raise ValidationError("event nonce out of range")
    if not (0 <= event.log_index <= MAX_INT64 and 0 <= event.block_number <= MAX_INT64):
        raise ValidationError("log_index/block_number out of range")
    for name, limit in _MAX_TEXT.items():
        if len(getattr(event, name)) > limit:
            raise ValidationError(f"{name} longer than {limit} chars")
    message = lock_attestation_message(network, event, request.epoch)
    verify_quorum(message, request.signatures, validator_set)
    return CheckedMint(request, asset, sorted(request.signatures))


def apply_mint_batch(
    conn: Connection, state: store.State, requests: Sequence[MintRequest], now: float = 0.0,
    risk_section: RiskSection | None = None,
) -> list[MintResult]:
    """Check and apply `requests` inside the caller's write transaction, `state` being the
    state row the caller locked (`store.lock_state`); `now` is the ledger clock (seconds),
    against which a funded mint intent's ledger timelock is checked (rule 7) and the risk
    rules of `risk_section` (None: no limits; paused routes still wait) are applied (rule 8).

    Rejected and duplicate requests write nothing, deferred ones only their first-sight row;
    the accepted ones are written together with ``executemany`` (journal entries, accounts,
    balances, mint rows, asset counters, head, risk usage).
    Within the batch a repeated event id is a duplicate of its first accepted occurrence.

    Returns:
        One result per request, in order.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the write failed (the caller rolls back everything).
    """
    network = state.network
    validator_set = store.load_validator_set(conn, state.epoch)
    assert validator_set is not None, "state epoch without a stored validator set"
    bridges = store.load_bridges(conn)
    assets = store.load_assets(conn)
    already = store.minted_seqs(conn, [r.event.event_id for r in requests])
    # Only htlc-marked events can fund an intent: an unmarked recipient is never an intent id
    # (the registries exclude each other, `ledger.mint_intents`).
    intents = mint_intents.load_many(conn, ["0x" + r.event.recipient.hex() for r in requests
                                            if is_htlc_sender(r.event.sender)])

    gate = risk.MintGate(conn, risk_section, now, [r.event.event_id for r in requests])
    results: list[MintResult | None] = [None] * len(requests)
    accepted: list[tuple[int, CheckedMint]] = []
    in_batch: dict[str, int] = {}  # event id -> index of its accepted request
    supply = {a: i.supply for a, i in assets.items()}
    for index, request in enumerate(requests):
        event_id = request.event.event_id
        if event_id in already:
            results[index] = MintResult(event_id, MintStatus.DUPLICATE, None, already[event_id])
            continue
        if event_id in in_batch:
            results[index] = MintResult(event_id, MintStatus.DUPLICATE)  # seq filled below
            continue
        try:
            checked = check_mint(request, network=network, validator_set=validator_set,
                                 bridges=bridges, assets=assets)
            if supply[checked.asset] + request.event.amount > MAX_AMOUNT:
                raise ValidationError(f"supply of {checked.asset} would exceed 2**256-1")
            intent = intents.get("0x" + request.event.recipient.hex())
            if intent is not None and intent.intent.chain != request.event.chain:
                intent = None
            mint_intents.check_funding(request.event.sender, intent, now)
            if intent is not None:
                checked = replace(checked, intent=intent.intent)
        except BridgeError as exc:
            log.info("mint rejected event_id=%s code=%s: %s", event_id, exc.code, exc)
            results[index] = MintResult(event_id, MintStatus.REJECTED, exc.code)
            continue
        held = gate.hold(event_id, request.event.chain, checked.asset, request.event.amount)
        if held is not None:
            results[index] = held
            continue
        supply[checked.asset] += request.event.amount
        in_batch[event_id] = index
        accepted.append((index, checked))

    if accepted:
        seqs = _write(conn, state, assets, accepted, now)
        for (index, checked), seq in zip(accepted, seqs, strict=True):
            results[index] = MintResult(checked.request.event.event_id, MintStatus.MINTED, None, seq)
    gate.write()
    out: list[MintResult] = []
    for result in results:
        assert result is not None
        if result.status is MintStatus.DUPLICATE and result.seq is None:
            first = results[in_batch[result.event_id]]
            assert first is not None
            result = replace(result, seq=first.seq)
        out.append(result)
    return out


def _write(
    conn: Connection,
    state: store.State,
    assets: dict[str, AssetInfo],
    accepted: list[tuple[int, CheckedMint]],
    now: float,
) -> list[int]:
    recipients = ["0x" + (c.request.event.recipient if c.intent is None
                          else c.intent.account).hex() for _, c in accepted]
    existing_accounts = store.load_nonces(conn, recipients)
    pairs = [(r, c.asset) for r, (_, c) in zip(recipients, accepted, strict=True)
             if c.intent is None]
    existing_bal = store.load_balances(conn, pairs)
    new_bal: dict[tuple[str, str], int] = {}
    chain = JournalChain(state.seq, state.head)
    journal_rows, mint_rows, htlc_rows, seqs = [], [], [], []
    counters = {a: [i.supply, i.minted_total] for a, i in assets.items()}
    for (_, checked), recipient in zip(accepted, recipients, strict=True):
        event, amount = checked.request.event, checked.request.event.amount
        fields = {
            "event_id": event.event_id, "event": lock_event_to_json(event),
            "epoch": str(checked.request.epoch), "asset": checked.asset,
            "signatures": signatures_to_json(checked.signatures),
        }
        if checked.intent is None:
            journal_rows.append(chain.append(JournalKind.MINT, fields))
            key = (recipient, checked.asset)
            if key in existing_bal:
                existing_bal[key] += amount
            else:
                new_bal[key] = new_bal.get(key, 0) + amount
        else:  # rule 7: into an HTLC of origin "mint", in no balance
            htlc = mint_intents.htlc_row(event.event_id, chain.seq + 1, checked.intent,
                                         checked.asset, amount, now)
            journal_rows.append(chain.append(JournalKind.HTLC_MINT, {
                **fields, "htlc_id": htlc["htlc_id"], "intent": checked.intent.to_json(),
                "at": str(math.floor(now))}))
            htlc_rows.append(htlc)
        seqs.append(chain.seq)
        counters[checked.asset][0] += amount
        counters[checked.asset][1] += amount
        mint_rows.append({
            "event_id": event.event_id, "seq": chain.seq, "chain": event.chain,
            "contract": event.contract.lower(), "nonce": event.nonce,
            "token": event.token.lower(), "sender": event.sender.lower(), "asset": checked.asset,
            "recipient": recipient, "amount": amount, "epoch": checked.request.epoch,
            "tx_hash": event.tx_hash.lower(), "log_index": event.log_index,
            "block_number": event.block_number, "block_hash": event.block_hash.lower(),
        })
    touched = {c.asset for _, c in accepted}
    store.insert_journal(conn, journal_rows)
    store.insert_accounts(conn, sorted(set(recipients) - set(existing_accounts)))
    store.write_balances(conn, new_bal, existing_bal)
    conn.execute(insert(store.MINTS), mint_rows)
    if htlc_rows:
        conn.execute(insert(HtlcRow.__table__), htlc_rows)  # type: ignore[attr-defined]
    store.save_asset_counters(conn, [
        replace(assets[a], supply=counters[a][0], minted_total=counters[a][1]) for a in touched
    ])
    store.save_head(conn, chain)
    return seqs
