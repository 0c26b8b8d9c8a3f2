/**
 * The Prometheus metrics of one pipeline, in a registry of its own (no module-level state, so tests
 * and several pipelines in one process do not share counters). Counters and histograms are fed by the
 * pipeline's observer callbacks; gauges read the monitor when Prometheus scrapes, so lag in seconds
 * is computed at scrape time. README "Metrics" lists every metric.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Direction } from "../apply/conflictGuard.js";
import { ERROR_KINDS } from "../errors.js";
import type { AppliedBatch } from "../pipeline/applyLoop.js";
import type { PipelineObserver } from "../pipeline/pipeline.js";
import { PHASES, TABLE_STATES, type PipelineMonitor } from "./pipelineMonitor.js";
import type { ResyncController } from "./resyncController.js";

export const METRIC_PREFIX = "pgferry_";

export interface MetricsOptions {
  monitor: PipelineMonitor;
  /** Tables with a resync running; none until a resync engine is injected. */
  resyncs?: Pick<ResyncController, "inProgress">;
  /** Default process metrics (CPU, memory, event loop, GC); on unless a test turns them off. */
  processMetrics?: boolean;
  /** Which pipeline this is (the `direction` label of its conflicts); forward unless said. */
  direction?: Direction;
  /** Both directions configured: every series carries `direction`, so the two pipelines' series stay apart on one dashboard. */
  labelDirection?: boolean;
}

export class PipelineMetrics implements PipelineObserver {
  readonly registry = new Registry();
  private readonly appliedChanges: Counter<"table" | "op">;
  private readonly appliedTransactions: Counter;
  private readonly batchSeconds: Histogram;
  private readonly batchRows: Histogram;
  private readonly snapshotRows: Counter<"table">;
  private readonly errors: Counter<"kind">;
  private readonly pollErrors: Counter<"database">;
  private readonly conflicts: Counter<"table" | "direction" | "resolution" | "kept">;
  private readonly direction: Direction;
  private readonly originFilteredChanges: Counter<"origin">;
  private readonly sequenceGap: Gauge<"sequence">;

