/* The agent's phone panel (#phone): dial from a pad, my current calls with the buttons that apply to the
 * selected call's state, my recent calls with call-back. For a token bound to an extension (or "My phone").
 * Every action is the call-control API a CRM uses; the calls come from the live model app.js keeps. */
"use strict";

const phone = { selected: null, recent: [], target: "", routesFor: null };
const LEGACY_SOURCES = { smdr: "SMDR", cid: "Caller ID" }; // calls a legacy PBX reports: shown, never controlled
const PAD = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

function myCalls() {
  const mine = myExtension();
  if (!mine) return [];
  return [...model.calls.values()].filter((c) => !c.merged_into).filter((c) => c.extension === mine || (c.extensions || []).includes(mine)
                                                 || c.caller === mine || c.caller_raw === mine)
    .sort((a, b) => String(a.started_at).localeCompare(String(b.started_at)));
}

function otherParty(c) {
  const mine = myExtension();
  const outbound = c.caller === mine || c.caller_raw === mine;
  const number = outbound ? (c.callee || c.callee_raw) : (c.caller || c.caller_raw);
  const name = outbound ? c.callee_name : c.caller_name;
  return { number: number || "unknown", name: name || "" };
}

async function loadRoutes() {
  // the outbound routes my phone may use (GET /api/v1/routes); "" = the PBX's default route
  const mine = myExtension();
  phone.routesFor = mine;
  let routes = [];
  if (mine) {
    try { routes = (await api("GET", `/api/v1/routes?extension=${encodeURIComponent(mine)}`)).routes || []; }
    catch (_) { routes = []; }
  }
  if (phone.routesFor !== mine) return; // "My phone" changed meanwhile: that load wins
  const select = $("phone-route");
  const kept = select.value;
  select.replaceChildren(el("option", { value: "", text: "Default route" }),
    ...routes.map((r) => el("option", { value: r.name, title: r.via, text: r.label || r.name })));
  select.value = routes.some((r) => r.name === kept) ? kept : "";
  $("phone-route-box").hidden = routes.length === 0;
  select.dataset.loaded = mine;
}

async function dial(number) {
  const mine = myExtension();
  if (!mine) return toast("Set “My phone” first: it rings, then the number is dialled", "error");
  if (!number) return toast("Type a number to call", "error");
  const route = $("phone-route").value;
  try {
    await api("POST", "/api/v1/calls", route ? { extension: mine, number, route } : { extension: mine, number });
    toast(`Calling ${number}${route ? ` on ${route}` : ""}: your phone (${mine}) rings first`);
  } catch (error) {
    toast(`Could not call ${number}: ${error.message}`, "error");
  }
}

async function control(c, what, path, method, body) {
  try {
    await api(method || "POST", `/api/v1/calls/${encodeURIComponent(c.call_id)}${path}`, body);
    return true;
  } catch (error) {
    toast(`Could not ${what}: ${error.message}`, "error");
    return false;
  }
}

function isLegacy(c) {
  return Boolean(LEGACY_SOURCES[c.source]);
}

function onAsterisk(mine) {
  // a phone the live view knows is on a connected Asterisk; a legacy PBX's phone only has its calls reported
  return !model.loaded || [...model.extensions.values()].some((e) => e.number === mine);
}

function partyNode(c, who) {
  // the CRM name links to the CRM record when the config gives a URL pattern
  const label = who.name ? `${who.name} (${who.number})` : who.number;
  const link = who.name ? crmLink(who.number === "unknown" ? "" : who.number, label) : null;
  return el("strong", { class: "party" }, link || label);
}

