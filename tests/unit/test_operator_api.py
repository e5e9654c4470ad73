"""Operator API (`api.operator`, `api.auth`, `api.ratelimit`) over a real, migrated SQLite
relayer store: rejected calls (401/403) change nothing, allowed calls do what they say, the
ledger is told about mint routes and lock transfers, rescans move the cursor and re-find missed
locks without recording any twice, and rate limits answer 429."""

from __future__ import annotations

import hashlib
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapters.base import BlockRef, LockEvent
from adapters.errors import RpcUnavailable, ValidationError
from api.auth import SCOPES, ApiKeyStore, token_digest
from api.ledger import install_error_handlers
from api.operator import operator_router
from api.ratelimit import install_rate_limits
from ledger.config import AssetConfig
from relayer.api_settings import ApiSection
from relayer.engine import ChainPlan, Engine
from relayer.machine import TransferStatus
from relayer.risk_store import RouteStore
from relayer.store import Change, Store
from validators.risk import RiskSection, RouteLimit, route_key

S = TransferStatus
CHAIN = "eip155:31337"
LEDGER = "ferry:ledger"
BRIDGE = "0x" + "b1" * 20
ETH = "0x" + "00" * 20
ASSET = f"{CHAIN}/{ETH}"
MINT_ROUTE = route_key(CHAIN, LEDGER, ASSET)
BURN_ROUTE = route_key(LEDGER, CHAIN, ASSET)
START = 4
LEDGER_TOKEN = "ledger-operator-secret"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def now(self) -> float:
        return self.t


def block_hash(n: int, branch: str = "a") -> str:
    return "0x" + hashlib.sha256(f"{branch}/{n}".encode()).hexdigest()


def lock(nonce: int, block: int) -> LockEvent:
    return LockEvent(CHAIN, BRIDGE, nonce, ETH, "0x" + "aa" * 20, 10**18, bytes([nonce]) * 32,
                     "0x" + f"{nonce:064x}", 0, block, block_hash(block))


class FakeChain:
    """Just enough of `ChainAdapter` for `Engine.watch_chain` and the rescan's block hash.
    `hidden` locks are not returned until `reveal` (an RPC that missed them)."""

    chain = CHAIN
    confirmation_depth = 2

    def __init__(self, height: int, locks: dict[int, list[int]]) -> None:
        self.height, self.locks, self.hidden = height, locks, set()  # type: ignore[var-annotated]
        self.scans: list[tuple[int, int]] = []

    def head(self) -> BlockRef:
        return BlockRef(self.height, block_hash(self.height))

    def block_hash(self, n: int) -> str | None:
        return block_hash(n) if 0 <= n <= self.height else None

    def lock_events(self, start: int, end: int) -> list[LockEvent]:
        self.scans.append((start, end))
        return [lock(nonce, n) for n in range(start, end + 1) for nonce in self.locks.get(n, [])
                if nonce not in self.hidden]

    def validator_set(self) -> Any:
        raise AssertionError("not used")


