"""`ferry demo`, API part: a user bridges ETH through the HTTP API (`ferry api serve`) and an
operator releases a large lock the risk engine delayed.

Owns: that narrative. It sees only what a user or an operator sees: the API over HTTP (httpx),
the user's own EVM wallet, and the devnet's webhook receiver (what a subscriber got). It never
calls the relayer, the ledger or the validators directly.

Stories:
1. ``POST /v1/transfers`` (with an ``Idempotency-Key``) for a 1 ETH lock; the user sends the
   transaction the instructions describe; ``GET /v1/transfers/{id}`` until executed (the
   lifecycle, confirmations and signatures as first seen waiting); the same POST again is
   replayed with the same id.
2. A 6 ETH lock, above the wETH route's ``large_transfer``: it waits ``large_transfer_delay``
   (ETA an hour away); an operator release without a key is 401, with a ``risk:read`` key 403,
   with the operator key 200; it is minted and the balance is exact.
3. The account's history through the API, each inclusion proof checked here
   (`ledger.merkle.verify_inclusion`).
4. ``GET /v1/chains`` and ``GET /v1/validators``.
5. The webhook receiver: every signature verifies (`relayer.webhooks.verify_signature`), ids
   are unique, and both transfers' ``executed`` events arrived.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any, cast

import httpx
from eth_account.signers.local import LocalAccount
from nacl.signing import SigningKey
from web3 import Web3
from web3.types import TxParams

from adapters.base import NATIVE_TOKEN, asset_key
from adapters.evm import devnet as evm
from ledger.merkle import verify_inclusion
from relayer.webhooks import verify_signature

UNIT = 10**18
ETH_CHAIN = "eip155:31337"
EXECUTED = "transfer.executed"
Fail = Callable[[str], Exception]


def run_api_story(out: Any, net: Any, cfg: Any, user_key: SigningKey, user_evm: LocalAccount,
                  fmt: Callable[..., str], fail: Fail) -> None:
    """Run the stories of the module docstring against a running devnet.

    Args:
        out: the demo's step printer (``out.step(title, **facts)``).
        net: the running `relayer.cli.devnet.Devnet` (``info.api_url``, ``info.rpc``,
            ``webhooks``, ``webhook_secret``, ``operator_key()``, ``create_api_key``).
        cfg: the devnet's `FerryConfig` (asset symbols only).
        user_key: the user's ledger key (its account receives the wETH).
        user_evm: the user's funded EVM wallet on the Ethereum devnet.
        fmt: ``(base units[, decimals]) -> display string``.
        fail: builds the demo's failure exception from a message.

    Raises:
        The exception `fail` builds: a code, an id, a balance, a proof or a webhook signature
        was not exactly as expected.
    """
    info = net.info
    api = httpx.Client(base_url=info.api_url, timeout=10)
    w3 = evm.connect(info.rpc["ethereum"])
    account = "0x" + bytes(user_key.verify_key).hex()
    weth = asset_key(ETH_CHAIN, NATIVE_TOKEN)
    before = int(_ok(api.get(f"/v1/ledger/accounts/{account}"), fail)["balances"].get(weth, "0"))
    out.step("API process (ferry api serve)", api=info.api_url, docs=f"{info.api_url}/docs",
             webhook_receiver=info.webhook_url)

    small = _lock_with_replay(out, api, w3, user_evm, account, weth, fail)
    large = _large_lock_released(out, net, api, w3, user_evm, account, weth, fmt, fail)
    balance = int(_ok(api.get(f"/v1/ledger/accounts/{account}"), fail)["balances"][weth])
    out.step("API: GET /v1/ledger/accounts/{account}", wETH=fmt(balance),
             expected=f"{fmt(before)} + 1 + 6")
    if balance != before + 7 * UNIT:
        raise fail(f"wETH balance {balance} != {before} + 7 ETH")
    _history(out, api, account, cfg, fmt, fail)
    _network(out, api, fail)
    _webhooks(out, net, {small, large}, fail)


# ------------------------------------------------------------------------------ transfers
def _lock_with_replay(out: Any, api: httpx.Client, w3: Web3, user: LocalAccount, account: str,
                      weth: str, fail: Fail) -> str:
    """Story 1; returns the transfer's event key."""
    body = _lock_body(account, weth, UNIT)
    idem = {"Idempotency-Key": f"demo-{secrets.token_hex(8)}"}
    tr = _ok(api.post("/v1/transfers", json=body, headers=idem), fail, 201)
    ins = tr["instructions"]
    out.step("API: POST /v1/transfers (1 ETH to the user's ledger account)", id=tr["id"],
             status=tr["status"], route=tr["route"], to=ins["to"], value=ins["value"],
             data=ins["data"][:18] + "...", idempotency_key=idem["Idempotency-Key"])
    receipt = _send(w3, user, ins, fail)
    out.step("user sent the transaction the instructions describe",
             tx=receipt["transactionHash"].to_0x_hex(), block=receipt["blockNumber"])
    final, first = _follow(api, tr["id"], lambda t: t["status"] == EXECUTED, 90, fail)
    conf = first.get("confirmations")
    sigs = next((first[k] for k in ("quorum", "transfer.confirmed", "transfer.attested")
                 if k in first), final)  # the quorum may come within one poll
    out.step("API: GET /v1/transfers/{id} until executed", id=final["id"],
             lifecycle=_lifecycle(final),
             confirmations_first_seen=_progress(conf, "confirmations"),
             signatures_first_seen=_progress(sigs, "signatures"),
             final=final["status"], ledger_seq=final["ledger_seq"])
    if final["amount"] != str(UNIT) or final["request_id"] != tr["id"]:
        raise fail(f"transfer {tr['id']} shows amount {final['amount']}, request "
                   f"{final['request_id']}")
    again = api.post("/v1/transfers", json=body, headers=idem)
    replay = _ok(again, fail, 201)
    out.step("API: the same POST with the same Idempotency-Key", status=again.status_code,
             idempotent_replay=again.headers.get("Idempotent-Replay"), id=replay["id"],
             same_id=replay["id"] == tr["id"])
    if replay["id"] != tr["id"] or again.headers.get("Idempotent-Replay") != "true":
        raise fail(f"idempotent replay gave {replay['id']} (first {tr['id']})")
    return str(final["event_key"])


