/**
 * Database helpers for the bench: one-off clients, fresh databases per scenario (cloned from the
 * fixture template, so every scenario starts from the same bytes), and CHECKPOINT before a timed
 * phase so a checkpoint triggered by the previous phase's WAL does not land inside the next one.
 */
import pg from "pg";
import type { LocalCluster } from "../embedded/localCluster.js";
import type { Cleanup } from "./cleanup.js";
import { commitFence } from "../../src/source/walFence.js";

export async function connect(url: string, applicationName = "pgferry-bench"): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  client.on("error", () => undefined); // surfaced by the next query
  await client.connect();
  return client;
}

export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(url);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * Creates database `name` (from `template` when given: a file copy, not a WAL-logged one) and
 * registers its removal with `cleanup`. Returns a function that drops it now.
 */
export async function createDatabase(cluster: LocalCluster, name: string, cleanup: Cleanup, template?: string): Promise<() => Promise<void>> {
  const from = template ? ` TEMPLATE ${quoteIdent(template)} STRATEGY FILE_COPY` : "";
  await withClient(cluster.url(), (c) => c.query(`CREATE DATABASE ${quoteIdent(name)}${from}`));
  let unregister = () => undefined as void;
  const drop = async () => {
    unregister();
    await dropDatabase(cluster, name);
  };
  unregister = cleanup.add(`database ${name} on ${cluster.name}`, drop);
  return drop;
}

/**
 * Drops a database with whatever replication objects still hang on it: subscriptions in it (their
 * remote slot is left to the source side), then its sessions and logical slots, then the database.
 */
export async function dropDatabase(cluster: LocalCluster, name: string): Promise<void> {
  const subscriptions = await withClient(cluster.url(), async (c) =>
    (await c.query<{ subname: string }>("SELECT s.subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = $1", [name])).rows,
  );
  if (subscriptions.length > 0) {
    await withClient(cluster.url(name), async (c) => {
      for (const { subname } of subscriptions) {
        const sub = quoteIdent(subname);
        await c.query(`ALTER SUBSCRIPTION ${sub} DISABLE`);
        await c.query(`ALTER SUBSCRIPTION ${sub} SET (slot_name = NONE)`);
        await c.query(`DROP SUBSCRIPTION ${sub}`);
      }
    });
  }
  await withClient(cluster.url(), async (c) => {
    await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [name]);
    // A walsender may take a moment to exit and release its slot.
    for (let attempt = 0; ; attempt += 1) {
      try {
        await c.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1", [name]);
        break;
      } catch (error) {
        if (attempt >= 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  });
}

export async function checkpoint(...clusters: LocalCluster[]): Promise<void> {
  await Promise.all(clusters.map((cluster) => withClient(cluster.url(), (c) => c.query("CHECKPOINT"))));
}

/**
 * A WAL position at or after every commit made so far in `url`'s cluster (the workload commits with
 * synchronous_commit = off): the position after a fence (src/source/walFence.ts). Read after the
 * drain's marker, so the fence's own transaction follows the measured backlog.
 */
export async function currentWalLsn(url: string): Promise<string> {
  return withClient(url, (c) => commitFence(c, "bench"));
}
