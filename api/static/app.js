/* Call center dashboard: GET /api/v1/live for the picture, the /api/v1/events websocket to keep it live.
 * Plain JS, no build step, nothing fetched from elsewhere. Text goes in with textContent only (no HTML
 * injection from caller names). Shapes: api/README-live.md. */
"use strict";

const TOKEN_KEY = "cc.token";
const FILTER_KEY = "cc.filters";
const MYEXT_KEY = "cc.myExtension";
const STATE_LABEL = { unregistered: "Unregistered", idle: "Idle", ringing: "Ringing", in_call: "In call",
                      on_hold: "On hold" };
const MODE_LABEL = { listen: "Listen", whisper: "Whisper", barge: "Barge", takeover: "Take over" };
const FILTER_OF = { on_hold: "in_call" }; // the "In call" filter also shows calls on hold
const MONITOR_ROLES = new Set(["admin", "supervisor"]);

const model = { extensions: new Map(), calls: new Map(), queues: new Map(), trunks: new Map(), monitors: new Map(),
                serviceLevel: new Map(), openQueues: new Set(), recent: [] };
const RECENT_SIZE = 8;
const FINISHED = new Set(["answered", "missed", "busy", "failed", "abandoned"]);
const STATUS_LABEL = { answered: "Answered", missed: "Missed", busy: "Busy", failed: "Failed", abandoned: "Abandoned",
                       in_progress: "In progress", ringing: "Ringing" };
