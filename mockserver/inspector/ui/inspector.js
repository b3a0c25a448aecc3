// mockserver inspector. Everything a request sent is shown with textContent (via h()), never
// parsed as HTML. The admin token, when needed, travels in the Authorization header only; the
// event stream is read with fetch() because EventSource cannot send headers.
"use strict";

const TOKEN_KEY = "mockserver-admin-token";
const THEME_KEY = "mockserver-theme";
const MAX_ROWS = 5000;

const $ = (id) => document.getElementById(id);
const state = {
  rows: new Map(),        // seq -> {summary, tr}
  lastId: null,           // the last event id seen: resumes the stream without gaps or doubles
  paused: false,
  held: [],               // summaries that arrived while paused
  selected: null,
  scenarios: null,
  tab: "journal",
  blocked: false,
};

// ---------------------------------------------------------------------------------- helpers

/** An element; string children become text nodes, so data is never markup. */
function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fmtTime(epoch) {
  const d = new Date(epoch * 1000);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function fmtMs(ms) {
  if (ms >= 10000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 100) return ms.toFixed(0);
  return ms.toFixed(1);
}

function statusBadge(status, outcome) {
  if (!status) return h("span", { class: "badge", title: outcome }, "—");
  let kind = "ok";
  if (status === 429) kind = "info";
  else if (status >= 500) kind = "bad";
  else if (status >= 400) kind = "warn";
  return h("span", { class: `badge ${kind}` }, String(status));
}

function outcomeCell(outcome) {
  if (outcome === "ok") return h("span", { class: "muted" }, "ok");
  const kind = outcome.startsWith("fault") ? "bad" : outcome === "rate_limited" ? "info" : "warn";
  return h("span", { class: `badge ${kind}` }, outcome);
}

function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy";
  }
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

// ---------------------------------------------------------------------------------- access

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

let tokenPrompt = null;
/** Ask for the admin token once; every caller that got a 401 waits on the same prompt. */
function askToken(message) {
  if (tokenPrompt) return tokenPrompt;
  const dialog = $("token-dialog");
  const error = $("token-error");
  error.hidden = !message;
  error.textContent = message || "";
  tokenPrompt = new Promise((resolve) => {
    $("token-form").onsubmit = (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
      dialog.close();
      tokenPrompt = null;
      resolve();
    };
  });
  if (!dialog.open) dialog.showModal();
  return tokenPrompt;
}

/** Shown instead of data when the server will not give any (admin routes off). */
function block(error) {
  state.blocked = true;
  const banner = $("banner");
  banner.replaceChildren();
  banner.append(h("strong", {}, "The inspector is off."), error.message || "");
  banner.className = "banner bad";
  banner.hidden = false;
  $("empty-journal").hidden = true; // no "Waiting for requests" under "off": none will come
  setConn("off", "off");
}

async function api(path, options = {}) {
  for (;;) {
    const res = await fetch(path, {
      ...options,
      cache: "no-store",
      headers: { ...(options.headers || {}), ...authHeaders() },
    });
    if (res.status === 401) {
      const body = await res.json().catch(() => ({}));
      const had = Boolean(sessionStorage.getItem(TOKEN_KEY));
      await askToken(had ? (body.error && body.error.message) || "That token was refused." : "");
      continue;
    }
    if (res.status === 403) {
      const body = await res.json().catch(() => ({}));
      block(body.error || {});
      throw new Error("blocked");
    }
    return res;
  }
}

// ---------------------------------------------------------------------------------- live stream

function setConn(kind, text) {
  $("conn").dataset.state = kind;
  $("conn-text").textContent = text;
}

function parseEvent(block) {
  const event = { type: "message", data: "", id: null };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const at = line.indexOf(":");
    const field = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
    if (field === "event") event.type = value;
    else if (field === "data") event.data += (event.data ? "\n" : "") + value;
    else if (field === "id") event.id = value;
  }
  return event;
}

