/**
 * The source publication: exactly the mapped tables, partitioned ones published as their root
 * (so every partition streams as one table). Created before the slot (DESIGN rule 1).
 */
import type pg from "pg";
import { quoteIdent } from "../apply/statements.js";
import type { TablePlan } from "../transform/plan.js";

export async function ensurePublication(source: pg.Pool, name: string, plans: readonly TablePlan[]): Promise<"created" | "updated" | "unchanged"> {
  const tables = plans.map((p) => `${quoteIdent(p.source.schema)}.${quoteIdent(p.source.name)}`).join(", ");
  const { rows } = await source.query<{ via_root: boolean; tables: string[] | null }>(
    `SELECT p.pubviaroot AS via_root,
            (SELECT array_agg(format('%I.%I', schemaname, tablename) ORDER BY 1) FROM pg_publication_tables WHERE pubname = p.pubname) AS tables
     FROM pg_publication p WHERE p.pubname = $1`,
    [name],
  );
  const existing = rows[0];
  if (!existing) {
    await source.query(`CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${tables} WITH (publish_via_partition_root = true)`);
    return "created";
  }
  const wanted = plans.map((p) => `${quoteIdent(p.source.schema)}.${quoteIdent(p.source.name)}`).sort();
  const have = [...(existing.tables ?? [])].sort();
  if (existing.via_root && wanted.length === have.length && wanted.every((t, i) => t === have[i])) return "unchanged";
  await source.query(`ALTER PUBLICATION ${quoteIdent(name)} SET TABLE ${tables}`);
  await source.query(`ALTER PUBLICATION ${quoteIdent(name)} SET (publish_via_partition_root = true)`);
  return "updated";
}