const VIEWS = {}; // name -> { title, show() }: the other pages (history.js, charts.js, admin.js) add theirs
const session = { token: "", identity: null, ws: null, retry: 0, lastMessage: 0, heartbeat: 15, timer: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const keyOf = (row, field) => `${row.pbx || ""}/${row[field] || ""}`;

function duration(since) {
  if (!since) return "";
  const secs = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(s).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function toast(text, kind, extra) {
  const node = el("div", { class: `toast ${kind || ""}`, role: kind === "error" ? "alert" : "status", text });
  if (extra) node.append(" ", extra);
  $("toasts").append(node);
  while ($("toasts").childElementCount > 4) $("toasts").firstElementChild.remove();
  setTimeout(() => node.remove(), kind === "error" ? 8000 : 5000);
}

// the CRM record of a number (config http.crm_record_url, sent in hello; only http/https pass the config check):
// a link that opens it, or null when no pattern is configured or there is no number
function crmLink(number, text) {
  const pattern = session.crmRecordUrl || "";
  if (!number || !/^https?:\/\//i.test(pattern)) return null;
  const href = pattern.split("{number}").join(encodeURIComponent(number));
  return el("a", { href, class: "crm-link", target: "_blank", rel: "noopener noreferrer", "data-number": number,
                   text: text || "CRM record" });
}

/* ---------- API ---------- */

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    const message = (data && data.error && data.error.message) || `${response.status} ${response.statusText}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return data;
}

// Events that arrive while a snapshot is on its way wait for it, then apply in order: a snapshot taken before a
// call ended must not bring the call back, and a ring announced before the snapshot that also lists it is shown
// once (calls are keyed by id; a legacy ring has the same id in both).
const waitingForSnapshot = new Set();

function receive(msg) {
  if (waitingForSnapshot.size) { for (const held of waitingForSnapshot) held.push(msg); } else applyEvent(msg);
}

async function refetch() {
  const held = [];
  waitingForSnapshot.add(held);
  let live;
  let sessions = [];
  try {
    live = await api("GET", "/api/v1/live");
    if (session.identity && MONITOR_ROLES.has(session.identity.role)) {
      try { sessions = (await api("GET", "/api/v1/monitor")).items || []; } catch (_) { sessions = []; }
    }
  } finally {
    waitingForSnapshot.delete(held);
    if (!live) for (const msg of held) applyEvent(msg); // no snapshot: the model goes on from the events
  }
  for (const name of ["extensions", "calls", "queues", "trunks", "monitors"]) model[name].clear();
  for (const m of sessions) model.monitors.set(m.session_id, m);
  for (const e of live.extensions) model.extensions.set(keyOf(e, "number"), e);
  for (const c of live.calls) model.calls.set(c.call_id, c);
  for (const q of live.queues) model.queues.set(keyOf(q, "name"), q);
  for (const t of live.trunks) model.trunks.set(keyOf(t, "name"), t);
  model.loaded = true; // the phones of /live are known (phone.js: a phone not among them is a legacy PBX's)
  for (const msg of held) applyEvent(msg);
  render();
  refreshServiceLevel();
  refreshRecent();
}

async function refreshRecent() {
  // the strip starts from the call log (same visibility rule as every page) and then follows call.ended
  try {
    const page = await api("GET", "/api/v1/calls?limit=40");
    model.recent = (page.items || []).filter((c) => FINISHED.has(c.status)).slice(0, RECENT_SIZE)
      .map((c) => ({ ...c, call_id: c.id }));
    renderRecent();
  } catch (_) { /* the strip stays as it was */ }
}

function finished(type, data) {
  const id = data.call_id || data.id;
  const status = type === "call.missed" ? "missed" : (data.status || "answered");
  const known = model.recent.find((c) => c.call_id === id);
  if (known) { Object.assign(known, data, { call_id: id, status }); } else {
    model.recent.unshift({ ...data, call_id: id, status });
    model.recent.length = Math.min(model.recent.length, RECENT_SIZE);
  }
  renderRecent();
}

/* ---------- events ---------- */

function extensionsOfCall(data) {
  const list = Array.isArray(data.extensions) ? data.extensions.slice() : [];
  if (data.extension && !list.includes(data.extension)) list.push(data.extension);
  return list.map((n) => model.extensions.get(`${data.pbx || ""}/${n}`)).filter(Boolean);
}

const popped = new Map(); // call id → whether its pop named the caller (a caller-ID box may send the number late)

function applyCall(type, data) {
  const id = data.call_id || data.id;
  if (!id) return;
  if (type === "call.ringing" || type === "call.answered") {
    const known = model.calls.get(id) || {};
    const state = type === "call.answered" ? "in_call" : (known.state || "ringing");
    model.calls.set(id, { ...known, ...data, call_id: id, state, started_at: known.started_at || data.started_at
                          || data.at || new Date().toISOString() });
    for (const ext of extensionsOfCall(data)) {
      if (type === "call.ringing" && ext.state === "idle") Object.assign(ext, { state: "ringing", call_id: id });
      if (type === "call.answered" && ext.number === data.extension) {
        Object.assign(ext, { state: "in_call", call_id: id, state_since: data.answered_at || new Date().toISOString() });
      }
    }
    // a screen pop is for the phone that rings: the viewer's own ("My phone" or the token's extension), once per
    // call (a ring-all queue rings several phones, each its own call.ringing) — and once more when a caller-ID box
    // names the caller after a first ring it popped without a number
    const mine = myExtension();
    const fromMe = data.caller === mine || data.caller_raw === mine; // e.g. the service ringing me to listen in
    const named = Boolean(data.caller || data.caller_name);
    if (type === "call.ringing" && mine && data.extension === mine && !fromMe
        && (!popped.has(id) || (named && !popped.get(id)))) {
      popped.set(id, named);
      toast(`Incoming call from ${data.caller_name ? `${data.caller_name} (${data.caller || ""})`
                                                  : (data.caller || "unknown")}`, "pop",
            crmLink(data.caller || data.caller_raw, "Open in CRM"));
    }
  } else if (type === "call.ended" || type === "call.missed" || type === "call.hidden") {
    model.calls.delete(id);
    if (data.ringing_call_id) model.calls.delete(data.ringing_call_id); // a legacy ring, now this record
    finished(type, data);
    if (type === "call.ended" && data.queue) {  // today's service level moved: ask again, at most every 5 s
      clearTimeout(session.slTimer);
      session.slTimer = setTimeout(refreshServiceLevel, 5000);
    }
    for (const ext of model.extensions.values()) {
      if (ext.call_id === id && ext.state !== "unregistered") Object.assign(ext, { state: "idle", call_id: null,
                                                                                 call: null });
    }
  }
}

function applyEvent(msg) {
  const data = msg.data || {};
  if (msg.type === "extension.state") {
    const key = `${data.pbx || ""}/${data.extension || data.number || ""}`;
    const known = model.extensions.get(key) || { pbx: data.pbx, number: data.extension || data.number };
    // the directory's name and department (from GET /live) stay when the PBX's event carries none
    const next = { ...known, ...data, number: known.number, name: data.name || known.name || "",
                   department: data.department || known.department || "" };
    if (next.state !== known.state) next.state_since = data.at || new Date().toISOString();
    model.extensions.set(key, next);
  } else if (msg.type.startsWith("call.")) {
    applyCall(msg.type, data);
    if (msg.type === "call.updated" || msg.type === "call.ended" || msg.type === "call.missed") {
      if (typeof phoneEvent === "function") phoneEvent(msg.type, data); // phone.js: hold, consult, recording…
    }
  } else if (msg.type === "queue.changed") {
    model.queues.set(keyOf(data, "name"), { ...(model.queues.get(keyOf(data, "name")) || {}), ...data });
  } else if (msg.type.startsWith("monitor.")) {
    if (!data.session_id) return;
    if (msg.type === "monitor.stop" || data.state === "ended") model.monitors.delete(data.session_id);
    else model.monitors.set(data.session_id, { ...(model.monitors.get(data.session_id) || {}), ...data });
  } else if (msg.type.startsWith("trunk.")) {
    model.trunks.set(keyOf(data, "name"), { ...(model.trunks.get(keyOf(data, "name")) || {}), ...data });
  } else {
    return;
  }
  render();
}

function setConnection(state, text) {
  const node = $("connection");
  node.dataset.state = state;
  node.textContent = text;
}

function connect() {
  if (session.ws) session.ws.close();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/api/v1/events?access_token=${encodeURIComponent(session.token)}`);
  session.ws = ws;
  ws.onmessage = (event) => {
    session.lastMessage = Date.now();
    const msg = JSON.parse(event.data);
    if (msg.type === "hello") {
      session.retry = 0;
      session.identity = msg.identity;
      session.crmRecordUrl = msg.crm_record_url || "";
      session.heartbeat = msg.heartbeat_seconds || 15;
      showIdentity();
      // subscribe first, then fetch: nothing published in between is lost
      refetch().then(() => setConnection("live", "Live")).catch(fail);
    } else if (msg.type !== "heartbeat" && msg.type !== "pong") {
      receive(msg);
    }
  };
  ws.onclose = (event) => {
    if (session.ws !== ws) return;
    session.ws = null;
    if (event.code === 1008 || event.code === 4401) return fail({ status: 401, message: "token refused" });
    const delay = Math.min(10000, 500 * 2 ** session.retry++);
    setConnection("reconnecting", `Reconnecting in ${Math.round(delay / 1000)} s…`);
    setTimeout(() => { if (session.token) probeThenConnect(); }, delay);
  };
}

async function probeThenConnect() {
  // a websocket refused at the handshake gives no status: ask /live so a bad token shows the login form
  try { await api("GET", "/api/v1/live"); connect(); } catch (error) {
    if (error.status === 401) fail(error); else { setConnection("reconnecting", "Server unreachable, retrying…");
      setTimeout(() => { if (session.token) probeThenConnect(); }, Math.min(10000, 500 * 2 ** session.retry++)); }
  }
}

function watchdog() {
  // heartbeats every heartbeat_seconds when quiet: twice that without anything means a dead link
  if (session.ws && session.ws.readyState === WebSocket.OPEN && session.lastMessage
      && Date.now() - session.lastMessage > 2500 * session.heartbeat) session.ws.close();
}

/* ---------- actions ---------- */

function myExtension() {
  return (session.identity && session.identity.extension) || $("my-ext").value.trim();
}

function monitorsOf(ext) {
  return [...model.monitors.values()].filter((m) => m.target_extension === ext.number
                                                   && (!m.pbx || !ext.pbx || m.pbx === ext.pbx));
}

function mayAct(m) {
  // the API's rule (api/routes/monitor.py): admins any session, others the sessions of their own phone
  const id = session.identity || {};
  if (id.role === "admin") return true;
  const mine = myExtension();
  return id.role === "supervisor" && Boolean(mine) && m.supervisor_extension === mine;
}

function mySession(ext) {
  const mine = myExtension();
  const all = monitorsOf(ext);
  return all.find((m) => mine && m.supervisor_extension === mine) || all.find(mayAct) || null;
}

async function stopMonitoring(ext, m) {
  try {
    await api("DELETE", `/api/v1/monitor/${encodeURIComponent(m.session_id)}`);
    toast(`Stopped monitoring ${ext.number}`);
  } catch (error) {
    toast(`Could not stop monitoring ${ext.number}: ${error.message}`, "error");
  }
}

async function monitor(ext, mode) {
  const current = mySession(ext);
  if (current) { // already on this call: switch the mode, no new call to the supervisor's phone
    try {
      await api("PATCH", `/api/v1/monitor/${encodeURIComponent(current.session_id)}`, { mode });
      toast(`Switching to ${mode} on ${ext.number}`);
    } catch (error) {
      toast(`Could not switch to ${mode} on ${ext.number}: ${error.message}`, "error");
    }
    return;
  }
  const body = { target_extension: ext.number, mode };
  const mine = myExtension();
  if (mine) body.supervisor_extension = mine;
  if (ext.pbx) body.pbx = ext.pbx;
  try {
    await api("POST", "/api/v1/monitor", body);
    toast(`Calling your phone (${mine || "?"}) to ${mode} on ${ext.number}…`);
  } catch (error) {
    toast(`Could not ${mode} on ${ext.number}: ${error.message}`, "error");
  }
}

async function hangup(ext) {
  const call = callOf(ext);
  const callId = ext.call_id || (call && call.call_id);
  if (!callId) return toast(`No call to hang up on ${ext.number}`, "error");
  if (!window.confirm(`Hang up the call on extension ${ext.number}?`)) return;
  try {
    await api("DELETE", `/api/v1/calls/${encodeURIComponent(callId)}`);
    toast(`Hanging up the call on ${ext.number}`);
  } catch (error) {
    toast(`Could not hang up on ${ext.number}: ${error.message}`, "error");
  }
}

/* ---------- rendering ---------- */

function filters() {
  const all = $("show-all").getAttribute("aria-pressed") === "true";
  const states = new Set([...document.querySelectorAll('#filters input[name="state"]:checked')].map((i) => i.value));
  return { all, states, department: $("dept-filter").value, text: $("text-filter").value.trim().toLowerCase() };
}

function matchesText(ext, text) {
  if (!text) return true;
  const call = callOf(ext);
  const words = [ext.number, ext.name, ext.department, call && (call.peer || call.caller), call && (call.peer_name
                 || call.caller_name)];
  return words.some((w) => w && String(w).toLowerCase().includes(text));
}

function renderDepartments(rows) {
  const wanted = [...new Set(rows.map((r) => r.department).filter(Boolean))].sort();
  const select = $("dept-filter");
  const have = [...select.options].slice(1).map((o) => o.value);
  if (JSON.stringify(have) === JSON.stringify(wanted)) return;
  const current = select.value || select.dataset.saved || "";
  select.replaceChildren(el("option", { value: "", text: "All departments" }),
                         ...wanted.map((d) => el("option", { value: d, text: d })));
  if (wanted.includes(current)) select.value = current;
}

function callOf(ext) {
  // the extension's own call object, else the active call it is on (the snapshot may only list calls)
  if (ext.call) return ext.call;
  if (ext.call_id && model.calls.has(ext.call_id)) return model.calls.get(ext.call_id);
  if (ext.state === "idle" || ext.state === "unregistered") return null;
  for (const c of model.calls.values()) {
    if ((c.pbx || "") === (ext.pbx || "") && (c.extension === ext.number || (c.extensions || []).includes(ext.number))) {
      return c;
    }
  }
  return null;
}

function tile(ext) {
  const state = STATE_LABEL[ext.state] ? ext.state : "unregistered";
  const call = callOf(ext);
  const peer = call ? (call.peer_name || call.peer || call.caller_name || call.caller || "") : "";
  const since = call ? (call.answered_at || call.started_at) : ext.state_since;
  const label = `Extension ${ext.number}${ext.name ? ` ${ext.name}` : ""}: ${STATE_LABEL[state]}`
                + (peer ? ` with ${peer}` : "");
  const node = el("li", { class: "tile", "data-state": state, "data-extension": ext.number, tabindex: 0,
                          "aria-label": label },
    el("div", { class: "num", text: ext.number }),
    el("div", { class: "name", text: ext.name || "\u00a0" }),
    el("div", { class: "state", text: STATE_LABEL[state] }),
    el("div", { class: "peer", text: [peer, state !== "idle" && state !== "unregistered" ? duration(since) : ""]
      .filter(Boolean).join(" · ") || "\u00a0", "data-since": since || "" }),
    model.pbxCount > 1 ? el("span", { class: "pbx", text: ext.pbx || "" }) : null,
    ...monitorsOf(ext).map((m) => el("div", { class: "monitored", "data-session": m.session_id,
                                              "data-state": m.state || "",
                                              title: `${m.supervisor_extension} is monitoring ${ext.number} (${m.mode})` },
      `${MODE_LABEL[m.mode] || m.mode} · ${m.supervisor_extension}`
        + (m.state === "calling" || m.state === "attaching" ? " (calling…)" : ""),
      mayAct(m) ? el("button", { type: "button", "data-action": "stop-session", text: "✕",
                                 "aria-label": `Stop ${m.supervisor_extension} monitoring ${ext.number}`,
                                 onclick: () => stopMonitoring(ext, m) }) : null)));
  if (state === "in_call" || state === "on_hold") {
    const actions = el("div", { class: "actions", role: "group", "aria-label": `Actions for ${ext.number}` });
    if (session.identity && MONITOR_ROLES.has(session.identity.role)) {
      const current = mySession(ext);
      const settling = current && (current.state === "calling" || current.state === "attaching");
      for (const mode of ["listen", "whisper", "barge"]) {
        if (settling) break; // the mode can change once the supervisor's phone is in the call
        actions.append(el("button", { type: "button", "data-action": mode, text: MODE_LABEL[mode],
                                      "aria-pressed": current ? String(current.mode === mode) : null,
                                      "aria-label": `${mode} on ${ext.number}`, onclick: () => monitor(ext, mode) }));
      }
      if (current) {
        actions.append(el("button", { type: "button", class: "ghost", "data-action": "stop", text: "Stop",
                                      "aria-label": `Stop monitoring ${ext.number}`,
                                      onclick: () => stopMonitoring(ext, current) }));
      }
    }
    actions.append(el("button", { type: "button", class: "danger", "data-action": "hangup", text: "Hang up",
                                  "aria-label": `Hang up ${ext.number}`, onclick: () => hangup(ext) }));
    node.append(actions);
  }
  return node;
}

function renderTiles() {
  const rows = [...model.extensions.values()];
  renderDepartments(rows);
  const { all, states, department, text } = filters();
  $("filters").dataset.all = String(all);
  rows.sort((a, b) => (a.pbx || "").localeCompare(b.pbx || "") || a.number.length - b.number.length
                      || a.number.localeCompare(b.number));
  model.pbxCount = new Set(rows.map((r) => r.pbx)).size;
  const shown = rows.filter((e) => (all || states.has(FILTER_OF[e.state] || e.state || "unregistered"))
                                  && (!department || e.department === department) && matchesText(e, text));
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".tile");
  const focusedExt = focused ? focused.dataset.extension : null;
  $("tiles").replaceChildren(...shown.map(tile));
  if (focusedExt) {
    const again = $("tiles").querySelector(`[data-extension="${CSS.escape(focusedExt)}"]`);
    if (again) again.focus();
  }
  $("tiles-empty").hidden = shown.length > 0;
  $("ext-count").textContent = `${shown.length} of ${rows.length}`;
}