def _large_lock_released(out: Any, net: Any, api: httpx.Client, w3: Web3, user: LocalAccount,
                         account: str, weth: str, fmt: Callable[..., str], fail: Fail) -> str:
    """Story 2; returns the transfer's event key."""
    tr = _ok(api.post("/v1/transfers", json=_lock_body(account, weth, 6 * UNIT),
                      headers={"Idempotency-Key": f"demo-{secrets.token_hex(8)}"}), fail, 201)
    receipt = _send(w3, user, tr["instructions"], fail)
    out.step("locked 6 ETH (above the wETH route's large_transfer of 5 ETH) via the API",
             id=tr["id"], tx=receipt["transactionHash"].to_0x_hex())
    waiting, _ = _follow(api, tr["id"], lambda t: (t.get("waiting") or {}).get("reason")
                         == "large_transfer_delay", 60, fail)
    eta = waiting["waiting"]["eta"]
    out.step("API: the transfer waits for the large-transfer delay", id=waiting["id"],
             status=waiting["status"], waiting=waiting["waiting"]["reason"],
             eta_in_s=None if eta is None else round(eta - time.time()))
    if eta is None or not 3000 < eta - time.time() <= 3600:
        raise fail(f"large-transfer ETA {eta} is not about an hour away")
    ref = waiting["event_key"]
    path = f"/v1/operator/transfers/{tr['id']}/release"  # the id the user was given
    reader = net.create_api_key("demo-reader", ("risk:read",))
    no_key = api.post(path)
    wrong = api.post(path, headers=_bearer(reader))
    queue = _ok(api.get("/v1/operator/risk", headers=_bearer(reader)), fail)["queue"]
    out.step("operator release without a key, and with a risk:read key",
             without_key=f"{no_key.status_code} {_code(no_key)}",
             risk_read_key=f"{wrong.status_code} {_code(wrong)}",
             risk_queue=[(q["event_key"][:14] + "...", q["wait_reason"]) for q in queue])
    if (no_key.status_code, _code(no_key), wrong.status_code, _code(wrong)) != (
            401, "unauthorized", 403, "forbidden"):
        raise fail(f"release without/with a wrong key: {no_key.status_code} "
                   f"{no_key.text} / {wrong.status_code} {wrong.text}")
    if ref not in {q["event_key"] for q in queue}:
        raise fail(f"{ref} is not in the operator's risk queue")
    released = _ok(api.post(path, headers=_bearer(net.operator_key())), fail)
    out.step("API: POST /v1/operator/transfers/{id}/release with the operator key",
             status=200, changed=released["changed"], ledger=released["ledger"]["status"])
    if released["ledger"]["status"] != "done":
        raise fail(f"the release did not reach the ledger: {released}")
    final, _ = _follow(api, tr["id"], lambda t: t["status"] == EXECUTED, 90, fail)
    out.step("released transfer executed", id=final["id"], lifecycle=_lifecycle(final),
             amount_eth=fmt(int(final["amount"])), ledger_seq=final["ledger_seq"])
    return str(final["event_key"])


