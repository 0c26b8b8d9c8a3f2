/**
 * The CheckpointStore in the target (schema `_pgferry` by default), so the checkpoint commits
 * atomically with the data. One row in `pipelines` per replication slot, one in `tables` per source
 * table. It owns the state schema's migrations: its own tables', then the resync store's (whose
 * records reference the pipeline row, and go with it on `reset`), then the conflict and progress
 * logs' (conflictLog.ts), then the verify results' (verificationLog.ts), then the cutover steps'
 * (cutoverSteps.ts), then the record of indexes deferred by the snapshot (deferredIndexes.ts).
 */
import pg from "pg";
import { withPooledClient } from "../sql/pools.js";
import { PgferryError } from "../errors.js";
import { formatLsn, parseLsn } from "../source/lsn.js";
import { quoteIdent } from "../sql/quote.js";
import type { CheckpointStore, PipelineState, PipelineSummary, TableState, TableStatus } from "./checkpointStore.js";
import type { Checkpoint } from "../plan/changes.js";
import { RESYNC_MIGRATIONS } from "./postgresResyncStore.js";
import { CONFLICT_MIGRATIONS } from "./conflictLog.js";
import { VERIFICATION_MIGRATIONS } from "./verificationLog.js";
import { CUTOVER_MIGRATIONS } from "./cutoverSteps.js";
import { DEFERRED_INDEX_MIGRATIONS } from "./deferredIndexes.js";
import type { Migration } from "./migration.js";


const CHECKPOINT_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `CREATE TABLE IF NOT EXISTS $S.pipelines (
     pipeline text PRIMARY KEY,
     consistent_point pg_lsn NOT NULL,
     commit_lsn pg_lsn NOT NULL DEFAULT '0/0',
     end_lsn pg_lsn NOT NULL DEFAULT '0/0',
     commit_time timestamptz,
     created_at timestamptz NOT NULL DEFAULT now(),
     updated_at timestamptz NOT NULL DEFAULT now())`,
  },
  {
    version: 2,
    sql: `CREATE TABLE IF NOT EXISTS $S.tables (
     pipeline text NOT NULL REFERENCES $S.pipelines ON DELETE CASCADE,
     source_table text NOT NULL,
     state text NOT NULL CHECK (state IN ('pending', 'copying', 'ready', 'errored')),
     sync_lsn pg_lsn,
     rows_copied bigint NOT NULL DEFAULT 0,
     rows_estimated bigint,
     started_at timestamptz,
     finished_at timestamptz,
     error text,
     updated_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (pipeline, source_table))`,
  },
];

/** The state schema's steps in version order, checked to run 1, 2, … without a gap or a repeat. */
function stateSchemaMigrations(): string[] {
  const steps = [...CHECKPOINT_MIGRATIONS, ...RESYNC_MIGRATIONS, ...CONFLICT_MIGRATIONS, ...VERIFICATION_MIGRATIONS, ...CUTOVER_MIGRATIONS, ...DEFERRED_INDEX_MIGRATIONS].sort((a, b) => a.version - b.version);
  steps.forEach((step, i) => {
    if (step.version !== i + 1) throw new Error(`state schema migrations: version ${i + 1} expected, found ${step.version}`);
  });
  return steps.map((step) => step.sql);
}

interface TableRow {
  source_table: string; state: TableState; sync_lsn: string | null; rows_copied: string; rows_estimated: string | null;
  started_at: Date | null; finished_at: Date | null; error: string | null;
}

export class PostgresCheckpointStore implements CheckpointStore {
  private readonly schema: string;
  private readonly pool: pg.Pool;
  readonly pipeline: string;

  constructor(options: { pool: pg.Pool; schema: string; pipeline: string }) {
    this.pool = options.pool;
    this.schema = quoteIdent(options.schema);
    this.pipeline = options.pipeline;
  }

  private sql(text: string): string {
    return text.replaceAll("$S", this.schema);
  }

  /** Creates or upgrades the state schema; concurrent callers serialise on an advisory lock. */
  async migrate(): Promise<void> {
    const migrations = stateSchemaMigrations();
    await this.transaction(async (client) => {
      await client.query("SELECT pg_advisory_xact_lock(hashtext('pgferry:migrate'))");
      // CREATE SCHEMA checks CREATE on the database even when the schema exists: a schema created for
      // pgferry's role beforehand (docs/privileges.sql) must not need that right.
      const { rows: schema } = await client.query<{ found: boolean }>("SELECT to_regnamespace($1) IS NOT NULL AS found", [this.schema]);
      if (!schema[0]?.found) await client.query(this.sql("CREATE SCHEMA IF NOT EXISTS $S"));
      await client.query(this.sql("CREATE TABLE IF NOT EXISTS $S.schema_version (version int NOT NULL)"));
      const { rows } = await client.query<{ version: number }>(this.sql("SELECT coalesce(max(version), 0) AS version FROM $S.schema_version"));
      const current = rows[0]?.version ?? 0;
      for (let v = current; v < migrations.length; v += 1) await client.query(this.sql(migrations[v] ?? ""));
      if (current < migrations.length) {
        await client.query(this.sql("DELETE FROM $S.schema_version"));
        await client.query(this.sql("INSERT INTO $S.schema_version VALUES ($1)"), [migrations.length]);
      }
    });
  }

  private async transaction(work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    await withPooledClient(this.pool, async (client) => {
      try {
        await client.query("BEGIN");
        await work(client);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw error;
      }
    });
  }

