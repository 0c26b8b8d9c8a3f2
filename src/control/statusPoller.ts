/**
 * Polls what the pipeline cannot report itself: the source's WAL position and the replication slot
 * (retained WAL, confirmed flush), and the pipeline's state in the target (checkpoint, per-table
 * states and row counts, running resyncs, conflicts it stopped on). With the other direction
 * configured (`opposite`), also that pipeline's state and lag, for the `reverse` readiness item. Its
 * own one-connection pools with a statement timeout, polls never overlap, and a failed poll is
 * counted and logged, never thrown: the pipeline is never blocked or stopped. `pgferry cutover
 * --check` (cutover/readiness.ts) reads through the same functions.
 */
import pg from "pg";
import { openPool } from "../sql/session.js";
import type { Logger } from "pino";
import type { OppositePipeline } from "../config/directions.js";
import { parseLsn } from "../source/lsn.js";
import { cutoverStep } from "../state/cutoverSteps.js";
import { DeferredIndexStore } from "../state/deferredIndexes.js";
import { postgresStores, type StateStores } from "../state/postgresStores.js";
import { quoteIdent } from "../sql/quote.js";
import type { OppositeReading, SourceReading, TargetReading } from "./pipelineMonitor.js";
import type { IndexToBuild } from "../cutover/readinessItems.js";

export interface StatusPollerOptions {
  sourceUrl: string;
  targetUrl: string;
  stateSchema: string;
  slot: string;
  intervalMs: number;
  log: Logger;
  onSource(reading: SourceReading, startedAt: number): void;
  onTarget(reading: TargetReading): void;
  onFailure?(database: "source" | "target", error: unknown): void;
  /** The other direction of a bidirectional config (its state is in this pipeline's source, its slot on this target). */
  opposite?: OppositePipeline | null;
  onOpposite?(reading: OppositeReading): void;
}

const TIMEOUT_MS = 5_000;

/**
 * `write`: pg_current_wal_lsn(), what the walsender can send soon (the daemon's lag). `insert`:
 * pg_current_wal_insert_lsn(), which also covers commits made with synchronous_commit off whose WAL
 * is not written yet (they are visible already): what a cutover check must see applied.
 */
export type WalPosition = "write" | "insert";

const slotSql = (position: WalPosition) => {
  const wal = position === "insert" ? "pg_current_wal_insert_lsn()" : "pg_current_wal_lsn()";
  return `
SELECT ${wal}::text AS wal_lsn, s.slot_name IS NOT NULL AS found, s.active, s.wal_status,
       s.restart_lsn::text AS restart_lsn, s.confirmed_flush_lsn::text AS confirmed_flush_lsn,
       pg_wal_lsn_diff(${wal}, s.restart_lsn)::float8 AS retained,
       pg_wal_lsn_diff(${wal}, s.confirmed_flush_lsn)::float8 AS flush_lag
FROM (VALUES (1)) AS one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`;
};

interface SlotRow {
  wal_lsn: string; found: boolean; active: boolean | null; wal_status: string | null; restart_lsn: string | null; confirmed_flush_lsn: string | null;
  retained: number | null; flush_lag: number | null;
}

/** The source's WAL position and the slot (null when it does not exist). */
export async function readSource(db: pg.Pool | pg.ClientBase, slot: string, position: WalPosition = "write"): Promise<SourceReading> {
  const { rows } = await db.query<SlotRow>(slotSql(position), [slot]);
  const row = rows[0]!;
  return {
    walLsn: parseLsn(row.wal_lsn),
    slot: row.found
      ? {
          active: row.active ?? false,
          walStatus: row.wal_status,
          restartLsn: row.restart_lsn === null ? null : parseLsn(row.restart_lsn),
          confirmedFlushLsn: row.confirmed_flush_lsn === null ? null : parseLsn(row.confirmed_flush_lsn),
          // A pool of raw text (sql/session.ts) hands float8 over as text.
          retainedBytes: row.retained === null ? null : Number(row.retained),
          confirmedFlushLagBytes: row.flush_lag === null ? null : Number(row.flush_lag),
        }
      : null,
  };
}

/** Undefined table (42P01) or schema (3F000): a state schema not migrated that far yet. */
function isMissingRelation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "42P01" || code === "3F000";
}

/**
 * Conflicts the pipeline stopped on (kept = 'stopped', resolution `stop`) that it has not applied
 * past since: a batch that stopped is applied again when pgferry restarts after the fix, which moves
 * the checkpoint (`pipelines.updated_at`) past the conflict's `detected_at`. 0 without a conflict log.
 * (ConflictLog.unresolved counts every stopped row ever, which a fixed and resumed stop never leaves.)
 */
