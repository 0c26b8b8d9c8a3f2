/**
 * sql/ — how pgferry opens sessions (pinned settings, endpoints, pools), quotes SQL, and tells a pooler's refusal from PostgreSQL's.
 *
 * One database pgferry talks to, as the components see it: a factory for its sessions (pooled,
 * dedicated, walsender, and the target's apply session), each with the pinned settings of
 * session.ts, an error listener, and errors that name this endpoint (errors.ts tagEndpoint). The
 * composition root makes one per side; nothing below it opens a connection from a URL.
 */
import type pg from "pg";
import { tagEndpoint, type DatabaseSide } from "../errors.js";
import { poolerError } from "./poolerRefusal.js";
import { openClient, openPool, prepareApplySession, type SessionOptions, type SynchronousCommit } from "./session.js";

export interface Endpoint {
  readonly side: DatabaseSide;
  /** The connection URL (with its secrets: never log it; describeUrl masks it). */
  readonly url: string;
  /** A pool of pinned sessions. */
  pool(applicationName: string, max: number, options?: Pick<SessionOptions, "rawText" | "extra">): pg.Pool;
  /** One dedicated pinned session, connected (`replication` for a walsender). */
  client(applicationName: string, options?: Pick<SessionOptions, "rawText" | "replication">): Promise<pg.Client>;
  /**
   * A dedicated session that applies replicated rows (docs/design.md, rules 2 and 7); its commits
   * are synchronous unless `synchronousCommit` says otherwise.
   */
  applySession(applicationName: string, synchronousCommit?: SynchronousCommit): Promise<pg.Client>;
}

export function endpoint(side: DatabaseSide, url: string): Endpoint {
  const tagged = (error: unknown) => tagEndpoint(poolerError(side, url, error) ?? error, side, url);
  const self: Endpoint = {
    side,
    url,
    pool(applicationName, max, options = {}) {
      const pool = openPool(url, { ...options, applicationName, max });
      tagPoolErrors(pool, side, url);
      return pool;
    },
    async client(applicationName, options = {}) {
      return openClient(url, { ...options, applicationName }).catch((error: unknown) => {
        throw tagged(error);
      });
    },
    async applySession(applicationName, synchronousCommit) {
      const client = await self.client(applicationName);
      try {
        await prepareApplySession(client, synchronousCommit);
      } catch (error) {
        await client.end().catch(() => undefined);
        throw tagged(error);
      }
      return client;
    },
  };
  return self;
}

/** Both endpoints of a pipeline, from the config's two URLs. */
export function endpoints(urls: { source: { url: string }; target: { url: string } }): { source: Endpoint; target: Endpoint } {
  return { source: endpoint("source", urls.source.url), target: endpoint("target", urls.target.url) };
}

const poolEndpoints = new WeakMap<pg.Pool, { side: DatabaseSide; url: string }>();

/** The endpoint a pool of endpoint().pool belongs to (withPooledClient tags errors with it). */
export function poolEndpoint(pool: pg.Pool): { side: DatabaseSide; url: string } | undefined {
  return poolEndpoints.get(pool);
}

/**
 * Errors out of `pool` (connecting, pool.query, and work on a client checked out through
 * withPooledClient) are marked with the database they came from (errors.ts tagEndpoint), so the
 * CLI's error report names the side and its URL without secrets; a pooler's refusal becomes the
 * message that says to use a direct connection (poolerRefusal.ts). Nothing else about them changes.
 */
function tagPoolErrors(pool: pg.Pool, side: DatabaseSide, url: string): void {
  poolEndpoints.set(pool, { side, url });
  const tag = (result: unknown): unknown =>
    result instanceof Promise ? result.catch((error: unknown) => { throw tagEndpoint(poolerError(side, url, error) ?? error, side, url); }) : result;
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
  pool.query = ((...args: unknown[]) => tag(query(...args))) as typeof pool.query;
  pool.connect = ((...args: unknown[]) => tag(connect(...args))) as typeof pool.connect;
}
