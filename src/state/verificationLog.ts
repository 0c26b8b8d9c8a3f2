/**
 * What `pgferry verify` found, one row per run and direction, in that direction's state schema (the
 * forward's in the target, the reverse's in the source: where each direction keeps its state), so
 * that `pgferry cutover --check --verify recent` can gate a cutover on a recent, equal comparison
 * without running it again. Counts only, never keys or values.
 */
import pg from "pg";
import type { Direction } from "../config/directions.js";
import { quoteIdent } from "../sql/quote.js";
import type { Migration } from "./migration.js";
import { isMissingRelation } from "../sql/missingRelation.js";

/** This log's step of the state schema (run by PostgresCheckpointStore.migrate); `$S` stands for the schema. */
export const VERIFICATION_MIGRATIONS: readonly Migration[] = [
  {
    version: 6,
    // No foreign key to `pipelines`: `pgferry verify` runs whether or not the pipeline has state.
    sql: `CREATE TABLE IF NOT EXISTS $S.verifications (
     pipeline text NOT NULL,
     direction text NOT NULL CHECK (direction IN ('forward', 'reverse')),
     finished_at timestamptz NOT NULL DEFAULT now(),
     equal boolean NOT NULL,
     tables int NOT NULL,
     different int NOT NULL);
    CREATE INDEX IF NOT EXISTS verifications_pipeline_finished_at ON $S.verifications (pipeline, direction, finished_at)`,
  },
];

export interface VerificationResult {
  pipeline: string;
  direction: Direction;
  /** Every compared table equal. */
  equal: boolean;
  /** Tables compared (skipped ones not counted). */
  tables: number;
  different: number;
}

export interface VerificationRecord extends VerificationResult {
  finishedAt: Date;
  /** Seconds since it finished, by the database's clock (the one that wrote `finished_at`). */
  ageSeconds: number;
}

export class VerificationLog {
  private readonly table: string;

  constructor(private readonly options: { pool: pg.Pool; schema: string }) {
    this.table = `${quoteIdent(options.schema)}.verifications`;
  }

  /** Needs the state schema at version 6 or later (PostgresCheckpointStore.migrate). */
  async record(result: VerificationResult): Promise<void> {
    await this.options.pool.query(`INSERT INTO ${this.table} (pipeline, direction, equal, tables, different) VALUES ($1, $2, $3, $4, $5)`, [
      result.pipeline, result.direction, result.equal, result.tables, result.different,
    ]);
  }

  /** The latest result of the pipeline's `direction`; null when none is recorded (or there is no log yet). */
  async latest(pipeline: string, direction: Direction): Promise<VerificationRecord | null> {
    let rows: { finished_at: Date | string; equal: boolean; tables: number; different: number; age: number }[];
    try {
      ({ rows } = await this.options.pool.query(
        `SELECT finished_at, equal, tables, different, extract(epoch FROM now() - finished_at)::float8 AS age
         FROM ${this.table} WHERE pipeline = $1 AND direction = $2 ORDER BY finished_at DESC LIMIT 1`,
        [pipeline, direction],
      ));
    } catch (error) {
      if (isMissingRelation(error)) return null;
      throw error;
    }
    const row = rows[0];
    if (!row) return null;
    // A pool opened with raw text (sql/session.ts) hands timestamps and numbers over as text.
    return {
      pipeline, direction, equal: row.equal === true || String(row.equal) === "t", tables: Number(row.tables), different: Number(row.different),
      finishedAt: row.finished_at instanceof Date ? row.finished_at : new Date(row.finished_at), ageSeconds: Math.max(0, Number(row.age)),
    };
  }
}
