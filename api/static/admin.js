/* Admin pages (#admin, admin tokens only; the API refuses every other token anyway): monitor groups with
 * "who may monitor whom", API tokens (secret shown once, revoke), the extension directory, retention,
 * webhooks. Plain forms over the admin API. */
"use strict";

const ADMIN_TABS = ["groups", "tokens", "extensions", "retention", "webhooks"];
const admin = { tab: "groups", editing: null };

function listOf(text) {
  return String(text || "").split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

function adminError(where, error) {
  const node = $(`${where}-error`);
  if (node) node.textContent = error ? error.message : "";
}

function actionButton(text, action, onclick, extra) {
  return el("button", { type: "button", class: "ghost small", "data-action": action, text, onclick, ...(extra || {}) });
}

/* ---- monitor groups ---- */

async function loadGroups() {
  const [groups, access] = await Promise.all([api("GET", "/api/v1/admin/monitor-groups"),
                                              api("GET", "/api/v1/admin/monitor-access")]);
  $("groups-rows").replaceChildren(...groups.items.map((g) => el("tr", { "data-group": g.name },
    el("td", { text: g.name }), el("td", { text: g.level }), el("td", { text: g.observers.join(", ") }),
    el("td", { text: g.observed.join(", ") }), el("td", { text: g.announce ? "yes" : "" }),
    el("td", {}, actionButton("Edit", "edit", () => editGroup(g)),
       actionButton("Delete", "delete", () => deleteGroup(g))))));
  renderAccess(access.items);
}

function renderAccess(rows) {
  // observers down, monitored extensions across; each cell the highest mode allowed
  const observers = [...new Set(rows.map((r) => r.observer))];
  const targets = [...new Set(rows.map((r) => r.observed))].sort((a, b) => (a === "*") - (b === "*")
                                                                  || a.length - b.length || a.localeCompare(b));
  const cell = new Map(rows.map((r) => [`${r.observer}/${r.observed}`, r]));
  $("access").replaceChildren(
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Observer ↓ may … →" }),
      ...targets.map((t) => el("th", { scope: "col", text: t === "*" ? "anyone else" : t })))),
    el("tbody", {}, ...observers.map((o) => el("tr", { "data-observer": o }, el("th", { scope: "row", text: o }),
      ...targets.map((t) => {
        const r = cell.get(`${o}/${t}`);
        return el("td", { "data-observed": t, "data-level": r ? r.level : "", class: r ? `lvl-${r.level}` : "",
                          title: r ? `groups: ${r.groups.join(", ")}${r.announce ? " (announced)" : ""}` : "not allowed",
                          text: r ? r.level + (r.announce ? " ♪" : "") : "—" });
      })))));
  $("access-empty").hidden = rows.length > 0;
}

function editGroup(g) {
  admin.editing = g ? g.id : null;
  const form = $("group-form");
  form.elements.name.value = g ? g.name : "";
  form.elements.level.value = g ? g.level : "listen";
  form.elements.observers.value = g ? g.observers.join(", ") : "";
  form.elements.observed.value = g ? g.observed.join(", ") : "";
  form.elements.announce.checked = Boolean(g && g.announce);
  $("group-submit").textContent = g ? `Save “${g.name}”` : "Create group";
  $("group-cancel").hidden = !g;
}

async function saveGroup(event) {
  event.preventDefault();
  const form = event.target;
  const body = { name: form.elements.name.value.trim(), level: form.elements.level.value,
                 observers: listOf(form.elements.observers.value), observed: listOf(form.elements.observed.value),
                 announce: form.elements.announce.checked };
  try {
    if (admin.editing) await api("PUT", `/api/v1/admin/monitor-groups/${admin.editing}`, body);
    else await api("POST", "/api/v1/admin/monitor-groups", body);
    toast(`Monitor group “${body.name}” saved: it applies from the next monitoring attempt`);
    adminError("group", null);
    editGroup(null);
    await loadGroups();
  } catch (error) {
    adminError("group", error);
  }
}

async function deleteGroup(g) {
  if (!window.confirm(`Delete the monitor group “${g.name}”?`)) return;
  try {
    await api("DELETE", `/api/v1/admin/monitor-groups/${g.id}`);
    await loadGroups();
  } catch (error) { adminError("group", error); }
}

/* ---- tokens ---- */

