/**
 * What a target table's catalog says of its indexes, and which of them the initial copy may build
 * after its rows are in (snapshot.deferIndexes, docs/design.md "Secondary indexes built after the
 * copy"). A sorted build once is far cheaper than maintaining an index row by row, and an HNSW
 * graph built in memory far cheaper than one grown insert by insert; pgcopydb always does this.
 *
 * Deferrable: a plain, valid index of a plain table that backs no constraint. A unique index stays,
 * whatever backs it: the stream's upserts (ON CONFLICT) and the replica identity need it, and a
 * row copied twice must fail at once rather than when the index is built. The pure parts
 * (`keepReason`, `restoreStatements`) are unit-tested; `readIndexes` is the catalog query.
 */
import type pg from "pg";
import { qualifiedName, quoteIdent, quoteLiteral } from "../sql/quote.js";

export type Queryable = Pick<pg.ClientBase, "query">;

/** One index of a table, as the catalog has it. `definition` is pg_get_indexdef under an empty search_path (every name qualified). */
export interface IndexRow {
  name: string;
  definition: string;
  /** The index's own tablespace; null: the database's default. */
  tablespace: string | null;
  method: string;
  unique: boolean;
  primary: boolean;
  exclusion: boolean;
  replicaIdentity: boolean;
  /** A constraint (primary key, unique, exclusion, or a foreign key of another table) uses it. */
  constraint: boolean;
  /** Valid, ready and live: not a half-built CREATE INDEX CONCURRENTLY. */
  valid: boolean;
  /** A partitioned index, or a partition of one: recreating it would not give back the same tree of names. */
  partitioned: boolean;
  clustered: boolean;
  comment: string | null;
  /** Per index column (1-based) statistics targets set by ALTER INDEX ... SET STATISTICS. */
  statistics: { column: number; target: number }[];
}

/** The table the indexes belong to: whether pgferry's role may drop and create them at all. */
export interface IndexedTable {
  /** `r` a plain table, `p` partitioned (its indexes are kept); null when the table does not exist. */
  kind: string | null;
  /** pgferry's role has its owner's privileges (DROP INDEX and CREATE INDEX need them). */
  owned: boolean;
  owner: string | null;
  indexes: IndexRow[];
}

export type KeepReason = "primary key" | "unique" | "exclusion" | "replica identity" | "constraint" | "invalid" | "partitioned";

/** Why an index stays while the table is copied; null when it is deferrable. */
export function keepReason(index: IndexRow): KeepReason | null {
  if (index.primary) return "primary key";
  if (index.unique) return "unique";
  if (index.exclusion) return "exclusion";
  if (index.replicaIdentity) return "replica identity";
  if (index.constraint) return "constraint";
  if (!index.valid) return "invalid";
  if (index.partitioned) return "partitioned";
  return null;
}

/** The indexes of `table` to defer; none when the table is not a plain table. */
export function deferrableIndexes(table: IndexedTable): IndexRow[] {
  if (table.kind !== "r") return [];
  return table.indexes.filter((index) => keepReason(index) === null);
}

/**
 * What must run after `CREATE INDEX <definition>` to give the index back all it had that the
 * definition does not say: per-column statistics targets, its comment, CLUSTER ON. Not kept: its
 * usage statistics (pg_stat_user_indexes starts over) and security labels.
 */
export function restoreStatements(table: { schema: string; name: string }, index: IndexRow): string[] {
  const name = qualifiedName({ schema: table.schema, name: index.name });
  const statements = index.statistics.map((s) => `ALTER INDEX ${name} ALTER COLUMN ${s.column} SET STATISTICS ${s.target}`);
  if (index.comment !== null) statements.push(`COMMENT ON INDEX ${name} IS ${quoteLiteral(index.comment)}`);
  if (index.clustered) statements.push(`ALTER TABLE ${qualifiedName(table)} CLUSTER ON ${quoteIdent(index.name)}`);
  return statements;
}

/**
 * Run with `search_path` empty (SET LOCAL search_path = ''), so pg_get_indexdef qualifies every
 * operator class, function and type outside pg_catalog and the definition means the same wherever it
 * is replayed. `attstattarget >= 0` is a target set by hand (-1 before PostgreSQL 17, NULL since).
 */
const INDEXES_SQL = `
SELECT t.relkind::text AS kind, pg_has_role(t.relowner, 'USAGE') AS owned, pg_get_userbyid(t.relowner) AS owner,
       ic.relname AS name, pg_get_indexdef(i.indexrelid) AS definition, ts.spcname AS tablespace, am.amname AS method,
       i.indisunique AS unique, i.indisprimary AS primary, i.indisexclusion AS exclusion, i.indisreplident AS replica_identity,
       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid) AS constraint,
       (i.indisvalid AND i.indisready AND i.indislive) AS valid,
       (ic.relkind = 'I' OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid)) AS partitioned,
       i.indisclustered AS clustered, pg_catalog.obj_description(i.indexrelid, 'pg_class') AS comment,
       (SELECT pg_catalog.string_agg(a.attnum::int || ':' || a.attstattarget::int, ',' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = i.indexrelid AND a.attstattarget >= 0) AS statistics
FROM pg_catalog.pg_class t
LEFT JOIN pg_catalog.pg_index i ON i.indrelid = t.oid
LEFT JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
LEFT JOIN pg_catalog.pg_am am ON am.oid = ic.relam
LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = ic.reltablespace
WHERE t.oid = pg_catalog.to_regclass($1)
ORDER BY ic.relname`;

interface Row {
  kind: string; owned: boolean; owner: string; name: string | null; definition: string; tablespace: string | null; method: string;
  unique: boolean; primary: boolean; exclusion: boolean; replica_identity: boolean; constraint: boolean; valid: boolean;
  partitioned: boolean; clustered: boolean; comment: string | null; statistics: string | null;
}

/** A table's indexes; call inside a transaction that set search_path to '' (see INDEXES_SQL). */
export async function readIndexes(db: Queryable, table: { schema: string; name: string }): Promise<IndexedTable> {
  const { rows } = await db.query<Row>(INDEXES_SQL, [qualifiedName(table)]);
  const first = rows[0];
  if (!first) return { kind: null, owned: false, owner: null, indexes: [] };
  const indexes = rows.flatMap((r): IndexRow[] =>
    r.name === null
      ? []
      : [{
          name: r.name, definition: r.definition, tablespace: r.tablespace, method: r.method, unique: r.unique, primary: r.primary,
          exclusion: r.exclusion, replicaIdentity: r.replica_identity, constraint: r.constraint, valid: r.valid, partitioned: r.partitioned,
          clustered: r.clustered, comment: r.comment,
          // `column:target,...` as text, so a session that leaves every value as text reads it the same.
          statistics: (r.statistics ?? "").split(",").filter(Boolean).map((s) => {
            const [column, target] = s.split(":").map(Number);
            return { column: column ?? 0, target: target ?? 0 };
          }),
        }],
  );
  return { kind: first.kind, owned: first.owned, owner: first.owner, indexes };
}
