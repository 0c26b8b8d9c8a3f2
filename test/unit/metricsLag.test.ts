/**
 * The pure parts of the operations side: lag arithmetic, readiness, metrics fed by observer events,
 * the bearer-token check, the status page's escaping and the observer fan-out.
 */
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { combineObservers } from "../../src/control/controlPlane.js";
import { bearerMatches } from "../../src/control/bearerToken.js";
import { LagTracker } from "../../src/status/lagTracker.js";
import { PipelineMetrics } from "../../src/control/metrics.js";
import { PipelineMonitor } from "../../src/control/pipelineMonitor.js";
import { renderStatusPage } from "../../src/control/statusPage.js";
import { createLogger } from "../../src/log/logger.js";
import type { AppliedBatch } from "../../src/pipeline/applyLoop.js";
import type { TableStatus } from "../../src/state/checkpointStore.js";

const T0 = Date.parse("2026-11-20T10:00:00Z");

function batch(endLsn: bigint, commitTime: number, perTable: Record<string, Record<string, number>>, transactions = 1, seconds = 0.02): AppliedBatch {
  const map = new Map(Object.entries(perTable));
  const changes = [...map.values()].reduce((sum, ops) => sum + Object.values(ops).reduce((a, b) => a + b, 0), 0);
  return { transactions, changes, perTable: map, seconds, checkpoint: { commitLsn: endLsn - 8n, endLsn, commitTime: new Date(commitTime) } };
}

function table(name: string, state: TableStatus["state"], rowsCopied: number, rowsEstimated: number | null): TableStatus {
  return { table: name, state, syncLsn: null, rowsCopied, rowsEstimated, startedAt: new Date(T0), finishedAt: null, error: null };
}

async function value(metrics: PipelineMetrics, name: string, labels: Record<string, string | number> = {}): Promise<number | undefined> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values.find((v) => Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l))?.value;
}

describe("LagTracker", () => {
  it("is unknown until both positions are seen, 0 when the applied position reaches the source's", () => {
    const lag = new LagTracker();
    expect(lag.bytes()).toBeUndefined();
    lag.sourcePosition(1000n, T0);
    expect(lag.seconds(T0)).toBeUndefined();
    lag.appliedPosition(1000n, new Date(T0 - 3_600_000));
    expect(lag.bytes()).toBe(0);
    expect(lag.seconds(T0 + 60_000)).toBe(0);
  });

  it("while behind, counts from the later of the last applied commit and the last source position applied through", () => {
    const lag = new LagTracker();
    lag.appliedPosition(500n, new Date(T0 - 10_000));
    lag.sourcePosition(800n, T0);
    expect(lag.bytes()).toBe(300);
    // Nothing but the last commit is known: its age bounds the lag.
    expect(lag.seconds(T0 + 5_000)).toBe(15);
    // The source moved on (other databases' WAL) after the position pgferry later confirmed.
    lag.sourcePosition(900n, T0 + 4_000);
    lag.appliedPosition(800n);
    expect(lag.bytes()).toBe(100);
    expect(lag.seconds(T0 + 5_000)).toBe(5);
    lag.appliedPosition(900n);
    expect(lag.seconds(T0 + 5_000)).toBe(0);
  });

  it("falls back to the pipeline's creation when nothing was ever applied", () => {
    const lag = new LagTracker();
    lag.pipelineCreated(new Date(T0));
    lag.appliedPosition(100n, null);
    lag.sourcePosition(200n, T0 + 1000);
    expect(lag.seconds(T0 + 30_000)).toBe(30);
  });
});

