/**
 * A client checked out of a pg.Pool, used and given back. While checked out, a client has no error
 * listener of the pool's: a connection reset between two queries would be an 'error' event nobody
 * listens to, which ends the process. Here the error is noted (the query in flight rejects anyway)
 * and the broken client is destroyed on release instead of going back to the pool.
 */
import type pg from "pg";

export async function withPooledClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken = error;
  };
  client.on("error", onError);
  try {
    return await work(client);
  } finally {
    client.off("error", onError);
    client.release(broken);
  }
}
