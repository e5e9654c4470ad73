"""The relayer's HTTP surface for validators: the attestation inbox they deliver to, the custody
spends waiting for their signatures and the coins backing the supply. Thin: parsing
and shaping only; the work is in `relayer.inbox` and `relayer.store`. Transfer lookups are
`api.transfers`; the whole app is assembled by `api.app.create_api_app`.
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


def relayer_router(store: Store, inbox: AttestationInbox) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/attestations", response_model=DeliveryResult)
    def deliver(body: AttestationDelivery) -> DeliveryResult:
        if len(body.attestations) > 10_000:
            raise HTTPException(413, "at most 10000 attestations per delivery")
        accepted, redundant, rejected = inbox.accept(body.attestations)
        return DeliveryResult(accepted=accepted, redundant=redundant, rejected=rejected)

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

    return router  # /healthz, /readyz, /metrics: api.observability (create_api_app)


def create_relayer_app(store: Store, inbox: AttestationInbox, swaps: Any = None,
                       cfg: Any = None, ledger: Any = None) -> FastAPI:
    """The API app (`api.app.create_api_app`) over what a relayer has, without rate limits (in-
    process stacks drive validators through it). Kept for callers that predate `ApiContext`.

    Args:
        swaps: a `relayer.cli.swaps.SwapRuntime`, or None (no swap routes).
        cfg: the `FerryConfig` (default: an empty one: no chains, so POST /v1/transfers
            refuses every route and confirmations show no need).
        ledger: a ledger client; None leaves out the routes that need one.
    """
    from api.app import ApiContext, create_api_app
    from relayer.config import FerryConfig

    ctx = ApiContext(cfg=cfg if cfg is not None else FerryConfig(), store=store, ledger=ledger,
                     inbox=inbox, swaps=swaps, clock=store.clock)
    return create_api_app(ctx, rate_limits=False)
