"""Ledger HTTP routes for the journal's Merkle tree and account history (`ledger.history`),
included by `api.ledger.create_ledger_app`; the response schemas are shared with the API
process's proxy (`api.ledger_proxy`).

Owns: the routes below, their schemas and the history cursor (`api.pagination`, list name
``account_history``). Must not hold ledger rules nor touch the database (`Ledger.history` does).

Routes (prefix ``/v1/ledger``):
- GET journal/root -> ``{"tree_size", "root"}``: RFC 6962 root over the journal entry hashes.
- GET journal/{seq}/proof?tree_size= -> ``{"seq", "leaf_hash", "tree_size", "root", "proof"}``:
  `leaf_hash` is the entry's hash (the leaf data; the RFC leaf hash is ``SHA-256(0x00 ||
  leaf_hash)``), `proof` the audit path (leaf level first); `tree_size` defaults to the journal
  size and must satisfy ``seq <= tree_size <= journal size`` (else 400 ``invalid_input``).
  Check with `ledger.merkle.verify_inclusion(leaf_hash, seq - 1, tree_size, proof, root)`.
- GET accounts/{account}/history?cursor=&limit= -> ``{"items": [...], "next_cursor"}``: the
  account's balance changes, newest first, each with its journal hash and an inclusion proof
  (all items of a page against the same root); 400 ``invalid_cursor`` for a cursor not issued
  here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from api.ledger import ErrorOut, LedgerDep
from api.pagination import Cursor, Limit, decode_cursor, encode_cursor
from ledger.fields import parse_account
from ledger.history import position

HISTORY_CURSOR = "account_history"
Seq = Annotated[int, Path(ge=1, le=2**63 - 1, description="Journal entry seq (1-based).")]
TreeSize = Annotated[int | None, Query(ge=1, le=2**63 - 1,
                                       description="Tree size; default the journal size.")]


class JournalRootOut(BaseModel):
    tree_size: int
    root: str


class JournalProofOut(BaseModel):
    seq: int
    leaf_hash: str
    tree_size: int
    root: str
    proof: list[str]


class InclusionProofOut(BaseModel):
    tree_size: int
    root: str
    path: list[str]


class HistoryItemOut(BaseModel):
    seq: int
    kind: str
    asset: str
    delta: str
    counterparty: str | None
    at: int | None
    journal_hash: str
    proof: InclusionProofOut


class HistoryOut(BaseModel):
    items: list[HistoryItemOut]
    next_cursor: str | None


router = APIRouter(prefix="/v1/ledger", responses={400: {"model": ErrorOut}})


@router.get("/journal/root", response_model=JournalRootOut)
def get_journal_root(ledger: LedgerDep) -> JournalRootOut:
    """The RFC 6962 Merkle root of the whole journal (leaf i = hash of entry seq i+1)."""
    size, root = ledger.history.root()
    return JournalRootOut(tree_size=size, root="0x" + root.hex())


@router.get("/journal/{seq}/proof", response_model=JournalProofOut)
def get_journal_proof(seq: Seq, ledger: LedgerDep, tree_size: TreeSize = None) -> JournalProofOut:
    """Inclusion proof of journal entry `seq` in the tree of the first `tree_size` entries."""
    return JournalProofOut.model_validate(ledger.history.journal_proof(seq, tree_size).to_json())


@router.get("/accounts/{account}/history", response_model=HistoryOut)
def get_account_history(
    account: str, ledger: LedgerDep, cursor: Cursor = None, limit: Limit = 100
) -> HistoryOut:
    """Balance changes of an account (``0x`` + 64 hex), newest first, with journal proofs."""
    before = decode_cursor(cursor, HISTORY_CURSOR)
    items, more = ledger.history.account_history(parse_account(account), before, limit)
    last = items[-1] if items else None
    next_cursor = (encode_cursor(HISTORY_CURSOR, position(last.seq, last.n))
                   if more and last is not None else None)
    return HistoryOut.model_validate(
        {"items": [i.to_json() for i in items], "next_cursor": next_cursor})
