/**
 * The conflict log and the progress log of a bidirectional pipeline, in a state schema (the
 * destination's, next to the data, so both commit in the apply transaction). The guarded statements
 * (apply/statements.ts) INSERT into `conflicts` themselves; this class reads the log for the operator
 * (`pgferry conflicts`) and keeps `progress`: the source commit time each batch applied through,
 * which the opposite pipeline reads to tell whether a change had seen a write (apply/conflictGuard.ts).
 * Rows never hold row values: a conflict names its table, key columns and a key fingerprint.
 */
import pg from "pg";
import type { ConflictResolution } from "../config/index.js";
import type { Direction } from "../apply/conflictGuard.js";
import { quoteIdent } from "../sql/quote.js";
import type { Migration } from "./migration.js";
import { isMissingRelation } from "../sql/missingRelation.js";

/** This log's steps of the state schema (run by PostgresCheckpointStore.migrate); `$S` stands for the schema. */
export const CONFLICT_MIGRATIONS: readonly Migration[] = [
  {
    version: 4,
    // No foreign key to `pipelines`: the log outlives a `slot drop` that resets the pipeline's state.
    sql: `CREATE TABLE IF NOT EXISTS $S.conflicts (
     id bigserial PRIMARY KEY,
     pipeline text NOT NULL,
     direction text NOT NULL CHECK (direction IN ('forward', 'reverse')),
     table_name text NOT NULL,
     key_columns text NOT NULL,
     key_fingerprint text NOT NULL,
     incoming_commit_time timestamptz,
     local_commit_time timestamptz,
     resolution text NOT NULL,
     kept text NOT NULL CHECK (kept IN ('incoming', 'local', 'stopped')),
     xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
     detected_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX IF NOT EXISTS conflicts_pipeline_detected_at ON $S.conflicts (pipeline, detected_at)`,
  },
  {
    version: 5,
    sql: `CREATE TABLE IF NOT EXISTS $S.progress (
     pipeline text NOT NULL,
     commit_time timestamptz NOT NULL,
     applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     PRIMARY KEY (pipeline, commit_time))`,
  },
];

export type Kept = "incoming" | "local" | "stopped";

export interface ConflictRecord {
  /** bigserial, as text (exact at any size). */
  id: string;
  pipeline: string;
  direction: Direction;
  table: string;
  keyColumns: string;
  keyFingerprint: string;
  incomingCommitTime: Date | null;
  localCommitTime: Date | null;
  resolution: ConflictResolution;
  /** `stopped`: unresolved, the pipeline stopped on it (resolution `stop`). */
  kept: Kept;
  /** The apply transaction that met it (xid8, as text). */
  xid: string;
  detectedAt: Date;
}

export interface ConflictSummary {
  direction: Direction;
  table: string;
  resolution: ConflictResolution;
  kept: Kept;
  count: number;
  lastDetectedAt: Date;
}

export interface ConflictFilter {
  pipeline?: string;
  direction?: Direction;
  table?: string;
  since?: Date;
}

/**
 * Progress as the guard uses it: ascending, `appliedAt[i]` the earliest moment every commit up to
 * `commitTimes[i]` was applied. Commit times are exact (UTC ISO text to the microsecond): the guard
 * compares them with a local write's commit time, and at a coarser precision a commit of the same
 * millisecond before the write would count as the write applied.
 */
export interface ProgressLog {
  commitTimes: string[];
  appliedAt: Date[];
}

/**
 * When a progress entry was applied: its transaction's commit where commit times are tracked (the
 * row's clock_timestamp() is taken before COMMIT, so a change in between could not have seen it).
 */
const APPLIED = "CASE WHEN current_setting('track_commit_timestamp')::bool THEN greatest(applied_at, pg_xact_commit_timestamp(xmin)) ELSE applied_at END";

/** A timestamptz column as UTC ISO text to the microsecond (a JavaScript Date keeps milliseconds). */
const EXACT_TIME = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** A progress prune on the first call and every this many after: the table stays about an hour long. */
const PRUNE_EVERY = 500;

const RECORD_COLUMNS = `id::text, pipeline, direction, table_name, key_columns, key_fingerprint, incoming_commit_time, local_commit_time,
  resolution, kept, xid::text, detected_at`;

