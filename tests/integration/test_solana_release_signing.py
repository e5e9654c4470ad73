"""What a validator signs for a Solana release (`validators.escrow_signer.EscrowReleaseSigner`
over a real `SolanaAdapter` on the LiteSVM devnet server): only a message that pays exactly a
burn it read itself, at the current durable nonce value, and never a burn at a second nonce
value while the first could still pay (or paid) it."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from nacl.signing import SigningKey
from solders.hash import Hash
from solders.keypair import Keypair
from solders.system_program import AdvanceNonceAccountParams, advance_nonce_account
from solders.transaction import Transaction

from adapters.base import PreparedTx, ReleasePlan, asset_key
from adapters.solana import release
from ledger.transactions import sign_burn
from ledger.types import BurnRecord
from tests.integration import test_solana_adapter as world
from tests.integration.test_solana_adapter import MEMO, Bridge
from validators.escrow_signer import EscrowReleaseSigner
from validators.signer import RefusalReason, SigningRefused

NETWORK = "ferry-devnet"
bridge = world.bridge  # the adapter tests' escrow fixture: one more escrow, for this module


class _Member:
    """A validator's `KeySigner`, reduced to what the escrow signer uses on Solana."""

    def __init__(self, keypair: Keypair) -> None:
        self.keypair = keypair
        self.ed25519_public = bytes(keypair.pubkey())
        self.secp256k1_public = b"\x02" * 33

    def sign_attestation(self, message: bytes) -> bytes:
        return bytes(self.keypair.sign_message(message))


def _burn(bridge: Bridge, amount: int, dest: str, nonce: int = 0) -> BurnRecord:
    user = SigningKey.generate()
    chain, token = bridge.config.caip2, str(bridge.mint).lower()
    signed = sign_burn(user, NETWORK, nonce, asset_key(chain, token), amount, chain, dest)
    return BurnRecord(seq=1, burn_id=signed.tx_id, account=bytes(user.verify_key),
                 asset=asset_key(chain, token), origin_chain=chain, origin_token=token,
                 amount=amount, dest_chain=chain, dest_address=dest, tx=dict(signed.body),
                 signature=signed.signature)


def _signer(bridge: Bridge, member: int = 0,
            committed: dict[str, list[Any]] | None = None) -> EscrowReleaseSigner:
    return EscrowReleaseSigner(NETWORK, _Member(bridge.keys[member]),  # type: ignore[arg-type]
                               {bridge.config.caip2: bridge.adapter},
                               {} if committed is None else committed)


def _plan(bridge: Bridge, burn: BurnRecord, **over: Any) -> ReleasePlan:
    a = bridge.adapter
    plan = a.plan_release(burn.dest_address, burn.origin_token, burn.amount,
                          "0x" + burn.burn_id.hex())
    if not over:
        return plan
    shape = release.read_release(plan.unsigned)
    args: dict[str, Any] = {
        "fee_payer": shape.fee_payer, "nonce_account": shape.nonce_account,
        "nonce_value": Hash.from_string(shape.nonce_value), "multisig": shape.multisig,
        "mint": shape.mint, "decimals": shape.decimals, "dest_owner": shape.dest_owner,
        "amount": shape.amount, "burn_id_hex": "0x" + burn.burn_id.hex(),
        "signers": list(shape.signers)} | over
    message = release.build_release_message(**args)
    return ReleasePlan(kind="release", chain=plan.chain,
                       txid=hashlib.sha256(message).hexdigest(), unsigned=message, coins=(),
                       dest_address=burn.dest_address, amount=burn.amount,
                       payee_amount=burn.amount, fee=0, fee_rate=0, change=0)


def _refusal(signer: EscrowReleaseSigner, plan: ReleasePlan, burn: Any) -> RefusalReason:
    with pytest.raises(SigningRefused) as info:
        signer.sign(plan, burn)
    return info.value.reason


def test_member_signs_a_plan_that_pays_exactly_the_burn(bridge: Bridge) -> None:
    burn = _burn(bridge, 7_000, str(Keypair().pubkey()))
    plan = _plan(bridge, burn)
    committed: dict[str, list[Any]] = {}
    member = next(i for i, k in enumerate(bridge.keys)
                  if bytes(k.pubkey()).hex() in bridge.adapter.plan_signers(plan))
    payload = _signer(bridge, member, committed).sign(plan, burn)
    assert payload["validator"] == bytes(bridge.keys[member].pubkey()).hex()
    assert bridge.adapter.verify_release_signatures(
        plan, payload["validator"], [bytes.fromhex(s) for s in payload["signatures"]])
    assert committed == {"0x" + burn.burn_id.hex(): [bridge.adapter.current_sequence()]}


