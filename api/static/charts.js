/* Charts (#charts): plain SVG drawn from the statistics endpoints a CRM can call too (/api/v1/stats/…).
 * No library, no build step. Every mark carries data-* attributes with the figure it draws (tests read them,
 * screen readers get the same figures in each chart's table caption). */
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const SERIES = { answered: "#15803d", missed: "#ea580c", abandoned: "#b91c1c", other: "#94a3b8",
                 talk: "#15803d", idle: "#1d4ed8", pause: "#ca8a04" };
const QUEUE_COLOURS = ["#1d4ed8", "#15803d", "#7c3aed", "#ea580c", "#0891b2", "#be185d", "#4d7c0f", "#b45309"];

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const child of children) if (child) node.append(child);
  return node;
}

function svgText(x, y, text, attrs) {
  const node = svg("text", { x, y, "font-size": 11, fill: "#52606d", ...attrs });
  node.textContent = text;
  return node;
}

function niceMax(value) {
  // four grid steps of 1, 2 or 5 × 10^k, so every grid line has a whole-number label
  const raw = Math.max(1, value) / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  return step * 4;
}

function chartWindow() {
  // the chosen day in the browser's zone: midnight to midnight (or to now for today)
  const picked = $("charts-day").value;
  const start = picked ? new Date(`${picked}T00:00:00`) : new Date(new Date().setHours(0, 0, 0, 0));
  const end = new Date(start);
  end.setDate(end.getDate() + 1);
  const until = end > new Date() ? new Date() : end;
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  return new URLSearchParams({ from: start.toISOString(), until: until.toISOString(), tz });
}

function legend(entries) {
  return el("ul", { class: "chart-legend" }, ...entries.map(([label, colour, key]) => {
    const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.background = colour; // CSSOM, not an inline style attribute (CSP)
    return el("li", { "data-series": key }, swatch, label);
  }));
}

function drawCallsPerHour(report) {
  const hours = Array.from({ length: 24 }, (_, h) => h);
  const byHour = new Map(report.items.map((r) => [Number(r.hour.slice(11, 13)), r]));
  const kinds = ["answered", "missed", "abandoned", "other"];
  const max = niceMax(Math.max(1, ...report.items.map((r) => kinds.reduce((t, k) => t + r[k], 0))));
  const W = 720, H = 220, left = 34, bottom = 24, top = 8, bw = (W - left - 8) / 24;
  const scale = (v) => ((H - bottom - top) * v) / max;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
                             "aria-labelledby": "cph-title" });
  for (let i = 0; i <= 4; i++) {
    const y = H - bottom - ((H - bottom - top) * i) / 4;
    chart.append(svg("line", { x1: left, x2: W - 8, y1: y, y2: y, stroke: "#e4e7eb" }),
                 svgText(left - 6, y + 4, String((max * i) / 4), { "text-anchor": "end" }));
  }
  for (const h of hours) {
    const x = left + h * bw + 2;
    if (h % 3 === 0) chart.append(svgText(x + bw / 2 - 2, H - 8, String(h).padStart(2, "0"), { "text-anchor": "middle" }));
    const row = byHour.get(h);
    if (!row) continue;
    let y = H - bottom;
    for (const kind of kinds) {
      if (!row[kind]) continue;
      const height = scale(row[kind]);
      y -= height;
      const rect = svg("rect", { x, y, width: bw - 4, height, fill: SERIES[kind], "data-hour": h, "data-kind": kind,
                                 "data-value": row[kind] });
      rect.append(svg("title", {}, document.createTextNode(`${String(h).padStart(2, "0")}:00 ${kind}: ${row[kind]}`)));
      chart.append(rect);
    }
  }
  const totals = Object.fromEntries(kinds.map((k) => [k, report.items.reduce((t, r) => t + r[k], 0)]));
  return el("div", {},
    chart,
    legend([["Answered", SERIES.answered, "answered"], ["Missed", SERIES.missed, "missed"],
            ["Abandoned", SERIES.abandoned, "abandoned"], ["Other (busy, failed, still ringing)", SERIES.other, "other"]]),
    el("p", { class: "totals" }, ...kinds.map((k) => el("span", { "data-total": k, text: `${k} ${totals[k]}` }))));
}