describe("PipelineMonitor readiness", () => {
  it("is ready only when streaming with lag at most readyMaxLagSeconds, and says why not", () => {
    let now = T0;
    const monitor = new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 10, now: () => now });
    expect(monitor.readiness()).toMatchObject({ ready: false, reason: "phase is starting, not streaming" });
    monitor.phase("snapshot");
    expect(monitor.readiness().reason).toBe("phase is snapshot, not streaming");
    monitor.sourcePolled({ walLsn: 1000n, slot: { active: true, restartLsn: 900n, confirmedFlushLsn: 1000n, retainedBytes: 100, confirmedFlushLagBytes: 0 } }, now);
    now += 1;
    monitor.phase("streaming");
    expect(monitor.readiness().reason).toBe("waiting for a poll of the source since streaming began");
    monitor.sourcePolled({ walLsn: 1000n, slot: { active: false, restartLsn: 900n, confirmedFlushLsn: 1000n, retainedBytes: 100, confirmedFlushLagBytes: 0 } }, now);
    expect(monitor.readiness()).toMatchObject({ ready: false, reason: "replication slot s is not in use yet (the stream is connecting)" });
    monitor.sourcePolled({ walLsn: 1000n, slot: { active: true, restartLsn: 900n, confirmedFlushLsn: 1000n, retainedBytes: 100, confirmedFlushLagBytes: 0 } }, now);
    expect(monitor.readiness()).toMatchObject({ ready: true, lagSeconds: 0 });
    monitor.sourcePolled({ walLsn: 2000n, slot: { active: true, restartLsn: 900n, confirmedFlushLsn: 1000n, retainedBytes: 1100, confirmedFlushLagBytes: 1000 } }, now);
    now += 11_000;
    expect(monitor.readiness()).toMatchObject({ ready: false, reason: "replication lag 11.0 s is above control.readyMaxLagSeconds (10 s)" });
    monitor.batchApplied(batch(2000n, now - 1000, { "public.a": { insert: 1 } }));
    expect(monitor.readiness().ready).toBe(true);
    const status = monitor.status();
    expect(status.checkpoint).toEqual({ commitLsn: "0/7C8", endLsn: "0/7D0", commitTime: new Date(now - 1000).toISOString() });
    expect(status.slot).toMatchObject({ name: "s", exists: true, retainedWalBytes: 1100, restartLsn: "0/384" });
  });

  it("reports table progress from the target's state, with copied rows shown between polls", () => {
    const monitor = new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 10 });
    monitor.targetPolled({ state: null, tables: [table("public.a", "copying", 100, 400), table("public.b", "ready", 7, null)] });
    monitor.rowsCopied("public.a", 100);
    const [a, b] = monitor.status().tables;
    expect(a).toMatchObject({ table: "public.a", state: "copying", rowsCopied: 200, rowsEstimated: 400, percent: 50 });
    expect(b).toMatchObject({ table: "public.b", state: "ready", percent: 100 });
  });
});