function callButtons(c) {
  // only what applies to the call's state: a held call can be retrieved, a consultation confirmed or cancelled…
  const target = () => $("phone-target").value.trim();
  const buttons = [];
  const add = (action, text, onclick, cls) => buttons.push(el("button", { type: "button", "data-action": action,
                                                                          class: cls || "", text, onclick }));
  if (c.state === "in_call" && !c.consulting) {
    add("hold", "Hold", () => control(c, "hold", "/hold"));
    add("transfer", "Transfer", () => target() ? control(c, "transfer", "/transfer", "POST", { target: target() })
                                                 : toast("Type the number to transfer to", "error"));
    add("consult", "Consult", async () => {
      if (!target()) return toast("Type the number to consult", "error");
      if (await control(c, "consult", "/transfer", "POST", { target: target(), attended: true })) {
        c.consulting = true;
        renderPhone();
      }
    });
    add("conference", "Add to conference", () => target()
      ? control(c, "add to the conference", "/conference", "POST", { number: target() })
      : toast("Type the number to add", "error"));
    if (c.recording) add("record-stop", "Stop recording", () => control(c, "stop recording", "/recording", "DELETE"));
    else add("record", "Record", () => control(c, "record", "/recording"));
  }
  if (c.consulting) {
    add("confirm", "Complete transfer", () => control(c, "complete the transfer", "/transfer/complete"));
    add("cancel", "Cancel transfer", async () => {
      if (await control(c, "cancel the transfer", "/transfer/cancel")) { c.consulting = false; renderPhone(); }
    }, "ghost");
  }
  if (c.state === "in_call" && !c.consulting) {
    // conference: bring my held call in as one more party (shown only while I have one on hold)
    const held = myCalls().find((o) => o.call_id !== c.call_id && o.state === "on_hold");
    if (held) {
      add("conference-merge", `Add held call (${otherParty(held).number}) to conference`,
          () => control(c, "add the held call", "/conference", "POST", { call_id: held.call_id }));
    }
  }
  if (c.state === "on_hold") {
    add("retrieve", "Retrieve", () => control(c, "retrieve", "/unhold"));
    const other = myCalls().find((o) => o.call_id !== c.call_id && o.state === "in_call");
    if (other) {
      add("merge", "Merge into the other call", () => control(other, "merge", "/conference", "POST",
                                                               { call_id: c.call_id }));
    }
  }
  add("hangup", "Hang up", () => control(c, "hang up", "", "DELETE"), "danger");
  return buttons;
}

function conferenceParties(c) {
  // a conference (three or more parties): who is in it, each with Remove (not my own line: I hang up instead)
  const parties = c.parties || [];
  if (parties.length < 3) return null;
  return el("ul", { class: "parties", "aria-label": "Conference parties" }, ...parties.map((p) =>
    el("li", { "data-channel": p.channel, "data-party-state": p.state },
      el("span", { text: p.name ? `${p.name} (${p.number})` : (p.number || "unknown") }),
      el("span", { class: "meta", text: [p.extension && p.extension === myExtension() && !p.removable ? "you" : "",
                                          p.state === "talking" ? "" : p.state.replace("_", " ")]
                                          .filter(Boolean).join(", ") }),
      p.removable ? el("button", { type: "button", class: "ghost small", "data-action": "remove-party",
                                   text: "Remove", onclick: (event) => {
        event.stopPropagation();
        control(c, `remove ${p.number}`, `/parties/${encodeURIComponent(p.channel)}`, "DELETE");
      } }) : null)));
}

function renderPhone() {
  if (!VIEWS.phone.node || VIEWS.phone.node.hidden) return;
  const mine = myExtension();
  $("phone-ext").textContent = mine ? `Extension ${mine}` : "Set “My phone” in the top bar";
  if (phone.routesFor !== mine) loadRoutes();
  const legacyPhone = Boolean(mine) && !onAsterisk(mine);
  $("phone-dial").hidden = legacyPhone;
  $("phone-legacy").hidden = !legacyPhone;
  $("phone-target").closest("label").hidden = legacyPhone;
  const calls = myCalls();
  if (!calls.some((c) => c.call_id === phone.selected)) phone.selected = calls.length ? calls[0].call_id : null;
  $("phone-calls").replaceChildren(...calls.map((c) => {
    const who = otherParty(c);
    const selected = c.call_id === phone.selected;
    return el("li", { "data-call": c.call_id, "data-state": c.state, "aria-selected": String(selected),
                      onclick: () => { phone.selected = c.call_id; renderPhone(); } },
      el("span", { class: "badge", "data-state": c.state, text: STATE_LABEL[c.state] || c.state }),
      partyNode(c, who),
      isLegacy(c) ? el("span", { class: "meta source", "data-source": c.source, text: LEGACY_SOURCES[c.source] })
                  : null,
      el("span", { class: "meta", "data-since": c.answered_at || c.started_at || "",
                   text: duration(c.answered_at || c.started_at) }),
      c.recording ? el("span", { class: "rec", text: "● REC" }) : null,
      c.consulting ? el("span", { class: "meta", text: "consulting…" }) : null,
      selected && isLegacy(c) ? el("p", { class: "meta legacy-note",
                                          text: "Reported by a legacy PBX: no control from here" }) : null,
      selected && !isLegacy(c) ? el("div", { class: "call-buttons", role: "group",
                                             "aria-label": `Control the call with ${who.number}` },
                                    ...callButtons(c)) : null,
      selected && !isLegacy(c) ? conferenceParties(c) : null);
  }));
  $("phone-calls-empty").hidden = calls.length > 0;
}