export async function unresolvedConflicts(db: pg.Pool, stateSchema: string, pipeline: string): Promise<number> {
  const schema = quoteIdent(stateSchema);
  try {
    const { rows } = await db.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM ${schema}.conflicts c
       WHERE c.pipeline = $1 AND c.kept = 'stopped'
         AND c.detected_at > coalesce((SELECT p.updated_at FROM ${schema}.pipelines p WHERE p.pipeline = $1), '-infinity')`,
      [pipeline],
    );
    return Number(rows[0]?.n ?? 0);
  } catch (error) {
    if (isMissingRelation(error)) return 0;
    throw error;
  }
}

/**
 * The secondary indexes of this pipeline's target tables dropped for the copy and not built again yet
 * (snapshot.deferIndexes), from the records the index builds keep (state/deferredIndexes.ts).
 */
export async function indexesToBuild(db: pg.Pool, stateSchema: string, pipeline: string): Promise<IndexToBuild[]> {
  const records = await new DeferredIndexStore({ schema: stateSchema, pipeline }).list(db);
  return records.filter((r) => r.pipeline === pipeline).map((r) => ({ table: `${r.schema}.${r.table}`, index: r.name }));
}

/** A pipeline's state as its target keeps it: checkpoint, tables, running resyncs, unresolved conflicts, the cutover's step. */
export async function readTarget(db: pg.Pool, stateSchema: string, pipeline: string, stores?: StateStores): Promise<TargetReading> {
  const { checkpoints, resyncs } = stores ?? postgresStores({ pool: db, schema: stateSchema, pipeline });
  // Before the first run there is no state schema; that is not a failure.
  if (!(await checkpoints.exists())) return { state: null, tables: [], resyncs: [], unresolvedConflicts: 0, cutoverStep: 0 };
  // A state schema from before resyncs (until the starting pipeline migrates it) has none running.
  const running = await resyncs.running().catch((error: unknown) => {
    if (isMissingRelation(error)) return [];
    throw error;
  });
  return {
    state: await checkpoints.summary(),
    tables: await checkpoints.tables(),
    resyncs: running.map((r) => ({ id: r.id, table: r.table, rowsDone: r.rowsDone, rowsEstimated: r.rowsEstimated })),
    unresolvedConflicts: await unresolvedConflicts(db, stateSchema, pipeline),
    indexesToBuild: await indexesToBuild(db, stateSchema, pipeline),
    cutoverStep: await cutoverStep(db, stateSchema, pipeline, "cutover"),
  };
}

/**
 * The other direction, read from this pipeline's databases: its state in `stateDb` (this pipeline's
 * source), its source position and slot in `sourceDb` (this pipeline's target).
 */
export async function readOpposite(opposite: OppositePipeline, stateDb: pg.Pool, sourceDb: pg.Pool): Promise<OppositeReading> {
  const startedAt = Date.now();
  const source = await readSource(sourceDb, opposite.slot);
  const target = await readTarget(stateDb, opposite.stateSchema, opposite.slot);
  return { slot: opposite.slot, stateSchema: opposite.stateSchema, startedAt, source, ...target };
}

function pool(url: string): pg.Pool {
  // An idle connection dropped: the next poll reconnects.
  return openPool(url, {
    applicationName: "pgferry-status",
    max: 1,
    extra: { connectionTimeoutMillis: TIMEOUT_MS, statement_timeout: TIMEOUT_MS, idleTimeoutMillis: 0 } as Partial<pg.ClientConfig>,
  });
}

export class StatusPoller {
  private readonly source: pg.Pool;
  private readonly target: pg.Pool;
  private readonly stores: StateStores;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private started = false;
  private readonly failing = { source: false, target: false };

  constructor(private readonly options: StatusPollerOptions) {
    this.source = pool(options.sourceUrl);
    this.target = pool(options.targetUrl);
    this.stores = postgresStores({ pool: this.target, schema: options.stateSchema, pipeline: options.slot });
  }

  /** Polls now, then every interval until stop(). Safe to call twice. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.schedule(0);
  }

  /** One poll of both databases (joins a poll already running). */
  pollNow(): Promise<void> {
    this.running ??= Promise.all([this.pollSource(), this.pollTarget(), this.pollOpposite()]).then(
      () => undefined,
      () => undefined,
    ).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Stops polling and closes the pools; safe to call twice or concurrently. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await Promise.all([this.source.end(), this.target.end()]).catch(() => undefined);
  }

  private schedule(delay: number): void {
    this.timer = setTimeout(() => {
      void this.pollNow().then(() => {
        if (!this.stopped) this.schedule(this.options.intervalMs);
      });
    }, delay);
    this.timer.unref();
  }

  private async pollSource(): Promise<void> {
    const startedAt = Date.now();
    try {
      this.options.onSource(await readSource(this.source, this.options.slot), startedAt);
      this.recovered("source");
    } catch (error) {
      this.failed("source", error);
    }
  }

  private async pollTarget(): Promise<void> {
    try {
      this.options.onTarget(await readTarget(this.target, this.options.stateSchema, this.options.slot, this.stores));
      this.recovered("target");
    } catch (error) {
      this.failed("target", error);
    }
  }

  /** The other direction's state and lag; a failure is part of the reading (the item says it), not a poll error of this pipeline. */
  private async pollOpposite(): Promise<void> {
    const { opposite } = this.options;
    if (!opposite || !this.options.onOpposite) return;
    try {
      this.options.onOpposite(await readOpposite(opposite, this.source, this.target));
    } catch (error) {
      if (this.stopped) return;
      this.options.onOpposite({
        slot: opposite.slot, stateSchema: opposite.stateSchema, startedAt: Date.now(), source: undefined, state: null, tables: [], resyncs: [], unresolvedConflicts: 0,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  private failed(database: "source" | "target", error: unknown): void {
    if (this.stopped) return;
    this.options.onFailure?.(database, error);
    // One warning per outage, not one per poll.
    if (!this.failing[database]) this.options.log.warn({ err: error, database }, "status poll failed; lag and status may be stale");
    this.failing[database] = true;
  }

  private recovered(database: "source" | "target"): void {
    if (this.failing[database]) this.options.log.info({ database }, "status poll recovered");
    this.failing[database] = false;
  }
}
