/**
 * Row-by-row comparison of a source table with its target: every row rendered by PostgreSQL as
 * text (`t::text` of the whole row), ordered the same way, so values are compared exactly.
 */
import type pg from "pg";

export async function rowsAsText(pool: pg.Pool, table: string, orderBy = "t::text"): Promise<string[]> {
  const { rows } = await pool.query<{ row: string }>(`SELECT t::text AS row FROM ${table} AS t ORDER BY ${orderBy}`);
  return rows.map((r) => r.row);
}

/** The first difference between two ordered row lists, or null when equal (short messages for big tables). */
export function firstDifference(expected: readonly string[], actual: readonly string[]): string | null {
  const n = Math.max(expected.length, actual.length);
  for (let i = 0; i < n; i += 1) {
    if (expected[i] !== actual[i]) {
      const show = (s: string | undefined) => (s === undefined ? "(missing)" : s.length > 300 ? `${s.slice(0, 300)}…` : s);
      return `row ${i} of ${expected.length} expected / ${actual.length} actual differs:\n  expected ${show(expected[i])}\n  actual   ${show(actual[i])}`;
    }
  }
  return null;
}

export interface TablePair {
  source: string;
  target: string;
  orderBy?: string;
}

/** Null when every target table equals its source table; otherwise what differs first. */
export async function compareTables(source: pg.Pool, target: pg.Pool, pairs: readonly TablePair[]): Promise<string | null> {
  for (const pair of pairs) {
    const [expected, actual] = await Promise.all([rowsAsText(source, pair.source, pair.orderBy), rowsAsText(target, pair.target, pair.orderBy)]);
    const difference = firstDifference(expected, actual);
    if (difference) return `${pair.source} → ${pair.target}: ${difference}`;
  }
  return null;
}