def _lock_body(account: str, asset: str, amount: int) -> dict[str, str]:
    return {"source_chain": ETH_CHAIN, "dest_chain": "ferry:ledger", "asset": asset,
            "amount": str(amount), "recipient": account}


def _send(w3: Web3, user: LocalAccount, ins: dict[str, Any], fail: Fail) -> Any:
    """Sign and send the EVM call `ins` (``to``, ``value``, ``data``) from the user's wallet."""
    if ins.get("kind") != "evm_call":
        raise fail(f"expected EVM instructions, got {ins.get('kind')}")
    tx: dict[str, Any] = {"from": user.address, "to": Web3.to_checksum_address(ins["to"]),
                          "value": int(ins["value"]), "data": ins["data"],
                          "chainId": w3.eth.chain_id, "gasPrice": w3.eth.gas_price,
                          "nonce": w3.eth.get_transaction_count(user.address, "pending")}
    tx["gas"] = w3.eth.estimate_gas(cast(TxParams, tx))
    sent = w3.eth.send_raw_transaction(user.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(sent, timeout=30)
    if receipt["status"] != 1:
        raise fail(f"lock tx {sent.to_0x_hex()} reverted")
    return receipt


def _follow(api: httpx.Client, tr_id: str, done: Callable[[dict[str, Any]], bool],
            timeout_s: float, fail: Fail) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Poll ``GET /v1/transfers/{tr_id}`` until `done`; returns the last view and, per wait
    reason and per status, the view in which it was first seen."""
    first: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = _ok(api.get(f"/v1/transfers/{tr_id}"), fail)
        reason = (view.get("waiting") or {}).get("reason")
        if reason is not None:
            first.setdefault(reason, view)
        first.setdefault(view["status"], view)
        if done(view):
            return view, first
        time.sleep(0.2)
    raise fail(f"timed out after {timeout_s}s following {tr_id} (last: {view['status']}, "
               f"waiting {view.get('waiting')})")


def _lifecycle(view: dict[str, Any]) -> str:
    steps = view["lifecycle"]
    t0 = steps[0]["at"]
    return " -> ".join(f"{s['status'].removeprefix('transfer.')}@+{s['at'] - t0:.1f}s"
                       for s in steps)


def _progress(view: dict[str, Any] | None, part: str) -> str:
    if view is None or view.get(part) is None:
        return "not seen"
    p = view[part]
    return f"{p['have']}/{p['need']} (while {view['status'].removeprefix('transfer.')})"


# ------------------------------------------------------------------------------ ledger, network
def _history(out: Any, api: httpx.Client, account: str, cfg: Any, fmt: Callable[..., str],
             fail: Fail) -> None:
    """Story 3: the newest history entries and their proofs, checked here."""
    page = _ok(api.get(f"/v1/ledger/accounts/{account}/history", params={"limit": 4}), fail)
    items = page["items"]
    if not items:
        raise fail("the account's history is empty")
    decimals = {a.asset: a.decimals for a in cfg.assets}
    symbols = {a.asset: a.symbol for a in cfg.assets}
    for item in items:
        proof = item["proof"]
        ok = verify_inclusion(bytes.fromhex(item["journal_hash"][2:]), item["seq"] - 1,
                              proof["tree_size"], [bytes.fromhex(p[2:]) for p in proof["path"]],
                              bytes.fromhex(proof["root"][2:]))
        out.step(f"API: history entry seq {item['seq']}", kind=item["kind"],
                 delta=f"{fmt(int(item['delta']), decimals.get(item['asset'], 18))} "
                       f"{symbols.get(item['asset'], item['asset'])}",
                 journal_hash=item["journal_hash"], tree_size=proof["tree_size"],
                 root=proof["root"][:18] + "...", proof="proof OK" if ok else "PROOF FAILED")
        if not ok:
            raise fail(f"inclusion proof of journal seq {item['seq']} does not verify")


def _network(out: Any, api: httpx.Client, fail: Fail) -> None:
    """Story 4: chains and validators as the API reports them."""
    chains = _ok(api.get("/v1/chains"), fail)["chains"]
    out.step("API: GET /v1/chains", **{
        c["name"]: f"head {c['head']} finalized {c['finalized']} lag {c['lag_blocks']}"
        for c in chains})
    if any(c["head"] is None for c in chains):
        raise fail(f"a chain has no recorded head: {chains}")
    vals = _ok(api.get("/v1/validators"), fail)
    out.step("API: GET /v1/validators", epoch=vals["epoch"], threshold=vals["threshold"], **{
        m["evm_address"][:10]: "never" if m["lag_s"] is None else f"lag {m['lag_s']:.1f}s"
        for m in vals["members"]})


def _webhooks(out: Any, net: Any, keys: set[str], fail: Fail) -> None:
    """Story 5: what the webhook receiver got, checked as a subscriber would."""
    def arrived() -> list[Any] | None:
        got = net.webhooks.received()
        executed = {d["data"]["event_key"] for d in map(_event, got)
                    if d["type"] == "transfer.status_changed" and d["data"]["to"] == EXECUTED}
        return got if keys <= executed else None
    deadline = time.monotonic() + 30
    got = arrived()
    while got is None and time.monotonic() < deadline:
        time.sleep(0.25)
        got = arrived()
    if got is None:
        raise fail("the webhook receiver did not get both transfers' executed events")
    valid = sum(verify_signature(net.webhook_secret, d.signature, d.body, d.received_at)
                for d in got)
    ids = [_event(d)["id"] for d in got]
    headers_match = all(d.event_id == _event(d)["id"] for d in got)
    out.step("webhook receiver", events=len(got), signatures_valid=f"{valid} of {len(got)}",
             unique_ids=len(set(ids)) == len(ids), id_header_matches_body=headers_match,
             first=ids[0], last=ids[-1])
    if valid != len(got) or len(set(ids)) != len(ids) or not headers_match:
        raise fail(f"webhooks: {valid} of {len(got)} signatures valid, {len(set(ids))} unique "
                   f"ids, headers match: {headers_match}")


# ------------------------------------------------------------------------------ helpers
def _event(delivery: Any) -> dict[str, Any]:
    return dict(json.loads(delivery.body))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _code(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "?"


def _ok(r: httpx.Response, fail: Fail, status: int = 200) -> Any:
    if r.status_code != status:
        raise fail(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
    return r.json()