describe("PipelineMetrics", () => {
  it("counts applied changes per table and operation, transactions, batches and snapshot rows", async () => {
    const monitor = new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 10 });
    const metrics = new PipelineMetrics({ monitor, processMetrics: false });
    metrics.batchApplied(batch(100n, T0, { "public.a": { insert: 3, update: 2 }, "public.b": { delete: 1 } }, 4, 0.004));
    metrics.batchApplied(batch(200n, T0, { "public.a": { insert: 1 } }, 1, 0.3));
    metrics.rowsCopied("public.a", 250);
    metrics.rowsCopied("public.a", 50);
    metrics.error("apply");
    expect(await value(metrics, "pgferry_applied_changes_total", { table: "public.a", op: "insert" })).toBe(4);
    expect(await value(metrics, "pgferry_applied_changes_total", { table: "public.a", op: "update" })).toBe(2);
    expect(await value(metrics, "pgferry_applied_changes_total", { table: "public.b", op: "delete" })).toBe(1);
    expect(await value(metrics, "pgferry_applied_transactions_total")).toBe(5);
    expect(await value(metrics, "pgferry_apply_batch_seconds", { le: 0.005 })).toBe(1);
    expect(await value(metrics, "pgferry_apply_batch_rows", { le: "+Inf" })).toBe(2);
    expect(await value(metrics, "pgferry_snapshot_rows_total", { table: "public.a" })).toBe(300);
    expect(await value(metrics, "pgferry_errors_total", { kind: "apply" })).toBe(1);
    expect(await value(metrics, "pgferry_errors_total", { kind: "connection" })).toBe(0);
  });

  it("exports gauges read from the monitor at scrape time (NaN while unknown)", async () => {
    const monitor = new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 10 });
    const metrics = new PipelineMetrics({ monitor, processMetrics: false, resyncs: { inProgress: () => ["public.b"] } });
    expect(await value(metrics, "pgferry_replication_lag_bytes")).toBeNaN();
    monitor.phase("streaming");
    monitor.targetPolled({ state: null, tables: [table("public.a", "copying", 1, 10), table("public.b", "ready", 5, 5)] });
    monitor.sourcePolled({ walLsn: 5000n, slot: { active: true, restartLsn: 1000n, confirmedFlushLsn: 4000n, retainedBytes: 4000, confirmedFlushLagBytes: 1000 } }, Date.now());
    expect(await value(metrics, "pgferry_replication_lag_bytes")).toBe(1000);
    expect(await value(metrics, "pgferry_slot_retained_wal_bytes")).toBe(4000);
    expect(await value(metrics, "pgferry_pipeline_phase", { phase: "streaming" })).toBe(1);
    expect(await value(metrics, "pgferry_pipeline_phase", { phase: "snapshot" })).toBe(0);
    expect(await value(metrics, "pgferry_table_state", { table: "public.a", state: "copying" })).toBe(1);
    expect(await value(metrics, "pgferry_table_state", { table: "public.a", state: "ready" })).toBe(0);
    expect(await value(metrics, "pgferry_snapshot_rows_estimated", { table: "public.a" })).toBe(10);
    expect(await value(metrics, "pgferry_resync_in_progress", { table: "public.b" })).toBe(1);
    expect(await value(metrics, "pgferry_resync_in_progress", { table: "public.a" })).toBe(0);
  });

  it("keeps registries apart: two pipelines in one process do not share counters", async () => {
    const one = new PipelineMetrics({ monitor: new PipelineMonitor({ slot: "a", readyMaxLagSeconds: 1 }) });
    const two = new PipelineMetrics({ monitor: new PipelineMonitor({ slot: "b", readyMaxLagSeconds: 1 }) });
    one.error("state");
    expect(await value(one, "pgferry_errors_total", { kind: "state" })).toBe(1);
    expect(await value(two, "pgferry_errors_total", { kind: "state" })).toBe(0);
    expect(two.registry.getSingleMetric("pgferry_process_cpu_seconds_total")).toBeDefined();
  });
});

describe("bearer token", () => {
  const token = "s3cret-token-0123456789";
  it.each([
    [`Bearer ${token}`, true],
    [`bearer ${token}`, true],
    [`Bearer ${token}x`, false],
    [`Bearer ${token.slice(1)}`, false],
    [token, false],
    ["Bearer ", false],
    [undefined, false],
  ])("%s → %s", (header, expected) => {
    expect(bearerMatches(header, token)).toBe(expected);
  });
});

describe("status page", () => {
  it("escapes text from the database", () => {
    const monitor = new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 10 });
    monitor.targetPolled({ state: null, tables: [{ ...table('public."<img src=x onerror=alert(1)>"', "errored", 0, null), error: "</td><script>alert(2)</script>" }] });
    const html = renderStatusPage(monitor.status(), "abc");
    expect(html).not.toContain("<img src=x");
    expect(html).not.toContain("<script>alert(2)");
    expect(html).toContain("&lt;img src=x onerror=alert(1)&gt;");
    expect(html).toContain('<script nonce="abc">');
  });
});

describe("combineObservers", () => {
  it("reports to every observer even when one throws, and logs the failure", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "error", format: "json", destination: new Writable({ write: (c: Buffer, _e, cb) => { lines.push(c.toString()); cb(); } }) });
    const seen: string[] = [];
    const observer = combineObservers(log, [
      { phase: () => { throw new Error("boom"); } },
      { phase: (p) => seen.push(p) },
    ]);
    observer.phase?.("streaming");
    expect(seen).toEqual(["streaming"]);
    expect(lines.join("")).toContain("pipeline observer failed");
  });
});
