"""The validator's custody-signing step: fetch spends the relayer proposes on UTXO chains,
check each against this validator's own ledger and chain view, sign, ship.

Owns: when proposals are fetched and which are re-signed. The decision itself is
`validators.utxo_signer.UtxoReleaseSigner` (Bitcoin) or `validators.escrow_signer.EscrowReleaseSigner`
(Cosmos SDK); delivery is the daemon's. Must not trust the
relayer: a proposal is only a suggestion, the burn is read from this validator's ledger by id.

Persistence: before a signature leaves, the inputs it commits a burn to are saved (state file,
``custody_inputs``), so a restarted validator still refuses a conflicting spend of that burn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from adapters.base import ReleasePlan
from adapters.errors import BridgeError
from validators.attestation import parse_hex
from validators.signer import BurnLike, RefusalReason, SigningRefused

logger = logging.getLogger(__name__)


class PlanSigner(Protocol):
    """`UtxoReleaseSigner` (Bitcoin) or `EscrowReleaseSigner` (Cosmos SDK)."""

    def sign(self, plan: ReleasePlan, burn: BurnLike | None) -> dict[str, Any]: ...


class CustodySigning:
    """Args:
        signers: per CAIP-2 id of a multisig-custody chain, the signer deciding its plans (its
            commitments live in the state file the `save` callable writes).
        save: persists the state file.
    """

    def __init__(self, signers: Mapping[str, PlanSigner], save: Callable[[], None]) -> None:
        self._signers = dict(signers)
        self._chains = list(signers)
        self._save = save
        self._delivered: set[str] = set()  # plan txids signed and accepted this process

    def run(self, relayer: httpx.Client, burn_of: Callable[[bytes], BurnLike | None],
            deliver: Callable[[list[dict[str, Any]]], bool]) -> tuple[bool, int]:
        """One pass: returns (everything went through, signatures delivered)."""
        ok, sent = True, 0
        for chain in self._chains:
            try:
                response = relayer.get("/v1/custody/plans", params={"chain": chain})
                response.raise_for_status()
                items = response.json()["plans"]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                logger.warning("custody plans unavailable chain=%s: %s", chain, exc)
                ok = False
                continue
            payloads = []
            for item in items:
                payload = self._sign_one(item, burn_of)
                if payload is not None:
                    payloads.append(payload)
            if not payloads:
                continue
            self._save()  # commitments first, then signatures leave
            if deliver(payloads):
                self._delivered.update(p["txid"] for p in payloads)
                sent += len(payloads)
            else:
                ok = False
        return ok, sent

    def _sign_one(self, item: Any, burn_of: Callable[[bytes], BurnLike | None]
                  ) -> dict[str, Any] | None:
        try:
            plan = ReleasePlan.from_json(item["plan"])
        except (KeyError, ValueError, TypeError) as exc:
            logger.warning("malformed custody plan from the relayer: %s", exc)
            return None
        if plan.txid in self._delivered:
            return None
        burn = None
        try:
            if plan.kind == "release":
                burn_id = item.get("burn_id")
                burn = burn_of(parse_hex(str(burn_id), 32)) if burn_id else None
            signer = self._signers.get(plan.chain)
            if signer is None:
                raise SigningRefused(RefusalReason.FOREIGN_CHAIN, f"{plan.chain} not watched")
            payload = signer.sign(plan, burn)
        except SigningRefused as exc:
            logger.warning("refused custody spend chain=%s tx=%s reason=%s: %s", plan.chain,
                           plan.txid, exc.reason, exc)
            self._delivered.add(plan.txid)  # the same bytes would be refused again
            return None
        except (BridgeError, httpx.HTTPError) as exc:
            logger.warning("custody spend deferred chain=%s tx=%s: %s", plan.chain, plan.txid,
                           exc)
            return None
        logger.info("signed custody spend chain=%s tx=%s kind=%s burn_id=%s fee=%d", plan.chain,
                    plan.txid, plan.kind, payload["burn_id"], plan.fee)
        return payload