  constructor(options: MetricsOptions) {
    this.direction = options.direction ?? "forward";
    const { monitor } = options;
    const registers = [this.registry];
    if (options.labelDirection) this.registry.setDefaultLabels({ direction: this.direction });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });

    new Gauge({
      name: "pgferry_replication_lag_bytes",
      help: "Source WAL position minus the position applied to the target (NaN until both are known)",
      registers,
      collect() {
        this.set(monitor.lagBytes() ?? NaN);
      },
    });
    new Gauge({
      name: "pgferry_replication_lag_seconds",
      help: "While behind: now minus the later of the last applied source commit time and the last time pgferry was caught up; 0 when caught up",
      registers,
      collect() {
        this.set(monitor.lagSeconds() ?? NaN);
      },
    });
    new Gauge({
      name: "pgferry_slot_retained_wal_bytes",
      help: "WAL the source keeps for the replication slot: pg_current_wal_lsn() - restart_lsn",
      registers,
      collect() {
        this.set(monitor.slotReading()?.retainedBytes ?? NaN);
      },
    });
    new Gauge({
      name: "pgferry_slot_confirmed_flush_lag_bytes",
      help: "pg_current_wal_lsn() - confirmed_flush_lsn of the replication slot",
      registers,
      collect() {
        this.set(monitor.slotReading()?.confirmedFlushLagBytes ?? NaN);
      },
    });
    new Gauge({
      name: "pgferry_pipeline_phase",
      help: "1 for the pipeline's current phase, 0 for the others",
      labelNames: ["phase"],
      registers,
      collect() {
        const current = monitor.currentPhaseName;
        for (const phase of PHASES) this.set({ phase }, phase === current ? 1 : 0);
      },
    });
    new Gauge({
      name: "pgferry_table_state",
      help: "1 for each table's current state, 0 for its other states",
      labelNames: ["table", "state"],
      registers,
      collect() {
        this.reset();
        for (const t of monitor.tables()) for (const state of TABLE_STATES) this.set({ table: t.table, state }, t.state === state ? 1 : 0);
      },
    });
    new Gauge({
      name: "pgferry_snapshot_rows_estimated",
      help: "Rows the source's statistics estimate for each table when its copy started",
      labelNames: ["table"],
      registers,
      collect() {
        this.reset();
        for (const t of monitor.tables()) if (t.rowsEstimated !== null) this.set({ table: t.table }, t.rowsEstimated);
      },
    });
    new Gauge({
      name: "pgferry_ready",
      help: "1 when the cutover readiness check is ready, else 0: lag, slot, tables, resync, conflicts, reverse (pgferry cutover --check also checks sequences and verify)",
      labelNames: ["check"],
      registers,
      collect() {
        this.reset();
        for (const item of monitor.readinessChecks()) this.set({ check: item.name }, item.ready ? 1 : 0);
      },
    });
    new Gauge({
      name: "pgferry_cutover_step",
      help: "Where pgferry cutover stands, from the state schema: 0 none (or a rollback since), 1..4 the step running (or failed), 5 done",
      registers,
      collect() {
        this.set(monitor.cutoverStep());
      },
    });
    new Gauge({
      name: "pgferry_resync_in_progress",
      help: "1 while a resync of the table runs, else 0",
      labelNames: ["table"],
      registers,
      collect() {
        this.reset();
        const running = new Set(options.resyncs?.inProgress?.() ?? []);
        for (const t of monitor.tables()) this.set({ table: t.table }, running.has(t.table) ? 1 : 0);
      },
    });

    this.appliedChanges = new Counter({
      name: "pgferry_applied_changes_total",
      help: "Row changes applied to the target, by source table and source operation",
      labelNames: ["table", "op"],
      registers,
    });
    this.appliedTransactions = new Counter({ name: "pgferry_applied_transactions_total", help: "Source transactions applied to the target", registers });
    this.batchSeconds = new Histogram({
      name: "pgferry_apply_batch_seconds",
      help: "Time from a batch's first change to its target COMMIT",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.batchRows = new Histogram({
      name: "pgferry_apply_batch_rows",
      help: "Source row changes per applied batch (one target transaction)",
      buckets: [1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000, 100_000],
      registers,
    });
    this.snapshotRows = new Counter({
      name: "pgferry_snapshot_rows_total",
      help: "Rows copied by the snapshot in this process, by source table (a copy started over counts again)",
      labelNames: ["table"],
      registers,
    });
    this.errors = new Counter({ name: "pgferry_errors_total", help: "Pipeline failures (each ends an attempt), by error kind", labelNames: ["kind"], registers });
    // Every error kind starts at 0, so `increase()` sees the first error of a kind.
    for (const kind of ERROR_KINDS) this.errors.inc({ kind }, 0);
    this.pollErrors = new Counter({
      name: "pgferry_status_poll_errors_total",
      help: "Failed polls of the source (WAL position, slot) or target (pipeline state) for status and lag",
      labelNames: ["database"],
      registers,
    });
    this.conflicts = new Counter({
      name: "pgferry_conflicts_total",
      help: "Rows both databases wrote between two syncs (conflicts), by table, pipeline direction, configured resolution and the side kept (incoming or local)",
      labelNames: ["table", "direction", "resolution", "kept"],
      registers,
    });
    this.sequenceGap = new Gauge({
      name: "pgferry_sequence_gap",
      help: "Per target key sequence: its next value minus the lowest next value that cannot collide with a key the source used (negative: behind, run pgferry sequences sync)",
      labelNames: ["sequence"],
      registers,
    });
    this.originFilteredChanges = new Counter({
      name: "pgferry_origin_filtered_changes_total",
      help: "Source row changes left out because the other direction wrote them (its replication origin): each change makes one trip",
      labelNames: ["origin"],
      registers,
    });
  }

  /** The latest `pgferry sequences` reading: per target sequence, its next value minus the lowest that cannot collide. */
  sequenceGapsPolled(gaps: readonly { sequence: string; gap: bigint }[]): void {
    this.sequenceGap.reset();
    for (const g of gaps) this.sequenceGap.set({ sequence: g.sequence }, Number(g.gap));
  }

  originFiltered(origin: string, changes: number): void {
    this.originFilteredChanges.inc({ origin }, changes);
  }

  batchApplied(batch: AppliedBatch): void {
    for (const [table, ops] of batch.perTable) {
      for (const [op, count] of Object.entries(ops)) if (count) this.appliedChanges.inc({ table, op }, count);
    }
    this.appliedTransactions.inc(batch.transactions);
    this.batchSeconds.observe(batch.seconds);
    this.batchRows.observe(batch.changes);
    for (const c of batch.conflicts ?? []) {
      if (c.count > 0) this.conflicts.inc({ table: c.table, direction: this.direction, resolution: c.resolution, kept: c.kept }, c.count);
    }
  }

  rowsCopied(table: string, rows: number): void {
    this.snapshotRows.inc({ table }, rows);
  }

  error(kind: string): void {
    this.errors.inc({ kind });
  }

  pollFailed(database: "source" | "target"): void {
    this.pollErrors.inc({ database });
  }
}
