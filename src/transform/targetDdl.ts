/**
 * `pgferry plan --ddl`: CREATE SCHEMA / CREATE TABLE statements for the target tables, derived from
 * the source catalog and the mapping, for users without their own migrations. Column types are
 * asked of the source itself (a temporary view over each entry's SELECT, rolled back), so derived
 * columns get the type their expression has; source enum types become text (the target has no such
 * type), domains their base type. Keys: the target key is the columns derived from the source key.
 * An extension that owns a column's type (pgvector's `vector`) gets `CREATE EXTENSION IF NOT EXISTS`.
 */
import type pg from "pg";
import { quoteIdent, quoteLiteral } from "../sql/quote.js";
import type { CatalogTable } from "../catalog/tableCatalog.js";
import type { TableMapping } from "../config/index.js";
import { PgferryError } from "../errors.js";
import { referencedColumns } from "../plan/sqlRefs.js";

interface ProbedColumn { name: string; type: string; notNull: boolean; key: boolean }

/** An extension that owns a type the emitted columns use (pgvector's `vector`, `citext`, `hstore`). */
interface TypeExtension { name: string; schema: string }

function selectFor(mapping: TableMapping, source: CatalogTable): { list: string[]; names: string[]; notNull: boolean[]; key: boolean[] } {
  const list: string[] = [];
  const names: string[] = [];
  const notNull: boolean[] = [];
  const key: boolean[] = [];
  const sourceKey = source.identityKey ?? [];
  const renamed = new Set<string>();
  for (const [name, spec] of Object.entries(mapping.columns)) {
    names.push(name);
    if (typeof spec === "string" || "from" in spec) {
      const from = typeof spec === "string" ? spec : spec.from;
      renamed.add(from);
      list.push(`s.${quoteIdent(from)}`);
      notNull.push(source.columns.find((c) => c.name === from)?.notNull ?? false);
      key.push(sourceKey.includes(from));
    } else if ("value" in spec) {
      list.push(quoteLiteral(spec.value));
      notNull.push(true);
      key.push(false);
    } else {
      list.push(`(${spec.sql})`);
      notNull.push(false);
      const refs = referencedColumns(spec.sql, source.columns.map((c) => c.name));
      key.push(refs.length > 0 && refs.every((r) => sourceKey.includes(r)));
    }
  }
  if (mapping.passthrough) {
    for (const column of source.columns) {
      if (names.includes(column.name) || renamed.has(column.name) || mapping.exclude.includes(column.name)) continue;
      names.push(column.name);
      list.push(`s.${quoteIdent(column.name)}`);
      notNull.push(column.notNull);
      key.push(sourceKey.includes(column.name));
    }
  }
  return { list, names, notNull, key };
}

async function probe(source: pg.ClientBase, mapping: TableMapping, table: CatalogTable, extensions: Map<string, TypeExtension>): Promise<ProbedColumn[]> {
  const { list, names, notNull, key } = selectFor(mapping, table);
  const view = "pgferry_ddl_probe";
  await source.query("BEGIN");
  try {
    const aliased = list.map((expr, i) => `${expr} AS ${quoteIdent(names[i]!)}`).join(", ");
    await source.query(`CREATE TEMPORARY VIEW ${view} AS SELECT ${aliased} FROM ONLY ${quoteIdent(table.schema)}.${quoteIdent(table.name)} AS s`);
    // The type as emitted (an enum becomes text, a domain its base type), then the extension that
    // owns it or, for an array, its element type (pg_depend records extension membership).
    const { rows } = await source.query<{ name: string; type: string; extension: string | null; extension_schema: string | null }>(
      `SELECT a.attname AS name,
              CASE WHEN t.typtype = 'e' THEN 'text'
                   WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)
                   WHEN t.typname = 'unknown' THEN 'text'
                   ELSE format_type(a.atttypid, a.atttypmod) END AS type,
              x.extname AS extension, x.nspname AS extension_schema
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
       JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
       LEFT JOIN LATERAL (
         SELECT e.extname, n.nspname
         FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE d.classid = 'pg_type'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
           AND d.objid = CASE WHEN b.typcategory = 'A' AND b.typelem <> 0 THEN b.typelem ELSE b.oid END
           AND t.typtype <> 'e'
         LIMIT 1) x ON true
       WHERE a.attrelid = to_regclass('pg_temp.${view}') AND a.attnum > 0 ORDER BY a.attnum`,
    );
    for (const row of rows) {
      if (row.extension !== null) extensions.set(row.extension, { name: row.extension, schema: row.extension_schema ?? "public" });
    }
    return rows.map((r, i) => ({ name: r.name, type: r.type, notNull: notNull[i] ?? false, key: key[i] ?? false }));
  } finally {
    await source.query("ROLLBACK");
  }
}

/** An identifier as written by hand: bare when it is a plain lowercase name (`vector`), quoted otherwise. */
function identifier(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : quoteIdent(name);
}

export async function targetDdl(source: pg.ClientBase, mappings: readonly TableMapping[], sourceTables: ReadonlyMap<string, CatalogTable | null>): Promise<string> {
  const byTarget = new Map<string, ProbedColumn[]>();
  const extensions = new Map<string, TypeExtension>();
  const order: string[] = [];
  for (const mapping of mappings) {
    const table = sourceTables.get(mapping.from);
    if (!table) throw new PgferryError("mapping", `tables: source table ${mapping.from} does not exist (or is not a table)`, { hint: "check tables[].from against the source (pgferry plan --check lists every problem)" });
    const columns = await probe(source, mapping, table, extensions);
    const existing = byTarget.get(mapping.to);
    if (!existing) {
      byTarget.set(mapping.to, columns);
      order.push(mapping.to);
      continue;
    }
    // A merge: the union of the sources' columns; a column only some sources fill cannot be NOT NULL.
    for (const column of columns) {
      const known = existing.find((c) => c.name === column.name);
      if (known) known.key &&= column.key;
      else existing.push({ ...column, notNull: false });
    }
    for (const known of existing) if (!columns.some((c) => c.name === known.name)) known.notNull = false;
  }
  const schemas = [...new Set(order.map((t) => t.split(".")[0]!))];
  // Extensions first: the tables' types need them. One kept outside public goes to the same schema,
  // so a type name format_type() qualified with it resolves on the target too.
  const lines: string[] = [];
  for (const extension of [...extensions.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    if (extension.schema === "public" || extension.schema === "pg_catalog") {
      lines.push(`CREATE EXTENSION IF NOT EXISTS ${identifier(extension.name)};`);
    } else {
      lines.push(`CREATE SCHEMA IF NOT EXISTS ${identifier(extension.schema)};`, `CREATE EXTENSION IF NOT EXISTS ${identifier(extension.name)} WITH SCHEMA ${identifier(extension.schema)};`);
    }
  }
  lines.push(...schemas.map((s) => `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(s)};`));
  for (const target of order) {
    const columns = byTarget.get(target)!;
    const [schema, name] = target.split(".") as [string, string];
    const keys = columns.filter((c) => c.key).map((c) => quoteIdent(c.name));
    const body = columns.map((c) => `  ${quoteIdent(c.name)} ${c.type}${c.notNull || c.key ? " NOT NULL" : ""}`);
    if (keys.length > 0) body.push(`  PRIMARY KEY (${keys.join(", ")})`);
    lines.push("", `CREATE TABLE IF NOT EXISTS ${quoteIdent(schema)}.${quoteIdent(name)} (\n${body.join(",\n")}\n);`);
  }
  return `${lines.join("\n")}\n`;
}
