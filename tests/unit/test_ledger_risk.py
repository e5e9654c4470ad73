"""The ledger's risk engine (`ledger.risk`) on a real SQLite ledger with a moved clock: the
rolling per-route limit, the large-transfer delay, pauses, and operator calls over HTTP."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from adapters.errors import Unauthorized
from api.ledger import create_ledger_app
from ledger import risk
from ledger.client import LedgerClient
from ledger.config import LedgerGenesis
from ledger.db import read_transaction
from ledger.service import Ledger
from ledger.testing import Harness, open_harness
from ledger.types import MintResult, MintStatus
from validators.risk import RiskSection, RouteLimit

T0 = 1_700_000_000.0
DAY = 86_400
DELAY = 3_600
LIMIT = 1_000
LARGE = 500
TOKEN = "operator-secret"
ALICE = b"\xa1" * 32


class MovedClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    h = open_harness(url)
    h.ledger.close()
    clock = MovedClock()
    section = RiskSection(window_s=DAY, delay_s=DELAY, routes=[RouteLimit(
        source_chain=h.chain, dest_chain="ferry:ledger", asset=h.native_asset,
        daily_limit=LIMIT, large_transfer=LARGE)])
    h.ledger = Ledger.open(url, h.network, LedgerGenesis(validator_set=h.validator_set),
                           clock=clock, risk=section,
                           operator_token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest())
    http = TestClient(create_ledger_app(h.ledger))
    yield h, clock, http, LedgerClient("http://unused", http=http)
    h.ledger.close()


def mint(h: Harness, nonce: int, amount: int, **kw: object) -> MintResult:
    return h.ledger.mint(h.certify(h.lock(nonce, amount, ALICE, **kw)))  # type: ignore[arg-type]


def balance(h: Harness) -> int:
    return h.ledger.account(ALICE).balances.get(h.native_asset, 0)


def route(h: Harness) -> str:
    return risk.mint_route(h.chain, h.native_asset)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_mints_under_the_limit_and_records_window_usage(world):
    h, clock, _http, client = world
    assert mint(h, 1, 300).status == "minted"
    clock.t += 10
    assert mint(h, 2, 400).status == "minted"
    assert balance(h) == 700
    [usage] = client.risk().usage
    assert (usage.route, usage.used, usage.count, usage.daily_limit) == (route(h), 700, 2, LIMIT)


def test_over_the_limit_is_deferred_with_retry_at_and_writes_nothing_but_first_sight(world):
    h, clock, _http, _client = world
    assert mint(h, 1, 400).status == "minted"
    clock.t = T0 + 100
    assert mint(h, 2, 400).status == "minted"
    head = h.ledger.status().journal_seq
    clock.t = T0 + 200
    result = mint(h, 3, 300)
    assert (result.status, result.code, result.seq) == (MintStatus.DEFERRED, "rate_limited", None)
    assert result.retry_at == T0 + DAY  # when the first 400 leaves the window
    assert h.ledger.status().journal_seq == head and balance(h) == 800
    assert [d.event_id for d in h.ledger.risk_report().deferred] == [h.lock(3, 300, ALICE).event_id]

    clock.t = T0 + DAY - 1  # still inside the window
    assert mint(h, 3, 300).status == "deferred"
    clock.t = T0 + DAY  # the window slid past the first mint
    assert mint(h, 3, 300).status == "minted"
    assert balance(h) == 1100 and h.ledger.risk_report().deferred == []
    h.ledger.check_invariants()


def test_more_than_the_whole_limit_waits_for_an_operator(world):
    h, clock, _http, client = world
    assert mint(h, 1, LIMIT + 1).code == "large_transfer_delay"
    clock.t = T0 + DELAY
    result = mint(h, 1, LIMIT + 1)
    assert (result.status, result.code, result.retry_at) == ("deferred", "rate_limited", None)
    [deferred] = client.risk().deferred
    assert (deferred.reason, deferred.ready_at) == ("rate_limit", None)
    client.release_mint(result.event_id, TOKEN)
    assert mint(h, 1, LIMIT + 1).status == "minted"


def test_mints_accepted_earlier_in_the_same_batch_count(world):
    h, _clock, _http, _client = world
    results = h.ledger.mint_batch([h.certify(h.lock(n, 400, ALICE)) for n in (1, 2, 3)])
    assert [r.status for r in results] == ["minted", "minted", "deferred"]
    assert results[2].code == "rate_limited"


def test_large_mint_waits_the_delay_from_first_sight_then_mints(world):
    h, clock, _http, _client = world
    first = mint(h, 1, 600)
    assert (first.status, first.code, first.retry_at) == ("deferred", "large_transfer_delay",
                                                          T0 + DELAY)
    clock.t = T0 + DELAY / 2
    again = mint(h, 1, 600)
    assert (again.status, again.retry_at) == ("deferred", T0 + DELAY)  # delay not restarted
    [deferred] = h.ledger.risk_report().deferred
    assert (deferred.first_seen, deferred.ready_at, deferred.reason) == (
        T0, T0 + DELAY, "large_transfer_delay")
    clock.t = T0 + DELAY
    assert mint(h, 1, 600).status == "minted"
    assert balance(h) == 600


def test_unlimited_route_is_not_held_and_keeps_no_first_sight_row(world):
    h, _clock, _http, _client = world
    assert mint(h, 1, 10**20, token=h.token).status == "minted"
    with read_transaction(h.ledger._engine) as conn:
        assert conn.execute(select(func.count()).select_from(risk.SEEN)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(risk.USAGE)).scalar_one() == 1


def test_operator_release_over_http_with_the_right_token_mints_on_next_submit(world):
    h, _clock, http, client = world
    event_id = h.lock(1, 600, ALICE).event_id
    assert mint(h, 1, 600).status == "deferred"

    for headers in ({}, auth("wrong"), {"Authorization": TOKEN}):
        answer = http.post("/v1/ledger/risk/release", json={"event_id": event_id},
                           headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
    with pytest.raises(Unauthorized):
        client.release_mint(event_id, "wrong")
    [deferred] = client.risk().deferred
    assert not deferred.released
    assert mint(h, 1, 600).status == "deferred"  # nothing changed

    assert client.risk().released == []
    assert client.release_mint(event_id, TOKEN) is True
    assert client.release_mint(event_id, TOKEN) is False  # already released
    assert client.risk().deferred[0].released
    assert client.risk().released == [event_id]
    assert mint(h, 1, 600).status == "minted"
    assert client.release_mint(event_id, TOKEN) is False  # already minted


def test_release_before_first_sight_lets_the_mint_through(world):
    h, _clock, _http, client = world
    event_id = h.lock(1, 600, ALICE).event_id
    assert client.release_mint(event_id, TOKEN) is True
    assert client.risk().deferred == []  # not seen yet: nothing deferred
    assert client.risk().released == [event_id]  # published: validators honour it
    assert mint(h, 1, 600).status == "minted"
    assert client.risk().released == []  # minted: no longer listed


def test_paused_route_defers_until_unpaused_and_release_does_not_skip_a_pause(world):
    h, _clock, http, client = world
    answer = http.post("/v1/ledger/risk/pause", json={"route": route(h), "reason": "x"},
                       headers=auth("wrong"))
    assert answer.status_code == 401
    assert client.risk().paused == []

    assert client.pause_route(route(h), "accountant mismatch", TOKEN) is True
    assert client.pause_route(route(h), "again", TOKEN) is False
    [paused] = client.risk().paused
    assert (paused.route, paused.reason, paused.at) == (route(h), "accountant mismatch", T0)
    result = mint(h, 1, 100)
    assert (result.status, result.code, result.retry_at) == ("deferred", "route_paused", None)
    client.release_mint(result.event_id, TOKEN)
    assert mint(h, 1, 100).status == "deferred"

    assert http.post("/v1/ledger/risk/unpause", json={"route": route(h)}).status_code == 401
    assert client.unpause_route(route(h), TOKEN) is True
    assert client.unpause_route(route(h), TOKEN) is False
    assert mint(h, 1, 100).status == "minted"


def test_duplicate_after_mint_stays_duplicate_even_when_the_route_is_held(world):
    h, clock, _http, client = world
    first = mint(h, 1, 400)
    assert first.status == "minted"
    assert mint(h, 2, 600).status == "deferred"
    client.pause_route(route(h), "halt", TOKEN)
    clock.t += 10
    again = mint(h, 1, 400)
    assert (again.status, again.seq) == ("duplicate", first.seq)


def test_deferred_status_and_retry_at_flow_through_the_client(world):
    h, _clock, _http, client = world
    [result] = client.submit_mints([h.certify(h.lock(1, 600, ALICE))])
    assert (result.status, result.code, result.retry_at) == ("deferred", "large_transfer_delay",
                                                             T0 + DELAY)


def test_operator_calls_refused_when_no_token_is_configured(tmp_path):
    h = open_harness(f"sqlite:///{tmp_path}/l.sqlite")
    http = TestClient(create_ledger_app(h.ledger))
    answer = http.post("/v1/ledger/risk/pause", json={"route": "a>b:c", "reason": ""},
                       headers=auth(TOKEN))
    assert answer.status_code == 401
    assert http.get("/v1/ledger/risk").json()["paused"] == []


@pytest.mark.parametrize("data, expected", [
    ({"event_id": "e", "status": "minted", "code": None, "seq": "3"},
     MintResult("e", MintStatus.MINTED, None, 3)),
    ({"event_id": "e", "status": "deferred", "code": "rate_limited", "seq": None,
      "retry_at": 12.5}, MintResult("e", MintStatus.DEFERRED, "rate_limited", None, 12.5)),
])
def test_mint_result_json_tolerates_a_missing_retry_at(data, expected):
    assert MintResult.from_json(data) == expected
    assert MintResult.from_json(expected.to_json()) == expected


def test_mint_result_json_refuses_a_bad_retry_at():
    from adapters.errors import ValidationError

    with pytest.raises(ValidationError):
        MintResult.from_json({"event_id": "e", "status": "deferred", "retry_at": "soon"})
