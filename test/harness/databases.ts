/**
 * A fresh pair of databases (source + target) per test file, cloned from the pgvector template.
 * They are dropped after the file, together with any replication slot left in them, unless the file
 * failed and PGFERRY_KEEP_FAILED=1 is set (then the names are printed so you can look).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";

export interface TestDatabases {
  name: string;
  sourceUrl: string;
  targetUrl: string;
  source: pg.Pool;
  target: pg.Pool;
  drop(): Promise<void>;
}

/** Set by keepFailed.ts (a setup file of every integration test file) when a test of this file fails. */
let fileFailed = false;
export function markFileFailed(): void {
  fileFailed = true;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function adminQuery(url: string, sql: string, params: unknown[] = []): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql, params);
  } finally {
    await client.end();
  }
}

async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  // Replication slots and live sessions keep a database from being dropped.
  await adminQuery(
    adminUrl,
    `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`,
    [name],
  );
  await adminQuery(
    adminUrl,
    `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`,
    [name],
  ).catch(() => undefined);
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}

export async function createTestDatabases(label: string): Promise<TestDatabases> {
  const servers = inject("pgServers");
  const name = `t_${label.toLowerCase().replace(/[^a-z0-9]+/g, "_").slice(0, 30)}_${randomBytes(3).toString("hex")}`;
  await Promise.all([
    adminQuery(servers.sourceUrl, `CREATE DATABASE "${name}" TEMPLATE ${servers.template}`),
    adminQuery(servers.targetUrl, `CREATE DATABASE "${name}" TEMPLATE ${servers.template}`),
  ]);
  const sourceUrl = withDatabase(servers.sourceUrl, name);
  const targetUrl = withDatabase(servers.targetUrl, name);
  const source = new pg.Pool({ connectionString: sourceUrl, max: 4 });
  const target = new pg.Pool({ connectionString: targetUrl, max: 4 });
  let dropped = false;
  return {
    name,
    sourceUrl,
    targetUrl,
    source,
    target,
    async drop() {
      if (dropped) return;
      dropped = true;
      await Promise.all([source.end(), target.end()]);
      if (fileFailed && process.env.PGFERRY_KEEP_FAILED === "1") {
        console.log(`PGFERRY_KEEP_FAILED: kept database ${name} on the source (${withDatabase(servers.sourceUrl, name)}) and the target (${withDatabase(servers.targetUrl, name)}); the test servers are left running for it`);
        return;
      }
      await Promise.all([dropDatabase(servers.sourceUrl, name), dropDatabase(servers.targetUrl, name)]);
    },
  };
}
