/**
 * The status page's history and readiness, without servers: the ring buffer keeps the latest
 * samples in order; the SVG chart scales them into its box with a round top value; the monitor
 * samples at most once per interval, charts lag and applied changes per second, counts streamed
 * changes per source table with its targets, and judges the cheap readiness items that
 * `pgferry_ready{check}` exposes.
 */
import { describe, expect, it } from "vitest";
import { PipelineMetrics } from "../../src/control/metrics.js";
import { PipelineMonitor, sourceTargets } from "../../src/control/pipelineMonitor.js";
import { RingBuffer } from "../../src/control/ringBuffer.js";
import { chart, niceCeiling, rates, renderChart } from "../../src/control/statusCharts.js";
import { renderStatusPage } from "../../src/control/statusPage.js";
import type { AppliedBatch } from "../../src/pipeline/applyLoop.js";
import type { TableStatus } from "../../src/state/checkpointStore.js";

describe("RingBuffer", () => {
  it("keeps the latest items, oldest first, in bounded space", () => {
    const ring = new RingBuffer<number>(3);
    expect(ring.toArray()).toEqual([]);
    expect(ring.last()).toBeUndefined();
    ring.push(1);
    ring.push(2);
    expect(ring.toArray()).toEqual([1, 2]);
    expect(ring.length).toBe(2);
    for (const n of [3, 4, 5]) ring.push(n);
    expect(ring.toArray()).toEqual([3, 4, 5]);
    expect(ring.length).toBe(3);
    expect(ring.last()).toBe(5);
    for (let n = 6; n <= 100; n += 1) ring.push(n);
    expect(ring.toArray()).toEqual([98, 99, 100]);
  });

  it("refuses a capacity that is not a positive integer", () => {
    expect(() => new RingBuffer(0)).toThrow(RangeError);
    expect(() => new RingBuffer(1.5)).toThrow(RangeError);
  });
});

describe("SVG chart", () => {
  const frame = { now: 3_600_000, windowMs: 3_600_000, width: 360, height: 60 };

  it("rounds the top up to 1, 2 or 5 times a power of ten", () => {
    expect([0, -1, NaN, 0.3, 0.7, 1, 1.2, 3, 7.5, 20, 21, 999, 1001].map(niceCeiling)).toEqual([1, 1, 1, 0.5, 1, 1, 2, 5, 10, 20, 50, 1000, 2000]);
  });

  it("places samples across the window (x) and under the top value (y), skipping unknown and out-of-window ones", () => {
    const c = chart(
      [
        { at: -10_000, value: 99 }, // before the window
        { at: 0, value: 0 },
        { at: 900_000, value: null },
        { at: 1_800_000, value: 4 },
        { at: 3_600_000, value: 2.5 },
      ],
      frame,
    );
    expect(c.max).toBe(5);
    expect(c.points).toBe("0,60 180,12 360,30");
    expect(c.latest).toBe(2.5);
    expect(chart([], frame)).toEqual({ points: "", max: 1, latest: null });
  });

  it("turns cumulative totals into per-second rates", () => {
    expect(rates([{ at: 0, total: 0 }, { at: 10_000, total: 500 }, { at: 10_000, total: 600 }, { at: 20_000, total: 600 }])).toEqual([
      { at: 10_000, value: 50 },
      { at: 20_000, value: 0 },
    ]);
  });

  it("renders the polyline, its labels and escapes the title", () => {
    const svg = renderChart({ id: "chart-x", title: "Lag <s>", chart: { points: "0,60 360,0", max: 2, latest: 1.25 }, format: (v) => `${v} s` });
    expect(svg).toContain('<svg id="chart-x" viewBox="0 0 360 60"');
    expect(svg).toContain('<polyline id="chart-x-line" class="line" points="0,60 360,0"/>');
    expect(svg).toContain('<span id="chart-x-latest">1.25 s</span>');
    expect(svg).toContain('<span id="chart-x-max">2 s</span>');
    expect(svg).toContain("Lag &lt;s&gt;");
    expect(svg).not.toContain("<s>");
  });
});

