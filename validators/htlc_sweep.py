"""What a validator agrees to sign to sweep a mint-HTLC coin into the vault: the decision.

Owns: `SweepCheck`, which checks a relayer's proposed ``htlc_sweep`` plan against this
validator's own Bitcoin node and its own ledger connection. Must not fetch plans, post or
persist anything (`validators.custody` and the daemon do) nor trust the relayer's plan fields.

SECURITY, every check a reason to refuse (`SigningRefused`):
- the plan spends exactly one coin that this validator's node shows unspent, paying the
  mint-HTLC script it derived itself from the ledger's intent named by ``coin.account``, with
  the value the plan claims; the transaction's only output pays the vault; the fee is capped
  (`adapters.bitcoin.adapter.BitcoinAdapter.check_sweep`, `htlc.mint.check_sweep`);
- this validator's ledger shows the HTLC minted for that coin's lock event
  (`htlc.mint_intent.mint_htlc_id`) as ``redeemed``, of origin ``mint``, with the intent's
  hashlock and the coin's amount: the user holds the wBTC, so the BTC is the vault's. A locked
  or refunded (burned) HTLC is refused: sweeping then would take BTC that backs nothing or that
  the user may still refund.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from adapters.base import ReleasePlan, event_id
from adapters.bitcoin.scripts import Vault, outpoint_nonce
from adapters.errors import ValidationError
from htlc.mint import MintHtlc
from htlc.mint_intent import mint_htlc_id
from ledger.types import Htlc, HtlcOrigin, HtlcState
from validators.signer import RefusalReason, SigningRefused


class SweepChain(Protocol):
    chain: str

    @property
    def vault(self) -> Vault: ...

    def check_sweep(self, plan: ReleasePlan) -> tuple[MintHtlc, int]: ...


class SweepCheck:
    """Args:
        chains: per CAIP-2 id, this validator's own Bitcoin adapter.
        htlc_of: reads one HTLC by its 32-byte id from this validator's ledger connection.
    """

    def __init__(self, chains: Mapping[str, SweepChain],
                 htlc_of: Callable[[bytes], Htlc | None]) -> None:
        self._chains = chains
        self._htlc_of = htlc_of

    def check(self, plan: ReleasePlan) -> int:
        """Check a proposed sweep (module docstring); returns its fee in sats.

        Raises:
            SigningRefused: any check fails.
            BridgeError: the node or the ledger could not be read (retry later).
        """
        chain = self._chains.get(plan.chain)
        if chain is None:
            raise SigningRefused(RefusalReason.FOREIGN_CHAIN, f"{plan.chain} not watched")
        try:
            htlc_script, fee = chain.check_sweep(plan)
        except ValidationError as exc:  # ReleaseMismatch
            raise SigningRefused(RefusalReason.RELEASE_MISMATCH, str(exc)) from exc
        coin = plan.coins[0]
        vault_address = chain.vault.address
        eid = event_id(plan.chain, vault_address, outpoint_nonce(coin.txid, coin.vout))
        htlc = self._htlc_of(mint_htlc_id(eid))
        if htlc is None or htlc.origin is not HtlcOrigin.MINT:
            raise SigningRefused(RefusalReason.HTLC_NOT_REDEEMED,
                                 f"the ledger has no minted htlc for {coin.outpoint}")
        if htlc.hashlock != htlc_script.intent.hashlock or htlc.amount != coin.amount:
            raise SigningRefused(RefusalReason.RELEASE_MISMATCH,
                                 "the minted htlc's hashlock or amount is not the coin's")
        if htlc.state is not HtlcState.REDEEMED:
            raise SigningRefused(RefusalReason.HTLC_NOT_REDEEMED,
                                 f"the minted htlc of {coin.outpoint} is {htlc.state.value}")
        return fee