interface RecordRow {
  id: string; pipeline: string; direction: Direction; table_name: string; key_columns: string; key_fingerprint: string;
  incoming_commit_time: Date | null; local_commit_time: Date | null; resolution: ConflictResolution; kept: Kept; xid: string; detected_at: Date;
}

// A pool opened with raw text (sql/session.ts RAW_TEXT) hands timestamps over as text.
const date = (value: Date | string): Date => (value instanceof Date ? value : new Date(value));
const maybeDate = (value: Date | string | null): Date | null => (value === null ? null : date(value));

export class ConflictLog {
  private readonly pool: pg.Pool;
  private readonly schema: string;
  private progressWrites = 0;

  constructor(options: { pool: pg.Pool; schema: string }) {
    this.pool = options.pool;
    this.schema = quoteIdent(options.schema);
  }

  private sql(text: string): string {
    return text.replaceAll("$S", this.schema);
  }

  /** `where` over the filter's keys, its parameters numbered from $1. */
  private where(filter: ConflictFilter): { clause: string; values: unknown[] } {
    const conditions: string[] = [];
    const values: unknown[] = [];
    const add = (column: string, operator: string, value: unknown) => {
      values.push(value);
      conditions.push(`${column} ${operator} $${values.length}`);
    };
    if (filter.pipeline !== undefined) add("pipeline", "=", filter.pipeline);
    if (filter.direction !== undefined) add("direction", "=", filter.direction);
    if (filter.table !== undefined) add("table_name", "=", filter.table);
    if (filter.since !== undefined) add("detected_at", ">=", filter.since);
    return { clause: conditions.length > 0 ? `WHERE ${conditions.join(" AND ")}` : "", values };
  }

  /** The most recent conflicts, newest first; none when the state schema has no log (yet). */
  async list(options: ConflictFilter & { limit: number }): Promise<ConflictRecord[]> {
    const { clause, values } = this.where(options);
    const rows = await this.orNone<RecordRow>(
      `SELECT ${RECORD_COLUMNS} FROM $S.conflicts ${clause} ORDER BY detected_at DESC, id DESC LIMIT $${values.length + 1}`,
      [...values, options.limit],
    );
    return rows.map((r) => ({
      id: r.id, pipeline: r.pipeline, direction: r.direction, table: r.table_name, keyColumns: r.key_columns, keyFingerprint: r.key_fingerprint,
      incomingCommitTime: maybeDate(r.incoming_commit_time), localCommitTime: maybeDate(r.local_commit_time),
      resolution: r.resolution, kept: r.kept, xid: r.xid, detectedAt: date(r.detected_at),
    }));
  }

  /** Counts per direction, table, resolution and outcome (ordered by those). */
  async summary(options: Pick<ConflictFilter, "pipeline" | "since"> = {}): Promise<ConflictSummary[]> {
    const { clause, values } = this.where(options);
    const rows = await this.orNone<{ direction: Direction; table_name: string; resolution: ConflictResolution; kept: Kept; count: string; last: Date }>(
      `SELECT direction, table_name, resolution, kept, count(*)::text AS count, max(detected_at) AS last FROM $S.conflicts ${clause}
       GROUP BY direction, table_name, resolution, kept ORDER BY direction, table_name, resolution, kept`,
      values,
    );
    return rows.map((r) => ({ direction: r.direction, table: r.table_name, resolution: r.resolution, kept: r.kept, count: Number(r.count), lastDetectedAt: date(r.last) }));
  }

  /** Conflicts the pipeline stopped on (kept = 'stopped'), of one pipeline or all. */
  async unresolved(pipeline?: string): Promise<number> {
    const { clause, values } = this.where({ pipeline });
    const rows = await this.orNone<{ count: string }>(
      `SELECT count(*)::text AS count FROM $S.conflicts ${clause === "" ? "WHERE" : `${clause} AND`} kept = 'stopped'`,
      values,
    );
    return Number(rows[0]?.count ?? 0);
  }

