/**
 * What the status page shows of the pipeline's recent work, kept in memory by the monitor: the row
 * changes applied since the process started, per source table (with the target tables each feeds),
 * and the last hour of lag and applied changes, one sample per interval in a ring buffer of 360,
 * drawn as chart polylines (statusCharts.ts). Bounded however long pgferry runs.
 */
import type { Config } from "../config/schema.js";
import type { Direction } from "../config/directions.js";
import type { AppliedBatch } from "../pipeline/applyLoop.js";
import type { CountedOp } from "../pipeline/streamEvents.js";
import { RingBuffer } from "./ringBuffer.js";
import { chart, rates, CHART_HEIGHT, CHART_WIDTH, CHART_WINDOW_MS, type Chart } from "./statusCharts.js";

/** Row changes applied since the process started, per source table, with the target tables it feeds. */
export interface StreamedTable {
  table: string;
  targets: string[];
  changes: Record<CountedOp, number>;
  total: number;
}

/** The last hour, one sample per `sampleSeconds`, as chart polylines. */
export interface HistoryReport {
  windowSeconds: number;
  sampleSeconds: number;
  /** The polylines' box: `0 0 width height`. */
  width: number;
  height: number;
  lagSeconds: Chart;
  appliedPerSecond: Chart;
}

/** The history's length and default spacing: 360 samples 10 s apart are an hour. */
export const HISTORY_SAMPLES = 360;
export const HISTORY_SAMPLE_MS = 10_000;

const COUNTED_OPS: readonly CountedOp[] = ["insert", "update", "delete", "truncate", "resync"];
const noChanges = (): Record<CountedOp, number> => ({ insert: 0, update: 0, delete: 0, truncate: 0, resync: 0 });

/** Per source table of `direction`'s plan, the target tables it feeds: the mapping as written, or its inverse. */
export function sourceTargets(config: Pick<Config, "tables">, direction: Direction = "forward"): Map<string, string[]> {
  const targets = new Map<string, string[]>();
  for (const t of config.tables) {
    if (direction === "reverse" && t.reverse === false) continue;
    const [from, to] = direction === "forward" ? [t.from, t.to] : [t.to, t.from];
    const list = targets.get(from) ?? [];
    if (!list.includes(to)) list.push(to);
    targets.set(from, list);
  }
  return targets;
}

export class StatusHistory {
  private readonly counts = new Map<string, Record<CountedOp, number>>();
  private applied = 0;
  private readonly samples = new RingBuffer<{ at: number; lagSeconds: number | null; applied: number }>(HISTORY_SAMPLES);

  constructor(private readonly options: { sampleIntervalMs?: number; targets?: ReadonlyMap<string, readonly string[]> } = {}) {}

  private get intervalMs(): number {
    return this.options.sampleIntervalMs ?? HISTORY_SAMPLE_MS;
  }

  batchApplied(batch: AppliedBatch): void {
    this.applied += batch.changes;
    for (const [table, ops] of batch.perTable) {
      const counts = this.counts.get(table) ?? noChanges();
      for (const op of COUNTED_OPS) counts[op] += ops[op] ?? 0;
      this.counts.set(table, counts);
    }
  }

  /** A sample at `at`, unless the last one is more recent than the interval. */
  sample(at: number, lagSeconds: number | undefined): void {
    const last = this.samples.last();
    if (last && at - last.at < this.intervalMs) return;
    this.samples.push({ at, lagSeconds: lagSeconds ?? null, applied: this.applied });
  }

  /** Every mapped source table (and any other `known` or applied one), sorted, with what was applied to it. */
  streamed(known: Iterable<string> = []): StreamedTable[] {
    const targets = this.options.targets;
    const tables = new Set([...(targets?.keys() ?? []), ...known, ...this.counts.keys()]);
    return [...tables].sort().map((table) => {
      const changes = { ...(this.counts.get(table) ?? noChanges()) };
      return { table, targets: [...(targets?.get(table) ?? [])], changes, total: COUNTED_OPS.reduce((sum, op) => sum + changes[op], 0) };
    });
  }

  /** The last hour as chart polylines; the newest point is now, so a chart has a line from its first sample on. */
  report(now: number, lagSeconds: number | undefined): HistoryReport {
    const samples = [...this.samples.toArray(), { at: now, lagSeconds: lagSeconds ?? null, applied: this.applied }];
    const frame = { now, windowMs: CHART_WINDOW_MS, width: CHART_WIDTH, height: CHART_HEIGHT };
    return {
      windowSeconds: CHART_WINDOW_MS / 1000,
      sampleSeconds: this.intervalMs / 1000,
      width: CHART_WIDTH,
      height: CHART_HEIGHT,
      lagSeconds: chart(samples.map((s) => ({ at: s.at, value: s.lagSeconds })), frame),
      appliedPerSecond: chart(rates(samples.map((s) => ({ at: s.at, total: s.applied }))), frame),
    };
  }
}
