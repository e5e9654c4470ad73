"""HTLC-driven minting, the relayer's part: sweep redeemed mint-HTLC coins into the vault, and
burn expired minted HTLCs on the ledger.

Owns: the ``HtlcMints`` job. The rest of the path reuses the bridge: a funded intent is a lock
event (`adapters.bitcoin.intents`), attested and minted like a deposit (the ledger mints it into
an HTLC of origin ``mint``, `ledger.mint_intents`); sweep signatures arrive in the inbox as
``utxo_release`` signatures of a ``htlc_sweep`` plan; `relayer.custody.CustodyReleases` follows a
broadcast sweep until final (coin spent, its vault output added as a coin). Must not import a
chain library (the chain is a `SweepChain`), nor decide what validators sign.

One pass (`run`), per chain::

    executed htlc-marked locks --> coins of status htlc (backing the minted ledger HTLC)
    ledger HTLC redeemed       --> sweep planned, coin reserved (validators sign it, `inbox`)
    >= m signatures            --> assembled with the secret the ledger revealed, persisted,
                                   broadcast (followed by CustodyReleases)
    ledger HTLC past timelock  --> ledger refund (a burn); coin htlc_burned (the user refunds
                                   the BTC at its CLTV)
    ledger HTLC refunded       --> coin htlc_burned

Crash safety: every step is re-derived from the ledger's HTLC state and the coin and plan
tables; the plan is stored (coin reserved) before any validator signs, the signed bytes before
broadcast. The sweep fee comes from the coin and is charged to the operator's fee reserve
(`relayer.coins.CoinStore.fee_reserve`), so the supply stays backed by the full amount.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

from adapters.base import Clock, Coin, PreparedTx, ReleasePlan, SystemClock
from adapters.errors import BridgeError, RetryableChainError
from htlc.errors import HtlcAlreadySettled, HtlcNotExpired
from htlc.mint_intent import mint_htlc_id
from ledger.types import Htlc, HtlcState
from relayer.coins import (
    SIGNING,
    SWEEP_KIND,
    CoinStore,
    htlc_burned_on,
    plan_of,
    reserve_htlc_on,
    signed_on,
)
from relayer.custody import KIND as SIGNATURE_KIND
from relayer.store import Store

log = logging.getLogger(__name__)


class SweepChain(Protocol):
    """What the job asks of a Bitcoin adapter (`adapters.bitcoin.adapter.BitcoinAdapter`)."""

    chain: str

    @property
    def threshold(self) -> int: ...

    def fee_rate(self) -> int: ...

    def head(self) -> Any: ...

    def plan_sweep(self, coin: Coin, fee_rate: int) -> ReleasePlan: ...

    def assemble_sweep(self, plan: ReleasePlan, signatures: Mapping[str, list[bytes]],
                       preimage: bytes) -> PreparedTx: ...

    def broadcast(self, prepared: PreparedTx) -> str: ...


class HtlcLedger(Protocol):
    """The ledger calls used (`ledger.client.LedgerClient` or `ledger.service.Ledger`)."""

    def htlc(self, htlc_id: bytes) -> Htlc | None: ...

    def refund_htlc(self, htlc_id: bytes) -> Htlc: ...


def _call(fn: Callable[..., None], *args: Any) -> None:
    conn, rest = args[-1], args[:-1]
    fn(conn, *rest)


class HtlcMints:
    """The HTLC-mint job of the relayer.

    Args:
        store: the relayer store (same database as the custody job).
        ledger: the relayer's ledger connection.
        chains: per CAIP-2 id, the Bitcoin adapter of a chain with a vault.
        clock: the ledger's clock as the relayer reads it (when to ask for a refund; the ledger
            decides).
    """

    def __init__(self, store: Store, ledger: HtlcLedger, chains: Mapping[str, SweepChain],
                 clock: Clock | None = None) -> None:
        self.store = store
        self.coins = CoinStore(store)
        self.ledger = ledger
        self.chains = dict(chains)
        self.clock: Clock = clock or SystemClock()

    def run(self) -> int:
        """One pass over every chain; returns the number of steps taken (plans, broadcasts,
        burns). Chain or ledger errors are logged and retried next pass."""
        done = 0
        for chain in self.chains:
            try:
                done += self.run_chain(chain)
            except (BridgeError, RetryableChainError) as exc:
                log.warning("htlc mint pass failed chain=%s: %s", chain, exc)
        return done

    def run_chain(self, chain: str) -> int:
        """One pass over `chain`."""
        self.coins.sync_htlc_coins(chain)
        done = 0
        for coin, event_id in self.coins.htlc_coins(chain):
            done += self._step(chain, coin, event_id)
        return done + self._assemble(chain)

    def _step(self, chain: str, coin: Coin, event_id: str) -> int:
        htlc_id = mint_htlc_id(event_id)
        htlc = self.ledger.htlc(htlc_id)
        if htlc is None:
            log.warning("no ledger htlc for a minted intent coin chain=%s coin=%s event_id=%s",
                        chain, coin.outpoint, event_id, extra={"event_key": event_id})
            return 0
        match htlc.state:
            case HtlcState.REDEEMED:
                return self._plan_sweep(chain, coin)
            case HtlcState.REFUNDED:
                return self._burned(chain, coin)
            case HtlcState.LOCKED if self.clock.now() >= htlc.timelock:
                try:
                    self.ledger.refund_htlc(htlc_id)
                except HtlcNotExpired:
                    return 0  # the ledger's clock is behind ours: next pass
                except HtlcAlreadySettled:
                    return 0  # redeemed or refunded meanwhile: next pass sees which
                log.info("minted htlc expired and burned chain=%s htlc=0x%s amount=%d", chain,
                         htlc_id.hex(), htlc.amount)
                return self._burned(chain, coin)
            case _:
                return 0

    def _burned(self, chain: str, coin: Coin) -> int:
        now = self.clock.now()
        self.store.advance([], also=partial(_call, htlc_burned_on, chain, coin, now))
        return 1

    def _plan_sweep(self, chain: str, coin: Coin) -> int:
        a = self.chains[chain]
        plan = a.plan_sweep(coin, a.fee_rate())
        now = self.clock.now()
        self.store.advance([], also=partial(_call, reserve_htlc_on, plan, now))
        log.info("htlc sweep planned chain=%s coin=%s tx=%s fee=%d", chain, coin.outpoint,
                 plan.txid, plan.fee)
        return 1

    def _assemble(self, chain: str) -> int:
        a = self.chains[chain]
        done = 0
        for row in self.coins.plans(chain, (SIGNING,)):
            plan = plan_of(row)
            if plan.kind != SWEEP_KIND:
                continue
            atts = self.store.attestations_for(SIGNATURE_KIND, [plan.txid], 0)
            sigs = {v: [bytes.fromhex(s) for s in sig.split(",")]
                    for v, sig, mh in atts.get(plan.txid, []) if mh == plan.txid}
            if len(sigs) < a.threshold:
                continue
            htlc = self._swept_htlc(chain, plan)
            if htlc is None or htlc.preimage is None:
                log.error("sweep without a redeemed ledger htlc chain=%s tx=%s", chain, plan.txid)
                continue
            prepared = a.assemble_sweep(plan, sigs, htlc.preimage)
            now = self.clock.now()
            head = a.head().number
            self.store.advance([], also=partial(_call, signed_on, row.id, prepared.raw, head, now))
            try:
                a.broadcast(prepared)
                log.info("htlc sweep broadcast chain=%s tx=%s", chain, plan.txid)
            except (BridgeError, RetryableChainError) as exc:
                # CustodyReleases re-broadcasts stored bytes the node does not know.
                log.warning("htlc sweep broadcast failed chain=%s tx=%s: %s", chain, plan.txid,
                            exc)
            done += 1
        return done

    def _swept_htlc(self, chain: str, plan: ReleasePlan) -> Htlc | None:
        event_id = self.coins.lock_event_of(chain, plan.coins[0])
        return None if event_id is None else self.ledger.htlc(mint_htlc_id(event_id))


def intent_source(ledger: Any, chain: str) -> Callable[[int], list[tuple[int, Any]]]:
    """The `intent_source` of a relayer-side `BitcoinAdapter`: pages of the ledger's mint-intent
    registry of `chain` (``after_seq -> [(seq, MintIntent)]``)."""
    def source(after: int) -> list[tuple[int, Any]]:
        return [(r.seq, r.intent) for r in ledger.mint_intents(chain, after_seq=after, limit=1000)]
    return source
