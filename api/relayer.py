"""The relayer's HTTP surface: the attestation inbox validators deliver to, transfer lookups,
and health. Thin: parsing and shaping only; the work is in `relayer.inbox` and `relayer.store`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict

from relayer.coins import BACKING, SIGNING, CoinStore
from relayer.inbox import AttestationInbox
from relayer.store import Store


class AttestationDelivery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attestations: list[dict[str, Any]]


class DeliveryResult(BaseModel):
    accepted: int  # newly stored
    redundant: int  # a quorum over the same message was already stored: not needed
    rejected: list[dict[str, Any]]


class TransferView(BaseModel):
    id: int
    kind: str
    event_key: str
    status: str
    reason: str
    source_chain: str
    dest_chain: str
    asset: str
    amount: str
    sender: str
    recipient: str
    src_tx_hash: str
    dest_tx_hash: str | None
    ledger_seq: int | None
    history: list[dict[str, Any]]


def _view(store: Store, row: Any) -> TransferView:
    history = [{"from": h.from_status, "to": h.to_status, "reason": h.reason, "at": h.at}
               for h in store.history(row.id)]
    return TransferView(
        id=row.id, kind=row.kind, event_key=row.event_key, status=row.status, reason=row.reason,
        source_chain=row.source_chain, dest_chain=row.dest_chain, asset=row.asset,
        amount=row.amount, sender=row.sender, recipient=row.recipient,
        src_tx_hash=row.src_tx_hash, dest_tx_hash=row.dest_tx_hash, ledger_seq=row.ledger_seq,
        history=history)


def relayer_router(store: Store, inbox: AttestationInbox) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/attestations", response_model=DeliveryResult)
    def deliver(body: AttestationDelivery) -> DeliveryResult:
        if len(body.attestations) > 10_000:
            raise HTTPException(413, "at most 10000 attestations per delivery")
        accepted, redundant, rejected = inbox.accept(body.attestations)
        return DeliveryResult(accepted=accepted, redundant=redundant, rejected=rejected)

    @router.get("/v1/transfers/{event_key:path}", response_model=TransferView)
    def transfer(event_key: str) -> TransferView:
        row = store.get(event_key)
        if row is None:
            raise HTTPException(404, "no such transfer")
        return _view(store, row)

    @router.get("/v1/transfers", response_model=list[TransferView])
    def by_tx(tx: str = Query(..., min_length=64, max_length=66)) -> list[TransferView]:
        return [_view(store, r) for r in store.by_source_tx(tx.lower())]

    @router.get("/v1/custody/plans")
    def custody_plans(chain: str = Query(..., min_length=3, max_length=64)) -> dict[str, Any]:
        """Spends of a UTXO-custody chain waiting for validator signatures. Validators check
        each against the burn they read from their own ledger; nothing here is trusted."""
        coins = CoinStore(store)
        out = []
        for row in coins.plans(chain, (SIGNING,)):
            burn_id = None
            if row.transfer_id is not None:
                t = store.get_by_id(row.transfer_id)
                burn_id = None if t is None else t.event_key
            out.append({"burn_id": burn_id, "plan": json.loads(row.plan)})
        return {"plans": out}

    @router.get("/v1/custody/coins")
    def custody_coins(chain: str = Query(..., min_length=3, max_length=64)) -> dict[str, Any]:
        """The coins the relayer believes back the wrapped supply (vault coins unspent or
        reserved for a spend in flight, and funded mint-HTLC coins whose ledger HTLC was not
        burned) and the pending releases, for anyone to check against their own node."""
        coins = CoinStore(store)
        return {"chain": chain, "pending_release": str(coins.pending_releases(chain)),
                "fee_reserve": str(coins.fee_reserve(chain)),
                "coins": [{"txid": c.txid, "vout": c.vout, "amount": str(c.amount),
                           "account": None if c.account is None else "0x" + c.account.hex()}
                          for c in coins.coins(chain, BACKING)]}

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return router


def create_relayer_app(store: Store, inbox: AttestationInbox, swaps: Any = None) -> FastAPI:
    """The relayer's app; with `swaps` (a `relayer.cli.swaps.SwapRuntime`), the swap routes
    (`api.swaps`) too. Errors are ``{"error": {"code", "message"}}`` bodies."""
    from api.ledger import install_error_handlers

    app = FastAPI(title="Ferry relayer", version="1")
    app.include_router(relayer_router(store, inbox))
    if swaps is not None:
        from api.swaps import swaps_router

        app.include_router(swaps_router(swaps.engine, swaps.section))
    install_error_handlers(app)
    return app