async function stream() {
  let backoff = 500;
  while (!state.blocked) {
    try {
      const headers = state.lastId === null ? {} : { "Last-Event-ID": String(state.lastId) };
      const res = await api("/_mock/events", { headers });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      setConn(state.paused ? "paused" : "live", state.paused ? "paused" : "live");
      backoff = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          onEvent(parseEvent(buffer.slice(0, cut)));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (err) {
      if (state.blocked) return;
    }
    setConn("off", "reconnecting…");
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 5000);
  }
}

function onEvent(event) {
  const data = event.data ? JSON.parse(event.data) : {};
  if (event.type === "hello") {
    const parts = [`v${data.version}`, `profile ${data.profile}`, `speed ${data.speed}`,
      `unmatched: ${data.unmatched}`, `journal keeps ${data.journal_size}`];
    $("server-info").textContent = parts.join(" · ");
  } else if (event.type === "entry") {
    const pos = Number(event.id);
    if (state.lastId !== null && pos <= state.lastId) return; // already shown
    state.lastId = pos;
    if (state.paused) {
      state.held.push(data);
      if (state.held.length > MAX_ROWS) state.held.shift();
      updatePause();
    } else {
      addRow(data, true);
    }
    scheduleScenarioRefresh();
  } else if (event.type === "cleared") {
    state.lastId = Number(event.id);
    clearRows();
    scheduleScenarioRefresh();
  } else if (event.type === "gap") {
    note(`${data.missed} older entries left the journal (it keeps the newest only) while this page was away.`);
  } else if (event.type === "overflow") {
    note(data.message);
  }
}

function note(text) {
  const banner = $("banner");
  if (state.blocked) return;
  banner.className = "banner";
  banner.replaceChildren(h("strong", {}, "Note:"), text);
  banner.hidden = false;
  setTimeout(() => (banner.hidden = true), 8000);
}

// ---------------------------------------------------------------------------------- journal

function addRow(s, fresh) {
  const scenario = s.unmatched
    ? h("span", { class: "badge bad" }, "UNMATCHED")
    : s.scenario
      ? h("span", { class: "scenario" }, s.scenario,
          s.step !== null && s.step !== undefined ? h("span", { class: "step" }, ` · step ${s.step + 1}`) : null)
      : h("span", { class: "muted" }, "—");
  const tr = h("tr", { "data-seq": s.seq, class: fresh ? "fresh" : null, tabindex: 0,
    onclick: () => select(s.seq), onkeydown: (ev) => ev.key === "Enter" && select(s.seq) },
    h("td", { class: "num" }, String(s.seq)),
    h("td", { class: "time" }, fmtTime(s.time).slice(0, 8), h("span", { class: "ms" }, fmtTime(s.time).slice(8))),
    h("td", {}, h("span", { class: "route", title: `${s.method} ${s.path}` },
      h("span", { class: "badge accent" }, s.api),
      h("span", { class: "path" }, s.method === "POST" ? s.path : `${s.method} ${s.path}`),
      s.stream ? h("span", { class: "badge", title: "streamed (SSE)" }, "SSE") : null)),
    h("td", { class: "model" }, s.model || "—"),
    h("td", { class: "text", title: s.last_user }, s.last_user || h("span", { class: "muted" }, "—")),
    h("td", { class: "cell-scenario" }, scenario),
    h("td", {}, statusBadge(s.status, s.outcome)),
    h("td", { class: "num" }, fmtMs(s.duration_ms)),
    h("td", { class: "outcome" }, outcomeCell(s.outcome),
      s.adjusted.map((a) => h("span", { class: "chip", title: "adjusted by the profile" }, a))),
  );
  state.rows.set(s.seq, { summary: s, tr });
  $("journal").tBodies[0].prepend(tr);
  if (state.rows.size > MAX_ROWS) {
    const [oldest] = state.rows.keys();
    state.rows.get(oldest).tr.remove();
    state.rows.delete(oldest);
  }
  applyFilter(tr, s);
  addPick(s);
  updateStats();
}

function clearRows() {
  state.rows.clear();
  $("journal").tBodies[0].replaceChildren();
  $("explain-pick").replaceChildren(h("option", { value: "" }, "paste a body…"));
  closeDetails();
  updateStats();
}

