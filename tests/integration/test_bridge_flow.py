"""Both directions of the bridge on real anvil nodes, with the real ledger, relayer engine and
five validator daemons (threshold 3), driven step by step."""

from __future__ import annotations

import pytest
from eth_account import Account
from nacl.signing import SigningKey
from web3 import Web3
from web3.exceptions import TransactionNotFound

from adapters.base import NATIVE_TOKEN
from adapters.evm import devnet as evm
from ledger.types import MintRequest
from tests.integration.stack import UNIT, Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path, anvil_eth, anvil_bsc):
    s = Stack(tmp_path, {"ethereum": anvil_eth, "bsc": anvil_bsc})
    yield s
    s.close()


def payee_balance(stack: Stack, chain: str, payee: str) -> int:
    return stack.chains[chain].w3.eth.get_balance(Web3.to_checksum_address(payee))


@pytest.mark.parametrize("chain", ["ethereum", "bsc"])
def test_lock_mints_and_burn_releases_exactly_on_each_chain(stack, chain):
    user = SigningKey.generate()
    account = bytes(user.verify_key)
    tx = stack.lock(chain, 3 * UNIT // 2, account)
    stack.settle()
    assert stack.balance(account, chain) == 3 * UNIT // 2
    rows = stack.engine.store.by_source_tx(tx)
    assert [r.status for r in rows] == ["transfer.executed"]

    payee = Account.create().address.lower()
    burn_id = stack.burn(user, chain, UNIT // 2, payee)
    stack.settle()
    assert stack.status(burn_id) == "transfer.executed"
    assert payee_balance(stack, chain, payee) == UNIT // 2
    assert stack.balance(account, chain) == UNIT
    bridge = stack.chains[chain].bridge
    assert bridge.functions.released(bytes.fromhex(burn_id[2:])).call() is True


def test_erc20_lock_mints_wrapped_token(stack):
    user = bytes(SigningKey.generate().verify_key)
    stack.lock("ethereum", 250 * UNIT, user, token=stack.token)
    stack.settle()
    assert stack.balance(user, "ethereum", stack.token) == 250 * UNIT


def test_locked_event_from_a_contract_that_is_not_the_bridge_mints_nothing(stack):
    user = bytes(SigningKey.generate().verify_key)
    c = stack.chains["ethereum"]
    members = sorted(k.evm_address for k in stack.keys)
    impostor = evm.deploy_bridge(c.w3, members, 3, [evm.ANVIL_DEV_ADDRESS[:2] + "00" * 20],
                                 sender_key=evm.ANVIL_DEV_KEY)
    fake = c.w3.eth.contract(address=Web3.to_checksum_address(impostor), abi=c.bridge.abi)
    tx = stack.lock("ethereum", UNIT, user, bridge=fake)
    stack.lock("ethereum", 2 * UNIT, user)  # a real lock in the same window
    stack.settle()
    assert stack.balance(user, "ethereum") == 2 * UNIT
    assert stack.engine.store.by_source_tx(tx) == []


def test_resubmitted_attestations_and_certificates_mint_once(stack):
    user = bytes(SigningKey.generate().verify_key)
    tx = stack.lock("ethereum", UNIT, user)
    stack.settle()
    assert stack.balance(user, "ethereum") == UNIT
    [row] = stack.engine.store.by_source_tx(tx)
    # Every validator forgets its cursor and delivers its attestations again.
    for d in stack.daemons:
        d.state.blocks = dict.fromkeys(d.state.blocks, stack.cfg.chains[0].start_block - 1)
    stack.run_validators()
    stack.settle()
    # The same certificate, replayed straight to the ledger, is a duplicate.
    vset = stack.ledger.validator_set()
    sigs = stack.engine.store.attestations_for("lock", [row.event_key], vset.epoch)[row.event_key]
    assert len(sigs) == 3  # a quorum is stored; re-deliveries and extras are redundant
    cert = [(bytes.fromhex(v[2:]), bytes.fromhex(s[2:])) for v, s, _ in sigs[:3]]
    [result] = stack.ledger.mint_batch([MintRequest(_event(row), vset.epoch, cert)])
    assert result.status == "duplicate"
    assert stack.balance(user, "ethereum") == UNIT
    weth = next(a for a in stack.ledger.assets() if a.origin_chain == "eip155:31337"
                and a.origin_token == NATIVE_TOKEN)
    assert weth.minted_total == weth.supply == UNIT


def _event(row):
    from relayer.engine import _event_of

    return _event_of(row)


def test_reorg_that_removes_a_lock_before_confirmation_depth_mints_nothing(stack):
    user = bytes(SigningKey.generate().verify_key)
    c = stack.chains["ethereum"]
    stack.tick()
    tx = stack.lock("ethereum", UNIT, user)
    stack.tick()  # the relayer observes it at depth 0
    [row] = stack.engine.store.by_source_tx(tx)
    assert row.status == "transfer.observed"
    reply = c.w3.provider.make_request("anvil_reorg", [1, []])  # type: ignore[arg-type]
    assert "error" not in reply, reply
    assert _gone(c.w3, tx)
    stack.settle()
    assert stack.balance(user, "ethereum") == 0
    assert stack.status(row.event_key) == "transfer.dropped"


def _gone(w3: Web3, tx: str) -> bool:
    try:
        w3.eth.get_transaction_receipt(tx)
        return False
    except TransactionNotFound:
        return True


def test_relayer_crash_between_ledger_mint_and_bookkeeping_mints_exactly_once(stack):
    user = bytes(SigningKey.generate().verify_key)
    tx = stack.lock("ethereum", UNIT, user)
    stack.mine(stack.depth + 1)
    stack.tick()
    stack.run_validators()

    class Crash(BaseException):
        pass

    store = stack.engine.store
    real_advance = store.advance

    def crash_on_executed(changes):
        changes = list(changes)
        if any(c.to.value == "transfer.executed" for c in changes):
            raise Crash  # the process dies after the ledger minted, before recording it
        return real_advance(changes)

    store.advance = crash_on_executed  # type: ignore[method-assign]
    with pytest.raises(Crash):
        stack.tick()
    assert stack.balance(user, "ethereum") == UNIT  # minted on the ledger
    stack.start_relayer()  # a fresh process over the same database
    stack.settle()
    assert stack.balance(user, "ethereum") == UNIT
    [row] = stack.engine.store.by_source_tx(tx)
    assert row.status == "transfer.executed" and "duplicate" in row.reason
