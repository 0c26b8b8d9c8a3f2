/**
 * The built-in status page at `/`: rendered on the server from the same status as `GET /v1/status`,
 * then refreshed every few seconds by a little vanilla JS that fetches that endpoint. Each table has
 * a Resync button that POSTs to the resync endpoint with the admin token the operator types in (kept
 * in sessionStorage, so it lasts for the tab only). A Conflicts section counts, since the process
 * started, the rows both databases wrote between two syncs, per table and the side kept (a
 * bidirectional pipeline's; `pgferry conflicts` lists them). The cutover readiness items the daemon
 * judges (the same as `pgferry_ready{check}`), charts of lag and applied changes per second over the
 * last hour (SVG polylines drawn here and in `/v1/status`, statusCharts.ts), and each source table's
 * targets with the changes streamed since start follow. Text from the server is escaped, and the
 * script writes only through textContent and the polylines' `points` attribute.
 */
import type { ReadinessItem } from "../cutover/types.js";
import type { ConflictReport, PipelineStatus, StreamedTable, TableReport } from "./pipelineMonitor.js";
import { renderChart } from "./statusCharts.js";

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);

import { formatBytes } from "../config/byteSize.js";

export { formatBytes };

export function formatSeconds(seconds: number | null): string {
  return seconds === null ? "–" : `${seconds.toFixed(1)} s`;
}

const cell = (text: string | number | null, cls = "") => `<td${cls ? ` class="${cls}"` : ""}>${escapeHtml(text === null ? "–" : String(text))}</td>`;

function tableRow(t: TableReport): string {
  return [
    `<tr data-table="${escapeHtml(t.table)}">`,
    cell(t.table, "name"),
    cell(t.state, `state state-${t.state}`),
    cell(t.rowsCopied, "num"),
    cell(t.rowsEstimated, "num"),
    cell(t.percent === null ? null : `${t.percent}%`, "num"),
    cell(t.startedAt),
    cell(t.finishedAt),
    cell(t.error, "error"),
    `<td><button type="button" class="resync" data-table="${escapeHtml(t.table)}">Resync</button></td>`,
    "</tr>",
  ].join("");
}

const NO_CONFLICTS = `<tr><td colspan="4" class="none">none</td></tr>`;

function conflictRow(c: ConflictReport): string {
  return `<tr>${cell(c.table, "name")}${cell(c.resolution)}${cell(c.kept, `kept kept-${c.kept}`)}${cell(c.count, "num")}</tr>`;
}

function conflictRows(status: PipelineStatus): string {
  return status.conflicts.byTable.length === 0 ? NO_CONFLICTS : status.conflicts.byTable.map(conflictRow).join("\n");
}

function checkRow(item: ReadinessItem): string {
  return `<tr>${cell(item.name, "name")}${cell(item.ready ? "ready" : "NOT READY", `check check-${item.ready ? "ready" : "not-ready"}`)}${cell(item.detail, "detail")}${cell(item.hint ?? null, "hint")}</tr>`;
}

function streamedRow(t: StreamedTable): string {
  const { insert, update, delete: deletes, truncate, resync } = t.changes;
  return `<tr>${cell(t.table, "name")}${cell(t.targets.length > 0 ? t.targets.join(", ") : null, "targets")}${[insert, update, deletes, truncate, resync, t.total].map((n) => cell(n, "num")).join("")}</tr>`;
}

const NO_STREAMED = `<tr><td colspan="8" class="none">none</td></tr>`;

const perSecond = (value: number) => `${value.toFixed(1)}/s`;

function charts(status: PipelineStatus): string {
  const { history } = status;
  const size = { width: history.width, height: history.height };
  return [
    renderChart({ id: "chart-lag", title: "Replication lag", chart: history.lagSeconds, format: (v) => formatSeconds(v), ...size }),
    renderChart({ id: "chart-applied", title: "Applied changes", chart: history.appliedPerSecond, format: perSecond, ...size }),
  ].join("\n");
}

function summary(status: PipelineStatus): string {
  const items: [string, string, string][] = [
    ["phase", "Phase", status.phase],
    ["ready", "Ready", status.readiness.ready ? "yes" : `no — ${status.readiness.reason}`],
    ["lag-seconds", "Lag", formatSeconds(status.lag.seconds)],
    ["lag-bytes", "Lag (WAL)", formatBytes(status.lag.bytes)],
    ["checkpoint", "Checkpoint", status.checkpoint?.endLsn ?? "–"],
    ["retained-wal", "Slot retains", formatBytes(status.slot.retainedWalBytes)],
    ["errors", "Errors", status.errors.last ? `${status.errors.total} (last: ${status.errors.last.kind}: ${status.errors.last.message})` : String(status.errors.total)],
  ];
  return items.map(([id, label, value]) => `<div><dt>${label}</dt><dd id="${id}">${escapeHtml(value)}</dd></div>`).join("\n");
}

