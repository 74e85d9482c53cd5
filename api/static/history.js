/* Call history (#history, #history/<call id>): the call log's filters, keyset pages, CSV of the same filter,
 * a call's timeline and its recording in the page. Uses app.js's api(), el(), $ and session; the API decides
 * what this token may see (an agent its own calls), the page only asks. */
"use strict";

const HISTORY_PAGE = 25;
const hist = { filters: null, cursors: [null], index: 0, selected: null, loaded: false };
const KIND_LABEL = {
  ring: "Rang", answer: "Answered", hangup: "Hung up", hold: "Put on hold", unhold: "Taken off hold",
  transfer: "Transferred", transfer_consult: "Consultation", transfer_cancelled: "Transfer cancelled",
  transfer_answered: "Transfer answered",
  queue_join: "Joined queue", queue_attempt: "Queue rang an agent", queue_answer: "Answered from the queue",
  queue_leave: "Left the queue", ivr: "IVR choice", originate: "Click-to-call", dial: "Dialled",
  dial_failed: "Dial failed", recording_started: "Recording started", recording_stopped: "Recording stopped",
  conference_join: "Joined a conference", conference_add: "Added to the conference",
  conference_merge: "Conference merged", monitor_start: "Monitoring started", monitor_mode: "Monitoring mode changed",
  monitor_stop: "Monitoring stopped", monitor_refused: "Monitoring refused", hangup_requested: "Hang-up requested",
  agent_answered: "Agent answered", cancelled: "Cancelled", agi_end: "Dial plan finished", cli: "Caller ID",
  tag: "Tagged by the dial plan",
};

function historyQuery() {
  // the form as the API's query: dates are local days (until is inclusive), empty fields are left out
  const form = new FormData($("history-filters"));
  const query = new URLSearchParams();
  for (const [name, raw] of form.entries()) {
    const value = String(raw).trim();
    if (!value) continue;
    if (name === "from" || name === "until") {
      const day = new Date(`${value}T00:00:00`);
      if (name === "until") day.setDate(day.getDate() + 1);
      query.set(name, day.toISOString());
    } else {
      query.set(name, value);
    }
  }
  return query;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })}`;
}

function seconds(n) {
  n = Number(n) || 0;
  const m = Math.floor(n / 60), s = n % 60;
  return `${Math.floor(m / 60) ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}` : m}:${String(s).padStart(2, "0")}`;
}

function historyRow(c) {
  return el("tr", { "data-call": c.id, tabindex: 0, "aria-selected": String(c.id === hist.selected),
                    onclick: () => { location.hash = `#history/${encodeURIComponent(c.id)}`; },
                    onkeydown: (e) => { if (e.key === "Enter") location.hash = `#history/${encodeURIComponent(c.id)}`; } },
    el("td", { text: when(c.started_at) }),
    el("td", { text: c.direction }),
    el("td", { text: c.caller_name ? `${c.caller_name} (${c.caller || c.caller_raw})` : (c.caller || c.caller_raw || "") }),
    el("td", { text: c.callee_name ? `${c.callee_name} (${c.callee || c.callee_raw})` : (c.callee || c.callee_raw || "") }),
    el("td", { text: c.extension || "" }),
    el("td", { text: c.queue || "" }),
    el("td", { class: "status", "data-status": c.status, text: STATUS_LABEL[c.status] || c.status }),
    el("td", { class: "num", text: c.billsec ? seconds(c.billsec) : "" }),
    el("td", { text: c.has_recording ? "▶" : "", title: c.has_recording ? "has a recording" : null }));
}

async function loadHistory() {
  const query = new URLSearchParams(hist.filters);
  query.set("limit", String(HISTORY_PAGE));
  const cursor = hist.cursors[hist.index];
  if (cursor) query.set("cursor", cursor);
  $("history-error").textContent = "";
  try {
    const page = await api("GET", `/api/v1/calls?${query}`);
    $("history-rows").replaceChildren(...page.items.map(historyRow));
    $("history-empty").hidden = page.items.length > 0;
    hist.cursors.length = hist.index + 1;
    if (page.next_cursor) hist.cursors.push(page.next_cursor);
    $("history-next").disabled = !page.next_cursor;
    $("history-prev").disabled = hist.index === 0;
    $("history-page").textContent = `page ${hist.index + 1}`;
    $("history-rows").dataset.loaded = String(Date.now()); // tests wait for this
  } catch (error) {
    $("history-error").textContent = error.message;
  }
}

function search(event) {
  if (event) event.preventDefault();
  hist.filters = historyQuery().toString();
  hist.cursors = [null];
  hist.index = 0;
  loadHistory();
}

