/**
 * catalog/ — what a database's catalog says of the mapped tables, for either side.
 *
 * Reads what pgferry needs to know about tables from a database's catalog: columns with their types,
 * keys, replica identity, size estimates and partitions. Used on both sides (source and target), so
 * it lives apart from both.
 */
import type pg from "pg";

export type Queryable = Pick<pg.ClientBase, "query">;

export interface CatalogColumn {
  name: string;
  /** `format_type()` text: `vector(1536)`, `numeric(30,10)`, `character varying(40)`. */
  type: string;
  /** The type without its modifier: `vector`, `numeric`, `character varying`, `bpchar` (`format_type(oid, -1)`: with NULL, `character` would mean char(1)). */
  castType: string;
  typeOid: number;
  notNull: boolean;
  /**
   * Whether the binary COPY format of this type is portable between clusters. Arrays of
   * non-built-in types and composites embed type OIDs that differ from database to database.
   */
  binaryPortable: boolean;
  hasDefault: boolean;
  /** `a`: GENERATED ALWAYS AS IDENTITY (an INSERT must say OVERRIDING SYSTEM VALUE), `d`: BY DEFAULT, `""`: not an identity. */
  identity: "a" | "d" | "";
}

/** A `GENERATED ALWAYS AS (expr) STORED` column: computed by its own database, never written. */
export interface CatalogGeneratedColumn {
  name: string;
  type: string;
  /** The generation expression as `pg_get_expr` prints it. */
  expr: string;
}

export interface CatalogPartition {
  schema: string;
  name: string;
  pages: number;
  estimatedRows: number | null;
}

export interface CatalogTable {
  /** `schema.table` as given by the caller. */
  id: string;
  oid: number;
  schema: string;
  name: string;
  kind: "table" | "partitioned";
  /** d = default (primary key), n = nothing, f = full, i = index */
  replicaIdentity: "d" | "n" | "f" | "i";
  /** Writable columns in attribute order (generated columns are left out: they are never replicated). */
  columns: CatalogColumn[];
  /** Generated columns, apart: before PostgreSQL 18 pgoutput does not carry them, and no one may write them. */
  generated: CatalogGeneratedColumn[];
  primaryKey: string[] | null;
  /** Columns that identify a row in UPDATE/DELETE messages: the primary key or the replica identity index. */
  identityKey: string[] | null;
  /** All usable unique keys (non-partial, non-expression, immediate). */
  uniqueKeys: string[][];
  /** Leaf partitions for a partitioned table; the table itself otherwise. */
  partitions: CatalogPartition[];
  estimatedRows: number | null;
}

interface TableRow { id: string; oid: number | null; schema: string; name: string; relkind: string; relreplident: string }
interface ColumnRow extends Omit<CatalogColumn, "typeOid"> { relid: number; type_oid: number; generated: string | null }
interface IndexRow { relid: number; primary: boolean; replident: boolean; columns: string[] }
interface PartitionRow { root: number; schema: string; name: string; pages: string; reltuples: number }

const TABLES_SQL = `
SELECT input.id, c.oid::int AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
       c.relreplident::text AS relreplident
FROM unnest($1::text[]) AS input(id)
LEFT JOIN pg_class c ON c.oid = to_regclass(input.id) AND c.relkind IN ('r', 'p')
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace`;

const COLUMNS_SQL = `
SELECT a.attrelid::int AS relid, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, format_type(a.atttypid, -1) AS "castType",
       a.atttypid::int AS type_oid, a.attnotnull AS "notNull", a.atthasdef AS "hasDefault", a.attidentity::text AS identity,
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END AS generated,
       NOT (t.typtype = 'c' OR (t.typelem <> 0 AND t.typlen = -1 AND (t.typelem >= 16384 OR et.typtype = 'c')))
         AS "binaryPortable"
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`;

const INDEXES_SQL = `
SELECT i.indrelid::int AS relid, i.indisprimary AS primary, i.indisreplident AS replident,
       array_agg(a.attname::text ORDER BY k.ord) AS columns
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = ANY($1::oid[]) AND i.indisunique AND i.indimmediate
  AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY i.indexrelid, i.indrelid, i.indisprimary, i.indisreplident
ORDER BY i.indrelid, i.indisprimary DESC, i.indexrelid`;