/** `nonce` allows the page's own inline style and script under its Content-Security-Policy. */
export function renderStatusPage(status: PipelineStatus, nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pgferry · ${escapeHtml(status.pipeline)}</title>
<style nonce="${nonce}">
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; }
  h1 { font-size: 1.3rem; margin: 0 0 1rem; }
  dl { display: flex; flex-wrap: wrap; gap: .5rem 2rem; margin: 0 0 1.5rem; }
  dt { font-size: .75rem; text-transform: uppercase; color: #667; }
  dd { margin: 0; font-weight: 600; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #dde; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .state-ready { color: #1a7f37; } .state-copying { color: #9a6700; } .state-errored { color: #cf222e; } .state-pending { color: #667; }
  td.error { color: #cf222e; max-width: 30rem; overflow-wrap: anywhere; }
  h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; } h2 small { font-weight: normal; color: #667; }
  .kept-local { color: #9a6700; } td.none { color: #667; }
  td.check-ready { color: #1a7f37; } td.check-not-ready { color: #cf222e; font-weight: 600; } td.hint { color: #667; }
  .charts { display: flex; flex-wrap: wrap; gap: 1rem 2rem; }
  figure.chart { margin: 0; width: 24rem; max-width: 100%; }
  figure.chart figcaption { font-size: .85rem; margin-bottom: .25rem; }
  figure.chart svg { display: block; width: 100%; height: 5rem; background: #f4f5f8; }
  figure.chart .line { fill: none; stroke: #0969da; stroke-width: 1.5; vector-effect: non-scaling-stroke; }
  figure.chart .axis, figure.chart .grid { stroke: #c8ccd6; stroke-width: 1; vector-effect: non-scaling-stroke; }
  .chart-scale { display: flex; justify-content: space-between; font-size: .75rem; color: #667; }
  form { margin: 1.5rem 0 .5rem; }
  pre { background: #f4f5f8; padding: .6rem; min-height: 1.5rem; white-space: pre-wrap; }
</style>
</head>
<body>
<h1>pgferry · pipeline <span id="pipeline">${escapeHtml(status.pipeline)}</span></h1>
<dl id="summary">
${summary(status)}
</dl>
<table>
<thead><tr><th>Table</th><th>State</th><th>Rows copied</th><th>Estimated</th><th>%</th><th>Started</th><th>Finished</th><th>Error</th><th></th></tr></thead>
<tbody id="tables">
${status.tables.map(tableRow).join("\n")}
</tbody>
</table>
<h2>Conflicts <small>since <span id="conflicts-since">${escapeHtml(status.conflicts.since)}</span>: <span id="conflicts-total">${status.conflicts.total}</span></small></h2>
<table>
<thead><tr><th>Table</th><th>Resolution</th><th>Kept</th><th>Count</th></tr></thead>
<tbody id="conflicts">
${conflictRows(status)}
</tbody>
</table>
<h2>Cutover readiness <small>(what this process can judge; <code>pgferry cutover --check</code> also checks sequences and verify)</small></h2>
<table>
<thead><tr><th>Check</th><th>Status</th><th>Detail</th><th>Hint</th></tr></thead>
<tbody id="checks">
${status.readinessChecks.map(checkRow).join("\n")}
</tbody>
</table>
<h2>Last hour <small>(one sample per <span id="history-sample">${status.history.sampleSeconds}</span> s)</small></h2>
<div class="charts">
${charts(status)}
</div>
<h2>Streamed changes <small>since the process started, per source table</small></h2>
<table>
<thead><tr><th>Table</th><th>Targets</th><th>Inserts</th><th>Updates</th><th>Deletes</th><th>Truncates</th><th>Resync rows</th><th>Total</th></tr></thead>
<tbody id="streamed">
${status.streamed.length === 0 ? NO_STREAMED : status.streamed.map(streamedRow).join("\n")}
</tbody>
</table>
<form id="token-form" autocomplete="off">
<label>Admin token (for Resync; kept for this tab only) <input type="password" id="token" name="token" size="40"></label>
</form>
<pre id="resync-result" aria-live="polite"></pre>
<p><small>Updated <span id="updated">${escapeHtml(new Date().toISOString())}</span>. JSON: <a href="/v1/status">/v1/status</a> · <a href="/metrics">/metrics</a> · <a href="/readyz">/readyz</a></small></p>
<script nonce="${nonce}">
${CLIENT_SCRIPT}
</script>
</body>
</html>
`;
}

const CLIENT_SCRIPT = String.raw`"use strict";
(() => {
  const KEY = "pgferry.adminToken";
  const token = document.getElementById("token");
  const result = document.getElementById("resync-result");
  token.value = sessionStorage.getItem(KEY) || "";
  token.addEventListener("input", () => sessionStorage.setItem(KEY, token.value));
  document.getElementById("token-form").addEventListener("submit", (e) => e.preventDefault());

  const dash = (v) => (v === null || v === undefined ? "\u2013" : String(v));
  const bytes = (b) => {
    if (b === null || !Number.isFinite(b)) return "\u2013";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let u = 0;
    while (Math.abs(b) >= 1024 && u < units.length - 1) { b /= 1024; u += 1; }
    return (u === 0 ? b : b.toFixed(1)) + " " + units[u];
  };
  const seconds = (s) => (s === null ? "\u2013" : s.toFixed(1) + " s");
  const perSecond = (v) => v.toFixed(1) + "/s";
  const set = (id, text) => { document.getElementById(id).textContent = text; };

  function chart(id, c, format) {
    document.getElementById(id + "-line").setAttribute("points", c.points);
    set(id + "-max", format(c.max));
    set(id + "-latest", c.latest === null ? "\u2013" : format(c.latest));
  }

  function td(text, cls) {
    const el = document.createElement("td");
    if (cls) el.className = cls;
    el.textContent = dash(text);
    return el;
  }

  function render(s) {
    set("phase", s.phase);
    set("ready", s.readiness.ready ? "yes" : "no \u2014 " + s.readiness.reason);
    set("lag-seconds", seconds(s.lag.seconds));
    set("lag-bytes", bytes(s.lag.bytes));
    set("checkpoint", s.checkpoint ? s.checkpoint.endLsn : "\u2013");
    set("retained-wal", bytes(s.slot.retainedWalBytes));
    set("errors", s.errors.last ? s.errors.total + " (last: " + s.errors.last.kind + ": " + s.errors.last.message + ")" : String(s.errors.total));
    const rows = s.tables.map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.table = t.table;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "resync";
      button.dataset.table = t.table;
      button.textContent = "Resync";
      const action = document.createElement("td");
      action.append(button);
      tr.append(td(t.table, "name"), td(t.state, "state state-" + t.state), td(t.rowsCopied, "num"), td(t.rowsEstimated, "num"),
        td(t.percent === null ? null : t.percent + "%", "num"), td(t.startedAt), td(t.finishedAt), td(t.error, "error"), action);
      return tr;
    });
    document.getElementById("tables").replaceChildren(...rows);
    set("conflicts-since", s.conflicts.since);
    set("conflicts-total", String(s.conflicts.total));
    const conflicts = s.conflicts.byTable.map((c) => {
      const tr = document.createElement("tr");
      tr.append(td(c.table, "name"), td(c.resolution), td(c.kept, "kept kept-" + c.kept), td(c.count, "num"));
      return tr;
    });
    if (conflicts.length === 0) {
      const none = td("none", "none");
      none.colSpan = 4;
      const tr = document.createElement("tr");
      tr.append(none);
      conflicts.push(tr);
    }
    document.getElementById("conflicts").replaceChildren(...conflicts);
    document.getElementById("checks").replaceChildren(...(s.readinessChecks || []).map((c) => {
      const tr = document.createElement("tr");
      tr.append(td(c.name, "name"), td(c.ready ? "ready" : "NOT READY", "check check-" + (c.ready ? "ready" : "not-ready")), td(c.detail, "detail"), td(c.hint, "hint"));
      return tr;
    }));
    if (s.history) {
      chart("chart-lag", s.history.lagSeconds, seconds);
      chart("chart-applied", s.history.appliedPerSecond, perSecond);
    }
    const streamed = (s.streamed || []).map((t) => {
      const tr = document.createElement("tr");
      const c = t.changes;
      tr.append(td(t.table, "name"), td(t.targets.length > 0 ? t.targets.join(", ") : null, "targets"),
        ...[c.insert, c.update, c.delete, c.truncate, c.resync, t.total].map((n) => td(n, "num")));
      return tr;
    });
    if (streamed.length === 0) {
      const none = td("none", "none");
      none.colSpan = 8;
      const tr = document.createElement("tr");
      tr.append(none);
      streamed.push(tr);
    }
    document.getElementById("streamed").replaceChildren(...streamed);
    set("updated", new Date().toISOString());
  }

  async function refresh() {
    try {
      const response = await fetch("/v1/status", { cache: "no-store" });
      if (response.ok) render(await response.json());
    } catch (e) { /* the daemon restarting: try again at the next tick */ }
  }
  setInterval(refresh, 3000);

  document.getElementById("tables").addEventListener("click", async (event) => {
    const button = event.target.closest("button.resync");
    if (!button) return;
    const table = button.dataset.table;
    result.textContent = "Requesting a resync of " + table + "\u2026";
    try {
      const response = await fetch("/v1/tables/" + encodeURIComponent(table) + "/resync", {
        method: "POST",
        headers: { Authorization: "Bearer " + token.value },
      });
      const text = await response.text();
      result.textContent = response.status + " " + response.statusText + "\n" + text;
    } catch (e) {
      result.textContent = "request failed: " + e;
    }
  });
})();`;