  async load(): Promise<PipelineState | null> {
    const state = await this.summary();
    return state && { consistentPoint: state.consistentPoint, checkpoint: state.checkpoint };
  }

  /** Whether the state schema has been created (by a first `run`); reads need it. */
  async exists(): Promise<boolean> {
    const { rows } = await this.pool.query<{ found: boolean }>("SELECT to_regclass($1) IS NOT NULL AS found", [`${this.schema}.pipelines`]);
    return rows[0]?.found ?? false;
  }

  /** The pipeline's state with when it was created and last checkpointed, for status and lag reports. */
  async summary(): Promise<PipelineSummary | null> {
    const { rows } = await this.pool.query<{ consistent_point: string; commit_lsn: string; end_lsn: string; commit_time: Date | null; created_at: Date; updated_at: Date }>(
      this.sql("SELECT consistent_point::text, commit_lsn::text, end_lsn::text, commit_time, created_at, updated_at FROM $S.pipelines WHERE pipeline = $1"),
      [this.pipeline],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      consistentPoint: parseLsn(row.consistent_point),
      checkpoint: { commitLsn: parseLsn(row.commit_lsn), endLsn: parseLsn(row.end_lsn), commitTime: row.commit_time },
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  /** Records a new pipeline whose slot starts at `consistentPoint`, with every table pending. */
  async create(consistentPoint: bigint, tables: readonly string[]): Promise<void> {
    await this.transaction(async (client) => {
      await client.query(
        this.sql("INSERT INTO $S.pipelines (pipeline, consistent_point, end_lsn) VALUES ($1, $2, $2)"),
        [this.pipeline, formatLsn(consistentPoint)],
      );
      await this.insertTables(client, tables);
    });
  }

  /** Adds tables that are new in the config as pending (existing rows are kept). */
  async addTables(tables: readonly string[]): Promise<void> {
    await this.insertTables(this.pool, tables);
  }

  private async insertTables(db: pg.ClientBase | pg.Pool, tables: readonly string[]): Promise<void> {
    await db.query(
      this.sql(`INSERT INTO $S.tables (pipeline, source_table, state) SELECT $1, t, 'pending' FROM unnest($2::text[]) AS t
                ON CONFLICT DO NOTHING`),
      [this.pipeline, tables],
    );
  }

  async tables(): Promise<TableStatus[]> {
    const { rows } = await this.pool.query<TableRow>(
      this.sql(`SELECT source_table, state, sync_lsn::text, rows_copied::text, rows_estimated::text, started_at, finished_at, error
                FROM $S.tables WHERE pipeline = $1 ORDER BY source_table`),
      [this.pipeline],
    );
    return rows.map((r) => ({
      table: r.source_table,
      state: r.state,
      syncLsn: r.sync_lsn === null ? null : parseLsn(r.sync_lsn),
      rowsCopied: Number(r.rows_copied),
      rowsEstimated: r.rows_estimated === null ? null : Number(r.rows_estimated),
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      error: r.error,
    }));
  }

  async startCopy(table: string, rowsEstimated: number | null): Promise<void> {
    await this.updateTable(table, "state = 'copying', rows_copied = 0, rows_estimated = $3, started_at = now(), finished_at = NULL, error = NULL", [rowsEstimated]);
  }

  /** Inside a chunk's copy transaction (`client` holds it), so the count commits with the rows. */
  async addCopiedRows(client: pg.ClientBase, table: string, rows: number): Promise<void> {
    await client.query(this.sql("UPDATE $S.tables SET rows_copied = rows_copied + $3, updated_at = now() WHERE pipeline = $1 AND source_table = $2"), [this.pipeline, table, rows]);
  }

  async finishCopy(table: string, syncLsn: bigint): Promise<void> {
    await this.updateTable(table, "state = 'ready', sync_lsn = $3, finished_at = now()", [formatLsn(syncLsn)]);
  }

  async failTable(table: string, error: string): Promise<void> {
    await this.updateTable(table, "state = 'errored', error = $3", [error]);
  }

  /** Inside the apply transaction (`client` holds it): the data and the checkpoint commit together (docs/design.md, rule 2). */
  async writeCheckpoint(client: pg.ClientBase, checkpoint: Checkpoint): Promise<void> {
    const result = await client.query({
      name: "pgferry_checkpoint",
      text: this.sql("UPDATE $S.pipelines SET commit_lsn = $2, end_lsn = $3, commit_time = $4, updated_at = now() WHERE pipeline = $1"),
      values: [this.pipeline, formatLsn(checkpoint.commitLsn), formatLsn(checkpoint.endLsn), checkpoint.commitTime],
    });
    if (result.rowCount !== 1) throw new PgferryError("state", `pipeline ${this.pipeline} has no state row in ${this.schema}`);
  }

  /** Forgets the pipeline (after `slot drop`), so the next run starts with a fresh snapshot. */
  async reset(): Promise<void> {
    await this.pool.query(this.sql("DELETE FROM $S.pipelines WHERE pipeline = $1"), [this.pipeline]);
  }

  private async updateTable(table: string, set: string, values: unknown[]): Promise<void> {
    await this.pool.query(this.sql(`UPDATE $S.tables SET ${set}, updated_at = now() WHERE pipeline = $1 AND source_table = $2`), [this.pipeline, table, ...values]);
  }
}
