/**
 * Per-table resync records in the state schema. A chunk's progress (last source key, rows) is
 * written by a statement that runs inside the apply transaction carrying that chunk's rows, so a
 * restart resumes after the last chunk that really landed.
 */
import { randomUUID } from "node:crypto";
import type pg from "pg";
import type { Statement } from "../apply/types.js";
import { quoteIdent } from "../sql/quote.js";

export type ResyncState = "running" | "done" | "failed";

export interface ResyncRecord {
  id: string;
  table: string;
  state: ResyncState;
  lastKey: string[] | null;
  rowsDone: number;
  chunksDone: number;
  rowsEstimated: number | null;
  startedAt: Date;
  finishedAt: Date | null;
  error: string | null;
}

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

export class ResyncStore {
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
