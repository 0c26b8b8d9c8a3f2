/**
 * Every metric the Grafana dashboard and the Prometheus alert rules query exists in pgferry's
 * registry: each PromQL expression is reduced to the metric names it selects, which are looked up in
 * a real PipelineMetrics registry (histograms also expose _bucket, _sum and _count).
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { PipelineMetrics } from "../../src/control/metrics.js";
import { PipelineMonitor } from "../../src/control/pipelineMonitor.js";

const ROOT = resolve(import.meta.dirname, "../..");
/** Series Prometheus makes itself for every scrape target. */
const SCRAPE_SERIES = new Set(["up", "scrape_duration_seconds", "scrape_samples_scraped"]);
const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"]);

/** The metric names a PromQL expression selects (Grafana variables allowed). */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, " ") // string literals
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // range and subquery windows
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ") // label lists
    .replace(/\boffset\s+\S+/g, " ")
    .replace(/\$\{?\w+\}?/g, " ") // Grafana variables
    .replace(/(?<![\w:])\d+(\.\d+)?(e[+-]?\d+)?/gi, " "); // numbers
  const names: string[] = [];
  for (const match of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = stripped.slice((match.index ?? 0) + match[0].length).trimStart();
    if (rest.startsWith("(")) continue; // a function or aggregation
    if (KEYWORDS.has(match[0].toLowerCase())) continue;
    names.push(match[0]);
  }
  return names;
}

interface Panel { title?: string; targets?: { expr?: string }[]; panels?: Panel[] }

function dashboardExpressions(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(resolve(ROOT, "grafana/dashboards/pgferry.json"), "utf8")) as {
    panels: Panel[];
    templating: { list: { name: string; query?: string | { query: string } }[] };
  };
  const out: { where: string; expr: string }[] = [];
  const visit = (panels: Panel[]) => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) if (target.expr) out.push({ where: `panel "${panel.title}"`, expr: target.expr });
      visit(panel.panels ?? []);
    }
  };
  visit(dashboard.panels);
  for (const variable of dashboard.templating.list) {
    const query = typeof variable.query === "string" ? variable.query : variable.query?.query;
    // Grafana's label_values(metric, label) is not PromQL: its metric is the first argument.
    const labelValues = /^label_values\(\s*([a-zA-Z_:][\w:]*)\s*,/.exec(query ?? "");
    if (labelValues) out.push({ where: `variable ${variable.name}`, expr: labelValues[1]! });
  }
  return out;
}

function alertExpressions(): { where: string; expr: string }[] {
  const rules = parse(readFileSync(resolve(ROOT, "deploy/prometheus/alerts.yml"), "utf8")) as { groups: { rules: { alert: string; expr: string }[] }[] };
  return rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: String(r.expr) })));
}

async function registryNames(): Promise<Set<string>> {
  const metrics = new PipelineMetrics({ monitor: new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 30 }) });
  const names = new Set<string>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (String(metric.type) === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(metric.name + suffix);
  }
  return names;
}

describe("PromQL metric-name extraction", () => {
  it("keeps metric names and drops functions, labels, windows, numbers and variables", () => {
    expect(metricNames('histogram_quantile(0.99, sum by (le) (rate(pgferry_apply_batch_seconds_bucket{instance=~"$instance"}[$__rate_interval])))')).toEqual([
      "pgferry_apply_batch_seconds_bucket",
    ]);
    expect(metricNames('pgferry_pipeline_phase{phase="streaming"} == 0 unless on (job, instance) pgferry_pipeline_phase{phase="snapshot"} == 1')).toEqual([
      "pgferry_pipeline_phase",
      "pgferry_pipeline_phase",
    ]);
    expect(metricNames("pgferry_slot_retained_wal_bytes > 20 * 1024 * 1e3 offset 5m")).toEqual(["pgferry_slot_retained_wal_bytes"]);
  });
});

describe("dashboard layout", () => {
  it("has a Readiness row right after the overview, and no two panels overlap", () => {
    const dashboard = JSON.parse(readFileSync(resolve(ROOT, "grafana/dashboards/pgferry.json"), "utf8")) as { panels: (Panel & { id: number; type: string; gridPos: { x: number; y: number; w: number; h: number } })[] };
    const rows = dashboard.panels.filter((p) => p.type === "row").map((p) => p.title);
    expect(rows.slice(0, 2)).toEqual(["Overview", "Readiness"]);
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    const cells = new Set<string>();
    for (const { title, gridPos: g } of dashboard.panels) {
      for (let x = g.x; x < g.x + g.w; x += 1) {
        for (let y = g.y; y < g.y + g.h; y += 1) {
          expect(cells.has(`${x},${y}`), `panel "${title}" overlaps another at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
    }
  });
});

describe("dashboard and alert rules", () => {
  it("use only metrics that pgferry's registry has", async () => {
    const known = await registryNames();
    const expressions = [...dashboardExpressions(), ...alertExpressions()];
    expect(expressions.length).toBeGreaterThan(20);
    const missing: string[] = [];
    const used = new Set<string>();
    for (const { where, expr } of expressions) {
      const names = metricNames(expr);
      expect(names, `${where}: no metric found in ${expr}`).not.toEqual([]);
      for (const name of names) {
        used.add(name);
        if (!known.has(name) && !SCRAPE_SERIES.has(name)) missing.push(`${where}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
    // Conflicts have a panel and an alert of their own, not only a mention.
    expect(dashboardExpressions().filter((e) => e.expr.includes("pgferry_conflicts_total")).map((e) => e.where)).toEqual(['panel "Conflicts per second, by table, direction and side kept"']);
    expect(alertExpressions().filter((e) => e.expr.includes("pgferry_conflicts_total")).map((e) => e.where)).toEqual(["alert PgferryConflicts"]);
    // Cutover readiness: per check on the dashboard, and an alert while a cutover step runs.
    expect(dashboardExpressions().filter((e) => e.expr.includes("pgferry_ready")).map((e) => e.where)).toEqual(['panel "Cutover readiness by check"', 'panel "Readiness over time"']);
    expect(dashboardExpressions().filter((e) => e.expr.includes("pgferry_ready")).every((e) => /\bby \(check\)/.test(e.expr))).toBe(true);
    expect(alertExpressions().filter((e) => e.expr.includes("pgferry_ready")).map((e) => e.where)).toEqual(["alert PgferryNotReadyDuringCutover"]);
    expect(alertExpressions().find((e) => e.where === "alert PgferryNotReadyDuringCutover")?.expr).toMatch(/pgferry_ready == 0 and on \(job, instance\) \(pgferry_cutover_step > 0 < 5\)/);
    // What the dashboard and alerts exist for is all there.
    for (const name of [
      "pgferry_replication_lag_bytes", "pgferry_replication_lag_seconds", "pgferry_applied_changes_total", "pgferry_apply_batch_seconds_bucket",
      "pgferry_snapshot_rows_total", "pgferry_snapshot_rows_estimated", "pgferry_table_state", "pgferry_resync_in_progress",
      "pgferry_errors_total", "pgferry_slot_retained_wal_bytes", "pgferry_pipeline_phase", "pgferry_conflicts_total", "pgferry_ready", "pgferry_cutover_step", "up",
    ]) {
      expect(used, name).toContain(name);
    }
  });
});
