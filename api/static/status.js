/* Ferry status page (served by api/status_page.py at /status).
 *
 * Looks up what the user pasted through the public API and polls it until it is final:
 *   tr_... or an event key  -> GET v1/transfers/{id}
 *   0x + 64 hex             -> also GET v1/swaps/{id} (a swap id), then
 *   anything else           -> GET v1/transfers?tx= and ?account= (one match: shown; several:
 *                              a list to pick from).
 * Every API value reaches the DOM as text (textContent / text nodes), never as HTML.
 */
"use strict";
(function () {
  const POLL_MS = 1500;
  const MAX_BACKOFF_MS = 10000;
  const TRANSFER_FINAL = new Set(["transfer.executed", "transfer.refunded"]);
  const SWAP_FINAL = new Set(["swap.redeemed", "swap.refunded", "swap.expired"]);
  const HEX64 = /^0x[0-9a-fA-F]{64}$/;
  const WAITING = {
    confirmations: "Waiting for block confirmations",
    quorum: "Waiting for validator signatures",
    rate_limit: "Route volume limit reached: waiting for room in the window",
    large_transfer_delay: "Large transfer: security delay before it is minted or released",
    paused: "Route paused by the operator",
    held: "Held: an operator must release or retry it",
  };

  const $ = (id) => document.getElementById(id);
  let view = null; // {kind: "transfer"|"swap"|"list", id, q, final, updatedAt}
  let generation = 0; // bumped by each lookup: answers of older polls are dropped
  let timer = null;
  let failures = 0;
  let clockOffsetMs = 0; // server clock - our clock, when they differ by more than 2 s

  // ------------------------------------------------------------------ DOM helpers
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }
  const label = (status) => String(status).replace(/^(transfer|swap|leg)\./, "").replace(/_/g, " ");
  const badge = (status, id) => el("span", Object.assign(
    {class: "badge s-" + label(status).replace(/ /g, "-"), "data-status": status,
     text: label(status)}, id ? {id} : {}));
  const dash = (v) => (v === null || v === undefined || v === "" ? "—" : String(v));

  function fmtTime(unixS) {
    const d = new Date(unixS * 1000);
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString() : d.toLocaleString();
  }
  const isoTime = (unixS) => new Date(unixS * 1000).toISOString();

  function fmtLeft(ms) {
    if (ms <= 0) return "any moment now";
    let s = Math.ceil(ms / 1000);
    const parts = [];
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60]]) {
      if (s >= size) { parts.push(Math.floor(s / size) + " " + unit); s %= size; }
    }
    if (s || !parts.length) parts.push(s + " s");
    return "in " + parts.slice(0, 2).join(" ");
  }

  function message(text, kind) {
    const m = $("message");
    m.textContent = text;
    m.className = kind || "";
    m.hidden = !text;
  }
  const live = (text, kind) => { $("live").textContent = text; $("live").className = kind || ""; };

  // ------------------------------------------------------------------ API
  async function api(path) {
    const res = await fetch(path, {headers: {Accept: "application/json"}, cache: "no-store"});
    const served = Date.parse(res.headers.get("Date") || "");
    if (!Number.isNaN(served)) { // the Date header has 1 s resolution: ignore small skews
      const off = served + 500 - Date.now();
      clockOffsetMs = Math.abs(off) > 2000 ? off : 0;
    }
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    return {ok: res.ok, status: res.status, body};
  }
  function apiError(r) {
    const e = r.body && r.body.error;
    return e ? e.message + " (" + e.code + ")" : "HTTP " + r.status;
  }

  /* Transfers whose tx or account is `q` (newest first, first page of each), or throws. */
  async function matches(q) {
    const enc = encodeURIComponent(q);
    const asks = [];
    if (q.length <= 100) asks.push(api("v1/transfers?tx=" + enc));
    if (q.length <= 140) asks.push(api("v1/transfers?account=" + enc));
    const answers = await Promise.all(asks);
    if (answers.length && answers.every((r) => !r.ok)) throw new Error(apiError(answers[0]));
    const byId = new Map();
    for (const r of answers) if (r.ok) for (const t of r.body.items) byId.set(t.id, t);
    const items = [...byId.values()].sort((a, b) => b.created_at - a.created_at);
    items.more = answers.some((r) => r.ok && r.body.next_cursor);
    return items;
  }

  async function fetchView() {
    if (view.kind === "list") return matches(view.q);
    const path = view.kind === "swap" ? "v1/swaps/" : "v1/transfers/";
    const r = await api(path + encodeURIComponent(view.id));
    if (!r.ok) throw new Error(apiError(r));
    return r.body;
  }

  // ------------------------------------------------------------------ lookup and polling
  async function lookup(q) {
    const gen = ++generation;
    clearTimeout(timer);
    failures = 0;
    view = null;
    $("list").hidden = true;
    $("detail").hidden = true;
    live("");
    if (!q) { message("Paste a transfer id, event key, tx hash, account or swap id."); return; }
    message("Looking up " + q + "…");
    try {
      const direct = await api("v1/transfers/" + encodeURIComponent(q));
      if (gen !== generation) return;
      if (direct.ok) return show(gen, {kind: "transfer", id: direct.body.id}, direct.body);
      if (direct.status !== 404) return message("Error: " + apiError(direct), "error");
      if (q.startsWith("tr_")) return message("Not found: " + apiError(direct), "error notfound");
      if (HEX64.test(q)) {
        const swap = await api("v1/swaps/" + encodeURIComponent(q));
        if (gen !== generation) return;
        if (swap.ok) return show(gen, {kind: "swap", id: swap.body.id}, swap.body);
      }
      const items = await matches(q);
      if (gen !== generation) return;
      if (!items.length) {
        return message("Not found: no transfer or swap matches “" + q + "”.", "error notfound");
      }
      if (items.length === 1) return show(gen, {kind: "transfer", id: items[0].id}, items[0]);
      return show(gen, {kind: "list", q}, items);
    } catch (e) {
      if (gen === generation) message("Error: " + e.message, "error");
    }
  }

  function show(gen, v, data) {
    view = v;
    message("");
    render(data);
    schedule(gen);
  }

  function schedule(gen) {
    if (view.final) { live("Final status: no more updates.", "final"); return; }
    const wait = failures ? Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** failures) : POLL_MS;
    timer = setTimeout(() => refresh(gen), wait);
  }

  async function refresh(gen) {
    let data;
    try {
      data = await fetchView();
    } catch (e) {
      if (gen !== generation) return;
      failures += 1;
      live("Update failed (" + e.message + "); retrying…", "error");
      schedule(gen);
      return;
    }
    if (gen !== generation) return;
    failures = 0;
    render(data);
    schedule(gen);
  }

  function render(data) {
    if (view.kind === "list") renderList(data);
    else if (view.kind === "swap") renderSwap(data);
    else renderTransfer(data);
    view.updatedAt = Date.now();
    live("Live: updated " + new Date().toLocaleTimeString() + "; polling every " +
         POLL_MS / 1000 + " s until final.");
    tick();
  }

  /* Each second: the countdown to the ETA shown (if any). */
  function tick() {
    const eta = $("eta-left");
    if (!eta) return;
    const at = Number(eta.getAttribute("data-eta")) * 1000;
    eta.textContent = fmtLeft(at - (Date.now() + clockOffsetMs));
  }

  // ------------------------------------------------------------------ views
  function facts(rows) {
    const dl = el("dl", {class: "facts"});
    for (const [name, id, value] of rows) {
      dl.append(el("dt", {text: name}), el("dd", {id, text: dash(value)}));
    }
    return dl;
  }

  function progress(name, id, p) {
    if (!p) return null;
    const have = p.have === null ? "?" : p.have;
    const need = p.need === null ? "?" : p.need;
    const bar = el("progress", {max: String(p.need || 1), value: String(Math.min(p.have || 0, p.need || 1))});
    const done = p.need !== null && p.have !== null && p.have >= p.need;
    return el("div", {class: "progress" + (done ? " done" : ""), id},
      el("span", {class: "name", text: name}), bar,
      el("span", {class: "count", id: id + "-count", text: have + " / " + need}));
  }

  function waiting(w, final) {
    if (!w) {
      return el("p", {id: "waiting", class: "muted",
                      text: final ? "Done: nothing left to wait for." : "Not waiting: moving on its own."});
    }
    const p = el("p", {id: "waiting", class: "waiting", "data-reason": w.reason},
                 el("strong", {id: "waiting-reason", text: WAITING[w.reason] || w.reason}));
    if (w.eta !== null && w.eta !== undefined) {
      p.append(el("span", {id: "eta"}, " · ETA ",
        el("span", {id: "eta-left", "data-eta": String(w.eta)}),
        " (", el("time", {datetime: isoTime(w.eta), text: fmtTime(w.eta)}), ")"));
    }
    return p;
  }

  function steps(list) {
    return el("ol", {id: "lifecycle", class: "lifecycle"}, ...list.map((s) =>
      el("li", {"data-status": s.status},
        el("span", {class: "step", text: label(s.status)}),
        el("time", {datetime: isoTime(s.at), text: fmtTime(s.at)}),
        el("span", {class: "muted", text: s.reason}))));
  }

  function renderTransfer(t) {
    view.final = TRANSFER_FINAL.has(t.status);
    $("detail").replaceChildren(
      el("h2", {}, (t.kind === "burn" ? "Burn " : t.kind === "lock" ? "Lock " : "Transfer "),
         el("code", {id: "transfer-id", text: t.id})),
      el("p", {class: "status-line"}, badge(t.status, "status"), " ",
         el("span", {id: "reason", class: "muted", text: t.reason})),
      facts([["Route", "route", t.source_chain + " → " + t.dest_chain],
             ["Asset", "asset", t.asset],
             ["Amount (base units)", "amount", t.amount],
             ["From", "sender", t.sender], ["To", "recipient", t.recipient],
             ["Source tx", "source-tx", t.source_tx],
             ["Block", "block", t.block_number],
             ["Destination tx", "dest-tx", t.dest_tx],
             ["Ledger seq", "ledger-seq", t.ledger_seq],
             ["Event key", "event-key", t.event_key]]),
      el("h3", {text: "Progress"}),
      progress("Confirmations", "confirmations", t.confirmations),
      progress("Signatures", "signatures", t.signatures),
      waiting(t.waiting, view.final),
      el("h3", {text: "Lifecycle"}),
      steps(t.lifecycle));
    $("detail").hidden = false;
  }

  function instant(i) {
    return i.kind === "time" ? fmtTime(i.value) : "block " + i.value;
  }

  function renderSwap(s) {
    view.final = SWAP_FINAL.has(s.status);
    const leg = (who, l) => el("tr", {},
      el("th", {text: who}), el("td", {text: l.chain}), el("td", {text: l.amount}),
      el("td", {}, badge(l.status)), el("td", {text: dash(l.lock_ref)}),
      el("td", {text: instant(l.expiry)}));
    $("detail").replaceChildren(
      el("h2", {}, "Swap ", el("code", {id: "swap-id", text: s.id})),
      el("p", {class: "status-line"}, badge(s.status, "status"), " ",
         el("span", {id: "reason", class: "muted", text: s.reason})),
      facts([["Pair", "pair", s.pair], ["Hashlock", "hashlock", s.hashlock],
             ["Secret", "secret", s.secret === null ? "not revealed yet" : "revealed"],
             ["Fee (base units)", "fee", s.fee],
             ["Lock deadline", "lock-deadline", instant(s.lock_deadline)]]),
      el("h3", {text: "Your next step"}),
      el("p", {id: "user-action", class: "waiting"},
         el("strong", {text: label(s.user_action.step)}), ": " + s.user_action.detail),
      el("h3", {text: "Legs"}),
      el("table", {},
         el("thead", {}, el("tr", {}, ...["", "Chain", "Amount", "Status", "Lock", "Expiry"]
           .map((h) => el("th", {text: h})))),
         el("tbody", {}, leg("You (initiator)", s.initiator), leg("Relayer", s.participant))),
      el("h3", {text: "Lifecycle"}),
      steps(s.history.map((h) => ({status: h.to, at: h.at, reason: h.reason}))));
    $("detail").hidden = false;
  }

  function renderList(items) {
    view.final = items.every((t) => TRANSFER_FINAL.has(t.status));
    $("list-rows").replaceChildren(...items.map((t) => el("tr", {},
      el("td", {}, el("a", {href: "?q=" + encodeURIComponent(t.id), "data-id": t.id,
                            onclick: (e) => { e.preventDefault(); go(t.id); }}, t.id)),
      el("td", {text: t.kind}), el("td", {text: t.amount}),
      el("td", {}, badge(t.status)), el("td", {text: fmtTime(t.updated_at)}))));
    $("list").querySelector("h2").textContent = items.length + " matching transfers" +
      (items.more ? " (newest first; more exist)" : "") + ": pick one";
    $("list").hidden = false;
  }

  // ------------------------------------------------------------------ wiring
  function go(q) {
    $("q").value = q;
    history.pushState(null, "", "?q=" + encodeURIComponent(q));
    lookup(q);
  }

  function fromUrl() {
    const q = (new URLSearchParams(location.search).get("q") || "").trim();
    $("q").value = q;
    if (q) lookup(q); else { generation++; clearTimeout(timer); message(""); live("");
      $("list").hidden = true; $("detail").hidden = true; }
  }

  $("lookup").addEventListener("submit", (e) => { e.preventDefault(); go($("q").value.trim()); });
  window.addEventListener("popstate", fromUrl);
  setInterval(tick, 1000);
  fromUrl();
  $("q").focus();
})();
