"""The network as the relayer sees it: each configured chain's head, finalized and scanned
heights, and the validator set with each member's last attestation.

Routes::

    GET /v1/chains       per configured chain: family, head, finalized, scanned, lag_blocks
                         (head - scanned), updated_at (when the engine last recorded it)
    GET /v1/validators   epoch, threshold and members of the ledger's current set; per member
                         last_attestation_at (newest stored signature: a lock attestation by
                         its Ed25519 key or a release signature by its EVM address) and lag_s
                         (how far that is behind the newest attestation of any member)

Owns: the response schemas. Must not call a chain: heights come from ``chain_heads``
(`relayer.heads`, written by the engine each pass), the set from the cached ledger status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import func, select

from adapters.errors import RpcUnavailable
from api.deposits import FAMILIES, all_chains
from relayer.heads import chain_heads
from relayer.models import Attestation
from validators.attestation import LEDGER_CHAIN

if TYPE_CHECKING:
    from api.app import ApiContext

A = Attestation.__table__  # type: ignore[attr-defined]


class ChainOut(BaseModel):
    chain: str  # CAIP-2
    name: str
    family: str  # evm | bitcoin | cosmos | solana
    head: int | None
    finalized: int | None
    scanned: int | None
    lag_blocks: int | None
    updated_at: float | None


class ChainsOut(BaseModel):
    chains: list[ChainOut]


class MemberOut(BaseModel):
    ed25519: str
    evm_address: str
    last_attestation_at: float | None
    lag_s: float | None


class ValidatorsOut(BaseModel):
    epoch: int
    threshold: int
    members: list[MemberOut]


def network_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["network"])

    @router.get("/v1/chains", response_model=ChainsOut)
    def get_chains() -> ChainsOut:
        """Every configured chain and how far the relayer has read it."""
        heads = chain_heads(ctx.store)
        out = []
        for c in all_chains(ctx.cfg):
            h = heads.get(c.caip2)
            lag = None if h is None or h.scanned is None else max(0, h.head - h.scanned)
            out.append(ChainOut(
                chain=c.caip2, name=c.name, family=FAMILIES[type(c)].name,
                head=None if h is None else h.head, finalized=None if h is None else h.finalized,
                scanned=None if h is None else h.scanned, lag_blocks=lag,
                updated_at=None if h is None else h.updated_at))
        return ChainsOut(chains=out)

    @router.get("/v1/validators", response_model=ValidatorsOut)
    def get_validators() -> ValidatorsOut:
        """The ledger's current validator set and each member's latest attestation."""
        status = ctx.ledger_status()
        if status is None:
            raise RpcUnavailable("the ledger's status is not available", chain=LEDGER_CHAIN)
        vset = status.validator_set
        names = [n for m in vset.members for n in ("0x" + m.ed25519.hex(), m.evm_address.lower())]
        with ctx.store.engine.connect() as conn:
            last = {r.validator: r.at for r in conn.execute(
                select(A.c.validator, func.max(A.c.received_at).label("at"))
                .where(A.c.validator.in_(names)).group_by(A.c.validator))}
        members = []
        for m in vset.members:
            seen = [t for t in (last.get("0x" + m.ed25519.hex()), last.get(m.evm_address.lower()))
                    if t is not None]
            members.append((m, max(seen) if seen else None))
        newest = max((t for _, t in members if t is not None), default=None)
        return ValidatorsOut(epoch=vset.epoch, threshold=vset.threshold, members=[
            MemberOut(ed25519="0x" + m.ed25519.hex(), evm_address=m.evm_address.lower(),
                      last_attestation_at=t,
                      lag_s=None if t is None or newest is None else newest - t)
            for m, t in members])

    return router
