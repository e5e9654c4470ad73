"""Transfers through the API: ask how to bridge (``POST /v1/transfers``), then follow the
transfer (``GET /v1/transfers/{id}``, ``GET /v1/transfers?account=&tx=``).

Routes (amounts are decimal strings in base units; errors ``{"error": {"code", "message"}}``)::

    POST /v1/transfers        a route, an amount and a recipient -> a request id (``tr_`` +
                              32 hex) and the deposit instructions (201)
    GET  /v1/transfers/{id}   by request id, or by the transfer's event key (lock event id,
                              or a burn's ``0x`` id): lifecycle, confirmations, signatures,
                              what it waits for and when
    GET  /v1/transfers        ?account= and/or ?tx= (at least one), ?status=, cursor pages,
                              newest first

Owns: the ``transfer_requests`` table (migration 0005), linking a request to the transfer the
relayer observes, and the request/response schemas. Chain-specific instructions come from
`api.deposits`; the view (confirmations, signatures, waiting) from `api.transfer_view`. Must
not write a transfer: requests are the user's intent only; the engine alone moves transfers.

A request is linked to the first transfer (oldest first) of the same kind, source chain, asset,
recipient and amount (and, for a burn, the same ledger account) created at or after it and not
linked to another request; a burn's id is known in advance and tried first. The link is
persisted once found (unique: a transfer belongs to at most one request).
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    Column,
    Connection,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from adapters.errors import (
    UnknownAsset,
    UnknownRoute,
    UnknownTransfer,
    Unsupported,
    ValidationError,
)
from api.deposits import chain_config, deposit_instructions, ledger_burn
from api.pagination import Cursor, Limit, Page, decode_cursor, next_cursor
from api.transfer_view import (
    AWAITING_DEPOSIT,
    TransferOut,
    load_facts,
    request_view,
    transfer_view,
)
from ledger.fields import parse_account, parse_amount
from ledger.models import U256
from relayer.db import write_transaction
from relayer.machine import TransferKind, TransferStatus
from relayer.models import Transfer
from validators.attestation import LEDGER_CHAIN
from validators.risk import route_key

if TYPE_CHECKING:
    from api.app import ApiContext

AMOUNT = r"^[1-9][0-9]{0,77}$"
REQUEST_PREFIX = "tr_"
T = Transfer.__table__  # type: ignore[attr-defined]

metadata = MetaData()
requests_table = Table(
    "transfer_requests", metadata,
    Column("id", String(40), primary_key=True),  # "tr_" + 32 lowercase hex
    Column("kind", String(16), nullable=False),  # relayer.machine.TransferKind
    Column("source_chain", String(64), nullable=False),
    Column("dest_chain", String(64), nullable=False),
    Column("asset", String(140), nullable=False),  # ledger asset key
    Column("amount", U256(), nullable=False),  # base units
    Column("recipient", String(140), nullable=False),  # as the transfer will store it
    Column("sender", String(140)),
    Column("expected_event_key", String(200)),  # a burn's id, known before it is submitted
    Column("instructions", Text, nullable=False),  # JSON
    Column("created_at", Float, nullable=False),
    Column("transfer_id", Integer, ForeignKey("transfers.id"), unique=True),
    Column("linked_at", Float),
)
R = requests_table
_BY_KEY = select(T).where(T.c.event_key.in_(bindparam("keys", expanding=True)))
_BY_TRANSFER = select(R).where(R.c.transfer_id.in_(bindparam("ids", expanding=True)))


class TransferRequestIn(BaseModel):
    """Where to bridge: a lock (``source_chain`` = the asset's origin chain, ``dest_chain`` =
    ``ferry:ledger``, ``recipient`` = the 32-byte ledger account as ``0x`` hex) or a burn
    (``source_chain`` = ``ferry:ledger``, ``dest_chain`` = the origin chain, ``recipient`` =
    the payout address there, ``sender`` = the burning ledger account)."""

    model_config = ConfigDict(extra="forbid")

    source_chain: str = Field(min_length=3, max_length=64)
    dest_chain: str = Field(min_length=3, max_length=64)
    asset: str = Field(min_length=3, max_length=200, description="Ledger asset key.")
    amount: str = Field(pattern=AMOUNT, description="Base units, decimal string, > 0.")
    recipient: str = Field(min_length=1, max_length=140)
    sender: str | None = Field(default=None, min_length=1, max_length=140)


class TransferRequestOut(BaseModel):
    id: str
    status: str
    kind: str
    route: str
    source_chain: str
    dest_chain: str
    asset: str
    amount: str
    recipient: str
    sender: str | None
    created_at: float
    instructions: dict[str, Any]


def _status_filter(text: str | None) -> TransferStatus | None:
    if text is None:
        return None
    try:
        return TransferStatus(text if text.startswith("transfer.") else f"transfer.{text}")
    except ValueError as exc:
        raise ValidationError(f"unknown status {text!r} (one of "
                              f"{', '.join(s.value for s in TransferStatus)})") from exc


# ------------------------------------------------------------------------------ requests
def create_request(ctx: ApiContext, body: TransferRequestIn) -> dict[str, Any]:
    """Validate `body` against the config, build the deposit instructions and store the
    request.

    Raises:
        UnknownAsset, UnknownChain, UnknownRoute: not a configured asset or route.
        ValidationError, InvalidAddress, AmountTooSmall: bad amount, recipient or sender.
        RpcUnavailable: the ledger did not answer (a burn's nonce, a deposit registration).
    """
    cfg = ctx.cfg
    asset = next((a for a in cfg.assets if a.asset == body.asset), None)
    if asset is None:
        raise UnknownAsset(f"no asset {body.asset!r} is configured")
    amount = parse_amount(body.amount)
    if (body.source_chain, body.dest_chain) == (asset.origin_chain, LEDGER_CHAIN):
        kind = TransferKind.LOCK
        family, chain = chain_config(cfg, body.source_chain)
        account = parse_account(body.recipient, "recipient")
        recipient = "0x" + account.hex()
        sender = None if body.sender is None else family.sender(chain, body.sender)
        instructions = deposit_instructions(cfg, asset, amount, account,
                                            lambda c, a: _ledger(ctx).register_deposit_account(c, a))
        expected = None
    elif (body.source_chain, body.dest_chain) == (LEDGER_CHAIN, asset.origin_chain):
        kind = TransferKind.BURN
        family, chain = chain_config(cfg, body.dest_chain)
        recipient = family.payout(chain, body.recipient)
        if body.sender is None:
            raise ValidationError("a burn needs sender: the burning ledger account (0x + 64 hex)")
        account = parse_account(body.sender, "sender")
        sender = "0x" + account.hex()
        nonce = _ledger(ctx).account(account).nonce
        instructions = ledger_burn(cfg.network, account, nonce, asset.asset, amount,
                                   body.dest_chain, recipient)
        expected = instructions["burn_id"]
    else:
        raise UnknownRoute(f"no route {body.source_chain} -> {body.dest_chain} for {asset.asset}"
                           f" (locks: {asset.origin_chain} -> {LEDGER_CHAIN}; burns: the reverse)")
    row = {"id": REQUEST_PREFIX + secrets.token_hex(16), "kind": kind.value,
           "source_chain": body.source_chain, "dest_chain": body.dest_chain,
           "asset": asset.asset, "amount": amount, "recipient": recipient, "sender": sender,
           "expected_event_key": expected, "instructions": json.dumps(instructions),
           "created_at": ctx.clock.now()}
    with write_transaction(ctx.store.engine) as conn:
        conn.execute(insert(R).values(**row))
    return {**row, "amount": str(amount), "instructions": instructions,
            "route": route_key(body.source_chain, body.dest_chain, asset.asset),
            "status": AWAITING_DEPOSIT}


def _ledger(ctx: ApiContext) -> Any:
    if ctx.ledger is None:
        raise Unsupported("this API has no ledger client")
    return ctx.ledger


def get_request(ctx: ApiContext, request_id: str) -> Any | None:
    with ctx.store.engine.connect() as conn:
        return conn.execute(select(R).where(R.c.id == request_id)).first()


def link_request(ctx: ApiContext, req: Any) -> Any | None:
    """The transfer `req` is linked to, linking it now if a matching one was observed."""
    if req.transfer_id is not None:
        return ctx.store.get_by_id(req.transfer_id)
    linked = select(R.c.id).where(R.c.transfer_id == T.c.id).exists()  # unique index
    with ctx.store.engine.connect() as conn:
        row = None
        if req.expected_event_key is not None:
            row = conn.execute(select(T).where(and_(
                T.c.event_key == req.expected_event_key, ~linked))).first()
        if row is None:
            q = select(T).where(and_(
                T.c.kind == req.kind, T.c.source_chain == req.source_chain,
                T.c.asset == req.asset, T.c.recipient == req.recipient,
                T.c.amount == str(req.amount), T.c.created_at >= req.created_at,
                ~linked))
            if req.kind == TransferKind.BURN.value:
                q = q.where(T.c.sender == req.sender)
            row = conn.execute(q.order_by(T.c.id).limit(1)).first()
    if row is None:
        return None
    try:
        with write_transaction(ctx.store.engine) as conn:
            done = conn.execute(update(R).where(and_(R.c.id == req.id, R.c.transfer_id.is_(None)))
                                .values(transfer_id=row.id, linked_at=ctx.clock.now())).rowcount
    except IntegrityError:
        return None  # another request took this transfer meanwhile; look again next time
    if done == 0:  # linked concurrently: use what was stored
        fresh = get_request(ctx, req.id)
        return None if fresh is None or fresh.transfer_id is None \
            else ctx.store.get_by_id(fresh.transfer_id)
    return row


def requests_by_transfer(conn: Connection, ids: list[int]) -> dict[int, Any]:
    """The requests linked to transfers `ids`, by transfer id."""
    if not ids:
        return {}
    return {r.transfer_id: r for r in conn.execute(_BY_TRANSFER, {"ids": ids})}


def views(ctx: ApiContext, rows: list[Any], conn: Connection,
          request: Any | None = None) -> list[TransferOut]:
    """The views of `rows` (with `request` as the first row's request, if given), read on one
    connection."""
    facts = load_facts(ctx, rows, conn)
    links = {rows[0].id: request} if request is not None and rows \
        else requests_by_transfer(conn, [r.id for r in rows])
    return [transfer_view(r, facts, links.get(r.id)) for r in rows]


# ------------------------------------------------------------------------------ router
def transfers_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["transfers"])

    @router.post("/v1/transfers", response_model=TransferRequestOut, status_code=201)
    def post_transfer(body: TransferRequestIn) -> TransferRequestOut:
        """Deposit instructions for a route and a request id to follow it by. EVM: the bridge
        ``lock`` call (and the ERC-20 ``approve``); Bitcoin: the account's deposit address;
        Cosmos: the escrow and the memo; a burn: the unsigned ledger transaction to sign and
        submit to ``POST /v1/ledger/transactions``. Nothing moves until the user acts."""
        return TransferRequestOut.model_validate(create_request(ctx, body))

    def by_request(request_id: str) -> TransferOut:
        req = get_request(ctx, request_id)
        if req is None:
            raise UnknownTransfer(f"no transfer request {request_id}")
        row = link_request(ctx, req)
        if row is None:
            return request_view(req)
        with ctx.store.engine.connect() as conn:
            return views(ctx, [row], conn, req)[0]

    @router.get("/v1/transfers/{transfer_id:path}", response_model=TransferOut)
    async def get_transfer(transfer_id: Annotated[str, Path(min_length=1, max_length=200)]
                           ) -> TransferOut:
        """One transfer by request id (``tr_...``) or event key.

        By event key (a status page polling) it runs on the event loop: a few indexed reads,
        which never wait for a writer (SQLite WAL; PostgreSQL MVCC), with the ledger status
        refreshed off the loop first. A request id may link (a write): off the loop."""
        await ctx.refresh_ledger_status()
        if transfer_id.startswith(REQUEST_PREFIX):
            return await run_in_threadpool(by_request, transfer_id)
        with ctx.store.engine.connect() as conn:
            row = conn.execute(_BY_KEY, {"keys": list({transfer_id, transfer_id.lower()})}
                               ).first()
            if row is None:
                raise UnknownTransfer(f"no transfer {transfer_id}")
            return views(ctx, [row], conn)[0]

    @router.get("/v1/transfers", response_model=Page[TransferOut])
    def list_transfers(
        account: Annotated[str | None, Query(min_length=1, max_length=140,
                                             description="Sender or recipient.")] = None,
        tx: Annotated[str | None, Query(min_length=1, max_length=100,
                                        description="Source or destination tx.")] = None,
        status: Annotated[str | None, Query(max_length=40)] = None,
        cursor: Cursor = None, limit: Limit = 100,
    ) -> Page[TransferOut]:
        """Transfers of an account and/or a transaction, newest first."""
        if account is None and tx is None:
            raise ValidationError("give account and/or tx")
        wanted = _status_filter(status)
        after = decode_cursor(cursor, "transfers")
        q = select(T)
        if account is not None:
            names = list({account, account.lower()})
            q = q.where(or_(T.c.recipient.in_(names), T.c.sender.in_(names)))
        if tx is not None:
            hashes = list({tx, tx.lower()})
            q = q.where(or_(T.c.src_tx_hash.in_(hashes), T.c.dest_tx_hash.in_(hashes)))
        if wanted is not None:
            q = q.where(T.c.status == wanted.value)
        if after is not None:
            q = q.where(T.c.id < after)
        with ctx.store.engine.connect() as conn:
            rows = list(conn.execute(q.order_by(T.c.id.desc()).limit(limit)).all())
            items = views(ctx, rows, conn)
        return Page[TransferOut](items=items, next_cursor=next_cursor(
            "transfers", [r.id for r in rows], limit))

    return router
