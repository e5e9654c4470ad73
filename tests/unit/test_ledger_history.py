"""Account history and journal proofs (`ledger.history`, `api.ledger_history`) on a real SQLite
ledger: every balance change of mints, transfers, burns and HTLCs (lock, redeem, refund, and
HTLC-driven mints) is listed newest first with its signed delta, pages with an opaque cursor,
and carries a proof that verifies against the journal root; the index is backfilled by the
migration of an existing database. Time is a movable test clock."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace

import httpx
import pytest
from fastapi.testclient import TestClient
from nacl.signing import SigningKey
from sqlalchemy import select

from adapters.errors import BridgeError, InvalidCursor, ValidationError
from api.ledger import create_ledger_app
from api.pagination import encode_cursor
from htlc.mint_intent import MintIntent, mint_htlc_id
from ledger.client import LedgerClient
from ledger.db import VERSION_TABLE, make_engine, migrate, read_transaction
from ledger.errors import JournalCorrupt
from ledger.history import ACCOUNT_ENTRIES, account_deltas, entry_rows
from ledger.merkle import MerkleTree, verify_inclusion
from ledger.service import Ledger
from ledger.testing import Harness
from ledger.transactions import sign_burn, sign_htlc_lock, sign_transfer
from ledger.types import MintStatus

T0 = 1_700_000_000.5
SECRET = bytes(range(32))
HASHLOCK = hashlib.sha256(SECRET).digest()
SECRET2 = bytes(range(1, 33))
TIMELOCK = int(T0) + 3600


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


def hx(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass
class World:
    h: Harness
    ledger: Ledger
    clock: FakeClock
    http: TestClient
    alice: bytes
    bob: bytes
    carol: bytes
    expected: dict[bytes, list[tuple[str, str, int, str | None]]]  # oldest first


def _intent(h: Harness, account: bytes, hashlock: bytes, timelock: int) -> MintIntent:
    return MintIntent(chain=h.chain, account=account, hashlock=hashlock,
                      refund_pubkey=b"\x02" + b"\x33" * 32, btc_expiry=500,
                      ledger_timelock=timelock)


def _mint_intent(w: World, nonce: int, amount: int, intent: MintIntent) -> None:
    w.ledger.register_mint_intent(intent)
    event = replace(w.h.lock(nonce, amount, intent.intent_id), sender="htlc:" + "ab" * 32 + ":0")
    assert w.ledger.mint(w.h.certify(event)).status is MintStatus.MINTED


def play(w: World, alice_key: SigningKey, bob_key: SigningKey) -> None:
    """Mints, a transfer, a burn, an HTLC redeemed, one refunded, an HTLC mint redeemed and
    one refunded (a burn of an amount in no balance)."""
    h, led, net = w.h, w.ledger, w.h.network
    eth, tkn = h.native_asset, h.token_asset
    assert led.mint(h.certify(h.lock(1, 1000, w.alice))).status is MintStatus.MINTED
    assert led.mint(h.certify(h.lock(2, 500, w.bob, token=h.token))).status is MintStatus.MINTED
    led.submit_transaction(sign_transfer(alice_key, net, 0, eth, 300, w.bob))
    led.submit_transaction(sign_burn(bob_key, net, 0, eth, 100, h.chain, "0x" + "cd" * 20))
    lock1 = sign_htlc_lock(alice_key, net, 1, eth, 200, w.bob, HASHLOCK, TIMELOCK)
    led.submit_transaction(lock1)
    assert lock1.htlc_id is not None
    led.redeem_htlc(lock1.htlc_id, SECRET)
    lock2 = sign_htlc_lock(alice_key, net, 2, eth, 50, w.bob, HASHLOCK, TIMELOCK)
    led.submit_transaction(lock2)
    intent1 = _intent(h, w.carol, hashlib.sha256(SECRET2).digest(), TIMELOCK)
    _mint_intent(w, 3, 5000, intent1)
    intent2 = _intent(h, w.carol, b"\x07" * 32, TIMELOCK)
    _mint_intent(w, 4, 700, intent2)
    led.redeem_htlc(mint_htlc_id(h.lock(3, 5000, intent1.intent_id).event_id), SECRET2)
    w.clock.t = TIMELOCK
    assert lock2.htlc_id is not None
    led.refund_htlc(lock2.htlc_id)
    led.refund_htlc(mint_htlc_id(h.lock(4, 700, intent2.intent_id).event_id))
    a, b = hx(w.alice), hx(w.bob)
    w.expected = {
        w.alice: [("mint", eth, 1000, None), ("transfer", eth, -300, b),
                  ("htlc_lock", eth, -200, b), ("htlc_lock", eth, -50, b),
                  ("htlc_refund", eth, 50, None)],
        w.bob: [("mint", tkn, 500, None), ("transfer", eth, 300, a), ("burn", eth, -100, None),
                ("htlc_redeem", eth, 200, None)],
        w.carol: [("htlc_redeem", eth, 5000, None)],
    }


@pytest.fixture()
def w(h: Harness, tmp_path) -> Iterator[World]:
    clock = FakeClock()
    ledger = Ledger(make_engine(f"sqlite:///{tmp_path}/ledger.sqlite"), h.network, clock)
    alice_key, bob_key = SigningKey.generate(), SigningKey.generate()
    world = World(h, ledger, clock, TestClient(create_ledger_app(ledger)),
                  bytes(alice_key.verify_key), bytes(bob_key.verify_key), b"\x11" * 32, {})
    play(world, alice_key, bob_key)
    yield world
    ledger.close()


def history(w: World, account: bytes, **params: object) -> dict:
    r = w.http.get(f"/v1/ledger/accounts/{hx(account)}/history", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_history_lists_every_balance_change_newest_first_with_signed_deltas(w):
    for account, expected in w.expected.items():
        items = history(w, account)["items"]
        got = [(i["kind"], i["asset"], int(i["delta"]), i["counterparty"]) for i in items]
        assert got == expected[::-1]
        assert all(isinstance(i["delta"], str) for i in items)
        seqs = [i["seq"] for i in items]
        assert seqs == sorted(seqs, reverse=True)
        # the deltas add up to the balances
        sums: dict[str, int] = {}
        for _, asset, delta, _ in expected:
            sums[asset] = sums.get(asset, 0) + delta
        assert {a: v for a, v in sums.items() if v} == w.ledger.account(account).balances
    assert w.ledger.verify_journal() > 0 and w.ledger.check_invariants()


def test_history_items_carry_the_journal_hash_and_the_ledger_time_of_htlc_entries(w):
    items = history(w, w.alice)["items"]
    journal = {e.seq: e for e in w.ledger.journal(0, 1000)}
    for item in items:
        assert item["journal_hash"] == hx(journal[item["seq"]].hash)
        assert item["kind"] == journal[item["seq"]].kind
        payload = json.loads(journal[item["seq"]].payload)
        assert item["at"] == (int(payload["at"]) if "at" in payload else None)
    assert items[0]["at"] == TIMELOCK and items[-1]["at"] is None  # refund at; mint has none


def test_every_history_proof_verifies_against_the_journal_root(w):
    root = w.http.get("/v1/ledger/journal/root").json()
    status = w.http.get("/v1/ledger/status").json()
    assert root["tree_size"] == status["journal_seq"]
    assert root["root"] == status["journal_root"]
    for account in w.expected:
        for item in history(w, account)["items"]:
            proof = item["proof"]
            assert (proof["tree_size"], proof["root"]) == (root["tree_size"], root["root"])
            path = [bytes.fromhex(p[2:]) for p in proof["path"]]
            leaf = bytes.fromhex(item["journal_hash"][2:])
            root_bytes = bytes.fromhex(root["root"][2:])
            assert verify_inclusion(leaf, item["seq"] - 1, proof["tree_size"], path, root_bytes)
            other = bytes([leaf[0] ^ 1]) + leaf[1:]  # another entry hash does not verify
            assert not verify_inclusion(other, item["seq"] - 1, proof["tree_size"], path,
                                        root_bytes)


def test_the_root_is_rfc6962_over_the_journal_entry_hashes(w):
    entries = w.ledger.journal(0, 1000)
    tree = MerkleTree(e.hash for e in entries)
    assert w.ledger.history.root() == (len(entries), tree.root())
    for size in (1, 5, len(entries)):
        body = w.http.get("/v1/ledger/journal/3/proof", params={"tree_size": size})
        if size < 3:
            assert body.status_code == 400 and body.json()["error"]["code"] == "invalid_input"
            continue
        proof = body.json()
        assert proof["root"] == hx(tree.root(size)) and proof["tree_size"] == size
        assert proof["leaf_hash"] == hx(entries[2].hash)
        assert proof["proof"] == [hx(p) for p in tree.inclusion_path(2, size)]


@pytest.mark.parametrize(("seq", "params"), [(0, {}), (10_000, {}), (2, {"tree_size": 1}),
                                             (2, {"tree_size": 10_000}), (2, {"tree_size": 0})])
def test_journal_proof_refuses_a_seq_or_size_outside_the_journal(w, seq, params):
    r = w.http.get(f"/v1/ledger/journal/{seq}/proof", params=params)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"


def test_history_pages_with_an_opaque_cursor(w):
    everything = history(w, w.alice)["items"]
    assert history(w, w.alice)["next_cursor"] is None
    pages, cursor = [], None
    while True:
        params: dict[str, object] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = history(w, w.alice, **params)
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == everything


@pytest.mark.parametrize("cursor", ["garbage!", "", encode_cursor("transfers", 5), "YWJj"])
def test_a_cursor_the_ledger_did_not_issue_is_400_invalid_cursor(w, cursor):
    r = w.http.get(f"/v1/ledger/accounts/{hx(w.alice)}/history", params={"cursor": cursor})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


def test_an_unknown_account_has_an_empty_history_and_a_bad_one_is_refused(w):
    assert history(w, b"\x99" * 32) == {"items": [], "next_cursor": None}
    r = w.http.get("/v1/ledger/accounts/0x1234/history")
    assert r.status_code == 400
    r = w.http.get(f"/v1/ledger/accounts/{hx(w.alice)}/history", params={"limit": 501})
    assert r.status_code == 400


def test_the_tree_follows_entries_written_by_another_ledger_object(w, tmp_path):
    before = w.ledger.history.root()
    other = Ledger(make_engine(f"sqlite:///{tmp_path}/ledger.sqlite"), w.h.network, w.clock)
    try:
        other.mint(w.h.certify(w.h.lock(9, 7, w.alice)))
    finally:
        other.close()
    size, root = w.ledger.history.root()
    assert size == before[0] + 1 and root != before[1]
    newest = history(w, w.alice)["items"][0]
    assert (newest["seq"], newest["delta"], newest["proof"]["root"]) == (size, "7", hx(root))
    assert w.ledger.history.root(before[0]) == before  # the old root is still provable


def test_the_index_equals_a_rebuild_from_the_journal(w):
    rebuilt = [row for e in w.ledger.journal(0, 1000)
               for row in entry_rows(e.seq, e.kind, json.loads(e.payload))]
    with read_transaction(w.ledger._engine) as conn:
        stored = [dict(r._mapping) for r in conn.execute(
            select(ACCOUNT_ENTRIES).order_by(ACCOUNT_ENTRIES.c.seq, ACCOUNT_ENTRIES.c.n))]
    assert stored == rebuilt and len(stored) == 10


def test_a_refused_transaction_writes_no_history(w):
    before = history(w, w.alice)
    key = SigningKey.generate()  # no balance: insufficient
    with pytest.raises(BridgeError):
        w.ledger.submit_transaction(sign_transfer(key, w.h.network, 0, w.h.native_asset, 1,
                                                  w.alice))
    assert history(w, w.alice) == before
    assert history(w, bytes(key.verify_key))["items"] == []


def test_migration_backfills_the_history_of_an_existing_database(w, tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    expected = {a: history(w, a) for a in w.expected}
    engine = make_engine(url)
    try:  # the database as revision 0005 left it: no index table
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE ledger_account_entries")
            conn.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '0005'")
    finally:
        engine.dispose()
    migrate(url)
    reopened = Ledger(make_engine(url), w.h.network, w.clock)
    try:
        http = TestClient(create_ledger_app(reopened))
        for account, body in expected.items():
            assert http.get(f"/v1/ledger/accounts/{hx(account)}/history").json() == body
        assert reopened.verify_journal() > 0
    finally:
        reopened.close()


# -- account_deltas (pure) -------------------------------------------------------------------


A, B = "0x" + "aa" * 32, "0x" + "bb" * 32


@pytest.mark.parametrize(("kind", "payload", "expected"), [
    ("mint", {"asset": "x", "event": {"recipient": A, "amount": "5"}}, [(A, "x", 5, None)]),
    ("burn", {"tx": {"account": A, "asset": "x", "amount": "5"}}, [(A, "x", -5, None)]),
    ("transfer", {"tx": {"account": A, "to": B, "asset": "x", "amount": "5"}},
     [(A, "x", -5, B), (B, "x", 5, A)]),
    ("htlc_lock", {"tx": {"account": A, "recipient": B, "asset": "x", "amount": "5"}},
     [(A, "x", -5, B)]),
    ("htlc_redeem", {"recipient": B, "asset": "x", "amount": "5"}, [(B, "x", 5, None)]),
    ("htlc_refund", {"sender": A, "asset": "x", "amount": "5"}, [(A, "x", 5, None)]),
    ("htlc_refund", {"sender": None, "asset": "x", "amount": "5"}, []),
    ("htlc_mint", {"asset": "x", "event": {"recipient": A, "amount": "5"}}, []),
    ("genesis", {}, []), ("bridge", {}, []), ("asset", {}, []), ("validator_set", {}, []),
])
def test_account_deltas_by_kind(kind, payload, expected):
    assert account_deltas(kind, payload) == expected


@pytest.mark.parametrize(("kind", "payload"), [
    ("rebase", {}),  # a kind with no rule
    ("mint", {"asset": "x"}),  # a payload missing its fields
    ("transfer", {"tx": {"account": A, "to": B, "asset": "x", "amount": "five"}}),
])
def test_account_deltas_refuse_unknown_kinds_and_broken_payloads(kind, payload):
    with pytest.raises(JournalCorrupt):
        account_deltas(kind, payload)


# -- LedgerClient ----------------------------------------------------------------------------


def test_client_reads_root_proofs_and_history(w):
    client = LedgerClient("http://testserver", http=w.http)
    size, root = client.journal_root()
    assert (size, root) == w.ledger.history.root()
    proof = client.journal_proof(4)
    assert proof.verify() and proof.proof.root == root and proof.seq == 4
    assert client.journal_proof(4, tree_size=5).proof.tree_size == 5
    page = client.account_history(w.alice, limit=3)
    assert [i.seq for i in page.items] == [i["seq"] for i in history(w, w.alice)["items"][:3]]
    rest = client.account_history(w.alice, cursor=page.next_cursor)
    assert len(rest.items) == 2 and rest.next_cursor is None
    with pytest.raises(InvalidCursor):
        client.account_history(w.alice, cursor="bogus")
    with pytest.raises(ValidationError):
        client.journal_proof(10_000)


def _tampering(w: World, field: str) -> LedgerClient:
    """A client whose ledger answers are altered in transit."""
    def handler(request: httpx.Request) -> httpx.Response:
        real = w.http.get(request.url.path, params=dict(request.url.params))
        body = real.json()
        target = body["items"][0] if "items" in body else body
        target[field] = hx(b"\x01" * 32)
        return httpx.Response(200, json=body)
    return LedgerClient("http://testserver", http=httpx.Client(
        base_url="http://testserver", transport=httpx.MockTransport(handler)))


@pytest.mark.parametrize("field", ["leaf_hash", "root"])
def test_client_refuses_a_journal_proof_that_does_not_verify(w, field):
    with pytest.raises(BridgeError, match="does not verify"):
        _tampering(w, field).journal_proof(3)


def test_client_refuses_a_history_entry_whose_proof_does_not_verify(w):
    with pytest.raises(BridgeError, match="does not verify"):
        _tampering(w, "journal_hash").account_history(w.alice)


def test_client_history_page_serialises_back_to_the_ledger_answer(w):
    page = LedgerClient("http://testserver", http=w.http).account_history(w.bob)
    assert page.to_json() == history(w, w.bob)
