"""What a validator agrees to sign for a UTXO-custody chain (Bitcoin): the decision, pure.

Owns: `UtxoReleaseSigner`, which checks a relayer's proposed spend (`adapters.base.ReleasePlan`)
against a burn this validator read from its own ledger connection, and signs each input.
Must not fetch, post or persist anything: the daemon gives it the burn and the plan, ships the
payload, and persists `committed` (the inputs each burn's first signed plan spent).

SECURITY, every check a reason to refuse (`SigningRefused`):
- the burn record verifies (`validators.signer.check_burn_record`: the user's signature, network,
  record == signed body, origin and destination chain) and leaves for this plan's chain;
- the unsigned transaction pays exactly that burn: one payee output to the burn's address for
  the burned amount minus a fee within the cap, every other output back to the vault, the vault
  losing exactly the burned amount (`BitcoinAdapter.check_release`);
- no double pay: all plans a validator signs for one burn spend the same inputs, so at most one
  of them can ever confirm (a fee bump keeps the inputs); a plan whose inputs were committed to
  another burn is refused; a consolidation may not touch inputs committed to any burn;
- a sweep of a mint-HTLC coin (kind ``htlc_sweep``) passes `validators.htlc_sweep.SweepCheck`
  (own node, own ledger: the minted HTLC is redeemed, the sweep pays only the vault);
- a release passes this validator's risk gate (`validators.risk_gate`), else `RiskHeld` (not a
  refusal: the plan is retried when the relayer proposes it again).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol

from adapters.base import ReleasePlan
from adapters.errors import ValidationError
from validators.htlc_sweep import SweepCheck
from validators.key_signer import KeySigner
from validators.risk_gate import RiskGate
from validators.signer import BurnLike, RefusalReason, SigningRefused, check_burn_record

SIGHASH_ALL = b"\x01"


class CustodyChain(Protocol):
    """What the signer uses of a UTXO chain adapter (`adapters.bitcoin.adapter.BitcoinAdapter`)."""

    chain: str

    def check_release(self, plan: ReleasePlan, *, dest_address: str, amount: int) -> int: ...

    def check_consolidation(self, plan: ReleasePlan) -> int: ...

    def release_sighashes(self, plan: ReleasePlan) -> list[bytes]: ...

    def members(self) -> tuple[str, ...]: ...


class UtxoReleaseSigner:
    """Signs proposed custody spends after checking them.

    Args:
        network: Ferry network name.
        keys: this validator's keys (its secp256k1 key is a vault member).
        chains: per CAIP-2 id, this validator's own adapter of a UTXO chain.
        committed: burn id (``0x`` hex) -> sorted outpoints of the first plan signed for it;
            updated in place by `sign` (the caller persists it before shipping the signature).
        sweeps: the check of ``htlc_sweep`` plans (None: such plans are refused).
        gate: the risk gate releases pass (None: no risk limits).
    """

    def __init__(self, network: str, keys: KeySigner, chains: Mapping[str, CustodyChain],
                 committed: MutableMapping[str, list[str]],
                 sweeps: SweepCheck | None = None, gate: RiskGate | None = None) -> None:
        self.network = network
        self._keys = keys
        self._chains = chains
        self.committed = committed
        self._sweeps = sweeps
        self._gate = gate

    def sign(self, plan: ReleasePlan, burn: BurnLike | None) -> dict[str, Any]:
        """Check `plan` (and, for a release, `burn`) and sign every input.

        Args:
            plan: the relayer's proposal (untrusted).
            burn: for a release, the burn as read from this validator's ledger by the burn id
                the relayer named; None when the ledger has no such burn.

        Returns:
            The inbox payload ``{"kind": "utxo_release", "chain", "txid", "burn_id",
            "validator": "<33-byte pubkey hex>", "signatures": ["<DER+01 hex>", ...]}``.

        Raises:
            SigningRefused: see the module docstring.
            RiskHeld: the risk gate holds this release back for now.
        """
        chain = self._chains.get(plan.chain)
        if chain is None:
            raise SigningRefused(RefusalReason.FOREIGN_CHAIN, f"chain {plan.chain} is not watched")
        me = self._keys.secp256k1_public.hex()
        if me not in chain.members():
            raise SigningRefused(RefusalReason.FOREIGN_CONTRACT,
                                 f"this validator's key is not a vault member of {plan.chain}")
        inputs = sorted(c.outpoint for c in plan.coins)
        taken = {o: b for b, outs in self.committed.items() for o in outs}
        burn_hex = ""
        try:
            if plan.kind == "release":
                if burn is None:
                    raise SigningRefused(RefusalReason.NOT_A_BURN, "the ledger has no such burn")
                check_burn_record(burn, self.network)
                if burn.origin_chain != plan.chain:
                    raise SigningRefused(RefusalReason.WRONG_DEST_CHAIN,
                                         f"burn leaves for {burn.origin_chain}, not {plan.chain}")
                burn_hex = "0x" + burn.burn_id.hex()
                chain.check_release(plan, dest_address=burn.dest_address, amount=burn.amount)
                prior = self.committed.get(burn_hex)
                if prior is not None and prior != inputs:
                    raise SigningRefused(
                        RefusalReason.CONFLICTING_SPEND,
                        f"burn {burn_hex} was signed spending {prior}; this plan spends {inputs}")
                clash = {taken[o] for o in inputs if o in taken} - {burn_hex}
                if clash:
                    raise SigningRefused(RefusalReason.CONFLICTING_SPEND,
                                         f"inputs already committed to burn(s) {sorted(clash)}")
            elif plan.kind == "consolidation":
                chain.check_consolidation(plan)
                if any(o in taken for o in inputs):
                    raise SigningRefused(RefusalReason.CONFLICTING_SPEND,
                                         "consolidation touches inputs committed to a burn")
            elif plan.kind == "htlc_sweep" and self._sweeps is not None:
                self._sweeps.check(plan)
            else:
                raise SigningRefused(RefusalReason.MALFORMED_TX, f"unknown plan kind {plan.kind}")
        except SigningRefused:
            raise
        except ValidationError as exc:  # ReleaseMismatch, InvalidAddress
            raise SigningRefused(RefusalReason.RELEASE_MISMATCH, str(exc)) from exc
        if burn_hex and burn is not None and self._gate is not None:
            self._gate.admit_custody(burn)
        if burn_hex:
            self.committed.setdefault(burn_hex, inputs)
        signatures = [self._keys.sign_der(h) + SIGHASH_ALL for h in chain.release_sighashes(plan)]
        return {
            "kind": "utxo_release",
            "chain": plan.chain,
            "txid": plan.txid,
            "burn_id": burn_hex or None,
            "validator": me,
            "signatures": [s.hex() for s in signatures],
        }
