/**
 * The SQL layer's pools (pg.Pool use shared by the pipeline, the state store and the CLI commands):
 * the pair of pools a command opens on the source and the target, a client checked out of a pool,
 * used and given back, and errors out of either tagged with the database they came from.
 */
import pg from "pg";
import type { Config } from "../config/index.js";
import { tagEndpoint } from "../errors.js";
import { endpoints, poolEndpoint } from "./endpoint.js";

export interface DatabasePools {
  source: pg.Pool;
  target: pg.Pool;
  end(): Promise<void>;
}

/** A pool of pinned sessions (session.ts) on the source and one on the target. */
export function databasePools(config: Config, applicationName: string, max: number): DatabasePools {
  const both = endpoints(config);
  const source = both.source.pool(applicationName, max);
  const target = both.target.pool(applicationName, max);
  return {
    source,
    target,
    end: async () => {
      await Promise.all([source.end(), target.end()]);
    },
  };
}

/**
 * Runs `work` on a client checked out of `pool`. While checked out, a client has no error listener
 * of the pool's: a connection reset between two queries would be an 'error' event nobody listens to,
 * which ends the process. Here the error is noted (the query in flight rejects anyway) and the broken
 * client is destroyed on release instead of going back to the pool.
 */
export async function withPooledClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken = error;
  };
  client.on("error", onError);
  try {
    return await work(client);
  } catch (error) {
    const endpoint = poolEndpoint(pool);
    throw endpoint ? tagEndpoint(error, endpoint.side, endpoint.url) : error;
  } finally {
    client.off("error", onError);
    client.release(broken);
  }
}