const batch = (endLsn: bigint, perTable: [string, Record<string, number>][]): AppliedBatch => ({
  transactions: 1,
  changes: perTable.reduce((sum, [, ops]) => sum + Object.values(ops).reduce((a, b) => a + b, 0), 0),
  perTable: new Map(perTable),
  seconds: 0.01,
  checkpoint: { commitLsn: endLsn - 1n, endLsn, commitTime: new Date(0) },
});

const table = (name: string, state: TableStatus["state"], error: string | null = null): TableStatus => ({
  table: name, state, syncLsn: null, rowsCopied: 0, rowsEstimated: null, startedAt: null, finishedAt: null, error,
});

const slot = { active: true, walStatus: "reserved", restartLsn: 900n, confirmedFlushLsn: 1000n, retainedBytes: 100, confirmedFlushLagBytes: 0 };

describe("PipelineMonitor history and streamed changes", () => {
  it("samples at most once per interval and charts lag and applied changes per second up to now", () => {
    let now = 1_000_000;
    const monitor = new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 30, now: () => now, sampleIntervalMs: 10_000 });
    monitor.sourcePolled({ walLsn: 1000n, slot }, now);
    now += 5_000;
    monitor.sourcePolled({ walLsn: 1000n, slot }, now); // within the interval: no sample
    now += 5_000;
    monitor.batchApplied(batch(1000n, [["public.a", { insert: 100 }]]));
    monitor.sourcePolled({ walLsn: 1000n, slot }, now);
    now += 10_000;
    monitor.batchApplied(batch(1000n, [["public.a", { update: 50 }], ["public.b", { delete: 50 }]]));
    const history = monitor.history();
    expect(history).toMatchObject({ windowSeconds: 3600, sampleSeconds: 10, width: 360, height: 60 });
    // Samples at 0 s, 10 s and now (20 s later): 100 changes in the first 10 s, 100 in the next.
    expect(history.appliedPerSecond.latest).toBe(10);
    expect(history.appliedPerSecond.points.split(" ")).toHaveLength(2);
    expect(history.lagSeconds.latest).toBe(0);
    expect(history.lagSeconds.points.split(" ")).toHaveLength(3);
  });

  it("lists every mapped source table with its targets and the changes applied since start", () => {
    const targets = sourceTargets({ tables: [
      { from: "public.a", to: "x.a", columns: {}, exclude: [], passthrough: true },
      { from: "public.a", to: "y.a", columns: {}, exclude: [], passthrough: true },
      { from: "public.c", to: "x.c", columns: {}, exclude: [], passthrough: true },
    ] });
    expect([...targets]).toEqual([["public.a", ["x.a", "y.a"]], ["public.c", ["x.c"]]]);
    const monitor = new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 30, targets });
    monitor.batchApplied(batch(10n, [["public.a", { insert: 3, resync: 2 }]]));
    monitor.batchApplied(batch(20n, [["public.a", { delete: 1 }]]));
    expect(monitor.streamed()).toEqual([
      { table: "public.a", targets: ["x.a", "y.a"], changes: { insert: 3, update: 0, delete: 1, truncate: 0, resync: 2 }, total: 6 },
      { table: "public.c", targets: ["x.c"], changes: { insert: 0, update: 0, delete: 0, truncate: 0, resync: 0 }, total: 0 },
    ]);
    const page = renderStatusPage(monitor.status(), "n");
    expect(page).toContain('<tr><td class="name">public.a</td><td class="targets">x.a, y.a</td><td class="num">3</td><td class="num">0</td><td class="num">1</td><td class="num">0</td><td class="num">2</td><td class="num">6</td></tr>');
    expect(page).toContain('<polyline id="chart-lag-line"');
    expect(page).toContain('<polyline id="chart-applied-line"');
  });
});

