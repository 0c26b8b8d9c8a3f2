/**
 * What the operator sees of a running pipeline, in memory: its phase, checkpoint, lag, slot, the
 * per-table states and the errors. Fed by the pipeline's observer callbacks (as they happen) and by
 * the status poller (the source's WAL and slot, the target's `_pgferry` state, every few seconds), so
 * the status API and the metrics answer without touching a database and work in every phase.
 * Conflicts (a bidirectional pipeline's) are counted as applied batches report them, since start;
 * `pgferry conflicts` reads the full log. The cheap cutover readiness items (cutover/readinessItems.ts)
 * are judged from the same readings, and applied changes and the last hour of lag are kept for the
 * status page (statusHistory.ts).
 */
import type { ConflictCount } from "../apply/conflictGuard.js";
import type { Direction } from "../config/directions.js";
import {
  judgeConflicts, judgeLag, judgeResyncs, judgeReverse, judgeSlot, judgeTables, readinessLimits, type ReadinessLimits,
} from "../cutover/readinessItems.js";
import type { ReadinessItem, ReadinessItemName } from "../cutover/types.js";
import { redactSecrets } from "../redact.js";
import type { AppliedBatch } from "../pipeline/applyLoop.js";
import type { Phase, PipelineObserver } from "../pipeline/pipeline.js";
import { formatLsn } from "../source/lsn.js";
import type { TableState, TableStatus } from "../state/checkpointStore.js";
import type { Checkpoint } from "../plan/changes.js";
import { LagTracker } from "../status/lagTracker.js";
import { trackLag, type IndexToBuild, type OppositeReading, type RunningResync, type SlotReading, type SourceReading, type TargetReading } from "../status/readings.js";
import { StatusHistory, type HistoryReport, type StreamedTable } from "./statusHistory.js";

export { sourceTargets, type HistoryReport, type StreamedTable } from "./statusHistory.js";

export const PHASES: readonly Phase[] = ["starting", "standby", "preflight", "snapshot", "streaming", "retrying", "stopped", "failed"];
export const TABLE_STATES: readonly TableState[] = ["pending", "copying", "ready", "errored"];



export interface TableReport {
  table: string;
  state: TableState;
  rowsCopied: number;
  rowsEstimated: number | null;
  /** Snapshot progress, 0–100; null when the row estimate is unknown and the copy is not done. */
  percent: number | null;
  syncLsn: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
}

export interface Readiness {
  ready: boolean;
  reason: string;
  phase: Phase;
  lagSeconds: number | null;
  maxLagSeconds: number;
}

/** Conflicts applied batches met since the process started, per table, resolution and the side kept. */
export interface ConflictReport {
  table: string;
  resolution: ConflictCount["resolution"];
  kept: ConflictCount["kept"];
  count: number;
}

/** The JSON of `GET /v1/status`. LSNs are `X/Y` text; times ISO 8601; sizes in bytes. */
export interface PipelineStatus {
  pipeline: string;
  phase: Phase;
  phaseSince: string;
  readiness: Readiness;
  checkpoint: { commitLsn: string; endLsn: string; commitTime: string | null } | null;
  lag: { bytes: number | null; seconds: number | null; sourceWalLsn: string | null; appliedLsn: string | null };
  slot: {
    name: string;
    exists: boolean | null;
    active: boolean | null;
    restartLsn: string | null;
    confirmedFlushLsn: string | null;
    retainedWalBytes: number | null;
    confirmedFlushLagBytes: number | null;
  };
  tables: TableReport[];
  errors: { total: number; byKind: Record<string, number>; last: { kind: string; message: string; at: string } | null };
  conflicts: { since: string; total: number; byTable: ConflictReport[] };
  /** The cheap cutover readiness items (`pgferry cutover --check` also checks sequences and verify). */
  readinessChecks: ReadinessItem[];
  streamed: StreamedTable[];
  history: HistoryReport;
  polled: { source: string | null; target: string | null };
}

export interface PipelineMonitorOptions {
  /** The pipeline's name: its replication slot. */
  slot: string;
  readyMaxLagSeconds: number;
  now?: () => number;
  /** The cutover limits the readiness items are judged by (config `cutover`); its defaults when absent. */
  readinessLimits?: ReadinessLimits;
  /** Per source table, the target tables it feeds (sourceTargets); unknown when absent. */
  targets?: ReadonlyMap<string, readonly string[]>;
  /** Which pipeline this is, for the words of the readiness items (forward when absent). */
  direction?: Direction;
  /** At most one history sample per this many ms (default 10 s: 360 samples are an hour). */
  sampleIntervalMs?: number;
}


