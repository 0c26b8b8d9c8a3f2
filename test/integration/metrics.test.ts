/**
 * The metrics of a real run: after a snapshot of known tables and a known set of streamed source
 * transactions, the registry (and the /metrics text Prometheus scrapes) holds exactly the rows
 * copied, the changes applied per table and operation, the transactions, the batches, and the
 * gauges for phase, table states, lag and the slot.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PipelineMetrics } from "../../src/control/metrics.js";
import { createFixture, mappings, seed } from "../fixtures/appSchema.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { testConfig } from "../harness/pipelineRunner.js";
import { waitFor } from "../harness/waitFor.js";
import { request, startControlled, type ControlledPipeline } from "./controlSupport.js";

let db: TestDatabases;
let running: ControlledPipeline | undefined;
const SEEDED = 150;
const TABLES = ["public.accounts", "public.items", "public.events", "public.audit"];

interface Sample { labels: Record<string, string | number>; value: number; metricName?: string }

async function values(metrics: PipelineMetrics, name: string): Promise<Sample[]> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name} in the registry`);
  return (await metric.get()).values as Sample[];
}

async function value(metrics: PipelineMetrics, name: string, labels: Record<string, string | number> = {}): Promise<number | undefined> {
  const found = (await values(metrics, name)).filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return found.length === 0 ? undefined : found.reduce((sum, v) => sum + v.value, 0);
}

beforeAll(async () => {
  db = await createTestDatabases("metrics");
  await createFixture(db.source, db.target);
  await seed(db.source, SEEDED);
  await db.source.query("ANALYZE");
});
afterAll(async () => {
  await running?.stop();
  await db?.drop();
});

describe("metrics of a real run", () => {
  it("count the snapshot, every streamed change per table and operation, transactions and batches", async () => {
    running = await startControlled(testConfig({ sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, tables: mappings() }));
    const { metrics } = running.control;
    await waitFor(() => request(`${running!.base}/readyz`), { description: "/readyz 200", until: (r) => r.status === 200 });

    // Table states come from the target's state, polled.
    await waitFor(() => value(metrics, "pgferry_table_state", { state: "ready" }), { description: "4 tables ready", until: (n) => n === 4 });
    for (const table of TABLES) {
      expect(await value(metrics, "pgferry_snapshot_rows_total", { table }), table).toBe(SEEDED);
      expect(await value(metrics, "pgferry_snapshot_rows_estimated", { table }), table).toBe(SEEDED);
      expect(await value(metrics, "pgferry_table_state", { table, state: "ready" }), table).toBe(1);
      expect(await value(metrics, "pgferry_table_state", { table, state: "copying" }), table).toBe(0);
      expect(await value(metrics, "pgferry_resync_in_progress", { table }), table).toBe(0);
    }
    expect(await value(metrics, "pgferry_applied_transactions_total")).toBe(0);

    // Four source transactions with known changes.
    await db.source.query("INSERT INTO accounts (id, email) SELECT g, 'm' || g || '@example.com' FROM generate_series(1, 5) AS g");
    await db.source.query("UPDATE accounts SET balance = balance + 1 WHERE id IN (1, 2, 3)");
    await db.source.query("DELETE FROM accounts WHERE id IN (4, 5)");
    await db.source.query(`BEGIN;
      INSERT INTO audit (actor, action, at) SELECT 'metrics', 'a' || g, now() FROM generate_series(1, 4) AS g;
      UPDATE events SET kind = 'touched' WHERE id = 1;
      COMMIT`);
    await waitFor(() => value(metrics, "pgferry_applied_transactions_total"), { description: "4 transactions applied", until: (n) => (n ?? 0) >= 4 });
    const { rows } = await db.target.query<{ n: string }>("SELECT count(*)::text AS n FROM app.audit WHERE actor = 'metrics'");
    expect(rows[0]?.n).toBe("4");

    expect(await value(metrics, "pgferry_applied_transactions_total")).toBe(4);
    expect(await value(metrics, "pgferry_applied_changes_total", { table: "public.accounts", op: "insert" })).toBe(5);
    expect(await value(metrics, "pgferry_applied_changes_total", { table: "public.accounts", op: "update" })).toBe(3);
    expect(await value(metrics, "pgferry_applied_changes_total", { table: "public.accounts", op: "delete" })).toBe(2);
    expect(await value(metrics, "pgferry_applied_changes_total", { table: "public.audit", op: "insert" })).toBe(4);
    expect(await value(metrics, "pgferry_applied_changes_total", { table: "public.events", op: "update" })).toBe(1);
    expect(await value(metrics, "pgferry_applied_changes_total")).toBe(15);
    // Every batch is observed once in both histograms; together they hold all 15 changes.
    const batches = await value(metrics, "pgferry_apply_batch_rows", { le: "+Inf" });
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(batches).toBeLessThanOrEqual(4);
    expect(await value(metrics, "pgferry_apply_batch_seconds", { le: "+Inf" })).toBe(batches);
    expect((await values(metrics, "pgferry_apply_batch_rows")).find((v) => v.metricName === "pgferry_apply_batch_rows_sum")?.value).toBe(15);

    expect(await value(metrics, "pgferry_errors_total")).toBe(0);
    expect(await value(metrics, "pgferry_pipeline_phase", { phase: "streaming" })).toBe(1);
    expect(await value(metrics, "pgferry_pipeline_phase", { phase: "snapshot" })).toBe(0);
    expect(await value(metrics, "pgferry_slot_retained_wal_bytes")).toBeGreaterThan(0);
    const lag = await waitFor(() => value(metrics, "pgferry_replication_lag_seconds"), { description: "lag 0 once caught up", until: (s) => s === 0 });
    expect(lag).toBe(0);
    expect(await value(metrics, "pgferry_replication_lag_bytes")).toBeGreaterThanOrEqual(0);

    // The same numbers in the exposition Prometheus scrapes.
    const text = (await request(`${running.base}/metrics`)).body as string;
    expect(text).toMatch(/^pgferry_applied_changes_total\{table="public\.accounts",op="insert"\} 5$/m);
    expect(text).toMatch(/^pgferry_applied_transactions_total 4$/m);
    expect(text).toMatch(/^pgferry_snapshot_rows_total\{table="public\.items"\} 150$/m);
    expect(text).toMatch(/^pgferry_apply_batch_rows_sum 15$/m);
    expect(text).toMatch(/^pgferry_process_cpu_seconds_total \d/m);
    expect(text).toMatch(/^pgferry_nodejs_eventloop_lag_p99_seconds \d/m);
  });
});
