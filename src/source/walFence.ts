/**
 * A WAL position at or after every commit made so far on a database. A commit made with
 * synchronous_commit = off is visible before its WAL is written, so pg_current_wal_lsn() can stand
 * before it. A fence (a transactional logical message committed with synchronous_commit = on)
 * flushes all WAL inserted before it, so the write position read after it covers every earlier
 * commit, and it is the end of a record, which a walsender reaches (pg_current_wal_insert_lsn() can
 * point past a page header no record ends at). pgferry's stream acts only on its own watermark prefix,
 * so a fence is just an empty transaction to it. Used by the cutover's wait (step 2) and the bench.
 */
import type pg from "pg";

export const FENCE_PREFIX = "pgferry.fence";

/** Commits a fence on `client` (outside a transaction) and returns the write position after it, as PostgreSQL prints it. */
export async function commitFence(client: pg.ClientBase, content: string): Promise<string> {
  await client.query("BEGIN");
  try {
    await client.query("SET LOCAL synchronous_commit = on");
    await client.query("SELECT pg_logical_emit_message(true, $1, $2)", [FENCE_PREFIX, content]);
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
  const { rows } = await client.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn");
  return rows[0]!.lsn;
}
