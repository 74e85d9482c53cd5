/* Pickup on the phone panel (#phone, issue 17): the calls ringing now at colleagues' phones that my pickup groups
 * let me take, each with a Pickup button. Pickup is POST /api/v1/extensions/{ext}/pickup: my phone rings and
 * answering it takes the call (the same path as dialling *8<ext>). Colleagues' calls are not on my websocket
 * (a token sees its own extension), so the list is polled while the phone page is open. */
"use strict";

const pickup = { items: [], timer: null, busy: false };
const PICKUP_POLL_MS = 1500;

function pickupVisible() {
  return Boolean(VIEWS.phone && VIEWS.phone.node && !VIEWS.phone.node.hidden);
}

async function loadPickup() {
  if (pickup.busy) return;
  const section = $("phone-pickup-panel");
  const hasPhone = Boolean(session.identity && session.identity.extension);
  section.hidden = !hasPhone; // pickup answers at the token's own extension: a token without one has nothing here
  if (!hasPhone) return;
  pickup.busy = true;
  try {
    const found = await api("GET", "/api/v1/pickup");
    pickup.items = found.items || [];
    $("pickup-groups").textContent = (found.groups || []).length ? `groups: ${found.groups.join(", ")}` : "no group";
  } catch (error) {
    pickup.items = [];
  } finally {
    pickup.busy = false;
  }
  renderPickup();
}

function renderPickup() {
  $("phone-pickup").replaceChildren(...pickup.items.map((c) => {
    const who = c.caller_name ? `${c.caller_name} (${c.caller || c.caller_raw})` : (c.caller || c.caller_raw || "unknown");
    return el("li", { "data-call": c.call_id, "data-extension": c.extension, "data-state": "ringing" },
      el("span", { class: "badge", "data-state": "ringing", text: `Ringing at ${c.extension}` }),
      el("strong", { class: "party", text: who }),
      el("span", { class: "meta", "data-since": c.ringing_since || "", text: duration(c.ringing_since) }),
      el("button", { type: "button", "data-action": "pickup", text: "Pick up", onclick: () => pickUp(c) }));
  }));
  $("phone-pickup").dataset.loaded = String(Date.now()); // tests wait for this
  $("phone-pickup-empty").hidden = pickup.items.length > 0;
}

async function pickUp(c) {
  try {
    const done = await api("POST", `/api/v1/extensions/${encodeURIComponent(c.extension)}/pickup`);
    toast(`Your phone (${done.answer_at}) rings: answer it to take the call ringing at ${c.extension}`);
  } catch (error) {
    toast(`Could not pick up the call at ${c.extension}: ${error.message}`, "error");
  }
  loadPickup();
}

document.addEventListener("DOMContentLoaded", () => {
  pickup.timer = setInterval(() => { if (pickupVisible() && !document.hidden) loadPickup(); }, PICKUP_POLL_MS);
  window.addEventListener("hashchange", () => { if (pickupVisible()) loadPickup(); });
});
