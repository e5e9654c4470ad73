"""The attestation inbox: validators deliver signatures here; only signatures that verify, by
current members, for the current epoch, are stored.

Owns: parsing and verifying one delivery (`AttestationInbox.accept`). Must not decide quorum or
act on a transfer (the engine does). The inbox verifies what the validator claims it signed; the
engine later counts a signature only if its message hash equals the hash of the relayer's OWN
record of the event, so a validator (or a forged delivery) can never change what is minted.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from adapters.base import ChainAdapter, Clock, SystemClock, UtxoCustody
from adapters.errors import BridgeError, InvalidSignature, ValidationError
from relayer.coins import SIGNING, CoinStore, plan_of
from relayer.metrics import RelayerMetrics
from relayer.store import Store
from validators.attestation import (
    DOMAIN,
    AttestationKind,
    ValidatorSet,
    canonical,
    parse_hex,
)

log = logging.getLogger(__name__)


class TtlCache:
    """A value recomputed at most every `ttl_s` seconds (by the injected clock)."""

    def __init__(self, load: Callable[[], Any], ttl_s: float, clock: Clock) -> None:
        self._load, self._ttl, self._clock = load, ttl_s, clock
        self._at = float("-inf")
        self._value: Any = None

    def get(self) -> Any:
        now = self._clock.now()
        if now - self._at >= self._ttl:
            self._value, self._at = self._load(), now
        return self._value

    def invalidate(self) -> None:
        self._at = float("-inf")


class AttestationInbox:
    """Verify and store deliveries of the shape in the relayer's `POST /v1/attestations`.

    The current sets are cached (`TtlCache`); a delivery that names a newer epoch or set nonce
    than the cache refreshes it first, so signatures of a just-rotated set are not refused.

    Args:
        store: the relayer store.
        network: the Ferry network name attestations must carry.
        ledger_status: cached ledger status (its `validator_set` is the current set).
        adapters: chain adapters by CAIP-2 id (for release signatures).
        bridge_sets: per chain, cached (set nonce, members, threshold) of the bridge's set.
    """

    def __init__(
        self,
        store: Store,
        network: str,
        ledger_status: TtlCache,
        adapters: Mapping[str, ChainAdapter],
        bridge_sets: Mapping[str, TtlCache],
        metrics: RelayerMetrics,
        clock: Clock | None = None,
    ) -> None:
        self.store, self.network = store, network
        self.ledger_status, self.adapters, self.bridge_sets = ledger_status, adapters, bridge_sets
        self.metrics = metrics
        self.clock = clock or SystemClock()

    def accept(self, items: list[dict[str, Any]]) -> tuple[int, int, list[dict[str, Any]]]:
        """Verify each item; store the valid ones in one transaction.

        A lock attestation for which `threshold` verified signatures over the same message are
        already stored is redundant: it is neither verified nor stored (the relayer never needs
        more than a quorum), and counted as such.

        Returns:
            (number newly stored, number redundant,
             [{"index": i, "code": error code, "message": text}] rejected).
        """
        rows, rejected, redundant = [], [], 0
        self._refresh_if_behind(items)
        vset: ValidatorSet = self.ledger_status.get().validator_set
        lock_keys = [i["body"]["event_id"] for i in items if i.get("kind") == "lock"
                     and isinstance(i.get("body"), dict) and "event_id" in i["body"]]
        have = self.store.attestation_counts("lock", lock_keys, vset.epoch)
        for i, item in enumerate(items):
            try:
                kind = item.get("kind")
                if kind == AttestationKind.LOCK.value:
                    row = self._lock(item, vset, have)
                    if row is None:
                        redundant += 1
                        continue
                    rows.append(row)
                elif kind == "release":
                    rows.append(self._release(item))
                elif kind == "utxo_release":
                    rows.append(self._utxo_release(item))
                else:
                    raise ValidationError(f"unknown attestation kind {kind!r}")
                self.metrics.attestations.labels(str(kind), "accepted").inc()
            except (BridgeError, KeyError, TypeError, ValueError) as exc:
                code = exc.code if isinstance(exc, BridgeError) else "invalid_input"
                rejected.append({"index": i, "code": code, "message": str(exc)})
                self.metrics.attestations.labels(str(item.get("kind"))[:16], "rejected").inc()
        return self.store.add_attestations(rows), redundant, rejected

    def _refresh_if_behind(self, items: list[dict[str, Any]]) -> None:
        """Re-read a cached set when a delivery claims a newer epoch / set nonce than it."""
        epochs = {str(i.get("body", {}).get("epoch", "")) for i in items
                  if i.get("kind") == AttestationKind.LOCK.value and isinstance(i.get("body"), dict)}
        cached = self.ledger_status.get().validator_set.epoch
        if any(e.isdigit() and int(e) > cached for e in epochs):
            self.ledger_status.invalidate()
        for chain, cache in self.bridge_sets.items():
            nonces = {str(i.get("set_nonce", "")) for i in items
                      if i.get("kind") == "release" and i.get("chain") == chain}
            if any(n.isdigit() and int(n) > cache.get()[0] for n in nonces):
                cache.invalidate()

    def _lock(self, item: dict[str, Any], vset: ValidatorSet,
              have: dict[tuple[str, str], int]) -> dict[str, Any] | None:
        body = item["body"]
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            raise ValidationError("body must be an object of strings")
        if body.get("network") != self.network or body.get("kind") != AttestationKind.LOCK.value:
            raise InvalidSignature("attestation is for another network or kind")
        if int(body["epoch"]) != vset.epoch:
            raise InvalidSignature(f"epoch {body['epoch']} is not the current {vset.epoch}")
        validator = parse_hex(item["validator"], 32)
        if validator not in vset.ed25519_keys:
            raise InvalidSignature("validator is not in the current set")
        message = DOMAIN + canonical(body)
        signature = parse_hex(item["signature"], 64)
        digest = "0x" + hashlib.sha256(message).hexdigest()
        if have.get((body["event_id"], digest), 0) >= vset.threshold:
            return None
        try:
            VerifyKey(validator).verify(message, signature)
        except BadSignatureError as exc:
            raise InvalidSignature("lock attestation does not verify") from exc
        have[(body["event_id"], digest)] = have.get((body["event_id"], digest), 0) + 1
        return {
            "kind": "lock", "event_key": body["event_id"], "epoch": vset.epoch,
            "validator": "0x" + validator.hex(), "signature": "0x" + signature.hex(),
            "message_hash": digest,
        }

    def _release(self, item: dict[str, Any]) -> dict[str, Any]:
        chain = item["chain"]
        adapter = self.adapters.get(chain)
        if adapter is None:
            raise ValidationError(f"chain {chain!r} is not served by this relayer")
        set_nonce, members, _threshold = self.bridge_sets[chain].get()
        if int(item["set_nonce"]) != set_nonce:
            raise InvalidSignature(f"set nonce {item['set_nonce']} is not the current {set_nonce}")
        burn_id = parse_hex(item["burn_id"], 32)
        digest = adapter.release_message_hash(
            burn_id, item["token"].lower(), item["recipient"].lower(), int(item["amount"]),
            set_nonce)
        signature = parse_hex(item["signature"], 65)
        signer = adapter.recover_release_signer(digest, signature)
        if signer != item["validator"].lower() or signer not in members:
            raise InvalidSignature("release signer is not the claimed current member")
        return {
            "kind": "release", "event_key": "0x" + burn_id.hex(), "epoch": set_nonce,
            "validator": signer, "signature": "0x" + signature.hex(),
            "message_hash": "0x" + digest.hex(),
        }

    def _utxo_release(self, item: dict[str, Any]) -> dict[str, Any]:
        """Per-input signatures of a proposed custody spend, checked against the stored plan."""
        adapter: Any = self.adapters.get(item["chain"])
        if not isinstance(adapter, UtxoCustody) and not hasattr(adapter, "assemble_release"):
            raise ValidationError(f"chain {item['chain']!r} has no multisig custody here")
        row = CoinStore(self.store).plan_by_txid(str(item["txid"]))
        if row is None or row.status != SIGNING:
            raise ValidationError(f"no plan {item['txid']} is collecting signatures")
        plan = plan_of(row)
        signer = str(item["validator"]).lower().removeprefix("0x")
        signatures = [bytes.fromhex(s) for s in item["signatures"]]
        if not adapter.verify_release_signatures(plan, signer, signatures):
            raise InvalidSignature("custody signatures do not verify for this plan and member")
        return {
            "kind": "utxo_release", "event_key": plan.txid, "epoch": 0, "validator": signer,
            "signature": ",".join(s.hex() for s in signatures), "message_hash": plan.txid,
        }
