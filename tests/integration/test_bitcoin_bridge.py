"""Bitcoin on a real btcd node: deposits minted as wBTC, multisig releases back to Bitcoin.

Every test builds its own vault (fresh validator keys) on the session's btcd node, so tests do
not see each other's coins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bitcoin.core import CTransaction
from nacl.signing import SigningKey

from adapters.bitcoin.scripts import script_pubkey_from_address
from adapters.errors import QuorumNotMet
from relayer.coins import CoinStore, plan_of
from tests.integration.btc_stack import BtcStack

PAYEE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"  # BIP-173's P2WPKH program on regtest


@pytest.fixture
def stack(tmp_path: Path, btcd: Any) -> Any:
    s = BtcStack(tmp_path, btcd)
    yield s
    s.close()


def _received(btcd: Any, txid: str, address: str) -> int:
    raw = btcd.rpc.raw_transaction(txid)
    assert raw is not None
    spk = script_pubkey_from_address(address, "regtest")
    return sum(o.nValue for o in CTransaction.deserialize(raw).vout if bytes(o.scriptPubKey) == spk)


def _mint(stack: BtcStack, user: SigningKey, sats: int) -> str:
    address = stack.deposit_address(bytes(user.verify_key))
    txid = stack.pay(address, sats)
    stack.settle()
    return txid


def test_deposit_to_the_account_address_is_minted_once_at_depth(stack: BtcStack) -> None:
    user = SigningKey.generate()
    address = stack.deposit_address(bytes(user.verify_key))
    txid = stack.pay(address, 75_000_000)
    stack.mine(stack.depth - 1)  # one confirmation short
    stack.tick()
    stack.run_validators()
    stack.tick()
    assert stack.balance(bytes(user.verify_key)) == 0
    [row] = stack.lock_transfers()
    assert row.src_tx_hash == txid and row.status == "transfer.observed"
    stack.settle()
    assert stack.balance(bytes(user.verify_key)) == 75_000_000
    [row] = stack.lock_transfers()
    assert row.status == "transfer.executed"
    stack.settle()  # nothing more happens
    assert stack.balance(bytes(user.verify_key)) == 75_000_000


def test_burn_releases_to_the_bitcoin_address_minus_the_fee_and_change_returns_to_vault(
        stack: BtcStack, btcd: Any) -> None:
    user = SigningKey.generate()
    _mint(stack, user, 75_000_000)
    burn_id = stack.burn(user, 25_000_000, PAYEE)
    stack.settle()
    row = stack.transfer(burn_id)
    assert row.status == "transfer.executed", row.reason
    received = _received(btcd, row.dest_tx_hash, PAYEE)
    [plan_row] = [p for p in CoinStore(stack.engine.store).plans_of(row.id)
                  if p.status == "final"]
    plan = plan_of(plan_row)
    assert received == 25_000_000 - plan.fee and 0 < plan.fee < 100_000
    raw = btcd.rpc.raw_transaction(row.dest_tx_hash)
    outs = CTransaction.deserialize(raw).vout
    assert bytes(outs[1].scriptPubKey) == stack.btc.vault.script_pubkey
    assert outs[1].nValue == 50_000_000
    coins = CoinStore(stack.engine.store)
    assert coins.holdings(stack.chain) == 50_000_000  # supply 0.5 BTC is fully backed
    assert stack.ledger.assets()[0].supply == 50_000_000


def test_reorg_of_the_deposit_block_never_credits_while_orphaned_and_credits_once(
        stack: BtcStack, btcd: Any) -> None:
    user = SigningKey.generate()
    address = stack.deposit_address(bytes(user.verify_key))
    txid = stack.pay(address, 10_000_000)
    [deposit_block] = stack.mine(1)
    stack.tick()
    assert stack.lock_transfers()[0].status == "transfer.observed"
    btcd.rpc.invalidate_block(deposit_block)
    for _ in range(3):  # orphaned: the tip is below the deposit, nothing may be credited
        stack.tick()
        stack.run_validators()
        stack.tick()
    assert stack.balance(bytes(user.verify_key)) == 0
    assert stack.lock_transfers()[0].status == "transfer.dropped"
    btcd.rpc.reconsider_block(deposit_block)
    stack.settle()
    assert stack.balance(bytes(user.verify_key)) == 10_000_000
    [row] = stack.lock_transfers()
    assert row.status == "transfer.executed" and row.src_tx_hash == txid


def test_payment_to_the_bare_vault_address_and_dust_are_reported_not_credited(
        stack: BtcStack) -> None:
    user = SigningKey.generate()
    stack.pay(stack.btc.vault.address, 5_000_000)
    dust_address = stack.deposit_address(bytes(user.verify_key))
    stack.pay(dust_address, 9_999)
    stack.settle()
    rows = stack.lock_transfers()
    assert {r.status for r in rows} == {"transfer.held"}
    assert sorted(r.reason for r in rows) == ["not credited: dust",
                                              "not credited: no_recipient_commitment"]
    assert stack.ledger.assets()[0].supply == 0


def test_replaced_deposit_is_credited_only_as_the_replacement(stack: BtcStack, btcd: Any) -> None:
    user = SigningKey.generate()
    address = stack.deposit_address(bytes(user.verify_key))
    spk = script_pubkey_from_address(address, "regtest")
    first = btcd.faucet.pay(spk, 30_000_000, fee_rate_sat_vb=2)
    second = btcd.faucet.replace(first, spk, 20_000_000, fee_rate_sat_vb=20)
    assert first != second
    stack.settle()
    [row] = stack.lock_transfers()
    assert row.src_tx_hash == second
    assert stack.balance(bytes(user.verify_key)) == 20_000_000


def test_fewer_than_threshold_signers_cannot_release(tmp_path: Path, btcd: Any) -> None:
    s = BtcStack(tmp_path, btcd, signers=5)
    try:
        user = SigningKey.generate()
        _mint(s, user, 20_000_000)
        s.daemons = s.daemons[:2]  # only 2 of the 3 needed sign from now on
        burn_id = s.burn(user, 10_000_000, PAYEE)
        s.settle()
        row = s.transfer(burn_id)
        assert row.status == "transfer.confirmed"
        [plan_row] = CoinStore(s.engine.store).plans_of(row.id)
        plan = plan_of(plan_row)
        sigs = s.engine.custody.signatures(plan)
        assert len(sigs) == 2
        adapter = s.engine.custody.chains[s.chain]
        with pytest.raises(QuorumNotMet):
            adapter.assemble_release(plan, sigs)
        # Even forced onto the network, 2 signatures do not satisfy the 3-of-5 script.
        assert btcd.rpc.mempool_txids().isdisjoint({plan.txid})
    finally:
        s.close()


def test_validator_refuses_a_release_whose_output_was_changed(stack: BtcStack) -> None:
    from validators.signer import RefusalReason, SigningRefused
    from validators.utxo_signer import UtxoReleaseSigner

    user = SigningKey.generate()
    _mint(stack, user, 20_000_000)
    burn_id = stack.burn(user, 10_000_000, PAYEE)
    stack.tick()  # the relayer plans the spend
    [plan_row] = CoinStore(stack.engine.store).plans(stack.chain, ("signing",))
    honest = plan_of(plan_row)
    thief = "bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq3xueyj"
    adapter = stack.engine.custody.chains[stack.chain]
    forged = adapter.plan_release(list(honest.coins), thief, 10_000_000, honest.fee_rate)
    burn = stack.ledger_client().burn(bytes.fromhex(burn_id[2:]))
    signer = UtxoReleaseSigner("ferry-test", stack.keys[0], {stack.chain: adapter}, {})
    with pytest.raises(SigningRefused) as refused:
        signer.sign(forged, burn)
    assert refused.value.reason is RefusalReason.RELEASE_MISMATCH
    # A plan that pays the right address but gives up another amount than burned is refused.
    short = adapter.plan_release(list(honest.coins), PAYEE, 9_000_000, honest.fee_rate)
    with pytest.raises(SigningRefused) as refused:
        signer.sign(short, burn)
    assert refused.value.reason is RefusalReason.RELEASE_MISMATCH
    # The honest plan is signed; a validator that already committed this burn to other inputs
    # refuses it (two spends of one burn over different coins could both confirm).
    assert signer.sign(honest, burn)["txid"] == honest.txid
    committed = {burn_id: ["ff" * 32 + ":0"]}
    wary = UtxoReleaseSigner("ferry-test", stack.keys[1], {stack.chain: adapter}, committed)
    with pytest.raises(SigningRefused) as refused:
        wary.sign(honest, burn)
    assert refused.value.reason is RefusalReason.CONFLICTING_SPEND


def test_relayer_killed_right_after_broadcast_pays_once_after_restart(
        stack: BtcStack, btcd: Any) -> None:
    user = SigningKey.generate()
    _mint(stack, user, 30_000_000)
    burn_id = stack.burn(user, 12_000_000, PAYEE)
    stack.tick()
    stack.run_validators()
    stack.tick()  # assembles, stores the signed bytes, broadcasts
    row = stack.transfer(burn_id)
    assert row.status == "transfer.submitted"
    assert row.dest_tx_hash in btcd.rpc.mempool_txids()
    stack.start_relayer()  # a new process over the same database ("SIGKILL" in-process)
    stack.settle()
    row = stack.transfer(burn_id)
    assert row.status == "transfer.executed"
    assert _received(btcd, row.dest_tx_hash, PAYEE) == 12_000_000 - plan_of(
        CoinStore(stack.engine.store).plan_by_txid(row.dest_tx_hash)).fee
    plans = CoinStore(stack.engine.store).plans_of(row.id)
    assert [p.status for p in plans] == ["final"]


def test_release_below_the_node_min_relay_fee_is_bumped_by_rbf_until_accepted(
        tmp_path: Path) -> None:
    """A node whose min relay fee (10 sat/vB) is above the configured rate (2 sat/vB): the
    first release is refused, the relayer re-plans the same inputs at a higher fee, validators
    sign the replacement (same inputs, so only one version can ever confirm), and it lands."""
    import secrets

    from adapters.bitcoin.devnet import BtcdNode, Faucet, address_p2wpkh
    from adapters.bitcoin.keys import public_key
    from tests.integration.conftest import BtcdDevnet

    secret = secrets.token_bytes(32)
    node = BtcdNode(tmp_path / "btcd-fees", min_relay_fee_btc_kvb="0.0001",
                    mining_address=address_p2wpkh(public_key(secret), "regtest"))
    node.start()
    try:
        node.wait_ready(timeout_s=30)
        rpc = node.rpc()
        faucet = Faucet(rpc, secret)
        faucet.mature()
        (tmp_path / "stack").mkdir()
        s = BtcStack(tmp_path / "stack", BtcdDevnet(node, rpc, faucet), fee_rate_sat_vb=2)
        try:
            user = SigningKey.generate()
            address = s.deposit_address(bytes(user.verify_key))
            faucet.pay(script_pubkey_from_address(address, "regtest"), 40_000_000,
                       fee_rate_sat_vb=20)
            s.settle()
            assert s.balance(bytes(user.verify_key)) == 40_000_000
            # The node's estimator lags behind its own mempool minimum (it learnt 20 sat/vB
            # from the deposit; pretend it knows nothing): the relayer starts at 2 sat/vB.
            s.engine.custody.chains[s.chain].rpc.estimate_fee_sat_vb = lambda blocks: None
            burn_id = s.burn(user, 10_000_000, PAYEE)
            s.settle(rounds=10)
            row = s.transfer(burn_id)
            assert row.status == "transfer.executed", row.reason
            plans = CoinStore(s.engine.store).plans_of(row.id)
            assert len(plans) > 1  # at least one bump
            assert len({tuple(c.outpoint for c in plan_of(p).coins) for p in plans}) == 1
            final = [plan_of(p) for p in plans if p.status == "final"]
            assert len(final) == 1 and final[0].fee_rate >= 10
            assert _received(s.btcd, row.dest_tx_hash, PAYEE) == 10_000_000 - final[0].fee
            assert {p.status for p in plans} == {"final", "abandoned"}
        finally:
            s.close()
    finally:
        node.stop()


def test_many_small_coins_are_consolidated_with_the_fee_paid_from_the_operator_reserve(
        tmp_path: Path, btcd: Any) -> None:
    from relayer.solvency import custody_report

    s = BtcStack(tmp_path, btcd, consolidate_min_utxos=3, consolidate_max_inputs=10)
    try:
        users = [SigningKey.generate() for _ in range(4)]
        for u in users:
            s.pay(s.deposit_address(bytes(u.verify_key)), 2_000_000)
        s.settle()
        assert all(s.balance(bytes(u.verify_key)) == 2_000_000 for u in users)
        coins = CoinStore(s.engine.store)
        assert len(coins.coins(s.chain)) == 4
        assert not coins.plans(s.chain, ("signing",))  # no reserve yet: nothing is spent
        s.pay(s.btc.vault.address, 1_000_000)  # the operator tops up the fee reserve
        s.settle(rounds=6)
        [merged] = coins.coins(s.chain)
        [plan_row] = coins.plans(s.chain, ("final",))
        plan = plan_of(plan_row)
        assert plan.kind == "consolidation" and len(plan.coins) == 5
        assert merged.amount == 9_000_000 - plan.fee and merged.account is None
        assert coins.fee_reserve(s.chain) == 1_000_000 - plan.fee
        adapter = s.engine.custody.chains[s.chain]
        [line] = custody_report(s.ledger.assets(), {s.chain: (
            coins.coins(s.chain, ("unspent", "reserved")), coins.pending_releases(s.chain),
            coins.fee_reserve(s.chain))}, {s.chain: adapter.coin_unspent})
        assert line.balanced and line.supply == 8_000_000 and line.missing == 0
    finally:
        s.close()