const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
const lsnText = (lsn: bigint | null | undefined) => (lsn === null || lsn === undefined ? null : formatLsn(lsn));

export class PipelineMonitor implements PipelineObserver {
  private readonly lag = new LagTracker();
  private readonly now: () => number;
  private readonly startedAt: number;
  /** Keyed by table, resolution and kept (JSON, so no separator can be ambiguous). */
  private readonly conflictCounts = new Map<string, ConflictReport>();
  private currentPhase: Phase = "starting";
  private phaseSince: number;
  private checkpoint: Checkpoint | undefined;
  private slot: SlotReading | null | undefined;
  private tableStates = new Map<string, TableStatus>();
  private readonly errorCounts = new Map<string, number>();
  private lastError: { kind: string; message: string; at: number } | undefined;
  private sourcePolledAt: number | undefined;
  /** When the latest completed source poll began. */
  private sourcePollStartedAt: number | undefined;
  private targetPolledAt: number | undefined;
  private resyncs: readonly RunningResync[] = [];
  private unresolved = 0;
  private toBuild: readonly IndexToBuild[] = [];
  private cutoverStepValue = 0;
  private opposite: OppositeReading | undefined;
  private readonly oppositeLag = new LagTracker();
  private readonly limits: ReadinessLimits;
  private readonly recent: StatusHistory;

  constructor(private readonly options: PipelineMonitorOptions) {
    this.now = options.now ?? Date.now;
    this.phaseSince = this.now();
    this.startedAt = this.phaseSince;
    this.limits = options.readinessLimits ?? readinessLimits({});
    this.recent = new StatusHistory({ sampleIntervalMs: options.sampleIntervalMs, targets: options.targets });
  }

  // ---- PipelineObserver ----

  phase(phase: Phase): void {
    if (phase === this.currentPhase) return;
    this.currentPhase = phase;
    this.phaseSince = this.now();
  }

  batchApplied(batch: AppliedBatch): void {
    this.recordCheckpoint(batch.checkpoint);
    this.recent.batchApplied(batch);
    for (const c of batch.conflicts ?? []) {
      if (c.count <= 0) continue;
      const key = JSON.stringify([c.table, c.resolution, c.kept]);
      const seen = this.conflictCounts.get(key);
      this.conflictCounts.set(key, { table: c.table, resolution: c.resolution, kept: c.kept, count: (seen?.count ?? 0) + c.count });
    }
  }

  rowsCopied(table: string, rows: number): void {
    // Shown at once; the next poll of the target replaces it with the committed count.
    const status = this.tableStates.get(table);
    if (status) this.tableStates.set(table, { ...status, rowsCopied: status.rowsCopied + rows });
  }

  serverWalEnd(lsn: bigint): void {
    this.lag.sourcePosition(lsn, this.now());
  }

  error(kind: string, error: unknown): void {
    this.errorCounts.set(kind, (this.errorCounts.get(kind) ?? 0) + 1);
    const message = redactSecrets(error instanceof Error ? error.message : String(error));
    this.lastError = { kind, message, at: this.now() };
  }

  // ---- poll results ----

  /** `startedAt`: when the poll began; the WAL position read is at least that recent. */
  sourcePolled(reading: SourceReading, startedAt: number): void {
    this.lag.sourcePosition(reading.walLsn, startedAt);
    if (reading.slot?.confirmedFlushLsn != null) this.lag.appliedPosition(reading.slot.confirmedFlushLsn);
    this.slot = reading.slot;
    this.sourcePolledAt = this.now();
    this.sourcePollStartedAt = startedAt;
    // One history sample per interval, taken as the source is polled (lag moves with the source's position).
    this.recent.sample(this.now(), this.lagSeconds());
  }

  targetPolled(reading: TargetReading): void {
    if (reading.state) {
      this.lag.pipelineCreated(reading.state.createdAt);
      this.recordCheckpoint(reading.state.checkpoint);
    }
    this.tableStates = new Map(reading.tables.map((t) => [t.table, t]));
    this.resyncs = reading.resyncs ?? [];
    this.unresolved = reading.unresolvedConflicts ?? 0;
    this.toBuild = reading.indexesToBuild ?? [];
    this.cutoverStepValue = reading.cutoverStep ?? 0;
    this.targetPolledAt = this.now();
  }