async function loadTokens() {
  const tokens = (await api("GET", "/api/v1/admin/tokens")).items;
  $("tokens-rows").replaceChildren(...tokens.map((t) => el("tr", { "data-token": t.id,
                                                                   "data-state": t.revoked_at ? "revoked" : "active" },
    el("td", { text: t.name || "" }), el("td", { text: t.role }), el("td", { text: t.extension || "" }),
    el("td", { text: t.org_unit || "" }), el("td", { text: t.pbx || "" }),
    el("td", { text: t.created_at ? new Date(t.created_at).toLocaleDateString() : "" }),
    el("td", { text: t.revoked_at ? "revoked" : (t.expires_at ? `until ${new Date(t.expires_at).toLocaleDateString()}`
                                                               : "active") }),
    el("td", {}, t.revoked_at ? null : actionButton("Revoke", "revoke", () => revokeToken(t))))));
}

async function createToken(event) {
  event.preventDefault();
  const form = event.target;
  const body = { role: form.elements.role.value, name: form.elements.name.value.trim(),
                 extension: form.elements.extension.value.trim(), org_unit: form.elements.org_unit.value.trim() };
  const days = form.elements.expires_days.value.trim();
  if (days) body.expires_days = Number(days);
  try {
    const made = await api("POST", "/api/v1/admin/tokens", body);
    // the secret exists in this answer only: show it once, never store it
    $("token-secret").replaceChildren(el("p", { text: "Copy this secret now: it will not be shown again." }),
                                      el("code", { id: "new-secret", text: made.secret }));
    $("token-secret").hidden = false;
    form.reset();
    adminError("token", null);
    await loadTokens();
  } catch (error) { adminError("token", error); }
}

async function revokeToken(t) {
  if (!window.confirm(`Revoke the ${t.role} token “${t.name || t.id}”? Whoever uses it is refused at once.`)) return;
  try {
    await api("DELETE", `/api/v1/admin/tokens/${encodeURIComponent(t.id)}`);
    await loadTokens();
  } catch (error) { adminError("token", error); }
}

/* ---- extensions ---- */

async function loadExtensions() {
  const rows = (await api("GET", "/api/v1/admin/extensions")).items;
  const known = new Set(rows.map((r) => `${r.pbx}/${r.number}`));
  for (const ext of model.extensions.values()) {  // phones the PBX knows but the directory does not yet
    if (!known.has(`/${ext.number}`) && !known.has(`${ext.pbx}/${ext.number}`)) {
      rows.push({ pbx: "", number: ext.number, name: "", department: "", org_unit: "", unsaved: true });
    }
  }
  rows.sort((a, b) => a.number.length - b.number.length || a.number.localeCompare(b.number));
  $("ext-rows").replaceChildren(...rows.map(extensionRow));
}

function extensionRow(r) {
  const input = (name, value) => el("input", { name, value: value || "", size: name === "department" ? 12 : 18,
                                               "aria-label": `${name} of ${r.number}` });
  const row = el("tr", { "data-number": r.number, "data-pbx": r.pbx },
    el("td", { text: r.number }), el("td", { text: r.pbx || "all" }),
    el("td", {}, input("name", r.name)), el("td", {}, input("department", r.department)),
    el("td", {}, input("org_unit", r.org_unit)),
    el("td", {}, actionButton(r.unsaved ? "Add" : "Save", "save", () => saveExtension(row, r))));
  return row;
}

async function saveExtension(row, r) {
  const value = (name) => row.querySelector(`input[name="${name}"]`).value.trim();
  try {
    await api("PUT", `/api/v1/admin/extensions/${encodeURIComponent(r.number)}?pbx=${encodeURIComponent(r.pbx || "")}`,
              { name: value("name"), department: value("department"), org_unit: value("org_unit") });
    toast(`Extension ${r.number} saved`);
    adminError("ext", null);
    await loadExtensions();
    refetch().catch(() => {}); // the board shows the new name / department
  } catch (error) { adminError("ext", error); }
}

async function addExtension(event) {
  event.preventDefault();
  const form = event.target;
  const number = form.elements.number.value.trim();
  try {
    await api("PUT", `/api/v1/admin/extensions/${encodeURIComponent(number)}?pbx=`,
              { name: form.elements.name.value.trim(), department: form.elements.department.value.trim() });
    form.reset();
    adminError("ext", null);
    await loadExtensions();
  } catch (error) { adminError("ext", error); }
}