function party(c) {
  // who the call is with, seen from the call center: the customer (or both ends of an internal call)
  const caller = c.caller_name ? `${c.caller_name} (${c.caller || c.caller_raw || ""})` : (c.caller || c.caller_raw || "");
  if (c.direction === "outbound") return `→ ${c.callee_name || c.callee || c.callee_raw || "?"}`;
  if (c.direction === "internal") return `${c.caller || "?"} → ${c.callee || "?"}`;
  return caller || "unknown";
}

// a legacy PBX's or caller-ID box's call (source smdr / cid): which line (CO) it is on, beside the phone it rings
const lineOf = (c) => (c.line && (c.source === "smdr" || c.source === "cid") ? ` · line ${c.line}` : "");

function renderCalls() {
  const calls = [...model.calls.values()].sort((a, b) => String(a.started_at).localeCompare(String(b.started_at)));
  $("calls").replaceChildren(...calls.map((c) => el("tr", { "data-call": c.call_id, "data-source": c.source,
                                                            "data-line": c.line },
    el("td", {}, party(c), c.caller_name && c.direction !== "outbound" ? " " : null,
       c.caller_name && c.direction !== "outbound" ? crmLink(c.caller || c.caller_raw, "CRM") : null),
    el("td", { text: `${c.extension || (c.extensions || []).join(", ") || "—"}${lineOf(c)}` }),
    el("td", {}, el("span", { class: "badge", "data-state": c.state, text: STATE_LABEL[c.state] || c.state || "" })),
    el("td", { text: c.queue || "" }),
    el("td", { class: "num", "data-since": c.answered_at || c.started_at || "",
               text: duration(c.answered_at || c.started_at) }))));
  $("calls-empty").hidden = calls.length > 0;
  $("calls-count").textContent = calls.length ? `(${calls.length})` : "";
}

