/**
 * The record of the target's secondary indexes dropped for the initial copy (snapshot.deferIndexes,
 * pipeline/indexDeferral.ts): one row per index, inserted in the same target transaction as its
 * DROP INDEX and deleted in the same one as its CREATE INDEX (DDL is transactional), so at every
 * moment an index is either in the catalog or here, never in both and never in neither.
 *
 * Keyed by the index (schema and name, unique in a database), not by the pipeline: no foreign key to
 * `pipelines`, so a `slot drop` (which forgets the pipeline) or a renamed slot never loses a
 * definition. `pipeline` says which pipeline dropped it.
 */
import type pg from "pg";
import { quoteIdent } from "../sql/quote.js";
import type { Migration } from "./migration.js";
import { isMissingRelation } from "../sql/missingRelation.js";

/** This record's step of the state schema (run by PostgresCheckpointStore.migrate); `$S` stands for the schema. */
export const DEFERRED_INDEX_MIGRATIONS: readonly Migration[] = [
  {
    version: 8,
    sql: `CREATE TABLE IF NOT EXISTS $S.deferred_indexes (
     table_schema text NOT NULL,
     index_name text NOT NULL,
     table_name text NOT NULL,
     pipeline text NOT NULL,
     definition text NOT NULL,
     tablespace text,
     restore jsonb NOT NULL DEFAULT '[]',
     method text NOT NULL,
     dropped_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     PRIMARY KEY (table_schema, index_name))`,
  },
];

/** One dropped index: enough to create it again exactly. */
export interface DeferredIndex {
  schema: string;
  table: string;
  name: string;
  /** pg_get_indexdef under an empty search_path: every name outside pg_catalog qualified. */
  definition: string;
  /** Its tablespace; null: the database's default. */
  tablespace: string | null;
  /** Statements to run after the CREATE INDEX (statistics targets, comment, CLUSTER ON). */
  restore: string[];
  /** The access method (btree, hnsw, gin ...), for logs. */
  method: string;
  pipeline: string;
}

interface Row {
  table_schema: string; table_name: string; index_name: string; definition: string; tablespace: string | null; restore: string[] | string; method: string; pipeline: string;
}

// A pool opened with raw text (sql/session.ts RAW_TEXT) hands jsonb over as text.
const json = (value: string[] | string): string[] => (typeof value === "string" ? (JSON.parse(value) as string[]) : value);

export class DeferredIndexStore {
  private readonly schema: string;
  readonly pipeline: string;

  constructor(options: { schema: string; pipeline: string }) {
    this.schema = quoteIdent(options.schema);
    this.pipeline = options.pipeline;
  }

  private sql(text: string): string {
    return text.replaceAll("$S", this.schema);
  }

  /** Inside the transaction that drops it (`client` holds it). A second record of one index replaces the first. */
  async record(client: pg.ClientBase, index: Omit<DeferredIndex, "pipeline">): Promise<void> {
    await client.query(
      this.sql(`INSERT INTO $S.deferred_indexes (table_schema, index_name, table_name, pipeline, definition, tablespace, restore, method)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (table_schema, index_name) DO UPDATE SET table_name = EXCLUDED.table_name, pipeline = EXCLUDED.pipeline,
                  definition = EXCLUDED.definition, tablespace = EXCLUDED.tablespace, restore = EXCLUDED.restore, method = EXCLUDED.method,
                  dropped_at = EXCLUDED.dropped_at`),
      [index.schema, index.name, index.table, this.pipeline, index.definition, index.tablespace, JSON.stringify(index.restore), index.method],
    );
  }

  /** Locks the record for the transaction that creates the index again; false when it is gone (built meanwhile). */
  async claim(client: pg.ClientBase, index: { schema: string; name: string }): Promise<boolean> {
    const { rowCount } = await client.query(this.sql("SELECT 1 FROM $S.deferred_indexes WHERE table_schema = $1 AND index_name = $2 FOR UPDATE"), [index.schema, index.name]);
    return (rowCount ?? 0) > 0;
  }

  /** Inside the transaction that creates it again. */
  async forget(client: pg.ClientBase, index: { schema: string; name: string }): Promise<void> {
    await client.query(this.sql("DELETE FROM $S.deferred_indexes WHERE table_schema = $1 AND index_name = $2"), [index.schema, index.name]);
  }

  /** Every recorded index (of any pipeline), by table and name; none before the table exists. */
  async list(db: Pick<pg.ClientBase, "query">): Promise<DeferredIndex[]> {
    try {
      const { rows } = await db.query<Row>(
        this.sql("SELECT table_schema, table_name, index_name, definition, tablespace, restore, method, pipeline FROM $S.deferred_indexes ORDER BY table_schema, table_name, index_name"),
      );
      return rows.map((r) => ({
        schema: r.table_schema, table: r.table_name, name: r.index_name, definition: r.definition, tablespace: r.tablespace,
        restore: json(r.restore), method: r.method, pipeline: r.pipeline,
      }));
    } catch (error) {
      if (isMissingRelation(error)) return [];
      throw error;
    }
  }
}