class FakeLedger:
    """Records the operator calls the API passes on; `fail` makes them raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = False

    def _do(self, *call: Any) -> bool:
        if self.fail:
            raise RpcUnavailable("ledger down", chain=LEDGER)
        self.calls.append(call)
        return True

    def pause_route(self, route: str, reason: str, token: str) -> bool:
        return self._do("pause", route, reason, token)

    def unpause_route(self, route: str, token: str) -> bool:
        return self._do("unpause", route, token)

    def release_mint(self, event_id: str, token: str) -> bool:
        return self._do("release", event_id, token)


def make_cfg(ledger_token: str | None = LEDGER_TOKEN) -> Any:
    return SimpleNamespace(
        assets=[AssetConfig(symbol="wETH", origin_chain=CHAIN, origin_token=ETH, decimals=18)],
        risk=RiskSection(routes=[RouteLimit(source_chain=CHAIN, dest_chain=LEDGER, asset=ASSET,
                                            daily_limit=5 * 10**18)]),
        chains=[SimpleNamespace(caip2=CHAIN, start_block=START)], bitcoin=[], cosmos=[], solana=[],
        api=ApiSection(ledger_operator_token=ledger_token))


def make_app(ctx: Any, per_ip: str = "10000/minute", per_key: str = "10000/minute") -> FastAPI:
    app = FastAPI()
    app.include_router(operator_router(ctx))
    install_error_handlers(app)
    install_rate_limits(app, ApiSection(rate_limit_per_ip=per_ip, rate_limit_per_key=per_key))
    return app


@pytest.fixture
def chain() -> FakeChain:
    return FakeChain(12, {5: [1], 8: [2]})


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(f"sqlite:///{tmp_path}/relayer.sqlite", FakeClock())


@pytest.fixture
def engine(store: Store, chain: FakeChain) -> Engine:
    plan = ChainPlan(adapter=chain, start_block=START, max_block_range=3,  # type: ignore[arg-type]
                     assets={ETH: ASSET})
    return Engine(store, {CHAIN: plan}, SimpleNamespace(status=None), "ferry-test",
                  mint_request=None)


@pytest.fixture
def ctx(store: Store, chain: FakeChain, engine: Engine) -> Any:
    """Scanned to the head (trail 3, 6, 9, 12); lock 1 held, lock 2 confirmed; the burn route
    paused."""
    while (store.cursor(f"chain:{CHAIN}") or BlockRef(0, "")).number < chain.height:
        engine.watch_chain(CHAIN)
    one, two = store.get(lock(1, 5).event_id), store.get(lock(2, 8).event_id)
    store.advance([Change(one.id, S.CONFIRMED, "deep"), Change(two.id, S.CONFIRMED, "deep")])
    store.advance([Change(one.id, S.HELD, "ledger refused")])
    RouteStore(store).pause(BURN_ROUTE, "investigating", by="setup")
    return SimpleNamespace(cfg=make_cfg(), store=store, ledger=FakeLedger(),
                           inbox=SimpleNamespace(adapters={CHAIN: chain}), swaps=None,
                           clock=store.clock)


@pytest.fixture
def client(ctx: Any) -> TestClient:
    return TestClient(make_app(ctx))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_key(ctx: Any, *scopes: str, name: str = "ops") -> str:
    return ApiKeyStore(ctx.store).create(name, scopes)[1]


def snapshot(ctx: Any) -> tuple[Any, ...]:
    store = ctx.store
    rows = [tuple(store.get_by_id(i)) for i in (1, 2)]
    return (sorted(RouteStore(store).paused()), rows, store.cursor(f"chain:{CHAIN}"),
            store.scanned_trail(CHAIN), list(ctx.ledger.calls),
            [[tuple(h) for h in store.history(i)] for i in (1, 2)])


# (method, path, body, scope): every operator route, aimed at something it would change.
CALLS = [
    ("POST", "/v1/operator/routes/pause", {"route": MINT_ROUTE, "reason": "drill"},
     "routes:write"),
    ("POST", "/v1/operator/routes/unpause", {"route": BURN_ROUTE}, "routes:write"),
    ("POST", f"/v1/operator/chains/{CHAIN}/rescan", {"from_height": 7}, "chains:write"),
    ("POST", "/v1/operator/transfers/1/retry", None, "transfers:write"),
    ("POST", "/v1/operator/transfers/2/release", None, "transfers:write"),
    ("GET", "/v1/operator/risk", None, "risk:read"),
]
IDS = [c[1].rsplit("/", 2)[-2] + "/" + c[1].rsplit("/", 1)[-1] for c in CALLS]


# ------------------------------------------------------------------ rejected calls
@pytest.mark.parametrize(("method", "path", "body", "scope"), CALLS, ids=IDS)
def test_calls_without_a_valid_key_are_401_and_change_nothing(client, ctx, method, path, body,
                                                              scope):
    revoked = new_key(ctx, scope, name="old")
    ApiKeyStore(ctx.store).revoke(1)
    before = snapshot(ctx)
    for headers in ({}, bearer("fry_" + "00" * 32), bearer("not-a-key"), bearer(revoked),
                    {"Authorization": "Basic b3BzOm9wcw=="}):
        answer = client.request(method, path, json=body, headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(ctx) == before


@pytest.mark.parametrize(("method", "path", "body", "scope"), CALLS, ids=IDS)
def test_calls_with_a_key_lacking_the_scope_are_403_and_change_nothing(client, ctx, method,
                                                                       path, body, scope):
    token = new_key(ctx, *(SCOPES - {scope}))
    before = snapshot(ctx)
    answer = client.request(method, path, json=body, headers=bearer(token))
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden"
    assert snapshot(ctx) == before


def test_an_unauthenticated_call_with_a_bad_body_is_401_not_400(client, ctx):
    answer = client.post("/v1/operator/routes/pause", json={"route": 1, "evil": True})
    assert answer.status_code == 401


# ------------------------------------------------------------------ allowed calls
def test_pausing_a_mint_route_pauses_it_here_and_at_the_ledger(client, ctx, caplog):
    token = new_key(ctx, "routes:write", name="alice")
    with caplog.at_level(logging.INFO, logger="api.operator.audit"):
        answer = client.post("/v1/operator/routes/pause",
                             json={"route": MINT_ROUTE, "reason": "drill"}, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"route": MINT_ROUTE, "paused": True, "changed": True,
                             "ledger": {"status": "done", "changed": True, "detail": ""},
                             "warning": None}
    pause = RouteStore(ctx.store).paused()[MINT_ROUTE]
    assert (pause.reason, pause.by) == ("drill", "alice")
    assert ctx.ledger.calls == [("pause", MINT_ROUTE, "drill", LEDGER_TOKEN)]
    lines = [r.getMessage() for r in caplog.records if r.name == "api.operator.audit"]
    assert lines == [("operator action key_id=1 key_name=alice action=route.pause "
                      f"target={MINT_ROUTE} changed=True")]
    assert token not in caplog.text and token_digest(token) not in caplog.text


def test_unpausing_a_burn_route_does_not_call_the_ledger(client, ctx):
    token = new_key(ctx, "routes:write")
    answer = client.post("/v1/operator/routes/unpause", json={"route": BURN_ROUTE},
                         headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"] is True and answer.json()["ledger"]["status"] == "not_applicable"
    assert not RouteStore(ctx.store).is_paused(BURN_ROUTE) and ctx.ledger.calls == []


def test_without_a_ledger_token_the_ledger_step_is_skipped_with_a_warning(ctx):
    ctx.cfg = make_cfg(ledger_token=None)
    client = TestClient(make_app(ctx))
    answer = client.post("/v1/operator/routes/pause", json={"route": MINT_ROUTE, "reason": "x"},
                         headers=bearer(new_key(ctx, "routes:write")))
    assert answer.status_code == 200
    assert answer.json()["ledger"]["status"] == "skipped" and "ledger_operator_token" in (
        answer.json()["warning"])
    assert RouteStore(ctx.store).is_paused(MINT_ROUTE) and ctx.ledger.calls == []


def test_a_ledger_failure_is_reported_and_the_relayer_pause_stands(client, ctx):
    ctx.ledger.fail = True
    answer = client.post("/v1/operator/routes/pause", json={"route": MINT_ROUTE, "reason": "x"},
                         headers=bearer(new_key(ctx, "routes:write")))
    assert answer.status_code == 200
    assert answer.json()["ledger"]["status"] == "failed"
    assert answer.json()["ledger"]["detail"].startswith("rpc_unavailable")
    assert RouteStore(ctx.store).is_paused(MINT_ROUTE)


@pytest.mark.parametrize(("path", "body", "status", "code"), [
    ("/v1/operator/routes/pause", {"route": f"{CHAIN}>{LEDGER}:nope", "reason": "x"}, 404,
     "unknown_route"),
    ("/v1/operator/routes/unpause", {"route": MINT_ROUTE + "x"}, 404, "unknown_route"),
    ("/v1/operator/routes/pause", {"route": MINT_ROUTE, "reason": "x", "extra": 1}, 400,
     "invalid_input"),
    ("/v1/operator/routes/pause", {"route": MINT_ROUTE, "reason": ""}, 400, "invalid_input"),
    ("/v1/operator/routes/pause", {"route": MINT_ROUTE}, 400, "invalid_input"),
], ids=["unknown-route", "unknown-unpause", "extra-field", "empty-reason", "no-reason"])
def test_bad_route_calls_are_refused_and_change_nothing(client, ctx, path, body, status, code):
    token = new_key(ctx, "routes:write")
    before = snapshot(ctx)
    answer = client.post(path, json=body, headers=bearer(token))
    assert answer.status_code == status and answer.json()["error"]["code"] == code
    assert snapshot(ctx) == before


def test_retry_moves_a_held_transfer_back_to_confirmed(client, ctx):
    token = new_key(ctx, "transfers:write")
    answer = client.post("/v1/operator/transfers/1/retry", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == S.CONFIRMED.value and answer.json()["changed"] is True
    assert ctx.store.get_by_id(1).status == S.CONFIRMED.value
    assert ctx.store.history(1)[-1].reason == "operator retry by ops"


def test_retry_of_a_transfer_that_is_not_held_is_409(client, ctx):
    token = new_key(ctx, "transfers:write")
    answer = client.post("/v1/operator/transfers/2/retry", headers=bearer(token))
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "illegal_transition"
    assert ctx.store.get_by_id(2).status == S.CONFIRMED.value


def test_release_by_event_key_flags_the_transfer_and_releases_the_ledger_mint(client, ctx):
    token = new_key(ctx, "transfers:write")
    key = lock(2, 8).event_id
    answer = client.post(f"/v1/operator/transfers/{key}/release", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert answer.json()["transfer_id"] == 2 and answer.json()["ledger"]["status"] == "done"
    assert ctx.store.get_by_id(2).operator_released
    assert ctx.ledger.calls == [("release", key, LEDGER_TOKEN)]
    again = client.post("/v1/operator/transfers/2/release", headers=bearer(token))
    assert again.status_code == 200 and again.json()["changed"] is False


@pytest.mark.parametrize("ref", ["999", f"{CHAIN}/{BRIDGE}/77", "0x" + "ab" * 32,
                                 "tr_" + "00" * 16])
def test_an_unknown_transfer_is_404(client, ctx, ref):
    token = new_key(ctx, "transfers:write")
    for action in ("retry", "release"):
        answer = client.post(f"/v1/operator/transfers/{ref}/{action}", headers=bearer(token))
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "unknown_transfer"


def test_risk_view_lists_pauses_and_route_usage(client, ctx):
    answer = client.get("/v1/operator/risk", headers=bearer(new_key(ctx, "risk:read")))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [p["route"] for p in body["paused"]] == [BURN_ROUTE]
    assert body["routes"] == [{"route": MINT_ROUTE, "window_s": 86_400,
                               "daily_limit": str(5 * 10**18), "large_transfer": None,
                               "delay_s": 86_400, "used": "0", "paused": False}]


# ------------------------------------------------------------------ rescan
def test_rescan_moves_the_cursor_back_and_finds_a_missed_lock_without_duplicates(
    client, ctx, chain, engine
):
    store = ctx.store
    chain.locks[10] = [3]  # a lock the first scan missed (a faulty RPC, say)
    before = {n: store.history(store.get(lock(n, b).event_id).id) for n, b in ((1, 5), (2, 8))}
    assert store.get(lock(3, 10).event_id) is None
    answer = client.post(f"/v1/operator/chains/{CHAIN}/rescan", json={"from_height": 7},
                         headers=bearer(new_key(ctx, "chains:write")))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"chain": CHAIN, "requested_from_height": 7, "from_height": 7,
                             "previous_cursor": 12}
    assert store.cursor(f"chain:{CHAIN}") == BlockRef(6, block_hash(6))
    assert max(b.number for b in store.scanned_trail(CHAIN)) == 6
    chain.scans.clear()
    while store.cursor(f"chain:{CHAIN}").number < chain.height:
        engine.watch_chain(CHAIN)
    assert chain.scans[0][0] == 7
    assert store.get(lock(3, 10).event_id).status == S.OBSERVED.value
    after = {n: store.history(store.get(lock(n, b).event_id).id) for n, b in ((1, 5), (2, 8))}
    assert after == before  # lock 2 (block 8) was seen again and left alone
    assert store.counts_by_status() == {S.HELD.value: 1, S.CONFIRMED.value: 1,
                                        S.OBSERVED.value: 1}


def test_rescan_without_the_chain_adapter_uses_the_newest_trail_block_below(client, ctx):
    ctx.inbox = SimpleNamespace()  # the API process alone: no chain adapters
    answer = client.post(f"/v1/operator/chains/{CHAIN}/rescan", json={"from_height": 9},
                         headers=bearer(new_key(ctx, "chains:write")))
    assert answer.status_code == 200, answer.text
    assert answer.json()["from_height"] == 7  # trail 3, 6, 9, 12: the newest <= 8 is 6
    assert ctx.store.cursor(f"chain:{CHAIN}") == BlockRef(6, block_hash(6))


def test_rescan_from_start_block_forgets_the_cursor_and_the_watcher_starts_afresh(
    client, ctx, chain, engine
):
    answer = client.post(f"/v1/operator/chains/{CHAIN}/rescan", json={"from_height": START},
                         headers=bearer(new_key(ctx, "chains:write")))
    assert answer.status_code == 200 and answer.json()["from_height"] == START
    assert ctx.store.cursor(f"chain:{CHAIN}") is None and ctx.store.scanned_trail(CHAIN) == []
    chain.scans.clear()
    engine.watch_chain(CHAIN)
    assert chain.scans[0][0] == START
    assert ctx.store.counts_by_status() == {S.HELD.value: 1, S.CONFIRMED.value: 1}


@pytest.mark.parametrize(("chain_id", "height", "status", "code"), [
    (CHAIN, 13, 409, "rescan_refused"),  # above the cursor (12): nothing scanned there yet
    (CHAIN, START - 1, 409, "rescan_refused"),  # below start_block
    ("eip155:999", 5, 404, "unknown_chain"),
])
def test_rescan_out_of_range_or_of_an_unknown_chain_is_refused(client, ctx, chain_id, height,
                                                                status, code):
    before = snapshot(ctx)
    answer = client.post(f"/v1/operator/chains/{chain_id}/rescan", json={"from_height": height},
                         headers=bearer(new_key(ctx, "chains:write")))
    assert answer.status_code == status and answer.json()["error"]["code"] == code
    assert snapshot(ctx) == before


def test_rescan_refuses_a_negative_or_non_integer_height(client, ctx):
    token = new_key(ctx, "chains:write")
    for bad in (-1, "7", 7.5, None):
        answer = client.post(f"/v1/operator/chains/{CHAIN}/rescan", json={"from_height": bad},
                             headers=bearer(token))
        assert answer.status_code == 400, bad


# ------------------------------------------------------------------ keys
def test_only_the_sha256_of_a_token_is_stored(ctx):
    keys = ApiKeyStore(ctx.store)
    key, token = keys.create("ops", ["risk:read"])
    assert token.startswith("fry_") and len(token) == 68
    with ctx.store.engine.connect() as conn:
        raw = [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM api_keys")]
    assert raw == [(key.id, "ops", hashlib.sha256(token.encode()).hexdigest(), "risk:read",
                    key.created_at, None)]
    assert keys.authenticate(token) == key
    assert keys.revoke(key.id) is True and keys.revoke(key.id) is False
    assert keys.authenticate(token) is None


@pytest.mark.parametrize(("name", "scopes"), [
    ("ops", []), ("ops", ["routes:admin"]), ("", ["risk:read"]), ("a b", ["risk:read"]),
])
def test_bad_key_names_and_scopes_are_refused(ctx, name, scopes):
    with pytest.raises(ValidationError):
        ApiKeyStore(ctx.store).create(name, scopes)
    assert ApiKeyStore(ctx.store).all() == []


# ------------------------------------------------------------------ rate limits
def test_per_ip_limit_answers_429_with_retry_after(ctx):
    client = TestClient(make_app(ctx, per_ip="3/minute"))
    token = new_key(ctx, "risk:read")
    codes = [client.get("/v1/operator/risk", headers=bearer(token)).status_code
             for _ in range(3)]
    assert codes == [200, 200, 200]
    over = client.get("/v1/operator/risk", headers=bearer(token))
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(over.headers["Retry-After"]) <= 60


def test_per_key_limit_counts_each_key_apart(ctx):
    client = TestClient(make_app(ctx, per_key="2/minute"))
    first, second = new_key(ctx, "risk:read", name="a"), new_key(ctx, "risk:read", name="b")
    codes = [client.get("/v1/operator/risk", headers=bearer(first)).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.get("/v1/operator/risk", headers=bearer(second)).status_code == 200


def test_a_rate_limited_call_changes_nothing(ctx):
    client = TestClient(make_app(ctx, per_key="1/minute"))
    token = new_key(ctx, "routes:write")
    assert client.get("/v1/operator/risk", headers=bearer(token)).status_code == 403
    before = snapshot(ctx)
    answer = client.post("/v1/operator/routes/pause", json={"route": MINT_ROUTE, "reason": "x"},
                         headers=bearer(token))
    assert answer.status_code == 429 and snapshot(ctx) == before


def test_a_bad_limit_string_is_a_config_error(ctx):
    from adapters.errors import ConfigError

    with pytest.raises(ConfigError):
        make_app(ctx, per_ip="lots")


# ------------------------------------------------------------------ CLI
def test_cli_creates_lists_and_revokes_keys_and_prints_the_token_once(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from relayer.cli import app

    config = tmp_path / "ferry.toml"
    config.write_text(f'[relayer]\ndatabase_url = "sqlite:///{tmp_path}/cli.sqlite"\n')
    monkeypatch.setenv("FERRY_CONFIG", str(config))
    runner = CliRunner()
    made = runner.invoke(app, ["api", "keys", "create", "--name", "ops", "--scope",
                               "routes:write", "--scope", "risk:read"])
    assert made.exit_code == 0, made.output
    created = json.loads(made.output)
    assert created["scopes"] == ["risk:read", "routes:write"]
    listed = runner.invoke(app, ["api", "keys", "list"])
    assert created["token"] not in listed.output
    assert [k["name"] for k in json.loads(listed.output)["keys"]] == ["ops"]
    revoked = runner.invoke(app, ["api", "keys", "revoke", str(created["id"])])
    assert json.loads(revoked.output)["revoked"] is True
    store = Store.open(f"sqlite:///{tmp_path}/cli.sqlite")
    assert ApiKeyStore(store).authenticate(created["token"]) is None