const COUNT_LABEL = { available: "Available", busy: "Busy", paused: "Paused", wrapup: "Wrap-up" };
const MEMBER_LABEL = { ...STATE_LABEL, wrapup: "Wrap-up" };

function ago(seconds) {
  return new Date(Date.now() - Math.max(0, Number(seconds) || 0) * 1000).toISOString();
}

function memberRow(q, m) {
  const canPause = session.identity && (MONITOR_ROLES.has(session.identity.role)
                                        || session.identity.extension === m.extension);
  const ext = model.extensions.get(`${q.pbx || ""}/${m.extension}`);
  const word = m.paused ? `Paused${m.reason ? ` (${m.reason})` : ""}` : (MEMBER_LABEL[m.state] || m.state || "");
  return el("li", { "data-member": m.extension, "data-state": m.state || "", "data-paused": String(Boolean(m.paused)) },
    el("span", { class: "dot", "aria-hidden": "true" }),
    el("span", { text: `${m.extension}${ext && ext.name ? ` ${ext.name}` : ""}` }),
    el("span", { class: "meta", text: word }),
    canPause ? el("button", { type: "button", class: "ghost", "data-action": m.paused ? "unpause" : "pause",
                              text: m.paused ? "Unpause" : "Pause",
                              "aria-label": `${m.paused ? "Unpause" : "Pause"} ${m.extension} in ${q.name}`,
                              onclick: () => pauseMember(q, m, !m.paused) }) : null);
}