  /** The other direction (a bidirectional config's forward pipeline reads the reverse's), for the `reverse` item. */
  oppositePolled(reading: OppositeReading): void {
    trackLag(this.oppositeLag, reading.source, reading.startedAt, reading.state);
    this.opposite = reading;
  }

  // ---- readings ----

  get currentPhaseName(): Phase {
    return this.currentPhase;
  }

  lagBytes(): number | undefined {
    return this.lag.bytes();
  }

  lagSeconds(): number | undefined {
    return this.lag.seconds(this.now());
  }

  /** The `pgferry cutover` step recorded in this pipeline's state (0 none, 1..4 running or failed there, 5 done). */
  cutoverStep(): number {
    return this.cutoverStepValue;
  }

  slotReading(): SlotReading | null | undefined {
    return this.slot;
  }

  tables(): TableStatus[] {
    return [...this.tableStates.values()];
  }

  /** Conflicts since start, ordered by table, then resolution and kept. */
  conflicts(): ConflictReport[] {
    return [...this.conflictCounts.values()].sort((a, b) => a.table.localeCompare(b.table) || a.resolution.localeCompare(b.resolution) || a.kept.localeCompare(b.kept));
  }

  /**
   * The readiness items this process can judge from its readings: lag, slot, tables, resync,
   * conflicts, and (once the other direction is read) reverse. Not measured yet reads as not ready.
   */
  readinessChecks(): ReadinessItem[] {
    const limits = this.limits;
    const direction = this.options.direction ?? "forward";
    const label = { slot: this.options.slot, sourceName: "source database" };
    const waiting = (name: ReadinessItemName): ReadinessItem => ({
      name, ready: false, detail: "not read yet (waiting for the first poll of the target)", hint: "wait for the next poll; if it stays, check that the target is reachable (pgferry_status_poll_errors_total)",
    });
    const polled = this.targetPolledAt !== undefined;
    const items: ReadinessItem[] = [
      judgeLag({ bytes: this.lagBytes(), seconds: this.lagSeconds() }, limits),
      judgeSlot(this.slot, limits, label),
      polled ? judgeTables(this.tables(), this.options.targets ? [...this.options.targets.keys()] : undefined, label, { toBuild: this.toBuild }) : waiting("tables"),
      polled ? judgeResyncs(this.resyncs) : waiting("resync"),
    ];
    const opposite = this.opposite;
    if (opposite) {
      items.push(
        opposite.error !== undefined
          ? { name: "reverse", ready: false, detail: `could not read the ${direction === "forward" ? "reverse" : "forward"} pipeline ${opposite.slot}: ${redactSecrets(opposite.error)}`, hint: "check that both databases are reachable" }
          : judgeReverse({ stateSchema: opposite.stateSchema, slot: opposite.slot, exists: opposite.state !== null, tables: opposite.tables, lag: { bytes: this.oppositeLag.bytes(), seconds: this.oppositeLag.seconds(this.now()) } }, limits),
      );
    }
    const conflicts = [{ direction, count: this.unresolved }];
    if (opposite && opposite.error === undefined) conflicts.push({ direction: direction === "forward" ? "reverse" : "forward", count: opposite.unresolvedConflicts ?? 0 });
    items.push(polled ? judgeConflicts(conflicts) : waiting("conflicts"));
    return items;
  }

  /** Applied row changes per source table since start, with the targets each feeds; every mapped table listed. */
  streamed(): StreamedTable[] {
    return this.recent.streamed(this.tableStates.keys());
  }

  /** The last hour of lag and applied changes per second, as the status page's chart polylines. */
  history(): HistoryReport {
    return this.recent.report(this.now(), this.lagSeconds());
  }

