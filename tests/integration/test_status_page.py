"""The status page (`GET /status`) in a real browser: Debian's headless chromium, driven by
Playwright, against the API served by uvicorn on a free loopback port over the in-process stack
on a real anvil node. The test moves the stack (`tick`, `mine`, `run_validators`) and waits for
the page, which polls the API on its own, to show each step without a reload.

Needs ``/usr/bin/chromium`` (``make install`` installs it); ``playwright install`` is never run.
Set ``FERRY_STATUS_SCREENSHOT=<path.png>`` to also keep a screenshot of the executed transfer.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from nacl.signing import SigningKey
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from adapters.base import NATIVE_TOKEN, asset_key
from api.app import ApiContext, create_api_app
from api.ledger import install_error_handlers
from api.status_page import status_router
from api.swaps import swaps_router
from htlc.hashlock import hashlock_of, new_secret
from tests.integration.stack import UNIT, Stack
from tests.integration.test_api_stack import send_call
from tests.integration.test_swap_api import DEPTH as SWAP_DEPTH
from tests.integration.test_swap_api import Stack as SwapStack
from validators.risk import RiskSection

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SERVER_START_TIMEOUT_S = 10.0
PAGE_TIMEOUT_MS = 15_000  # the page polls every 1.5 s
DELAY_S = 3600  # the large-transfer delay of the risk test
# Chromium logs every 4xx answer to fetch(); the page looks ids up by asking, so 404s are normal.
EXPECTED_CONSOLE = re.compile(r"Failed to load resource: the server responded with a status of 4")


@pytest.fixture
def stack(tmp_path: Path, anvil_eth) -> Iterator[Stack]:
    s = Stack(tmp_path, {"ethereum": anvil_eth})
    yield s
    s.close()


def serve_api(stack: Stack) -> AbstractContextManager[str]:
    """The API app over `stack`, served on a free loopback port (see `serve`)."""
    ctx = ApiContext(cfg=stack.cfg, store=stack.engine.store, ledger=stack.ledger_client(),
                     inbox=stack.inbox, swaps=None, clock=stack.engine.store.clock)
    return serve(create_api_app(ctx, rate_limits=False))


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """`app` served by uvicorn in a thread on a free loopback port; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class Browser:
    """A page of a fresh headless chromium, with what went wrong in it."""

    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions
    urls: list[str] = field(default_factory=list)  # every request the page made

    def lookup(self, text: str) -> None:
        """Paste `text` into the box and submit, as a user would."""
        self.page.fill("#q", text)
        self.page.click("button[type=submit]")

    def shot(self, path: Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make install`"
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1000, "height": 900}, locale="en-GB",
            timezone_id="UTC")
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        page = context.new_page()
        b = Browser(page, context)
        page.on("console", lambda m: b.errors.append(m.text)
                if m.type == "error" and not EXPECTED_CONSOLE.match(m.text) else None)
        page.on("pageerror", lambda exc: b.errors.append(str(exc)))
        page.on("request", lambda r: b.urls.append(r.url))
        try:
            yield b
        finally:
            context.close()


def count_of(page: Page, progress_id: str) -> tuple[int, int]:
    """(have, need) as the page shows them in ``#<progress_id>-count`` ("n / m")."""
    text = page.locator(f"#{progress_id}-count").inner_text()
    match = re.fullmatch(r"(\d+) / (\d+)", text)
    assert match, text
    return int(match[1]), int(match[2])


def test_status_page_follows_a_lock_live_from_request_to_execution(stack, browser, tmp_path):
    chain = stack.chains["ethereum"]
    account = bytes(SigningKey.generate().verify_key)
    eth = asset_key(chain.caip2, NATIVE_TOKEN)
    page = browser.page
    with serve_api(stack) as base, httpx.Client(base_url=base, timeout=10) as api:
        created = api.post("/v1/transfers", json={
            "source_chain": chain.caip2, "dest_chain": "ferry:ledger", "asset": eth,
            "amount": str(3 * UNIT // 2), "recipient": "0x" + account.hex()})
        assert created.status_code == 201, created.text
        request_id, ins = created.json()["id"], created.json()["instructions"]

        page.goto(f"{base}/status")
        page.evaluate("window.__loadedOnce = true")  # gone if the page ever reloads
        browser.lookup(request_id)
        status = page.locator("#status")
        expect(status).to_have_attribute("data-status", "awaiting_deposit")
        expect(page.locator("#transfer-id")).to_have_text(request_id)
        expect(page.locator("#amount")).to_have_text(str(3 * UNIT // 2))

        tx = send_call(chain.w3, ins)  # the user's wallet sends what the API described
        stack.tick()
        expect(status).to_have_attribute("data-status", "transfer.observed")
        expect(page.locator("#confirmations-count")).to_have_text(f"1 / {stack.depth + 1}")
        expect(page.locator("#source-tx")).to_have_text(tx)
        expect(page.locator("#waiting")).to_have_attribute("data-reason", "confirmations")
        expect(page.locator("#eta-left")).to_have_text(re.compile(r"^in \d+ s$|^any moment now$"))
        expect(page.locator("#signatures-count")).to_have_text("0 / 3")

        stack.mine(stack.depth + 1)
        stack.tick()
        expect(status).to_have_attribute("data-status", "transfer.confirmed")
        have, need = count_of(page, "confirmations")
        assert have >= need == stack.depth + 1
        expect(page.locator("#confirmations")).to_have_class(re.compile(r"\bdone\b"))
        expect(page.locator("#waiting")).to_have_attribute("data-reason", "quorum")

        stack.run_validators()
        expect(page.locator("#signatures-count")).to_have_text("3 / 3")

        stack.tick()
        expect(status).to_have_attribute("data-status", "transfer.executed")
        seq = api.get(f"/v1/transfers/{request_id}").json()["ledger_seq"]
        assert isinstance(seq, int)
        expect(page.locator("#ledger-seq")).to_have_text(str(seq))
        steps = page.locator("#lifecycle li")
        expect(steps).to_have_count(5)
        assert [steps.nth(i).get_attribute("data-status") for i in range(5)] == [
            "awaiting_deposit", "transfer.observed", "transfer.confirmed", "transfer.attested",
            "transfer.executed"]
        expect(page.locator("#live")).to_have_text(re.compile("Final status"))
        assert page.evaluate("window.__loadedOnce") is True  # updated in place, never reloaded
        browser.shot(tmp_path / "status-executed.png")
        if os.environ.get("FERRY_STATUS_SCREENSHOT"):
            shutil.copyfile(tmp_path / "status-executed.png", os.environ["FERRY_STATUS_SCREENSHOT"])

        # The same transfer by the lock's tx hash: one match, shown directly; and by deep link.
        browser.lookup(tx)
        expect(page.locator("#transfer-id")).to_have_text(request_id)
        expect(status).to_have_attribute("data-status", "transfer.executed")
        page.goto(f"{base}/status?q={tx}")
        expect(page.locator("#transfer-id")).to_have_text(request_id)
        expect(page.locator("#q")).to_have_value(tx)

        # Unknown ids are said to be unknown; a request the API refuses (400) shows its error.
        browser.lookup("tr_" + "0" * 32)
        expect(page.locator("#message")).to_have_text(re.compile(r"^Not found: no transfer"))
        expect(page.locator("#detail")).to_be_hidden()
        browser.shot(tmp_path / "status-not-found.png")
        browser.lookup("0x" + "ab" * 32)
        expect(page.locator("#message")).to_have_text(
            re.compile(r"^Not found: no transfer or swap matches"))
        page.goto(f"{base}/status?q=" + "x" * 201)
        expect(page.locator("#message")).to_have_text(re.compile(r"^Error: .*invalid_input"))

    assert browser.errors == []
    assert all(u.startswith(base) for u in browser.urls), browser.urls  # nothing off-site


def test_status_page_lists_an_accounts_transfers_and_shows_a_large_ones_delay(
        stack, browser, tmp_path):
    chain = stack.chains["ethereum"]
    eth = asset_key(chain.caip2, NATIVE_TOKEN)
    stack.cfg = stack.cfg.model_copy(update={"risk": RiskSection(routes=[{
        "source_chain": chain.caip2, "dest_chain": "ferry:ledger", "asset": eth,
        "daily_limit": 10**30, "large_transfer": 5 * UNIT, "delay_s": DELAY_S}])})
    stack.start_relayer()  # the relayer now holds transfers of 5 ETH or more for an hour
    account = bytes(SigningKey.generate().verify_key)
    page = browser.page
    with serve_api(stack) as base:
        stack.lock("ethereum", UNIT, account)
        stack.lock("ethereum", 6 * UNIT, account)
        stack.tick()
        stack.mine(stack.depth + 1)
        stack.tick()

        page.goto(f"{base}/status")
        browser.lookup("0x" + account.hex())
        rows = page.locator("#list-rows tr")
        expect(rows).to_have_count(2)
        expect(page.locator("#list h2")).to_have_text(re.compile("^2 matching transfers"))
        browser.shot(tmp_path / "status-list.png")
        large = rows.filter(has_text=str(6 * UNIT))
        expect(large).to_have_count(1)
        large.locator("a").click()  # its id is the lock's event key: chain/tx/log index

        status = page.locator("#status")
        expect(status).to_have_attribute("data-status", "transfer.confirmed")
        expect(page.locator("#amount")).to_have_text(str(6 * UNIT))
        expect(page.locator("#transfer-id")).to_have_text(re.compile(rf"^{chain.caip2}/0x"))
        waiting = page.locator("#waiting")
        expect(waiting).to_have_attribute("data-reason", "large_transfer_delay")
        expect(page.locator("#waiting-reason")).to_have_text(re.compile("Large transfer"))
        expect(page.locator("#eta-left")).to_have_text(re.compile(r"^in 5\d min( \d+ s)?$"))

        stack.run_validators()  # a quorum forms, but the relayer still holds it back
        stack.tick()
        expect(page.locator("#signatures-count")).to_have_text("3 / 3")
        expect(waiting).to_have_attribute("data-reason", "large_transfer_delay")
        expect(status).not_to_have_attribute("data-status", "transfer.executed")
        browser.shot(tmp_path / "status-delayed.png")

        page.go_back()  # the list again: the small transfer went through meanwhile
        small = page.locator("#list-rows tr").filter(has_text=str(UNIT)).filter(
            has_not_text=str(6 * UNIT))
        expect(small.locator(".badge")).to_have_attribute("data-status", "transfer.executed")

    assert stack.balance(account, "ethereum") == UNIT
    assert browser.errors == []


def test_status_page_follows_a_swap_from_offer_to_the_relayers_lock(
        tmp_path, btcd, w3_eth, browser):
    world = SwapStack(tmp_path, btcd, w3_eth)
    app = FastAPI()
    app.include_router(swaps_router(world.runtime.engine, world.runtime.section))
    app.include_router(status_router())
    install_error_handlers(app)
    page = browser.page
    with serve(app) as base:
        swap = world.user.start("BTC/ETH", 1_000_000, hashlock_of(new_secret()))
        page.goto(f"{base}/status?q={swap['id']}")  # a deep link to the swap
        status = page.locator("#status")
        expect(page.locator("#swap-id")).to_have_text(swap["id"])
        expect(status).to_have_attribute("data-status", "swap.offered")
        expect(page.locator("#user-action")).to_have_text(re.compile(r"^lock: lock 1000000 "))
        expect(page.locator("#lifecycle li")).to_have_count(1)

        world.user.lock(swap)
        world.mine(btc_blocks=SWAP_DEPTH)
        world.run(4)
        expect(status).to_have_attribute("data-status", "swap.participant_locked")
        expect(page.locator("#user-action")).to_have_text(re.compile(r"^redeem: "))
        legs = page.locator("#detail tbody tr")
        expect(legs.nth(0).locator(".badge")).to_have_attribute("data-status", "leg.confirmed")
        expect(legs.nth(1).locator(".badge")).to_have_attribute("data-status", "leg.confirmed")
        expect(page.locator("#live")).to_have_text(re.compile("^Live"))
        browser.shot(tmp_path / "status-swap.png")
    assert browser.errors == []
