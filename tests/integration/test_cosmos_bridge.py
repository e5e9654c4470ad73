"""Cosmos SDK on a real simd node: deposits to the escrow multisig minted on the ledger.

Each test builds its own escrow (fresh validator keys) on the session's simd node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from tests.integration.cosmos_stack import CosmosStack


@pytest.fixture
def stack(tmp_path: Path, simd: Any) -> Any:
    s = CosmosStack(tmp_path, simd)
    yield s
    s.close()


def _memo(user: SigningKey) -> str:
    return "0x" + bytes(user.verify_key).hex()


def test_deposit_with_the_account_in_the_memo_is_minted_once(stack: CosmosStack,
                                                             simd: Any) -> None:
    user = SigningKey.generate()
    wallet = simd.new_wallet()
    txhash = wallet.send(stack.escrow, 100_000_000, "stake", memo=_memo(user))
    stack.settle()
    assert stack.balance(bytes(user.verify_key)) == 100_000_000
    [row] = stack.lock_transfers()
    assert row.status == "transfer.executed" and row.src_tx_hash == txhash
    assert row.sender == wallet.address
    stack.settle()
    assert stack.balance(bytes(user.verify_key)) == 100_000_000


def test_failed_transaction_paying_the_escrow_is_never_credited(stack: CosmosStack,
                                                                simd: Any) -> None:
    user = SigningKey.generate()
    simd.new_wallet().send_failing(stack.escrow, "stake", memo=_memo(user))
    stack.settle()
    assert stack.lock_transfers() == []
    assert stack.balance(bytes(user.verify_key)) == 0


def test_look_alike_denom_and_bad_memo_are_reported_not_credited(stack: CosmosStack,
                                                                 simd: Any) -> None:
    user = SigningKey.generate()
    wallet = simd.new_wallet()
    wallet.send(stack.escrow, 5_000_000, "uatomm", memo=_memo(user))  # not "uatom"
    wallet.send(stack.escrow, 7_000_000, "stake", memo="for " + _memo(user))
    stack.settle()
    rows = {r.token: r for r in stack.lock_transfers()}
    assert rows["uatomm"].status == "transfer.held"
    assert rows["uatomm"].reason == "not credited: unknown_denom"
    assert rows["stake"].status in ("transfer.held", "transfer.refunded")  # refund: below
    assert "bad_memo" in rows["stake"].reason or rows["stake"].status == "transfer.refunded"
    assert stack.balance(bytes(user.verify_key), "stake") == 0
    assert all(a.supply == 0 for a in stack.ledger.assets())


def test_multisend_and_authz_exec_deposits_are_credited_once_each(stack: CosmosStack,
                                                                  simd: Any) -> None:
    user = SigningKey.generate()
    granter, grantee = simd.new_wallet(), simd.new_wallet()
    granter.send_multi([(stack.escrow, 3_000_000, "uatom"), (grantee.address, 1_000, "stake")],
                       memo=_memo(user))
    granter.grant_send(grantee.address)
    grantee.exec_send(granter.address, stack.escrow, 4_000_000, "uatom", memo=_memo(user))
    stack.settle()
    assert stack.balance(bytes(user.verify_key), "uatom") == 7_000_000
    rows = stack.lock_transfers()
    assert sorted(int(r.amount) for r in rows) == [3_000_000, 4_000_000]
    assert {r.status for r in rows} == {"transfer.executed"}
    assert {r.sender for r in rows} == {granter.address}


def test_burn_releases_exactly_the_burned_amount_from_the_escrow_multisig(
        stack: CosmosStack, simd: Any) -> None:
    from tests.integration.cosmos_stack import burn_to

    user = SigningKey.generate()
    wallet, payee = simd.new_wallet(), simd.new_wallet()
    wallet.send(stack.escrow, 100_000_000, "stake", memo=_memo(user))
    stack.settle()
    assert stack.balance(bytes(user.verify_key)) == 100_000_000
    before = payee.balance("stake")
    escrow_before = stack.engine.escrow.chains[stack.chain].escrow_balance("stake")
    burn_id = burn_to(stack, user, "stake", 40_000_000, payee.address)
    stack.settle(rounds=4)
    row = stack.engine.store.get(burn_id)
    assert row.status == "transfer.executed", row.reason
    assert payee.balance("stake") - before == 40_000_000
    escrow_after = stack.engine.escrow.chains[stack.chain].escrow_balance("stake")
    assert escrow_before - escrow_after == 40_000_000 + stack.cosmos.fee_amount
    assert stack.balance(bytes(user.verify_key)) == 60_000_000
    stack.settle()  # nothing is paid twice
    assert payee.balance("stake") - before == 40_000_000


def test_fewer_than_threshold_signers_cannot_release(stack: CosmosStack, simd: Any) -> None:
    from adapters.errors import QuorumNotMet
    from relayer.coins import CoinStore, plan_of
    from tests.integration.cosmos_stack import burn_to

    user = SigningKey.generate()
    simd.new_wallet().send(stack.escrow, 10_000_000, "stake", memo=_memo(user))
    stack.settle()
    stack.daemons = stack.daemons[:1]  # 1 of the 2 needed
    payee = simd.new_wallet()
    before = payee.balance("stake")
    burn_id = burn_to(stack, user, "stake", 5_000_000, payee.address)
    stack.settle(rounds=3)
    row = stack.engine.store.get(burn_id)
    assert row.status == "transfer.confirmed"
    [plan_row] = CoinStore(stack.engine.store).plans(stack.chain, ("signing",))
    plan = plan_of(plan_row)
    sigs = stack.engine.escrow._signatures(plan)
    assert len(sigs) == 1
    with pytest.raises(QuorumNotMet):
        stack.engine.escrow.chains[stack.chain].assemble_release(plan, sigs)
    assert payee.balance("stake") == before


def test_deposit_with_a_bad_memo_is_refunded_once_to_its_sender_less_the_fee(
        stack: CosmosStack, simd: Any) -> None:
    wallet = simd.new_wallet()
    wallet.send(stack.escrow, 1_000_000, "stake", memo=_memo(SigningKey.generate()))  # opens
    stack.settle()                                             # the escrow account (sequence 0)
    sent = wallet.balance("stake")
    txhash = wallet.send(stack.escrow, 7_000_000, "stake", memo="please credit me")
    after_send = wallet.balance("stake")
    stack.settle(rounds=5)
    [row] = [r for r in stack.lock_transfers() if r.src_tx_hash == txhash]
    assert row.status == "transfer.refunded", row.reason
    refunded = wallet.balance("stake") - after_send
    assert refunded == 7_000_000 - stack.cosmos.fee_amount
    assert sent - after_send > 7_000_000  # the deposit and its own fee left the wallet
    stack.settle(rounds=3)
    assert wallet.balance("stake") - after_send == refunded  # never twice
    assert all(a.supply in (0, 1_000_000) for a in stack.ledger.assets())


def test_release_whose_sequence_was_consumed_elsewhere_is_replanned_and_paid_once(
        stack: CosmosStack, simd: Any) -> None:
    """Validators sign a release at sequence s; before it is assembled, another escrow
    transaction (signed by the same members) consumes s. The relayer abandons the dead plan and
    re-plans at s+1; validators sign the burn again only because their node shows s consumed by
    a transaction that is not this burn's release."""
    from adapters.cosmos import release
    from relayer.coins import CoinStore, plan_of
    from tests.integration.cosmos_stack import burn_to

    user = SigningKey.generate()
    simd.new_wallet().send(stack.escrow, 20_000_000, "stake", memo=_memo(user))
    stack.settle()
    payee, other = simd.new_wallet(), simd.new_wallet()
    before = payee.balance("stake")
    burn_id = burn_to(stack, user, "stake", 5_000_000, payee.address)
    stack.engine.ledger_status.invalidate()
    stack.engine.tick()  # plans at the escrow's current sequence
    [first] = CoinStore(stack.engine.store).plans(stack.chain, ("signing",))
    adapter = stack.engine.escrow.chains[stack.chain]
    sequence = adapter.plan_sequence(plan_of(first))
    for d in stack.daemons:  # validators sign it at `sequence`, the relayer does not run yet
        d.run_once()
    account_number, _ = adapter.escrow_account()
    keys = [bytes.fromhex(k) for k in stack.cosmos.validator_pubkeys]
    intruder = release.build_release(
        stack.cosmos.chain_id, keys, stack.cosmos.threshold, account_number, sequence,
        other.address, "stake", 1_000, adapter._fee, "operator housekeeping")
    sigs = {k.secp256k1_public: k.sign_compact(intruder.digest()) for k in stack.keys}
    code, _, log = adapter.rpc.broadcast_tx_sync(release.assemble(
        intruder, keys, stack.cosmos.threshold, sigs))
    assert code == 0, log
    stack.settle(rounds=6)
    row = stack.engine.store.get(burn_id)
    assert row.status == "transfer.executed", row.reason
    assert payee.balance("stake") - before == 5_000_000
    statuses = sorted(p.status for p in CoinStore(stack.engine.store).plans_of(row.id))
    assert statuses == ["abandoned", "final"]