function matches(s) {
  if ($("only-unmatched").checked && !s.unmatched) return false;
  const q = $("filter-journal").value.trim().toLowerCase();
  if (!q) return true;
  const hay = [s.seq, s.path, s.api, s.model, s.last_user, s.scenario, s.unmatched ? "unmatched" : "",
    s.status, s.outcome, ...s.adjusted].join(" ").toLowerCase();
  return q.split(/\s+/).every((w) => hay.includes(w));
}

function applyFilter(tr, s) {
  tr.hidden = !matches(s);
}

function refilter() {
  for (const { summary, tr } of state.rows.values()) applyFilter(tr, summary);
  updateStats();
}

function updateStats() {
  const all = [...state.rows.values()].map((r) => r.summary);
  const unmatched = all.filter((s) => s.unmatched).length;
  const errors = all.filter((s) => s.status >= 400 || s.status === 0).length;
  const shown = [...state.rows.values()].filter((r) => !r.tr.hidden).length;
  $("count-journal").textContent = String(all.length);
  const stats = $("stats");
  stats.replaceChildren(
    h("b", {}, String(all.length)), " requests · ",
    h("b", { class: unmatched ? "bad" : null }, String(unmatched)), " unmatched · ",
    h("b", {}, String(errors)), " errors",
    shown !== all.length ? ` · ${shown} shown` : "",
  );
  $("empty-journal").hidden = all.length > 0 || state.blocked;
}

function updatePause() {
  const button = $("pause");
  button.textContent = state.paused ? `Resume${state.held.length ? ` (${state.held.length} new)` : ""}` : "Pause";
  button.classList.toggle("active", state.paused);
  if ($("conn").dataset.state !== "off") setConn(state.paused ? "paused" : "live", state.paused ? "paused" : "live");
}

function togglePause() {
  state.paused = !state.paused;
  if (!state.paused) {
    for (const s of state.held) addRow(s, true);
    state.held = [];
  }
  updatePause();
}

// ---------------------------------------------------------------------------------- details

function closeDetails() {
  state.selected = null;
  $("details").hidden = true;
  $("details").parentElement.classList.remove("with-details");
  for (const { tr } of state.rows.values()) tr.removeAttribute("aria-selected");
}

function section(title, ...kids) {
  return h("section", {}, h("h3", {}, title), ...kids);
}

function messageView(m) {
  const parts = [];
  if (typeof m.content === "string") parts.push(m.content);
  else if (Array.isArray(m.content)) {
    for (const p of m.content) parts.push(p && typeof p.text === "string" ? p.text : pretty(p));
  }
  if (m.tool_calls) parts.push(pretty(m.tool_calls));
  if (m.tool_call_id) parts.push(`(for ${m.tool_call_id})`);
  const role = typeof m.role === "string" ? m.role : "?";
  return h("div", { class: `message ${role}` },
    h("div", { class: "role" }, role + (m.name ? ` · ${m.name}` : "")),
    h("div", { class: "body" }, parts.join("\n") || "—"));
}

