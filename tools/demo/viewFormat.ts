/**
 * The live view's text, as pure functions of a sample: the full frame a terminal redraws, and the
 * one-line summary printed every few seconds when stdout is not a terminal (CI, a pipe, a test).
 */
import type { TableReport } from "../../src/control/pipelineMonitor.js";
import { formatBytes } from "../../src/control/statusPage.js";
import type { ViewSample } from "./viewSampler.js";

export interface ViewContext {
  statusUrl: string;
  metricsUrl: string;
  logFile: string;
  /** When the demo started (ms), for the elapsed time. */
  startedAt: number;
}

const BAR_WIDTH = 24;
const ROWS_WIDTH = 23;

const count = (n: number) => Math.round(n).toLocaleString("en-US");

export function formatRate(perSecond: number | undefined): string {
  if (perSecond === undefined) return "–";
  return perSecond >= 100 ? count(perSecond) : perSecond.toFixed(1);
}

export function formatSeconds(seconds: number | null): string {
  return seconds === null ? "–" : `${seconds < 10 ? seconds.toFixed(2) : seconds.toFixed(0)} s`;
}

function elapsed(fromIso: string, now: number): string {
  const seconds = Math.max(0, Math.floor((now - Date.parse(fromIso)) / 1000));
  return seconds < 60 ? `${seconds}s` : `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`;
}

export function progressBar(percent: number | null, width = BAR_WIDTH): string {
  if (percent === null) return "░".repeat(width);
  const filled = Math.round((Math.min(100, Math.max(0, percent)) / 100) * width);
  return "█".repeat(filled) + "░".repeat(width - filled);
}

function snapshotSummary(tables: readonly TableReport[]): string {
  const ready = tables.filter((t) => t.state === "ready").length;
  const copied = tables.reduce((a, t) => a + t.rowsCopied, 0);
  const estimated = tables.reduce((a, t) => a + (t.rowsEstimated ?? 0), 0);
  return `${ready}/${tables.length} tables copied, ${count(copied)}/${count(Math.max(copied, estimated))} rows`;
}

function tableLine(t: TableReport, perSecond: number | undefined, nameWidth: number, streaming: boolean): string {
  const percent = t.percent === null ? "   ?%" : `${t.percent.toFixed(0).padStart(4)}%`;
  const rows = `${count(t.rowsCopied).padStart(8)} / ${t.rowsEstimated === null ? "?".padStart(8) : count(Math.max(t.rowsEstimated, t.rowsCopied)).padStart(8)}`;
  const state = t.state === "ready" ? "" : ` ${t.state}`;
  const rate = streaming ? `${formatRate(perSecond ?? 0).padStart(11)}` : "";
  const error = t.error ? `  ${t.error}` : "";
  return `  ${t.table.padEnd(nameWidth)} ${progressBar(t.percent)}${percent} ${rows.padStart(ROWS_WIDTH)}${rate}${state}${error}`;
}