function drawServiceLevel(report) {
  const W = 720, H = 220, left = 34, bottom = 24, top = 8;
  const x = (hour) => left + ((W - left - 8) * hour) / 24;
  const y = (pct) => H - bottom - ((H - bottom - top) * pct) / 100;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-labelledby": "sl-title" });
  for (const pct of [0, 25, 50, 75, 100]) {
    chart.append(svg("line", { x1: left, x2: W - 8, y1: y(pct), y2: y(pct), stroke: pct === 80 ? "#b91c1c" : "#e4e7eb" }),
                 svgText(left - 6, y(pct) + 4, `${pct}%`, { "text-anchor": "end" }));
  }
  for (let h = 0; h <= 24; h += 3) chart.append(svgText(x(h), H - 8, String(h).padStart(2, "0"), { "text-anchor": "middle" }));
  const entries = [];
  report.items.forEach((q, i) => {
    const colour = QUEUE_COLOURS[i % QUEUE_COLOURS.length];
    entries.push([`${q.queue} (${q.hours.length ? q.hours[q.hours.length - 1].cumulative_percent : 0}% so far)`,
                  colour, q.queue]);
    const points = q.hours.map((p) => [x(Number(p.hour.slice(11, 13)) + 0.5), y(p.cumulative_percent), p]);
    chart.append(svg("polyline", { points: points.map(([px, py]) => `${px},${py}`).join(" "), fill: "none",
                                   stroke: colour, "stroke-width": 2.5, "data-queue": q.queue }));
    for (const [px, py, p] of points) {
      const dot = svg("circle", { cx: px, cy: py, r: 4, fill: colour, "data-queue": q.queue, "data-hour": p.hour.slice(11, 13),
                                  "data-value": p.cumulative_percent, "data-offered": p.offered,
                                  "data-in-time": p.answered_in_time });
      dot.append(svg("title", {}, document.createTextNode(
        `${q.queue} ${p.hour.slice(11)}: ${p.service_level_percent}% this hour, ${p.cumulative_percent}% since midnight`
        + ` (${p.answered_in_time}/${p.offered} within ${report.service_level_seconds} s)`)));
      chart.append(dot);
    }
  });
  return el("div", {}, chart, legend(entries),
            el("p", { class: "meta", text: `Answered within ${report.service_level_seconds} s / offered, cumulated `
                                           + "since the start of the day." }));
}

function drawAgents(report) {
  const rows = report.items;
  const kinds = ["talk", "idle", "pause"];
  const max = Math.max(60, ...rows.map((r) => r.talk_seconds + r.idle_seconds + r.pause_seconds));
  const W = 720, row = 26, left = 60, H = Math.max(40, rows.length * row + 24);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-labelledby": "agents-title" });
  rows.forEach((r, i) => {
    const y0 = 6 + i * row;
    chart.append(svgText(left - 8, y0 + 15, r.extension, { "text-anchor": "end", fill: "#1f2933", "font-size": 12 }));
    let x0 = left;
    for (const kind of kinds) {
      const value = r[`${kind}_seconds`];
      if (!value) continue;
      const width = ((W - left - 10) * value) / max;
      const rect = svg("rect", { x: x0, y: y0, width, height: row - 8, fill: SERIES[kind], "data-agent": r.extension,
                                 "data-kind": kind, "data-value": value });
      rect.append(svg("title", {}, document.createTextNode(`${r.extension} ${kind}: ${seconds(value)}`)));
      chart.append(rect);
      x0 += width;
    }
  });
  if (!rows.length) chart.append(svgText(left, 24, "No agent activity in this window."));
  return el("div", {}, chart, legend([["Talk", SERIES.talk, "talk"], ["Idle (between first and last activity)",
                                      SERIES.idle, "idle"], ["Paused", SERIES.pause, "pause"]]));
}

async function drawCharts() {
  const query = chartWindow();
  const box = $("charts-view");
  box.dataset.drawn = "";
  try {
    const [perHour, level, agents] = await Promise.all([
      api("GET", `/api/v1/stats/calls-per-hour?${query}`), api("GET", `/api/v1/stats/service-level?${query}`),
      api("GET", `/api/v1/stats/agents?${query}`)]);
    $("chart-calls").replaceChildren(drawCallsPerHour(perHour));
    $("chart-sl").replaceChildren(drawServiceLevel(level));
    $("chart-agents").replaceChildren(drawAgents(agents));
    box.dataset.drawn = String(Date.now()); // tests wait for this
  } catch (error) {
    toast(`Could not draw the charts: ${error.message}`, "error");
  }
}

VIEWS.charts = { title: "charts", node: null, show() { drawCharts(); } };

document.addEventListener("DOMContentLoaded", () => {
  VIEWS.charts.node = $("charts-view");
  const today = new Date();
  $("charts-day").value = `${today.getFullYear()}-${String(today.getMonth() + 1).padStart(2, "0")}-`
                          + `${String(today.getDate()).padStart(2, "0")}`;
  $("charts-day").addEventListener("change", drawCharts);
  $("charts-refresh").addEventListener("click", drawCharts);
});
