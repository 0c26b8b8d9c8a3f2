/**
 * The source publication: exactly the mapped tables, partitioned ones published as their root
 * (so every partition streams as one table). Created before the slot (docs/design.md, rule 1).
 */
import type pg from "pg";
import { quoteIdent } from "../sql/quote.js";
import type { TablePlan } from "../plan/plan.js";

export async function ensurePublication(source: pg.Pool, name: string, plans: readonly TablePlan[]): Promise<"created" | "updated" | "unchanged"> {
  const tables = plans.map((p) => `${quoteIdent(p.source.schema)}.${quoteIdent(p.source.name)}`).join(", ");
  const { rows } = await source.query<{ via_root: boolean; tables: [string, string][] | null }>(
    `SELECT p.pubviaroot AS via_root,
            (SELECT json_agg(json_build_array(schemaname, tablename)) FROM pg_publication_tables WHERE pubname = p.pubname) AS tables
     FROM pg_publication p WHERE p.pubname = $1`,
    [name],
  );
  const existing = rows[0];
  if (!existing) {
    await source.query(`CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${tables} WITH (publish_via_partition_root = true)`);
    return "created";
  }
  const wanted = plans.map((p) => `${quoteIdent(p.source.schema)}.${quoteIdent(p.source.name)}`).sort();
  // Quoted the same way as `wanted`: a role that does not own the tables cannot ALTER the publication,
  // so one its owner created with exactly these tables must compare equal and be used as is.
  const have = (existing.tables ?? []).map(([schema, table]) => `${quoteIdent(schema)}.${quoteIdent(table)}`).sort();
  if (existing.via_root && wanted.length === have.length && wanted.every((t, i) => t === have[i])) return "unchanged";
  await source.query(`ALTER PUBLICATION ${quoteIdent(name)} SET TABLE ${tables}`);
  await source.query(`ALTER PUBLICATION ${quoteIdent(name)} SET (publish_via_partition_root = true)`);
  return "updated";
}