/** The lines of one terminal frame, at most `height` of them. */
export function renderFrame(sample: ViewSample, context: ViewContext, height: number): string[] {
  const { status } = sample;
  const streaming = status.phase === "streaming";
  const head = [
    `pgferry demo — config/reorg.example.yaml: old flat project → domain schemas    (${elapsed(new Date(context.startedAt).toISOString(), sample.at)})`,
    `  status page  ${context.statusUrl}    metrics  ${context.metricsUrl}`,
    `  pgferry log  ${context.logFile}`,
    "",
    `  phase        ${status.phase} for ${elapsed(status.phaseSince, sample.at)}${status.tables.length > 0 ? `   snapshot: ${snapshotSummary(status.tables)}` : ""}`,
  ];
  if (streaming) {
    head.push(
      `  changes/s    ${formatRate(sample.changesPerSecond).padEnd(10)} transactions/s  ${formatRate(sample.transactionsPerSecond).padEnd(8)}` +
        ` applied  ${count(sample.appliedChanges)} changes in ${count(sample.appliedTransactions)} transactions`,
      `  lag          ${formatBytes(status.lag.bytes, "decimal")}, ${formatSeconds(status.lag.seconds)}    ready: ${status.readiness.ready ? "yes" : `no (${status.readiness.reason})`}`,
    );
  }
  head.push(`  source load  ${count(sample.loadTransactions)} transactions begun, ${formatRate(sample.loadPerSecond)}/s`);
  if (status.errors.last) head.push(`  last error   ${status.errors.last.kind}: ${status.errors.last.message.split("\n")[0]}`);
  head.push("");

  const foot = ["", "  Ctrl-C stops the load, pgferry and the clusters (and removes them unless --keep)"];
  let tables: string[];
  if (status.tables.length === 0) {
    tables = [`  ${status.phase === "snapshot" ? "snapshot starting…" : "waiting for pgferry's table states…"}`];
  } else {
    const nameWidth = Math.max(...status.tables.map((t) => t.table.length));
    const header = `  ${"source table".padEnd(nameWidth)} ${"snapshot".padEnd(BAR_WIDTH + 5)} ${"rows copied / estimated".padStart(ROWS_WIDTH)}${streaming ? "  changes/s" : ""}`;
    // Busiest first while streaming; config order (the monitor's) during the snapshot.
    const rate = (t: TableReport) => sample.tableChangesPerSecond.get(t.table) ?? 0;
    const ordered = streaming ? [...status.tables].sort((a, b) => rate(b) - rate(a)) : status.tables;
    const room = Math.max(1, height - head.length - foot.length - 2);
    const shown = ordered.length > room ? ordered.slice(0, room - 1) : ordered;
    tables = [header, ...shown.map((t) => tableLine(t, sample.tableChangesPerSecond.get(t.table), nameWidth, streaming))];
    if (shown.length < ordered.length) tables.push(`  … ${ordered.length - shown.length} more tables (all in ${context.statusUrl})`);
  }
  return [...head, ...tables, ...foot].slice(0, Math.max(1, height));
}

/** What the snapshot did, once it is over: tables, rows, and how long from the first copy to the last. */
export function snapshotReport(tables: readonly TableReport[]): string {
  const rows = tables.reduce((a, t) => a + t.rowsCopied, 0);
  const starts = tables.flatMap((t) => (t.startedAt ? [Date.parse(t.startedAt)] : []));
  const ends = tables.flatMap((t) => (t.finishedAt ? [Date.parse(t.finishedAt)] : []));
  const took = starts.length > 0 && ends.length > 0 ? ` in ${((Math.max(...ends) - Math.min(...starts)) / 1000).toFixed(1)} s` : "";
  return `snapshot: ${tables.filter((t) => t.state === "ready").length}/${tables.length} source tables, ${count(rows)} rows copied${took}`;
}

/** One line for a log-like output. */
export function statusLine(sample: ViewSample, context: ViewContext): string {
  const { status } = sample;
  const at = `[${elapsed(new Date(context.startedAt).toISOString(), sample.at).padStart(6)}]`;
  const parts = [`phase=${status.phase}`];
  if (status.phase === "streaming") {
    parts.push(
      `changes/s=${formatRate(sample.changesPerSecond)}`,
      `tx/s=${formatRate(sample.transactionsPerSecond)}`,
      `lag=${formatBytes(status.lag.bytes, "decimal")}/${formatSeconds(status.lag.seconds)}`,
      `applied=${sample.appliedChanges}`,
    );
  } else if (status.tables.length > 0) {
    parts.push(`snapshot: ${snapshotSummary(status.tables)}`);
  }
  parts.push(`load=${sample.loadTransactions} tx`);
  if (status.errors.last) parts.push(`last error=${status.errors.last.kind}: ${status.errors.last.message.split("\n")[0]}`);
  return `${at} ${parts.join("  ")}`;
}
