/**
 * The reorganisation example with both directions, as the tests that run it share it: the example
 * file with a `reverse` section (hooks resolved against config/, control servers on free ports), the
 * environment it reads, and the comparison of every new table with what the old one maps to.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type pg from "pg";
import { expectedQueries } from "../../tools/demo/oldProject.js";
import { firstDifference } from "./compare.js";
import type { TestDatabases } from "./databases.js";

export const CONFIG_DIR = resolve(import.meta.dirname, "../../config");

/** config/reorg.example.yaml with a reverse section named after the file's database; `extra` YAML follows it. */
export function reorgBothWaysText(db: TestDatabases, reverseExtra = "", extra = ""): string {
  const text = readFileSync(resolve(CONFIG_DIR, "reorg.example.yaml"), "utf8").replaceAll("hook: hooks/", `hook: ${CONFIG_DIR}/hooks/`);
  return `${text}\ncontrol:\n  listen: 127.0.0.1:0\nreverse:\n  slot: pgferry_${db.name}_rev\n  publication: pgferry_${db.name}_rev\n${reverseExtra}  listen: 127.0.0.1:0\n${extra}`;
}

export function reorgEnv(db: TestDatabases): Record<string, string> {
  return { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl, PGFERRY_SLOT: `pgferry_${db.name}` };
}

/**
 * Every new table equal to what the old one maps to, or the first difference. A key created on the
 * new side of the merged api_keys is the new side's own uuid, not one derived from the legacy id:
 * those rows are compared without it (the legacy id, which both sides share, identifies them).
 */
export async function reorgDifference(db: TestDatabases): Promise<string | null> {
  for (const expected of expectedQueries()) {
    const [want, have] = await Promise.all([db.source.query<{ t: string }>(expected.source), db.target.query<{ t: string }>(expected.target)]);
    const text = (rows: { t: string }[]) =>
      (expected.table === "security_service.api_keys" ? rows.map((r) => r.t.replace(/^\([^,]*,/, "(")) : rows.map((r) => r.t)).sort();
    const diff = firstDifference(text(want.rows), text(have.rows));
    if (diff) return `${expected.table}: ${diff}`;
  }
  return null;
}

/** The first row of a query. */
export async function firstRow<T>(pool: pg.Pool, sql: string, values: unknown[] = []): Promise<T> {
  const { rows } = await pool.query(sql, values);
  return rows[0] as T;
}