function renderQueues() {
  // every figure comes from the API as is (LiveQueue: waiting, longest_wait, agent_counts; the summary
  // report for today's service level): the page counts nothing itself, so it cannot disagree with a CRM
  const queues = [...model.queues.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
  $("queues").replaceChildren(...queues.map((q) => {
    const counts = q.agent_counts || {};
    const waiting = q.waiting || 0;
    const sl = model.serviceLevel.get(q.name);
    const members = Array.isArray(q.members) ? q.members : [];
    return el("li", { class: "queue", "data-queue": q.name },
      el("div", { class: "qhead" },
        el("strong", { text: q.name }),
        el("span", { class: waiting > 0 ? "waiting-hot" : "", "data-field": "waiting", text: `${waiting} waiting` }),
        el("span", { class: "meta", "data-field": "longest-wait", "data-seconds": String(q.longest_wait || 0),
                     "data-since": waiting > 0 ? ago(q.longest_wait) : "",
                     text: waiting > 0 ? `longest ${duration(ago(q.longest_wait))}` : "no wait" }),
        el("span", { class: "meta", title: "answered within the service-level time / offered, since midnight" },
          "SL today ", el("span", { class: "sl", "data-field": "service-level",
                                    text: sl === undefined || sl === null ? "—" : `${sl}%` }))),
      el("dl", { class: "counts" }, ...Object.entries(COUNT_LABEL).map(([key, label]) =>
        el("div", { "data-count": key }, el("dt", { text: label }), el("dd", { text: String(counts[key] ?? 0) })))),
      members.length ? el("details", { class: "members-box", open: model.openQueues.has(q.name),
                                       ontoggle: (event) => { if (event.target.open) model.openQueues.add(q.name);
                                                              else model.openQueues.delete(q.name); } },
        el("summary", { text: `${members.length} member${members.length === 1 ? "" : "s"}` }),
        el("ul", { class: "members" }, ...members.map((m) => memberRow(q, m)))) : null);
  }));
  $("queues-empty").hidden = queues.length > 0;
}

async function pauseMember(q, m, paused) {
  try {
    const now = await api("POST", `/api/v1/queues/${encodeURIComponent(q.name)}/members/`
                                  + `${encodeURIComponent(m.extension)}/pause`, { paused });
    if (now && now.name) model.queues.set(keyOf(now, "name"), now.agent_counts ? now : { ...q, ...now, agent_counts:
      q.agent_counts });
    toast(`${paused ? "Paused" : "Unpaused"} ${m.extension} in ${q.name}`);
    render();
  } catch (error) {
    toast(`Could not ${paused ? "pause" : "unpause"} ${m.extension}: ${error.message}`, "error");
  }
}

function localMidnight() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

async function refreshServiceLevel() {
  // today's service level per queue, from the statistics a CRM reads too (callers still waiting not counted)
  if (!session.identity || !["admin", "supervisor", "crm"].includes(session.identity.role)) return;
  try {
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    const report = await api("GET", `/api/v1/stats/service-level?from=${encodeURIComponent(localMidnight())}`
                                    + `&tz=${encodeURIComponent(tz)}`);
    // the day so far: the last hour's cumulated figure (the same line the charts page draws)
    model.serviceLevel = new Map((report.items || []).map((q) => [q.queue,
      q.hours.length ? q.hours[q.hours.length - 1].cumulative_percent : null]));
    renderQueues();
  } catch (_) { /* the panel keeps "—" */ }
}

function bar(share, label) {
  const fill = el("span", { class: share >= 90 ? "full" : "" });
  fill.style.width = `${share}%`; // CSSOM, not a style attribute: the page's CSP forbids inline styles
  return el("div", { class: "bar", role: "img", "aria-label": label }, fill);
}

function renderTrunks() {
  const trunks = [...model.trunks.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
  $("trunks").replaceChildren(...trunks.map((t) => {
    const used = t.calls_in_use || 0;
    const capacity = t.capacity || 0;
    const share = capacity ? Math.min(100, Math.round((100 * used) / capacity)) : (used ? 100 : 0);
    return el("li", { "data-trunk": t.name },
      el("strong", { text: t.name }),
      el("span", { text: capacity ? `${used} / ${capacity}` : `${used} in use` }),
      el("span", { class: "meta", text: `${t.pbx || ""} · ${t.state || "unknown"}` }),
      bar(share, `${used} calls in use`));
  }));
  $("trunks-empty").hidden = trunks.length > 0;
}

function renderRecent() {
  $("recent").replaceChildren(...model.recent.map((c) => el("li", { "data-call": c.call_id, "data-status": c.status },
    el("a", { href: `#history/${encodeURIComponent(c.call_id)}`, title: "Open in the call history" },
      el("span", { text: `${party(c)} · ${c.extension || "—"}` }),
      el("span", { class: "meta", text: `${STATUS_LABEL[c.status] || c.status} · ${
        c.ended_at ? new Date(c.ended_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : ""}`
        + (c.billsec ? ` · ${duration(new Date(Date.now() - c.billsec * 1000).toISOString())}` : "") })))));
  $("recent-empty").hidden = model.recent.length > 0;
}

function render() {
  if (typeof renderPhone === "function") renderPhone(); // phone.js (only when its view is shown)
  renderRecent();
  renderTiles();
  renderCalls();
  renderQueues();
  renderTrunks();
}

function tick() {
  for (const node of document.querySelectorAll("[data-since]")) {
    const since = node.dataset.since;
    if (!since) continue;
    if (node.tagName === "TD") node.textContent = duration(since);
    else node.textContent = node.textContent.replace(/(\d+:)?\d+:\d\d$/, duration(since));
  }
  watchdog();
}

/* ---------- pages ---------- */

function currentView() {
  const [name, ...rest] = location.hash.replace(/^#/, "").split("/");
  return { name: VIEWS[name] ? name : "board", arg: rest.map(decodeURIComponent).join("/") };
}

function route() {
  // one page, several views (#board, #history[/call-id], #charts, #admin): one sign-in, one websocket
  if (!session.token) return;
  const { name, arg } = currentView();
  const link = document.querySelector(`#views a[data-view="${name}"]`);
  if (name !== "board" && link && link.hidden) { location.hash = "#board"; return; } // not for this role
  for (const a of document.querySelectorAll("#views a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  $("board").hidden = name !== "board";
  for (const [other, view] of Object.entries(VIEWS)) {
    if (view.node) view.node.hidden = other !== name;
  }
  $("view-title").textContent = name === "board" ? "live" : VIEWS[name].title;
  if (name !== "board") VIEWS[name].show(arg);
}

/* ---------- start-up ---------- */

function showIdentity() {
  const id = session.identity || {};
  $("who").textContent = `${id.role || ""}${id.extension ? ` · ext. ${id.extension}` : ""}${id.pbx ? ` · ${id.pbx}` : ""}`;
  $("me").hidden = Boolean(id.extension);
  for (const link of document.querySelectorAll("#views a")) {
    const roles = link.dataset.roles ? link.dataset.roles.split(" ") : null;
    const built = link.dataset.view === "board" || Boolean(VIEWS[link.dataset.view]);
    link.hidden = !built || Boolean(roles && !roles.includes(id.role));
  }
  $("views").hidden = false;
  route();
}

function fail(error) {
  if (error && error.status === 401) {
    localStorage.removeItem(TOKEN_KEY);
    session.token = "";
    if (session.ws) { const ws = session.ws; session.ws = null; ws.close(); }
    showLogin("That token was refused (unknown, revoked or expired).");
  } else {
    toast(`Could not load the live view: ${error && error.message}`, "error");
  }
}

function showLogin(message) {
  $("board").hidden = true;
  $("views").hidden = true;
  for (const view of Object.values(VIEWS)) if (view.node) view.node.hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setConnection("offline", "Not connected");
  $("token").focus();
}

function start(token) {
  session.token = token;
  $("login").hidden = true;
  $("board").hidden = currentView().name !== "board";
  $("logout").hidden = false;
  setConnection("reconnecting", "Connecting…");
  probeThenConnect();
}

function restoreFilters() {
  try {
    const saved = JSON.parse(localStorage.getItem(FILTER_KEY) || "null");
    if (saved) {
      for (const input of document.querySelectorAll('#filters input[name="state"]')) {
        input.checked = saved.states.includes(input.value);
      }
      $("show-all").setAttribute("aria-pressed", String(Boolean(saved.all)));
      $("dept-filter").dataset.saved = saved.department || "";
      $("text-filter").value = saved.text || "";
    }
  } catch (_) { /* defaults stay */ }
}

function saveFilters() {
  const { all, states, department } = filters();
  localStorage.setItem(FILTER_KEY, JSON.stringify({ all, states: [...states], department,
                                                  text: $("text-filter").value }));
  renderTiles();
}

document.addEventListener("DOMContentLoaded", () => {
  restoreFilters();
  $("filters").addEventListener("change", saveFilters);
  $("dept-filter").addEventListener("change", saveFilters);
  $("text-filter").addEventListener("input", saveFilters);
  window.addEventListener("hashchange", route);
  $("show-all").addEventListener("click", () => {
    const pressed = $("show-all").getAttribute("aria-pressed") === "true";
    $("show-all").setAttribute("aria-pressed", String(!pressed));
    saveFilters();
  });
  $("my-ext").value = localStorage.getItem(MYEXT_KEY) || "";
  $("my-ext").addEventListener("change", () => localStorage.setItem(MYEXT_KEY, $("my-ext").value.trim()));
  $("logout").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    session.token = "";
    if (session.ws) { const ws = session.ws; session.ws = null; ws.close(); }
    showLogin("");
  });
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    localStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    start(token);
  });
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("access_token");
  if (fromUrl) { // keep it, and take it out of the address bar (and of the browser history)
    localStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete("access_token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  session.timer = setInterval(tick, 1000);
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) start(token); else showLogin("");
});
