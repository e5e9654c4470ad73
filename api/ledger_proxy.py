"""The API process's ledger routes: accounts, balances, history with journal proofs, journal
proofs and user-signed transactions, proxied to the ledger server through `LedgerClient`.

Owns: `ledger_proxy_router(ctx)`. Must not hold ledger rules or keys (transactions arrive
signed by the user and the ledger checks them) nor open the ledger database: every answer comes
from the ledger server, and the client checks each proof it relays against its root.

Routes (prefix ``/v1/ledger``; the same paths and bodies as the ledger server's):
- GET accounts/{account}: next nonce and balances (decimal strings, base units).
- GET accounts/{account}/history?cursor=&limit=: balance changes, newest first, each with its
  journal hash and inclusion proof (`api.ledger_history`); the cursor is the ledger's, opaque.
- GET journal/root and GET journal/{seq}/proof?tree_size=: the journal's RFC 6962 root and
  an entry's audit path.
- POST transactions: a signed burn, transfer or htlc_lock (Ferry tx v1, `ledger.transactions`).
Errors: a ledger refusal is re-raised by the client as the typed error of its code, so it keeps
its code and HTTP status (`api.ledger.http_status`); an unreachable ledger is 503
``rpc_unavailable``.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter

from api.ledger import AccountOut, ErrorOut, TxIn, TxOut
from api.ledger_history import (
    HistoryOut,
    JournalProofOut,
    JournalRootOut,
    Seq,
    TreeSize,
)
from api.pagination import Cursor, Limit
from ledger.client import LedgerClient
from ledger.fields import parse_account
from ledger.transactions import SignedTx


class HasLedger(Protocol):
    """What the router needs of the API context (`api.app.ApiContext`)."""

    @property
    def ledger(self) -> LedgerClient: ...


def ledger_proxy_router(ctx: HasLedger) -> APIRouter:
    """The ledger routes of the API, answering from `ctx.ledger`."""
    router = APIRouter(prefix="/v1/ledger", tags=["ledger"],
                       responses={400: {"model": ErrorOut}, 503: {"model": ErrorOut}})

    @router.get("/accounts/{account}", response_model=AccountOut)
    def get_account(account: str) -> AccountOut:
        """Next nonce and balances of an account (``0x`` + 64 hex); unseen: nonce 0, none."""
        info = ctx.ledger.account(parse_account(account))
        return AccountOut.model_validate(info.to_json())

    @router.get("/accounts/{account}/history", response_model=HistoryOut)
    def get_account_history(account: str, cursor: Cursor = None, limit: Limit = 100
                            ) -> HistoryOut:
        """Balance changes of an account, newest first, each with its journal hash and a
        proof that the entry is in the journal."""
        page = ctx.ledger.account_history(parse_account(account), cursor, limit)
        return HistoryOut.model_validate(page.to_json())

    @router.get("/journal/root", response_model=JournalRootOut)
    def get_journal_root() -> JournalRootOut:
        """The RFC 6962 root of the whole journal."""
        size, root = ctx.ledger.journal_root()
        return JournalRootOut(tree_size=size, root="0x" + root.hex())

    @router.get("/journal/{seq}/proof", response_model=JournalProofOut)
    def get_journal_proof(seq: Seq, tree_size: TreeSize = None) -> JournalProofOut:
        """Inclusion proof of journal entry `seq` (default: in the whole journal)."""
        return JournalProofOut.model_validate(ctx.ledger.journal_proof(seq, tree_size).to_json())

    @router.post("/transactions", response_model=TxOut,
                 responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}})
    def post_transaction(body: TxIn) -> TxOut:
        """Submit a user-signed burn, transfer or htlc_lock; answers its journal seq (and the
        burn or HTLC id)."""
        receipt = ctx.ledger.submit_transaction(SignedTx.from_json(body.model_dump()))
        return TxOut.model_validate(receipt.to_json())

    return router
