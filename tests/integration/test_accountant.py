"""The accountant on a real anvil bridge with the real ledger, relayer and validators: an
under-collateralised mint forced into the ledger's database halts the asset's routes, raises the
alert and the gauge, holds a new lock back as ``paused``, and only an operator's unpause (after
the books are corrected) lets it through."""

from __future__ import annotations

import logging

import pytest
from nacl.signing import SigningKey
from sqlalchemy import create_engine, text

from adapters.base import NATIVE_TOKEN, asset_key
from relayer.accountant import routes_of
from relayer.risk_store import RouteStore
from tests.integration.stack import UNIT, Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path, anvil_eth):
    s = Stack(tmp_path, {"ethereum": anvil_eth})
    yield s
    s.close()


def force_mint(stack: Stack, account: bytes, asset: str, amount: int) -> None:
    """Credit `amount` of `asset` to `account` straight in the ledger's tables (no lock behind
    it): what a bug or a stolen database key could do. `amount` < 0 takes it back."""
    db = create_engine(stack.cfg.ledger.database_url)
    with db.begin() as conn:
        supply, minted = conn.execute(text(
            "SELECT supply, minted_total FROM ledger_assets WHERE asset = :a"), {"a": asset}).one()
        conn.execute(text("UPDATE ledger_assets SET supply = :s, minted_total = :m "
                          "WHERE asset = :a"),
                     {"s": str(int(supply) + amount), "m": str(int(minted) + amount), "a": asset})
        holder = "0x" + account.hex()
        (balance,) = conn.execute(text(
            "SELECT amount FROM ledger_balances WHERE account = :h AND asset = :a"),
            {"h": holder, "a": asset}).one()
        conn.execute(text("UPDATE ledger_balances SET amount = :v WHERE account = :h "
                          "AND asset = :a"), {"v": str(int(balance) + amount), "h": holder,
                                              "a": asset})
    db.dispose()


def test_forced_under_collateralised_mint_halts_the_route_until_an_operator_unpauses(
        stack, caplog):
    chain = stack.chains["ethereum"].caip2
    asset = asset_key(chain, NATIVE_TOKEN)
    mint_route, release_route = routes_of(asset, chain)
    accountant = stack.engine.accountant
    reg = stack.engine.metrics.registry
    routes = RouteStore(stack.engine.store)
    user = bytes(SigningKey.generate().verify_key)

    stack.lock("ethereum", UNIT, user)
    stack.settle()
    assert stack.balance(user, "ethereum") == UNIT
    [books] = [b for b in accountant.run() if b.asset == asset]
    assert books.exact and books.shortfall == 0
    assert reg.get_sample_value("ferry_risk_solvency_halted", {"asset": asset}) == 0
    assert routes.paused() == {}

    force_mint(stack, user, asset, 5 * UNIT)
    with caplog.at_level(logging.ERROR, logger="relayer.accountant"):
        [books] = [b for b in accountant.run() if b.asset == asset]
    assert books.supply == 6 * UNIT and books.backing == UNIT and books.shortfall == 5 * UNIT
    assert set(routes.paused()) == {mint_route, release_route}
    assert {(p.reason, p.by) for p in routes.paused().values()} == {("solvency", "accountant")}
    assert reg.get_sample_value("ferry_risk_solvency_halted", {"asset": asset}) == 1
    assert reg.get_sample_value("ferry_risk_route_paused", {"route": mint_route}) == 1
    assert reg.get_sample_value("ferry_risk_route_paused", {"route": release_route}) == 1
    alerts = [m for m in caplog.messages if m.startswith("ALERT solvency")]
    assert len(alerts) == 1 and f"supply={6 * UNIT}" in alerts[0]

    tx = stack.lock("ethereum", 2 * UNIT, user)
    stack.settle()
    [row] = stack.engine.store.by_source_tx(tx)
    assert (row.status, row.wait_reason, row.wait_until) == ("transfer.attested", "paused", None)
    assert stack.balance(user, "ethereum") == 6 * UNIT  # the new lock was not minted

    # The books are put right; the accountant does not lift the halt by itself.
    force_mint(stack, user, asset, -5 * UNIT)
    [books] = [b for b in accountant.run() if b.asset == asset]
    assert books.shortfall == 0
    assert set(routes.paused()) == {mint_route, release_route}
    stack.settle()
    assert stack.status(row.event_key) == "transfer.attested"

    assert routes.unpause(mint_route, by="ops") and routes.unpause(release_route, by="ops")
    stack.settle()
    assert stack.status(row.event_key) == "transfer.executed"
    assert stack.engine.store.get(row.event_key).wait_reason is None
    assert stack.balance(user, "ethereum") == 3 * UNIT
    accountant.run()
    assert reg.get_sample_value("ferry_risk_solvency_halted", {"asset": asset}) == 0
    assert reg.get_sample_value("ferry_risk_route_paused", {"route": mint_route}) == 0
