/**
 * What the live view shows, read once a refresh from the running daemon: the monitor's status (phase,
 * per-table snapshot progress, lag) and the applied-changes counters of the metrics registry — the
 * numbers /v1/status and /metrics serve — turned into rates over a short window.
 */
import type { ControlPlane } from "../../src/control/controlPlane.js";
import type { PipelineStatus } from "../../src/control/pipelineMonitor.js";

/** Rates are averaged over this long, so one large batch does not make the figure jump. */
const RATE_WINDOW_MS = 5_000;

export interface ViewSample {
  at: number;
  status: PipelineStatus;
  appliedChanges: number;
  appliedTransactions: number;
  /** Per second, over the last few seconds; undefined until two readings exist. */
  changesPerSecond: number | undefined;
  transactionsPerSecond: number | undefined;
  /** Applied changes per second by source table. */
  tableChangesPerSecond: Map<string, number>;
  loadTransactions: number;
  loadPerSecond: number | undefined;
}

/** Rate of a growing counter over the readings of the last RATE_WINDOW_MS. */
export class CounterRate {
  private readings: { at: number; value: number }[] = [];

  push(at: number, value: number): number | undefined {
    this.readings.push({ at, value });
    // Keep one reading at or before the window's start, so the window is always covered.
    while (this.readings.length > 2 && this.readings[1]!.at <= at - RATE_WINDOW_MS) this.readings.shift();
    const first = this.readings[0]!;
    const seconds = (at - first.at) / 1000;
    return seconds > 0 ? Math.max(0, value - first.value) / seconds : undefined;
  }
}

async function counterValues(control: ControlPlane, name: string): Promise<{ labels: Record<string, string | number>; value: number }[]> {
  const metric = control.metrics.registry.getSingleMetric(name);
  if (!metric) return [];
  const { values } = await metric.get();
  return values.map((v) => ({ labels: v.labels as Record<string, string | number>, value: v.value }));
}

export class ViewSampler {
  private readonly changes = new CounterRate();
  private readonly transactions = new CounterRate();
  private readonly load = new CounterRate();
  private readonly perTable = new Map<string, CounterRate>();

  constructor(
    private readonly control: ControlPlane,
    private readonly loadTransactions: () => number,
    private readonly now: () => number = Date.now,
  ) {}

  async sample(): Promise<ViewSample> {
    const at = this.now();
    const [changes, transactions] = await Promise.all([
      counterValues(this.control, "pgferry_applied_changes_total"),
      counterValues(this.control, "pgferry_applied_transactions_total"),
    ]);
    const byTable = new Map<string, number>();
    for (const { labels, value } of changes) {
      const table = String(labels.table);
      byTable.set(table, (byTable.get(table) ?? 0) + value);
    }
    const tableChangesPerSecond = new Map<string, number>();
    for (const [table, value] of byTable) {
      let rate = this.perTable.get(table);
      if (!rate) this.perTable.set(table, (rate = new CounterRate()));
      const perSecond = rate.push(at, value);
      if (perSecond !== undefined) tableChangesPerSecond.set(table, perSecond);
    }
    const appliedChanges = [...byTable.values()].reduce((a, b) => a + b, 0);
    const appliedTransactions = transactions.reduce((a, b) => a + b.value, 0);
    const loadTransactions = this.loadTransactions();
    return {
      at,
      status: this.control.monitor.status(),
      appliedChanges,
      appliedTransactions,
      changesPerSecond: this.changes.push(at, appliedChanges),
      transactionsPerSecond: this.transactions.push(at, appliedTransactions),
      tableChangesPerSecond,
      loadTransactions,
      loadPerSecond: this.load.push(at, loadTransactions),
    };
  }
}
