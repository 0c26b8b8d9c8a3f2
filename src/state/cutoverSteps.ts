/**
 * The record of `pgferry cutover` and `pgferry rollback` (cutover/procedure.ts): one row per step of
 * each operation, in the forward pipeline's state schema on the new database. A step is `running`,
 * `done`, `failed`, or `restored` (a freeze undone after a later step failed). A re-run skips the
 * steps done in a row from the first and runs the rest; the rows say what each step did (`detail`:
 * the roles it froze and their previous settings, the positions it waited for), so a failure can be
 * undone by another process than the one that froze.
 */
import type pg from "pg";
import { quoteIdent } from "../sql/quote.js";
import type { Migration } from "./migration.js";
import { isMissingRelation } from "../sql/missingRelation.js";

/** This record's step of the state schema (run by PostgresCheckpointStore.migrate); `$S` stands for the schema. */
export const CUTOVER_MIGRATIONS: readonly Migration[] = [
  {
    version: 7,
    // No foreign key to `pipelines`: the record of a cutover outlives a `slot drop`.
    sql: `CREATE TABLE IF NOT EXISTS $S.cutover_steps (
     pipeline text NOT NULL,
     operation text NOT NULL CHECK (operation IN ('cutover', 'rollback')),
     step int NOT NULL,
     name text NOT NULL,
     state text NOT NULL CHECK (state IN ('running', 'done', 'failed', 'restored')),
     started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     finished_at timestamptz,
     detail jsonb NOT NULL DEFAULT '{}',
     PRIMARY KEY (pipeline, operation, step))`,
  },
];

export type CutoverOperation = "cutover" | "rollback";
export type CutoverStepState = "running" | "done" | "failed" | "restored";

/** The steps of each operation; the metric reads one past the last as "done". */
export const CUTOVER_STEP_COUNT = 4;

export interface CutoverStepRecord {
  operation: CutoverOperation;
  step: number;
  name: string;
  state: CutoverStepState;
  startedAt: Date;
  finishedAt: Date | null;
  detail: Record<string, unknown>;
}

interface StepRow {
  operation: CutoverOperation; step: number; name: string; state: CutoverStepState; started_at: Date | string; finished_at: Date | string | null;
  detail: Record<string, unknown> | string;
}

// A pool opened with raw text (sql/session.ts RAW_TEXT) hands timestamps and jsonb over as text.
const date = (value: Date | string): Date => (value instanceof Date ? value : new Date(value));
const json = (value: Record<string, unknown> | string): Record<string, unknown> => (typeof value === "string" ? (JSON.parse(value) as Record<string, unknown>) : value);

export class CutoverStepStore {
  private readonly pool: pg.Pool;
  private readonly schema: string;
  readonly pipeline: string;

  constructor(options: { pool: pg.Pool; schema: string; pipeline: string }) {
    this.pool = options.pool;
    this.schema = quoteIdent(options.schema);
    this.pipeline = options.pipeline;
  }

  private sql(text: string): string {
    return text.replaceAll("$S", this.schema);
  }

  /** The steps recorded for `operation` (or both), in step order; none before the table exists. */
  async list(operation?: CutoverOperation): Promise<CutoverStepRecord[]> {
    try {
      const { rows } = await this.pool.query<StepRow>(
        this.sql(`SELECT operation, step, name, state, started_at, finished_at, detail FROM $S.cutover_steps
                  WHERE pipeline = $1 AND ($2::text IS NULL OR operation = $2) ORDER BY operation, step`),
        [this.pipeline, operation ?? null],
      );
      return rows.map((r) => ({
        operation: r.operation, step: r.step, name: r.name, state: r.state, startedAt: date(r.started_at),
        finishedAt: r.finished_at === null ? null : date(r.finished_at), detail: json(r.detail),
      }));
    } catch (error) {
      if (isMissingRelation(error)) return [];
      throw error;
    }
  }

  /** Marks a step running (again): a retried step keeps the detail it recorded before (but its error), merged with `detail`. */
  async start(operation: CutoverOperation, step: number, name: string, detail: Record<string, unknown> = {}): Promise<void> {
    await this.pool.query(
      this.sql(`INSERT INTO $S.cutover_steps (pipeline, operation, step, name, state, detail) VALUES ($1, $2, $3, $4, 'running', $5)
                ON CONFLICT (pipeline, operation, step) DO UPDATE
                SET name = EXCLUDED.name, state = 'running', started_at = clock_timestamp(), finished_at = NULL,
                    detail = (cutover_steps.detail - 'error' - 'hint') || EXCLUDED.detail`),
      [this.pipeline, operation, step, name, JSON.stringify(detail)],
    );
  }

  /** Merges `detail` into the step's record without changing its state (what a running step has done so far). */
  async note(operation: CutoverOperation, step: number, detail: Record<string, unknown>): Promise<void> {
    await this.pool.query(
      this.sql("UPDATE $S.cutover_steps SET detail = detail || $4 WHERE pipeline = $1 AND operation = $2 AND step = $3"),
      [this.pipeline, operation, step, JSON.stringify(detail)],
    );
  }

  /** Ends a step (`done` or `failed`); `detail` is merged into what it recorded. */
  async finish(operation: CutoverOperation, step: number, state: "done" | "failed", detail: Record<string, unknown> = {}): Promise<void> {
    await this.pool.query(
      this.sql(`UPDATE $S.cutover_steps SET state = $4, finished_at = clock_timestamp(), detail = detail || $5
                WHERE pipeline = $1 AND operation = $2 AND step = $3`),
      [this.pipeline, operation, step, state, JSON.stringify(detail)],
    );
  }

  /** Marks a freeze undone (its roles' settings restored); when it ended stays as it was. */
  async markRestored(operation: CutoverOperation, step: number, detail: Record<string, unknown> = {}): Promise<void> {
    await this.pool.query(
      this.sql("UPDATE $S.cutover_steps SET state = 'restored', detail = detail || $4 WHERE pipeline = $1 AND operation = $2 AND step = $3"),
      [this.pipeline, operation, step, JSON.stringify(detail)],
    );
  }

  /** Forgets an operation's steps: a new round of it starts (a cutover after a rollback, or the other way round). */
  async clear(operation: CutoverOperation): Promise<void> {
    await this.pool.query(this.sql("DELETE FROM $S.cutover_steps WHERE pipeline = $1 AND operation = $2"), [this.pipeline, operation]);
  }
}

/**
 * Where an operation stands, as the gauge `pgferry_cutover_step` shows it: 0 when none is recorded
 * (or the other operation has run since it ended, which undid it), 1..4 the step it is at (running, or
 * the one that failed, until a re-run), 5 when done.
 */
export async function cutoverStep(pool: pg.Pool, schema: string, pipeline: string, operation: CutoverOperation = "cutover"): Promise<number> {
  const records = await new CutoverStepStore({ pool, schema, pipeline }).list();
  const own = records.filter((r) => r.operation === operation);
  if (own.length === 0) return 0;
  const last = Math.max(...own.map((r) => (r.finishedAt ?? r.startedAt).getTime()));
  if (records.some((r) => r.operation !== operation && r.startedAt.getTime() > last)) return 0;
  // A step running or failed is where it is; a freeze put back after a failure does not move it back to 1.
  const at = own.find((r) => r.state === "running") ?? own.find((r) => r.state === "failed");
  if (at) return at.step;
  for (let step = 1; step <= CUTOVER_STEP_COUNT; step += 1) {
    if (own.find((r) => r.step === step)?.state !== "done") return step;
  }
  return CUTOVER_STEP_COUNT + 1;
}