function replyView(reply) {
  if (!reply) {
    return [h("p", { class: "note" }, "No reply summary was recorded for this request.")];
  }
  if (reply.error) {
    const e = reply.error;
    return [h("dl", { class: "facts" },
      h("dt", {}, "error"), h("dd", {}, statusBadge(e.status, ""), " ", e.type || "", e.code ? ` · ${e.code}` : ""),
      h("dt", {}, "message"), h("dd", {}, e.message || ""))];
  }
  const out = [];
  if (reply.reasoning) out.push(h("div", { class: "message system" }, h("div", { class: "role" }, "reasoning"), h("div", { class: "body" }, reply.reasoning)));
  if (reply.content !== null && reply.content !== undefined) out.push(h("div", { class: "message assistant" }, h("div", { class: "role" }, "content"), h("div", { class: "body" }, reply.content)));
  if (reply.refusal) out.push(h("div", { class: "message developer" }, h("div", { class: "role" }, "refusal"), h("div", { class: "body" }, reply.refusal)));
  for (const call of reply.tool_calls || []) {
    out.push(h("div", { class: "message tool" }, h("div", { class: "role" }, `tool call · ${call.name}`), h("div", { class: "body mono" }, pretty(call.arguments))));
  }
  if (reply.images && reply.images.length) {
    out.push(h("div", { class: "thumbs" }, reply.images.map((src) =>
      h("a", { href: src, target: "_blank", rel: "noopener" },
        h("img", { class: "thumb", src, loading: "lazy", alt: `image ${reply.size || ""}` })))));
  }
  const facts = [];
  if (reply.size) facts.push(h("dt", {}, "image"), h("dd", {}, `${reply.size} · ${reply.output_format}`));
  if (reply.task_id) facts.push(h("dt", {}, "task"), h("dd", { class: "mono" }, `${reply.service || ""} ${reply.task_id}`));
  if (reply.status && !reply.error) facts.push(h("dt", {}, "task status"), h("dd", {}, `${reply.status}${reply.progress != null ? ` · ${reply.progress}%` : ""}`));
  if (reply.finish_reason) facts.push(h("dt", {}, "finish_reason"), h("dd", {}, reply.finish_reason));
  if (reply.usage) facts.push(h("dt", {}, "usage"), h("dd", { class: "mono" }, Object.entries(reply.usage).map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ")));
  if (facts.length) out.push(h("dl", { class: "facts" }, facts));
  return out;
}

function whyView(v) {
  const label = { answers: ["answers", "ok"], shadowed: ["matches, but an earlier one answers", "warn"],
    used_up: ["used up", "warn"], fails: ["fails", "bad"] }[v.verdict];
  return h("div", { class: `why ${v.verdict === "answers" ? "ok" : ""}` },
    h("div", { class: "head" },
      h("span", { class: "scenario" }, v.name),
      h("span", { class: `badge ${label[1]}` }, label[0]),
      v.step !== null && v.steps > 1 ? h("span", { class: "muted" }, `step ${v.step + 1} of ${v.steps}`) : null,
      h("span", { class: "where" }, v.where)),
    v.failed.length ? h("ul", {}, v.failed.map((f) => h("li", {}, f))) : null);
}

async function select(seq) {
  state.selected = seq;
  for (const [key, { tr }] of state.rows) tr.setAttribute("aria-selected", String(key === seq));
  const pane = $("details");
  pane.hidden = false;
  pane.parentElement.classList.add("with-details");
  pane.replaceChildren(h("div", { class: "details-head" }, h("h2", {}, `#${seq}`)), h("section", { class: "note" }, "Loading…"));
  let entry;
  try {
    const res = await api(`/_mock/journal/${seq}`);
    entry = await res.json();
    if (!res.ok) throw new Error(entry.error ? entry.error.message : `HTTP ${res.status}`);
  } catch (err) {
    if (state.selected === seq) pane.replaceChildren(h("div", { class: "details-head" }, h("h2", {}, `#${seq}`), h("button", { class: "small", onclick: closeDetails }, "Close")), h("section", {}, String(err.message)));
    return;
  }
  if (state.selected !== seq) return;
  renderDetails(entry);
}

function renderDetails(e) {
  const pane = $("details");
  const yamlBox = h("section", { hidden: true });
  const head = h("div", { class: "details-head" },
    h("h2", { title: `${e.method} ${e.path}` }, `#${e.seq} · ${e.method} ${e.path}`),
    h("button", { class: "small", onclick: () => explainEntry(e) }, "Explain"),
    h("button", { class: "small", onclick: () => showYaml(e.seq, yamlBox) }, "As scenario"),
    h("button", { class: "small", onclick: closeDetails, "aria-label": "Close details" }, "✕"));
  const facts = h("dl", { class: "facts" },
    h("dt", {}, "time"), h("dd", {}, `${new Date(e.time * 1000).toLocaleString()} (${fmtTime(e.time)})`),
    h("dt", {}, "scenario"), h("dd", {}, e.unmatched ? h("span", { class: "badge bad" }, "UNMATCHED")
      : e.scenario ? [h("span", { class: "scenario" }, e.scenario), e.step !== null ? ` · step ${e.step + 1}` : ""] : "—"),
    h("dt", {}, "status"), h("dd", {}, statusBadge(e.status, e.outcome), " ", outcomeCell(e.outcome)),
    h("dt", {}, "duration"), h("dd", {}, `${fmtMs(e.duration_ms)} ms`),
    h("dt", {}, "model"), h("dd", { class: "mono" }, e.model || "—"),
    h("dt", {}, "api"), h("dd", {}, e.api),
    h("dt", {}, "request id"), h("dd", { class: "mono" }, e.request_id || "—"),
    e.worker !== null && e.worker !== undefined ? [h("dt", {}, "process"), h("dd", { class: "worker" }, `worker ${e.worker}`)] : null);
  const parts = [head, section("Summary", facts)];
  if (e.unmatched) {
    parts.push(section("Why nothing matched",
      e.nearest && e.nearest.length
        ? [h("p", { class: "muted" }, "The nearest scenarios (as loaded now), and the conditions this request fails:"), e.nearest.map(whyView)]
        : h("p", {}, "No scenarios are loaded."),
      h("details", {}, h("summary", {}, "The 404 the client got"), h("p", { class: "why" }, e.unmatched))));
  }
  if (e.adjusted.length) parts.push(section("Adjusted by the profile", e.adjusted.map((a) => h("span", { class: "chip" }, a))));
  const body = e.body;
  if (body && typeof body === "object" && Array.isArray(body.messages)) {
    parts.push(section(`Conversation · ${body.messages.length} message${body.messages.length === 1 ? "" : "s"}`, body.messages.map(messageView)));
  }
  parts.push(section("Reply", replyView(e.reply)));
  const delays = e.extra && e.extra.delays;
  if (delays && delays.length) {
    const total = delays.reduce((a, b) => a + b, 0);
    parts.push(section("Scripted delays",
      h("p", {}, `${delays.length} frames over ${total.toFixed(3)} s (before --speed): first text after ${delays.find((d) => d > 0) || 0} s`),
      h("pre", { class: "block" }, delays.map((d) => d.toFixed(3)).join("  "))));
  }
  const extra = Object.fromEntries(Object.entries(e.extra || {}).filter(([k]) => k !== "delays"));
  if (Object.keys(extra).length) parts.push(section("Extra", h("pre", { class: "block" }, pretty(extra))));
  parts.push(yamlBox);
  const bodyText = pretty(body);
  const copyBody = h("button", { class: "small", onclick: (ev) => copy(bodyText, ev.target) }, "Copy");
  parts.push(section("Request body", h("details", {}, h("summary", {}, "JSON as sent"), h("div", { class: "copy-row" }, copyBody), h("pre", { class: "block" }, bodyText))));
  parts.push(section("Headers (credentials redacted)", h("dl", { class: "facts mono" },
    Object.entries(e.headers || {}).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))));
  pane.replaceChildren(...parts);
}

async function showYaml(seq, box) {
  box.hidden = false;
  box.replaceChildren(h("h3", {}, "As a scenario"), h("p", { class: "note" }, "Loading…"));
  const res = await api(`/_mock/journal/${seq}/scenario`);
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try { message = JSON.parse(text).error.message; } catch { /* keep the text */ }
    box.replaceChildren(h("h3", {}, "As a scenario"), h("p", {}, message));
    return;
  }
  const button = h("button", { class: "small", onclick: (ev) => copy(text, ev.target) }, "Copy");
  box.replaceChildren(h("h3", {}, "As a scenario"), h("div", { class: "copy-row" }, button), h("pre", { class: "block yaml" }, text));
  box.scrollIntoView({ block: "nearest" });
}

