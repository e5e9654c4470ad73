"""Minting on the ledger: quorum certificates, idempotency by event id, and every rejection
leaving the ledger unchanged."""

from __future__ import annotations

from dataclasses import replace

import pytest
from nacl.signing import SigningKey
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from adapters.base import NATIVE_TOKEN
from ledger import store
from ledger.db import write_transaction
from ledger.testing import Harness, make_validator_set
from ledger.types import MintRequest, MintStatus


def snapshot(h: Harness) -> tuple[object, ...]:
    status = h.ledger.status()
    return status.journal_seq, status.journal_head, tuple(h.ledger.assets())


def test_mint_with_quorum_credits_recipient_and_supply(h, alice):
    result = h.ledger.mint(h.certify(h.lock(1, 10**18, alice)))
    assert result.status is MintStatus.MINTED and result.code is None
    assert result.event_id == f"{h.chain}/{h.bridge}/1"
    assert h.ledger.account(alice).balances == {h.native_asset: 10**18}
    (weth,) = [a for a in h.ledger.assets() if a.asset == h.native_asset]
    assert (weth.supply, weth.minted_total, weth.burned_total) == (10**18, 10**18, 0)
    assert h.ledger.journal(result.seq - 1, 1)[0].kind == "mint"
    h.ledger.check_invariants()


def test_same_event_mints_once_and_second_submission_is_duplicate(h, alice):
    request = h.certify(h.lock(1, 100, alice))
    first = h.ledger.mint(request)
    before = snapshot(h)
    again = h.ledger.mint(request)
    assert again.status is MintStatus.DUPLICATE and again.seq == first.seq
    # a different certificate (other signers) for the same event id changes nothing either
    other = h.ledger.mint(h.certify(request.event, signers=h.keys[2:]))
    assert other.status is MintStatus.DUPLICATE
    assert snapshot(h) == before
    assert h.ledger.account(alice).balances == {h.native_asset: 100}


def test_duplicate_within_one_batch_mints_once(h, alice):
    request = h.certify(h.lock(1, 100, alice))
    results = h.ledger.mint_batch([request, request])
    assert [r.status for r in results] == [MintStatus.MINTED, MintStatus.DUPLICATE]
    assert results[1].seq == results[0].seq
    assert h.ledger.account(alice).balances == {h.native_asset: 100}


def test_event_id_unique_constraint_holds_even_without_the_check(h, alice):
    h.ledger.mint(h.certify(h.lock(1, 100, alice)))
    row = {"event_id": f"{h.chain}/{h.bridge}/1", "seq": 1, "chain": h.chain,
           "contract": h.bridge, "nonce": 1, "token": NATIVE_TOKEN, "sender": "0x",
           "asset": h.native_asset, "recipient": "0x" + alice.hex(), "amount": 1, "epoch": 1,
           "tx_hash": "0x", "log_index": 0, "block_number": 0, "block_hash": "0x"}
    with pytest.raises(IntegrityError), write_transaction(h.ledger._engine) as conn:
        conn.execute(insert(store.MINTS).values(**row))


def _outsider() -> list[SigningKey]:
    return [SigningKey.generate()]


REJECTIONS = [
    # (name, how to build the request from (harness, recipient), expected code)
    ("fewer than threshold", lambda h, r: h.certify(h.lock(1, 5, r), signers=h.keys[:2]),
     "quorum_not_met"),
    ("no signatures", lambda h, r: h.certify(h.lock(1, 5, r), signers=[]), "quorum_not_met"),
    ("duplicate signer", lambda h, r: replace(
        h.certify(h.lock(1, 5, r)),
        signatures=h.certify(h.lock(1, 5, r)).signatures[:2]
        + h.certify(h.lock(1, 5, r)).signatures[:1]), "invalid_signature"),
    ("non-member signer", lambda h, r: h.certify(
        h.lock(1, 5, r), signers=h.keys[:2] + _outsider()), "invalid_signature"),
    ("signed for another chain id", lambda h, r: MintRequest(
        h.lock(1, 5, r), 1, h.certify(replace(h.lock(1, 5, r), chain=h.other_chain)).signatures),
     "invalid_signature"),
    ("signed for another amount", lambda h, r: MintRequest(
        h.lock(1, 5, r), 1, h.certify(h.lock(1, 6, r)).signatures), "invalid_signature"),
    ("signed for another recipient", lambda h, r: MintRequest(
        h.lock(1, 5, r), 1, h.certify(h.lock(1, 5, bytes(32))).signatures), "invalid_signature"),
    ("signed for another network", lambda h, r: h.certify(h.lock(1, 5, r), network="mainnet"),
     "invalid_signature"),
    ("wrong epoch", lambda h, r: h.certify(h.lock(1, 5, r), epoch=2), "wrong_epoch"),
    ("wrong contract", lambda h, r: h.certify(h.lock(1, 5, r, contract="0x" + "cc" * 20)),
     "unknown_bridge"),
    ("other chain's bridge", lambda h, r: h.certify(h.lock(1, 5, r, contract=h.other_bridge)),
     "unknown_bridge"),
    ("chain without bridge", lambda h, r: h.certify(replace(h.lock(1, 5, r), chain="eip155:1")),
     "unknown_bridge"),
    ("unknown asset", lambda h, r: h.certify(h.lock(1, 5, r, token="0x" + "dd" * 20)),
     "unknown_asset"),
    ("token of the other chain", lambda h, r: h.certify(
        h.lock(1, 5, r, chain=h.other_chain, token=h.token)), "unknown_asset"),
    ("zero amount", lambda h, r: h.certify(h.lock(1, 0, r)), "invalid_input"),
    ("amount of 2**256", lambda h, r: h.certify(h.lock(1, 2**256, r)), "invalid_input"),
    ("short recipient", lambda h, r: h.certify(h.lock(1, 5, r[:31])), "invalid_address"),
]


