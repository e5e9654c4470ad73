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
    assert rows["stake"].status == "transfer.held"
    assert rows["stake"].reason == "not credited: bad_memo"
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