/* ---- retention ---- */

const RETENTION_LABEL = { calls: "Calls (the call log)", recordings: "Recordings", queue_reports: "Queue reports" };

async function loadRetention() {
  const rules = await api("GET", "/api/v1/admin/retention");
  $("retention-rows").replaceChildren(...Object.entries(rules).map(([category, days]) => {
    const input = el("input", { type: "number", min: 1, max: 999, name: category, value: days ?? "",
                                placeholder: "forever", "aria-label": `days to keep ${category}` });
    return el("tr", { "data-category": category }, el("th", { scope: "row", text: RETENTION_LABEL[category] || category }),
      el("td", {}, input, " days"),
      el("td", {}, actionButton("Save", "save", async () => {
        const raw = input.value.trim();
        try {
          await api("PUT", `/api/v1/admin/retention/${category}`, { keep_days: raw ? Number(raw) : null });
          toast(`${RETENTION_LABEL[category] || category}: ${raw ? `kept ${raw} days` : "kept forever"}`);
          adminError("retention", null);
          await loadRetention();
        } catch (error) { adminError("retention", error); }
      })));
  }));
}

/* ---- webhooks ---- */

async function loadWebhooks() {
  const hooks = (await api("GET", "/api/v1/admin/webhooks")).items;
  $("hook-rows").replaceChildren(...hooks.map((h) => el("tr", { "data-webhook": h.id },
    el("td", { text: h.url }), el("td", { text: (h.events || []).join(", ") || "all call events" }),
    el("td", { text: h.description || "" }),
    el("td", {}, actionButton(h.enabled ? "Disable" : "Enable", h.enabled ? "disable" : "enable", async () => {
      try { await api("PATCH", `/api/v1/admin/webhooks/${h.id}`, { enabled: !h.enabled }); await loadWebhooks(); }
      catch (error) { adminError("hook", error); }
    }), actionButton("Delete", "delete", async () => {
      if (!window.confirm(`Delete the webhook to ${h.url}?`)) return;
      try { await api("DELETE", `/api/v1/admin/webhooks/${h.id}`); await loadWebhooks(); }
      catch (error) { adminError("hook", error); }
    })))));
}

async function createWebhook(event) {
  event.preventDefault();
  const form = event.target;
  const events = [...form.querySelectorAll('input[name="events"]:checked')].map((i) => i.value);
  try {
    const made = await api("POST", "/api/v1/admin/webhooks", { url: form.elements.url.value.trim(), events,
                                                               description: form.elements.description.value.trim() });
    $("hook-secret").replaceChildren(el("p", { text: "Signing secret (shown once — configure it in the receiver now):" }),
                                     el("code", { id: "new-hook-secret", text: made.secret }));
    $("hook-secret").hidden = false;
    form.reset();
    adminError("hook", null);
    await loadWebhooks();
  } catch (error) { adminError("hook", error); }
}

/* ---- the view ---- */

const ADMIN_LOADERS = { groups: loadGroups, tokens: loadTokens, extensions: loadExtensions, retention: loadRetention,
                        webhooks: loadWebhooks };

function showAdminTab(tab) {
  admin.tab = ADMIN_TABS.includes(tab) ? tab : "groups";
  for (const t of ADMIN_TABS) {
    $(`admin-${t}`).hidden = t !== admin.tab;
    const link = document.querySelector(`#admin-tabs a[data-tab="${t}"]`);
    if (t === admin.tab) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  const section = $(`admin-${admin.tab}`);
  section.dataset.loaded = "";
  ADMIN_LOADERS[admin.tab]().then(() => { section.dataset.loaded = String(Date.now()); })
    .catch((error) => toast(`Could not load: ${error.message}`, "error"));
}

VIEWS.admin = { title: "admin", node: null, show(arg) { showAdminTab(arg || admin.tab); } };

document.addEventListener("DOMContentLoaded", () => {
  VIEWS.admin.node = $("admin-view");
  $("group-form").addEventListener("submit", saveGroup);
  $("group-cancel").addEventListener("click", () => editGroup(null));
  $("token-form").addEventListener("submit", createToken);
  $("ext-form").addEventListener("submit", addExtension);
  $("hook-form").addEventListener("submit", createWebhook);
});