@pytest.mark.parametrize("change", ["amount", "dest_owner", "mint", "burn_id_hex"])
def test_member_refuses_a_plan_that_differs_from_the_burn(bridge: Bridge, change: str) -> None:
    burn = _burn(bridge, 7_000, str(Keypair().pubkey()))
    other = {"amount": 7_001, "dest_owner": Keypair().pubkey(),
             "mint": bridge.other_mint, "burn_id_hex": "0x" + "ab" * 32}[change]
    assert _refusal(_signer(bridge), _plan(bridge, burn, **{change: other}),
                    burn) == RefusalReason.RELEASE_MISMATCH


def test_member_refuses_no_burn_another_chain_and_a_non_member(bridge: Bridge) -> None:
    burn = _burn(bridge, 7_000, str(Keypair().pubkey()))
    plan = _plan(bridge, burn)
    assert _refusal(_signer(bridge), plan, None) == RefusalReason.NOT_A_BURN
    outsider = EscrowReleaseSigner(NETWORK, _Member(Keypair()),  # type: ignore[arg-type]
                                   {bridge.config.caip2: bridge.adapter}, {})
    assert _refusal(outsider, plan, burn) == RefusalReason.FOREIGN_CONTRACT
    foreign = ReleasePlan.from_json({**plan.to_json(), "chain": "solana:elsewhere"})
    assert _refusal(_signer(bridge), foreign, burn) == RefusalReason.FOREIGN_CHAIN


def test_member_refuses_a_nonce_value_that_is_not_the_current_one(bridge: Bridge) -> None:
    burn = _burn(bridge, 7_000, str(Keypair().pubkey()))
    stale = _plan(bridge, burn, nonce_value=Hash.new_unique())
    assert _refusal(_signer(bridge), stale, burn) == RefusalReason.CONFLICTING_SPEND


def test_a_burn_is_signed_at_a_new_nonce_value_only_once_the_old_one_was_spent_elsewhere(
        bridge: Bridge) -> None:
    a = bridge.adapter
    bridge.user.wait_finalized(bridge.user.deposit(bridge.mint, 50_000, MEMO))
    burn = _burn(bridge, 9_000, str(Keypair().pubkey()))
    committed: dict[str, list[Any]] = {}
    signers = [_signer(bridge, i, committed) for i in range(len(bridge.keys))]
    first = _plan(bridge, burn)
    signers[0].sign(first, burn)
    old = a.current_sequence()

    # The fee payer (nonce authority) spends the nonce value on a transaction of its own (a
    # durable-nonce transaction that only advances it): the first plan is dead, the burn
    # unpaid, so signing it at the new value is safe.
    cancel = Transaction.new_signed_with_payer(
        [advance_nonce_account(AdvanceNonceAccountParams(
            nonce_pubkey=bridge.nonce, authorized_pubkey=bridge.fee_payer.pubkey()))],
        bridge.fee_payer.pubkey(), [bridge.fee_payer], Hash.from_string(str(old)))
    sig = a.broadcast(PreparedTx("", bytes(cancel), 0))
    bridge.deployer.wait_finalized(sig)
    assert a.sequence_consumed(old) and a.memo_at_sequence(old) == ""
    second = _plan(bridge, burn)
    assert a.plan_sequence(second) != old
    names = set(a.plan_signers(second))
    sigs = {}
    for i, k in enumerate(bridge.keys):
        if bytes(k.pubkey()).hex() in names:
            payload = signers[i].sign(second, burn)
            sigs[payload["validator"]] = [bytes.fromhex(s) for s in payload["signatures"]]
    assert committed["0x" + burn.burn_id.hex()] == [old, a.plan_sequence(second)]
    prepared = a.assemble_release(second, sigs)
    a.broadcast(prepared)
    bridge.user.wait_finalized(prepared.tx_hash)
    assert bridge.user.token_balance(bridge.mint, burn.dest_address) == 9_000

    # The second value paid the burn: no third signature, at any later nonce value.
    third = _plan(bridge, burn)
    assert a.memo_at_sequence(a.plan_sequence(second)) == release.release_memo(
        "0x" + burn.burn_id.hex())
    assert _refusal(signers[0], third, burn) == RefusalReason.CONFLICTING_SPEND
    assert bridge.user.token_balance(bridge.mint, burn.dest_address) == 9_000