// ---------------------------------------------------------------------------------- scenarios

let scenarioTimer = null;
function scheduleScenarioRefresh() {
  if (state.tab !== "scenarios" || scenarioTimer) return;
  scenarioTimer = setTimeout(() => { scenarioTimer = null; loadScenarios(); }, 400);
}

async function loadScenarios() {
  let data;
  try {
    const res = await api("/_mock/scenarios/detail");
    data = await res.json();
  } catch {
    return;
  }
  state.scenarios = data;
  $("count-scenarios").textContent = String(data.scenarios.length);
  renderScenarios();
}

function nextStep(p, afterLast) {
  if (p.used < p.of) return `next: step ${p.used + 1}`;
  if (afterLast === "stop") return "used up";
  return afterLast === "cycle" ? `next: step ${(p.used % p.of) + 1}` : `next: step ${p.of} again`;
}

function renderScenarios() {
  const data = state.scenarios;
  if (!data) return;
  const problems = $("reload-problems");
  problems.hidden = !data.reload_problems.length;
  problems.replaceChildren(h("h3", {}, "The last hot reload failed; the set below is still serving."),
    h("pre", {}, data.reload_problems.join("\n")));
  const q = $("filter-scenarios").value.trim().toLowerCase();
  const rows = data.scenarios.filter((s) => !q || s.name.toLowerCase().includes(q));
  const body = $("scenarios").tBodies[0];
  body.replaceChildren(...rows.map((s) => {
    let sequence = h("span", { class: "muted" }, "single reply");
    if (s.steps > 1 || s.after_last === "stop") {
      sequence = h("div", {},
        h("div", {}, `${s.steps} steps · after last: ${s.after_last}`),
        h("div", { class: "muted" }, `per ${s.conversation}; ${s.conversations} conversation${s.conversations === 1 ? "" : "s"}`),
        s.positions.map((p) => h("div", { class: "muted mono" }, `${nextStep(p, s.after_last)} · ${p.conversation ? JSON.stringify(p.conversation) : "(no conversation key)"}`)));
    }
    return h("tr", {},
      h("td", { class: "num" }, String(s.rank + 1)),
      h("td", { class: "scenario" }, s.name),
      h("td", { class: "where" }, s.where),
      h("td", { class: "num" }, String(s.priority)),
      h("td", {}, s.conditions.length ? s.conditions.map((c) => h("span", { class: "chip cond" }, c)) : h("span", { class: "muted" }, "anything")),
      h("td", {}, sequence),
      h("td", { class: `num hits ${s.hits ? "" : "zero"}` }, String(s.hits)));
  }));
  const fallback = data.fallback ? ` · unmatched requests get the default reply (${data.fallback.hits} so far)` : "";
  $("scenario-stats").textContent = `${rows.length} of ${data.scenarios.length} shown${fallback}${data.watching ? " · hot reload on" : ""}`;
}

