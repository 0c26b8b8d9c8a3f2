/**
 * The ResyncStore in the target's state schema (table `resyncs`, created by the state schema's
 * migration, which the checkpoint store runs: a record belongs to a pipeline row). A chunk's progress
 * is an UPDATE that the applier runs inside the apply transaction carrying that chunk's rows.
 */
import { randomUUID } from "node:crypto";
import type pg from "pg";
import type { Statement } from "../apply/types.js";
import { quoteIdent } from "../sql/quote.js";
import type { Migration } from "./migration.js";
import type { ResyncRecord, ResyncState, ResyncStore } from "./resyncStore.js";

/** This store's steps of the state schema (see PostgresCheckpointStore.migrate); `$S` stands for the schema. */
export const RESYNC_MIGRATIONS: readonly Migration[] = [
  {
    version: 3,
    // Progress commits with each chunk's rows; a record goes with its pipeline's state.
    sql: `CREATE TABLE IF NOT EXISTS $S.resyncs (
     id text PRIMARY KEY,
     pipeline text NOT NULL REFERENCES $S.pipelines ON DELETE CASCADE,
     source_table text NOT NULL,
     state text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
     last_key text[],
     rows_done bigint NOT NULL DEFAULT 0,
     chunks_done int NOT NULL DEFAULT 0,
     rows_estimated bigint,
     started_at timestamptz NOT NULL DEFAULT now(),
     finished_at timestamptz,
     error text)`,
  },
];

interface Row {
  id: string; source_table: string; state: ResyncState; last_key: string[] | null; rows_done: string; chunks_done: number;
  rows_estimated: string | null; started_at: Date; finished_at: Date | null; error: string | null;
}

const COLUMNS = "id, source_table, state, last_key, rows_done::text, chunks_done, rows_estimated::text, started_at, finished_at, error";

function record(r: Row): ResyncRecord {
  return {
    id: r.id, table: r.source_table, state: r.state, lastKey: r.last_key, rowsDone: Number(r.rows_done), chunksDone: r.chunks_done,
    rowsEstimated: r.rows_estimated === null ? null : Number(r.rows_estimated), startedAt: r.started_at, finishedAt: r.finished_at, error: r.error,
  };
}

export class PostgresResyncStore implements ResyncStore {
  private readonly table: string;

  constructor(private readonly options: { pool: pg.Pool; schema: string; pipeline: string }) {
    this.table = `${quoteIdent(options.schema)}.resyncs`;
  }

  async create(sourceTable: string, rowsEstimated: number | null): Promise<ResyncRecord> {
    const { rows } = await this.options.pool.query<Row>(
      `INSERT INTO ${this.table} (id, pipeline, source_table, state, rows_estimated) VALUES ($1, $2, $3, 'running', $4) RETURNING ${COLUMNS}`,
      [randomUUID(), this.options.pipeline, sourceTable, rowsEstimated],
    );
    return record(rows[0]!);
  }

  async get(id: string): Promise<ResyncRecord | undefined> {
    const { rows } = await this.options.pool.query<Row>(`SELECT ${COLUMNS} FROM ${this.table} WHERE id::text = $1 AND pipeline = $2`, [id, this.options.pipeline]);
    return rows[0] ? record(rows[0]) : undefined;
  }

  async running(): Promise<ResyncRecord[]> {
    const { rows } = await this.options.pool.query<Row>(`SELECT ${COLUMNS} FROM ${this.table} WHERE state = 'running' AND pipeline = $1 ORDER BY started_at`, [this.options.pipeline]);
    return rows.map(record);
  }

  async fail(id: string, error: string): Promise<void> {
    await this.options.pool.query(`UPDATE ${this.table} SET state = 'failed', error = $2, finished_at = now() WHERE id = $1`, [id, error]);
  }

  /** The progress of one applied chunk, as a statement for the apply transaction that carries its rows. */
  progressStatement(id: string, lastKey: string[] | null, rows: number, done: boolean): Statement {
    return {
      name: "pgferry_resync_progress",
      text: `UPDATE ${this.table} SET last_key = coalesce($2, last_key), rows_done = rows_done + $3, chunks_done = chunks_done + 1,
                    state = CASE WHEN $4 THEN 'done' ELSE state END, finished_at = CASE WHEN $4 THEN now() END WHERE id = $1`,
      values: [id, lastKey, rows, done],
      rows: 0,
      table: this.table,
      op: "update",
    };
  }
}