@pytest.mark.parametrize(("name", "build", "code"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_rejected_mint_changes_nothing(h, alice, name, build, code):
    before = snapshot(h)
    result = h.ledger.mint(build(h, alice))
    assert (result.status, result.code, result.seq) == (MintStatus.REJECTED, code, None)
    assert snapshot(h) == before
    assert h.ledger.account(alice).balances == {}
    # the same event with a good certificate still mints afterwards
    assert h.ledger.mint(h.certify(h.lock(1, 5, alice))).status is MintStatus.MINTED


def test_rejected_mint_in_a_batch_does_not_roll_back_the_others(h, alice):
    good1, good2 = h.certify(h.lock(1, 10, alice)), h.certify(h.lock(3, 30, alice))
    bad = h.certify(h.lock(2, 20, alice), signers=h.keys[:1])
    results = h.ledger.mint_batch([good1, bad, good2])
    assert [r.status for r in results] == [MintStatus.MINTED, MintStatus.REJECTED,
                                           MintStatus.MINTED]
    assert results[2].seq == results[0].seq + 1
    assert h.ledger.account(alice).balances == {h.native_asset: 40}
    h.ledger.check_invariants()
    assert h.ledger.verify_journal() == results[2].seq


def test_rejected_first_occurrence_does_not_block_a_good_one_in_the_same_batch(h, alice):
    event = h.lock(1, 10, alice)
    results = h.ledger.mint_batch([h.certify(event, signers=h.keys[:1]), h.certify(event)])
    assert [r.status for r in results] == [MintStatus.REJECTED, MintStatus.MINTED]


def test_supply_can_not_overflow_uint256(h, alice):
    assert h.ledger.mint(h.certify(h.lock(1, 2**256 - 1, alice))).status is MintStatus.MINTED
    result = h.ledger.mint(h.certify(h.lock(2, 1, alice)))
    assert (result.status, result.code) == (MintStatus.REJECTED, "invalid_input")
    assert h.ledger.account(alice).balances == {h.native_asset: 2**256 - 1}
    h.ledger.check_invariants()


def test_mints_to_many_accounts_and_assets_in_one_batch(h):
    users = [bytes(SigningKey.generate().verify_key) for _ in range(7)]
    requests = [h.certify(h.lock(n, n, users[n % 7], token=h.token if n % 2 else NATIVE_TOKEN))
                for n in range(1, 50)]
    results = h.ledger.mint_batch(requests)
    assert all(r.status is MintStatus.MINTED for r in results)
    # second batch touches existing balances
    more = [h.certify(h.lock(n, 1, users[n % 7])) for n in range(50, 60)]
    assert all(r.status is MintStatus.MINTED for r in h.ledger.mint_batch(more))
    total = sum(sum(h.ledger.account(u).balances.values()) for u in users)
    assert total == sum(range(1, 50)) + 10
    h.ledger.check_invariants()
    h.ledger.verify_journal()


def test_fresh_validator_set_from_another_ledger_does_not_count(h, alice):
    _, strangers = make_validator_set(5, 3)
    result = h.ledger.mint(h.certify(h.lock(1, 5, alice), signers=strangers[:3]))
    assert (result.status, result.code) == (MintStatus.REJECTED, "invalid_signature")