// ---------------------------------------------------------------------------------- explain

const EXAMPLE = { model: "gpt-4", messages: [{ role: "user", content: "How is the weather in Paris?" }] };

function addPick(s) {
  const pick = $("explain-pick");
  const label = `#${s.seq} · ${s.scenario || (s.unmatched ? "UNMATCHED" : "—")} · ${(s.last_user || "").slice(0, 50)}`;
  pick.insertBefore(h("option", { value: s.seq }, label), pick.options[1] || null);
  while (pick.options.length > 200) pick.remove(pick.options.length - 1);
}

async function pickEntry() {
  const seq = $("explain-pick").value;
  if (!seq) return;
  const res = await api(`/_mock/journal/${seq}`);
  const entry = await res.json();
  if (!res.ok) return;
  fillExplain(entry);
}

let explainPath = ""; // the entry's path: Gemini names the model and the method there

function fillExplain(entry) {
  $("explain-body").value = pretty(entry.body);
  $("explain-api").value = entry.api || "chat";
  explainPath = entry.path || "";
  const headers = Object.fromEntries(Object.entries(entry.headers || {}).filter(([k]) => k.toLowerCase().startsWith("x-") && !k.toLowerCase().startsWith("x-stainless")));
  $("explain-headers").value = Object.keys(headers).length ? pretty(headers) : "";
}

function explainEntry(entry) {
  fillExplain(entry);
  $("explain-pick").value = String(entry.seq);
  showTab("explain");
  runExplain();
}

