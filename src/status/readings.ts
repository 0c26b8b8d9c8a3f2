/**
 * status/ — what pgferry reads of a pipeline from outside it: the source's WAL position and the
 * replication slot, the pipeline's state in its target (checkpoint, tables, resyncs, conflicts it
 * stopped on, indexes to build, the cutover's step), and the lag those give. The daemon's status
 * poller (control/statusPoller.ts) and `pgferry cutover --check` (cutover/readiness.ts) read through
 * the same functions.
 */
import type pg from "pg";
import type { OppositePipeline } from "../config/directions.js";
import { parseLsn } from "../source/lsn.js";
import { quoteIdent } from "../sql/quote.js";
import type { PipelineState, TableStatus } from "../state/checkpointStore.js";
import { cutoverStep } from "../state/cutoverSteps.js";
import { DeferredIndexStore } from "../state/deferredIndexes.js";
import { postgresStores, type StateStores } from "../state/postgresStores.js";
import type { LagTracker } from "./lagTracker.js";
import { isMissingRelation } from "../sql/missingRelation.js";

/** The source's replication slot as the status poller reads it, judged by the `slot` readiness item. */
export interface SlotReading {
  restartLsn: bigint | null;
  confirmedFlushLsn: bigint | null;
  active: boolean;
  /** `pg_replication_slots.wal_status` (`reserved`, `extended`, `unreserved`, `lost`); absent when not read. */
  walStatus?: string | null;
  /** The source's WAL position minus the slot's restart LSN: WAL the source keeps for the slot. */
  retainedBytes: number | null;
  /** The source's WAL position minus the slot's confirmed flush LSN. */
  confirmedFlushLagBytes: number | null;
}

/** A secondary index of a target table (`schema.table`) dropped for the copy and not built again yet (snapshot.deferIndexes). */
export interface IndexToBuild {
  table: string;
  index: string;
}

export interface RunningResync {
  id: string;
  table: string;
  rowsDone: number;
  rowsEstimated: number | null;
}

export interface SourceReading {
  walLsn: bigint;
  /** null when the slot does not exist (not created yet, or dropped). */
  slot: SlotReading | null;
}

export interface TargetReading {
  /** null before the first run created the pipeline's state. */
  state: (PipelineState & { createdAt: Date }) | null;
  tables: readonly TableStatus[];
  /** The pipeline's running resyncs (absent: not read). */
  resyncs?: readonly RunningResync[];
  /** Conflicts the pipeline stopped on and has not applied past since (absent: not read). */
  unresolvedConflicts?: number;
  /** Secondary indexes of its target tables dropped for the copy and not built again yet (absent: not read). */
  indexesToBuild?: readonly IndexToBuild[];
  /** Where `pgferry cutover` stands (state/cutoverSteps.ts cutoverStep): 0 none, 1..4 the step, 5 done. */
  cutoverStep?: number;
}

/** The other direction of a bidirectional config, as this pipeline's poller reads it (readOpposite). */
export interface OppositeReading extends TargetReading {
  slot: string;
  stateSchema: string;
  /** When the read of its source began. */
  startedAt: number;
  /** Its source's WAL position and its slot; undefined when the read failed. */
  source: SourceReading | undefined;
  /** Why it could not be read. */
  error?: string;
}

/** Feeds a lag tracker with one reading of a pipeline's source (begun at `startedAt`) and its state. */
export function trackLag(tracker: LagTracker, source: SourceReading | undefined, startedAt: number, state: TargetReading["state"]): void {
  if (source) {
    tracker.sourcePosition(source.walLsn, startedAt);
    if (source.slot?.confirmedFlushLsn != null) tracker.appliedPosition(source.slot.confirmedFlushLsn);
  }
  if (state) {
    tracker.pipelineCreated(state.createdAt);
    tracker.appliedPosition(state.checkpoint.endLsn, state.checkpoint.commitTime);
  }
}

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