async function loadRecent() {
  const mine = myExtension();
  if (!mine) return;
  try {
    const page = await api("GET", `/api/v1/calls?extension=${encodeURIComponent(mine)}&limit=10`);
    phone.recent = page.items.filter((c) => FINISHED.has(c.status));
  } catch (error) {
    phone.recent = [];
  }
  $("phone-recent").replaceChildren(...phone.recent.map((c) => {
    const who = otherParty({ ...c, call_id: c.id });
    return el("li", { "data-call": c.id, "data-status": c.status },
      el("span", { class: "meta", text: new Date(c.started_at).toLocaleString([], { dateStyle: "short",
                                                                                     timeStyle: "short" }) }),
      el("span", { text: `${c.direction === "outbound" ? "→" : "←"} ${who.name ? `${who.name} ` : ""}${who.number}` }),
      el("span", { class: "meta", text: STATUS_LABEL[c.status] || c.status }),
      isLegacy(c) ? el("span", { class: "meta source", "data-source": c.source,
                                 text: `${LEGACY_SOURCES[c.source]} record${c.billsec ? `, talked ${
                                   Math.floor(c.billsec / 60)}:${String(c.billsec % 60).padStart(2, "0")}` : ""}` })
                  : null,
      isLegacy(c) && !onAsterisk(mine) ? null
        : el("button", { type: "button", class: "ghost small", "data-action": "call-back", text: "Call back",
                         onclick: () => dial(who.number) }));
  }));
  $("phone-recent").dataset.loaded = String(Date.now()); // tests wait for this
  $("phone-recent-empty").hidden = phone.recent.length > 0;
}

function phoneEvent(type, data) {
  // call.updated says what an action did (hold, consult, recording…); the panel follows it
  const call = model.calls.get(data.call_id || data.id);
  if (type === "call.updated" && call) {
    const action = data.action;
    if (action === "hold") call.state = "on_hold";
    if (action === "unhold") call.state = "in_call";
    if (action === "recording_started") call.recording = true;
    if (action === "recording_stopped") call.recording = false;
    if (action === "transfer_consult") call.consulting = true;
    if (action === "transfer" || action === "transfer_cancelled") call.consulting = false;
    if (Array.isArray(data.parties)) call.parties = data.parties; // a conference gained or lost a party
    if (action === "conference_merged_into") call.merged_into = data.into_call_id; // its parties are there now
  }
  if (type === "call.ended" || type === "call.missed") {
    clearTimeout(phone.recentTimer);
    phone.recentTimer = setTimeout(loadRecent, 700); // the row is written just after the event
  }
  renderPhone();
}

VIEWS.phone = { title: "phone", node: null, show() { renderPhone(); loadRecent(); loadRoutes(); } };

document.addEventListener("DOMContentLoaded", () => {
  VIEWS.phone.node = $("phone-view");
  $("phone-pad").replaceChildren(...PAD.map((key) => el("button", { type: "button", class: "key", "data-key": key,
                                                                    text: key, onclick: () => {
    $("phone-number").value += key;
    $("phone-number").focus();
  } })));
  $("phone-dial").addEventListener("submit", (event) => {
    event.preventDefault();
    dial($("phone-number").value.trim());
  });
  $("phone-clear").addEventListener("click", () => { $("phone-number").value = ""; });
  // the route choice (filled by loadRoutes) and the legacy note: built here, beside the number
  $("phone-number").after(el("label", { id: "phone-route-box", class: "route", hidden: true }, "Route ",
                             el("select", { id: "phone-route", "aria-label": "Outbound route" })));
  $("phone-dial").after(el("p", { id: "phone-legacy", class: "meta", hidden: true,
                                  text: "This phone is on a legacy PBX: its calls show as the PBX reports them "
                                        + "(caller ID while it rings, the SMDR record after). Dial from the phone." }));
});