  readiness(): Readiness {
    const maxLagSeconds = this.options.readyMaxLagSeconds;
    const lag = this.lagSeconds();
    const base = { phase: this.currentPhase, lagSeconds: lag ?? null, maxLagSeconds };
    if (this.currentPhase !== "streaming") return { ...base, ready: false, reason: `phase is ${this.currentPhase}, not streaming` };
    // The phase turns to streaming as START_REPLICATION is sent; the slot shows when the stream holds
    // it. Only a poll begun since then tells (during the snapshot the slot's creator held it).
    if (this.sourcePollStartedAt === undefined || this.sourcePollStartedAt < this.phaseSince) {
      return { ...base, ready: false, reason: "waiting for a poll of the source since streaming began" };
    }
    if (this.slot === null) return { ...base, ready: false, reason: `replication slot ${this.options.slot} does not exist on the source` };
    if (this.slot?.active === false) return { ...base, ready: false, reason: `replication slot ${this.options.slot} is not in use yet (the stream is connecting)` };
    if (lag === undefined) return { ...base, ready: false, reason: "lag not measured yet (waiting for the first poll of the source)" };
    if (lag > maxLagSeconds) {
      return { ...base, ready: false, reason: `replication lag ${lag.toFixed(1)} s is above control.readyMaxLagSeconds (${maxLagSeconds} s)` };
    }
    return { ...base, ready: true, reason: "streaming and caught up" };
  }

  status(): PipelineStatus {
    const slot = this.slot;
    const lagBytes = this.lag.bytes();
    const lagSeconds = this.lag.seconds(this.now());
    const conflicts = this.conflicts();
    return {
      pipeline: this.options.slot,
      phase: this.currentPhase,
      phaseSince: new Date(this.phaseSince).toISOString(),
      readiness: this.readiness(),
      checkpoint: this.checkpoint
        ? { commitLsn: formatLsn(this.checkpoint.commitLsn), endLsn: formatLsn(this.checkpoint.endLsn), commitTime: iso(this.checkpoint.commitTime) }
        : null,
      lag: {
        bytes: lagBytes ?? null,
        seconds: lagSeconds === undefined ? null : Math.round(lagSeconds * 1000) / 1000,
        sourceWalLsn: lsnText(this.lag.sourceLsn),
        appliedLsn: lsnText(this.lag.appliedLsn),
      },
      slot: {
        name: this.options.slot,
        exists: slot === undefined ? null : slot !== null,
        active: slot?.active ?? null,
        restartLsn: lsnText(slot?.restartLsn),
        confirmedFlushLsn: lsnText(slot?.confirmedFlushLsn),
        retainedWalBytes: slot?.retainedBytes ?? null,
        confirmedFlushLagBytes: slot?.confirmedFlushLagBytes ?? null,
      },
      tables: this.tables().map(tableReport),
      errors: {
        total: [...this.errorCounts.values()].reduce((a, b) => a + b, 0),
        byKind: Object.fromEntries(this.errorCounts),
        last: this.lastError ? { kind: this.lastError.kind, message: this.lastError.message, at: new Date(this.lastError.at).toISOString() } : null,
      },
      conflicts: { since: new Date(this.startedAt).toISOString(), total: conflicts.reduce((sum, c) => sum + c.count, 0), byTable: conflicts },
      readinessChecks: this.readinessChecks(),
      streamed: this.streamed(),
      history: this.history(),
      polled: {
        source: this.sourcePolledAt === undefined ? null : new Date(this.sourcePolledAt).toISOString(),
        target: this.targetPolledAt === undefined ? null : new Date(this.targetPolledAt).toISOString(),
      },
    };
  }

  private recordCheckpoint(checkpoint: Checkpoint): void {
    if (!this.checkpoint || checkpoint.endLsn > this.checkpoint.endLsn) this.checkpoint = checkpoint;
    this.lag.appliedPosition(checkpoint.endLsn, checkpoint.commitTime);
  }
}

export function tableReport(t: TableStatus): TableReport {
  let percent: number | null = null;
  if (t.state === "ready") percent = 100;
  else if (t.rowsEstimated !== null && t.rowsEstimated > 0) percent = Math.min(99.9, Math.round((t.rowsCopied / t.rowsEstimated) * 1000) / 10);
  else if (t.rowsEstimated === 0 && t.state === "copying") percent = 0;
  return {
    table: t.table,
    state: t.state,
    rowsCopied: t.rowsCopied,
    rowsEstimated: t.rowsEstimated,
    percent,
    syncLsn: lsnText(t.syncLsn),
    startedAt: iso(t.startedAt),
    finishedAt: iso(t.finishedAt),
    error: t.error === null ? null : redactSecrets(t.error),
  };
}