describe("readiness items in the daemon", () => {
  it("judges lag, slot, tables, resync and conflicts from the polls, and exposes them as pgferry_ready{check}", async () => {
    let now = 1_000_000;
    const monitor = new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 30, now: () => now, readinessLimits: { maxLagSeconds: 5, maxRetainedWalBytes: 1000, verifyMaxAgeSeconds: 60 } });
    const metrics = new PipelineMetrics({ monitor, processMetrics: false });
    const ready = async (): Promise<Record<string, number>> =>
      Object.fromEntries((await metrics.registry.getSingleMetric("pgferry_ready")!.get()).values.map((v) => [String(v.labels.check), v.value]));

    // Before any poll: nothing is known, nothing is ready.
    expect(monitor.readinessChecks().every((i) => !i.ready)).toBe(true);
    expect(await ready()).toEqual({ lag: 0, slot: 0, tables: 0, resync: 0, conflicts: 0 });

    const createdAt = new Date(now - 60_000);
    const state = { consistentPoint: 100n, checkpoint: { commitLsn: 999n, endLsn: 1000n, commitTime: new Date(now - 1000) }, createdAt };
    monitor.sourcePolled({ walLsn: 1000n, slot }, now);
    monitor.targetPolled({ state, tables: [table("public.a", "ready"), table("public.b", "ready")], resyncs: [], unresolvedConflicts: 0 });
    expect(monitor.readinessChecks().map((i) => [i.name, i.ready, i.detail])).toEqual([
      ["lag", true, "0.0 s behind (0 B of WAL not applied); limit cutover.maxLagSeconds 5 s"],
      ["slot", true, "replication slot s in use, wal_status reserved, retains 100 B of WAL (limit cutover.maxRetainedWalBytes 1000 B)"],
      ["tables", true, "2 of 2 tables ready"],
      ["resync", true, "no resync running"],
      ["conflicts", true, "no unresolved conflicts (forward)"],
    ]);
    expect(await ready()).toEqual({ lag: 1, slot: 1, tables: 1, resync: 1, conflicts: 1 });

    // The source moves on and nothing is applied for 10 s (caught up at the last poll); the slot is held back; a table errors; a resync runs; a conflict stops it.
    now += 10_000;
    monitor.sourcePolled({ walLsn: 5000n, slot: { ...slot, retainedBytes: 4100, active: false } }, now);
    monitor.targetPolled({
      state, tables: [table("public.a", "ready"), table("public.b", "errored", "boom")],
      resyncs: [{ id: "r1", table: "public.a", rowsDone: 10, rowsEstimated: 40 }], unresolvedConflicts: 2,
    });
    const items = Object.fromEntries(monitor.readinessChecks().map((i) => [i.name, i]));
    expect(items.lag).toMatchObject({ ready: false, detail: "10.0 s behind (3.9 KiB of WAL not applied): above cutover.maxLagSeconds 5 s" });
    expect(items.slot).toMatchObject({ ready: false, detail: expect.stringContaining("replication slot s exists but nothing streams from it") as string });
    expect(items.tables).toMatchObject({ ready: false, detail: "1 of 2 tables ready: public.b errored (boom)" });
    expect(items.resync).toMatchObject({ ready: false, detail: "1 resync running: public.a (id r1, 10 of ~40 rows)" });
    expect(items.conflicts).toMatchObject({ ready: false, detail: "2 unresolved conflicts (forward): the pipeline stopped on rows both sides wrote" });
    for (const item of Object.values(items)) expect(item.hint, item.name).toBeTruthy();
    expect(await ready()).toEqual({ lag: 0, slot: 0, tables: 0, resync: 0, conflicts: 0 });

    // The other direction, once read: its state, tables and lag make the reverse item.
    monitor.oppositePolled({ slot: "r", stateSchema: "_pgferry", startedAt: now, source: { walLsn: 300n, slot: { ...slot, confirmedFlushLsn: 300n } }, state: null, tables: [] });
    expect(monitor.readinessChecks().find((i) => i.name === "reverse")).toMatchObject({ ready: false, detail: "reverse pipeline r has no state in _pgferry on the old database" });
    expect((await ready()).reverse).toBe(0);
  });
});
