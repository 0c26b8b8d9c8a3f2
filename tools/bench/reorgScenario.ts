/**
 * pgferry's snapshot with the reorganising mapping of `config/reorg.example.yaml` (27 old tables into
 * eight domain schemas), on the old project that mapping is written for (tools/demo/oldProject.ts),
 * beside an identity mapping of the same data: the ratio is what the transforms cost.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import pg from "pg";
import { parse } from "yaml";
import { seedOldProject, SOURCE_DDL, TARGET_DDL } from "../demo/oldProject.js";
import { REPO_ROOT } from "../repoRoot.js";

export const REORG_CONFIG = join(REPO_ROOT, "config/reorg.example.yaml");

/** The example's table entries, hook paths made absolute (the bench writes its config elsewhere). */
export function reorgTables(): Record<string, unknown>[] {
  const doc = parse(readFileSync(REORG_CONFIG, "utf8")) as { tables: Record<string, unknown>[] };
  return doc.tables.map((entry) =>
    typeof entry.hook === "string" && !isAbsolute(entry.hook) ? { ...entry, hook: resolve(dirname(REORG_CONFIG), entry.hook) } : entry,
  );
}

/** Identity entries for every table the example maps (same data, no transform). */
export function identityTables(tables: readonly Record<string, unknown>[]): Record<string, unknown>[] {
  return [...new Set(tables.map((t) => String(t.from)))].map((from) => ({ from, to: from }));
}

export const OLD_PROJECT_DDL = SOURCE_DDL;
export const DOMAIN_DDL = TARGET_DDL;

/** Creates and seeds the old project in `url` (vector extension included); returns its rows and bytes. */
export async function seedOldProjectDatabase(url: string, scale: number): Promise<{ rows: number; bytes: number }> {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  try {
    await pool.query("CREATE EXTENSION IF NOT EXISTS vector");
    await pool.query(SOURCE_DDL);
    await seedOldProject(pool, scale);
    await pool.query("ANALYZE");
    const { rows } = await pool.query<{ rows: string; bytes: string }>(
      `SELECT coalesce(sum(c.reltuples), 0)::bigint::text AS rows, coalesce(sum(pg_table_size(c.oid)), 0)::text AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'`,
    );
    return { rows: Number(rows[0]!.rows), bytes: Number(rows[0]!.bytes) };
  } finally {
    await pool.end();
  }
}
