"""HTLC mint intents on Bitcoin: which scripts are funded intents, whether a funding output may
be credited, and the vault's sweep of one.

Owns: `IntentRegistry` (mint-HTLC scripts of the ledger's registered intents, derived here
from the terms, never taken from anyone) and `credit_reason` (the safety-margin rule of a
funded intent). Must not import the ledger or the relayer: intents arrive through the `source`
callable, the ledger's clock through a `Clock`.

SECURITY (the margin rule): a funding output is credited (attested, minted) only if the
intent's ledger timelock ends at least the safety margin before its BTC expiry, by the
scanner's own view of both clocks: ``htlc.timelock.check_timelocks`` with the BTC leg as the
initiator (expiry height vs this node's head, `block_time_s` per block, skewed against us)
and the ledger leg as the participant (ledger timelock vs the ledger clock). Otherwise the
user could redeem the minted wBTC late and still refund the BTC before the vault swept it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from adapters.bitcoin.scripts import Vault
from adapters.errors import ValidationError
from htlc.errors import TimelockTooShort
from htlc.mint import MintHtlc
from htlc.mint_intent import MintIntent
from htlc.timelock import BlockHeight, ChainTiming, LegTimelock, UnixTime, check_timelocks

IntentSource = Callable[[int], list[tuple[int, MintIntent]]]
LEDGER_TIMING = ChainTiming(block_time_s=1, confirmation_depth=1, kind="time")
TIMELOCK_MARGIN = "timelock_margin"  # `LockEvent.uncredited` of a refused funding output


class IntentRegistry:
    """Mint-HTLC scripts of registered intents of one chain, by scriptPubKey and intent id.
    Thread-safe.

    Args:
        vault: the vault the scripts pay (their multisig branch).
        chain: CAIP-2 id; intents of other chains are ignored.
        source: ``after_seq -> [(seq, intent)]`` pages of the ledger's registry, or None.
    """

    def __init__(self, vault: Vault, chain: str, source: IntentSource | None = None) -> None:
        self.vault, self.chain = vault, chain
        self._source = source
        self._lock = threading.Lock()
        self._by_spk: dict[bytes, MintHtlc] = {}
        self._by_id: dict[bytes, MintHtlc] = {}
        self._scripts: set[bytes] = set()
        self.seq = 0

    def add(self, intents: Iterable[MintIntent]) -> int:
        """Derive and remember the scripts of `intents`; returns how many were new. An intent
        whose refund key is not on the curve is skipped (its script cannot be built)."""
        new = 0
        for intent in intents:
            if intent.chain != self.chain:
                continue
            try:
                htlc = MintHtlc(intent, self.vault)
            except ValidationError:
                continue
            with self._lock:
                if htlc.script_pubkey not in self._by_spk:
                    self._by_spk[htlc.script_pubkey] = htlc
                    self._by_id[intent.intent_id] = htlc
                    self._scripts.add(htlc.witness_script)
                    new += 1
        return new

    def refresh(self) -> int:
        """Pull registrations after `seq` from the source; returns how many were new."""
        if self._source is None:
            return 0
        new = 0
        while page := self._source(self.seq):
            new += self.add(intent for _, intent in page)
            self.seq = max(seq for seq, _ in page)
        return new

    def htlc_of_script(self, script_pubkey: bytes) -> MintHtlc | None:
        return self._by_spk.get(script_pubkey)

    def htlc_of(self, intent_id: bytes | None) -> MintHtlc | None:
        """The script of intent `intent_id`, refreshing once from the source if unknown."""
        if intent_id is None:
            return None
        found = self._by_id.get(intent_id)
        if found is None:
            self.refresh()
            found = self._by_id.get(intent_id)
        return found

    def is_intent_script(self, witness_script: bytes) -> bool:
        return witness_script in self._scripts

    def __len__(self) -> int:
        return len(self._by_spk)


def credit_reason(intent: MintIntent, *, head: int, ledger_now: float, timing: ChainTiming,
                  extra_s: int) -> str | None:
    """None if a funding output of `intent` may be credited now, else `TIMELOCK_MARGIN`
    (rule in the module docstring).

    Args:
        head: this node's best height.
        ledger_now: the ledger clock (seconds) as this scanner reads it.
        timing: the Bitcoin chain's timing (block time, confirmation depth).
        extra_s: slack seconds added to the margin (`htlc.timelock.safety_margin_s`).
    """
    try:
        check_timelocks(
            LegTimelock(BlockHeight(intent.btc_expiry), BlockHeight(head), timing),
            LegTimelock(UnixTime(intent.ledger_timelock), UnixTime(int(ledger_now)),
                        LEDGER_TIMING),
            extra_s=extra_s)
    except TimelockTooShort:
        return TIMELOCK_MARGIN
    return None
