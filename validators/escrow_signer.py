"""What a validator agrees to sign for an escrow-multisig chain (Cosmos SDK, Solana): the decision.

Owns: `EscrowReleaseSigner`, which checks a relayer's proposed release (an amino JSON sign doc on
Cosmos, a legacy message over a durable nonce on Solana, in an `adapters.base.ReleasePlan`)
against a burn this validator read from its own ledger connection and against the escrow as
its own node shows it, then signs.

A "sequence" is what makes each escrow spend single-use: the Cosmos escrow account's sequence
(int), or the Solana durable nonce value (base58 str) the message uses as its blockhash. The
chain says which ones are current or consumed (`current_sequence`, `sequence_consumed`).
Must not post or persist anything: the daemon ships the payload and persists `committed`.

SECURITY, every check a reason to refuse (`SigningRefused`):
- the burn record verifies (`check_burn_record`) and leaves for this plan's chain;
- a refund pays back exactly a deposit this validator's node shows reported for a bad memo, to
  its sender, less the fee when paid in the same denom (`CosmosAdapter.check_refund`);
- the sign doc pays exactly that burn (one MsgSend from the escrow to the burn's address of
  exactly the burned amount of the burned denom, fee within the config, memo naming the burn:
  `CosmosAdapter.check_release`; on Solana the message rebuilt from the burn must be
  byte-identical: `SolanaAdapter.check_release`);
- the plan's sequence is the escrow's current one on this validator's node (a sequence
  already consumed can never land; a future one is refused too);
- no double pay across sequences: each burn's signed sequences are remembered; a burn is signed
  at a new sequence only if every earlier one is consumed on chain by a transaction that is not
  this burn's release;
- a release passes this validator's risk gate (`validators.risk_gate`), else `RiskHeld` (not a
  refusal: retried when the relayer proposes the plan again). Refunds are not gated.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol

from adapters.base import ReleasePlan
from adapters.errors import ValidationError
from validators.key_signer import KeySigner
from validators.risk_gate import RiskGate
from validators.signer import BurnLike, RefusalReason, SigningRefused, check_burn_record

Sequence = int | str  # a Cosmos account sequence or a Solana durable nonce value


class EscrowChain(Protocol):
    """What the signer uses of an escrow adapter (`adapters.cosmos.adapter.CosmosAdapter`,
    `adapters.solana.adapter.SolanaAdapter`). ``key_type`` names the validator key that is an
    escrow member: ``"secp256k1"`` (signs sha256 digests, compact r||s) or ``"ed25519"`` (signs
    the message bytes themselves, RFC 8032)."""

    chain: str
    key_type: str

    def check_release(self, plan: ReleasePlan, *, dest_address: str, amount: int, token: str,
                      burn_id: str) -> None: ...

    def check_refund(self, plan: ReleasePlan) -> str: ...

    def plan_sequence(self, plan: ReleasePlan) -> Sequence: ...

    def current_sequence(self) -> Sequence | None: ...

    def sequence_consumed(self, sequence: Sequence) -> bool: ...

    def memo_at_sequence(self, sequence: Sequence) -> str | None: ...

    def release_sighashes(self, plan: ReleasePlan) -> list[bytes]: ...

    def members(self) -> tuple[str, ...]: ...


class EscrowReleaseSigner:
    """Args:
        network: Ferry network name.
        keys: this validator's keys (its secp256k1 or Ed25519 key is an escrow member, per the
            chain's ``key_type``).
        chains: per CAIP-2 id, this validator's own escrow-chain adapter.
        committed: burn id (``0x`` hex) -> sequences this validator signed it at;
            updated in place (the caller persists it before shipping the signature).
        gate: the risk gate releases pass (None: no risk limits).
    """

    def __init__(self, network: str, keys: KeySigner, chains: Mapping[str, EscrowChain],
                 committed: MutableMapping[str, list[Sequence]], gate: RiskGate | None = None) -> None:
        self.network, self._keys, self._chains, self.committed = network, keys, chains, committed
        self._gate = gate

    def sign(self, plan: ReleasePlan, burn: BurnLike | None) -> dict[str, Any]:
        """Check `plan` against `burn` and the chain, then sign its sign doc.

        Returns:
            ``{"kind": "utxo_release", "chain", "txid", "burn_id", "validator": "<member key
            hex: 33-byte secp256k1 or 32-byte Ed25519>", "signatures": ["<64-byte hex>"]}``.

        Raises:
            SigningRefused: see the module docstring.
            RiskHeld: the risk gate holds this release back for now.
        """
        chain = self._chains.get(plan.chain)
        if chain is None:
            raise SigningRefused(RefusalReason.FOREIGN_CHAIN, f"chain {plan.chain} is not watched")
        ed25519 = chain.key_type == "ed25519"
        me = (self._keys.ed25519_public if ed25519 else self._keys.secp256k1_public).hex()
        if me not in chain.members():
            raise SigningRefused(RefusalReason.FOREIGN_CONTRACT,
                                 f"this validator's key is not an escrow member of {plan.chain}")
        key, memo = self._check(chain, plan, burn)
        sequence = chain.plan_sequence(plan)
        current = chain.current_sequence()
        if current is None or current != sequence:
            raise SigningRefused(RefusalReason.CONFLICTING_SPEND,
                                 f"plan at sequence {sequence}, escrow is at {current}")
        for earlier in self.committed.get(key, []):
            if earlier == sequence:
                continue
            if not chain.sequence_consumed(earlier) or chain.memo_at_sequence(earlier) == memo:
                raise SigningRefused(RefusalReason.CONFLICTING_SPEND,
                                     f"{key} was signed at sequence {earlier}, which may still "
                                     "pay (or paid) it")
        if plan.kind == "release" and burn is not None and self._gate is not None:
            self._gate.admit_custody(burn)
        if sequence not in self.committed.setdefault(key, []):
            self.committed[key].append(sequence)
        [digest] = chain.release_sighashes(plan)
        # Ed25519: the message bytes themselves (a Solana message starts with its header
        # counts, never with the ``ferry/`` domain of ledger attestations).
        signature = (self._keys.sign_attestation(digest) if ed25519
                     else self._keys.sign_compact(digest))
        return {"kind": "utxo_release", "chain": plan.chain, "txid": plan.txid,
                "burn_id": key if plan.kind == "release" else None, "validator": me,
                "signatures": [signature.hex()]}

    def _check(self, chain: EscrowChain, plan: ReleasePlan,
               burn: BurnLike | None) -> tuple[str, str]:
        """What the plan pays, checked: (commitment key, the memo the paying tx carries)."""
        try:
            if plan.kind == "refund":
                ref = chain.check_refund(plan)
                return f"refund:{ref}", f"ferry refund {ref}"
            if plan.kind != "release" or burn is None:
                raise SigningRefused(RefusalReason.NOT_A_BURN, "no such burn on the ledger")
            check_burn_record(burn, self.network)
            if burn.origin_chain != plan.chain:
                raise SigningRefused(RefusalReason.WRONG_DEST_CHAIN,
                                     f"burn leaves for {burn.origin_chain}, not {plan.chain}")
            burn_hex = "0x" + burn.burn_id.hex()
            chain.check_release(plan, dest_address=burn.dest_address, amount=burn.amount,
                                token=burn.origin_token, burn_id=burn_hex)
            return burn_hex, f"ferry release {burn_hex}"
        except SigningRefused:
            raise
        except ValidationError as exc:
            raise SigningRefused(RefusalReason.RELEASE_MISMATCH, str(exc)) from exc