  /**
   * Inside the apply transaction (`client` holds it): the pipeline has applied every source commit
   * up to `commitTime`. Now and then the entries older than an hour go: the opposite pipeline reads
   * only recent ones, and the one just written stays, so a quiet pipeline still says how far it got.
   */
  async recordProgress(client: pg.ClientBase, pipeline: string, commitTime: Date, commitMicros?: bigint): Promise<void> {
    // To the microsecond when the stream gave it (pgoutput's commit time, microseconds since 2000-01-01 UTC; exact as a float8 for 285 years).
    const exact = commitMicros === undefined ? "$2::timestamptz" : "timestamptz '2000-01-01 00:00:00+00' + $2::float8 * interval '1 microsecond'";
    await client.query(this.sql(`INSERT INTO $S.progress (pipeline, commit_time) VALUES ($1, ${exact}) ON CONFLICT DO NOTHING`), [pipeline, commitMicros === undefined ? commitTime : String(commitMicros)]);
    if (this.progressWrites++ % PRUNE_EVERY === 0) {
      await client.query(this.sql("DELETE FROM $S.progress WHERE pipeline = $1 AND applied_at < clock_timestamp() - interval '1 hour'"), [pipeline]);
    }
  }

  /**
   * The pipeline's progress for commits from `since` on, ascending, at most one entry per second of
   * `applied_at` (per second the entry with the largest commit time: the latest applied then). Each
   * `appliedAt` is when the entry's transaction committed where the commit timestamp is known
   * (track_commit_timestamp): the row's `applied_at` is taken before COMMIT, and a change made between
   * the two could not have seen the write. Every rounding here makes a write look applied later, never
   * earlier, so a conflict is never missed for it. `appliedAt[i]` is the earliest over entries from
   * `i` on, so both arrays ascend. On a pool, a missing table reads as no progress; on a client (maybe
   * in a transaction, which the error aborts) it throws.
   */
  async readProgress(db: pg.Pool | pg.ClientBase, pipeline: string, since: Date): Promise<ProgressLog> {
    const text = this.sql(`
      SELECT ${EXACT_TIME("commit_time")} AS commit_time, min(applied) OVER (ORDER BY commit_time DESC) AS applied_at
      FROM (SELECT DISTINCT ON (date_trunc('second', applied_at)) commit_time,
                   ${APPLIED} AS applied
            FROM $S.progress WHERE pipeline = $1 AND commit_time >= $2
            ORDER BY date_trunc('second', applied_at), commit_time DESC) AS kept
      ORDER BY commit_time`);
    let rows: { commit_time: string; applied_at: Date }[];
    try {
      rows = (await db.query<{ commit_time: string; applied_at: Date }>(text, [pipeline, since])).rows;
    } catch (error) {
      if (db instanceof pg.Pool && isMissingRelation(error)) return { commitTimes: [], appliedAt: [] };
      throw error;
    }
    return { commitTimes: rows.map((r) => r.commit_time), appliedAt: rows.map((r) => date(r.applied_at)) };
  }

  /** The newest progress entry with a commit time before `before`, if any (a quiet pipeline's last word). */
  async latestProgressBefore(pipeline: string, before: Date): Promise<{ commitTime: string; appliedAt: Date } | null> {
    // applied_at as readProgress reads it: the commit, which is later than the row's clock_timestamp().
    const rows = await this.orNone<{ commit_time: string; applied_at: Date }>(
      `SELECT ${EXACT_TIME("commit_time")} AS commit_time, ${APPLIED} AS applied_at
       FROM $S.progress WHERE pipeline = $1 AND commit_time < $2 ORDER BY commit_time DESC LIMIT 1`,
      [pipeline, before],
    );
    return rows[0] ? { commitTime: rows[0].commit_time, appliedAt: date(rows[0].applied_at) } : null;
  }

  /** When the pipeline's state was created (`pipelines.created_at`); null without one, or without the state schema. */
  async pipelineCreatedAt(pipeline: string): Promise<Date | null> {
    const rows = await this.orNone<{ created_at: Date }>("SELECT created_at FROM $S.pipelines WHERE pipeline = $1", [pipeline]);
    return rows[0] ? date(rows[0].created_at) : null;
  }

  /** A query on the pool whose missing table or schema reads as no rows. */
  private async orNone<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query<R>(this.sql(text), values)).rows;
    } catch (error) {
      if (isMissingRelation(error)) return [];
      throw error;
    }
  }
}