async function downloadCsv(event) {
  // the same filter as the table; fetched with the token in a header (not in a URL), saved from a blob
  event.preventDefault();
  try {
    const response = await fetch(`/api/v1/calls.csv?${historyQuery()}`,
                                 { headers: { Authorization: `Bearer ${session.token}` } });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    const url = URL.createObjectURL(await response.blob());
    const a = el("a", { href: url, download: `calls-${new Date().toISOString().slice(0, 10)}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    toast(`Could not download the CSV: ${error.message}`, "error");
  }
}

function fact(dl, label, value) {
  if (value === undefined || value === null || value === "") return;
  dl.append(el("dt", { text: label }), el("dd", { text: String(value) }));
}

function eventText(e) {
  const d = e.data || {};
  const bits = [];
  if (d.extension) bits.push(`ext. ${d.extension}`);
  if (d.queue) bits.push(`queue ${d.queue}`);
  if (d.supervisor || d.supervisor_extension) bits.push(`by ${d.supervisor || d.supervisor_extension}`);
  if (d.target && e.kind.startsWith("monitor")) bits.push(`on ${d.target}`);
  if (d.mode && !d.to) bits.push(d.mode);
  if (d.from && d.to) bits.push(`${d.from} → ${d.to}`);
  if (d.to && !d.from && d.to !== d.extension) bits.push(`to ${d.to}`);
  if (d.choice) bits.push(`choice ${d.choice}`);
  if (d.result) bits.push(d.result);
  if (d.cause) bits.push(`cause: ${d.cause}`);
  if (d.status) bits.push(d.status);
  if (d.reason) bits.push(d.reason);
  if (e.kind === "tag") {  // an AGI hook's tags: whatever it set, but not its own bookkeeping
    for (const [k, v] of Object.entries(d)) {
      if (!["hook", "extension", "queue", "status"].includes(k) && typeof v !== "object") bits.push(`${k}=${v}`);
    }
  }
  return bits.join(" · ");
}

async function showCall(id) {
  hist.selected = id;
  for (const row of document.querySelectorAll("#history-rows tr")) {
    row.setAttribute("aria-selected", String(row.dataset.call === id));
  }
  const box = $("call-detail");
  try {
    const detail = await api("GET", `/api/v1/calls/${encodeURIComponent(id)}`);
    const c = detail.call;
    const start = Date.parse(c.started_at);
    $("detail-title").textContent = `Call ${c.caller || c.caller_raw || "?"} → ${c.callee || c.callee_raw || "?"}`;
    const facts = $("detail-facts");
    facts.replaceChildren();
    fact(facts, "Started", when(c.started_at));
    fact(facts, "Direction", c.direction);
    fact(facts, "Status", STATUS_LABEL[c.status] || c.status);
    fact(facts, "Extension", c.extension);
    fact(facts, "Queue", c.queue);
    fact(facts, "Trunk", c.trunk);
    fact(facts, "Ringing", c.ring_seconds ? seconds(c.ring_seconds) : "");
    fact(facts, "Talk", seconds(c.billsec));
    fact(facts, "Hang-up cause", c.hangup_cause);
    fact(facts, "Source", String(c.source || "").toUpperCase());
    fact(facts, "PBX", c.pbx);
    if (c.tags && Object.keys(c.tags).length) {
      fact(facts, "Tags", Object.entries(c.tags).map(([k, v]) => `${k}=${v}`).join(", "));
    }
    // the recording plays in the page; the API serves Range requests, so the player can seek
    $("detail-audio").replaceChildren(c.recording_url ? el("audio", {
      id: "recording", controls: true, preload: "metadata",
      src: `${c.recording_url}?access_token=${encodeURIComponent(session.token)}` }) : el("p", {
      class: "empty", text: "No recording." }));
    $("detail-timeline").replaceChildren(...detail.events.map((e) => el("li", { "data-kind": e.kind },
      el("span", { class: "at", text: `+${seconds(Math.max(0, Math.round((Date.parse(e.at) - start) / 1000)))}`,
                   title: when(e.at) }), " ",
      el("span", { class: "what", text: KIND_LABEL[e.kind] || e.kind.replace(/_/g, " ") }),
      eventText(e) ? ` ${eventText(e)}` : "",
      e.source ? " " : "", e.source ? el("span", { class: "src", text: e.source }) : null)));
    if (!detail.events.length) $("detail-timeline").append(el("li", { text: "No timeline recorded for this call." }));
    $("attempts-title").hidden = detail.queue_attempts.length === 0;
    $("detail-attempts").replaceChildren(...detail.queue_attempts.map((a) => el("li", { "data-kind": "queue_attempt" },
      el("span", { class: "at", text: `+${seconds(Math.max(0, Math.round((Date.parse(a.started_at) - start) / 1000)))}` }), " ",
      el("span", { class: "what", text: `${a.queue}: ${a.extension}` }),
      ` ${a.result}${a.ring_seconds ? ` after ${a.ring_seconds} s` : ""}`)));
    box.hidden = false;
    box.dataset.call = id;
  } catch (error) {
    box.hidden = true;
    toast(`Could not open the call: ${error.message}`, "error");
  }
}

async function loadDepartments() {
  try {
    const rows = (await api("GET", "/api/v1/admin/extensions")).items || [];
    const names = [...new Set(rows.map((r) => r.department).filter(Boolean))].sort();
    $("departments").replaceChildren(...names.map((d) => el("option", { value: d })));
  } catch (_) { /* an agent token may not list extensions: the field stays free text */ }
}

VIEWS.history = {
  title: "call history",
  node: null,
  show(arg) {
    if (!hist.loaded) {
      hist.loaded = true;
      loadDepartments();
      search();
    }
    if (arg) showCall(arg); else { $("call-detail").hidden = true; hist.selected = null; }
  },
};

document.addEventListener("DOMContentLoaded", () => {
  VIEWS.history.node = $("history-view");
  $("history-filters").addEventListener("submit", search);
  $("csv-link").addEventListener("click", downloadCsv);
  $("history-next").addEventListener("click", () => { hist.index += 1; loadHistory(); });
  $("history-prev").addEventListener("click", () => { hist.index = Math.max(0, hist.index - 1); loadHistory(); });
});
