"""Burns and transfers: user signatures, per-account nonces, balances and supply."""

from __future__ import annotations

import pytest
from nacl.signing import SigningKey

from adapters.errors import (
    BadNonce,
    InsufficientBalance,
    InvalidSignature,
    UnknownAsset,
    ValidationError,
)
from ledger.errors import WrongNetwork
from ledger.testing import Harness
from ledger.transactions import SignedTx, sign_burn, sign_transfer
from ledger.types import MintStatus

PAYEE = "0x" + "22" * 20



@pytest.fixture()
def alice(h: Harness) -> SigningKey:
    """An account holding 1000 wETH base units (minted from lock nonce 1)."""
    key = SigningKey.generate()
    assert h.ledger.mint(h.certify(h.lock(1, 1000, bytes(key.verify_key)))).status is \
        MintStatus.MINTED
    return key


def state(h: Harness, *keys: SigningKey) -> tuple[object, ...]:
    s = h.ledger.status()
    accounts = tuple(h.ledger.account(bytes(k.verify_key)) for k in keys)
    return s.journal_seq, s.journal_head, tuple(h.ledger.assets()), accounts, tuple(h.ledger.burns())


def burn(h: Harness, key: SigningKey, nonce: int, amount: int, **kw: str) -> SignedTx:
    return sign_burn(key, kw.get("network", h.network), nonce, kw.get("asset", h.native_asset),
                     amount, kw.get("dest_chain", h.chain), kw.get("dest", PAYEE))


def test_burn_debits_account_and_records_payout(h, alice):
    tx = burn(h, alice, 0, 400)
    receipt = h.ledger.submit_transaction(tx)
    assert receipt.burn_id == tx.burn_id and receipt.burn_id is not None
    info = h.ledger.account(bytes(alice.verify_key))
    assert (info.nonce, info.balances) == (1, {h.native_asset: 600})
    (record,) = h.ledger.burns()
    assert record.seq == receipt.seq and record.burn_id == tx.burn_id
    assert (record.amount, record.dest_chain, record.dest_address) == (400, h.chain, PAYEE)
    assert (record.origin_chain, record.origin_token) == (h.chain, "0x" + "00" * 20)
    assert record.tx == dict(tx.body) and record.signature == tx.signature
    (weth,) = [a for a in h.ledger.assets() if a.asset == h.native_asset]
    assert (weth.supply, weth.minted_total, weth.burned_total) == (600, 1000, 400)
    h.ledger.check_invariants()
    h.ledger.verify_journal()


def test_burns_page_by_seq(h, alice):
    seqs = [h.ledger.submit_transaction(burn(h, alice, n, 1)).seq for n in range(5)]
    assert [b.seq for b in h.ledger.burns(0, 2)] == seqs[:2]
    assert [b.seq for b in h.ledger.burns(seqs[1], 100)] == seqs[2:]
    assert h.ledger.burns(seqs[-1]) == []
    with pytest.raises(ValidationError):
        h.ledger.burns(0, 0)


def test_nonce_replay_is_rejected_and_changes_nothing(h, alice):
    tx = burn(h, alice, 0, 1)
    h.ledger.submit_transaction(tx)
    before = state(h, alice)
    with pytest.raises(BadNonce):
        h.ledger.submit_transaction(tx)
    assert state(h, alice) == before


def test_nonce_gap_is_rejected_and_changes_nothing(h, alice):
    before = state(h, alice)
    with pytest.raises(BadNonce):
        h.ledger.submit_transaction(burn(h, alice, 1, 1))
    assert state(h, alice) == before
    h.ledger.submit_transaction(burn(h, alice, 0, 1))  # the right nonce works


def test_insufficient_balance_changes_nothing(h, alice):
    before = state(h, alice)
    with pytest.raises(InsufficientBalance):
        h.ledger.submit_transaction(burn(h, alice, 0, 1001))
    assert state(h, alice) == before
    h.ledger.submit_transaction(burn(h, alice, 0, 1000))  # exactly the balance works
    assert h.ledger.account(bytes(alice.verify_key)).balances == {}


def test_account_with_nothing_can_not_burn(h):
    nobody = SigningKey.generate()
    assert h.ledger.account(bytes(nobody.verify_key)).nonce == 0
    with pytest.raises(InsufficientBalance):
        h.ledger.submit_transaction(burn(h, nobody, 0, 1))


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"dest_chain": "eip155:31338"}, ValidationError),  # wETH goes back to its origin only
        ({"dest_chain": "eip155:1"}, ValidationError),
        ({"asset": "eip155:31337/0x" + "dd" * 20}, UnknownAsset),
        ({"network": "mainnet"}, WrongNetwork),
    ],
)
def test_bad_burn_is_rejected_and_changes_nothing(h, alice, kw, error):
    before = state(h, alice)
    with pytest.raises(error):
        h.ledger.submit_transaction(burn(h, alice, 0, 1, **kw))
    assert state(h, alice) == before


def test_forged_signature_is_rejected_and_changes_nothing(h, alice):
    tx = burn(h, alice, 0, 1)
    mallory = SigningKey.generate()
    before = state(h, alice)
    with pytest.raises(InvalidSignature):
        h.ledger.submit_transaction(SignedTx(tx.body, mallory.sign(tx.signed_bytes).signature))
    assert state(h, alice) == before


def test_transfer_moves_balance_and_bumps_sender_nonce_only(h, alice):
    bob = SigningKey.generate()
    receipt = h.ledger.submit_transaction(
        sign_transfer(alice, h.network, 0, h.native_asset, 300, bytes(bob.verify_key)))
    assert receipt.burn_id is None
    a, b = h.ledger.account(bytes(alice.verify_key)), h.ledger.account(bytes(bob.verify_key))
    assert (a.nonce, a.balances) == (1, {h.native_asset: 700})
    assert (b.nonce, b.balances) == (0, {h.native_asset: 300})
    # bob can spend what he received, twice into an existing balance row
    h.ledger.submit_transaction(
        sign_transfer(bob, h.network, 0, h.native_asset, 100, bytes(alice.verify_key)))
    h.ledger.submit_transaction(
        sign_transfer(alice, h.network, 1, h.native_asset, 50, bytes(bob.verify_key)))
    assert h.ledger.account(bytes(bob.verify_key)).balances == {h.native_asset: 250}
    assert h.ledger.burns() == []
    h.ledger.check_invariants()
    h.ledger.verify_journal()


def test_transfer_beyond_balance_changes_nothing(h, alice):
    bob = SigningKey.generate()
    before = state(h, alice, bob)
    with pytest.raises(InsufficientBalance):
        h.ledger.submit_transaction(
            sign_transfer(alice, h.network, 0, h.native_asset, 1001, bytes(bob.verify_key)))
    assert state(h, alice, bob) == before