async function runExplain() {
  const out = $("explain-output");
  let body;
  let headers = {};
  try {
    body = JSON.parse($("explain-body").value);
    const raw = $("explain-headers").value.trim();
    if (raw) headers = JSON.parse(raw);
  } catch (err) {
    out.replaceChildren(h("div", { class: "verdict bad" }, h("div", { class: "big" }, "Not valid JSON"), h("p", {}, String(err.message))));
    return;
  }
  const res = await api("/_mock/explain", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ api: $("explain-api").value, body, headers, path: explainPath }),
  });
  const data = await res.json();
  if (!res.ok) {
    out.replaceChildren(h("div", { class: "verdict bad" }, h("div", { class: "big" }, `HTTP ${res.status}`), h("p", {}, data.error ? data.error.message : "")));
    return;
  }
  out.replaceChildren(...explainView(data).filter(Boolean));
}

function explainView(d) {
  if (d.rejected) {
    return [h("div", { class: "verdict bad" },
      h("div", { class: "big" }, `Rejected before matching: ${d.rejected.status}`),
      h("p", {}, d.rejected.message),
      d.rejected.param ? h("p", { class: "muted" }, `param: ${d.rejected.param}`) : null)];
  }
  let verdict;
  if (d.answer && d.fallback) {
    verdict = h("div", { class: "verdict warn" }, h("div", { class: "big" }, "No scenario matches; the default reply answers (--unmatched default)"));
  } else if (d.answer) {
    const step = d.answer.steps > 1 ? ` · step ${d.answer.step + 1} of ${d.answer.steps}` : "";
    verdict = h("div", { class: "verdict ok" },
      h("div", { class: "big" }, "Answered by ", h("span", {}, d.answer.scenario), step),
      h("p", { class: "mono muted" }, d.answer.where));
  } else {
    verdict = h("div", { class: "verdict bad" }, h("div", { class: "big" }, "No scenario matches: 404 scenario_not_found"), h("p", {}, d.unmatched || ""));
  }
  const adjusted = d.adjusted && d.adjusted.length
    ? h("div", { class: "verdicts" }, h("h3", {}, "The profile adjusts"), d.adjusted.map((a) => h("span", { class: "chip" }, a)))
    : null;
  return [verdict, adjusted,
    h("div", { class: "verdicts" },
      h("p", { class: "muted" }, `${d.scenarios.length} scenario${d.scenarios.length === 1 ? "" : "s"}, in the order they are tried:`),
      d.scenarios.map(whyView))];
}

// ---------------------------------------------------------------------------------- chrome

function showTab(name) {
  state.tab = name;
  for (const button of document.querySelectorAll(".tabs button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const tab of ["journal", "scenarios", "explain"]) $(`tab-${tab}`).hidden = tab !== name;
  if (name === "scenarios") loadScenarios();
}

const THEMES = ["auto", "light", "dark"];
function applyTheme(theme) {
  if (theme === "auto") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.dataset.theme = theme;
  $("theme").title = `Theme: ${theme}`;
  $("theme").textContent = { auto: "◐", light: "☀", dark: "☾" }[theme];
}

async function reset(what) {
  if (!what) return;
  await api(`/_mock/reset?what=${encodeURIComponent(what)}`, { method: "POST" });
  $("reset").value = "";
  note(`Reset ${what === "all" ? "everything" : what}.`);
  loadScenarios();
}

function init() {
  $("base-url").textContent = `${location.origin}/v1`;
  for (const button of document.querySelectorAll(".tabs button")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  $("filter-journal").addEventListener("input", refilter);
  $("only-unmatched").addEventListener("change", refilter);
  $("filter-scenarios").addEventListener("input", renderScenarios);
  $("refresh-scenarios").addEventListener("click", loadScenarios);
  $("pause").addEventListener("click", togglePause);
  $("reset").addEventListener("change", (ev) => reset(ev.target.value));
  $("explain-run").addEventListener("click", runExplain);
  $("explain-pick").addEventListener("change", pickEntry);
  $("explain-body").value = pretty(EXAMPLE);
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !$("token-dialog").open) closeDetails();
  });
  let theme = localStorage.getItem(THEME_KEY) || "auto";
  applyTheme(theme);
  $("theme").addEventListener("click", () => {
    theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    localStorage.setItem(THEME_KEY, theme);
    applyTheme(theme);
  });
  updateStats();
  loadScenarios();
  stream();
}

init();
