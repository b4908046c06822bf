// The approvals page: sign in, list what waits for this approver, approve or deny.
// Every value that came from an agent is written as text, with control, bidi and
// invisible characters shown as visible \u{…} escapes; nothing is ever parsed as HTML.
"use strict";

const REFRESH_MS = 2000;
const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\ufff9-\ufffb]/gu;
const $ = (id) => document.getElementById(id);
let deadlines = new Map();
let timer = null;

function visible(parent, text, multiline = false) {
  parent.textContent = "";
  const s = String(text ?? "");
  let last = 0;
  for (const m of s.matchAll(HIDDEN)) {
    parent.append(document.createTextNode(s.slice(last, m.index)));
    last = m.index + m[0].length;
    if (multiline && m[0] === "\n") {
      parent.append(document.createTextNode("\n"));
      continue;
    }
    const esc = document.createElement("span");
    esc.className = "esc";
    esc.title = "hidden or control character";
    esc.textContent = "\\u{" + m[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + "}";
    parent.append(esc);
  }
  parent.append(document.createTextNode(s.slice(last)));
}

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  return { status: r.status, ok: r.ok, data };
}

function left(ms) {
  if (ms <= 0) return "expired";
  const s = Math.floor(ms / 1000);
  const m = Math.floor(s / 60);
  return (m > 0 ? m + " min " : "") + (s % 60) + " s left";
}

function tick() {
  const now = Date.now();
  for (const [id, deadline] of deadlines) {
    const el = document.querySelector(`[data-id="${CSS.escape(id)}"] .left`);
    if (el) el.textContent = left(deadline - now);
  }
}

function fill(article, r) {
  const q = (sel) => article.querySelector(sel);
  visible(q(".tool"), r.server + "/" + r.tool);
  q(".tier").textContent = r.tier;
  q(".tier").classList.toggle("act", r.tier === "act");
  visible(q(".agent"), r.agent);
  visible(q(".principal"), r.on_behalf_of ?? "nobody (the agent acts for itself)");
  visible(q(".chain"), r.chain.join(" → "));
  visible(q(".intent"), r.intent ?? "(none given)");
  visible(q(".task"), r.task ? r.task.id + (r.task.objective ? ": " + r.task.objective : "") : "(none declared)");
  visible(q(".reason"), r.reason ?? "the policy asks for a human decision");
  visible(q(".args"), JSON.stringify(r.arguments, null, 2), true);
  visible(q(".quorum"), `${r.approved_by.length} of ${r.quorum}` + (r.approved_by.length ? " (" + r.approved_by.join(", ") + ")" : ""));
  q(".id").textContent = r.id;
  const blocked = r.cannot_decide ?? "";
  q(".approve").disabled = q(".deny").disabled = blocked !== "";
  // The user an agent acts for confirms (or refuses) their own agent's call.
  q(".approve").textContent = r.yours_to_confirm ? "Confirm (your agent's call)" : "Approve";
  visible(q(".note"), blocked || (r.yours_to_confirm ? "Your own agent asks: confirm only if you asked for this." : ""));
}

function card(r) {
  const article = $("request-template").content.firstElementChild.cloneNode(true);
  article.dataset.id = r.id;
  article.id = "request-" + r.id;
  article.querySelector(".approve").addEventListener("click", () => decide(article, r.id, "approve"));
  article.querySelector(".deny").addEventListener("click", () => decide(article, r.id, "deny"));
  return article;
}

async function decide(article, id, verdict) {
  const comment = article.querySelector(".comment").value.trim();
  for (const b of article.querySelectorAll("button")) b.disabled = true;
  const r = await api("POST", `/approvals/${encodeURIComponent(id)}/${verdict}`, comment ? { comment } : {});
  if (!r.ok) {
    visible(article.querySelector(".error"), r.data?.error ?? `the gateway answered ${r.status}`);
    for (const b of article.querySelectorAll("button")) b.disabled = false;
    return;
  }
  const done = r.data.status === "pending" ? "Recorded: waiting for more approvers." : `Recorded: ${r.data.status}.`;
  visible(article.querySelector(".note"), done);
  article.classList.add("decided");
  $("status").textContent = `${verdict === "approve" ? "Approved" : "Denied"} ${id}.`;
  refresh();
}

async function refresh() {
  const r = await api("GET", "/approvals?status=pending");
  if (r.status === 401) return signedOut();
  if (!r.ok) {
    $("status").textContent = r.data?.error ?? `the gateway answered ${r.status}`;
    return;
  }
  const list = $("requests");
  const seen = new Set();
  deadlines = new Map();
  for (const req of r.data.requests) {
    seen.add(req.id);
    deadlines.set(req.id, Date.now() + req.time_left_ms);
    let article = list.querySelector(`[data-id="${CSS.escape(req.id)}"]`);
    if (!article) {
      article = card(req);
      list.append(article);
    }
    fill(article, req);
  }
  for (const article of [...list.children]) {
    if (!seen.has(article.dataset.id)) article.remove();
  }
  $("count").textContent = String(r.data.requests.length);
  $("empty").hidden = r.data.requests.length > 0;
  tick();
}

function signedOut() {
  clearInterval(timer);
  $("queue").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
}

async function signedIn(identity) {
  visible($("identity"), identity);
  $("who").hidden = false;
  $("login").hidden = true;
  $("queue").hidden = false;
  await refresh();
  clearInterval(timer);
  timer = setInterval(() => { refresh(); }, REFRESH_MS);
  setInterval(tick, 1000);
}

async function login(token) {
  const r = await api("POST", "/login", { token });
  if (!r.ok) {
    $("login-error").textContent = r.data?.error ?? "sign-in failed";
    return signedOut();
  }
  $("login-error").textContent = "";
  await signedIn(r.data.identity);
}

async function start() {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); login($("token").value.trim()); });
  $("logout").addEventListener("click", async () => { await api("POST", "/logout"); signedOut(); });
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    history.replaceState(null, "", location.pathname);
    return login(fromLink);
  }
  const me = await api("GET", "/me");
  if (me.ok) return signedIn(me.data.identity);
  signedOut();
}

start();
