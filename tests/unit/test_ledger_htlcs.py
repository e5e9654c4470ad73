"""Native-ledger HTLCs: the signed ``htlc_lock`` transaction, redeem with a 32-byte preimage
before the timelock, refund at or after it, the ``ledger_htlcs`` table (migration 0003), the
journal replay of the three HTLC kinds, and the HTTP routes through `LedgerClient`. Time is a
movable test clock, never slept on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from nacl.signing import SigningKey
from sqlalchemy import update

from adapters.base import NATIVE_TOKEN
from adapters.errors import (
    BadNonce,
    InsufficientBalance,
    InvalidAddress,
    UnknownAsset,
    ValidationError,
)
from api.ledger import create_ledger_app
from htlc.errors import BadPreimage, HtlcAlreadySettled, HtlcExpired, HtlcNotExpired, UnknownHtlc
from ledger.client import LedgerClient
from ledger.config import AssetConfig, LedgerGenesis
from ledger.db import make_engine, migrate, write_transaction
from ledger.errors import JournalCorrupt
from ledger.htlcs import HTLCS
from ledger.service import Ledger
from ledger.testing import Harness, downgrade, make_validator_set
from ledger.transactions import (
    TX_DOMAIN,
    HtlcLockTx,
    SignedTx,
    parse_transaction,
    sign_htlc_lock,
    sign_transfer,
)
from ledger.types import Htlc, HtlcOrigin, HtlcState, MintStatus

T0 = 1_700_000_000.25  # ledger clock at the start of each test (seconds)
TIMELOCK = 1_700_003_600  # one hour after T0, whole seconds
SECRET = bytes(range(32))
HASHLOCK = hashlib.sha256(SECRET).digest()
FUNDS = 1000


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


@dataclass
class World:
    """A ledger on the test clock, `alice` holding FUNDS of the native asset, `bob` empty."""

    h: Harness
    ledger: Ledger
    clock: FakeClock
    alice: SigningKey
    bob: bytes

    @property
    def asset(self) -> str:
        return self.h.native_asset

    def lock(self, amount: int = 300, *, nonce: int = 0, hashlock: bytes = HASHLOCK,
             timelock: int = TIMELOCK, asset: str | None = None) -> SignedTx:
        """Sign and submit an htlc_lock from alice to bob; returns the transaction."""
        tx = self.sign(amount, nonce=nonce, hashlock=hashlock, timelock=timelock, asset=asset)
        self.ledger.submit_transaction(tx)
        return tx

    def sign(self, amount: int = 300, *, nonce: int = 0, hashlock: bytes = HASHLOCK,
             timelock: int = TIMELOCK, asset: str | None = None) -> SignedTx:
        return sign_htlc_lock(self.alice, self.h.network, nonce, asset or self.asset, amount,
                              self.bob, hashlock, timelock)

    def balance(self, account: bytes) -> int:
        return self.ledger.account(account).balances.get(self.asset, 0)

    def snapshot(self) -> tuple[object, ...]:
        """Everything a refused operation must leave alone."""
        return (self.ledger.status(), self.ledger.account(bytes(self.alice.verify_key)),
                self.ledger.account(self.bob), self.ledger.supply_report(),
                self.ledger.htlcs_by_hashlock(HASHLOCK))


def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/ledger.sqlite"  # the `h` fixture's database (conftest.py)


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def w(h: Harness, tmp_path, clock: FakeClock) -> Iterator[World]:
    ledger = Ledger(make_engine(db_url(tmp_path)), h.network, clock)
    alice = SigningKey.generate()
    assert ledger.mint(h.certify(h.lock(1, FUNDS, bytes(alice.verify_key)))).status is \
        MintStatus.MINTED
    yield World(h, ledger, clock, alice, bytes(SigningKey.generate().verify_key))
    ledger.close()


def locked(w: World, amount: int = 300, **kwargs: object) -> Htlc:
    tx = w.lock(amount, **kwargs)  # type: ignore[arg-type]
    assert tx.htlc_id is not None
    htlc = w.ledger.htlc(tx.htlc_id)
    assert htlc is not None
    return htlc


# -- lock -----------------------------------------------------------------------------------------


def test_lock_debits_the_sender_into_a_locked_htlc_whose_id_is_the_tx_id(w):
    tx = w.sign(300)
    receipt = w.ledger.submit_transaction(tx)
    assert tx.signed_bytes.startswith(TX_DOMAIN)
    assert receipt.htlc_id == tx.htlc_id == hashlib.sha256(tx.signed_bytes).digest()
    assert receipt.burn_id is None
    alice = bytes(w.alice.verify_key)
    assert w.ledger.account(alice).balances == {w.asset: FUNDS - 300}
    assert w.ledger.account(alice).nonce == 1
    assert w.ledger.htlc(tx.htlc_id) == Htlc(
        htlc_id=tx.htlc_id, seq=receipt.seq, origin=HtlcOrigin.LOCK, sender=alice,
        recipient=w.bob, asset=w.asset, amount=300, hashlock=HASHLOCK, timelock=TIMELOCK,
        state=HtlcState.LOCKED, preimage=None, created_at=T0, settled_at=None)
    assert w.balance(w.bob) == 0
    report = {r.asset: r for r in w.ledger.check_invariants()}[w.asset]
    assert (report.supply, report.balances_total, report.htlc_locked) == (FUNDS, FUNDS - 300, 300)
    assert w.ledger.journal(receipt.seq - 1, 1)[0].kind == "htlc_lock"
    assert w.ledger.verify_journal() == receipt.seq


def test_lock_shares_the_nonce_sequence_with_transfers(w):
    w.ledger.submit_transaction(sign_transfer(w.alice, w.h.network, 0, w.asset, 1, w.bob))
    with pytest.raises(BadNonce):
        w.lock(nonce=0)
    w.lock(nonce=1)
    assert w.ledger.account(bytes(w.alice.verify_key)).nonce == 2


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"timelock": int(T0)}, ValidationError),  # in the past (T0 has .25)
        ({"timelock": int(T0) + 1}, None),  # the next whole second is still ahead
        ({"amount": FUNDS + 1}, InsufficientBalance),
        ({"amount": FUNDS}, None),
        ({"nonce": 1}, BadNonce),
        ({"asset": "eip155:31337/0x" + "dd" * 20}, UnknownAsset),
    ],
)
def test_lock_refusals_change_nothing(w, change, error):
    before = w.snapshot()
    if error is None:
        w.lock(**change)
        assert w.snapshot() != before
        return
    with pytest.raises(error):
        w.lock(**change)
    assert w.snapshot() == before


def test_lock_exactly_at_the_ledger_time_is_refused(w):
    w.clock.t = float(TIMELOCK)
    with pytest.raises(ValidationError, match="timelock"):
        w.lock()
    w.clock.t = TIMELOCK - 0.001
    w.lock()


# -- redeem ---------------------------------------------------------------------------------------


def test_redeem_with_the_32_byte_preimage_credits_the_recipient_and_reveals_it(w):
    htlc = locked(w)
    w.clock.t = TIMELOCK - 0.5
    redeemed = w.ledger.redeem_htlc(htlc.htlc_id, SECRET)
    assert (redeemed.state, redeemed.preimage, redeemed.settled_at) == (
        HtlcState.REDEEMED, SECRET, TIMELOCK - 0.5)
    assert w.ledger.htlc(htlc.htlc_id) == redeemed
    assert w.balance(w.bob) == 300 and w.balance(bytes(w.alice.verify_key)) == FUNDS - 300
    report = {r.asset: r for r in w.ledger.check_invariants()}[w.asset]
    assert (report.supply, report.balances_total, report.htlc_locked) == (FUNDS, FUNDS, 0)
    entry = w.ledger.journal(0, 1000)[-1]
    assert entry.kind == "htlc_redeem" and SECRET.hex() in entry.payload  # watchers read it
    w.ledger.verify_journal()


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_redeem_refuses_a_preimage_that_is_not_32_bytes_even_if_it_hashes_to_the_lock(w, length):
    odd = bytes([7]) * length
    htlc = locked(w, hashlock=hashlib.sha256(odd).digest())
    before = w.snapshot()
    with pytest.raises(BadPreimage, match="32 bytes"):
        w.ledger.redeem_htlc(htlc.htlc_id, odd)
    assert w.snapshot() == before and w.ledger.htlc(htlc.htlc_id) == htlc


def test_redeem_refuses_a_wrong_preimage(w):
    htlc = locked(w)
    before = w.snapshot()
    with pytest.raises(BadPreimage, match="hashlock"):
        w.ledger.redeem_htlc(htlc.htlc_id, bytes(32))
    assert w.snapshot() == before
    w.ledger.redeem_htlc(htlc.htlc_id, SECRET)


@pytest.mark.parametrize("at", [float(TIMELOCK), TIMELOCK + 0.5, TIMELOCK + 10**6])
def test_redeem_at_or_after_the_timelock_is_refused(w, at):
    htlc = locked(w)
    w.clock.t = at
    before = w.snapshot()
    with pytest.raises(HtlcExpired):
        w.ledger.redeem_htlc(htlc.htlc_id, SECRET)
    assert w.snapshot() == before


def test_second_redeem_is_already_settled_and_changes_nothing(w):
    htlc = locked(w)
    w.ledger.redeem_htlc(htlc.htlc_id, SECRET)
    before = w.snapshot()
    for preimage in (SECRET, bytes(32)):
        with pytest.raises(HtlcAlreadySettled):
            w.ledger.redeem_htlc(htlc.htlc_id, preimage)
    assert w.snapshot() == before


# -- refund ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("at", [T0, TIMELOCK - 0.001])
def test_refund_before_the_timelock_is_refused(w, at):
    htlc = locked(w)
    w.clock.t = at
    before = w.snapshot()
    with pytest.raises(HtlcNotExpired):
        w.ledger.refund_htlc(htlc.htlc_id)
    assert w.snapshot() == before


@pytest.mark.parametrize("at", [float(TIMELOCK), TIMELOCK + 3600.5])
def test_refund_at_or_after_the_timelock_credits_the_sender(w, at):
    htlc = locked(w)
    w.clock.t = at
    refunded = w.ledger.refund_htlc(htlc.htlc_id)
    assert (refunded.state, refunded.preimage, refunded.settled_at) == (
        HtlcState.REFUNDED, None, at)
    assert w.balance(bytes(w.alice.verify_key)) == FUNDS and w.balance(w.bob) == 0
    assert {r.asset: r for r in w.ledger.check_invariants()}[w.asset].htlc_locked == 0
    w.ledger.verify_journal()


def test_no_redeem_after_refund_and_no_refund_after_redeem(w):
    first, second = locked(w, 100), locked(w, 200, nonce=1)
    w.ledger.redeem_htlc(first.htlc_id, SECRET)
    w.clock.t = TIMELOCK
    w.ledger.refund_htlc(second.htlc_id)
    before = w.snapshot()
    with pytest.raises(HtlcAlreadySettled):
        w.ledger.refund_htlc(first.htlc_id)
    w.clock.t = T0  # even back inside the window, the refunded one stays refunded
    with pytest.raises(HtlcAlreadySettled):
        w.ledger.redeem_htlc(second.htlc_id, SECRET)
    assert w.snapshot() == before
    assert w.balance(w.bob) == 100 and w.balance(bytes(w.alice.verify_key)) == FUNDS - 100


def test_unknown_and_malformed_htlc_ids(w):
    absent = bytes(32)
    assert w.ledger.htlc(absent) is None
    with pytest.raises(UnknownHtlc):
        w.ledger.redeem_htlc(absent, SECRET)
    with pytest.raises(UnknownHtlc):
        w.ledger.refund_htlc(absent)
    with pytest.raises(ValidationError):
        w.ledger.refund_htlc(bytes(31))
    with pytest.raises(ValidationError):
        w.ledger.htlcs_by_hashlock(bytes(33))


# A minted HTLC's refund burns: tests/unit/test_htlc_mint_ledger.py (real certified mints).


def test_htlcs_sharing_a_hashlock_are_listed_by_seq(w):
    ids = [locked(w, 10 + n, nonce=n).htlc_id for n in range(3)]
    other = locked(w, 5, nonce=3, hashlock=bytes(32))
    page = w.ledger.htlcs_by_hashlock(HASHLOCK)
    assert [x.htlc_id for x in page] == ids and other.htlc_id not in ids
    assert [x.htlc_id for x in w.ledger.htlcs_by_hashlock(HASHLOCK, page[0].seq, 1)] == ids[1:2]


# -- journal --------------------------------------------------------------------------------------


def test_journal_verifies_after_locks_redeems_refunds_and_refusals(w):
    a, b, c = (locked(w, 100 + n, nonce=n) for n in range(3))
    w.ledger.redeem_htlc(a.htlc_id, SECRET)
    for bad in (bytes(31), bytes(33), bytes(32)):
        with pytest.raises(BadPreimage):
            w.ledger.redeem_htlc(b.htlc_id, bad)
    with pytest.raises(HtlcNotExpired):
        w.ledger.refund_htlc(b.htlc_id)
    w.clock.t = TIMELOCK
    w.ledger.refund_htlc(b.htlc_id)
    with pytest.raises(HtlcExpired):
        w.ledger.redeem_htlc(c.htlc_id, SECRET)
    kinds = [e.kind for e in w.ledger.journal(0, 1000)]
    assert kinds[-5:] == ["htlc_lock"] * 3 + ["htlc_redeem", "htlc_refund"]
    assert w.ledger.verify_journal() == len(kinds)
    report = {r.asset: r for r in w.ledger.check_invariants()}[w.asset]
    assert report.htlc_locked == c.amount


@pytest.mark.parametrize(
    "edit",
    [
        {"state": "refunded"},
        {"preimage": "0x" + "00" * 32},
        {"recipient": "0x" + "00" * 32},
        {"amount": 301},
    ],
)
def test_replay_catches_an_edited_htlc_row(w, edit):
    htlc = locked(w)
    w.ledger.redeem_htlc(htlc.htlc_id, SECRET)
    if "recipient" in edit:
        with write_transaction(w.ledger._engine) as conn:
            conn.exec_driver_sql("INSERT INTO ledger_accounts VALUES (?, 0)", (edit["recipient"],))
    with write_transaction(w.ledger._engine) as conn:
        conn.execute(update(HTLCS).values(**edit))
    with pytest.raises(JournalCorrupt, match="htlcs"):
        w.ledger.verify_journal()


# -- transaction format ---------------------------------------------------------------------------


def _lock_body(**changes: str | None) -> dict[str, str]:
    body = {"network": "ferry-test", "kind": "htlc_lock", "account": "0x" + "aa" * 32,
            "nonce": "0", "asset": "eip155:31337/" + NATIVE_TOKEN, "amount": "1",
            "recipient": "0x" + "bb" * 32, "hashlock": "0x" + HASHLOCK.hex(),
            "timelock": str(TIMELOCK)}
    for k, v in changes.items():
        if v is None:
            body.pop(k)
        else:
            body[k] = v
    return body


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({}, None),
        ({"hashlock": "0x" + HASHLOCK.hex().upper()}, ValidationError),
        ({"hashlock": "0x" + "11" * 31}, ValidationError),
        ({"hashlock": "0x" + "11" * 33}, ValidationError),
        ({"hashlock": None}, ValidationError),
        ({"timelock": "0"}, ValidationError),
        ({"timelock": str(2**63)}, ValidationError),
        ({"timelock": str(2**63 - 1)}, None),
        ({"timelock": "01"}, ValidationError),
        ({"recipient": "0x" + "aa" * 32}, ValidationError),  # to oneself
        ({"recipient": "0xbb"}, InvalidAddress),
        ({"to": "0x" + "bb" * 32}, ValidationError),  # a transfer key
        ({"amount": "0"}, ValidationError),
    ],
)
def test_htlc_lock_body_parsing(changes, error):
    signed = SignedTx(_lock_body(**changes), b"\x00" * 64)
    if error is None:
        parsed = parse_transaction(signed)
        assert isinstance(parsed, HtlcLockTx) and parsed.hashlock == HASHLOCK
    else:
        with pytest.raises(error):
            parse_transaction(signed)


def test_sign_htlc_lock_refuses_what_the_ledger_would_refuse():
    key = SigningKey.generate()
    with pytest.raises(ValidationError):
        sign_htlc_lock(key, "n", 0, "eip155:31337/" + NATIVE_TOKEN, 1, bytes(32), bytes(31), 5)
    with pytest.raises(ValidationError):
        sign_htlc_lock(key, "n", 0, "eip155:31337/" + NATIVE_TOKEN, 1, bytes(32), HASHLOCK, 0)
    tx = sign_htlc_lock(key, "n", 0, "eip155:31337/" + NATIVE_TOKEN, 1, bytes(32), HASHLOCK, 5)
    assert tx.htlc_id == tx.tx_id and tx.burn_id is None
    assert SignedTx.from_json(tx.to_json()) == tx


# -- migration 0003 -------------------------------------------------------------------------------


def _version(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql(
                "SELECT version_num FROM ledger_alembic_version").scalar())
    finally:
        engine.dispose()


def test_migration_upgrades_a_0002_ledger_in_place_and_downgrades(tmp_path, clock):
    url = f"sqlite:///{tmp_path}/old.sqlite"
    migrate(url)  # written at head, then downgraded: a 0002 database holding data
    vset, keys = make_validator_set(5, 3)
    h = Harness(ledger=None, validator_set=vset, keys=keys)  # type: ignore[arg-type]
    genesis = LedgerGenesis(vset, {h.chain: h.bridge}, [
        AssetConfig(symbol="wETH", origin_chain=h.chain, origin_token=NATIVE_TOKEN, decimals=18)])
    h.ledger = Ledger.open(url, h.network, genesis, migrate=False)
    alice = SigningKey.generate()
    assert h.ledger.mint(h.certify(h.lock(1, 500, bytes(alice.verify_key)))).status is \
        MintStatus.MINTED
    before = h.ledger.status()
    h.ledger.close()
    downgrade(url, "0002")
    assert _version(url) == "0002"

    migrate(url, "0003")  # pinned: 0004 is tested in test_htlc_mint_ledger.py
    assert _version(url) == "0003"
    upgraded = Ledger.open(url, h.network, genesis, clock=clock)
    try:
        assert upgraded.status() == before
        assert upgraded.verify_journal() == before.journal_seq
        bob = bytes(SigningKey.generate().verify_key)
        tx = sign_htlc_lock(alice, h.network, 0, h.native_asset, 200, bob, HASHLOCK, TIMELOCK)
        upgraded.submit_transaction(tx)
        assert tx.htlc_id is not None
        upgraded.redeem_htlc(tx.htlc_id, SECRET)
        assert upgraded.account(bob).balances == {h.native_asset: 200}
        assert upgraded.verify_journal() == before.journal_seq + 2
    finally:
        upgraded.close()

    fresh = f"sqlite:///{tmp_path}/fresh.sqlite"
    migrate(fresh)
    downgrade(fresh, "0002")
    assert _version(fresh) == "0002"
    migrate(fresh, "0003")
    assert _version(fresh) == "0003"


# -- HTTP -----------------------------------------------------------------------------------------


@pytest.fixture()
def http(w: World) -> Iterator[TestClient]:
    with TestClient(create_ledger_app(w.ledger)) as client:
        yield client


@pytest.fixture()
def client(http: TestClient) -> LedgerClient:
    return LedgerClient("http://testserver", http=http)


HTLC_KEYS = {"htlc_id", "seq", "origin", "sender", "recipient", "asset", "amount", "hashlock",
             "timelock", "state", "preimage", "created_at", "settled_at"}


def test_http_lock_get_list_and_redeem_round_trip(w, http, client):
    tx = w.sign(300)
    receipt = client.submit_transaction(tx)
    assert receipt.htlc_id == tx.htlc_id and tx.htlc_id is not None
    raw_receipt = http.post("/v1/ledger/transactions", json=w.sign(1, nonce=1).to_json()).json()
    assert set(raw_receipt) == {"seq", "burn_id", "htlc_id"} and raw_receipt["burn_id"] is None
    hid = "0x" + tx.htlc_id.hex()
    raw = http.get(f"/v1/ledger/htlcs/{hid}").json()
    assert raw == {
        "htlc_id": hid, "seq": receipt.seq, "origin": "lock",
        "sender": "0x" + bytes(w.alice.verify_key).hex(), "recipient": "0x" + w.bob.hex(),
        "asset": w.asset, "amount": "300", "hashlock": "0x" + HASHLOCK.hex(),
        "timelock": str(TIMELOCK), "state": "locked", "preimage": None, "created_at": T0,
        "settled_at": None}
    assert client.htlc(tx.htlc_id) == w.ledger.htlc(tx.htlc_id)
    listed = http.get("/v1/ledger/htlcs", params={"hashlock": "0x" + HASHLOCK.hex()}).json()
    assert [x["amount"] for x in listed["htlcs"]] == ["300", "1"]
    assert client.htlcs_by_hashlock(HASHLOCK) == w.ledger.htlcs_by_hashlock(HASHLOCK)
    assert client.htlcs_by_hashlock(HASHLOCK, after_seq=receipt.seq) == \
        w.ledger.htlcs_by_hashlock(HASHLOCK)[1:]

    redeemed = client.redeem_htlc(tx.htlc_id, SECRET)
    assert redeemed.state is HtlcState.REDEEMED and redeemed.preimage == SECRET
    raw = http.get(f"/v1/ledger/htlcs/{hid}").json()
    assert set(raw) == HTLC_KEYS
    assert (raw["state"], raw["preimage"], raw["settled_at"]) == (
        "redeemed", "0x" + SECRET.hex(), T0)
    assert client.account(w.bob).balances == {w.asset: 300}
    w.ledger.verify_journal()


def test_http_refund_with_an_empty_or_no_body(w, http, client):
    first, second = locked(w, 100), locked(w, 200, nonce=1)
    w.clock.t = TIMELOCK
    assert client.refund_htlc(first.htlc_id).state is HtlcState.REFUNDED
    response = http.post(f"/v1/ledger/htlcs/0x{second.htlc_id.hex()}/refund")
    assert response.status_code == 200 and response.json()["state"] == "refunded"
    assert client.account(bytes(w.alice.verify_key)).balances == {w.asset: FUNDS}


def test_http_errors_have_their_codes_and_come_back_typed(w, http, client):
    odd = bytes([9]) * 33
    wide = locked(w, 10, hashlock=hashlib.sha256(odd).digest())
    htlc = locked(w, 20, nonce=1)
    settled = locked(w, 30, nonce=2)
    client.redeem_htlc(settled.htlc_id, SECRET)
    before = w.snapshot()
    hid = f"0x{htlc.htlc_id.hex()}"
    cases = [
        (lambda: client.redeem_htlc(wide.htlc_id, odd), BadPreimage, 400,
         ("POST", f"/v1/ledger/htlcs/0x{wide.htlc_id.hex()}/redeem",
          {"preimage": "0x" + odd.hex()})),
        (lambda: client.redeem_htlc(htlc.htlc_id, bytes(32)), BadPreimage, 400,
         ("POST", f"/v1/ledger/htlcs/{hid}/redeem", {"preimage": "0x" + "00" * 32})),
        (lambda: client.redeem_htlc(settled.htlc_id, SECRET), HtlcAlreadySettled, 409,
         ("POST", f"/v1/ledger/htlcs/0x{settled.htlc_id.hex()}/redeem",
          {"preimage": "0x" + SECRET.hex()})),
        (lambda: client.refund_htlc(htlc.htlc_id), HtlcNotExpired, 409,
         ("POST", f"/v1/ledger/htlcs/{hid}/refund", {})),
        (lambda: client.refund_htlc(bytes(32)), UnknownHtlc, 404,
         ("POST", f"/v1/ledger/htlcs/0x{'00' * 32}/refund", {})),
    ]
    for call, error, status, (method, path, body) in cases:
        with pytest.raises(error):
            call()
        response = http.request(method, path, json=body)
        assert response.status_code == status
        assert response.json()["error"]["code"] == error.code
    assert w.snapshot() == before

    w.clock.t = TIMELOCK
    with pytest.raises(HtlcExpired):
        client.redeem_htlc(htlc.htlc_id, SECRET)
    response = http.post(f"/v1/ledger/htlcs/{hid}/redeem", json={"preimage": "0x" + SECRET.hex()})
    assert (response.status_code, response.json()["error"]["code"]) == (409, "htlc_expired")
    assert client.htlc(bytes(32)) is None
    assert http.get(f"/v1/ledger/htlcs/0x{'00' * 32}").json()["error"]["code"] == "unknown_htlc"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/v1/ledger/htlcs/0x12", None, 400, "invalid_address"),
        ("GET", "/v1/ledger/htlcs", None, 400, "invalid_input"),  # hashlock is required
        ("GET", "/v1/ledger/htlcs?hashlock=0x12", None, 400, "invalid_address"),
        ("GET", "/v1/ledger/htlcs?hashlock=0x" + "11" * 32 + "&limit=0", None, 400,
         "invalid_input"),
        ("POST", "/v1/ledger/htlcs/0x" + "11" * 32 + "/redeem", {"preimage": "zz"}, 400,
         "bad_preimage"),
        ("POST", "/v1/ledger/htlcs/0x" + "11" * 32 + "/redeem", {}, 400, "invalid_input"),
        ("POST", "/v1/ledger/htlcs/0x" + "11" * 32 + "/refund", {"x": 1}, 400,
         "invalid_input"),
    ],
)
def test_http_malformed_htlc_requests_are_400(http, method, path, body, status, code):
    response = http.request(method, path, json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


def test_client_refuses_a_short_id_or_hashlock_without_asking(client):
    with pytest.raises(ValidationError):
        client.htlc(bytes(31))
    with pytest.raises(ValidationError):
        client.htlcs_by_hashlock(bytes(31))