// Leaf partitions, or the table itself (pg_partition_tree returns nothing for a plain table).
// Size in pages from the file itself (relpages is stale before ANALYZE); rows from reltuples (-1: unknown).
const PARTITIONS_SQL = `
SELECT root.oid::int AS root, n.nspname AS schema, c.relname AS name,
       (pg_relation_size(c.oid) / current_setting('block_size')::int)::text AS pages, c.reltuples::float8 AS reltuples
FROM unnest($1::oid[]) AS root(oid)
CROSS JOIN LATERAL (SELECT t.relid FROM pg_partition_tree(root.oid) AS t WHERE t.isleaf UNION SELECT root.oid) AS tree(relid)
JOIN pg_class c ON c.oid = tree.relid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
ORDER BY root.oid, n.nspname, c.relname`;

function groupBy<T extends { relid: number }>(rows: T[]): Map<number, T[]> {
  const groups = new Map<number, T[]>();
  for (const row of rows) {
    const list = groups.get(row.relid);
    if (list) list.push(row);
    else groups.set(row.relid, [row]);
  }
  return groups;
}

/** Describes each `schema.table` in `ids`; a table that does not exist maps to `null`. */
export async function describeTables(db: Queryable, ids: readonly string[]): Promise<Map<string, CatalogTable | null>> {
  // A split names its source once per target: describe each table once.
  const tables = (await db.query<TableRow>(TABLES_SQL, [[...new Set(ids)]])).rows;
  const oids = tables.flatMap((t) => (t.oid === null ? [] : [t.oid]));
  const [columns, indexes, partitions] = await Promise.all([
    db.query<ColumnRow>(COLUMNS_SQL, [oids]),
    db.query<IndexRow>(INDEXES_SQL, [oids]),
    db.query<PartitionRow>(PARTITIONS_SQL, [oids]),
  ]);
  const columnsByTable = groupBy(columns.rows);
  const indexesByTable = groupBy(indexes.rows);
  const partitionsByTable = groupBy(partitions.rows.map((p) => ({ ...p, relid: p.root })));

  const result = new Map<string, CatalogTable | null>();
  for (const t of tables) {
    if (t.oid === null) {
      result.set(t.id, null);
      continue;
    }
    const keys = indexesByTable.get(t.oid) ?? [];
    const primaryKey = keys.find((k) => k.primary)?.columns ?? null;
    const replicaIdentity = t.relreplident as CatalogTable["replicaIdentity"];
    const identityKey =
      replicaIdentity === "d" ? primaryKey : replicaIdentity === "i" ? (keys.find((k) => k.replident)?.columns ?? null) : null;
    const parts = (partitionsByTable.get(t.oid) ?? []).map((p) => ({
      schema: p.schema,
      name: p.name,
      pages: Number(p.pages),
      estimatedRows: p.reltuples >= 0 ? p.reltuples : null,
    }));
    const known = parts.filter((p) => p.estimatedRows !== null);
    const allColumns = columnsByTable.get(t.oid) ?? [];
    result.set(t.id, {
      id: t.id,
      oid: t.oid,
      schema: t.schema,
      name: t.name,
      kind: t.relkind === "p" ? "partitioned" : "table",
      replicaIdentity,
      columns: allColumns.filter((c) => c.generated === null).map(({ relid: _relid, type_oid, generated: _generated, ...c }) => ({ ...c, typeOid: type_oid })),
      generated: allColumns.flatMap((c) => (c.generated === null ? [] : [{ name: c.name, type: c.type, expr: c.generated }])),
      primaryKey,
      identityKey,
      uniqueKeys: keys.map((k) => k.columns),
      partitions: parts,
      estimatedRows: parts.length > 0 && known.length === 0 ? null : known.reduce((sum, p) => sum + (p.estimatedRows ?? 0), 0),
    });
  }
  return result;
}
