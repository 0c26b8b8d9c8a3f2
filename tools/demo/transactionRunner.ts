/**
 * Runs numbered write transactions on a pool from a few concurrent workers, until a count or an
 * abort. A transaction that fails with one of `forgiven` SQLSTATEs (writers colliding with each
 * other) is rolled back and not counted; any other error stops the run. Used by the demo's load and
 * the tests' write loads.
 */
import type pg from "pg";
import { withPooledClient } from "../../src/sql/pools.js";

export interface TransactionRunOptions {
  transactions: number;
  concurrency?: number;
  signal?: AbortSignal;
  forgiven: ReadonlySet<string>;
}

/** Calls `body(client, t)` inside BEGIN/COMMIT for t = 0, 1, ...; returns the committed count. */
export async function runTransactions(pool: pg.Pool, options: TransactionRunOptions, body: (client: pg.PoolClient, t: number) => Promise<void>): Promise<number> {
  let next = 0;
  let committed = 0;
  const worker = () =>
    withPooledClient(pool, async (client) => {
      while (next < options.transactions && !options.signal?.aborted) {
        const t = next++;
        await client.query("BEGIN");
        try {
          await body(client, t);
          await client.query("COMMIT");
          committed += 1;
        } catch (error) {
          // A session ended under it (terminated, reset) cannot roll back: the error to report is the first one.
          await client.query("ROLLBACK").catch((rollbackError: unknown) => {
            throw Object.assign(error as Error, { rollbackError });
          });
          if (!options.forgiven.has((error as { code?: string }).code ?? "")) throw error;
        }
      }
    });
  await Promise.all(Array.from({ length: options.concurrency ?? 2 }, worker));
  return committed;
}
