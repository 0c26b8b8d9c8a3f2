/**
 * The SQL layer's pools (pg.Pool use shared by the pipeline, the state store and the CLI commands):
 * the pair of pools a command opens on the source and the target, a client checked out of a pool,
 * used and given back, and errors out of either tagged with the database they came from.
 */
import pg from "pg";
import type { Config } from "../config/index.js";
import { tagEndpoint, type DatabaseSide } from "../errors.js";
import { poolerError } from "./poolerRefusal.js";
import { openPool } from "./session.js";

export interface DatabasePools {
  source: pg.Pool;
  target: pg.Pool;
  end(): Promise<void>;
}

/** A pool of pinned sessions (session.ts) on the source and one on the target. */
export function databasePools(config: Config, applicationName: string, max: number): DatabasePools {
  const source = openPool(config.source.url, { applicationName, max });
  const target = openPool(config.target.url, { applicationName, max });
  tagErrors(source, "source", config.source.url);
  tagErrors(target, "target", config.target.url);
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
    const endpoint = poolEndpoints.get(pool);
    throw endpoint ? tagEndpoint(error, endpoint.side, endpoint.url) : error;
  } finally {
    client.off("error", onError);
    client.release(broken);
  }
}

const poolEndpoints = new WeakMap<pg.Pool, { side: DatabaseSide; url: string }>();

/**
 * Errors out of `pool` (connecting, pool.query, and work on a client checked out through
 * withPooledClient) are marked with the database they came from (errors.ts tagEndpoint), so the
 * CLI's error report names the side and its URL without secrets. Nothing else about them changes.
 */
function tagErrors(pool: pg.Pool, side: DatabaseSide, url: string): void {
  poolEndpoints.set(pool, { side, url });
  const tag = (result: unknown): unknown =>
    // A pooler's refusal becomes the message that says to use a direct connection (poolerRefusal.ts).
    result instanceof Promise ? result.catch((error: unknown) => { throw tagEndpoint(poolerError(side, url, error) ?? error, side, url); }) : result;
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
  pool.query = ((...args: unknown[]) => tag(query(...args))) as typeof pool.query;
  pool.connect = ((...args: unknown[]) => tag(connect(...args))) as typeof pool.connect;
}
