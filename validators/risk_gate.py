"""The validator's risk gate: the ``[risk]`` rules (`validators.risk.decide`) applied by this
validator, on its own clock and its own persisted record, before it signs a lock attestation or
a release (EVM release signature, Bitcoin custody spend, Cosmos escrow release).

Owns: `RiskGate` (the decision and the record in `CursorState.risk_signed` /
`CursorState.risk_held`), its sign-or-hold steps the daemon calls (`RiskGate.sign_lock`,
`sign_release`, `retry_locks`, `retry_releases`), `RiskGate.admit_custody` (called by the UTXO
and escrow signers) and `RiskHeld`. Must not fetch anything but held burns from this validator's own
ledger connection, post anything, or write the state file (the daemon saves it).

Rules:
- a route (`validators.risk.route_key`) is ``<origin chain>>ferry:ledger:<asset>`` for a lock
  and ``ferry:ledger><origin chain>:<asset>`` for a release; routes without a ``[risk]`` limit
  are neither checked nor recorded;
- what passes is recorded per route as (time, amount, key) and counts toward the rolling window
  (entries older than ``window_s`` are pruned). A key already recorded passes again without
  counting twice, so re-signing (rotation re-sends, re-proposed custody plans) is free;
- what is held is kept in ``risk_held`` with the time this validator first saw it (its delay
  starts then) and retried on later passes, oldest first. It never blocks a scan cursor and is
  never dropped: only a signature (or a signing refusal of the item itself) removes it.

Operator releases: an operator release recorded on the ledger (``POST /v1/ledger/risk/release``,
behind the ledger's operator token) is read through this validator's own ledger connection (the
same one it trusts for burns) and lets that one item skip the delay and the volume limit, as at
the ledger and the relayer. It never skips a pause. SECURITY: so whoever holds the ledger's
operator token can shorten the validators' delay of a named transfer, and nobody else can.
The clock must be a wall clock (the record outlives restarts); HTLC sweeps, consolidations and
Cosmos bad-memo refunds are not releases of burns and are not gated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

import httpx

from adapters.base import Clock, LockEvent, SystemClock, asset_key
from adapters.errors import BridgeError
from validators.attestation import LEDGER_CHAIN
from validators.risk import GO, RiskDecision, RiskSection, WaitReason, decide, route_key
from validators.signer import BurnLike, LockSigner, ReleaseSigner, SigningRefused
from validators.state import CursorState, HeldItem, SignedItem

logger = logging.getLogger(__name__)

LOCK, RELEASE, CUSTODY = "lock", "release", "custody"
Deliver = Callable[[list[dict[str, Any]]], bool]  # the daemon's delivery to the relayer inbox


class RiskHeld(BridgeError):
    """The validator's risk gate held a signature back (retryable later; not a refusal).

    Leaf of `adapters.errors.BridgeError`; never crosses HTTP.
    """

    code = "risk_held"

    def __init__(self, decision: RiskDecision, key: str) -> None:
        self.decision = decision
        super().__init__(f"{key} held: {decision.reason} until {decision.until}")


def lock_route(event: LockEvent) -> str:
    return route_key(event.chain, LEDGER_CHAIN, asset_key(event.chain, event.token))


def release_route(burn: BurnLike) -> str:
    return route_key(LEDGER_CHAIN, burn.origin_chain, burn.asset)


def burn_key(burn: BurnLike) -> str:
    return "0x" + burn.burn_id.hex()


class RiskGate:
    """The record and the decision.

    Args:
        section: the ``[risk]`` config (None: no limits; nothing is held or recorded).
        state: the validator's state; `risk_signed` and `risk_held` are updated in place.
        clock: wall clock, seconds since the epoch (default: the system clock).
    """

    def __init__(self, section: RiskSection | None, state: CursorState,
                 clock: Clock | None = None,
                 released: Callable[[], Collection[str]] | None = None) -> None:
        self.section = section or RiskSection()
        self._state = state
        self._clock: Clock = clock or SystemClock()
        self._released = released  # keys the operator released, read from the ledger
        self._released_cache: tuple[float, frozenset[str]] | None = None
        self.dirty = False  # the record changed since the daemon last saved it
        self._summaries: dict[str, _WindowSummary] = {}

    def _operator_released(self, key: str) -> bool:
        """Whether the ledger lists `key` as released by the operator (read at most every 2 s;
        an unreachable ledger counts as "not released")."""
        if self._released is None:
            return False
        now = time.monotonic()
        if self._released_cache is None or now - self._released_cache[0] > 2.0:
            try:
                keys = frozenset(k.lower() for k in self._released())
            except (BridgeError, httpx.HTTPError) as exc:
                logger.warning("cannot read operator releases from the ledger: %s", exc)
                keys = frozenset()
            self._released_cache = (now, keys)
        return key.lower() in self._released_cache[1]

    def admit(self, route: str, key: str, amount: int, *, kind: str,
              payload: dict[str, str] | None = None) -> RiskDecision:
        """May `key` (of `amount` on `route`) be signed now?

        On GO the signature is recorded (unless `key` already is); a held item stays in
        ``risk_held`` until `done`. On a wait the item is added to ``risk_held`` (first sight:
        now) or its last decision updated.
        """
        if self.section.limit(route) is None:
            return GO
        now = self._clock.now()
        signed = self._prune(route, now)
        summary = self._summary(route, signed)
        if key in summary.keys:
            return GO
        held = self._state.risk_held.get(key)
        first_seen = now if held is None else held.first_seen
        limit = self.section.limit(route)
        # Under the limit only the window's sum matters: one (now, sum) entry decides the same
        # as every entry, in O(1) (a burst of n signatures stays O(n), not O(n^2)); over it,
        # the entries tell when enough ages out.
        window = ([(now, summary.used)] if limit is not None
                  and summary.used + amount <= limit.daily_limit
                  else [(i.at, i.amount) for i in signed])
        decision = decide(self.section, route, amount, first_seen, now, window)
        if not decision.go and decision.reason is not WaitReason.PAUSED \
                and self._operator_released(key):
            decision = decide(self.section, route, amount, first_seen, now, window,
                              operator_released=True)
        self.dirty = True
        if decision.go:
            signed.append(SignedItem(now, amount, key))
            summary.add(key, amount)
            return decision
        assert decision.reason is not None
        if held is None:
            self._state.risk_held[key] = HeldItem(key, kind, route, amount, now,
                                                  decision.reason.value, decision.until,
                                                  dict(payload or {}))
            logger.warning("risk hold kind=%s key=%s route=%s amount=%d reason=%s until=%s",
                           kind, key, route, amount, decision.reason, decision.until)
        else:
            held.reason, held.until = decision.reason.value, decision.until
        return decision

    def done(self, keys: Iterable[str]) -> None:
        """Forget the held items `keys` (signed and delivered, or refused for good)."""
        for key in keys:
            if self._state.risk_held.pop(key, None) is not None:
                self.dirty = True

    def held(self, kind: str) -> list[HeldItem]:
        """Held items of `kind`, oldest first."""
        return sorted((h for h in self._state.risk_held.values() if h.kind == kind),
                      key=lambda h: (h.first_seen, h.key))

    def take_dirty(self) -> bool:
        """Whether the record changed since the last call (then the daemon saves it)."""
        dirty, self.dirty = self.dirty, False
        return dirty

    def _summary(self, route: str, signed: list[SignedItem]) -> _WindowSummary:
        """The keys and amount sum of `signed` (route's window), rebuilt only when the list
        changed other than through `admit` (pruned, or loaded anew)."""
        summary = self._summaries.get(route)
        if summary is None or summary.items is not signed or summary.count != len(signed):
            summary = _WindowSummary(signed)
            self._summaries[route] = summary
        return summary

    def _prune(self, route: str, now: float) -> list[SignedItem]:
        signed = self._state.risk_signed.setdefault(route, [])
        cutoff = now - self.section.window_s
        if signed and signed[0].at <= cutoff:
            signed[:] = [i for i in signed if i.at > cutoff]
            self.dirty = True
        return signed

    # ---- the steps the signers and the daemon call ------------------------------------------

    def admit_custody(self, burn: BurnLike) -> None:
        """Gate a custody or escrow release of `burn` (its plan already checked).

        Raises:
            RiskHeld: held; the relayer proposes the plan again and it is retried then.
        """
        key = burn_key(burn)
        decision = self.admit(release_route(burn), key, burn.amount, kind=CUSTODY)
        if not decision.go:
            raise RiskHeld(decision, key)
        self.done([key])  # the relayer re-proposes until delivered; the record lets it pass

    def sign_lock(self, signer: LockSigner, event: LockEvent, *, finalized_height: int,
                  epoch: int) -> dict[str, Any] | None:
        """Check, gate and sign a lock; None when held (kept for `retry_locks`).

        Raises:
            SigningRefused: see `LockSigner.check`.
        """
        signer.check(event, finalized_height=finalized_height)
        decision = self.admit(lock_route(event), event.event_id, event.amount, kind=LOCK,
                              payload=lock_payload(event))
        if not decision.go:
            return None
        return signer.sign(event, finalized_height=finalized_height, epoch=epoch)

    def sign_release(self, signer: ReleaseSigner, burn: BurnLike) -> dict[str, Any] | None:
        """Check, gate and sign an EVM release; None when held (kept for `retry_releases`).

        Raises:
            SigningRefused: see `ReleaseSigner.check`. ChainError: ``setNonce`` unknown.
        """
        signer.check(burn)
        decision = self.admit(release_route(burn), burn_key(burn), burn.amount, kind=RELEASE)
        return signer.sign(burn) if decision.go else None

    def retry_locks(self, signer: LockSigner, epoch: int, deliver: Deliver) -> int | None:
        """Sign the held locks that may pass now (under `epoch`) and `deliver` them; forget
        them once delivered. A lock refused now (configuration changed) is dropped with an
        error log: it would be refused at first sight too.

        Returns:
            How many were delivered; None if the delivery failed (they stay held).
        """
        payloads, keys = [], []
        for item in self.held(LOCK):
            try:
                event = lock_from_payload(item.payload)
                if not self.admit(item.route, item.key, item.amount, kind=LOCK).go:
                    continue
                payloads.append(signer.sign(event, finalized_height=event.block_number,
                                            epoch=epoch))
            except (SigningRefused, KeyError, ValueError) as exc:
                logger.error("held lock refused key=%s: %s", item.key, exc)
                self.done([item.key])
                continue
            keys.append(item.key)
            logger.info("signed held lock event_id=%s epoch=%d", item.key, epoch)
        return self._deliver(deliver, payloads, keys)

    def retry_releases(self, signer: ReleaseSigner, burn_of: Callable[[bytes], BurnLike | None],
                       deliver: Deliver) -> int | None:
        """Sign the held EVM releases that may pass now, re-reading each burn from this
        validator's own ledger (`burn_of`), and `deliver` them; forget them once delivered.
        A ledger or chain failure leaves the item held for the next pass.

        Returns:
            How many were delivered; None if the delivery failed (they stay held).
        """
        payloads, keys = [], []
        for item in self.held(RELEASE):
            if not self.admit(item.route, item.key, item.amount, kind=RELEASE).go:
                continue
            try:
                burn = burn_of(bytes.fromhex(item.key[2:]))
                if burn is None:
                    logger.error("held release burn_id=%s not on the ledger; kept", item.key)
                    continue
                payload = self.sign_release(signer, burn)
            except SigningRefused as exc:
                logger.error("held release refused burn_id=%s: %s", item.key, exc)
                self.done([item.key])
                continue
            except (BridgeError, httpx.HTTPError) as exc:
                logger.warning("held release deferred burn_id=%s: %s", item.key, exc)
                continue
            if payload is not None:
                payloads.append(payload)
                keys.append(item.key)
                logger.info("signed held release burn_id=%s", item.key)
        return self._deliver(deliver, payloads, keys)

    def _deliver(self, deliver: Deliver, payloads: list[dict[str, Any]],
                 keys: list[str]) -> int | None:
        if payloads and not deliver(payloads):
            return None
        self.done(keys)
        return len(payloads)


def lock_payload(event: LockEvent) -> dict[str, str]:
    """The fields of a lock event as strings (kept in ``risk_held``)."""
    return {"chain": event.chain, "contract": event.contract, "nonce": str(event.nonce),
            "token": event.token, "sender": event.sender, "amount": str(event.amount),
            "recipient": event.recipient.hex(), "tx_hash": event.tx_hash,
            "log_index": str(event.log_index), "block_number": str(event.block_number),
            "block_hash": event.block_hash}


def lock_from_payload(p: dict[str, str]) -> LockEvent:
    """Inverse of `lock_payload`. Raises KeyError/ValueError on a damaged entry."""
    return LockEvent(chain=p["chain"], contract=p["contract"], nonce=int(p["nonce"]),
                     token=p["token"], sender=p["sender"], amount=int(p["amount"]),
                     recipient=bytes.fromhex(p["recipient"]), tx_hash=p["tx_hash"],
                     log_index=int(p["log_index"]), block_number=int(p["block_number"]),
                     block_hash=p["block_hash"])


class _WindowSummary:
    """Keys and amount sum of one route's signed window, kept in step with `RiskGate.admit`."""

    def __init__(self, items: list[SignedItem]) -> None:
        self.items, self.count = items, len(items)
        self.keys = {i.key for i in items}
        self.used = sum(i.amount for i in items)

    def add(self, key: str, amount: int) -> None:
        self.count += 1
        self.keys.add(key)
        self.used += amount
